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

/// A 16-byte digest of what a leaf and its live record must agree on: matching the two
/// as sorted digests keeps memory at 16 bytes per record (a map of leaves cost hundreds
/// of megabytes at a million records).
fn leaf_digest(c: Collection, id: &str, subject: &str, object: &ObjectId) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    for part in [c.name().as_bytes(), id.as_bytes(), subject.as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(object.as_bytes());
    let mut d = [0u8; 16];
    d.copy_from_slice(&h.finalize().as_bytes()[..16]);
    d
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
    let mut leaves_seen: Vec<[u8; 16]> = Vec::new();
    let mut next = 0;
    for kv in store.scan_prefix(CF_NODES, &[NodeTag::Subject as u8]) {
        let (key, bytes) = kv?;
        let Some(h) = NodeHash::from_slice(&key[1..]) else {
            continue;
        };
        if let Some((missing, c)) = live.get(next).filter(|(r, _)| *r < h) {
            return Err(mismatch(format!("{} subject node {missing} is missing", c.name())));
        }
        while let Some((_, c)) = live.get(next).filter(|(r, _)| *r == h) {
            let node = match Node::decode(&bytes) {
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
                let full = checks == Checks::Full;
                if full && !store.has_object(&ObjectKey::new(*c, &node.subject, &l.object))? {
                    return Err(StoreVerifyError::ObjectMissing(
                        format!("{} record {:?}", c.name(), l.id),
                        l.object.to_prefixed(),
                    ));
                }
                leaves_seen.push(leaf_digest(*c, &l.id, &node.subject, &l.object));
            }
            next += 1;
        }
    }
    if let Some((missing, c)) = live.get(next) {
        return Err(mismatch(format!("{} subject node {missing} is missing", c.name())));
    }
    let live = live_records_match(store, tenant, leaves_seen, &mismatch)?;
    Ok(TenantCheck {
        state_root: head.to_prefixed(),
        records: live,
    })
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

/// The live records (current generation) must be exactly the tree's leaves.
fn live_records_match(
    store: &Store,
    tenant: &Tenant,
    mut leaves_seen: Vec<[u8; 16]>,
    mismatch: &dyn Fn(String) -> StoreVerifyError,
) -> Result<u64, StoreVerifyError> {
    leaves_seen.sort_unstable();
    let prefix = store.keyspace(tenant)?.prefix().to_vec();
    let mut live = 0u64;
    for kv in store.scan_prefix(CF_RECORDS, &prefix) {
        let (k, v) = kv?;
        let rest = std::str::from_utf8(&k[prefix.len()..]).unwrap_or_default();
        let (cname, id) = rest.split_once('\0').unwrap_or((rest, ""));
        let c =
            Collection::from_name(cname).ok_or_else(|| mismatch(format!("record key with unknown kind {cname:?}")))?;
        let e: EntryView<'_> =
            postcard::from_bytes(&v).map_err(|_| mismatch(format!("record {cname}/{id} does not decode")))?;
        if leaves_seen
            .binary_search(&leaf_digest(c, id, e.subject, &e.object))
            .is_err()
        {
            return Err(mismatch(format!(
                "live record {cname}/{id} is not in the Merkle tree as recorded"
            )));
        }
        live += 1;
    }
    if live != leaves_seen.len() as u64 {
        return Err(mismatch(format!(
            "{} leaves in the tree but {live} live records",
            leaves_seen.len()
        )));
    }
    Ok(live)
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
}
