//! Retention commands: `prune` (a channel's old exports, then the store's garbage) and `gc`.
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use stellamirror_engine::audit::{AuditEvent, AuditSink, StoreAuditLog};
use stellamirror_engine::export::channel::Channel;
use stellamirror_engine::export::prune::{self, Retention};
use stellamirror_engine::model::Tenant;
use stellamirror_engine::store::gc::{self, GcMode, GcReport};
use stellamirror_engine::store::Store;

use crate::failure::Failure;
use crate::freshness::ClockArgs;

#[derive(Args)]
pub struct PruneArgs {
    /// The producer store.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
    /// Prune this tenant only (default: every tenant of the store).
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: Option<String>,
    /// The channel whose exports are pruned.
    #[arg(long, default_value = "default", value_name = "NAME", env = "STELLAMIRROR_CHANNEL")]
    channel: String,
    /// Keep the N newest full exports (the newest one is always kept).
    #[arg(long, default_value_t = 1, value_name = "N", env = "STELLAMIRROR_KEEP_FULL")]
    keep_full: usize,
    /// Keep every export created within this long before now (units w d h m s, e.g. 24h).
    #[arg(long, value_name = "DURATION", value_parser = crate::freshness::duration_arg, env = "STELLAMIRROR_KEEP_WITHIN")]
    keep_within: Option<u64>,
    /// Print the plan (and the garbage a collection would remove); change nothing.
    #[arg(long, env = "STELLAMIRROR_DRY_RUN")]
    dry_run: bool,
    /// Do not collect the store's garbage afterwards.
    #[arg(long, env = "STELLAMIRROR_NO_GC")]
    no_gc: bool,
    #[command(flatten)]
    clock: ClockArgs,
}

#[derive(Args)]
pub struct GcArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
    /// Count the garbage; delete nothing.
    #[arg(long, env = "STELLAMIRROR_DRY_RUN")]
    dry_run: bool,
    /// Mark and sweep the whole store (a repair and audit: also finds what no export
    /// referenced) instead of collecting what earlier prunes left pending. Without it,
    /// `gc` collects the pending work, or runs the full collection when nothing is pending.
    #[arg(long, env = "STELLAMIRROR_GC_FULL")]
    full: bool,
}

pub(crate) fn print_gc(r: &GcReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let removed = format!(
        "store: {verb} {} nodes and {} objects ({} bytes)",
        r.nodes_removed, r.objects_removed, r.bytes_freed
    );
    match r.mode {
        GcMode::Full => out!(
            "{removed}; kept {} nodes and {} objects of {} roots (full collection, {:.2} s{})",
            r.nodes_kept,
            r.objects_kept,
            r.roots,
            r.seconds,
            maintenance(r)
        ),
        GcMode::Incremental => out!(
            "{removed} of {} pruned snapshots; {} of {} candidates still referenced by {} roots ({:.2} s{})",
            r.pending_roots,
            r.nodes_kept + r.objects_kept,
            r.candidates,
            r.roots,
            r.seconds,
            maintenance(r)
        ),
    }
}

/// ", of which N s compaction" when RocksDB was compacted.
fn maintenance(r: &GcReport) -> String {
    match r.compacted {
        true => format!(", of which {:.2} s compaction", r.maintenance_seconds),
        false => String::new(),
    }
}

/// Which collector a command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Collector {
    Full,
    Incremental,
}

/// Collect garbage and audit it (`mirror.store.collected`).
fn collect(store: &Store, how: Collector, dry_run: bool, pruning: &[(String, String)]) -> Result<GcReport, Failure> {
    let r = match how {
        Collector::Full => gc::collect(store, dry_run, pruning)?,
        Collector::Incremental => gc::collect_incremental(store, dry_run, pruning)?,
    };
    if !dry_run {
        let detail = serde_json::to_value(&r).unwrap_or_default();
        StoreAuditLog::new(store.path()).record(&AuditEvent::new("mirror.store.collected", detail));
    }
    Ok(r)
}

/// What `prune` planned, removed and collected.
pub(crate) type Pruning = (Vec<prune::PrunePlan>, Vec<prune::PruneReport>, Option<GcReport>);

/// Plan (and unless `dry_run` apply) the retention of `channel` on `tenants`, then collect
/// the store's garbage unless `no_gc`.
pub(crate) fn prune_tenants(
    store: &Store,
    tenants: &[Tenant],
    channel: &Channel,
    ret: &Retention,
    dry_run: bool,
    no_gc: bool,
) -> Result<Pruning, Failure> {
    let ex = |e: stellamirror_engine::export::ExportError| Failure::new(e.code(), e.to_string(), e.hint());
    let audit = StoreAuditLog::new(store.path());
    let mut plans = Vec::new();
    let mut reports = Vec::new();
    for t in tenants {
        let plan = prune::plan(store, t, channel, ret).map_err(ex)?;
        if !dry_run {
            reports.push(prune::apply(store, &plan, ret.now, &audit).map_err(ex)?);
        }
        plans.push(plan);
    }
    // The collection is incremental: the snapshots this and earlier prunes removed (a dry
    // run counts the garbage as if the planned exports were pruned).
    let planned: Vec<(String, String)> = match dry_run {
        true => plans
            .iter()
            .flat_map(|p| p.prune.iter().map(|x| (p.tenant.clone(), x.run_id.clone())))
            .collect(),
        false => Vec::new(),
    };
    let gc = (!no_gc)
        .then(|| collect(store, Collector::Incremental, dry_run, &planned))
        .transpose()?;
    Ok((plans, reports, gc))
}

pub fn prune_cmd(a: PruneArgs, json: bool) -> Result<i32, Failure> {
    let store = Store::open_existing(&a.store)?;
    let channel =
        Channel::new(&a.channel).map_err(|m| Failure::new("ERR_USAGE", m, "see `stellamirror prune --help`"))?;
    let tenants = match &a.tenant {
        Some(t) => vec![crate::known_tenant(&store, t)?],
        None => store.tenants()?,
    };
    let now = a.clock.clock()?.now;
    let ret = Retention {
        keep_full: a.keep_full,
        keep_within: a.keep_within,
        now,
    };
    let (plans, reports, gc) = prune_tenants(&store, &tenants, &channel, &ret, a.dry_run, a.no_gc)?;
    if json {
        out!(
            "{}",
            json!({"dryRun": a.dry_run, "plans": plans, "pruned": reports, "gc": gc})
        );
        return Ok(0);
    }
    for (i, p) in plans.iter().enumerate() {
        let verb = if a.dry_run { "would prune" } else { "pruned" };
        out!(
            "tenant {} channel {}: keep {} exports, {verb} {}",
            p.tenant,
            p.channel,
            p.keep.len(),
            p.prune.len()
        );
        for x in &p.prune {
            let file = x
                .bundle
                .as_ref()
                .map_or("(folder unknown)".into(), |b| b.display().to_string());
            out!("  - {} {} {} {file}", x.run_id, x.profile, x.created_at);
        }
        if let Some(r) = reports.get(i) {
            out!("  removed {} bundle files ({} bytes)", r.files_removed, r.bytes_freed);
        }
    }
    if let Some(r) = &gc {
        print_gc(r);
    }
    Ok(0)
}

pub fn gc_cmd(a: GcArgs, json: bool) -> Result<i32, Failure> {
    let store = Store::open_existing(&a.store)?;
    // With nothing pending there is nothing incremental to do: the full collection then
    // audits the whole store (and removes what no export ever referenced).
    let how = match a.full || gc::pending(&store)?.is_empty() {
        true => Collector::Full,
        false => Collector::Incremental,
    };
    let r = collect(&store, how, a.dry_run, &[])?;
    if json {
        out!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        print_gc(&r);
    }
    Ok(0)
}
