//! The export jobs: choose records, materialise them in parallel, assemble, record.
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::json;

use super::assemble::{assemble, is_encrypted_path, RunInfo, Sealing, Shipped};
use super::delta_sets::{delta_sets, fix_delta_index, removed_files, KINDS};
use super::diff::SubjectRoots;
use super::select::{normalize, Filter};
use super::stamp::{new_stamp, stamp_options};
use super::units::{
    finish_single, index_segments, load_unit, run_unit, spill_index, unit_shard_root, UnitContext, UnitInput,
    UnitOutput,
};
use super::{BaseSpec, ExportError, ExportReport, ExportSettings};
use crate::audit::{AuditEvent, AuditSink};
use crate::bundle::archive::SegmentReader;
use crate::bundle::format::{
    BaseRef, ByCollection, ChangeCounts, DiffManifest, EncryptionInfo, EncryptionModeName, Stamp, PROFILE_DELTA,
    PROFILE_FULL,
};
use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, kind_root, state_root, KindRef, StateNode};
use crate::model::{format_time, parse_time, Collection, Tenant};
use crate::store::catalog::{export_key, ExportRecord, Selectors};
use crate::store::{Store, CF_META};

/// Removes the staging directory however the export ends.
struct StagingDir(PathBuf);

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use crate::bundle::validate::valid_run_id;

/// Run id and createdAt, validated and normalised.
fn run_identity(s: &ExportSettings, suffix: &str) -> Result<(String, String, u64), ExportError> {
    let created_at = match &s.created_at {
        Some(c) => {
            let secs =
                parse_time(c).ok_or_else(|| ExportError::Usage(format!("--created-at {c:?} is not RFC 3339")))?;
            format_time(secs)
        }
        None => crate::audit::now_rfc3339(),
    };
    let secs = parse_time(&created_at).unwrap_or(0);
    let run_id = match &s.run_id {
        Some(r) => r.clone(),
        None => format!("{}-{}-{}", s.tenant, created_at.replace([':', '-'], ""), suffix),
    };
    if !valid_run_id(&run_id) {
        return Err(ExportError::Usage(format!(
            "run id {run_id:?} must be 1-128 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok((run_id, created_at, secs.max(0) as u64))
}

/// The exported (filtered) view of a snapshot: roots and counts.
struct View {
    root: NodeHash,
    kind_roots: BTreeMap<Collection, NodeHash>,
    counts: BTreeMap<Collection, u64>,
}

fn view_from_units(tenant: &Tenant, outputs: &[UnitOutput]) -> View {
    let mut shards: BTreeMap<Collection, Vec<NodeHash>> = Collection::ALL
        .iter()
        .map(|c| (*c, (0..=255u8).map(empty_shard_root).collect()))
        .collect();
    let mut counts: BTreeMap<Collection, u64> = Collection::ALL.iter().map(|c| (*c, 0)).collect();
    let mut subjects: BTreeMap<Collection, u64> = BTreeMap::new();
    for o in outputs {
        if !o.subjects.is_empty() {
            shards.get_mut(&o.collection).expect("all")[o.shard as usize] = unit_shard_root(o);
            *counts.get_mut(&o.collection).expect("all") += o.records;
            *subjects.entry(o.collection).or_default() += o.subjects.len() as u64;
        }
    }
    let kind_roots: BTreeMap<Collection, NodeHash> = shards.iter().map(|(c, s)| (*c, kind_root(*c, s))).collect();
    let kinds: Vec<KindRef> = Collection::ALL
        .iter()
        .map(|c| KindRef {
            collection: *c,
            root: kind_roots[c],
            records: counts[c],
            subjects: subjects.get(c).copied().unwrap_or(0),
        })
        .collect();
    View {
        root: state_root(tenant.as_str(), &kinds),
        kind_roots,
        counts,
    }
}

/// Load (and filter) every non-empty shard of a snapshot as units.
fn snapshot_units(store: &Store, state: &StateNode) -> Result<Vec<(Collection, u8, NodeHash)>, ExportError> {
    let mut jobs = Vec::new();
    for c in Collection::ALL {
        let kind = store.kind_node(state.kind(c))?;
        for (i, root) in kind.shards.iter().enumerate() {
            if *root != empty_shard_root(i as u8) {
                jobs.push((c, i as u8, *root));
            }
        }
    }
    Ok(jobs)
}

fn sealing_for<'a>(s: &'a ExportSettings, seal: super::units::Sealer<'a>) -> Sealing<'a> {
    match &s.encryption {
        None => Sealing {
            info: EncryptionInfo {
                mode: EncryptionModeName::None,
                ..Default::default()
            },
            wrapped_keys: Vec::new(),
            seal,
        },
        Some(e) => Sealing {
            info: EncryptionInfo {
                mode: EncryptionModeName::of(Some(e.sealer.mode())),
                strict: e.strict,
                recipients: e.sealer.recipients(),
                encrypted_paths: Vec::new(),
            },
            wrapped_keys: e.sealer.wrapped_keys(),
            seal,
        },
    }
}

/// What a job materialises.
pub(super) enum Job<'a> {
    Full,
    Delta {
        base: &'a ExportRecord,
        base_state: StateNode,
        reset: bool,
    },
}

pub(super) struct Produced {
    pub(super) report: ExportReport,
    pub(super) record: ExportRecord,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn produce(
    store: &Store,
    s: &ExportSettings,
    job: Job<'_>,
    state: &StateNode,
    selectors: Selectors,
    run_id: String,
    created_at: String,
    mtime: u64,
    materials: Option<Vec<serde_json::Value>>,
    stamp: Stamp,
) -> Result<Produced, ExportError> {
    let filter = Filter::new(&selectors).map_err(ExportError::Usage)?;
    std::fs::create_dir_all(&s.out_dir).map_err(|e| ExportError::io(&s.out_dir, e))?;
    super::debris::sweep(&s.out_dir).map_err(|e| ExportError::io(&s.out_dir, e))?;
    let staging = StagingDir(s.out_dir.join(format!(
        "{}{run_id}-{}",
        super::debris::STAGING_PREFIX,
        std::process::id()
    )));
    let strict = s.encryption.as_ref().is_some_and(|e| e.strict);
    let seal_fn = |path: &str, bytes: Vec<u8>| -> Result<Vec<u8>, ExportError> {
        match &s.encryption {
            Some(e) if is_encrypted_path(path, strict) => e
                .sealer
                .seal(path, &bytes)
                .map_err(|err| ExportError::Encrypt(err.to_string())),
            _ => Ok(bytes),
        }
    };
    let is_delta = matches!(job, Job::Delta { .. });
    let ctx = UnitContext {
        store,
        staging: &staging.0,
        prefix: if is_delta { "changed/" } else { "" },
        zstd_level: s.zstd_level,
        seal: &seal_fn,
        in_memory: is_delta && !matches!(job, Job::Delta { reset: true, .. }),
        index_version: crate::bundle::format::index_format_version(stamp.format_version),
    };

    let (mut outputs, view) = target_view(&ctx, s, &job, state, &filter, &selectors, &staging.0)?;

    let mut files: BTreeMap<String, Shipped> = BTreeMap::new();
    let (diff_manifest, base_ref) = match &job {
        Job::Full => (None, None),
        Job::Delta {
            base,
            base_state,
            reset,
        } => {
            let delta = DeltaJob {
                base,
                base_state,
                reset: *reset,
            };
            let (dm, base_ref) = delta_part(&ctx, &delta, state, &filter, &view, &mut outputs, &mut files)?;
            (Some(dm), Some(base_ref))
        }
    };
    let base_state_root = base_ref.as_ref().map(|b: &BaseRef| b.state_root.clone());

    ship_units(&ctx, s.encryption.is_some(), strict, &mut outputs, &view, &mut files)?;

    let counts: BTreeMap<String, u64> = view.counts.iter().map(|(c, n)| (c.name().to_string(), *n)).collect();
    // Provenance materials are recorded with the export so that a rerun reproduces them.
    let sources = match materials {
        Some(m) => m,
        None => source_materials(store, &s.tenant)?,
    };
    let profile = if is_delta { PROFILE_DELTA } else { PROFILE_FULL };
    let info = RunInfo {
        profile,
        top: if is_delta { "delta" } else { "mirror" },
        run_id: &run_id,
        tenant: s.tenant.as_str(),
        created_at: &created_at,
        mtime,
        selectors: &selectors,
        schedule: s.schedule.as_deref(),
        counts: counts.clone(),
        state_root: view.root.to_prefixed(),
        kind_roots: view
            .kind_roots
            .iter()
            .map(|(c, r)| (c.name().to_string(), r.to_prefixed()))
            .collect(),
        zstd_level: s.zstd_level,
        base: base_ref,
        base_state_root,
        sources: sources.clone(),
        stamp: &stamp,
        rotate_to: s.rotate_to.as_ref(),
    };
    let sealing = sealing_for(s, &seal_fn);
    let (bundle, bytes, digest) = assemble(&s.out_dir, &staging.0, &info, files, &s.sign_key, &sealing)?;
    let record = export_record(s, &job, &info, state.root(), view.root, digest, &bundle, bytes);
    Ok(Produced {
        report: ExportReport {
            run_id,
            profile: profile.into(),
            tenant: s.tenant.to_string(),
            bundle,
            bytes,
            manifest_digest: digest,
            state_root: view.root.to_prefixed(),
            counts,
            diff: diff_manifest,
            identical_to_original: None,
        },
        record,
    })
}

/// The target view (the filtered snapshot): its units materialised for full bundles and
/// reset baselines (their index parts spilled under `staging`), only measured for deltas;
/// refused when empty (unless allowed) or, unfiltered, when it disagrees with the store.
fn target_view(
    ctx: &UnitContext<'_>,
    s: &ExportSettings,
    job: &Job<'_>,
    state: &StateNode,
    filter: &Filter,
    selectors: &Selectors,
    staging: &Path,
) -> Result<(Vec<UnitOutput>, View), ExportError> {
    let jobs = snapshot_units(ctx.store, state)?;
    let full_materialise = matches!(job, Job::Full | Job::Delta { reset: true, .. });
    let outputs: Vec<UnitOutput> = if full_materialise || !filter.selects_all() {
        jobs.par_iter()
            .map(|(c, shard, root)| {
                let input = load_unit(ctx.store, *c, *shard, root, filter)?;
                if full_materialise {
                    let mut o = run_unit(ctx, input)?;
                    spill_index(&mut o, &staging.join(".index-parts"))?;
                    Ok::<_, ExportError>(o)
                } else {
                    Ok(measure_unit(input))
                }
            })
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let view = if outputs.is_empty() && !full_materialise {
        View {
            root: state.root(),
            kind_roots: state.kinds.iter().map(|k| (k.collection, k.root)).collect(),
            counts: state.kinds.iter().map(|k| (k.collection, k.records)).collect(),
        }
    } else {
        view_from_units(&s.tenant, &outputs)
    };
    if full_materialise && !s.allow_empty && view.counts.values().sum::<u64>() == 0 {
        return Err(ExportError::Empty {
            tenant: s.tenant.to_string(),
            what: if filter.selects_all() {
                "at all".into()
            } else {
                format!(
                    "matching the selectors {}",
                    serde_json::to_string(selectors).unwrap_or_default()
                )
            },
        });
    }
    if filter.selects_all() && view.root != state.root() {
        return Err(ExportError::RootMismatch {
            computed: view.root,
            stored: state.root(),
        });
    }
    Ok((outputs, view))
}

/// The base a delta is made against (`Job::Delta`, borrowed).
struct DeltaJob<'a> {
    base: &'a ExportRecord,
    base_state: &'a StateNode,
    reset: bool,
}

/// A delta's own part: its changed units (replacing `outputs`, unless it is a reset
/// baseline, which ships the whole view), `manifest.diff.json` and the removed-record
/// files into `files`; returns the diff document and the base reference.
fn delta_part(
    ctx: &UnitContext<'_>,
    job: &DeltaJob<'_>,
    state: &StateNode,
    filter: &Filter,
    view: &View,
    outputs: &mut Vec<UnitOutput>,
    files: &mut BTreeMap<String, Shipped>,
) -> Result<(DiffManifest, BaseRef), ExportError> {
    let store = ctx.store;
    let (added, changed, removed, units, removed_lines, known) = if job.reset {
        let added: BTreeMap<Collection, u64> = view
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (*c, *n))
            .collect();
        (
            added,
            BTreeMap::new(),
            BTreeMap::new(),
            Vec::new(),
            Vec::new(),
            SubjectRoots::new(),
        )
    } else {
        delta_sets(store, job.base_state, state, filter)?
    };
    if !job.reset {
        *outputs = units
            .into_par_iter()
            .map(|u| run_unit(ctx, u))
            .collect::<Result<_, _>>()?;
        fix_delta_index(store, filter, outputs, &known)?;
    }
    let dm = diff_document(job.base, job.reset, &view.root, [&added, &changed, &removed]);
    files.insert(
        "manifest.diff.json".into(),
        Shipped::Doc(serde_json::to_vec_pretty(&dm).expect("json")),
    );
    for (path, body) in removed_files(&removed_lines) {
        files.insert(path, Shipped::Doc(body));
    }
    let base_ref = BaseRef {
        export_id: job.base.run_id.clone(),
        manifest_digest: job.base.manifest_digest,
        state_root: job.base.state_root.to_prefixed(),
        reset_baseline: job.reset,
    };
    Ok((dm, base_ref))
}

/// The catalog entry of an export `info` describes, written as `bundle` (`bytes`, manifest
/// `digest`) from the store state `source_root` and reaching `state_root`.
#[allow(clippy::too_many_arguments)]
fn export_record(
    s: &ExportSettings,
    job: &Job<'_>,
    info: &RunInfo<'_>,
    source_root: NodeHash,
    state_root: NodeHash,
    digest: crate::ids::FileDigest,
    bundle: &Path,
    bytes: u64,
) -> ExportRecord {
    let (reset, base_id) = match job {
        Job::Full => (false, None),
        Job::Delta { base, reset, .. } => (*reset, Some(base.run_id.clone())),
    };
    let mut options = json!({"zstdLevel": s.zstd_level, "schedule": s.schedule, "resetBaseline": reset, "encrypted": s.encryption.is_some(), "signingKeyId": s.sign_key.key_id(), "materials": info.sources});
    stamp_options(info.stamp, &mut options);
    super::channel::record_options(s, &mut options);
    if let Some(k) = &s.rotate_to {
        options["rotateTo"] = json!(k.to_pem());
    }
    ExportRecord {
        run_id: info.run_id.to_string(),
        profile: info.profile.into(),
        tenant: s.tenant.clone(),
        created_at: info.created_at.to_string(),
        selectors: info.selectors.clone(),
        source_root,
        state_root,
        manifest_digest: digest,
        base_export_id: base_id,
        bundle_file: bundle
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        bytes,
        options,
        seq: info.stamp.sequence.unwrap_or(0),
        pruned: None,
    }
}

/// Data files, single-file collections and indexes of the produced units into `files`.
/// Strict encryption seals index files too: they are read whole for that.
fn ship_units(
    ctx: &UnitContext<'_>,
    encrypted: bool,
    strict: bool,
    outputs: &mut [UnitOutput],
    view: &View,
    files: &mut BTreeMap<String, Shipped>,
) -> Result<(), ExportError> {
    for o in outputs.iter_mut() {
        for (p, f) in std::mem::take(&mut o.files) {
            files.insert(p, f.into());
        }
    }
    for c in Collection::ALL {
        if let Some((p, f)) = finish_single(ctx, c, outputs)? {
            files.insert(p, f.into());
        }
    }
    outputs.sort_by_key(|o| (o.collection, o.shard));
    for (path, segs) in index_segments(outputs, &view.kind_roots, ctx.index_version) {
        let shipped = if encrypted && is_encrypted_path(path, strict) {
            let mut plain = Vec::new();
            SegmentReader::new(segs)
                .read_to_end(&mut plain)
                .map_err(|e| ExportError::io(Path::new(path), e))?;
            Shipped::Sealed((ctx.seal)(path, plain)?)
        } else {
            Shipped::Parts(segs)
        };
        files.insert(path.to_string(), shipped);
    }
    Ok(())
}

/// `manifest.diff.json` of a delta on `base` reaching `target`: per DESIGN kind (primary
/// collections) and per collection, the `[added, changed, removed]` counts.
fn diff_document(
    base: &ExportRecord,
    reset: bool,
    target: &NodeHash,
    [added, changed, removed]: [&BTreeMap<Collection, u64>; 3],
) -> DiffManifest {
    let by_kind = |m: &BTreeMap<Collection, u64>| -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = KINDS.iter().map(|k| (k.to_string(), 0)).collect();
        for (c, n) in m {
            if c.is_primary() {
                *out.entry(c.kind().to_string()).or_default() += n;
            }
        }
        out
    };
    let mut by_collection = ByCollection::default();
    for c in Collection::ALL {
        *by_collection.get_mut(c) = ChangeCounts {
            added: added.get(&c).copied().unwrap_or(0),
            changed: changed.get(&c).copied().unwrap_or(0),
            removed: removed.get(&c).copied().unwrap_or(0),
        };
    }
    DiffManifest {
        base_export_id: base.run_id.clone(),
        base_manifest_digest: base.manifest_digest,
        reset_baseline: reset,
        added: by_kind(added),
        changed: by_kind(changed),
        removed: by_kind(removed),
        base_state_root: base.state_root.to_prefixed(),
        target_state_root: target.to_prefixed(),
        by_collection: Some(Box::new(by_collection)),
    }
}

/// A unit that is only measured (roots and counts), not written.
fn measure_unit(input: UnitInput) -> UnitOutput {
    let subjects = input
        .subjects
        .iter()
        .map(|(s, leaves)| crate::merkle::SubjectRef {
            subject: s.clone(),
            root: crate::merkle::subject_root(s, leaves),
            records: leaves.len() as u64,
        })
        .collect::<Vec<_>>();
    UnitOutput {
        collection: input.collection,
        shard: input.shard,
        files: Vec::new(),
        lines: Vec::new(),
        records: subjects.iter().map(|s| s.records).sum(),
        subjects,
        index: Vec::new(),
        index_part: None,
    }
}

/// The tenant's sources, for provenance materials. Skips from one source name to the
/// next (one seek per source), so the cost does not grow with the number of records.
fn source_materials(store: &Store, tenant: &Tenant) -> Result<Vec<serde_json::Value>, ExportError> {
    let ks = store.keyspace(tenant)?;
    let prefix = ks.prefix().to_vec();
    let mut names = Vec::new();
    let mut from = prefix.clone();
    while let Some(k) = store.first_key_from(crate::store::CF_SOURCES, &from)? {
        if !k.starts_with(&prefix) {
            break;
        }
        let name = k[prefix.len()..].split(|b| *b == 0).next().unwrap_or_default().to_vec();
        names.push(String::from_utf8_lossy(&name).to_string());
        from = prefix.clone();
        from.extend_from_slice(&name);
        from.push(1);
    }
    Ok(names
        .into_iter()
        .map(|s| json!({"source": if s.is_empty() { "unnamed".to_string() } else { s }}))
        .collect())
}

fn register(
    store: &Store,
    record: ExportRecord,
    counts: &BTreeMap<String, u64>,
    audit: &dyn AuditSink,
) -> Result<(), ExportError> {
    // `record.seq` is the sequence signed into the manifest (`stamp::new_stamp`).
    let mut b = store.new_batch();
    store.batch_put(
        &mut b,
        CF_META,
        &export_key(record.tenant.as_str(), &record.run_id),
        &serde_json::to_vec(&record).expect("json"),
    );
    store.commit(b)?;
    audit.record(&AuditEvent::new(
        "mirror.bundle.created",
        json!({"runId": record.run_id, "profile": record.profile, "tenant": record.tenant, "manifestDigest": record.manifest_digest, "bytes": record.bytes, "counts": counts, "stateRoot": record.state_root.to_prefixed(), "bundle": record.bundle_file}),
    ));
    if record.options["encrypted"] == json!(true) {
        audit.record(&AuditEvent::new(
            "mirror.encryption.enabled",
            json!({"runId": record.run_id, "tenant": record.tenant}),
        ));
    }
    Ok(())
}

pub fn export_full(store: &Store, s: &ExportSettings, audit: &dyn AuditSink) -> Result<ExportReport, ExportError> {
    let (run_id, created_at, mtime) = run_identity(s, "full")?;
    if store.export_record(&s.tenant, &run_id)?.is_some() {
        return Err(ExportError::RunExists(run_id));
    }
    let head = channel_head(store, s)?;
    // Not given: the channel's selectors (a channel keeps its selectors).
    let selectors = match (&head, s.selectors_given) {
        (Some(h), false) if !s.redefine => h.selectors.clone(),
        _ => normalize(s.selectors.clone()).map_err(ExportError::Usage)?,
    };
    super::channel::check(s, head.as_ref(), &selectors)?;
    let state = store.state(&s.tenant)?;
    let stamp = new_stamp(
        store,
        &s.tenant,
        &s.channel,
        PROFILE_FULL,
        &created_at,
        mtime as i64,
        s.expires_in,
        s.min_sequence,
    )?;
    let p = produce(
        store,
        s,
        Job::Full,
        &state,
        selectors,
        run_id,
        created_at,
        mtime,
        None,
        stamp,
    )?;
    register(store, p.record, &p.report.counts, audit)?;
    Ok(p.report)
}

/// The channel's last export, whose definition this export inherits and must keep.
fn channel_head(store: &Store, s: &ExportSettings) -> Result<Option<ExportRecord>, ExportError> {
    if s.channel.is_adhoc() {
        return Ok(None);
    }
    Ok(super::channel::head(store, &s.tenant, &s.channel)?)
}

pub(super) fn base_missing(base: &str, tenant: &Tenant, reason: impl Into<String>) -> ExportError {
    ExportError::BaseMissing {
        base: base.into(),
        tenant: tenant.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn load_base_state(store: &Store, base: &ExportRecord) -> Result<StateNode, ExportError> {
    let missing = |r: &str| base_missing(&base.run_id, &base.tenant, r);
    let st = match store.node_opt(crate::store::NodeTag::State, &base.source_root)? {
        Some(crate::merkle::Node::State(s)) => s,
        _ => return Err(missing("its snapshot's nodes are not in the store")),
    };
    for k in &st.kinds {
        store
            .kind_node(k)
            .map_err(|_| missing("its snapshot's nodes are not in the store"))?;
    }
    Ok(st)
}

pub fn export_delta(
    store: &Store,
    s: &ExportSettings,
    base: &BaseSpec,
    reset: bool,
    audit: &dyn AuditSink,
) -> Result<ExportReport, ExportError> {
    let (run_id, created_at, mtime) = run_identity(s, "delta")?;
    if store.export_record(&s.tenant, &run_id)?.is_some() {
        return Err(ExportError::RunExists(run_id));
    }
    let head = channel_head(store, s)?;
    let base_rec = match base {
        BaseSpec::Latest => super::channel::head(store, &s.tenant, &s.channel)?
            .ok_or_else(|| base_missing("latest", &s.tenant, format!("channel {} has no exports yet", s.channel)))?,
        BaseSpec::RunId(id) => store
            .export_record(&s.tenant, id)?
            .ok_or_else(|| base_missing(id, &s.tenant, "it is not in this store's export catalog"))?,
    };
    if let Some(at) = &base_rec.pruned {
        return Err(ExportError::Pruned {
            run_id: base_rec.run_id.clone(),
            tenant: s.tenant.to_string(),
            at: at.clone(),
        });
    }
    let base_state = load_base_state(store, &base_rec)?;
    let selectors = if s.selectors_given {
        let given = normalize(s.selectors.clone()).map_err(ExportError::Usage)?;
        if given != base_rec.selectors {
            return Err(ExportError::SelectorMismatch {
                given: serde_json::to_string(&given).unwrap_or_default(),
                base: serde_json::to_string(&base_rec.selectors).unwrap_or_default(),
            });
        }
        given
    } else {
        base_rec.selectors.clone()
    };
    super::channel::check(s, head.as_ref(), &selectors)?;
    let state = store.state(&s.tenant)?;
    let job = Job::Delta {
        base: &base_rec,
        base_state,
        reset,
    };
    let stamp = new_stamp(
        store,
        &s.tenant,
        &s.channel,
        PROFILE_DELTA,
        &created_at,
        mtime as i64,
        s.expires_in,
        s.min_sequence,
    )?;
    let p = produce(store, s, job, &state, selectors, run_id, created_at, mtime, None, stamp)?;
    register(store, p.record, &p.report.counts, audit)?;
    Ok(p.report)
}
