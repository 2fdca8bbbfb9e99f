//! Store garbage collection (issue 20): delete the objects and Merkle nodes that neither a
//! live state nor a kept export refers to.
//!
//! Mark and sweep. The marks are every node and object reachable from the roots: each
//! tenant's head and the snapshot (`sourceRoot`) of every export in the catalog that was
//! not pruned. The sweep deletes every other key of `nodes` and `objects`, in bounded
//! synced batches.
//!
//! Crash safety: the process holds RocksDB's lock for the whole collection, so no head or
//! catalog entry changes between mark and sweep, and the sweep deletes only keys no root
//! reaches. A collection killed at any point has deleted a subset of the garbage and
//! nothing else; the next one finishes the job. Staging entries of an ingest that never
//! committed are dropped when the store is opened, before anything here runs.
//!
//! Subject and shard nodes are not hashed with their collection (nor tenant), so one node
//! can sit in several collections' trees; objects are keyed by collection and shard. The
//! walk therefore descends once per (collection, node), not once per node.
use std::collections::HashSet;

use super::{node_key, NodeTag, ObjectKey, Store, StoreError, CF_NODES, CF_OBJECTS};
use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, StateNode};
use crate::model::Collection;

/// Keys deleted per synced write batch.
const SWEEP_BATCH_KEYS: usize = 4096;

/// What a collection found and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Roots marked from (heads and kept export snapshots, deduplicated).
    pub roots: usize,
    pub nodes_kept: u64,
    pub objects_kept: u64,
    pub nodes_removed: u64,
    pub objects_removed: u64,
    /// Key and value bytes of the removed entries (before RocksDB compacts them away).
    pub bytes_freed: u64,
    pub dry_run: bool,
}

/// Everything reachable from the roots.
struct Marks {
    nodes: HashSet<[u8; 33]>,
    objects: HashSet<[u8; 34]>,
    /// (collection code, node key) pairs already descended.
    visited: HashSet<(u8, [u8; 33])>,
}

/// The roots a collection keeps: every tenant's head and every kept export's snapshot,
/// leaving out the exports in `pruning` ((tenant, run id) a planned prune removes).
pub fn roots(store: &Store, pruning: &[(String, String)]) -> Result<Vec<NodeHash>, StoreError> {
    let mut roots = Vec::new();
    for t in store.tenants()? {
        roots.extend(store.head(&t)?);
    }
    for r in store.all_export_records()? {
        let planned = pruning.iter().any(|(t, id)| t == r.tenant.as_str() && *id == r.run_id);
        if r.pruned.is_none() && !planned {
            roots.push(r.source_root);
        }
    }
    roots.sort();
    roots.dedup();
    Ok(roots)
}

fn mark_state(store: &Store, state: &StateNode, m: &mut Marks) -> Result<(), StoreError> {
    for k in &state.kinds {
        m.nodes.insert(node_key(NodeTag::Kind, &k.root));
        let kind = store.kind_node(k)?;
        for (i, shard_root) in kind.shards.iter().enumerate() {
            if *shard_root == empty_shard_root(i as u8) {
                continue;
            }
            let key = node_key(NodeTag::Shard, shard_root);
            m.nodes.insert(key);
            if !m.visited.insert((k.collection.code(), key)) {
                continue;
            }
            let shard = store.shard_node(i as u8, shard_root)?;
            for s in &shard.subjects {
                mark_subject(store, k.collection, &s.root, m)?;
            }
        }
    }
    Ok(())
}

fn mark_subject(store: &Store, c: Collection, root: &NodeHash, m: &mut Marks) -> Result<(), StoreError> {
    let key = node_key(NodeTag::Subject, root);
    m.nodes.insert(key);
    if !m.visited.insert((c.code(), key)) {
        return Ok(());
    }
    let node = store.subject_node(root)?;
    for l in &node.leaves {
        m.objects
            .insert(*ObjectKey::new(c, &node.subject, &l.object).as_bytes());
    }
    Ok(())
}

fn mark(store: &Store, roots: &[NodeHash]) -> Result<Marks, StoreError> {
    let mut m = Marks {
        nodes: HashSet::new(),
        objects: HashSet::new(),
        visited: HashSet::new(),
    };
    for root in roots {
        m.nodes.insert(node_key(NodeTag::State, root));
        let state = store.state_at(root)?;
        mark_state(store, &state, &mut m)?;
    }
    Ok(m)
}

/// Delete every key of `cf` that `keep` rejects; returns (kept, removed, bytes removed).
fn sweep(store: &Store, cf: &str, dry_run: bool, keep: impl Fn(&[u8]) -> bool) -> Result<(u64, u64, u64), StoreError> {
    let (mut kept, mut removed, mut bytes) = (0u64, 0u64, 0u64);
    let mut batch = store.new_batch();
    let mut pending = 0usize;
    for kv in store.iter_cf(cf) {
        let (k, v) = kv?;
        if keep(&k) {
            kept += 1;
            continue;
        }
        removed += 1;
        bytes += (k.len() + v.len()) as u64;
        if dry_run {
            continue;
        }
        store.batch_delete(&mut batch, cf, &k);
        pending += 1;
        if pending == SWEEP_BATCH_KEYS {
            store.commit(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    if pending > 0 {
        store.commit(batch)?;
    }
    Ok((kept, removed, bytes))
}

/// Collect the store's garbage (or, with `dry_run`, only count it, as if the exports in
/// `pruning` were pruned already).
pub fn collect(store: &Store, dry_run: bool, pruning: &[(String, String)]) -> Result<GcReport, StoreError> {
    let roots = roots(store, pruning)?;
    let marks = mark(store, &roots)?;
    let (nodes_kept, nodes_removed, node_bytes) =
        sweep(store, CF_NODES, dry_run, |k| k.len() != 33 || marks.nodes.contains(k))?;
    let (objects_kept, objects_removed, object_bytes) = sweep(store, CF_OBJECTS, dry_run, |k| {
        k.len() != 34 || marks.objects.contains(k)
    })?;
    if !dry_run && nodes_removed + objects_removed > 0 {
        store.compact_cf(CF_NODES);
        store.compact_cf(CF_OBJECTS);
    }
    Ok(GcReport {
        roots: roots.len(),
        nodes_kept,
        objects_kept,
        nodes_removed,
        objects_removed,
        bytes_freed: node_bytes + object_bytes,
        dry_run,
    })
}
