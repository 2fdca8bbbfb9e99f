//! Store garbage collection (issue 20): delete the objects and Merkle nodes that neither a
//! live state nor a kept export refers to.
//!
//! Two collectors:
//! * incremental ([`collect_incremental`], `gc_pending.rs`): what `prune` runs. The
//!   snapshots of the exports a prune removed are recorded as pending collection in the
//!   batch that prunes them; each is diffed against its successor and every candidate is
//!   checked against the roots still referenced. Its cost follows the garbage.
//! * full ([`collect`], this file): mark and sweep, `gc --full` (and `gc` when nothing is
//!   pending): a repair and audit of the whole store that also finds what no export
//!   referenced (a head replaced before it was exported, a killed ingest's objects). Its
//!   cost follows the store's size.
//!
//! Full mark and sweep. The marks are every node and object reachable from the roots: each
//! tenant's head and the snapshot (`sourceRoot`) of every export in the catalog that was
//! not pruned. The sweep deletes every other key of `objects`, then of `nodes` (whose keys
//! sort subject, shard, kind, state: bottom-up), in bounded synced batches, and last the
//! pending-collection entries (all garbage is then gone).
//!
//! Crash safety: the process holds RocksDB's lock for the whole collection, so no head or
//! catalog entry changes between mark and sweep, and the sweep deletes only keys no root
//! reaches. A collection killed at any point has deleted a subset of the garbage, bottom-up
//! (as the incremental collector expects of a partly swept root), and nothing else; the
//! next one finishes the job. Staging entries of an ingest that never committed are
//! dropped when the store is opened, before anything here runs.
//!
//! Subject and shard nodes are not hashed with their collection (nor tenant), so one node
//! can sit in several collections' trees; objects are keyed by collection and shard. The
//! walk therefore descends once per (collection, node), not once per node.
#[path = "gc_check.rs"]
mod check;
#[path = "gc_diff.rs"]
mod diff;
#[path = "gc_pending.rs"]
mod pending;

pub use pending::{batch_pending, collect_incremental, pending, PendingRoot};

use std::collections::HashSet;

use super::{node_key, NodeTag, ObjectKey, Store, StoreError, CF_NODES, CF_OBJECTS};
use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, StateNode};
use crate::model::Collection;

/// Keys deleted per synced write batch.
pub(super) const SWEEP_BATCH_KEYS: usize = 4096;

/// Which collector ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GcMode {
    /// Mark and sweep of the whole store.
    #[default]
    Full,
    /// The pending roots' diffs, checked against the kept roots.
    Incremental,
}

/// What a collection found and removed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub mode: GcMode,
    /// Roots kept (heads and kept export snapshots, deduplicated): marked from (full) or
    /// checked against (incremental).
    pub roots: usize,
    /// Full: every node and object still stored. Incremental: the candidates found
    /// still referenced.
    pub nodes_kept: u64,
    pub objects_kept: u64,
    /// Incremental: pruned roots whose garbage this collection handled, and the
    /// candidates their diffs listed.
    pub pending_roots: usize,
    pub candidates: u64,
    pub nodes_removed: u64,
    pub objects_removed: u64,
    /// Key and value bytes of the removed entries (before RocksDB compacts them away).
    pub bytes_freed: u64,
    pub dry_run: bool,
    /// Whether `nodes` and `objects` were compacted (see [`compact_when_due`]).
    pub compacted: bool,
    /// Wall time of the collection, and the part of it spent compacting and flushing
    /// RocksDB afterwards (the compaction, when due, rewrites both families: a cost of the
    /// store's size, paid once per 5% of it deleted; see [`compact_when_due`]).
    pub seconds: f64,
    pub maintenance_seconds: f64,
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

/// Full mark and sweep of the store's garbage (or, with `dry_run`, only count it, as if
/// the exports in `pruning` were pruned already).
pub fn collect(store: &Store, dry_run: bool, pruning: &[(String, String)]) -> Result<GcReport, StoreError> {
    let started = std::time::Instant::now();
    let roots = roots(store, pruning)?;
    let marks = mark(store, &roots)?;
    // Objects first, then nodes (bottom-up, see the module comment).
    let (objects_kept, objects_removed, object_bytes) = sweep(store, CF_OBJECTS, dry_run, |k| {
        k.len() != 34 || marks.objects.contains(k)
    })?;
    let (nodes_kept, nodes_removed, node_bytes) =
        sweep(store, CF_NODES, dry_run, |k| k.len() != 33 || marks.nodes.contains(k))?;
    let pending_roots = pending(store)?.len();
    if !dry_run && pending_roots > 0 {
        let mut b = store.new_batch();
        pending::batch_clear_pending(store, &mut b)?;
        store.commit(b)?;
    }
    let removed = nodes_removed + objects_removed;
    let mut compacted = false;
    let maintenance = std::time::Instant::now();
    if !dry_run && removed > 0 {
        compacted = compact_when_due(store, removed, nodes_kept + objects_kept)?;
        // Flush every column family, so RocksDB can drop the write-ahead log files that
        // small commits (`Store::settle_small`) left holding their changes.
        store.settle()?;
    }
    let maintenance_seconds = maintenance.elapsed().as_secs_f64();
    Ok(GcReport {
        mode: GcMode::Full,
        pending_roots,
        candidates: 0,
        seconds: started.elapsed().as_secs_f64(),
        maintenance_seconds,
        roots: roots.len(),
        nodes_kept,
        objects_kept,
        nodes_removed,
        objects_removed,
        bytes_freed: node_bytes + object_bytes,
        dry_run,
        compacted,
    })
}

/// Deleted keys since the last full compaction (`meta`, u64 LE).
const UNCOMPACTED_KEY: &[u8] = b"gc\0uncompacted";
/// Compact once the deletions since the last compaction reach this share of the kept keys.
const COMPACT_SHARE: u64 = 20;

/// Compact `nodes` and `objects` once the deletions not yet compacted away reach 1/20 of
/// the kept entries. Compaction rewrites the whole family (keys are hashes, so deletions
/// are spread over every table file): done every collection, a 1% churn would pay the
/// store's size each hour; done at 5%, the space held by deleted entries stays below ~5%
/// and the rewrite is paid once per ~5% of garbage.
pub(super) fn compact_when_due(store: &Store, removed: u64, kept: u64) -> Result<bool, StoreError> {
    let before = store
        .get(super::CF_META, UNCOMPACTED_KEY)?
        .and_then(|v| v.try_into().ok().map(u64::from_le_bytes))
        .unwrap_or(0);
    let pending = before + removed;
    let due = pending.saturating_mul(COMPACT_SHARE) >= kept;
    if due {
        store.compact_cf(CF_NODES);
        store.compact_cf(CF_OBJECTS);
    }
    let mut b = store.new_batch();
    let left: u64 = if due { 0 } else { pending };
    store.batch_put(&mut b, super::CF_META, UNCOMPACTED_KEY, &left.to_le_bytes());
    store.commit(b)?;
    Ok(due)
}
