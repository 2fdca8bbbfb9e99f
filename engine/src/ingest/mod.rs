//! `ingest` and `remove`: documents in, records out, one atomic commit.
//!
//! Pipeline: load the input digests of the source's live records (one sorted pass over
//! its index, `digest`) → read the input block by block; in parallel, digest every
//! document and parse only those whose digest is not known (unchanged documents are
//! skipped: not parsed, normalized or written) → refuse the run on the first bad
//! document unless `keep_going` → collect the parsed documents into chunks, plan each
//! against the live records (unchanged content is a no-op), write new objects → commit
//! records, sources and the new head atomically (`commit`: one batch, or staged chunks
//! made live by one small commit when the change is large). Each document is parsed
//! once. A crash before the commit leaves only unreferenced objects and nodes; the
//! tenant's state is unchanged.
pub mod commit;
pub mod digest;
pub mod error;
pub mod formats;
pub mod input;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;
use rocksdb::WriteBatch;

use commit::{Chunk, Committer};
use digest::{FileDigester, KnownDigests, ParsedKeys, Position};
pub use error::{BadInput, BadInputKind, IngestError, InputLocation};
use formats::{parse_document, DocError, ParseContext, ParsedDoc};
use input::{enumerate, for_each_block, InputFile};

use crate::apply::{self, ChangeCounts, Mutation};
use crate::audit::Progress;
use crate::ids::{InputDigest, NodeHash, ObjectId};
use crate::model::{Collection, Tenant};
use crate::store::staging::LiveView;
use crate::store::Store;

/// Most records (primary + derived) in one chunk. Consensus adds about one record per
/// VEX statement on top; at 1M-record scale larger chunks cost memory out of proportion.
/// A staged run's Merkle update is made once after its last chunk (`store::deferred`),
/// so smaller chunks cost little more time (docs/benchmarks.md, History).
pub const DEFAULT_BATCH_RECORDS: usize = 32_000;

/// Default of [`IngestOptions::batch_bytes`].
pub const DEFAULT_BATCH_BYTES: u64 = 256 << 20;
const BLOCK_BYTES: usize = 16 << 20;

#[derive(Clone, Debug)]
pub struct IngestOptions {
    pub tenant: Tenant,
    /// Name of the upstream source; records remember it for `complete`.
    pub source: String,
    /// The input is the source's complete current set: its other records are removed.
    pub complete: bool,
    pub keep_going: bool,
    pub dry_run: bool,
    pub ctx: ParseContext,
    /// Most document bytes held in one chunk; a change larger than one chunk is staged
    /// chunk by chunk and made live by one commit (bounded memory, still atomic).
    pub batch_bytes: u64,
    /// Most records (primary + derived) per chunk.
    pub batch_records: usize,
    /// `complete`: the largest share (percent) of the source's live records one run may
    /// remove; `None` allows any. A run over it is refused before anything changes.
    pub max_removal_pct: Option<f64>,
}

/// Default of [`IngestOptions::max_removal_pct`].
pub const DEFAULT_MAX_REMOVAL_PCT: f64 = 10.0;

impl IngestOptions {
    /// Options with the defaults: detect formats, refuse bad input, commit, default batches.
    pub fn new(tenant: Tenant, source: &str) -> Self {
        Self {
            tenant,
            source: source.to_string(),
            complete: false,
            keep_going: false,
            dry_run: false,
            ctx: ParseContext::default(),
            batch_bytes: DEFAULT_BATCH_BYTES,
            batch_records: DEFAULT_BATCH_RECORDS,
            max_removal_pct: Some(DEFAULT_MAX_REMOVAL_PCT),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    pub tenant: String,
    /// Documents read (unchanged + parsed; bad ones are listed in `skipped`).
    pub documents: u64,
    /// Documents whose input digest matched their live record: not parsed.
    pub unchanged: u64,
    /// Documents parsed (new or changed, or ingested before their digest was kept).
    pub parsed: u64,
    pub counts: BTreeMap<Collection, ChangeCounts>,
    pub skipped: Vec<BadInput>,
    /// `complete` removals withheld because some documents were skipped: a document
    /// that failed to parse must not make its live record disappear.
    pub complete_withheld: u64,
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub previous_root: NodeHash,
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub state_root: NodeHash,
    pub committed: bool,
    /// Whether the change was staged in chunks and made live by one commit.
    pub staged: bool,
    /// Symbolic links found in input directories, not followed.
    pub skipped_links: Vec<PathBuf>,
}

fn to_bad(file: &InputFile, line: Option<usize>, e: DocError) -> BadInput {
    let (kind, pointer, reason) = match e {
        DocError::Unrecognized(r) => (BadInputKind::Unrecognized, None, r),
        DocError::Invalid { pointer, reason } => (BadInputKind::Invalid, Some(pointer), reason),
    };
    BadInput {
        kind,
        at: InputLocation {
            file: file.path.clone(),
            line,
            pointer,
        },
        reason,
    }
}

fn parse_raw(file: &InputFile, line: Option<usize>, bytes: &[u8], ctx: &ParseContext) -> Result<ParsedDoc, BadInput> {
    if let Some(d) = formats::parse_fast(bytes, ctx) {
        return Ok(d);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| BadInput {
        kind: BadInputKind::Invalid,
        at: InputLocation {
            file: file.path.clone(),
            line: line.or(Some(e.line())),
            pointer: None,
        },
        reason: format!("not valid JSON: {e}"),
    })?;
    let name = (file.shape == input::FileShape::Json).then_some(file.name.as_str());
    parse_document(v, ctx, name).map_err(|e| to_bad(file, line, e))
}

/// What reading one document gave.
enum Outcome {
    /// Its digest is a live record's: skipped.
    Unchanged(InputDigest),
    Parsed(InputDigest, Result<ParsedDoc, BadInput>),
}

/// The state of one run while its input is read.
struct Run<'a> {
    store: &'a Store,
    opts: &'a IngestOptions,
    known: KnownDigests,
    /// Where each parsed primary record was (kept when `complete` or when documents can
    /// be skipped: for removals and "the later document wins").
    parsed: ParsedKeys,
    keep_keys: bool,
    chunk: Chunk,
    committer: Committer<'a>,
    position: Position,
    report: IngestReport,
}

impl Run<'_> {
    fn read(&mut self, files: &[InputFile], progress: &dyn Progress) -> Result<(), IngestError> {
        let opts: &IngestOptions = self.opts;
        let ctx = &opts.ctx;
        for file in files {
            let digester = FileDigester::new(ctx, file);
            for_each_block(file, BLOCK_BYTES, |block| {
                let n = block.data.len() as u64;
                let known = &self.known;
                let outcomes: Vec<Outcome> = block
                    .docs
                    .par_iter()
                    .map(|d| {
                        let bytes = block.bytes(d);
                        let digest = digester.digest(bytes);
                        if known.contains(&digest) {
                            Outcome::Unchanged(digest)
                        } else {
                            Outcome::Parsed(digest, parse_raw(file, d.line, bytes, ctx))
                        }
                    })
                    .collect();
                for o in outcomes {
                    self.take(o)?;
                }
                progress.advance(n);
                progress.documents(self.report.parsed, self.report.unchanged);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn take(&mut self, o: Outcome) -> Result<(), IngestError> {
        self.position += 1;
        let (digest, doc) = match o {
            Outcome::Unchanged(d) => {
                self.known.mark(&d, self.position);
                self.report.unchanged += 1;
                self.report.documents += 1;
                return Ok(());
            }
            Outcome::Parsed(_, Err(bad)) if self.opts.keep_going => {
                self.report.skipped.push(bad);
                return Ok(());
            }
            Outcome::Parsed(_, Err(bad)) => return Err(IngestError::BadInput(bad)),
            Outcome::Parsed(d, Ok(doc)) => (d, doc),
        };
        self.report.parsed += 1;
        self.report.documents += 1;
        if self.keep_keys {
            self.parsed
                .insert(doc.primary.collection, &doc.primary.id, self.position);
        }
        self.chunk.add(doc, digest, &self.opts.source);
        let full = self.chunk.size as u64 >= self.opts.batch_bytes || self.chunk.records >= self.opts.batch_records;
        // A dry run must see the whole input in one plan, so it never stages.
        if full && !self.opts.dry_run {
            let chunk = std::mem::take(&mut self.chunk);
            self.committer.stage(chunk, &mut self.report)?;
        }
        Ok(())
    }

    /// After the input: the `--complete` removals (the source's records neither seen
    /// unchanged nor parsed) and the live records to keep because the input held their
    /// current version again after a changed one. One sorted pass over the source index.
    fn resolve(&mut self) -> Result<Vec<(Collection, String)>, IngestError> {
        let complete = self.opts.complete;
        if !complete && (self.known.is_empty() || self.parsed.is_empty()) {
            return Ok(Vec::new());
        }
        let mut absent = Vec::new();
        let mut restores = Vec::new();
        let mut live = 0u64;
        let (known, parsed) = (&self.known, &self.parsed);
        digest::for_each_source_entry(self.store, &self.opts.tenant, &self.opts.source, |e| {
            live += 1;
            let seen_at = e.digest.and_then(|d| Some((d, known.seen_at(&d)?)));
            let at = if parsed.is_empty() {
                None
            } else {
                parsed.get(e.collection, e.id)
            };
            match (at, seen_at) {
                (Some(p), Some((d, h))) if h > p => restores.push(((e.collection, e.id.to_string()), d)),
                (Some(_), _) | (None, Some(_)) => {}
                (None, None) if complete => absent.push((e.collection, e.id.to_string())),
                (None, None) => {}
            }
            Ok(())
        })?;
        for (key, d) in restores {
            self.chunk.restore(self.store, &self.opts.tenant, key, d)?;
        }
        // A document that failed to parse must not make its live record disappear.
        if !self.report.skipped.is_empty() {
            self.report.complete_withheld = absent.len() as u64;
            absent.clear();
        }
        self.guard_removal(absent.len() as u64, live)?;
        Ok(absent)
    }

    /// Refuse a `--complete` run that would remove more than the allowed share of the
    /// source (an empty or truncated feed).
    fn guard_removal(&self, removing: u64, live: u64) -> Result<(), IngestError> {
        let Some(limit_pct) = self.opts.max_removal_pct else {
            return Ok(());
        };
        if removing == 0 || (removing as f64) * 100.0 <= limit_pct * live as f64 {
            return Ok(());
        }
        Err(IngestError::MassRemoval {
            source_name: self.opts.source.clone(),
            removing,
            live,
            documents: self.report.documents,
            limit_pct,
        })
    }
}

pub fn ingest(
    store: &Store,
    paths: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    if opts.complete && opts.source.is_empty() {
        return Err(IngestError::CompleteWithoutSource);
    }
    let force_lines = opts.ctx.kind == formats::KindHint::PolicyEvaluations;
    let input::Inputs { files, skipped_links } = enumerate(paths, force_lines)?;
    if files.is_empty() {
        return Err(IngestError::NoInput);
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    let tenant = &opts.tenant;
    let previous_root = store.state(tenant)?.root();
    let known = KnownDigests::load(store, tenant, &opts.source)?;
    let keep_keys = opts.complete || !known.is_empty();
    let mut run = Run {
        store,
        opts,
        known,
        parsed: ParsedKeys::new(),
        keep_keys,
        chunk: Chunk::default(),
        committer: Committer::new(store, tenant),
        position: 0,
        report: IngestReport {
            tenant: tenant.to_string(),
            documents: 0,
            unchanged: 0,
            parsed: 0,
            counts: BTreeMap::new(),
            skipped: Vec::new(),
            complete_withheld: 0,
            previous_root,
            state_root: previous_root,
            committed: false,
            staged: false,
            skipped_links,
        },
    };
    progress.phase("parse", total);
    let read = run.read(&files, progress).and_then(|()| run.resolve());
    progress.finish();
    let Run {
        chunk,
        committer,
        mut report,
        ..
    } = run;
    let absent = match read {
        Ok(absent) => absent,
        Err(e) => {
            committer.abandon()?;
            return Err(e);
        }
    };
    report.staged = committer.is_staged();
    committer.finish(chunk, absent, opts.dry_run, &mut report)?;
    if report.committed && report.staged {
        // Large commits leave a write-ahead log to replay and compactions to run: settle
        // them here rather than in the next command.
        store.settle()?;
    } else if report.committed {
        store.settle_small()?;
    }
    Ok(report)
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    pub removed: BTreeMap<Collection, ChangeCounts>,
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub state_root: NodeHash,
}

/// Remove records by id (with the records derived from them). Every id must exist in
/// one of `collections`, else nothing is removed.
pub fn remove(
    store: &Store,
    tenant: &Tenant,
    collections: &[Collection],
    ids: &[String],
) -> Result<RemoveReport, RemoveError> {
    let mut m = Mutation::default();
    for id in ids {
        let mut found = false;
        for c in collections.iter().filter(|c| c.is_primary()) {
            if let Some(old) = store.record(tenant, *c, id)? {
                found = true;
                m.deletes.extend(old.derived.iter().cloned());
                m.deletes.insert((*c, id.clone()));
            }
        }
        if !found {
            return Err(RemoveError::NotFound { id: id.clone() });
        }
    }
    // VEX consensus of the pairs whose statements go (docs/consensus.md).
    let view = LiveView::new(store, tenant)?;
    let consensus_objects: HashMap<ObjectId, Vec<u8>> =
        crate::consensus::extend(store, &view, &mut m, &HashMap::new())?
            .into_iter()
            .collect();
    let plan = apply::plan(store, tenant, &m)?;
    let mut batch = WriteBatch::default();
    for key in plan.objects(&m) {
        if let Some(b) = consensus_objects.get(&key.id()) {
            if !store.has_object(&key)? {
                store.put_object(&mut batch, &key, b);
            }
        }
    }
    store.write_unreferenced(batch)?;
    apply::commit(store, &plan, &m, &[])?;
    Ok(RemoveReport {
        removed: plan.counts.clone(),
        state_root: plan.root(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// No record with this id exists in the selected kinds.
    #[error("no record with id {id:?} in this tenant")]
    NotFound { id: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl RemoveError {
    pub fn code(&self) -> &'static str {
        match self {
            RemoveError::NotFound { .. } => "ERR_RECORD_NOT_FOUND",
            RemoveError::Store(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            RemoveError::NotFound { .. } => {
                "check the id and --kind with `stellamirror status`; nothing was removed".into()
            }
            RemoveError::Store(e) => e.hint(),
        }
    }
}
