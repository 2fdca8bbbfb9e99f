//! `verify --store`: every object hashes to its key, every record points at a stored
//! object, and every tenant's Merkle tree recomputes and matches the live records.
//!
//! `rebuild` runs [`Checks::Tree`]: it has just hashed every object it wrote (each
//! object's key is derived from the bytes written, and a bulk load writes exactly the
//! bytes it hashed), so it re-reads and re-hashes the Merkle tree and matches it with the
//! live records, but does not re-read the objects. `verify --store` ([`Checks::Full`])
//! also re-hashes every object and checks every leaf's object is present (for a store
//! of unknown history: a disk incident, a release-critical export).
use std::collections::BTreeMap;

use crate::ids::{NodeHash, ObjectId};
use crate::merkle::{kind_root, shard_root, state_root, subject_root, KindRef, Node};
use crate::model::{Collection, Tenant};
use crate::store::{NodeTag, ObjectKey, Store, StoreError, CF_NODES, CF_OBJECTS, CF_RECORDS};

#[derive(Debug, thiserror::Error)]
pub enum StoreVerifyError {
    /// An object's bytes do not hash to its key.
    #[error("object {0} is corrupt: its bytes hash to {1}")]
    ObjectCorrupt(String, String),
    /// A record or leaf refers to an object that is not stored.
    #[error("{0} points at missing object {1}")]
    ObjectMissing(String, String),
    /// A Merkle node does not hash to its key, or roots do not recompute.
    #[error("tenant {tenant}: {what}")]
    TreeMismatch { tenant: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StoreVerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreVerifyError::ObjectCorrupt(..) => "ERR_STORE_OBJECT_CORRUPT",
            StoreVerifyError::ObjectMissing(..) => "ERR_STORE_OBJECT_MISSING",
            StoreVerifyError::TreeMismatch { .. } => "ERR_STATE_ROOT_MISMATCH",
            StoreVerifyError::Store(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        "the store is damaged: rebuild it from bundles with `stellamirror rebuild --bundles DIR --store NEW`".into()
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreReport {
    pub objects: u64,
    pub tenants: BTreeMap<String, TenantCheck>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCheck {
    pub state_root: String,
    pub records: u64,
}

/// How much of the store to re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// Objects re-hashed, every leaf's object present, tree and records.
    Full,
    /// Tree re-hashed and matched with the live records; objects not re-read.
    Tree,
}

pub fn verify_store(store: &Store) -> Result<StoreReport, StoreVerifyError> {
    verify_store_with(store, Checks::Full)
}

/// A digest of what a leaf and its live record must agree on (collection, id, subject,
/// object).
fn leaf_digest(c: Collection, id: &str, subject: &str, object: &ObjectId) -> [u8; 32] {
    // One call over one buffer: millions of small inputs, where a hasher's setup and
    // several updates cost more than the hashing.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.push(c.code());
        for part in [id.as_bytes(), subject.as_bytes()] {
            b.extend_from_slice(&(part.len() as u64).to_le_bytes());
            b.extend_from_slice(part);
        }
        b.extend_from_slice(object.as_bytes());
        *blake3::hash(&b).as_bytes()
    })
}

/// An order-independent digest of a multiset of leaves: the count and the sum of their
/// digests (two 128-bit halves, each modulo 2^128). The tree's leaves and the live records
/// are matched by comparing their sums in one pass each, with no memory per record; only
/// when the sums differ are they matched one by one to name the record that differs.
#[derive(Debug, Default, PartialEq, Eq)]
struct LeafSum {
    sum: [u128; 2],
    count: u64,
}

impl LeafSum {
    fn add(&mut self, d: &[u8; 32]) {
        let half = |i: usize| u128::from_le_bytes(d[i * 16..i * 16 + 16].try_into().expect("16 bytes"));
        self.sum[0] = self.sum[0].wrapping_add(half(0));
        self.sum[1] = self.sum[1].wrapping_add(half(1));
        self.count += 1;
    }
}

pub fn verify_store_with(store: &Store, checks: Checks) -> Result<StoreReport, StoreVerifyError> {
    let mut report = StoreReport::default();
    let objects = if checks == Checks::Full {
        Some(store.iter_cf(CF_OBJECTS))
    } else {
        None
    };
    for kv in objects.into_iter().flatten() {
        let (k, v) = kv?;
        let actual = ObjectId::of(&v);
        if ObjectKey::id_of_raw(&k) != Some(actual) {
            let named = ObjectKey::id_of_raw(&k).map_or_else(|| hex::encode(&k), |id| hex::encode(id.as_bytes()));
            return Err(StoreVerifyError::ObjectCorrupt(named, actual.to_prefixed()));
        }
        report.objects += 1;
    }
    for tenant in store.tenants()? {
        let check = verify_tenant(store, &tenant, checks)?;
        report.tenants.insert(tenant.as_str().to_string(), check);
    }
    Ok(report)
}

/// One tenant: the state, kind and shard nodes (a few thousand) are read by key; the
/// subject nodes (one per subject, hundreds of thousands) in one sequential pass over the
/// stored ones, matched with the live roots in hash order (point lookups of each cost
/// several times more). Every node must hash to its key, every root recompute, and the
/// live records must be exactly the tree's leaves.
fn verify_tenant(store: &Store, tenant: &Tenant, checks: Checks) -> Result<TenantCheck, StoreVerifyError> {
    let mismatch = |what: String| StoreVerifyError::TreeMismatch {
        tenant: tenant.as_str().to_string(),
        what,
    };
    let head = store.head(tenant)?.ok_or_else(|| mismatch("no head".into()))?;
    let state = store.state_at(&head)?;
    let mut kinds = Vec::new();
    let mut live: Vec<(NodeHash, Collection)> = Vec::new();
    for k in &state.kinds {
        let kind = store.kind_node(k)?;
        let mut shard_roots = Vec::with_capacity(256);
        for (i, sr) in kind.shards.iter().enumerate() {
            let shard = store.shard_node(i as u8, sr)?;
            live.extend(shard.subjects.iter().map(|s| (s.root, k.collection)));
            let root = shard_root(i as u8, &shard.subjects);
            if root != *sr {
                return Err(mismatch(format!(
                    "{} shard {i:02x} does not recompute",
                    k.collection.name()
                )));
            }
            shard_roots.push(root);
        }
        let kr = kind_root(k.collection, &shard_roots);
        if kr != k.root {
            return Err(mismatch(format!(
                "{} kind root does not recompute",
                k.collection.name()
            )));
        }
        kinds.push(KindRef { root: kr, ..k.clone() });
    }
    let sr = state_root(tenant.as_str(), &kinds);
    if sr != head {
        return Err(mismatch(format!("state root recomputes to {sr}, head is {head}")));
    }
    live.sort_unstable();
    // The two scans read different column families and share nothing: side by side.
    let (tree, records) = std::thread::scope(|sc| {
        let tree = sc.spawn(|| {
            let mut tree = LeafSum::default();
            tree_leaves(store, &live, checks, &mismatch, &mut |d| tree.add(d)).map(|_| tree)
        });
        let mut records = LeafSum::default();
        let scanned = live_records(store, tenant, &mismatch, &mut |_, _, d| {
            records.add(d);
            Ok(())
        });
        let tree = tree.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (tree, scanned.map(|_| records))
    });
    let (tree, records) = (tree?, records?);
    if tree != records {
        // Name what differs: the tree's digests, sorted, against each live record.
        let mut leaves = Vec::with_capacity(tree.count as usize);
        tree_leaves(store, &live, Checks::Tree, &mismatch, &mut |d| leaves.push(*d))?;
        leaves.sort_unstable();
        live_records(
            store,
            tenant,
            &mismatch,
            &mut |c, id, d| match leaves.binary_search(d) {
                Ok(_) => Ok(()),
                Err(_) => Err(mismatch(format!(
                    "live record {c}/{id} is not in the Merkle tree as recorded"
                ))),
            },
        )?;
        return Err(mismatch(format!(
            "{} leaves in the tree but {} live records",
            tree.count, records.count
        )));
    }
    Ok(TenantCheck {
        state_root: head.to_prefixed(),
        records: records.count,
    })
}

/// Every leaf of the live subject nodes, as a digest: one sequential pass over the stored
/// subject nodes, matched with the live roots (`live`, sorted) in hash order. Each node
/// must hash to its root; with [`Checks::Full`] each leaf's object must be stored.
fn tree_leaves(
    store: &Store,
    live: &[(NodeHash, Collection)],
    checks: Checks,
    mismatch: &Mismatch<'_>,
    visit: &mut dyn FnMut(&[u8; 32]),
) -> Result<(), StoreVerifyError> {
    let mut next = 0;
    store.for_each_in_prefix(CF_NODES, &[NodeTag::Subject as u8], |key, bytes| {
        let Some(h) = NodeHash::from_slice(&key[1..]) else {
            return Ok(());
        };
        if let Some((missing, c)) = live.get(next).filter(|(r, _)| *r < h) {
            return Err(mismatch(format!("{} subject node {missing} is missing", c.name())));
        }
        while let Some((_, c)) = live.get(next).filter(|(r, _)| *r == h) {
            let node = match Node::decode(bytes) {
                Some(Node::Subject(n)) => n,
                _ => return Err(mismatch(format!("{h} is not a subject node"))),
            };
            if subject_root(&node.subject, &node.leaves) != h {
                return Err(mismatch(format!(
                    "{} subject {:?} does not recompute",
                    c.name(),
                    node.subject
                )));
            }
            for l in &node.leaves {
                if checks == Checks::Full && !store.has_object(&ObjectKey::new(*c, &node.subject, &l.object))? {
                    return Err(StoreVerifyError::ObjectMissing(
                        format!("{} record {:?}", c.name(), l.id),
                        l.object.to_prefixed(),
                    ));
                }
                visit(&leaf_digest(*c, &l.id, &node.subject, &l.object));
            }
            next += 1;
        }
        Ok(())
    })?;
    if let Some((missing, c)) = live.get(next) {
        return Err(mismatch(format!("{} subject node {missing} is missing", c.name())));
    }
    Ok(())
}

/// [`crate::store::RecordEntry`], borrowed (fields in its order: postcard is positional); the record
/// scan reads every live record and keeps nothing of it.
#[derive(serde::Deserialize)]
struct EntryView<'a> {
    subject: &'a str,
    object: ObjectId,
    _modified: Option<i64>,
    _source: &'a str,
    _derived: Vec<(Collection, &'a str)>,
}

/// Names a tree that does not match (shared by the two scans, which run on two threads).
type Mismatch<'a> = dyn Fn(String) -> StoreVerifyError + Sync + 'a;

/// Receives a live record's collection name, id and leaf digest.
type RecordVisitor<'a> = &'a mut dyn FnMut(&str, &str, &[u8; 32]) -> Result<(), StoreVerifyError>;

/// Every live record (current generation): collection, id and leaf digest.
fn live_records(
    store: &Store,
    tenant: &Tenant,
    mismatch: &Mismatch<'_>,
    visit: RecordVisitor<'_>,
) -> Result<(), StoreVerifyError> {
    let prefix = store.keyspace(tenant)?.prefix().to_vec();
    store.for_each_in_prefix(CF_RECORDS, &prefix, |k, v| {
        let rest = std::str::from_utf8(&k[prefix.len()..]).unwrap_or_default();
        let (cname, id) = rest.split_once('\0').unwrap_or((rest, ""));
        let c =
            Collection::from_name(cname).ok_or_else(|| mismatch(format!("record key with unknown kind {cname:?}")))?;
        let e: EntryView<'_> =
            postcard::from_bytes(v).map_err(|_| mismatch(format!("record {cname}/{id} does not decode")))?;
        visit(cname, id, &leaf_digest(c, id, e.subject, &e.object))
    })
}

#[cfg(test)]
mod tests {
    //! Corruption injected below the engine's API: `verify_store` must name it.
    use std::path::PathBuf;

    use super::*;
    use crate::audit::NoProgress;
    use crate::ingest::{ingest, IngestOptions};
    use crate::model::Tenant;
    use crate::store::RecordEntry;

    fn sample_store(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("s")).unwrap();
        let opts = IngestOptions::new(Tenant::new("acme").unwrap(), "go");
        let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/osv/go-old.jsonl");
        ingest(&store, &[input], &opts, &NoProgress).unwrap();
        store
    }

    /// A live record and the raw key of its object.
    fn some_record(store: &Store) -> (RecordEntry, Vec<u8>) {
        let (_, v) = store.iter_cf(CF_RECORDS).next().unwrap().unwrap();
        let e: RecordEntry = postcard::from_bytes(&v).unwrap();
        let key = store
            .iter_cf(CF_OBJECTS)
            .map(|kv| kv.unwrap().0)
            .find(|k| ObjectKey::id_of_raw(k) == Some(e.object))
            .unwrap();
        (e, key.to_vec())
    }

    #[test]
    fn the_borrowed_entry_view_reads_what_a_record_entry_encodes() {
        let e = RecordEntry {
            subject: "pkg:golang/x".into(),
            object: ObjectId::of(b"doc"),
            modified: Some(-5),
            source: "go".into(),
            derived: vec![(Collection::AdvisoriesNormalized, "GO-1".into())],
        };
        let bytes = crate::store::encode_entry(&e);
        let v: EntryView<'_> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!((v.subject, v.object), (e.subject.as_str(), e.object));
        assert_eq!(
            (v._modified, v._source, v._derived),
            (Some(-5), "go", vec![(Collection::AdvisoriesNormalized, "GO-1")])
        );
    }

    #[test]
    fn a_clean_store_verifies() {
        let t = tempfile::tempdir().unwrap();
        let store = sample_store(t.path());
        let r = verify_store(&store).unwrap();
        assert_eq!(r.tenants["acme"].records, 78 * 2);
    }

    #[test]
    fn an_object_whose_bytes_changed_is_reported_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let store = sample_store(t.path());
        let (e, key) = some_record(&store);
        let mut b = store.new_batch();
        store.batch_put(&mut b, CF_OBJECTS, &key, b"{\"tampered\":true}");
        store.commit(b).unwrap();
        let err = verify_store(&store).unwrap_err();
        assert_eq!(err.code(), "ERR_STORE_OBJECT_CORRUPT");
        assert!(err.to_string().contains(&hex::encode(e.object.as_bytes())));
    }

    #[test]
    fn a_missing_object_is_reported_with_its_record() {
        let t = tempfile::tempdir().unwrap();
        let store = sample_store(t.path());
        let (_, key) = some_record(&store);
        let mut b = store.new_batch();
        store.batch_delete(&mut b, CF_OBJECTS, &key);
        store.commit(b).unwrap();
        let err = verify_store(&store).unwrap_err();
        assert_eq!(err.code(), "ERR_STORE_OBJECT_MISSING");
    }

    #[test]
    fn a_live_record_missing_from_the_tree_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let store = sample_store(t.path());
        let (mut e, _) = some_record(&store);
        e.subject = "pkg:golang/not-the-real-subject".into();
        let (k, _) = store.iter_cf(CF_RECORDS).next().unwrap().unwrap();
        let mut b = store.new_batch();
        store.batch_put(&mut b, CF_RECORDS, &k, &crate::store::encode_entry(&e));
        store.commit(b).unwrap();
        let err = verify_store(&store).unwrap_err();
        assert_eq!(err.code(), "ERR_STATE_ROOT_MISMATCH");
        assert!(err.to_string().contains("not in the Merkle tree"));
    }

    #[test]
    fn a_leaf_without_its_live_record_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let store = sample_store(t.path());
        let (k, _) = store.iter_cf(CF_RECORDS).next().unwrap().unwrap();
        let mut b = store.new_batch();
        store.batch_delete(&mut b, CF_RECORDS, &k);
        store.commit(b).unwrap();
        let err = verify_store_with(&store, Checks::Tree).unwrap_err();
        assert_eq!(err.code(), "ERR_STATE_ROOT_MISMATCH");
        assert!(
            err.to_string().contains("156 leaves in the tree but 155 live records"),
            "{err}"
        );
    }
}
