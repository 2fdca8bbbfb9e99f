//! The Merkle update of a staged ingest, deferred to one pass after its last chunk.
//!
//! Planning every chunk on the tree left by the previous one rewrote each dirty shard
//! (and every large subject, such as a package with thousands of advisories) once per
//! chunk, and wrote as many short-lived nodes: at a million records the nodes column
//! family took more writes than the objects. Instead, each chunk's leaf changes go into
//! an external sort ([`Spill`]) keyed `collection ‖ shard ‖ subject \0 id \0 seq`, and
//! [`DeferredTree::apply`] merges them into the base tree shard by shard, once: each
//! dirty subject and shard is read and written a single time, memory stays bounded by
//! the spill's buffer and one batch of shards.
//!
//! `seq` grows with every change, so of several changes to one leaf in a run (a record
//! changed by two chunks, or moved between subjects and back) the last one wins, as it
//! does when the chunks are applied one after the other.
use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::bulk::Spill;
use super::tree::{absorb_shard, set_kind, LeafSink, NodeWrites, ShardUpdate, SubjectChanges};
use super::{Store, StoreError};
use crate::ids::ObjectId;
use crate::merkle::{KindNode, Node, StateNode};
use crate::model::{shard_of, Collection, Leaf};

/// In-memory buffer of the spill before it writes a sorted run.
const SPILL_BYTES: usize = 32 << 20;
/// Leaf changes rewritten in parallel at once (a batch of consecutive shards).
const BATCH_CHANGES: usize = 64_000;
/// Nodes written per batch.
const NODE_BATCH: usize = 20_000;

const DELETE: u8 = 0;
const UPSERT: u8 = 1;
const UPSERT_MODIFIED: u8 = 2;

/// Leaf changes of a staged ingest, applied to the tree once (see the module comment).
pub struct DeferredTree {
    spill: Spill,
    seq: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    changes: u64,
}

fn collection_of(code: u8) -> Result<Collection, StoreError> {
    Collection::ALL
        .into_iter()
        .find(|c| c.code() == code)
        .ok_or_else(|| StoreError::Corrupt(format!("deferred tree: collection code {code}")))
}

/// One decoded spill pair: (collection, shard, subject, id) and the change.
struct Change<'a> {
    c: Collection,
    shard: u8,
    subject: &'a str,
    id: &'a str,
    leaf: Option<Leaf>,
}

fn decode<'a>(k: &'a [u8], v: &[u8]) -> Result<Change<'a>, StoreError> {
    let bad = || StoreError::Corrupt("deferred tree: malformed change".into());
    let body = k.get(2..k.len().checked_sub(9).ok_or_else(bad)?).ok_or_else(bad)?;
    let nul = body.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let subject = std::str::from_utf8(&body[..nul]).map_err(|_| bad())?;
    let id = std::str::from_utf8(&body[nul + 1..]).map_err(|_| bad())?;
    let leaf = match v.first() {
        Some(&DELETE) => None,
        Some(&tag @ (UPSERT | UPSERT_MODIFIED)) => {
            let object: [u8; 32] = v.get(1..33).and_then(|o| o.try_into().ok()).ok_or_else(bad)?;
            let modified = match tag {
                UPSERT => None,
                _ => Some(i64::from_le_bytes(
                    v.get(33..41).and_then(|m| m.try_into().ok()).ok_or_else(bad)?,
                )),
            };
            Some(Leaf {
                id: id.to_string(),
                object: ObjectId(object),
                modified,
            })
        }
        _ => return Err(bad()),
    };
    Ok(Change {
        c: collection_of(k[0])?,
        shard: k[1],
        subject,
        id,
        leaf,
    })
}

impl DeferredTree {
    /// Run files go into `dir` (a [`super::bulk::ScratchDir`]).
    pub fn new(dir: &Path) -> Self {
        Self {
            spill: Spill::new(dir, "leaves", SPILL_BYTES),
            seq: 0,
            key: Vec::new(),
            value: Vec::new(),
            changes: 0,
        }
    }

    /// Leaf changes held so far.
    pub fn len(&self) -> u64 {
        self.changes
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    fn put(&mut self, c: Collection, subject: &str, id: &str) -> Result<(), StoreError> {
        self.key.clear();
        self.key.extend_from_slice(&[c.code(), shard_of(subject)]);
        self.key.extend_from_slice(subject.as_bytes());
        self.key.push(0);
        self.key.extend_from_slice(id.as_bytes());
        self.key.push(0);
        self.key.extend_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        self.changes += 1;
        self.spill.put(&self.key, &self.value)
    }

    /// Merge every change into `base`; write the new nodes (`Store::write_bulk`) and
    /// return the new state (its state node is written too).
    pub fn apply(self, store: &Store, base: &StateNode) -> Result<StateNode, StoreError> {
        let mut merge = Merge {
            store,
            state: base.clone(),
            kind: None,
            batch: Vec::new(),
            batch_changes: 0,
            nodes: Vec::new(),
        };
        let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
        // Equal (collection, shard, subject, id) prefixes are adjacent, in seq order:
        // only the last of each run of equal prefixes counts.
        self.spill.for_each_sorted(|k, v| -> Result<(), StoreError> {
            let prefix = &k[..k.len() - 8];
            if let Some((lk, lv)) = &last {
                if lk[..lk.len() - 8] != *prefix {
                    merge.take(decode(lk, lv)?)?;
                }
            }
            let (lk, lv) = last.get_or_insert_with(Default::default);
            lk.clear();
            lk.extend_from_slice(k);
            lv.clear();
            lv.extend_from_slice(v);
            Ok(())
        })?;
        if let Some((lk, lv)) = &last {
            merge.take(decode(lk, lv)?)?;
        }
        merge.finish()
    }
}

impl DeferredTree {
    fn upsert(&mut self, c: Collection, subject: &str, leaf: &Leaf) -> Result<(), StoreError> {
        self.value.clear();
        self.value.push(if leaf.modified.is_some() {
            UPSERT_MODIFIED
        } else {
            UPSERT
        });
        self.value.extend_from_slice(leaf.object.as_bytes());
        if let Some(m) = leaf.modified {
            self.value.extend_from_slice(&m.to_le_bytes());
        }
        self.put(c, subject, &leaf.id)
    }

    fn delete(&mut self, c: Collection, subject: &str, id: &str) -> Result<(), StoreError> {
        self.value.clear();
        self.value.push(DELETE);
        self.put(c, subject, id)
    }
}

/// A [`LeafSink`] whose writes may fail (the spill writes run files).
pub struct DeferredSink<'a> {
    pub tree: &'a mut DeferredTree,
    pub error: Option<StoreError>,
}

impl LeafSink for DeferredSink<'_> {
    fn upsert(&mut self, c: Collection, subject: &str, leaf: Leaf) {
        if self.error.is_none() {
            self.error = self.tree.upsert(c, subject, &leaf).err();
        }
    }
    fn delete(&mut self, c: Collection, subject: &str, id: &str) {
        if self.error.is_none() {
            self.error = self.tree.delete(c, subject, id).err();
        }
    }
}

/// The shard-by-shard merge of [`DeferredTree::apply`].
struct Merge<'s> {
    store: &'s Store,
    state: StateNode,
    /// The kind node being rewritten.
    kind: Option<KindNode>,
    /// Dirty shards of `kind` not yet rewritten: shard → subject → changes.
    batch: Vec<(u8, BTreeMap<String, SubjectChanges>)>,
    batch_changes: usize,
    nodes: NodeWrites,
}

impl Merge<'_> {
    fn take(&mut self, ch: Change<'_>) -> Result<(), StoreError> {
        if self.kind.as_ref().is_some_and(|k| k.collection != ch.c) {
            self.finish_kind()?;
        }
        if self.kind.is_none() {
            self.kind = Some(self.store.kind_node(self.state.kind(ch.c))?);
        }
        if self.batch.last().is_none_or(|(s, _)| *s != ch.shard) {
            if self.batch_changes >= BATCH_CHANGES {
                self.rewrite_batch()?;
            }
            self.batch.push((ch.shard, BTreeMap::new()));
        }
        let (_, subjects) = self.batch.last_mut().expect("pushed above");
        subjects
            .entry(ch.subject.to_string())
            .or_default()
            .insert(ch.id.to_string(), ch.leaf);
        self.batch_changes += 1;
        Ok(())
    }

    /// Rewrite the batched shards in parallel and fold them into the kind node.
    fn rewrite_batch(&mut self) -> Result<(), StoreError> {
        let kind = self.kind.as_mut().expect("a batch belongs to a kind");
        let batch = std::mem::take(&mut self.batch);
        self.batch_changes = 0;
        let store = self.store;
        let k: &KindNode = kind;
        let results: Vec<Result<ShardUpdate, StoreError>> = batch
            .par_iter()
            .map(|(shard, subjects)| {
                let dirty: Vec<(&String, &SubjectChanges)> = subjects.iter().collect();
                store.rewrite_shard(k, *shard, &dirty)
            })
            .collect();
        for r in results {
            absorb_shard(kind, r?, &mut self.nodes);
        }
        self.write_nodes(NODE_BATCH)
    }

    fn finish_kind(&mut self) -> Result<(), StoreError> {
        self.rewrite_batch()?;
        let kind = self.kind.take().expect("finishing a kind");
        set_kind(&mut self.state, kind, &mut self.nodes);
        Ok(())
    }

    /// Write the pending nodes once at least `min` are held.
    fn write_nodes(&mut self, min: usize) -> Result<(), StoreError> {
        if self.nodes.len() < min.max(1) {
            return Ok(());
        }
        for chunk in self.nodes.chunks(NODE_BATCH) {
            let mut b = rocksdb::WriteBatch::default();
            self.store.batch_nodes(&mut b, chunk);
            self.store.write_bulk(b)?;
        }
        self.nodes.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<StateNode, StoreError> {
        if self.kind.is_some() {
            self.finish_kind()?;
        }
        let root = self.state.root();
        self.nodes.push((root, Node::State(self.state.clone()).encode()));
        self.write_nodes(0)?;
        Ok(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tree::ChangeSet;

    fn leaf(id: &str, n: u8, modified: Option<i64>) -> Leaf {
        Leaf {
            id: id.into(),
            object: ObjectId([n; 32]),
            modified,
        }
    }

    /// Chunks applied one after the other and the same chunks deferred to one merge give
    /// the same tree: later changes of a leaf win, moves between subjects included.
    #[test]
    fn deferred_changes_reach_the_state_of_chunks_applied_in_turn() {
        let t = tempfile::tempdir().unwrap();
        // Chunks in turn on one store, deferred on another: each holds only its own nodes.
        let store = Store::open(&t.path().join("deferred")).unwrap();
        let stepped = Store::open(&t.path().join("stepped")).unwrap();
        let c = Collection::AdvisoriesNormalized;
        let mut base = StateNode::empty("t");
        let mut first = ChangeSet::default();
        for i in 0..300u32 {
            first.upsert(c, &format!("pkg{}", i % 40), leaf(&format!("id{i}"), 1, Some(i.into())));
        }
        let write = |s: &Store, nodes: &NodeWrites| {
            let mut b = rocksdb::WriteBatch::default();
            s.batch_nodes(&mut b, nodes);
            s.write_bulk(b).unwrap();
        };
        let u = store.apply_changes(&base, &first).unwrap();
        write(&store, &u.nodes);
        write(&stepped, &u.nodes);
        base = u.state;
        // Three chunks: change, move to another subject and back, delete, add.
        let chunks: Vec<Vec<(&str, &str, Option<Leaf>)>> = vec![
            vec![("pkg1", "id1", Some(leaf("id1", 2, None))), ("pkg2", "id2", None)],
            vec![("pkg3", "id3", None), ("pkg9", "id3", Some(leaf("id3", 3, Some(7))))],
            vec![
                ("pkg9", "id3", None),
                ("pkg3", "id3", Some(leaf("id3", 4, None))),
                ("new", "x", Some(leaf("x", 5, None))),
            ],
        ];
        let scratch = super::super::bulk::ScratchDir::new(&store).unwrap();
        let mut tree = DeferredTree::new(scratch.path());
        let mut stepwise = base.clone();
        for chunk in &chunks {
            let mut cs = ChangeSet::default();
            let mut sink = DeferredSink {
                tree: &mut tree,
                error: None,
            };
            for (subject, id, l) in chunk {
                match l {
                    Some(l) => {
                        cs.upsert(c, subject, l.clone());
                        sink.upsert(c, subject, l.clone());
                    }
                    None => {
                        cs.delete(c, subject, id);
                        sink.delete(c, subject, id);
                    }
                }
            }
            assert!(sink.error.is_none());
            let u = stepped.apply_changes(&stepwise, &cs).unwrap();
            write(&stepped, &u.nodes);
            stepwise = u.state;
        }
        assert_eq!(tree.len(), 7);
        let deferred = tree.apply(&store, &base).unwrap();
        assert_eq!(deferred.root(), stepwise.root());
        assert_eq!(deferred.kind(c).records, 300);
        // Every node the new state names was written.
        let kind = store.kind_node(deferred.kind(c)).unwrap();
        for (i, root) in kind.shards.iter().enumerate() {
            for s in store.shard_node(i as u8, root).unwrap().subjects {
                store.subject_node(&s.root).unwrap();
            }
        }
    }
}
