//! The import's reader of bundle content, fed one verified file at a time, in bundle path
//! order — by the archive stream (`stream`) or from a staged folder (`apply_verified`).
//!
//! Order of checks: [`precheck`] decides from the signed manifest alone, before any
//! other entry is read, whether the bundle applies (tenant, rollback and expiry
//! (`freshness`), already applied, delta base = last applied export and current root =
//! its base root). Each data file is then read
//! once: decompressed, every record hashed and checked against its line, and handed to
//! the bulk load (full bundles, reset-baseline deltas) or to the delta plan. Nothing
//! becomes visible before [`Loader::finish`], which the caller runs only after the
//! signatures and the listing verified, and which commits only if the new root equals
//! the bundle's signed `stateRoot`.
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::json;

use super::bulk::{ingest_nodes, BulkLoad, BulkOptions, ObjectFiles, ReadRecord};
use super::{ImportError, ImportReport};
use crate::apply::{self, Mutation};
use crate::audit::{AuditEvent, AuditSink, Progress};
use crate::bundle::error::BundleError;
use crate::bundle::format::{DiffManifest, Manifest, RemovedLine, DEFAULT_CHANNEL, PROFILE_DELTA};
use crate::bundle::layout::{index_of, layouts_in, FileLayout};
use crate::bundle::records::{
    classify, decompress, parse_lines, per_subject_leaf, DataFile, IndexCollection, IndexFile,
};
use crate::bundle::verify::Verified;
use crate::ids::{FileDigest, NodeHash, ObjectId};
use crate::model::{Collection, Leaf, Tenant};
use crate::store::catalog::{applied_key, AppliedExport, ImportHistory};
use crate::store::{ObjectKey, RecordEntry, Store, CF_NODES, CF_RECORDS};

const REMOVED_KINDS: [&str; 5] = ["advisories", "vex", "sboms", "policy", "consensus"];
const DIFF: &str = "manifest.diff.json";

/// What the signed manifest decided.
pub struct Ctx {
    pub tenant: Tenant,
    pub manifest: Manifest,
    pub manifest_digest: FileDigest,
    history: ImportHistory,
    current: NodeHash,
    /// The whole state is replaced (full bundle or reset-baseline delta).
    reset: bool,
    already_applied: bool,
    /// Issue 16: how the freshness check accepted the bundle (recorded and audited).
    accepted: super::freshness::Accepted,
}

impl Ctx {
    fn is_delta(&self) -> bool {
        self.manifest.profile == PROFILE_DELTA
    }

    pub fn interest(&self) -> Interest {
        Interest {
            prefix: if self.is_delta() { "changed/" } else { "" },
            skip: self.already_applied,
            delta: self.is_delta(),
            removed: self.is_delta() && !self.reset,
            bundle_format: self.manifest.format_version,
        }
    }
}

/// Which files of a bundle an import reads (the others are only verified). Decided by
/// the manifest, so the archive reader can skip the rest without keeping them.
#[derive(Clone, Copy, Debug)]
pub struct Interest {
    prefix: &'static str,
    skip: bool,
    delta: bool,
    removed: bool,
    /// The manifest's `formatVersion`: it decides the data layout.
    bundle_format: u32,
}

impl Interest {
    pub fn is_removed_file(&self, rel: &str) -> bool {
        let kind = rel.strip_prefix("removed/").and_then(|r| r.strip_suffix(".jsonl"));
        self.removed && kind.is_some_and(|k| REMOVED_KINDS.contains(&k))
    }

    pub fn wants(&self, rel: &str) -> bool {
        if self.skip {
            return false;
        }
        // Only one-file-per-subject layouts take ids and times from the index; record
        // lines carry their own, so the (large) advisory and VEX indexes are not read.
        let per_subject_index = Collection::ALL.into_iter().any(|c| {
            index_of(c) == rel
                && layouts_in(c, self.bundle_format)
                    .iter()
                    .any(|l| matches!(l, FileLayout::PerSubject(..)))
        });
        per_subject_index
            || (rel == DIFF && self.delta)
            || self.is_removed_file(rel)
            || !matches!(classify(self.prefix, rel, self.bundle_format), Ok(None))
    }
}

fn malformed(path: &str, reason: impl Into<String>) -> BundleError {
    BundleError::Malformed {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Decide from the signed manifest whether and how the bundle applies to the store.
pub fn precheck(
    store: &Store,
    manifest: Manifest,
    manifest_digest: FileDigest,
    s: &super::ImportSettings,
    policy: &super::freshness::Policy,
) -> Result<Ctx, ImportError> {
    let m = &manifest;
    let tenant = Tenant::new(&m.tenant).map_err(|reason| malformed("manifest.yaml", reason))?;
    if let Some(t) = s.expect_tenant.as_ref().filter(|t| **t != tenant) {
        return Err(ImportError::TenantMismatch {
            bundle: tenant.to_string(),
            expected: t.to_string(),
        });
    }
    let channel = m.stamp().channel;
    if !s.expect_channels.is_empty() && !s.expect_channels.contains(&channel) {
        return Err(ImportError::ChannelUnknown {
            run_id: m.run_id.clone(),
            channel,
            expected: s.expect_channels.join(" or "),
        });
    }
    let history = store.import_history(&tenant)?;
    let current = store.state(&tenant)?.root();
    let base = match (m.profile == PROFILE_DELTA, &m.base) {
        (true, None) => return Err(malformed("manifest.yaml", "a delta must name its base").into()),
        (true, Some(b)) => Some(b),
        (false, _) => None,
    };
    // Issue 16, rollback and freeze protection: refuse a bundle older than the newest
    // applied one, or expired, before anything is read (import/freshness.rs).
    let accepted = super::freshness::check(&history, m, &manifest_digest, policy)?;
    let mut already_applied = false;
    let applied_before = history.applied.iter().find(|a| a.run_id == m.run_id);
    if let Some(a) = applied_before.filter(|_| !accepted.reapply) {
        if a.manifest_digest != manifest_digest {
            return Err(ImportError::Conflict {
                run_id: m.run_id.clone(),
                applied: a.manifest_digest.to_prefixed(),
                bundle: manifest_digest.to_prefixed(),
            });
        }
        already_applied = true;
    }
    let reset = base.is_none_or(|b| b.reset_baseline);
    if let Some(b) = base.filter(|b| !b.reset_baseline && !already_applied) {
        // Deltas follow the last export applied on their own (tenant, channel).
        let last = history
            .applied
            .iter()
            .rfind(|a| a.freshness.as_ref().map_or(DEFAULT_CHANNEL, |f| f.channel.as_str()) == channel);
        if last.is_none_or(|l| l.run_id != b.export_id || l.manifest_digest != b.manifest_digest) {
            return Err(ImportError::OutOfOrder {
                run_id: m.run_id.clone(),
                base: b.export_id.clone(),
                last: last.map_or_else(|| "none".to_string(), |l| l.run_id.clone()),
                tenant: tenant.to_string(),
            });
        }
        if current.to_prefixed() != b.state_root {
            return Err(ImportError::StateRootMismatch {
                what: "before applying".into(),
                expected: b.state_root.clone(),
                actual: current.to_prefixed(),
            });
        }
    }
    if !already_applied {
        // The listed bytes are a lower bound of what the store will hold (records are
        // stored decompressed): refuse at once what cannot fit.
        let listed: u64 = m.artifacts.iter().map(|a| a.bytes).sum();
        crate::store::space::ensure(store.path(), listed, "the bundle's listed files")?;
    }
    Ok(Ctx {
        tenant,
        manifest,
        manifest_digest,
        history,
        current,
        reset,
        already_applied,
        accepted,
    })
}

/// A file read and checked without the store (so on its own thread), ready to apply.
pub enum Parsed {
    /// A data file: its decompressed text and, per record, subject, leaf and the byte
    /// range of the document in the text.
    Records {
        c: Collection,
        data: Vec<u8>,
        recs: Vec<(String, Leaf, Range<usize>)>,
    },
    /// A one-file-per-subject document (its leaf waits for the index).
    Object {
        c: Collection,
        subject: String,
        id: ObjectId,
        path: String,
        bytes: Vec<u8>,
    },
    Diff(DiffManifest),
    Removed {
        path: String,
        deletes: Vec<(Collection, String)>,
    },
    /// The entries of an index's one-file-per-subject collections.
    Index(Vec<(Collection, IndexCollection)>),
    Nothing,
}

impl Interest {
    /// Decompress, parse and hash one file the import reads.
    pub fn parse(&self, rel: &str, bytes: Vec<u8>) -> Result<Parsed, ImportError> {
        let records = |c: Collection, shard: Option<u8>| -> Result<Parsed, ImportError> {
            let data = decompress(rel, &bytes)?;
            let base = data.as_ptr() as usize;
            let mut recs = Vec::new();
            parse_lines(rel, c, shard, &data, &mut |subject, leaf, doc| {
                let at = doc.as_ptr() as usize - base;
                recs.push((subject.to_string(), leaf, at..at + doc.len()));
                Ok(())
            })?;
            Ok(Parsed::Records { c, data, recs })
        };
        Ok(match classify(self.prefix, rel, self.bundle_format)? {
            Some(DataFile::Sharded(c, s)) => records(c, Some(s))?,
            Some(DataFile::Single(c)) => records(c, None)?,
            Some(DataFile::PerSubject(c, subject)) => Parsed::Object {
                c,
                subject,
                id: ObjectId::of(&bytes),
                path: rel.to_string(),
                bytes,
            },
            None if rel == DIFF => Parsed::Diff(crate::bundle::validate::parse_diff(&bytes)?),
            None if self.is_removed_file(rel) => Parsed::Removed {
                path: rel.to_string(),
                deletes: removed_lines(rel, &bytes)?,
            },
            None if self.wants(rel) => Parsed::Index(per_subject_index(rel, &bytes, self.bundle_format)?),
            None => Parsed::Nothing,
        })
    }
}

/// The lines of a `removed/<kind>.jsonl` file.
fn removed_lines(path: &str, body: &[u8]) -> Result<Vec<(Collection, String)>, BundleError> {
    let mut out = Vec::new();
    for (n, line) in body.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        let at = format!("{path}:{}", n + 1);
        let r: RemovedLine = serde_json::from_slice(line).map_err(|e| malformed(&at, e.to_string()))?;
        let c = Collection::from_name(&r.kind).ok_or_else(|| malformed(&at, format!("unknown kind {:?}", r.kind)))?;
        out.push((c, r.id));
    }
    Ok(out)
}

/// The entries of an index file's one-file-per-subject collections.
fn per_subject_index(
    rel: &str,
    bytes: &[u8],
    bundle_format: u32,
) -> Result<Vec<(Collection, IndexCollection)>, BundleError> {
    let mut index = IndexFile::parse(rel, bytes)?;
    Ok(Collection::ALL
        .into_iter()
        .filter(|c| {
            index_of(*c) == rel
                && layouts_in(*c, bundle_format)
                    .iter()
                    .any(|l| matches!(l, FileLayout::PerSubject(..)))
        })
        .filter_map(|c| index.collections.remove(c.name()).map(|ic| (c, ic)))
        .collect())
}

/// A delta on top of the current state: its objects and Merkle nodes are ingested as SST
/// files once the plan reaches the target root (no write-ahead log, memtable or flush for
/// them, and nothing written when the root differs); the records move in one batch.
pub struct DeltaLoad<'o> {
    objects: ObjectFiles<'o>,
    mutation: Mutation,
    source: String,
}

impl DeltaLoad<'_> {
    fn upsert(&mut self, c: Collection, subject: String, leaf: Leaf) {
        let e = RecordEntry {
            subject,
            object: leaf.object,
            modified: leaf.modified,
            source: self.source.clone(),
            derived: Vec::new(),
        };
        self.mutation.upserts.insert((c, leaf.id), e);
    }
}

enum Mode<'s, 'o> {
    /// Already applied: the content is verified but not read.
    Skip,
    Bulk(Box<BulkLoad<'s, 'o>>),
    Delta(Box<DeltaLoad<'o>>),
}

pub struct Loader<'s, 'o> {
    store: &'s Store,
    ctx: Ctx,
    mode: Mode<'s, 'o>,
    /// One-file-per-subject documents whose leaf waits for the index (which comes later
    /// in the bundle): collection, subject, object, path.
    pending: Vec<(Collection, String, ObjectId, String)>,
    indexes: BTreeMap<Collection, IndexCollection>,
    diff: Option<DiffManifest>,
    removed_seen: BTreeSet<String>,
    progress: &'s dyn Progress,
    opts: &'o BulkOptions,
    work: std::path::PathBuf,
}

impl<'s, 'o> Loader<'s, 'o> {
    /// `work` is a folder inside the store for the bulk load's files.
    pub fn new(
        store: &'s Store,
        ctx: Ctx,
        opts: &'o BulkOptions,
        work: &std::path::Path,
        progress: &'s dyn Progress,
    ) -> Result<Self, ImportError> {
        std::fs::create_dir_all(work)
            .map_err(|e| crate::store::StoreError::io(work, e, "a scratch folder for the bulk load"))?;
        let source = format!("import:{}", ctx.manifest.run_id);
        let mode = if ctx.already_applied {
            Mode::Skip
        } else if ctx.reset {
            Mode::Bulk(Box::new(BulkLoad::new(store, &ctx.tenant, &source, opts, work)?))
        } else {
            Mode::Delta(Box::new(DeltaLoad {
                objects: ObjectFiles::sorted(opts, work),
                mutation: Mutation::default(),
                source,
            }))
        };
        Ok(Self {
            store,
            ctx,
            mode,
            pending: Vec::new(),
            indexes: BTreeMap::new(),
            diff: None,
            removed_seen: BTreeSet::new(),
            progress,
            opts,
            work: work.to_path_buf(),
        })
    }

    /// Which files this loader reads.
    pub fn interest(&self) -> Interest {
        self.ctx.interest()
    }

    /// Read one file (`bytes` as shipped, decrypted, digest verified).
    pub fn entry(&mut self, rel: &str, bytes: Vec<u8>) -> Result<(), ImportError> {
        let parsed = self.interest().parse(rel, bytes)?;
        self.apply(parsed)
    }

    /// Apply one parsed file.
    pub fn apply(&mut self, p: Parsed) -> Result<(), ImportError> {
        match p {
            Parsed::Records { c, data, recs } => {
                self.progress.records(recs.len() as u64);
                let recs: Vec<ReadRecord<'_>> = recs.into_iter().map(|(s, l, r)| (s, l, &data[r])).collect();
                match &mut self.mode {
                    Mode::Bulk(b) => b.add_file(c, recs)?,
                    Mode::Delta(d) => {
                        let objs = recs
                            .iter()
                            .map(|(s, l, doc)| (ObjectKey::new(c, s, &l.object), *doc))
                            .collect();
                        d.objects.put(c, objs)?;
                        for (subject, leaf, _) in recs {
                            d.upsert(c, subject, leaf);
                        }
                    }
                    Mode::Skip => {}
                }
            }
            Parsed::Object {
                c,
                subject,
                id,
                path,
                bytes,
            } => {
                let key = ObjectKey::new(c, &subject, &id);
                match &mut self.mode {
                    Mode::Bulk(b) => b.add_object(c, key, &bytes)?,
                    Mode::Delta(d) => d.objects.put(c, vec![(key, &bytes)])?,
                    Mode::Skip => {}
                }
                self.pending.push((c, subject, id, path));
                self.progress.records(1);
            }
            Parsed::Diff(d) => self.diff = Some(d),
            Parsed::Removed { path, deletes } => {
                if let Mode::Delta(d) = &mut self.mode {
                    d.mutation.deletes.extend(deletes);
                }
                self.removed_seen.insert(path);
            }
            Parsed::Index(collections) => self.indexes.extend(collections),
            Parsed::Nothing => {}
        }
        Ok(())
    }

    /// The leaves of one-file-per-subject documents, now that their indexes are read.
    fn resolve_pending(&mut self) -> Result<(), ImportError> {
        let mut by_collection: BTreeMap<Collection, Vec<(String, Leaf)>> = BTreeMap::new();
        for (c, subject, id, path) in std::mem::take(&mut self.pending) {
            let leaf = per_subject_leaf(&path, &subject, id, self.indexes.get(&c))?;
            by_collection.entry(c).or_default().push((subject, leaf));
        }
        for (c, leaves) in by_collection {
            match &mut self.mode {
                Mode::Bulk(b) => b.add_leaves(c, leaves)?,
                Mode::Delta(d) => leaves.into_iter().for_each(|(s, l)| d.upsert(c, s, l)),
                Mode::Skip => {}
            }
        }
        Ok(())
    }

    /// `manifest.diff.json` must restate the signed manifest's base and target.
    fn check_diff(&self) -> Result<(), ImportError> {
        let m = &self.ctx.manifest;
        let d = self
            .diff
            .as_ref()
            .ok_or_else(|| BundleError::MissingFile { path: DIFF.into() })?;
        let agrees = m.base.as_ref().is_some_and(|b| {
            b.export_id == d.base_export_id
                && b.manifest_digest == d.base_manifest_digest
                && b.state_root == d.base_state_root
                && b.reset_baseline == d.reset_baseline
        }) && d.target_state_root == m.state_root;
        if !agrees {
            return Err(malformed(DIFF, "base or target differs from manifest.yaml").into());
        }
        if matches!(self.mode, Mode::Delta(_)) {
            let missing = REMOVED_KINDS
                .iter()
                .map(|k| format!("removed/{k}.jsonl"))
                .find(|p| !self.removed_seen.contains(p));
            if let Some(path) = missing {
                return Err(BundleError::MissingFile { path }.into());
            }
        }
        Ok(())
    }

    /// Apply what was read: `v` is the bundle's verified signatures and listing.
    pub fn finish(mut self, v: &Verified, audit: &dyn AuditSink) -> Result<ImportReport, ImportError> {
        let report = |ctx: &Ctx, outcome: &str, root: String, counts| ImportReport {
            run_id: ctx.manifest.run_id.clone(),
            profile: ctx.manifest.profile.clone(),
            tenant: ctx.tenant.to_string(),
            outcome: outcome.into(),
            previous_root: ctx.current.to_prefixed(),
            state_root: root,
            counts,
        };
        if v.manifest_digest != self.ctx.manifest_digest {
            return Err(malformed("manifest.yaml", "changed while it was read").into());
        }
        if matches!(self.mode, Mode::Skip) {
            return Ok(report(
                &self.ctx,
                "already-applied",
                self.ctx.current.to_prefixed(),
                BTreeMap::new(),
            ));
        }
        if self.ctx.is_delta() {
            self.check_diff()?;
        }
        self.resolve_pending()?;
        let tenant = self.ctx.tenant.clone();
        let ctx = &mut self.ctx;
        let target = ctx.manifest.state_root.clone();
        let mismatch = |actual: &NodeHash| ImportError::StateRootMismatch {
            what: "after applying".into(),
            expected: target.clone(),
            actual: actual.to_prefixed(),
        };
        let mut entry = |root: NodeHash| {
            let m = &ctx.manifest;
            ctx.history.applied_export_ids.push(m.run_id.clone());
            ctx.history.applied.push(AppliedExport {
                run_id: m.run_id.clone(),
                profile: m.profile.clone(),
                manifest_digest: ctx.manifest_digest,
                state_root: root,
                base_export_id: m.base.as_ref().map(|b| b.export_id.clone()),
                created_at: m.created_at.clone(),
                freshness: Some(ctx.accepted.applied()),
            });
            vec![(
                applied_key(ctx.tenant.as_str()),
                serde_json::to_vec(&ctx.history).expect("json"),
            )]
        };
        let (root, counts) = match std::mem::replace(&mut self.mode, Mode::Skip) {
            Mode::Bulk(b) => {
                let mut b = *b;
                let root = b.root()?;
                if root.to_prefixed() != target {
                    return Err(mismatch(&root));
                }
                let extra = entry(root);
                let counts = b.commit(&extra)?;
                // A delta's plan and `rebuild`'s check read the new tree and records next.
                self.store.prefetch(&[CF_NODES, CF_RECORDS]);
                (root, counts)
            }
            Mode::Delta(d) => {
                let plan = apply::plan(self.store, &tenant, &d.mutation)?;
                if plan.root().to_prefixed() != target {
                    return Err(mismatch(&plan.root()));
                }
                let extra = entry(plan.root());
                d.objects.ingest(self.store)?;
                ingest_nodes(self.store, apply::plan_nodes(&plan), self.opts, &self.work)?;
                apply::commit_records(self.store, &plan, &d.mutation, &extra)?;
                (plan.root(), plan.counts.clone())
            }
            Mode::Skip => unreachable!("handled above"),
        };
        // A large commit's write-ahead log would be replayed into memory by the next open
        // and its compactions run by the next command: settle both here.
        self.store.settle()?;
        let ctx = &self.ctx;
        let m = &ctx.manifest;
        ctx.accepted.audit(m, audit);
        let event = if ctx.is_delta() {
            "mirror.delta.applied"
        } else {
            "mirror.bundle.imported"
        };
        audit.record(&AuditEvent::new(
            event,
            json!({"runId": m.run_id, "profile": m.profile, "tenant": ctx.tenant.as_str(), "manifestDigest": ctx.manifest_digest, "stateRoot": root.to_prefixed(), "previousRoot": ctx.current.to_prefixed(), "resetBaseline": ctx.reset}),
        ));
        Ok(report(ctx, "applied", root.to_prefixed(), counts))
    }
}
