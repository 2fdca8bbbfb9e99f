//! Incremental collection (issue 20): the garbage of pruned exports, found by diffing each
//! pruned snapshot against its successor (`gc_diff`) and checking every candidate against
//! the roots still referenced (`gc_check`), so one prune's collection costs what that
//! prune made unreferenced, not the store's size.
//!
//! Crash safety. `prune` records each pruned export's snapshot root in `meta`
//! (`gc \0 pending \0 tenant \0 runId` → root) in the same synced batch that marks the
//! export pruned. A collection deletes its garbage bottom-up — objects, then subject,
//! shard and kind nodes — in bounded synced batches, and the last batch deletes the state
//! nodes together with the pending entries it handled. Killed anywhere, the store holds
//! either the pending entries (the next `prune` or `gc` diffs them again; nodes already
//! swept are skipped, see `gc_diff`) or nothing left to do. Nothing referenced is ever
//! deleted, because deletion only follows the reference check, made under RocksDB's lock.
//!
//! Successor of a pending root: the next export of its tenant (by sequence) that is kept
//! or itself pending and whose state node is still stored, else the tenant's head. The
//! union of these diffs holds every node and object of the pending roots that the last
//! root of each chain (kept, or the head) lacks, which is every one of their garbage.
//!
//! Not found here: what no export ever referenced (a head replaced by a later ingest
//! before any export, objects of a killed ingest). `gc --full` (mark and sweep) collects
//! those; `gc` runs it when nothing is pending.
use std::collections::{BTreeMap, BTreeSet};

use super::check::{keep_referenced, Kept};
use super::diff::{diff_roots, has_state, Candidates};
use super::{compact_when_due, roots, GcMode, GcReport, SWEEP_BATCH_KEYS};
use crate::ids::NodeHash;
use crate::model::Tenant;
use crate::store::{node_key, NodeTag, ObjectKey, Store, StoreError, CF_META, CF_NODES, CF_OBJECTS};

const PENDING_PREFIX: &[u8] = b"gc\0pending\0";

/// A pruned export whose garbage is not collected yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRoot {
    pub tenant: String,
    pub run_id: String,
    pub root: NodeHash,
}

fn pending_key(tenant: &str, run_id: &str) -> Vec<u8> {
    let mut k = PENDING_PREFIX.to_vec();
    k.extend_from_slice(format!("{tenant}\0{run_id}").as_bytes());
    k
}

/// Record `root` (of export `run_id`) as pending collection, in the batch that prunes it.
pub fn batch_pending(store: &Store, b: &mut rocksdb::WriteBatch, tenant: &str, run_id: &str, root: &NodeHash) {
    store.batch_put(b, CF_META, &pending_key(tenant, run_id), root.as_bytes());
}

/// The roots waiting for collection.
pub fn pending(store: &Store) -> Result<Vec<PendingRoot>, StoreError> {
    let mut out = Vec::new();
    for kv in store.scan_prefix(CF_META, PENDING_PREFIX) {
        let (k, v) = kv?;
        let rest = String::from_utf8_lossy(&k[PENDING_PREFIX.len()..]).to_string();
        let (tenant, run_id) = rest
            .split_once('\0')
            .ok_or_else(|| StoreError::Corrupt(format!("pending collection entry {rest:?} is malformed")))?;
        let root = NodeHash::from_slice(&v)
            .ok_or_else(|| StoreError::Corrupt(format!("pending collection root of {run_id} is malformed")))?;
        out.push(PendingRoot {
            tenant: tenant.to_string(),
            run_id: run_id.to_string(),
            root,
        });
    }
    Ok(out)
}

/// Queue the deletion of every pending entry (after a full collection).
pub(super) fn batch_clear_pending(store: &Store, b: &mut rocksdb::WriteBatch) -> Result<(), StoreError> {
    for p in pending(store)? {
        store.batch_delete(b, CF_META, &pending_key(&p.tenant, &p.run_id));
    }
    Ok(())
}

/// Each pending root with its successor (see the module comment). `planned` exports count
/// as pending too (a dry run of a prune).
fn successors(
    store: &Store,
    work: &[PendingRoot],
    planned: &[(String, String)],
) -> Result<Vec<(NodeHash, Option<NodeHash>)>, StoreError> {
    let mut by_tenant: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in work {
        by_tenant.entry(&p.tenant).or_default().insert(&p.run_id);
    }
    let mut out = Vec::new();
    for (tenant, ids) in by_tenant {
        let t = Tenant::new(tenant).map_err(|e| StoreError::Corrupt(format!("pending tenant {tenant:?}: {e}")))?;
        let records = store.export_records(&t)?;
        let head = store.head(&t)?;
        for p in work.iter().filter(|p| p.tenant == tenant) {
            let after = records
                .iter()
                .position(|r| r.run_id == p.run_id)
                .map_or(records.len(), |i| i + 1);
            let mut next = head;
            for r in &records[after..] {
                let planned_here = planned.iter().any(|(pt, id)| pt == tenant && *id == r.run_id);
                let usable = (r.pruned.is_none() && !planned_here) || ids.contains(r.run_id.as_str());
                if usable && has_state(store, &r.source_root)? {
                    next = Some(r.source_root);
                    break;
                }
            }
            out.push((p.root, next));
        }
    }
    Ok(out)
}

/// The pending work plus the exports a dry-run prune plans to remove.
fn work_with_planned(store: &Store, planned: &[(String, String)]) -> Result<Vec<PendingRoot>, StoreError> {
    let mut work = pending(store)?;
    for (tenant, run_id) in planned {
        let t = Tenant::new(tenant).map_err(|e| StoreError::Corrupt(format!("tenant {tenant:?}: {e}")))?;
        if let Some(r) = store.export_record(&t, run_id)? {
            if !work.iter().any(|p| p.tenant == *tenant && p.run_id == *run_id) {
                work.push(PendingRoot {
                    tenant: tenant.clone(),
                    run_id: run_id.clone(),
                    root: r.source_root,
                });
            }
        }
    }
    Ok(work)
}

/// Collect the garbage of the pending roots (or, with `dry_run`, only count it, as if the
/// exports in `planned` were pruned and pending too).
pub fn collect_incremental(store: &Store, dry_run: bool, planned: &[(String, String)]) -> Result<GcReport, StoreError> {
    let started = std::time::Instant::now();
    let work = work_with_planned(store, planned)?;
    let mut report = GcReport {
        mode: GcMode::Incremental,
        pending_roots: work.len(),
        dry_run,
        ..Default::default()
    };
    if work.is_empty() {
        if !dry_run {
            settle(store)?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        report.maintenance_seconds = report.seconds;
        return Ok(report);
    }
    let live = roots(store, planned)?;
    report.roots = live.len();
    let mut cands = Candidates::default();
    for (old, new) in successors(store, &work, planned)? {
        diff_roots(store, &old, new.as_ref(), &mut cands)?;
    }
    report.candidates = cands.len() as u64;
    let (nodes_before, objects_before) = (cands.len() - cands.objects.len(), cands.objects.len());
    keep_referenced(store, &Kept::load(store, &live)?, &mut cands)?;
    report.nodes_kept = (nodes_before - (cands.len() - cands.objects.len())) as u64;
    report.objects_kept = (objects_before - cands.objects.len()) as u64;
    sweep(store, &cands, &work, dry_run, &mut report)?;
    let removed = report.nodes_removed + report.objects_removed;
    let maintenance = std::time::Instant::now();
    if !dry_run && removed > 0 {
        report.compacted = compact_when_due(store, removed, stored_keys(store))?;
    }
    if !dry_run {
        settle(store)?;
    }
    report.maintenance_seconds = maintenance.elapsed().as_secs_f64();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Write-ahead log bytes past which a collection flushes the memtables (see [`settle`]).
const WAL_FLUSH_BYTES: u64 = 32 << 20;

/// After every prune's collection, even one with nothing to collect: flush every column
/// family (so RocksDB can drop the write-ahead log files that the small commits of this
/// and earlier commands left) once the logs reach [`WAL_FLUSH_BYTES`], else only wait for
/// running compactions. A flush adds level-0 files whose compaction rewrites
/// much of the hash-keyed `objects` family, a cost of the store's size; paid once per
/// 32 MiB of logged writes instead of every hour, it stays a share of what was written,
/// and the logs stay a bounded part of the store.
fn settle(store: &Store) -> Result<(), StoreError> {
    let wal: u64 = std::fs::read_dir(store.path())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    match wal >= WAL_FLUSH_BYTES {
        true => store.settle(),
        false => store.settle_small(),
    }
}

/// RocksDB's estimate of the keys in `nodes` and `objects` (for the compaction policy).
fn stored_keys(store: &Store) -> u64 {
    [CF_NODES, CF_OBJECTS]
        .iter()
        .map(|cf| {
            store
                .db
                .property_int_value_cf(store.cf(cf), "rocksdb.estimate-num-keys")
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .sum()
}

/// Delete `keys` of `cf` in bounded synced batches.
fn delete_keys<K: AsRef<[u8]>>(store: &Store, cf: &str, keys: &[K]) -> Result<(), StoreError> {
    for chunk in keys.chunks(SWEEP_BATCH_KEYS) {
        let mut b = store.new_batch();
        for k in chunk {
            store.batch_delete(&mut b, cf, k.as_ref());
        }
        store.commit(b)?;
    }
    Ok(())
}

/// Count (and unless `dry_run` delete) the unreferenced candidates, bottom-up; the last
/// batch also removes the pending entries of `work`.
fn sweep(
    store: &Store,
    c: &Candidates,
    work: &[PendingRoot],
    dry_run: bool,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    // Objects: only those still stored (a killed collection may have deleted some).
    let mut objects: Vec<ObjectKey> = Vec::new();
    let keys: Vec<ObjectKey> = c.objects.iter().copied().collect();
    for chunk in keys.chunks(SWEEP_BATCH_KEYS) {
        for (k, v) in chunk.iter().zip(store.objects(chunk)?) {
            if let Some(v) = v {
                report.bytes_freed += (k.as_bytes().len() + v.len()) as u64;
                objects.push(*k);
            }
        }
    }
    report.objects_removed = objects.len() as u64;
    let level = |tag: NodeTag, nodes: Vec<(&NodeHash, usize)>, report: &mut GcReport| -> Vec<[u8; 33]> {
        report.nodes_removed += nodes.len() as u64;
        report.bytes_freed += nodes.iter().map(|(_, n)| (33 + n) as u64).sum::<u64>();
        nodes.into_iter().map(|(h, _)| node_key(tag, h)).collect()
    };
    let subjects = level(
        NodeTag::Subject,
        c.subjects.iter().map(|(h, s)| (h, s.bytes)).collect(),
        report,
    );
    let shards = level(
        NodeTag::Shard,
        c.shards.iter().map(|(h, (_, n))| (h, *n)).collect(),
        report,
    );
    let kinds = level(
        NodeTag::Kind,
        c.kinds.iter().map(|(h, (_, n))| (h, *n)).collect(),
        report,
    );
    let states = level(NodeTag::State, c.states.iter().map(|(h, n)| (h, *n)).collect(), report);
    if dry_run {
        return Ok(());
    }
    delete_keys(
        store,
        CF_OBJECTS,
        &objects.iter().map(|k| *k.as_bytes()).collect::<Vec<_>>(),
    )?;
    delete_keys(store, CF_NODES, &subjects)?;
    delete_keys(store, CF_NODES, &shards)?;
    delete_keys(store, CF_NODES, &kinds)?;
    // Last: the state nodes and the pending entries, in one batch.
    let mut b = store.new_batch();
    for k in &states {
        store.batch_delete(&mut b, CF_NODES, k);
    }
    for p in work {
        store.batch_delete(&mut b, CF_META, &pending_key(&p.tenant, &p.run_id));
    }
    store.commit(b)
}
