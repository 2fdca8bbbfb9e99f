//! The content-addressed store on RocksDB.
//!
//! Column families:
//! * `objects`: blake3(bytes) → bytes. Immutable; written before anything refers to them,
//!   so an interrupted operation leaves at most unreferenced objects behind.
//! * `nodes`: Merkle node hash → postcard node. Immutable, likewise.
//! * `records`: `tenant \0 generation \0 collection \0 id` → [`RecordEntry`]: the live state.
//! * `sources`: `tenant \0 generation \0 source \0 collection \0 id` → empty: which source
//!   produced a record (for `ingest --complete`). See [`Keyspace`].
//! * `meta`: `head \0 tenant` → state root + records generation; `export \0 tenant \0 runId` → export record;
//!   `applied \0 tenant` → import history.
//!
//! Invariant: every mutation of `records`, `sources` and `meta` is one atomic write batch
//! that also moves the tenant's head; objects and nodes it needs were written earlier.
pub mod catalog;
pub mod error;
pub mod tree;

use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

pub use error::StoreError;

use crate::ids::{NodeHash, ObjectId};
use crate::merkle::{Node, StateNode};
use crate::model::{Collection, Tenant};

pub const CF_OBJECTS: &str = "objects";
pub const CF_NODES: &str = "nodes";
pub const CF_RECORDS: &str = "records";
pub const CF_SOURCES: &str = "sources";
pub const CF_META: &str = "meta";
const ALL_CFS: [&str; 5] = [CF_OBJECTS, CF_NODES, CF_RECORDS, CF_SOURCES, CF_META];
/// Version of the store's on-disk encoding (docs/architecture.md, version history).
pub const STORE_FORMAT: u32 = 1;
const STORE_FORMAT_KEY: &[u8] = b"store-format";

/// The live entry of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    pub subject: String,
    pub object: ObjectId,
    pub modified: Option<i64>,
    pub source: String,
    /// Records derived from this raw document (normalized records); they are removed
    /// with it and replaced when it changes.
    pub derived: Vec<(Collection, String)>,
}

/// One key/value pair read from RocksDB.
pub type KvResult = Result<(Box<[u8]>, Box<[u8]>), StoreError>;

pub struct Store {
    db: DB,
    path: PathBuf,
}

/// Where a tenant's live records and source index are: `tenant \0 <generation> \0`.
/// A full import writes the next generation beside the live one, in bounded chunks, and
/// the commit that moves the head to it also drops the old generation (one
/// `delete_range`): the switch is atomic however large the state is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    prefix: Vec<u8>,
    pub generation: u64,
}

impl Keyspace {
    pub fn new(tenant: &str, generation: u64) -> Self {
        Self {
            prefix: format!("{tenant}\0{generation:016x}\0").into_bytes(),
            generation,
        }
    }
    /// Every record and source key of this generation starts with this.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }
    /// The exclusive end of this generation's key range.
    pub fn end(&self) -> Vec<u8> {
        let mut e = self.prefix.clone();
        *e.last_mut().expect("prefix ends with NUL") = 1;
        e
    }
    pub fn record_key(&self, c: Collection, id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + id.len() + 24);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(c.name().as_bytes());
        k.push(0);
        k.extend_from_slice(id.as_bytes());
        k
    }
    pub fn source_prefix(&self, source: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(source.as_bytes());
        k.push(0);
        k
    }
    pub fn source_key(&self, source: &str, c: Collection, id: &str) -> Vec<u8> {
        let mut k = self.source_prefix(source);
        k.extend_from_slice(c.name().as_bytes());
        k.push(0);
        k.extend_from_slice(id.as_bytes());
        k
    }
}

pub fn head_key(tenant: &str) -> Vec<u8> {
    format!("head\0{tenant}").into_bytes()
}

pub fn head_value(root: &NodeHash, ks: &Keyspace) -> Vec<u8> {
    let mut v = root.as_bytes().to_vec();
    v.extend_from_slice(&ks.generation.to_le_bytes());
    v
}

impl Store {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Bound the memtables of all column families together (RocksDB's default is
        // 64 MiB × 2 per family), so peak memory stays well under 1 GiB at 1M records.
        opts.set_db_write_buffer_size(128 << 20);
        let cfs = ALL_CFS.iter().map(|n| {
            let mut o = Options::default();
            // Merkle nodes are mostly 32-byte hashes that do not compress; decompressing
            // their blocks was the largest cost of a delta's tree walk.
            let compression = if *n == CF_NODES {
                rocksdb::DBCompressionType::None
            } else {
                rocksdb::DBCompressionType::Lz4
            };
            o.set_compression_type(compression);
            ColumnFamilyDescriptor::new(*n, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.into_string(),
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        // The on-disk encoding of nodes and records is versioned; a store written by an
        // incompatible version is refused rather than misread.
        match store.get(CF_META, STORE_FORMAT_KEY)? {
            Some(v) if v == STORE_FORMAT.to_le_bytes() => {}
            Some(v) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    message: format!(
                        "store format {} is not supported by this version (format {STORE_FORMAT})",
                        v.first().copied().unwrap_or(0)
                    ),
                })
            }
            None => {
                let mut b = WriteBatch::default();
                store.batch_put(&mut b, CF_META, STORE_FORMAT_KEY, &STORE_FORMAT.to_le_bytes());
                store.commit(b)?;
            }
        }
        Ok(store)
    }

    /// Open an existing store; refuses to create one (for read-only commands).
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                message: "no store here (no RocksDB CURRENT file)".into(),
            });
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Commit a batch durably (fsync'd WAL): the unit of atomicity.
    pub fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Write immutable objects/nodes ahead of the commit that refers to them. Not
    /// fsync'd: the later synced commit orders them before it in the WAL.
    pub fn write_unreferenced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        Ok(self.db.write(batch)?)
    }

    /// Flush memtables to disk so the write-ahead log need not be replayed on open.
    pub fn flush(&self) -> Result<(), StoreError> {
        for cf in ALL_CFS {
            self.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    pub fn new_batch(&self) -> WriteBatch {
        WriteBatch::default()
    }

    pub fn batch_put(&self, batch: &mut WriteBatch, cf: &str, key: &[u8], value: &[u8]) {
        batch.put_cf(self.cf(cf), key, value);
    }

    pub fn batch_delete(&self, batch: &mut WriteBatch, cf: &str, key: &[u8]) {
        batch.delete_cf(self.cf(cf), key);
    }

    /// Key/value pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, cf: &str, prefix: &'a [u8]) -> impl Iterator<Item = KvResult> + 'a {
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward))
            .map(|r| r.map_err(StoreError::from))
            .take_while(move |r| match r {
                Ok((k, _)) => k.starts_with(prefix),
                Err(_) => true,
            })
    }

    pub fn object(&self, id: &ObjectId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_OBJECTS, id.as_bytes())
    }

    pub fn object_required(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        self.object(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("object {id} is missing")))
    }

    /// Many objects in one batched RocksDB lookup (order of `ids` kept). Export reads
    /// each object once, so the reads bypass the block cache.
    pub fn objects(&self, ids: &[ObjectId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        let keys: Vec<&[u8]> = ids.iter().map(|i| &i.as_bytes()[..]).collect();
        self.db
            .batched_multi_get_cf_opt(self.cf(CF_OBJECTS), keys, false, &ro)
            .into_iter()
            .map(|r| r.map(|o| o.map(|s| s.to_vec())).map_err(StoreError::from))
            .collect()
    }

    pub fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError> {
        Ok(self.object(id)?.is_some())
    }

    pub fn node(&self, h: &NodeHash) -> Result<Node, StoreError> {
        self.node_opt(h)?
            .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} is missing")))
    }

    pub fn node_opt(&self, h: &NodeHash) -> Result<Option<Node>, StoreError> {
        match self.get(CF_NODES, h.as_bytes())? {
            None => Ok(None),
            Some(b) => Node::decode(&b)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} does not decode"))),
        }
    }

    pub fn head(&self, tenant: &Tenant) -> Result<Option<NodeHash>, StoreError> {
        Ok(self.head_and_keyspace(tenant)?.0)
    }

    /// The head value: state root (32 bytes) followed by the records generation (u64 LE).
    pub fn head_and_keyspace(&self, tenant: &Tenant) -> Result<(Option<NodeHash>, Keyspace), StoreError> {
        match self.get(CF_META, &head_key(tenant.as_str()))? {
            None => Ok((None, Keyspace::new(tenant.as_str(), 0))),
            Some(b) if b.len() == 40 => {
                let root = NodeHash::from_slice(&b[..32]).expect("32 bytes");
                let generation = u64::from_le_bytes(b[32..].try_into().expect("8 bytes"));
                Ok((Some(root), Keyspace::new(tenant.as_str(), generation)))
            }
            Some(_) => Err(StoreError::Corrupt(format!("head of tenant {tenant} is malformed"))),
        }
    }

    /// The tenant's live keyspace.
    pub fn keyspace(&self, tenant: &Tenant) -> Result<Keyspace, StoreError> {
        Ok(self.head_and_keyspace(tenant)?.1)
    }

    /// The tenant's current state (an empty state if it has none yet).
    pub fn state(&self, tenant: &Tenant) -> Result<StateNode, StoreError> {
        match self.head(tenant)? {
            None => Ok(StateNode::empty(tenant.as_str())),
            Some(h) => self.state_at(&h),
        }
    }

    pub fn state_at(&self, root: &NodeHash) -> Result<StateNode, StoreError> {
        match self.node(root)? {
            Node::State(s) => Ok(s),
            _ => Err(StoreError::Corrupt(format!("{root} is not a state node"))),
        }
    }

    pub fn record(&self, tenant: &Tenant, c: Collection, id: &str) -> Result<Option<RecordEntry>, StoreError> {
        self.record_in(&self.keyspace(tenant)?, c, id)
    }

    pub fn record_in(&self, ks: &Keyspace, c: Collection, id: &str) -> Result<Option<RecordEntry>, StoreError> {
        match self.get(CF_RECORDS, &ks.record_key(c, id))? {
            None => Ok(None),
            Some(b) => postcard::from_bytes(&b)
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("record {c:?}/{id} does not decode"))),
        }
    }

    /// Tenants that have a head.
    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut out = Vec::new();
        for kv in self.scan_prefix(CF_META, b"head\0") {
            let (k, _) = kv?;
            let name = String::from_utf8_lossy(&k[5..]).to_string();
            if let Ok(t) = Tenant::new(&name) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The first key at or after `from`.
    pub fn first_key_from(&self, cf: &str, from: &[u8]) -> Result<Option<Box<[u8]>>, StoreError> {
        match self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(from, Direction::Forward))
            .next()
        {
            None => Ok(None),
            Some(r) => Ok(Some(r?.0)),
        }
    }

    /// Every key of a column family (for store verification).
    pub fn iter_cf<'a>(&'a self, cf: &str) -> impl Iterator<Item = KvResult> + 'a {
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::Start)
            .map(|r| r.map_err(StoreError::from))
    }
}

pub fn encode_entry(e: &RecordEntry) -> Vec<u8> {
    postcard::to_stdvec(e).expect("record entries always encode")
}
