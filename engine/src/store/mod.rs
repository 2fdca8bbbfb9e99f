//! The content-addressed store on RocksDB.
//!
//! Column families:
//! * `objects`: blake3(bytes) → bytes. Immutable; written before anything refers to them,
//!   so an interrupted operation leaves at most unreferenced objects behind.
//! * `nodes`: Merkle node hash → postcard node. Immutable, likewise.
//! * `records`: `tenant \0 collection \0 id` → [`RecordEntry`]: the live state.
//! * `sources`: `tenant \0 source \0 collection \0 id` → empty: which source produced a
//!   record (for `ingest --complete`).
//! * `meta`: `head \0 tenant` → state root; `export \0 tenant \0 runId` → export record;
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

pub fn record_key(tenant: &str, c: Collection, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + id.len() + 24);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(c.name().as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn source_key(tenant: &str, source: &str, c: Collection, id: &str) -> Vec<u8> {
    let mut k = Vec::new();
    for part in [tenant, source, c.name()] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn head_key(tenant: &str) -> Vec<u8> {
    format!("head\0{tenant}").into_bytes()
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
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*n, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.into_string(),
        })?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
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
        match self.get(CF_META, &head_key(tenant.as_str()))? {
            None => Ok(None),
            Some(b) => NodeHash::from_slice(&b)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("head of tenant {tenant} is malformed"))),
        }
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
        match self.get(CF_RECORDS, &record_key(tenant.as_str(), c, id))? {
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
