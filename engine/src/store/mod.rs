//! The content-addressed store on RocksDB.
//!
//! Column families:
//! * `objects`: [`ObjectKey`] (collection, shard of the subject, blake3(bytes)) → bytes.
//!   Immutable; written before anything refers to them, so an interrupted operation leaves
//!   at most unreferenced objects behind. The placement prefix keeps the objects of one
//!   export unit (collection × shard) together on disk: an export reads each data block
//!   once instead of once per object it holds (store format 2).
//! * `nodes`: Merkle node hash → postcard node. Immutable, likewise.
//! * `records`: `tenant \0 generation \0 collection \0 id` → [`RecordEntry`]: the live state.
//! * `sources`: `tenant \0 generation \0 source \0 collection \0 id` → the input digest of
//!   the document the record was ingested from (32 bytes), or empty when unknown (imports,
//!   format-2 stores): which source produced a record (for `ingest --complete`) and which
//!   input bytes did (for change detection, `ingest::digest`). See [`Keyspace`].
//! * `staging`: record changes of a large ingest, staged until one small commit makes them
//!   live (see [`staging`]).
//! * `meta`: `head \0 tenant` → state root + records generation; `export \0 tenant \0 runId` → export record;
//!   `applied \0 tenant` → import history.
//!
//! Invariant: every mutation of `records`, `sources` and `meta` is one atomic write batch
//! that also moves the tenant's head; objects and nodes it needs were written earlier.
pub mod bulk;
pub mod catalog;
pub mod error;
pub mod gc;
pub mod staging;
pub mod tree;

use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

pub use error::StoreError;

use crate::ids::{NodeHash, ObjectId};
use crate::merkle::{Node, StateNode};
use crate::model::{shard_of, Collection, Tenant};

pub const CF_OBJECTS: &str = "objects";
pub const CF_NODES: &str = "nodes";
pub const CF_RECORDS: &str = "records";
pub const CF_SOURCES: &str = "sources";
pub const CF_META: &str = "meta";
pub const CF_STAGING: &str = "staging";
const ALL_CFS: [&str; 6] = [CF_OBJECTS, CF_NODES, CF_RECORDS, CF_SOURCES, CF_META, CF_STAGING];
/// Version of the store's on-disk encoding (docs/architecture.md, version history).
pub const STORE_FORMAT: u32 = 3;
/// The previous format, upgraded in place at open: format 3 only adds the `staging`
/// column family (created at open) and input digests in `sources` values (empty = unknown).
const UPGRADABLE_FORMAT: u32 = 2;
const STORE_FORMAT_KEY: &[u8] = b"store-format";
/// RocksDB info logs kept (`LOG` and `LOG.old.*`) and the size at which one is rolled.
pub const KEEP_LOG_FILES: usize = 4;
const MAX_LOG_FILE_BYTES: usize = 4 << 20;

/// Where an object is stored: `[collection code, shard of the subject, blake3 of the bytes]`.
/// The object's identity stays its [`ObjectId`]; the prefix only places it next to the
/// other objects of its export unit. The same bytes under two collections or subjects are
/// stored twice (rare: documents carry their own ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey([u8; 34]);

impl ObjectKey {
    pub fn new(c: Collection, subject: &str, id: &ObjectId) -> Self {
        Self::in_shard(c, shard_of(subject), id)
    }

    pub fn in_shard(c: Collection, shard: u8, id: &ObjectId) -> Self {
        let mut k = [0u8; 34];
        k[0] = c.code();
        k[1] = shard;
        k[2..].copy_from_slice(id.as_bytes());
        Self(k)
    }

    pub fn as_bytes(&self) -> &[u8; 34] {
        &self.0
    }

    pub fn id(&self) -> ObjectId {
        ObjectId::from_slice(&self.0[2..]).expect("34-byte key")
    }

    /// The object id of a raw `objects` key, when it has this shape.
    pub fn id_of_raw(key: &[u8]) -> Option<ObjectId> {
        (key.len() == 34).then(|| ObjectId::from_slice(&key[2..])).flatten()
    }
}

/// The kind of a Merkle node, first byte of its key in `nodes` (store format 2). Keeping
/// the kinds apart keeps the small subject nodes out of the blocks of the large (~60 KB at
/// 1M records) shard nodes: keyed by hash alone, reading one subject node read a whole
/// shard node's block with it, and a 1M-record delta read 4.9 GB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeTag {
    Subject = 0,
    Shard = 1,
    Kind = 2,
    State = 3,
}

impl NodeTag {
    /// The tag of an encoded [`Node`]: its first byte is postcard's variant index, in the
    /// enum's order (Subject, Shard, Kind, State).
    pub fn of_encoded(bytes: &[u8]) -> Option<Self> {
        match bytes.first()? {
            0 => Some(NodeTag::Subject),
            1 => Some(NodeTag::Shard),
            2 => Some(NodeTag::Kind),
            3 => Some(NodeTag::State),
            _ => None,
        }
    }
}

pub fn node_key(tag: NodeTag, h: &NodeHash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = tag as u8;
    k[1..].copy_from_slice(h.as_bytes());
    k
}

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
    /// Whether unreferenced writes bypassed the write-ahead log since the last flush
    /// (see [`Store::write_unreferenced`]); the next commit flushes them first.
    unlogged: std::sync::atomic::AtomicBool,
}

/// Unreferenced batches at least this large skip the write-ahead log: bulk object writes
/// would otherwise be written twice (log and table) before the commit that needs them.
const UNLOGGED_BATCH_BYTES: usize = 4 << 20;

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
        self.record_key_into(c, id, &mut k);
        k
    }
    /// [`Self::record_key`] written into `k` (cleared first), for loops over many records.
    pub fn record_key_into(&self, c: Collection, id: &str, k: &mut Vec<u8>) {
        k.clear();
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(c.name().as_bytes());
        k.push(0);
        k.extend_from_slice(id.as_bytes());
    }
    pub fn source_prefix(&self, source: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(source.as_bytes());
        k.push(0);
        k
    }
    pub fn source_key(&self, source: &str, c: Collection, id: &str) -> Vec<u8> {
        let mut k = Vec::new();
        self.source_key_into(source, c, id, &mut k);
        k
    }
    /// [`Self::source_key`] written into `k` (cleared first).
    pub fn source_key_into(&self, source: &str, c: Collection, id: &str, k: &mut Vec<u8>) {
        k.clear();
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(source.as_bytes());
        k.push(0);
        k.extend_from_slice(c.name().as_bytes());
        k.push(0);
        k.extend_from_slice(id.as_bytes());
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

/// A `--store` path that exists but is not a directory is named as such (RocksDB would
/// report it as an `Os { .. }` debug string).
fn refuse_non_directory(path: &Path) -> Result<(), StoreError> {
    if path.exists() && !path.is_dir() {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            message: "this is a file, not a store directory".into(),
        });
    }
    Ok(())
}

impl Store {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        refuse_non_directory(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // A small commit's data may stay in the memtable and its write-ahead log
        // (`Store::settle_small`); the next open replays the log without writing a table
        // file, so small changes do not pile up level-0 files that each trigger a
        // compaction rewriting the objects column family.
        let mut opts = opts
            .get_options_from_string("avoid_flush_during_recovery=true")
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.into_string(),
            })?;
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Bound the memtables of all column families together (RocksDB's default is
        // 64 MiB × 2 per family), so peak memory stays well under 1 GiB at 1M records.
        opts.set_db_write_buffer_size(128 << 20);
        // RocksDB's info log: it starts a new LOG (keeping the old one as LOG.old.*) at
        // every open, so an hourly command would add 8,760 files a year. Keep a few.
        opts.set_keep_log_file_num(KEEP_LOG_FILES);
        opts.set_max_log_file_size(MAX_LOG_FILE_BYTES);
        let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.into_string(),
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
            unlogged: std::sync::atomic::AtomicBool::new(false),
        };
        // The on-disk encoding of nodes and records is versioned; a store written by an
        // incompatible version is refused rather than misread.
        match store.get(CF_META, STORE_FORMAT_KEY)? {
            Some(v) if v == STORE_FORMAT.to_le_bytes() => {}
            Some(v) if v == UPGRADABLE_FORMAT.to_le_bytes() => store.write_format()?,
            Some(v) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    message: format!(
                        "store format {} is not supported by this version (format {STORE_FORMAT})",
                        v.first().copied().unwrap_or(0)
                    ),
                })
            }
            None => store.write_format()?,
        }
        // A staged ingest whose commit landed is finished before anything reads.
        staging::recover(&store)?;
        Ok(store)
    }

    fn write_format(&self) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.batch_put(&mut b, CF_META, STORE_FORMAT_KEY, &STORE_FORMAT.to_le_bytes());
        self.commit(b)
    }

    /// RocksDB's latest sequence number: it grows by one for every key written (put or
    /// delete, in any column family) and never otherwise, so an operation that leaves it
    /// unchanged wrote nothing (`status --json` shows it as `storeSequence`).
    pub fn sequence(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// Open an existing store; refuses to create one (for read-only commands).
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        refuse_non_directory(path)?;
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

    /// Flush the memtables and wait until RocksDB has no compaction pending or running.
    /// Writers (ingest, import, rebuild) call it before they return, so that the command
    /// after them — typically an export right after an ingest — neither runs the
    /// compaction the bulk write left behind in its own background threads nor waits for
    /// it when it closes the store (that made a 1M-record delta take 1.1 s instead of 0.6 s).
    pub fn settle(&self) -> Result<(), StoreError> {
        let mut o = rocksdb::WaitForCompactOptions::default();
        o.set_flush(true);
        Ok(self.db.wait_for_compact(&o)?)
    }

    /// After a small commit: wait for compactions already pending or running, but leave
    /// the memtables to the write-ahead log. Flushing them would add a level-0 file per
    /// command, and every fourth one triggers a compaction of the objects (hash-keyed, so
    /// each level-0 file overlaps the whole level below), which the small command would
    /// then pay for in full.
    pub fn settle_small(&self) -> Result<(), StoreError> {
        let mut o = rocksdb::WaitForCompactOptions::default();
        o.set_flush(false);
        Ok(self.db.wait_for_compact(&o)?)
    }

    /// Commit a batch durably (fsync'd WAL): the unit of atomicity. Unreferenced writes
    /// that bypassed the log are flushed to table files first, so that nothing committed
    /// can refer to data a crash would lose.
    pub fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.unlogged.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let mut fo = rocksdb::FlushOptions::default();
            fo.set_wait(true);
            let cfs: Vec<_> = ALL_CFS.iter().filter(|c| **c != CF_META).map(|c| self.cf(c)).collect();
            self.db.flush_cfs_opt(&cfs, &fo)?;
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Write immutable objects/nodes ahead of the commit that refers to them. Not
    /// fsync'd: the later synced commit orders them before it in the WAL.
    pub fn write_unreferenced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        Ok(self.db.write(batch)?)
    }

    /// Like [`Store::write_unreferenced`], for bulk data (a staged ingest): large batches
    /// skip the write-ahead log, which would carry every byte twice, and [`Store::commit`]
    /// flushes them to table files before it commits (a crash before that loses only
    /// unreferenced data). Small commits keep the log: a flush per command would add a
    /// level-0 file per command (see [`Store::settle_small`]).
    pub fn write_bulk(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.size_in_bytes() < UNLOGGED_BATCH_BYTES {
            return self.write_unreferenced(batch);
        }
        self.unlogged.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Flush memtables to disk so the write-ahead log need not be replayed on open.
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

    /// Visit the key/value pairs whose key starts with `prefix`, in key order, borrowed
    /// (no allocation per pair) and without filling the block cache: for one-pass scans
    /// of a whole index (ingest reads a source's index this way).
    pub fn for_each_in_prefix<E: From<StoreError>>(
        &self,
        cf: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        let mut end = prefix.to_vec();
        // Upper bound: the prefix with its last byte incremented (prefixes here end in NUL).
        if let Some(last) = end.last_mut() {
            *last = last.saturating_add(1);
        }
        ro.set_iterate_upper_bound(end);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        it.seek(prefix);
        while it.valid() {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) if k.starts_with(prefix) => f(k, v)?,
                _ => break,
            }
            it.next();
        }
        it.status().map_err(|e| E::from(StoreError::from(e)))
    }

    pub fn object(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_OBJECTS, key.as_bytes())
    }

    pub fn object_required(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        self.object(key)?
            .ok_or_else(|| StoreError::Corrupt(format!("object {} is missing", key.id())))
    }

    /// Many objects in one batched RocksDB lookup (order of `keys` kept). Export reads
    /// each object once, so the reads bypass the block cache; keys of one unit share
    /// their placement prefix, so RocksDB reads each data block once per batch.
    pub fn objects(&self, keys: &[ObjectKey]) -> Result<Vec<Option<rocksdb::DBPinnableSlice<'_>>>, StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        let mut sorted: Vec<(usize, &[u8])> = keys.iter().map(|k| &k.as_bytes()[..]).enumerate().collect();
        sorted.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let found = self
            .db
            .batched_multi_get_cf_opt(self.cf(CF_OBJECTS), sorted.iter().map(|(_, k)| *k), true, &ro);
        let mut out: Vec<Option<rocksdb::DBPinnableSlice<'_>>> = (0..keys.len()).map(|_| None).collect();
        for ((i, _), r) in sorted.into_iter().zip(found) {
            out[i] = r?;
        }
        Ok(out)
    }

    pub fn has_object(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        Ok(self.object(key)?.is_some())
    }

    /// Queue an object write.
    pub fn put_object(&self, b: &mut WriteBatch, key: &ObjectKey, bytes: &[u8]) {
        self.batch_put(b, CF_OBJECTS, key.as_bytes(), bytes);
    }

    pub fn node(&self, tag: NodeTag, h: &NodeHash) -> Result<Node, StoreError> {
        self.node_opt(tag, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} is missing")))
    }

    /// A node's stored bytes, pinned (decode with [`crate::merkle::NodeView`]).
    /// Read once by a diff, so the read bypasses the block cache.
    pub fn node_bytes(&self, tag: NodeTag, h: &NodeHash) -> Result<rocksdb::DBPinnableSlice<'_>, StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        self.db
            .get_pinned_cf_opt(self.cf(CF_NODES), node_key(tag, h), &ro)?
            .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} is missing")))
    }

    pub fn node_opt(&self, tag: NodeTag, h: &NodeHash) -> Result<Option<Node>, StoreError> {
        match self.get(CF_NODES, &node_key(tag, h))? {
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
        match self.node(NodeTag::State, root)? {
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

    /// Compact a whole column family, so that deleted entries give their space back.
    pub fn compact_cf(&self, cf: &str) {
        self.db.compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
    }

    /// Every key of a column family (for store verification).
    pub fn iter_cf<'a>(&'a self, cf: &str) -> impl Iterator<Item = KvResult> + 'a {
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::Start)
            .map(|r| r.map_err(StoreError::from))
    }
}

/// The options of one column family. Bulk loading (`bulk`) builds its SST files with the
/// same options, so ingested tables are indistinguishable from flushed ones.
pub(crate) fn cf_options(n: &str) -> Options {
    let mut o = Options::default();
    // Merkle nodes are mostly 32-byte hashes that do not compress; decompressing
    // their blocks was the largest cost of a delta's tree walk.
    let compression = if n == CF_NODES {
        rocksdb::DBCompressionType::None
    } else {
        rocksdb::DBCompressionType::Lz4
    };
    o.set_compression_type(compression);
    // Point lookups (objects, nodes, live records) would otherwise probe every
    // overlapping level-0 file's index and data block until one holds the key:
    // keys are hashes, so every L0 file overlaps. Bloom filters (10 bits per key,
    // ~1% false positives) skip them; without, a 1M-record delta read each node
    // block about twice.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&table);
    o
}

pub fn encode_entry(e: &RecordEntry) -> Vec<u8> {
    postcard::to_stdvec(e).expect("record entries always encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{KindNode, ShardNode, SubjectNode};

    #[test]
    fn node_tags_follow_the_encoded_variant() {
        let cases = [
            (
                Node::Subject(SubjectNode {
                    subject: "pkg:pypi/x".into(),
                    leaves: Vec::new(),
                }),
                NodeTag::Subject,
            ),
            (
                Node::Shard(ShardNode {
                    shard: 7,
                    subjects: Vec::new(),
                }),
                NodeTag::Shard,
            ),
            (Node::Kind(KindNode::empty(Collection::Consensus)), NodeTag::Kind),
            (Node::State(StateNode::empty("t")), NodeTag::State),
        ];
        for (node, tag) in cases {
            assert_eq!(NodeTag::of_encoded(&node.encode()), Some(tag));
        }
    }

    #[test]
    fn a_store_of_another_format_is_refused_and_left_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        {
            let store = Store::open(t.path()).unwrap();
            let mut b = WriteBatch::default();
            store.batch_put(&mut b, CF_META, STORE_FORMAT_KEY, &1u32.to_le_bytes());
            store.commit(b).unwrap();
        }
        let err = Store::open(t.path()).err().expect("format 1 is refused");
        assert_eq!(err.code(), "ERR_STORE_OPEN");
        assert!(err.to_string().contains("store format 1 is not supported"), "{err}");
        assert!(err.hint().contains("stellamirror rebuild"), "{}", err.hint());
        // Refusing did not rewrite the format marker.
        let db = DB::open_cf(&Options::default(), t.path(), ALL_CFS).unwrap();
        let v = db.get_cf(db.cf_handle(CF_META).unwrap(), STORE_FORMAT_KEY).unwrap();
        assert_eq!(v, Some(1u32.to_le_bytes().to_vec()));
    }

    #[test]
    fn a_format_2_store_is_upgraded_in_place() {
        let t = tempfile::tempdir().unwrap();
        {
            let cfs = ALL_CFS.iter().filter(|c| **c != CF_STAGING).copied();
            let mut o = Options::default();
            o.create_if_missing(true);
            o.create_missing_column_families(true);
            let db = DB::open_cf(&o, t.path(), cfs).unwrap();
            db.put_cf(db.cf_handle(CF_META).unwrap(), STORE_FORMAT_KEY, 2u32.to_le_bytes())
                .unwrap();
        }
        let store = Store::open(t.path()).unwrap();
        assert_eq!(
            store.get(CF_META, STORE_FORMAT_KEY).unwrap(),
            Some(STORE_FORMAT.to_le_bytes().to_vec())
        );
        assert!(store.first_key_from(CF_STAGING, b"").unwrap().is_none());
    }

    #[test]
    fn settle_leaves_no_flush_or_compaction_to_the_next_command() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let cf = store.cf(CF_OBJECTS);
        let prop = |name: &str| store.db.property_int_value_cf(cf, name).unwrap().unwrap();
        // Each settle flushes one level-0 file; the fourth triggers a compaction
        // (level0_file_num_compaction_trigger), which settle must wait for.
        for round in 0..6u32 {
            let mut b = store.new_batch();
            for i in 0..200u32 {
                let id = ObjectId::of(format!("{round}-{i}").as_bytes());
                store.put_object(
                    &mut b,
                    &ObjectKey::new(Collection::AdvisoriesRaw, "s", &id),
                    &[7u8; 512],
                );
            }
            store.commit(b).unwrap();
            store.settle().unwrap();
            assert_eq!(prop("rocksdb.num-immutable-mem-table"), 0, "round {round}");
            assert!(
                prop("rocksdb.cur-size-active-mem-table") < 4096,
                "round {round}: memtable flushed"
            );
            assert_eq!(prop("rocksdb.compaction-pending"), 0, "round {round}");
            assert_eq!(prop("rocksdb.num-running-compactions"), 0, "round {round}");
            assert!(prop("rocksdb.num-files-at-level0") < 4, "round {round}");
        }
    }

    #[test]
    fn object_keys_place_objects_by_collection_and_shard() {
        let id = ObjectId::of(b"doc");
        let k = ObjectKey::new(Collection::VexRaw, "pkg:oci/app", &id);
        assert_eq!(k.as_bytes()[0], Collection::VexRaw.code());
        assert_eq!(k.as_bytes()[1], shard_of("pkg:oci/app"));
        assert_eq!(k.id(), id);
        assert_eq!(ObjectKey::id_of_raw(k.as_bytes()), Some(id));
        assert_eq!(ObjectKey::id_of_raw(id.as_bytes()), None);
        let codes: std::collections::BTreeSet<u8> = Collection::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), Collection::ALL.len());
    }
}
