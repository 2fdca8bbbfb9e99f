//! Retention (issue 20): which exports of a channel to keep, and removing the others.
//!
//! Plan then apply. The plan keeps, of one (tenant, channel):
//! * the `keep_full` newest full exports of the channel's line (at least the newest one);
//! * every export created within `keep_within` of now;
//! * the newest export of the line and every export its base chain leads back through
//!   (what `rebuild` needs to reach the newest state from a kept full);
//! * the base chain of every kept delta (a kept delta is always usable).
//!
//! Applying marks the pruned exports in the catalog (one synced batch: they stop being GC
//! roots, their snapshots are recorded as pending collection for the incremental
//! collector (`store::gc`), and `--rerun` of them is refused as pruned) and then deletes
//! their bundle files.
//! File deletion runs over every pruned entry of the tenant whose file is still there, so
//! a prune killed between the two steps is finished by the next one.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::json;

use super::channel::{channel_of, definition, is_detached, Channel};
use super::ExportError;
use crate::audit::{AuditEvent, AuditSink};
use crate::bundle::format::PROFILE_FULL;
use crate::model::{format_time, parse_time, Tenant};
use crate::store::catalog::{export_key, ExportRecord};
use crate::store::{gc, Store, CF_META};

/// What to keep.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Newest full exports kept (0 is taken as 1: the newest full is never pruned).
    pub keep_full: usize,
    /// Exports created within this many seconds of `now` are kept.
    pub keep_within: Option<u64>,
    /// Unix seconds.
    pub now: i64,
}

/// One export the plan removes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub run_id: String,
    pub profile: String,
    pub created_at: String,
    /// The bundle file, when the catalog knows its folder.
    pub bundle: Option<PathBuf>,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrunePlan {
    pub tenant: String,
    pub channel: String,
    pub keep: Vec<String>,
    pub prune: Vec<Pruned>,
}

fn bundle_path(r: &ExportRecord) -> Option<PathBuf> {
    definition(r).out_dir.map(|d| d.join(&r.bundle_file))
}

/// The exports of `channel` to keep and to prune.
pub fn plan(store: &Store, tenant: &Tenant, channel: &Channel, ret: &Retention) -> Result<PrunePlan, ExportError> {
    let all = store.export_records(tenant)?;
    let by_id: BTreeMap<&str, &ExportRecord> = all.iter().map(|r| (r.run_id.as_str(), r)).collect();
    let candidates: Vec<&ExportRecord> = all
        .iter()
        .filter(|r| channel_of(r) == channel.as_str() && r.pruned.is_none())
        .collect();
    let line: Vec<&ExportRecord> = candidates
        .iter()
        .copied()
        .filter(|r| channel.is_adhoc() || !is_detached(r))
        .collect();
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    let fulls = line.iter().rev().filter(|r| r.profile == PROFILE_FULL);
    keep.extend(fulls.take(ret.keep_full.max(1)).map(|r| r.run_id.as_str()));
    if let Some(w) = ret.keep_within {
        let since = ret.now.saturating_sub(w as i64);
        let recent = candidates
            .iter()
            .filter(|r| parse_time(&r.created_at).is_some_and(|t| t >= since));
        keep.extend(recent.map(|r| r.run_id.as_str()));
    }
    keep.extend(line.last().map(|r| r.run_id.as_str()));
    // Close over base chains: a kept delta keeps what it applies on top of.
    let mut todo: Vec<&str> = keep.iter().copied().collect();
    while let Some(id) = todo.pop() {
        if let Some(base) = by_id.get(id).and_then(|r| r.base_export_id.as_deref()) {
            if keep.insert(base) {
                todo.push(base);
            }
        }
    }
    let prune = candidates
        .iter()
        .filter(|r| !keep.contains(r.run_id.as_str()))
        .map(|r| Pruned {
            run_id: r.run_id.clone(),
            profile: r.profile.clone(),
            created_at: r.created_at.clone(),
            bundle: bundle_path(r),
            bytes: r.bytes,
        })
        .collect();
    let keep = candidates
        .iter()
        .filter(|r| keep.contains(r.run_id.as_str()))
        .map(|r| r.run_id.clone())
        .collect();
    Ok(PrunePlan {
        tenant: tenant.to_string(),
        channel: channel.to_string(),
        keep,
        prune,
    })
}

/// What applying a plan removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub exports: u64,
    pub files_removed: u64,
    pub bytes_freed: u64,
}

/// Mark the plan's exports pruned, then delete the bundle files of every pruned export.
pub fn apply(store: &Store, plan: &PrunePlan, now: i64, audit: &dyn AuditSink) -> Result<PruneReport, ExportError> {
    let tenant = Tenant::new(&plan.tenant).map_err(ExportError::Usage)?;
    let at = format_time(now);
    let mut b = store.new_batch();
    for p in &plan.prune {
        if let Some(mut r) = store.export_record(&tenant, &p.run_id)? {
            r.pruned = Some(at.clone());
            let key = export_key(tenant.as_str(), &r.run_id);
            store.batch_put(&mut b, CF_META, &key, &serde_json::to_vec(&r).expect("json"));
            // Its snapshot's garbage is pending collection from the same commit on.
            gc::batch_pending(store, &mut b, tenant.as_str(), &r.run_id, &r.source_root);
        }
    }
    store.commit(b)?;
    let mut report = PruneReport {
        exports: plan.prune.len() as u64,
        ..Default::default()
    };
    for r in store.export_records(&tenant)?.iter().filter(|r| r.pruned.is_some()) {
        let Some(path) = bundle_path(r) else { continue };
        match std::fs::metadata(&path) {
            Ok(m) => {
                std::fs::remove_file(&path).map_err(|e| ExportError::io(&path, e))?;
                report.files_removed += 1;
                report.bytes_freed += m.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ExportError::io(&path, e)),
        }
    }
    if !plan.prune.is_empty() || report.files_removed > 0 {
        let ids: Vec<&str> = plan.prune.iter().map(|p| p.run_id.as_str()).collect();
        audit.record(&AuditEvent::new(
            "mirror.export.pruned",
            json!({"tenant": plan.tenant, "channel": plan.channel, "runIds": ids, "exports": report.exports, "filesRemoved": report.files_removed, "bytesFreed": report.bytes_freed, "kept": plan.keep}),
        ));
    }
    Ok(report)
}
