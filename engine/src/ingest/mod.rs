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
pub mod identity;
pub mod input;
pub mod known;
mod lines;
pub mod openpgp;
pub mod sidecar;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rocksdb::WriteBatch;

use commit::{Chunk, Committer};
use digest::{FileDigester, ParsedKeys, Position, Seen};
pub use error::{BadInput, BadInputKind, IngestError, InputLocation};
use formats::{parse_document, DocError, ParseContext, ParsedDoc};
use identity::{location_of, position, DocVersion};
use input::{enumerate, for_each_block, FileShape, InputFile, Selection, SkippedFile};
use known::{EntryIndex, KnownDigests};

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
pub const DEFAULT_BATCH_RECORDS: usize = 16_000;

/// Default of [`IngestOptions::batch_bytes`].
pub const DEFAULT_BATCH_BYTES: u64 = 256 << 20;
const BLOCK_BYTES: usize = 4 << 20;

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
    /// `--source-root`: the directory document names are relative to (default: the
    /// source's recorded root, else the first input path); see docs/formats.md.
    pub source_root: Option<PathBuf>,
    /// `--include` / `--exclude` globs over the names of files in input directories.
    pub selection: Selection,
    /// `--publisher-key`: OpenPGP keys the `.asc` signatures beside documents must verify
    /// with (none: signatures are counted, not checked).
    pub publisher_keys: std::sync::Arc<openpgp::PublisherKeys>,
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
            source_root: None,
            selection: Selection::default(),
            publisher_keys: Default::default(),
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
    /// Files of input directories that hold no document (with the reason).
    pub skipped_files: Vec<SkippedFile>,
    /// Files the `--include`/`--exclude` globs left out.
    pub excluded: Vec<PathBuf>,
    /// Documents not applied because another version of the same document, in the
    /// input or in the store, is newer by the documents' own version fields.
    pub superseded: Vec<Superseded>,
    /// Documents whose id and content equal an earlier document's in the same input.
    pub identical_duplicates: u64,
    /// VEX repository metadata files read (vex-repo-spec): described, not stored.
    pub repository_metadata: Vec<RepoFile>,
    /// The directory document names are relative to (None: each input path, for runs
    /// without `--source`).
    pub source_root: Option<PathBuf>,
    pub integrity: Integrity,
    /// Documents the commit left out because the stored record is newer (resolved into
    /// `superseded` once the input's files are known).
    #[serde(skip)]
    pub superseded_by_store: Vec<(Collection, String, Position)>,
}

/// A VEX repository metadata file of the input and what it says.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoFile {
    pub file: PathBuf,
    #[serde(flatten)]
    pub metadata: formats::vex_repo::RepoMetadata,
}

/// A document left out because a newer version of it stands (docs/formats.md).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Superseded {
    pub collection: Collection,
    pub id: String,
    /// The document left out.
    pub document: InputLocation,
    /// What stands instead: another document of the input, or the stored record.
    pub by: String,
}

/// What the upstream integrity files beside the documents said (docs/formats.md).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integrity {
    /// Documents whose `.sha256`/`.sha512` matched.
    pub digests_verified: u64,
    /// Documents with an `.asc` OpenPGP signature beside them.
    pub signatures_present: u64,
    /// Of those, signatures verified with a `--publisher-key`.
    pub signatures_verified: u64,
}

/// The first eight bytes of a record's content hash: equal for identical documents.
fn content_prefix(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(ObjectId::of(bytes).0[..8].try_into().expect("8 bytes"))
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

/// What one input document is: records (a parsed document and its own version number,
/// [`identity::own_version`]), or the metadata of a VEX repository (not stored).
enum Parsed {
    Doc(ParsedDoc, u64),
    Metadata(formats::vex_repo::RepoMetadata),
}

fn parse_raw(file: &InputFile, line: Option<usize>, bytes: &[u8], ctx: &ParseContext) -> Result<Parsed, BadInput> {
    if let Some(d) = formats::parse_fast(bytes, ctx) {
        return Ok(Parsed::Doc(d, 0));
    }
    let whole = file.shape == input::FileShape::Json;
    if whole && ctx.kind == formats::KindHint::Auto && formats::spdx_tv::is_tag_value(bytes) {
        let d = formats::spdx_tv::parse(bytes, ctx, Some(&file.name)).map_err(|e| to_bad(file, line, e))?;
        return Ok(Parsed::Doc(d, 0));
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
    if ctx.kind == formats::KindHint::Auto {
        if let Some(m) = formats::vex_repo::detect(&v) {
            return Ok(Parsed::Metadata(m));
        }
    }
    let name = (file.shape == input::FileShape::Json).then_some(file.name.as_str());
    let version = identity::own_version(&v);
    let doc = parse_document(v, ctx, name).map_err(|e| to_bad(file, line, e))?;
    Ok(Parsed::Doc(doc, version))
}

/// What reading one document gave.
enum Outcome {
    /// Its digest is a live record's (this entry of the source's index): skipped.
    Unchanged(EntryIndex, Position),
    Parsed(InputDigest, Result<Parsed, BadInput>, Position),
}

/// The state of one run while its input is read.
struct Run<'a> {
    store: &'a Store,
    opts: &'a IngestOptions,
    files: &'a [InputFile],
    known: KnownDigests,
    /// Where each parsed primary record was, and its version: for removals, for
    /// duplicates in the input and for "the newer version stands".
    parsed: ParsedKeys,
    chunk: Chunk,
    committer: Committer<'a>,
    report: IngestReport,
}

impl Run<'_> {
    /// Check the integrity files beside `file` (docs/formats.md, "Upstream integrity"):
    /// the fingerprint of the publisher key that verified its signature, if one did.
    /// `Ok(None)` with `skip`: the file was refused and listed (`--keep-going`).
    fn check_integrity(&mut self, file: &InputFile) -> Result<(Option<String>, bool), IngestError> {
        let keys = &self.opts.publisher_keys;
        let checked = sidecar::check(&file.path).and_then(|c| {
            self.report.integrity.digests_verified += u64::from(c.digest_verified);
            self.report.integrity.signatures_present += u64::from(c.signature_present);
            if !c.signature_present || keys.is_empty() {
                return Ok(None);
            }
            let fp = keys.verify(&file.path, &sidecar::signature_of(&file.path))?;
            self.report.integrity.signatures_verified += 1;
            Ok(Some(fp))
        });
        match checked {
            Ok(fp) => Ok((fp, false)),
            Err(bad) if self.opts.keep_going => {
                self.report.skipped.push(bad);
                Ok((None, true))
            }
            Err(bad) => Err(IngestError::BadInput(bad)),
        }
    }

    /// Read every input file. `loader` is the source index's load, still running: JSON
    /// Lines are digested while it runs (`lines`); anything else waits for it.
    fn read(&mut self, progress: &dyn Progress, mut loader: lines::Loader<'_>) -> Result<(), IngestError> {
        let opts: &IngestOptions = self.opts;
        for (fi, file) in self.files.iter().enumerate() {
            if file.shape != FileShape::JsonLines {
                lines::await_known(self, &mut loader)?;
            }
            let (verified_by, skip) = self.check_integrity(file)?;
            if skip {
                continue;
            }
            let signed;
            let ctx = match verified_by {
                None => &opts.ctx,
                Some(fp) => {
                    signed = ParseContext {
                        verified_by: Some(fp),
                        ..opts.ctx.clone()
                    };
                    &signed
                }
            };
            let digester = FileDigester::new(ctx, file);
            let mut pending = Vec::new();
            for_each_block(file, BLOCK_BYTES, |block| {
                let n = block.data.len() as u64;
                if loader.is_some() {
                    // The index is still loading: digest now, look up once it is there.
                    lines::digest_block(block, &digester, &mut pending);
                    progress.advance(n);
                    if loader.as_ref().is_some_and(|h| h.is_finished()) {
                        lines::await_known(self, &mut loader)?;
                        self.take_pending(fi, file, ctx, &digester, std::mem::take(&mut pending), progress)?;
                    }
                    return Ok(());
                }
                let known = &self.known;
                let outcomes: Vec<Outcome> = block
                    .docs
                    .par_iter()
                    .map(|d| {
                        let bytes = block.bytes(d);
                        let digest = digester.digest(bytes);
                        let at = position(fi, d.line);
                        if let Some(i) = known.find(&digest) {
                            Outcome::Unchanged(i, at)
                        } else {
                            Outcome::Parsed(digest, parse_raw(file, d.line, bytes, ctx), at)
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
            if !pending.is_empty() {
                lines::await_known(self, &mut loader)?;
                self.take_pending(fi, file, ctx, &digester, pending, progress)?;
            }
        }
        lines::await_known(self, &mut loader)
    }

    fn take(&mut self, o: Outcome) -> Result<(), IngestError> {
        let (digest, (doc, version), at) = match o {
            Outcome::Parsed(_, Ok(Parsed::Metadata(m)), at) => {
                self.report.repository_metadata.push(RepoFile {
                    file: location_of(self.files, at).file,
                    metadata: m,
                });
                return Ok(());
            }
            Outcome::Unchanged(i, at) => {
                self.known.mark(i, at);
                self.report.unchanged += 1;
                self.report.documents += 1;
                return Ok(());
            }
            Outcome::Parsed(_, Err(bad), _) if self.opts.keep_going => {
                self.report.skipped.push(bad);
                return Ok(());
            }
            Outcome::Parsed(_, Err(bad), _) => return Err(IngestError::BadInput(bad)),
            Outcome::Parsed(d, Ok(Parsed::Doc(doc, version)), at) => (d, (doc, version), at),
        };
        self.report.parsed += 1;
        self.report.documents += 1;
        let seen = Seen {
            at,
            version: DocVersion {
                version,
                time: doc.primary.modified.unwrap_or(i64::MIN),
            },
            content: content_prefix(&doc.primary.bytes),
        };
        let (c, id) = (doc.primary.collection, doc.primary.id.as_str());
        self.known.note_parsed(c, id);
        if let Some(prev) = self.parsed.seen(c, id) {
            if !self.stands_over(c, id, prev, seen)? {
                return Ok(());
            }
        }
        self.parsed.insert(c, id, seen);
        self.chunk.add(doc, digest, &self.opts.source, version, at);
        let full = self.chunk.size as u64 >= self.opts.batch_bytes || self.chunk.records >= self.opts.batch_records;
        // A dry run must see the whole input in one plan, so it never stages.
        if full && !self.opts.dry_run {
            let chunk = std::mem::take(&mut self.chunk);
            self.committer.stage(chunk, &mut self.report)?;
        }
        Ok(())
    }

    /// A document whose id an earlier document of this input had: whether it replaces
    /// that one. Identical content is a counted no-op; otherwise the newer own version
    /// stands and the other is named as superseded; the same version with other content
    /// is `ERR_INPUT_DUPLICATE_ID` (with `--keep-going`, the first stands).
    fn stands_over(&mut self, c: Collection, id: &str, prev: Seen, seen: Seen) -> Result<bool, IngestError> {
        if prev.content == seen.content {
            self.report.identical_duplicates += 1;
            self.parsed.insert(c, id, Seen { at: seen.at, ..prev });
            return Ok(false);
        }
        let (kept, dropped) = match seen.version.cmp(&prev.version) {
            std::cmp::Ordering::Greater => (seen.at, prev.at),
            std::cmp::Ordering::Less => (prev.at, seen.at),
            std::cmp::Ordering::Equal => {
                let bad = BadInput {
                    kind: BadInputKind::DuplicateId,
                    at: location_of(self.files, seen.at),
                    reason: format!(
                        "{} id {id:?} is also the document at {}, with other content and the same version",
                        c.name(),
                        location_of(self.files, prev.at)
                    ),
                };
                if !self.opts.keep_going {
                    return Err(IngestError::BadInput(bad));
                }
                self.report.skipped.push(bad);
                return Ok(false);
            }
        };
        self.report.superseded.push(Superseded {
            collection: c,
            id: id.to_string(),
            document: location_of(self.files, dropped),
            by: format!("the newer version at {}", location_of(self.files, kept)),
        });
        Ok(kept == seen.at)
    }

    /// After the input: the `--complete` removals (the source's records neither seen
    /// unchanged nor parsed) and the live records to keep because the input held their
    /// current version again after a changed one. One pass over the source's entries
    /// loaded at the start (`known`), in key order.
    fn resolve(&mut self) -> Result<Vec<(Collection, String)>, IngestError> {
        let complete = self.opts.complete;
        if !complete && (self.known.is_empty() || self.parsed.is_empty()) {
            return Ok(Vec::new());
        }
        let mut absent = Vec::new();
        let mut both = Vec::new();
        let live = self.known.len() as u64;
        for e in self.known.entries() {
            let seen_at = e.digest.zip(e.seen_at);
            match (e.parsed, seen_at) {
                (true, Some((d, h))) => both.push(((e.collection, e.id.to_string()), d, h)),
                (true, None) | (false, Some(_)) => {}
                (false, None) if complete => absent.push((e.collection, e.id.to_string())),
                (false, None) => {}
            }
        }
        for (key, d, h) in both {
            if self.live_stands(&key, h)? {
                self.chunk.restore(self.store, &self.opts.tenant, key, d)?;
            }
        }
        // A document that failed to parse must not make its live record disappear.
        if !self.report.skipped.is_empty() {
            self.report.complete_withheld = absent.len() as u64;
            absent.clear();
        }
        self.guard_removal(absent.len() as u64, live)?;
        Ok(absent)
    }

    /// The input held the live version of `key` (at `h`) and another one that was parsed:
    /// whether the live one stands. Same rules as [`Run::stands_over`].
    fn live_stands(&mut self, key: &(Collection, String), h: Position) -> Result<bool, IngestError> {
        let (c, id) = (key.0, key.1.as_str());
        let (Some(p), Some(e)) = (self.parsed.seen(c, id), self.store.record(&self.opts.tenant, c, id)?) else {
            return Ok(false);
        };
        if u64::from_le_bytes(e.object.0[..8].try_into().expect("8 bytes")) == p.content {
            return Ok(h > p.at);
        }
        let version = if p.version.version == 0 {
            0
        } else {
            let raw = self
                .store
                .object_required(&crate::store::ObjectKey::new(c, &e.subject, &e.object))?;
            identity::own_version_of_bytes(&raw)
        };
        let live = DocVersion {
            version,
            time: e.modified.unwrap_or(i64::MIN),
        };
        let (stands, kept, dropped) = match live.cmp(&p.version) {
            std::cmp::Ordering::Greater => (true, h, p.at),
            std::cmp::Ordering::Less => (false, p.at, h),
            std::cmp::Ordering::Equal => {
                let (first, second) = (h.min(p.at), h.max(p.at));
                let bad = BadInput {
                    kind: BadInputKind::DuplicateId,
                    at: location_of(self.files, second),
                    reason: format!(
                        "{} id {id:?} is also the document at {}, with other content and the same version",
                        c.name(),
                        location_of(self.files, first)
                    ),
                };
                if !self.opts.keep_going {
                    return Err(IngestError::BadInput(bad));
                }
                self.report.skipped.push(bad);
                return Ok(h < p.at);
            }
        };
        self.report.superseded.push(Superseded {
            collection: c,
            id: id.to_string(),
            document: location_of(self.files, dropped),
            by: format!("the newer version at {}", location_of(self.files, kept)),
        });
        Ok(stands)
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
    let tenant = &opts.tenant;
    let mut roots = identity::Roots::load(store, tenant, &opts.source, opts.source_root.as_deref())?;
    let input::Inputs {
        files,
        skipped_links,
        skipped_files,
        excluded,
    } = enumerate(paths, force_lines, &mut roots, &opts.selection)?;
    if files.is_empty() {
        return Err(IngestError::NoInput);
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    let previous_root = store.state(tenant)?.root();
    let expect_known = known::source_has_entries(store, tenant, &opts.source)?;
    let mut run = Run {
        store,
        opts,
        files: &files,
        known: KnownDigests::default(),
        parsed: ParsedKeys::new(),
        chunk: Chunk::default(),
        committer: Committer::new(store, tenant, roots.record().into_iter().collect()),
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
            skipped_files,
            excluded,
            superseded: Vec::new(),
            identical_duplicates: 0,
            repository_metadata: Vec::new(),
            source_root: roots.root().map(Path::to_path_buf),
            integrity: Integrity::default(),
            superseded_by_store: Vec::new(),
        },
    };
    progress.phase("parse", total);
    // The source's index loads on its own thread while the first input is digested.
    let read = std::thread::scope(|scope| {
        let loader = expect_known.then(|| scope.spawn(|| KnownDigests::load(store, tenant, &opts.source)));
        run.read(progress, loader)
    })
    .and_then(|()| run.resolve());
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
    for (collection, id, at) in std::mem::take(&mut report.superseded_by_store) {
        report.superseded.push(Superseded {
            collection,
            id,
            document: location_of(&files, at),
            by: "the stored record, a newer version of the document".into(),
        });
    }
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
