//! Reading and updating the per-tenant Merkle tree.
//!
//! An update touches only the subjects, shards and kinds named in the change set:
//! the cost of recomputing the state root after k changed records is O(k) subject
//! rewrites plus one rewrite per dirty shard, independent of the store's size
//! (shard nodes hold their subjects, so a dirty shard costs O(subjects / 256)).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::{node_key, NodeTag, Store, StoreError, CF_NODES};
use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, KindNode, KindRef, Node, ShardNode, StateNode, SubjectNode, SubjectRef};
use crate::model::{shard_of, Collection, Leaf};

/// Pending changes, grouped the way the tree is: collection → subject → id.
/// `None` removes the record from that subject.
#[derive(Default, Debug, Clone)]
pub struct ChangeSet {
    pub by_collection: BTreeMap<Collection, BTreeMap<String, BTreeMap<String, Option<Leaf>>>>,
}

impl ChangeSet {
    pub fn upsert(&mut self, c: Collection, subject: &str, leaf: Leaf) {
        self.by_collection
            .entry(c)
            .or_default()
            .entry(subject.to_string())
            .or_default()
            .insert(leaf.id.clone(), Some(leaf));
    }
    pub fn delete(&mut self, c: Collection, subject: &str, id: &str) {
        self.by_collection
            .entry(c)
            .or_default()
            .entry(subject.to_string())
            .or_default()
            .insert(id.to_string(), None);
    }
    pub fn is_empty(&self) -> bool {
        self.by_collection.is_empty()
    }
    pub fn len(&self) -> usize {
        self.by_collection
            .values()
            .flat_map(|s| s.values())
            .map(|m| m.len())
            .sum()
    }
}

/// The changes to one subject: id → new leaf, or `None` to remove it.
pub(crate) type SubjectChanges = BTreeMap<String, Option<Leaf>>;
/// Encoded nodes to write, keyed by hash.
pub type NodeWrites = Vec<(NodeHash, Vec<u8>)>;

/// One dirty shard rewritten: shard, its old (records, subjects), new node, nodes to write.
pub(crate) type ShardUpdate = (u8, (u64, u64), ShardNode, NodeWrites);

/// Where a plan's leaf changes go: a [`ChangeSet`] applied at once, or a deferred tree
/// (`store::deferred`) applied after the last chunk of a staged ingest.
pub trait LeafSink {
    fn upsert(&mut self, c: Collection, subject: &str, leaf: Leaf);
    fn delete(&mut self, c: Collection, subject: &str, id: &str);
}

impl LeafSink for ChangeSet {
    fn upsert(&mut self, c: Collection, subject: &str, leaf: Leaf) {
        ChangeSet::upsert(self, c, subject, leaf)
    }
    fn delete(&mut self, c: Collection, subject: &str, id: &str) {
        ChangeSet::delete(self, c, subject, id)
    }
}

/// Fold one rewritten shard into its kind node: counts, shard root, nodes to write.
pub(crate) fn absorb_shard(kind: &mut KindNode, update: ShardUpdate, nodes: &mut NodeWrites) {
    let (shard, (old_records, old_subjects), node, written) = update;
    kind.records = kind.records - old_records + node.records();
    kind.subjects = kind.subjects - old_subjects + node.subjects.len() as u64;
    let root = node.root();
    kind.shards[shard as usize] = root;
    nodes.extend(written);
    if !node.subjects.is_empty() {
        nodes.push((root, Node::Shard(node).encode()));
    }
}

/// Point `state` at a rewritten kind node (written unless it is the empty one).
pub(crate) fn set_kind(state: &mut StateNode, kind: KindNode, nodes: &mut NodeWrites) {
    let c = kind.collection;
    let root = kind.root();
    let entry = state
        .kinds
        .iter_mut()
        .find(|k| k.collection == c)
        .expect("state lists every collection");
    entry.root = root;
    entry.records = kind.records;
    entry.subjects = kind.subjects;
    if empty_kind_roots().get(&c) != Some(&root) {
        nodes.push((root, Node::Kind(kind).encode()));
    }
}

/// The result of applying a change set: the new state and the nodes to write.
pub struct TreeUpdate {
    pub state: StateNode,
    pub nodes: Vec<(NodeHash, Vec<u8>)>,
}

fn empty_kind_roots() -> &'static BTreeMap<Collection, NodeHash> {
    static ROOTS: OnceLock<BTreeMap<Collection, NodeHash>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        Collection::ALL
            .iter()
            .map(|c| (*c, KindNode::empty(*c).root()))
            .collect()
    })
}

fn empty_shard_roots() -> &'static Vec<NodeHash> {
    static ROOTS: OnceLock<Vec<NodeHash>> = OnceLock::new();
    ROOTS.get_or_init(|| (0..=255u8).map(empty_shard_root).collect())
}

impl Store {
    pub fn kind_node(&self, kind: &KindRef) -> Result<KindNode, StoreError> {
        if empty_kind_roots().get(&kind.collection) == Some(&kind.root) {
            return Ok(KindNode::empty(kind.collection));
        }
        match self.node(NodeTag::Kind, &kind.root)? {
            Node::Kind(k) => Ok(k),
            _ => Err(StoreError::Corrupt(format!("{} is not a kind node", kind.root))),
        }
    }

    pub fn shard_node(&self, shard: u8, root: &NodeHash) -> Result<ShardNode, StoreError> {
        if empty_shard_roots()[shard as usize] == *root {
            return Ok(ShardNode {
                shard,
                subjects: Vec::new(),
            });
        }
        match self.node(NodeTag::Shard, root)? {
            Node::Shard(s) => Ok(s),
            _ => Err(StoreError::Corrupt(format!("{root} is not a shard node"))),
        }
    }

    pub fn subject_node(&self, root: &NodeHash) -> Result<SubjectNode, StoreError> {
        match self.node(NodeTag::Subject, root)? {
            Node::Subject(s) => Ok(s),
            _ => Err(StoreError::Corrupt(format!("{root} is not a subject node"))),
        }
    }

    /// Apply `changes` on top of `base`. Reads only the dirty part of the tree.
    pub fn apply_changes(&self, base: &StateNode, changes: &ChangeSet) -> Result<TreeUpdate, StoreError> {
        let mut state = base.clone();
        let mut nodes = Vec::new();
        for (c, subjects) in &changes.by_collection {
            let kref = base.kind(*c).clone();
            let mut kind = self.kind_node(&kref)?;
            let mut by_shard: BTreeMap<u8, Vec<(&String, &SubjectChanges)>> = BTreeMap::new();
            for (subject, ids) in subjects {
                by_shard.entry(shard_of(subject)).or_default().push((subject, ids));
            }
            // Each dirty shard node is read once; its old counts come back with the update.
            let results: Vec<Result<ShardUpdate, StoreError>> = by_shard
                .into_par_iter()
                .map(|(shard, dirty)| self.rewrite_shard(&kind, shard, &dirty))
                .collect();
            for r in results {
                absorb_shard(&mut kind, r?, &mut nodes);
            }
            set_kind(&mut state, kind, &mut nodes);
        }
        let root = state.root();
        nodes.push((root, Node::State(state.clone()).encode()));
        Ok(TreeUpdate { state, nodes })
    }

    /// Read one dirty shard of `kind` and rewrite it; its old counts come with the update.
    pub(crate) fn rewrite_shard(
        &self,
        kind: &KindNode,
        shard: u8,
        dirty: &[(&String, &SubjectChanges)],
    ) -> Result<ShardUpdate, StoreError> {
        let old = self.shard_node(shard, &kind.shards[shard as usize])?;
        let counts = (old.records(), old.subjects.len() as u64);
        let (new, written) = self.update_shard(old, dirty)?;
        Ok((shard, counts, new, written))
    }

    /// Rewrite the dirty subjects of one shard. `dirty` is sorted by subject (it comes
    /// from a map), as the shard's subjects are: one merge walk, without re-keying the
    /// shard's (at a million records, ~1,000) subjects into a map.
    fn update_shard(
        &self,
        mut shard: ShardNode,
        dirty: &[(&String, &SubjectChanges)],
    ) -> Result<(ShardNode, NodeWrites), StoreError> {
        debug_assert!(dirty.windows(2).all(|w| w[0].0 < w[1].0), "dirty subjects sorted");
        let mut written = Vec::new();
        let old = std::mem::take(&mut shard.subjects);
        let mut subjects = Vec::with_capacity(old.len() + dirty.len());
        let mut rest = old.into_iter().peekable();
        for (subject, ids) in dirty {
            while let Some(s) = rest.next_if(|s| s.subject.as_str() < subject.as_str()) {
                subjects.push(s);
            }
            let mut leaves: BTreeMap<String, Leaf> = match rest.next_if(|s| s.subject == **subject) {
                Some(r) => self
                    .subject_node(&r.root)?
                    .leaves
                    .into_iter()
                    .map(|l| (l.id.clone(), l))
                    .collect(),
                None => BTreeMap::new(),
            };
            for (id, change) in ids.iter() {
                match change {
                    Some(leaf) => {
                        leaves.insert(id.clone(), leaf.clone());
                    }
                    None => {
                        leaves.remove(id);
                    }
                }
            }
            if leaves.is_empty() {
                continue;
            }
            let node = SubjectNode {
                subject: (*subject).clone(),
                leaves: leaves.into_values().collect(),
            };
            let root = node.root();
            subjects.push(SubjectRef {
                subject: (*subject).clone(),
                root,
                records: node.leaves.len() as u64,
            });
            written.push((root, Node::Subject(node).encode()));
        }
        subjects.extend(rest);
        shard.subjects = subjects;
        Ok((shard, written))
    }

    /// Put nodes into a batch (they are immutable, keyed by hash).
    pub fn batch_nodes(&self, batch: &mut rocksdb::WriteBatch, nodes: &[(NodeHash, Vec<u8>)]) {
        for (h, b) in nodes {
            let tag = NodeTag::of_encoded(b).expect("nodes are encoded by Node::encode");
            batch.put_cf(self.cf(CF_NODES), node_key(tag, h), b);
        }
    }

    /// Every (subject, leaves) of one collection in a snapshot, shard by shard.
    pub fn collection_subjects(&self, state: &StateNode, c: Collection) -> Result<Vec<(u8, SubjectRef)>, StoreError> {
        let kind = self.kind_node(state.kind(c))?;
        let mut out = Vec::new();
        for (i, root) in kind.shards.iter().enumerate() {
            let shard = self.shard_node(i as u8, root)?;
            out.extend(shard.subjects.into_iter().map(|s| (i as u8, s)));
        }
        Ok(out)
    }
}
