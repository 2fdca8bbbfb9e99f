//! The reference check of the incremental collection (issue 20): which garbage candidates
//! (`gc_diff`) a root that is still referenced — a tenant head, a kept export, anything
//! [`super::roots`] counts — holds. Content can come back (a record reverted to an
//! earlier version has the same object hash; an older kept full export still holds what
//! later snapshots changed), so every candidate is looked up in every kept root at its
//! place in the tree:
//! * a state node is referenced when it is a kept root;
//! * a kind node when a kept root's collection has it;
//! * a shard node when a kept root's kind node (any collection: shard nodes are not hashed
//!   with their collection) lists it at its shard;
//! * a subject node when a kept root's shard node (any collection) lists it under its
//!   subject; a collection that does not hold the subject's first object cannot hold the
//!   subject node, so only collections that have it are looked in;
//! * an object when any subject node of a kept root's shard node (of its collection, at
//!   its shard) holds it, because an object key does not name its subject.
//!
//! Kept roots' nodes are read once per shard (shard by shard, so memory stays bounded by
//! one shard's nodes of the kept roots): the cost is the number of shards that hold
//! candidates times the kept roots' distinct shard nodes there.
use std::collections::{BTreeMap, BTreeSet};

use super::diff::{Candidates, SubjectCandidate};
use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, KindNode, NodeView};
use crate::model::Collection;
use crate::store::{NodeTag, ObjectKey, Store, StoreError};

/// The kept roots' state and kind nodes (small: one kind node per root and collection).
pub(super) struct Kept {
    roots: BTreeSet<NodeHash>,
    kind_roots: BTreeSet<(Collection, NodeHash)>,
    kinds: BTreeMap<Collection, Vec<KindNode>>,
}

impl Kept {
    pub fn load(store: &Store, roots: &[NodeHash]) -> Result<Self, StoreError> {
        let mut kind_roots = BTreeSet::new();
        let mut kinds: BTreeMap<Collection, Vec<KindNode>> = BTreeMap::new();
        for r in roots {
            for k in &store.state_at(r)?.kinds {
                if kind_roots.insert((k.collection, k.root)) {
                    kinds.entry(k.collection).or_default().push(store.kind_node(k)?);
                }
            }
        }
        Ok(Kept {
            roots: roots.iter().copied().collect(),
            kind_roots,
            kinds,
        })
    }

    /// The distinct non-empty shard roots the kept roots hold at shard `i` of `c`.
    fn shard_roots(&self, c: Collection, i: u8) -> BTreeSet<NodeHash> {
        let empty = empty_shard_root(i);
        self.kinds
            .get(&c)
            .into_iter()
            .flatten()
            .map(|k| k.shards[i as usize])
            .filter(|h| *h != empty)
            .collect()
    }
}

/// Remove from `cands` every candidate a kept root references; returns how many were kept.
pub(super) fn keep_referenced(store: &Store, kept: &Kept, cands: &mut Candidates) -> Result<u64, StoreError> {
    let before = cands.len();
    cands.states.retain(|h, _| !kept.roots.contains(h));
    cands.kinds.retain(|h, (c, _)| !kept.kind_roots.contains(&(*c, *h)));
    cands
        .shards
        .retain(|h, (i, _)| !kept.kinds.values().flatten().any(|k| k.shards[*i as usize] == *h));
    let mut by_shard: BTreeMap<u8, (Vec<NodeHash>, Vec<ObjectKey>)> = BTreeMap::new();
    for (h, s) in &cands.subjects {
        by_shard
            .entry(crate::model::shard_of(&s.subject))
            .or_default()
            .0
            .push(*h);
    }
    for k in &cands.objects {
        by_shard.entry(k.as_bytes()[1]).or_default().1.push(*k);
    }
    let (mut live_subjects, mut live_objects) = (BTreeSet::new(), BTreeSet::new());
    for (i, (subjects, objects)) in by_shard {
        check_shard(
            store,
            kept,
            cands,
            i,
            (&subjects, &objects),
            (&mut live_subjects, &mut live_objects),
        )?;
    }
    cands.subjects.retain(|h, _| !live_subjects.contains(h));
    cands.objects.retain(|k| !live_objects.contains(k));
    Ok((before - cands.len()) as u64)
}

/// The subject → root entries of one stored shard node, borrowed.
fn lookup<'a>(view: &'a NodeView<'a>, subject: &str) -> Option<&'a NodeHash> {
    let NodeView::Shard(s) = view else { return None };
    s.subjects
        .binary_search_by(|x| x.subject.cmp(subject))
        .ok()
        .map(|at| &s.subjects[at].root)
}

/// Which subject and object candidates of shard `i` the kept roots hold, into `live`.
fn check_shard(
    store: &Store,
    kept: &Kept,
    cands: &Candidates,
    i: u8,
    (subjects, objects): (&[NodeHash], &[ObjectKey]),
    (live_subjects, live_objects): (&mut BTreeSet<NodeHash>, &mut BTreeSet<ObjectKey>),
) -> Result<(), StoreError> {
    for c in Collection::ALL {
        let mut need_subjects: Vec<NodeHash> = Vec::new();
        for h in subjects.iter().filter(|h| !live_subjects.contains(*h)) {
            if may_hold(store, &cands.subjects[h], c, i)? {
                need_subjects.push(*h);
            }
        }
        let need_objects: Vec<ObjectKey> = objects
            .iter()
            .filter(|k| k.as_bytes()[0] == c.code() && !live_objects.contains(*k))
            .copied()
            .collect();
        if need_subjects.is_empty() && need_objects.is_empty() {
            continue;
        }
        // Every subject root the kept shard nodes list.
        let mut shard_subjects: BTreeSet<NodeHash> = BTreeSet::new();
        for h in kept.shard_roots(c, i) {
            let bytes = store.node_bytes(NodeTag::Shard, &h)?;
            let view = NodeView::decode(&bytes)
                .ok_or_else(|| StoreError::Corrupt(format!("Merkle node {h} does not decode")))?;
            for s in &need_subjects {
                if lookup(&view, &cands.subjects[s].subject) == Some(s) {
                    live_subjects.insert(*s);
                }
            }
            if let NodeView::Shard(s) = &view {
                if !need_objects.is_empty() {
                    shard_subjects.extend(s.subjects.iter().map(|x| x.root));
                }
            }
        }
        let need: BTreeSet<ObjectKey> = need_objects.into_iter().collect();
        live_objects.extend(held_anywhere(store, c, i, &shard_subjects, need)?);
    }
    Ok(())
}

/// Which of `rest` (objects of collection `c` at shard `i`) any subject node in `roots`
/// holds. An object key names its collection and shard, not its subject: an object that
/// moved to another subject or record id, or identical bytes under two subjects of one
/// shard (copies of an OpenVEX file without products, `ingest --subject`), are found
/// only by looking in every subject node. Each distinct one is read once.
fn held_anywhere(
    store: &Store,
    c: Collection,
    i: u8,
    roots: &BTreeSet<NodeHash>,
    mut rest: BTreeSet<ObjectKey>,
) -> Result<BTreeSet<ObjectKey>, StoreError> {
    let mut held = BTreeSet::new();
    for root in roots {
        if rest.is_empty() {
            break;
        }
        for l in &store.subject_node(root)?.leaves {
            let key = ObjectKey::in_shard(c, i, &l.object);
            if rest.remove(&key) {
                held.insert(key);
            }
        }
    }
    Ok(held)
}

/// Whether collection `c` can hold subject node `s` at shard `i`: it was found there, or
/// the store holds its first object under `c` (a root holding the node under `c` holds
/// its objects under `c`, and roots still referenced are complete).
fn may_hold(store: &Store, s: &SubjectCandidate, c: Collection, i: u8) -> Result<bool, StoreError> {
    if s.found_in.contains(&c) {
        return Ok(true);
    }
    store.has_object(&ObjectKey::in_shard(c, i, &s.first_object))
}
