//! Staged commits: record changes too large for one write batch, made atomic by a redo log
//! rolled forward under the store lock (store format 3).
//!
//! A large ingest writes its record and source-index changes chunk by chunk into the
//! `staging` column family instead of the live keyspace: key `tenant \0 tag ‖ live key`
//! (tag `r` records, `s` sources), value `[1] ‖ live value` (put) or `[0]` (delete). The
//! key is the live key itself, so a later chunk's change of a key overwrites an earlier
//! one's and staging always holds the final value of each key; [`StagedView`] reads
//! through it, so later chunks plan on top of earlier ones.
//!
//! The commit is one small synced batch: the tenant's new head plus the marker
//! `staged \0 tenant`. Then [`roll_forward`] copies the staged values into `records` and
//! `sources` and, in a second synced batch, drops the tenant's staging range and the
//! marker. Invariants:
//! * Before the marker commit nothing live has changed: a crash leaves the old head and
//!   records; the orphaned staging entries are dropped at the next open.
//! * After it, the head names the new state; the records follow at the latest when the
//!   store is next opened ([`recover`], called by `Store::open` before anything reads):
//!   rolling forward writes absolute values, so replaying it after a crash is harmless.
//! * The cost is proportional to the change (each staged key is written twice), not to
//!   the store.
use std::collections::BTreeMap;

use rocksdb::WriteBatch;

use super::{
    head_key, head_value, Keyspace, RecordEntry, Store, StoreError, CF_META, CF_RECORDS, CF_SOURCES, CF_STAGING,
};
use crate::ids::NodeHash;
use crate::model::{Collection, Tenant};

const TAG_RECORDS: u8 = b'r';
const TAG_SOURCES: u8 = b's';
const OP_DELETE: u8 = 0;
const OP_PUT: u8 = 1;
/// Staged values copied per write batch while rolling forward (bounded memory).
const ROLL_BATCH_BYTES: usize = 32 << 20;

fn marker_key(tenant: &str) -> Vec<u8> {
    format!("staged\0{tenant}").into_bytes()
}

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    format!("{tenant}\0").into_bytes()
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    *e.last_mut().expect("prefixes end with NUL") = 1;
    e
}

fn tag_of(cf: &str) -> u8 {
    if cf == CF_RECORDS {
        TAG_RECORDS
    } else {
        TAG_SOURCES
    }
}

fn staged_key(tenant: &str, tag: u8, live: &[u8]) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.push(tag);
    k.extend_from_slice(live);
    k
}

/// Where a plan's record and source-index changes go: a write batch on the live keyspace
/// (small commits) or the staging area (large ones).
pub trait RecordOps {
    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]);
    fn delete(&mut self, cf: &'static str, key: &[u8]);
}

/// Record changes written straight into a batch of the live keyspace.
pub struct LiveOps<'a> {
    pub store: &'a Store,
    pub batch: &'a mut WriteBatch,
}

impl RecordOps for LiveOps<'_> {
    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.store.batch_put(self.batch, cf, key, value);
    }
    fn delete(&mut self, cf: &'static str, key: &[u8]) {
        self.store.batch_delete(self.batch, cf, key);
    }
}

/// Record changes written into the staging area (invisible until [`commit_staged`]).
pub struct StagedOps<'a> {
    store: &'a Store,
    tenant: String,
    batch: WriteBatch,
}

impl<'a> StagedOps<'a> {
    pub fn new(store: &'a Store, tenant: &Tenant) -> Self {
        Self {
            store,
            tenant: tenant.as_str().to_string(),
            batch: WriteBatch::default(),
        }
    }
    /// Write the staged changes (bulk: the marker commit makes them durable first).
    pub fn write(self) -> Result<(), StoreError> {
        self.store.write_bulk(self.batch)
    }
}

impl RecordOps for StagedOps<'_> {
    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.push(OP_PUT);
        v.extend_from_slice(value);
        let k = staged_key(&self.tenant, tag_of(cf), key);
        self.store.batch_put(&mut self.batch, CF_STAGING, &k, &v);
    }
    fn delete(&mut self, cf: &'static str, key: &[u8]) {
        let k = staged_key(&self.tenant, tag_of(cf), key);
        self.store.batch_put(&mut self.batch, CF_STAGING, &k, &[OP_DELETE]);
    }
}

/// Read access to a tenant's records as a plan sees them.
pub trait RecordView {
    fn keyspace(&self) -> &Keyspace;
    fn record(&self, c: Collection, id: &str) -> Result<Option<RecordEntry>, StoreError>;
    /// Records of `c` whose id starts with `prefix`, in id order.
    fn records_with_prefix(&self, c: Collection, prefix: &str) -> Result<Vec<(String, RecordEntry)>, StoreError>;
}

fn decode(c: Collection, id: &str, b: &[u8]) -> Result<RecordEntry, StoreError> {
    postcard::from_bytes(b).map_err(|_| StoreError::Corrupt(format!("record {}/{id} does not decode", c.name())))
}

/// The live records of a tenant.
pub struct LiveView<'a> {
    pub store: &'a Store,
    pub keyspace: Keyspace,
}

impl<'a> LiveView<'a> {
    pub fn new(store: &'a Store, tenant: &Tenant) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            keyspace: store.keyspace(tenant)?,
        })
    }
}

impl RecordView for LiveView<'_> {
    fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }
    fn record(&self, c: Collection, id: &str) -> Result<Option<RecordEntry>, StoreError> {
        self.store.record_in(&self.keyspace, c, id)
    }
    fn records_with_prefix(&self, c: Collection, prefix: &str) -> Result<Vec<(String, RecordEntry)>, StoreError> {
        let base = self.keyspace.record_key(c, "").len();
        let key = self.keyspace.record_key(c, prefix);
        let mut out = Vec::new();
        for kv in self.store.scan_prefix(CF_RECORDS, &key) {
            let (k, v) = kv?;
            let id = String::from_utf8_lossy(&k[base..]).to_string();
            let e = decode(c, &id, &v)?;
            out.push((id, e));
        }
        Ok(out)
    }
}

/// The live records with the staged changes of an uncommitted large ingest on top.
pub struct StagedView<'a> {
    live: LiveView<'a>,
    tenant: String,
}

impl<'a> StagedView<'a> {
    pub fn new(store: &'a Store, tenant: &Tenant) -> Result<Self, StoreError> {
        Ok(Self {
            live: LiveView::new(store, tenant)?,
            tenant: tenant.as_str().to_string(),
        })
    }
}

impl RecordView for StagedView<'_> {
    fn keyspace(&self) -> &Keyspace {
        &self.live.keyspace
    }
    fn record(&self, c: Collection, id: &str) -> Result<Option<RecordEntry>, StoreError> {
        let live_key = self.live.keyspace.record_key(c, id);
        match self
            .live
            .store
            .get(CF_STAGING, &staged_key(&self.tenant, TAG_RECORDS, &live_key))?
        {
            None => self.live.record(c, id),
            Some(v) if v.first() == Some(&OP_PUT) => Ok(Some(decode(c, id, &v[1..])?)),
            Some(_) => Ok(None),
        }
    }
    fn records_with_prefix(&self, c: Collection, prefix: &str) -> Result<Vec<(String, RecordEntry)>, StoreError> {
        let mut merged: BTreeMap<String, Option<RecordEntry>> = self
            .live
            .records_with_prefix(c, prefix)?
            .into_iter()
            .map(|(id, e)| (id, Some(e)))
            .collect();
        let base = staged_key(&self.tenant, TAG_RECORDS, &self.live.keyspace.record_key(c, "")).len();
        let key = staged_key(&self.tenant, TAG_RECORDS, &self.live.keyspace.record_key(c, prefix));
        for kv in self.live.store.scan_prefix(CF_STAGING, &key) {
            let (k, v) = kv?;
            let id = String::from_utf8_lossy(&k[base..]).to_string();
            let e = match v.first() {
                Some(&OP_PUT) => Some(decode(c, &id, &v[1..])?),
                _ => None,
            };
            merged.insert(id, e);
        }
        Ok(merged.into_iter().filter_map(|(id, e)| Some((id, e?))).collect())
    }
}

/// Make a staged ingest visible: one synced batch moves the head and sets the marker
/// (with `extra` meta entries), then the staged values are rolled forward.
pub fn commit_staged(
    store: &Store,
    tenant: &Tenant,
    root: &NodeHash,
    ks: &Keyspace,
    extra: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut b = WriteBatch::default();
    store.batch_put(&mut b, CF_META, &head_key(tenant.as_str()), &head_value(root, ks));
    store.batch_put(&mut b, CF_META, &marker_key(tenant.as_str()), b"");
    for (k, v) in extra {
        store.batch_put(&mut b, CF_META, k, v);
    }
    store.commit(b)?;
    roll_forward(store, tenant.as_str())
}

/// Drop the staged changes of an ingest that will not commit (a refused input).
pub fn discard(store: &Store, tenant: &Tenant) -> Result<(), StoreError> {
    let p = tenant_prefix(tenant.as_str());
    let mut b = WriteBatch::default();
    b.delete_range_cf(store.cf(CF_STAGING), &p, &prefix_end(&p));
    store.write_unreferenced(b)
}

/// Copy a committed tenant's staged values into `records` and `sources`, then drop them
/// and the marker. Idempotent: the values are absolute.
fn roll_forward(store: &Store, tenant: &str) -> Result<(), StoreError> {
    let p = tenant_prefix(tenant);
    let mut b = WriteBatch::default();
    let mut size = 0usize;
    for kv in store.scan_prefix(CF_STAGING, &p) {
        let (k, v) = kv?;
        let live = &k[p.len() + 1..];
        let cf = match k[p.len()] {
            TAG_RECORDS => CF_RECORDS,
            TAG_SOURCES => CF_SOURCES,
            t => return Err(StoreError::Corrupt(format!("staged change with unknown tag {t}"))),
        };
        match v.first() {
            Some(&OP_PUT) => store.batch_put(&mut b, cf, live, &v[1..]),
            _ => store.batch_delete(&mut b, cf, live),
        }
        size += k.len() + v.len();
        if size >= ROLL_BATCH_BYTES {
            store.write_bulk(std::mem::take(&mut b))?;
            size = 0;
        }
    }
    store.write_bulk(b)?;
    let mut done = WriteBatch::default();
    done.delete_range_cf(store.cf(CF_STAGING), &p, &prefix_end(&p));
    store.batch_delete(&mut done, CF_META, &marker_key(tenant));
    store.commit(done)
}

/// Run at open, before anything reads: finish every committed staged ingest and drop the
/// staged changes of uncommitted ones (a crash before their marker commit).
pub fn recover(store: &Store) -> Result<(), StoreError> {
    if store.first_key_from(CF_STAGING, b"")?.is_none() {
        return Ok(());
    }
    let mut committed = Vec::new();
    for kv in store.scan_prefix(CF_META, b"staged\0") {
        let (k, _) = kv?;
        committed.push(String::from_utf8_lossy(&k[b"staged\0".len()..]).to_string());
    }
    for t in &committed {
        roll_forward(store, t)?;
    }
    // Everything left belongs to attempts that never committed.
    let mut b = WriteBatch::default();
    b.delete_range_cf(store.cf(CF_STAGING), b"".as_slice(), [0xffu8].as_slice());
    store.commit(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectId;
    use crate::store::encode_entry;

    fn entry(n: u8) -> RecordEntry {
        RecordEntry {
            subject: "pkg:x/p".into(),
            object: ObjectId([n; 32]),
            modified: None,
            source: "s".into(),
            derived: Vec::new(),
        }
    }

    /// A store with record `a` live, and staged changes: `a` deleted, `b` put.
    fn staged_store(dir: &std::path::Path) -> (Store, Tenant, Keyspace) {
        let store = Store::open(dir).unwrap();
        let t = Tenant::new("acme").unwrap();
        let ks = store.keyspace(&t).unwrap();
        let mut b = WriteBatch::default();
        store.batch_put(
            &mut b,
            CF_RECORDS,
            &ks.record_key(Collection::AdvisoriesRaw, "a"),
            &encode_entry(&entry(1)),
        );
        store.commit(b).unwrap();
        let mut ops = StagedOps::new(&store, &t);
        ops.delete(CF_RECORDS, &ks.record_key(Collection::AdvisoriesRaw, "a"));
        ops.put(
            CF_RECORDS,
            &ks.record_key(Collection::AdvisoriesRaw, "b"),
            &encode_entry(&entry(2)),
        );
        ops.write().unwrap();
        (store, t, ks)
    }

    fn live_ids(store: &Store, t: &Tenant) -> Vec<String> {
        let v = LiveView::new(store, t).unwrap();
        v.records_with_prefix(Collection::AdvisoriesRaw, "")
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn the_staged_view_reads_through_staged_changes_and_the_live_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let (store, t, _) = staged_store(d.path());
        let staged = StagedView::new(&store, &t).unwrap();
        assert_eq!(staged.record(Collection::AdvisoriesRaw, "a").unwrap(), None);
        assert_eq!(staged.record(Collection::AdvisoriesRaw, "b").unwrap(), Some(entry(2)));
        let ids: Vec<String> = staged
            .records_with_prefix(Collection::AdvisoriesRaw, "")
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["b"]);
        assert_eq!(live_ids(&store, &t), ["a"]);
    }

    #[test]
    fn staged_changes_without_their_commit_are_dropped_at_open() {
        let d = tempfile::tempdir().unwrap();
        let (store, t, _) = staged_store(d.path());
        drop(store);
        let store = Store::open(d.path()).unwrap();
        assert_eq!(live_ids(&store, &t), ["a"]);
        assert!(store.first_key_from(CF_STAGING, b"").unwrap().is_none());
    }

    #[test]
    fn a_commit_interrupted_before_its_roll_forward_is_finished_at_open() {
        let d = tempfile::tempdir().unwrap();
        let (store, t, ks) = staged_store(d.path());
        // The commit point alone (as if killed right after it).
        let root = NodeHash([7; 32]);
        let mut b = WriteBatch::default();
        store.batch_put(&mut b, CF_META, &head_key("acme"), &head_value(&root, &ks));
        store.batch_put(&mut b, CF_META, &marker_key("acme"), b"");
        store.commit(b).unwrap();
        assert_eq!(live_ids(&store, &t), ["a"]);
        drop(store);
        let store = Store::open(d.path()).unwrap();
        assert_eq!(live_ids(&store, &t), ["b"]);
        assert_eq!(store.head(&t).unwrap(), Some(root));
        assert!(store.get(CF_META, &marker_key("acme")).unwrap().is_none());
        assert!(store.first_key_from(CF_STAGING, b"").unwrap().is_none());
    }
}
