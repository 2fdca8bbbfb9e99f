//! Merkle hashing and node types. Every hash is domain-separated with blake3's
//! key-derivation mode, one context string per node type, so a leaf can never be
//! confused with a subject, shard, kind or state node.
//!
//! Invariants:
//! * leaves in a subject node are sorted by id and unique;
//! * subjects in a shard node are sorted by subject and unique; a subject with no
//!   leaves is absent;
//! * a kind node always has 256 shard roots (empty shards hash to [`empty_shard_root`]);
//! * a state node lists every [`Collection`] in [`Collection::ALL`] order.
//!
//! Nodes are stored under their hash, so a state root names an immutable snapshot.
use serde::{Deserialize, Serialize};

use crate::ids::{NodeHash, ObjectId};
use crate::model::{Collection, Leaf};

const CTX_LEAF: &str = "stellamirror 2026-11 merkle leaf v1";
const CTX_SUBJECT: &str = "stellamirror 2026-11 merkle subject v1";
const CTX_SHARD: &str = "stellamirror 2026-11 merkle shard v1";
const CTX_KIND: &str = "stellamirror 2026-11 merkle kind v1";
const CTX_STATE: &str = "stellamirror 2026-11 merkle state v1";

/// The node types, in the order of [`CONTEXTS`].
#[derive(Clone, Copy)]
enum Domain {
    Leaf,
    Subject,
    Shard,
    Kind,
    State,
}

const CONTEXTS: [&str; 5] = [CTX_LEAF, CTX_SUBJECT, CTX_SHARD, CTX_KIND, CTX_STATE];

/// A fresh hasher in key-derivation mode for `d`'s context. Deriving the context key hashes
/// the context string, and a leaf hash is one compression more: a hasher made per call
/// paid twice. The derived hashers are made once and cloned (a copy of their state).
fn hasher(d: Domain) -> blake3::Hasher {
    static HASHERS: std::sync::OnceLock<[blake3::Hasher; 5]> = std::sync::OnceLock::new();
    HASHERS.get_or_init(|| CONTEXTS.map(blake3::Hasher::new_derive_key))[d as usize].clone()
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn finish(h: blake3::Hasher) -> NodeHash {
    NodeHash(*h.finalize().as_bytes())
}

pub fn leaf_hash(id: &str, object: &ObjectId) -> NodeHash {
    let mut h = hasher(Domain::Leaf);
    put_str(&mut h, id);
    h.update(object.as_bytes());
    finish(h)
}

pub fn subject_root(subject: &str, leaves: &[Leaf]) -> NodeHash {
    let mut h = hasher(Domain::Subject);
    put_str(&mut h, subject);
    h.update(&(leaves.len() as u64).to_le_bytes());
    for l in leaves {
        h.update(leaf_hash(&l.id, &l.object).as_bytes());
    }
    finish(h)
}

pub fn shard_root(shard: u8, subjects: &[SubjectRef]) -> NodeHash {
    let mut h = hasher(Domain::Shard);
    h.update(&[shard]);
    h.update(&(subjects.len() as u64).to_le_bytes());
    for s in subjects {
        put_str(&mut h, &s.subject);
        h.update(s.root.as_bytes());
    }
    finish(h)
}

pub fn empty_shard_root(shard: u8) -> NodeHash {
    shard_root(shard, &[])
}

pub fn kind_root(collection: Collection, shards: &[NodeHash]) -> NodeHash {
    let mut h = hasher(Domain::Kind);
    put_str(&mut h, collection.name());
    for s in shards {
        h.update(s.as_bytes());
    }
    finish(h)
}

pub fn state_root(tenant: &str, kinds: &[KindRef]) -> NodeHash {
    let mut h = hasher(Domain::State);
    put_str(&mut h, tenant);
    h.update(&(kinds.len() as u64).to_le_bytes());
    for k in kinds {
        put_str(&mut h, k.collection.name());
        h.update(k.root.as_bytes());
    }
    finish(h)
}

/// A subject and its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectNode {
    pub subject: String,
    pub leaves: Vec<Leaf>,
}

impl SubjectNode {
    pub fn root(&self) -> NodeHash {
        subject_root(&self.subject, &self.leaves)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectRef {
    pub subject: String,
    pub root: NodeHash,
    /// Number of leaves under the subject (derived; not hashed).
    pub records: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardNode {
    pub shard: u8,
    pub subjects: Vec<SubjectRef>,
}

impl ShardNode {
    pub fn root(&self) -> NodeHash {
        shard_root(self.shard, &self.subjects)
    }
    pub fn records(&self) -> u64 {
        self.subjects.iter().map(|s| s.records).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindNode {
    pub collection: Collection,
    pub shards: Vec<NodeHash>,
    /// Derived counts (not hashed): records and subjects in this collection.
    pub records: u64,
    pub subjects: u64,
}

impl KindNode {
    /// Exactly 256 shard roots, one per shard byte.
    pub fn is_well_formed(&self) -> bool {
        self.shards.len() == 256
    }
    pub fn empty(collection: Collection) -> Self {
        Self {
            collection,
            shards: (0..=255u8).map(empty_shard_root).collect(),
            records: 0,
            subjects: 0,
        }
    }
    pub fn root(&self) -> NodeHash {
        kind_root(self.collection, &self.shards)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindRef {
    pub collection: Collection,
    pub root: NodeHash,
    pub records: u64,
    pub subjects: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateNode {
    pub tenant: String,
    pub kinds: Vec<KindRef>,
}

impl StateNode {
    pub fn empty(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            kinds: Collection::ALL
                .iter()
                .map(|c| {
                    let k = KindNode::empty(*c);
                    KindRef {
                        collection: *c,
                        root: k.root(),
                        records: 0,
                        subjects: 0,
                    }
                })
                .collect(),
        }
    }
    pub fn root(&self) -> NodeHash {
        state_root(&self.tenant, &self.kinds)
    }
    pub fn kind(&self, c: Collection) -> &KindRef {
        self.kinds
            .iter()
            .find(|k| k.collection == c)
            .expect("state node lists every collection")
    }
}

/// Borrowed views of stored nodes, decoded without copying a string: a delta's diff reads
/// thousands of shard and subject nodes (~1,000 subjects each at 1M records) and keeps
/// almost nothing of them. Field order mirrors the owned types (postcard is positional).
#[derive(Debug, Deserialize)]
pub struct LeafView<'a> {
    pub id: &'a str,
    pub object: ObjectId,
    pub modified: Option<i64>,
}

impl LeafView<'_> {
    pub fn to_leaf(&self) -> Leaf {
        Leaf {
            id: self.id.to_string(),
            object: self.object,
            modified: self.modified,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SubjectNodeView<'a> {
    pub subject: &'a str,
    #[serde(borrow)]
    pub leaves: Vec<LeafView<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct SubjectRefView<'a> {
    pub subject: &'a str,
    pub root: NodeHash,
    pub records: u64,
}

#[derive(Debug, Deserialize)]
pub struct ShardNodeView<'a> {
    pub shard: u8,
    #[serde(borrow)]
    pub subjects: Vec<SubjectRefView<'a>>,
}

/// [`Node`], borrowed.
#[derive(Debug, Deserialize)]
pub enum NodeView<'a> {
    #[serde(borrow)]
    Subject(SubjectNodeView<'a>),
    #[serde(borrow)]
    Shard(ShardNodeView<'a>),
    Kind(KindNode),
    State(StateNode),
}

impl<'a> NodeView<'a> {
    /// `None` when the bytes are not a well-formed node (see [`Node::decode`]).
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        postcard::from_bytes(bytes)
            .ok()
            .filter(|n: &Self| !matches!(n, NodeView::Kind(k) if !k.is_well_formed()))
    }
}

/// Any node, as stored (postcard-encoded) under its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    Subject(SubjectNode),
    Shard(ShardNode),
    Kind(KindNode),
    State(StateNode),
}

impl Node {
    pub fn hash(&self) -> NodeHash {
        match self {
            Node::Subject(n) => n.root(),
            Node::Shard(n) => n.root(),
            Node::Kind(n) => n.root(),
            Node::State(n) => n.root(),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("nodes always encode")
    }
    /// `None` when the bytes are not a well-formed node: besides postcard's own checks, a
    /// kind node must hold exactly one root per shard (readers index it by shard byte, so a
    /// corrupted store would otherwise panic instead of reporting corruption).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes)
            .ok()
            .filter(|n: &Self| !matches!(n, Node::Kind(k) if !k.is_well_formed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(id: &str, body: &[u8]) -> Leaf {
        Leaf {
            id: id.into(),
            object: ObjectId::of(body),
            modified: None,
        }
    }

    #[test]
    fn domain_separation_distinguishes_node_types() {
        let empty_subject = subject_root("", &[]);
        let empty_shard = shard_root(0, &[]);
        assert_ne!(empty_subject, empty_shard);
        assert_ne!(state_root("a", &[]), state_root("b", &[]));
    }

    #[test]
    fn subject_root_depends_on_every_leaf_and_not_on_modified_time() {
        let a = vec![leaf("x", b"1"), leaf("y", b"2")];
        let mut b = a.clone();
        b[1].object = ObjectId::of(b"3");
        assert_ne!(subject_root("s", &a), subject_root("s", &b));
        let mut c = a.clone();
        c[0].modified = Some(5);
        assert_eq!(subject_root("s", &a), subject_root("s", &c));
    }

    #[test]
    fn nodes_round_trip_through_encoding() {
        let n = Node::Subject(SubjectNode {
            subject: "pkg:pypi/x".into(),
            leaves: vec![leaf("A", b"a")],
        });
        assert_eq!(Node::decode(&n.encode()), Some(n));
        let e = Node::State(StateNode::empty("t"));
        assert_eq!(Node::decode(&e.encode()).unwrap().hash(), e.hash());
    }

    #[test]
    fn a_kind_node_without_one_root_per_shard_does_not_decode() {
        let good = KindNode::empty(Collection::VexRaw);
        assert!(Node::decode(&Node::Kind(good.clone()).encode()).is_some());
        for n in [0, 255, 257] {
            let mut bad = good.clone();
            bad.shards.resize(n, empty_shard_root(0));
            let bytes = Node::Kind(bad).encode();
            assert_eq!(Node::decode(&bytes), None, "{n} shard roots");
            assert!(NodeView::decode(&bytes).is_none(), "{n} shard roots (view)");
        }
    }

    #[test]
    fn borrowed_views_read_what_the_owned_nodes_wrote() {
        let leaves = vec![
            leaf("A", b"a"),
            Leaf {
                modified: Some(-3),
                ..leaf("B", b"b")
            },
        ];
        let bytes = Node::Subject(SubjectNode {
            subject: "pkg:pypi/x".into(),
            leaves: leaves.clone(),
        })
        .encode();
        let Some(NodeView::Subject(v)) = NodeView::decode(&bytes) else {
            panic!("subject view")
        };
        assert_eq!(v.subject, "pkg:pypi/x");
        assert_eq!(v.leaves.iter().map(LeafView::to_leaf).collect::<Vec<_>>(), leaves);
        let refs = vec![SubjectRef {
            subject: "pkg:pypi/x".into(),
            root: subject_root("pkg:pypi/x", &leaves),
            records: 2,
        }];
        let bytes = Node::Shard(ShardNode {
            shard: 9,
            subjects: refs.clone(),
        })
        .encode();
        let Some(NodeView::Shard(v)) = NodeView::decode(&bytes) else {
            panic!("shard view")
        };
        assert_eq!(
            (
                v.shard,
                v.subjects[0].subject,
                v.subjects[0].root,
                v.subjects[0].records
            ),
            (9, "pkg:pypi/x", refs[0].root, 2)
        );
    }
}
