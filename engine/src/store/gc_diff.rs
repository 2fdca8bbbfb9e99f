//! Garbage candidates of pruned roots (incremental collection, issue 20): a Merkle diff of
//! each pending root against its successor. Shared subtrees are skipped by hash, so the
//! cost follows what changed between the two roots, not the store's size.
//!
//! What the diff lists is only a candidate: a node or object of the old root that the new
//! root does not hold at the same place. It may still be referenced by another root (an
//! older kept full export, a later one where a record reverted to earlier content);
//! `gc_check` decides.
//!
//! Missing nodes: a collection killed part-way leaves its pending roots partly swept. The
//! sweep deletes bottom-up (objects, then subject, shard, kind and state nodes, each level
//! committed before the next), so a node of the old root that is gone had its garbage
//! below it deleted before it; the walk skips it. A node of the new root that is gone
//! (a pending successor partly swept) is taken as unknown: everything of the old root
//! below that point becomes a candidate (more checks, never fewer).
use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{NodeHash, ObjectId};
use crate::merkle::{empty_shard_root, KindNode, Node, ShardNode, StateNode, SubjectNode, SubjectRef};
use crate::model::Collection;
use crate::store::{node_key, NodeTag, ObjectKey, Store, StoreError, CF_NODES};

/// A subject node found in an old root: its subject, stored size, the collections it was
/// found under, and one of its objects (to rule out the other collections cheaply).
#[derive(Clone, Debug)]
pub(super) struct SubjectCandidate {
    pub subject: String,
    pub bytes: usize,
    pub found_in: BTreeSet<Collection>,
    pub first_object: ObjectId,
}

/// Everything the diffs found; keyed by hash (or object key), so a node found by several
/// pending roots is listed once.
#[derive(Default, Debug)]
pub(super) struct Candidates {
    /// State roots and their stored size.
    pub states: BTreeMap<NodeHash, usize>,
    pub kinds: BTreeMap<NodeHash, (Collection, usize)>,
    /// Shard nodes: shard byte and stored size.
    pub shards: BTreeMap<NodeHash, (u8, usize)>,
    pub subjects: BTreeMap<NodeHash, SubjectCandidate>,
    /// Objects the old side holds and the new side does not hold as they were.
    pub objects: BTreeSet<ObjectKey>,
}

impl Candidates {
    pub fn len(&self) -> usize {
        self.states.len() + self.kinds.len() + self.shards.len() + self.subjects.len() + self.objects.len()
    }
}

/// A stored node and its size, or `None` when it is not in the store.
fn read(store: &Store, tag: NodeTag, h: &NodeHash) -> Result<Option<(Node, usize)>, StoreError> {
    match store.get(CF_NODES, &node_key(tag, h))? {
        None => Ok(None),
        Some(b) => Node::decode(&b)
            .map(|n| Some((n, b.len())))
            .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} does not decode"))),
    }
}

fn empty_kind_root(c: Collection) -> NodeHash {
    KindNode::empty(c).root()
}

fn kind_at(store: &Store, c: Collection, root: &NodeHash) -> Result<Option<(KindNode, usize)>, StoreError> {
    if *root == empty_kind_root(c) {
        return Ok(Some((KindNode::empty(c), 0)));
    }
    Ok(match read(store, NodeTag::Kind, root)? {
        Some((Node::Kind(k), n)) => Some((k, n)),
        _ => None,
    })
}

fn shard_at(store: &Store, i: u8, root: &NodeHash) -> Result<Option<(ShardNode, usize)>, StoreError> {
    if *root == empty_shard_root(i) {
        let empty = ShardNode {
            shard: i,
            subjects: Vec::new(),
        };
        return Ok(Some((empty, 0)));
    }
    Ok(match read(store, NodeTag::Shard, root)? {
        Some((Node::Shard(s), n)) => Some((s, n)),
        _ => None,
    })
}

fn subject_at(store: &Store, root: &NodeHash) -> Result<Option<(SubjectNode, usize)>, StoreError> {
    Ok(match read(store, NodeTag::Subject, root)? {
        Some((Node::Subject(s), n)) => Some((s, n)),
        _ => None,
    })
}

fn state_at(store: &Store, root: &NodeHash) -> Result<Option<(StateNode, usize)>, StoreError> {
    Ok(match read(store, NodeTag::State, root)? {
        Some((Node::State(s), n)) => Some((s, n)),
        _ => None,
    })
}

/// Whether the state node of `root` is still stored (a successor must be).
pub(super) fn has_state(store: &Store, root: &NodeHash) -> Result<bool, StoreError> {
    Ok(store.get(CF_NODES, &node_key(NodeTag::State, root))?.is_some())
}

/// List what `old` holds and `new` does not (by place in the tree), into `out`.
pub(super) fn diff_roots(
    store: &Store,
    old: &NodeHash,
    new: Option<&NodeHash>,
    out: &mut Candidates,
) -> Result<(), StoreError> {
    let Some((old_state, n)) = state_at(store, old)? else {
        return Ok(()); // swept already
    };
    out.states.insert(*old, n);
    let new_state = match new {
        Some(h) => state_at(store, h)?.map(|(s, _)| s),
        None => None,
    };
    for k in &old_state.kinds {
        let new_root = new_state.as_ref().map(|s| s.kind(k.collection).root);
        if new_root == Some(k.root) || k.root == empty_kind_root(k.collection) {
            continue;
        }
        diff_kind(store, k.collection, &k.root, new_root.as_ref(), out)?;
    }
    Ok(())
}

fn diff_kind(
    store: &Store,
    c: Collection,
    old: &NodeHash,
    new: Option<&NodeHash>,
    out: &mut Candidates,
) -> Result<(), StoreError> {
    let Some((old_kind, n)) = kind_at(store, c, old)? else {
        return Ok(());
    };
    out.kinds.insert(*old, (c, n));
    let new_kind = match new {
        Some(h) => kind_at(store, c, h)?.map(|(k, _)| k),
        None => None,
    };
    for (i, old_shard) in old_kind.shards.iter().enumerate() {
        let i = i as u8;
        let new_shard = new_kind.as_ref().map(|k| k.shards[i as usize]);
        if new_shard == Some(*old_shard) || *old_shard == empty_shard_root(i) {
            continue;
        }
        diff_shard(store, c, i, old_shard, new_shard.as_ref(), out)?;
    }
    Ok(())
}

fn diff_shard(
    store: &Store,
    c: Collection,
    i: u8,
    old: &NodeHash,
    new: Option<&NodeHash>,
    out: &mut Candidates,
) -> Result<(), StoreError> {
    let Some((old_shard, n)) = shard_at(store, i, old)? else {
        return Ok(());
    };
    out.shards.insert(*old, (i, n));
    let new_subjects: BTreeMap<String, SubjectRef> = match new {
        Some(h) => shard_at(store, i, h)?.map(|(s, _)| s.subjects).unwrap_or_default(),
        None => Vec::new(),
    }
    .into_iter()
    .map(|s| (s.subject.clone(), s))
    .collect();
    // Where a candidate object may still be held (it moved to another subject or record
    // id, or identical bytes sit under another subject) is the reference check's question:
    // it looks in every subject node of the kept shard (`gc_check`).
    for s in &old_shard.subjects {
        let counterpart = new_subjects.get(&s.subject);
        if counterpart.is_some_and(|x| x.root == s.root) {
            continue;
        }
        diff_subject(store, c, i, s, counterpart, out)?;
    }
    Ok(())
}

/// List the subject node and the leaves the new side does not hold as they were.
fn diff_subject(
    store: &Store,
    c: Collection,
    i: u8,
    old: &SubjectRef,
    new: Option<&SubjectRef>,
    out: &mut Candidates,
) -> Result<(), StoreError> {
    let Some((old_node, n)) = subject_at(store, &old.root)? else {
        return Ok(());
    };
    let new_leaves = match new {
        Some(r) => subject_at(store, &r.root)?.map(|(s, _)| s.leaves).unwrap_or_default(),
        None => Vec::new(),
    };
    let Some(first) = old_node.leaves.first() else {
        return Ok(());
    };
    let entry = out.subjects.entry(old.root).or_insert_with(|| SubjectCandidate {
        subject: old.subject.clone(),
        bytes: n,
        found_in: BTreeSet::new(),
        first_object: first.object,
    });
    entry.found_in.insert(c);
    let new_side: BTreeMap<&str, &ObjectId> = new_leaves.iter().map(|l| (l.id.as_str(), &l.object)).collect();
    for l in &old_node.leaves {
        if new_side.get(l.id.as_str()) == Some(&&l.object) {
            continue;
        }
        out.objects.insert(ObjectKey::in_shard(c, i, &l.object));
    }
    Ok(())
}
