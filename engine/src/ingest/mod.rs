//! `ingest` and `remove`: documents in, records out, one atomic commit.
//!
//! Pipeline: enumerate inputs → parse every document (in parallel, block by block) →
//! refuse the run on the first bad document unless `keep_going` (nothing written yet) →
//! plan the mutation against the live records (unchanged content is a no-op) → write
//! new objects → commit records, sources and the new head in one batch. A crash before
//! the commit leaves only unreferenced objects and nodes; the tenant's state is
//! unchanged. Inputs over `batch_bytes` (256 MiB) are validated whole first, then
//! parsed again and committed in chunks of half that, so memory stays bounded; a crash
//! then leaves a committed prefix, and rerunning completes the ingest.
pub mod error;
pub mod formats;
pub mod input;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;
use rocksdb::WriteBatch;

pub use error::{BadInput, BadInputKind, IngestError, InputLocation};
use formats::{parse_document, DocError, NewRecord, ParseContext, ParsedDoc};
use input::{enumerate, for_each_block, InputFile, RawDoc};

use crate::apply::{self, ChangeCounts, Mutation};
use crate::audit::Progress;
use crate::ids::{NodeHash, ObjectId};
use crate::model::{Collection, Tenant};
use crate::store::{ObjectKey, RecordEntry, Store, StoreError, CF_SOURCES};

/// Most records (primary + derived) committed in one batch. Consensus adds about one
/// record per VEX statement on top; at 1M-record scale larger batches cost memory out of
/// proportion (measured: 99k statements in one batch peaked at 1 GiB, in 16k-statement
/// chunks at 350 MiB).
pub const DEFAULT_BATCH_RECORDS: usize = 64_000;

/// Default of [`IngestOptions::batch_bytes`].
pub const DEFAULT_BATCH_BYTES: u64 = 256 << 20;
const BLOCK_BYTES: usize = 16 << 20;
const OBJECT_CHUNK_BYTES: usize = 64 << 20;

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
    /// Inputs up to this size are held in memory and committed in one batch; larger
    /// ones are validated whole, then parsed again and committed in chunks of half this
    /// size (bounded memory; a crash leaves a committed prefix).
    pub batch_bytes: u64,
    /// Most records (primary + derived) per commit; more are committed in chunks.
    pub batch_records: usize,
}

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
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    pub tenant: String,
    pub documents: u64,
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
}

fn to_bad(file: &InputFile, doc: &RawDoc, e: DocError) -> BadInput {
    let (kind, pointer, reason) = match e {
        DocError::Unrecognized(r) => (BadInputKind::Unrecognized, None, r),
        DocError::Invalid { pointer, reason } => (BadInputKind::Invalid, Some(pointer), reason),
    };
    BadInput {
        kind,
        at: InputLocation {
            file: file.path.clone(),
            line: doc.line,
            pointer,
        },
        reason,
    }
}

fn parse_raw(file: &InputFile, doc: &RawDoc, ctx: &ParseContext) -> Result<ParsedDoc, BadInput> {
    let v: serde_json::Value = serde_json::from_slice(&doc.bytes).map_err(|e| BadInput {
        kind: BadInputKind::Invalid,
        at: InputLocation {
            file: file.path.clone(),
            line: doc.line.or(Some(e.line())),
            pointer: None,
        },
        reason: format!("not valid JSON: {e}"),
    })?;
    let name = (file.shape == input::FileShape::Json).then_some(file.name.as_str());
    parse_document(v, ctx, name).map_err(|e| to_bad(file, doc, e))
}

/// Parse every document of `files`, calling `f` in input order.
fn parse_all(
    files: &[InputFile],
    ctx: &ParseContext,
    progress: &dyn Progress,
    mut f: impl FnMut(Result<ParsedDoc, BadInput>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    for file in files {
        for_each_block(file, BLOCK_BYTES, |block| {
            let n: u64 = block.iter().map(|d| d.bytes.len() as u64).sum();
            let parsed: Vec<_> = block.par_iter().map(|d| parse_raw(file, d, ctx)).collect();
            for p in parsed {
                f(p)?;
            }
            progress.advance(n);
            Ok(())
        })?;
    }
    Ok(())
}

fn entry_of(r: &NewRecord, source: &str, derived: Vec<(Collection, String)>) -> RecordEntry {
    RecordEntry {
        subject: r.subject.clone(),
        object: ObjectId::of(&r.bytes),
        modified: r.modified,
        source: source.to_string(),
        derived,
    }
}

/// Documents for one commit: the mutation and the bytes of the objects it may need.
#[derive(Default)]
struct Chunk {
    m: Mutation,
    bytes: HashMap<ObjectId, Vec<u8>>,
    /// Records (primary + derived) added: a second bound on a chunk, since one VEX
    /// document yields hundreds of statements (and as many consensus records).
    records: usize,
    size: usize,
}

impl Chunk {
    fn add(&mut self, doc: ParsedDoc, source: &str) {
        let key = (doc.primary.collection, doc.primary.id.clone());
        // The same document twice in one chunk: the later one wins whole.
        if let Some(prev) = self.m.upserts.remove(&key) {
            for d in prev.derived {
                self.m.upserts.remove(&d);
            }
        }
        let derived_keys = doc.derived.iter().map(|d| (d.collection, d.id.clone())).collect();
        let doc_derived = doc.derived.len();
        let e = entry_of(&doc.primary, source, derived_keys);
        self.size += doc.primary.bytes.len();
        self.bytes.insert(e.object, doc.primary.bytes);
        self.m.upserts.insert(key, e);
        for d in doc.derived {
            let e = entry_of(&d, source, Vec::new());
            self.size += d.bytes.len();
            self.bytes.insert(e.object, d.bytes);
            self.m.upserts.insert((d.collection, d.id), e);
        }
        self.records += 1 + doc_derived;
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
    let files = enumerate(paths, force_lines)?;
    if files.is_empty() {
        return Err(IngestError::NoInput);
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    // A dry run must see the whole input in one plan, so it always retains.
    let retain = total <= opts.batch_bytes || opts.dry_run;
    let chunk_bytes = (opts.batch_bytes / 2).max(1) as usize;
    let tenant = &opts.tenant;
    let previous_root = store.state(tenant)?.root();

    // Pass 1: parse and validate everything before touching the store. Small inputs
    // are kept for the commit; large ones are parsed again, chunk by chunk.
    progress.phase("parse", total);
    let mut retained: Vec<ParsedDoc> = Vec::new();
    let mut seen: HashSet<(Collection, String)> = HashSet::new();
    let mut skipped = Vec::new();
    let mut documents = 0u64;
    parse_all(&files, &opts.ctx, progress, |p| {
        match p {
            Err(bad) if opts.keep_going => skipped.push(bad),
            Err(bad) => return Err(IngestError::BadInput(bad)),
            Ok(doc) => {
                documents += 1;
                seen.insert((doc.primary.collection, doc.primary.id.clone()));
                if retain {
                    retained.push(doc);
                }
            }
        }
        Ok(())
    })?;
    progress.finish();

    // `complete`: the source's records absent from the input go, unless documents were
    // skipped (a document that failed to parse must not make its record disappear).
    let mut complete_withheld = 0u64;
    let mut absent = Vec::new();
    if opts.complete {
        let prefix = store.keyspace(tenant)?.source_prefix(&opts.source);
        for kv in store.scan_prefix(CF_SOURCES, &prefix) {
            let (k, _) = kv?;
            let rest = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            let Some((cname, id)) = rest.split_once('\0') else {
                continue;
            };
            let Some(c) = Collection::from_name(cname) else {
                continue;
            };
            if !seen.contains(&(c, id.to_string())) {
                absent.push((c, id.to_string()));
            }
        }
        if !skipped.is_empty() {
            complete_withheld = absent.len() as u64;
            absent.clear();
        }
    }
    drop(seen);

    let mut report = IngestReport {
        tenant: tenant.to_string(),
        documents,
        counts: BTreeMap::new(),
        skipped,
        complete_withheld,
        previous_root,
        state_root: previous_root,
        committed: false,
    };
    if retain {
        // One atomic commit unless the input holds more than `batch_records` records (then
        // chunks, like large inputs; a dry run always plans in one piece).
        let mut chunk = Chunk::default();
        for doc in retained {
            chunk.add(doc, &opts.source);
            if chunk.records >= opts.batch_records && !opts.dry_run {
                commit_chunk(
                    store,
                    tenant,
                    std::mem::take(&mut chunk),
                    Vec::new(),
                    false,
                    &mut report,
                )?;
            }
        }
        commit_chunk(store, tenant, chunk, absent, opts.dry_run, &mut report)?;
        if report.committed {
            store.settle()?;
        }
        return Ok(report);
    }
    progress.phase("store", total);
    let mut pending = Chunk::default();
    parse_all(&files, &opts.ctx, progress, |p| {
        if let Ok(doc) = p {
            pending.add(doc, &opts.source);
            if pending.size >= chunk_bytes || pending.records >= opts.batch_records {
                commit_chunk(
                    store,
                    tenant,
                    std::mem::take(&mut pending),
                    Vec::new(),
                    false,
                    &mut report,
                )?;
            }
        }
        Ok(())
    })?;
    commit_chunk(store, tenant, pending, absent, false, &mut report)?;
    progress.finish();
    // Large commits leave a write-ahead log to replay and compactions to run: settle them
    // here rather than in the next command.
    store.settle()?;
    Ok(report)
}

/// Plan and commit one chunk: its upserts, the derived records their new versions no
/// longer produce, `absent` records (with their derived ones) and the consensus of the
/// VEX pairs touched. Adds its counts to `report`.
fn commit_chunk(
    store: &Store,
    tenant: &Tenant,
    chunk: Chunk,
    absent: Vec<(Collection, String)>,
    dry_run: bool,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let Chunk { mut m, bytes, .. } = chunk;
    for ((c, id), e) in m.upserts.iter().filter(|((c, _), _)| c.is_primary()) {
        if let Some(old) = store.record(tenant, *c, id)? {
            m.deletes
                .extend(old.derived.into_iter().filter(|d| !e.derived.contains(d)));
        }
    }
    for (c, id) in absent {
        if let Some(old) = store.record(tenant, c, &id)? {
            m.deletes.extend(old.derived);
        }
        m.deletes.insert((c, id));
    }
    // VEX consensus (crate::consensus, docs/consensus.md): recompute the pairs whose
    // statements this chunk adds, changes or removes.
    let statement_bytes: HashMap<ObjectId, &[u8]> = m
        .upserts
        .iter()
        .filter(|((c, _), _)| *c == Collection::VexNormalized)
        .filter_map(|(_, e)| Some((e.object, bytes.get(&e.object)?.as_slice())))
        .collect();
    let consensus_objects: HashMap<ObjectId, Vec<u8>> =
        crate::consensus::extend(store, tenant, &mut m, &statement_bytes)?
            .into_iter()
            .collect();
    let plan = apply::plan(store, tenant, &m)?;
    for (c, n) in &plan.counts {
        let t = report.counts.entry(*c).or_default();
        t.added += n.added;
        t.changed += n.changed;
        t.removed += n.removed;
    }
    if plan.is_noop() {
        return Ok(());
    }
    report.state_root = plan.root();
    if dry_run {
        return Ok(());
    }
    // Objects first (immutable, unreferenced until the commit), then the commit.
    let mut writer = ObjectWriter::new(store);
    for key in plan.objects(&m) {
        let id = key.id();
        let b = bytes
            .get(&id)
            .or_else(|| consensus_objects.get(&id))
            .ok_or_else(|| StoreError::Corrupt(format!("ingest lost the bytes of object {id}")))?;
        writer.put(key, b)?;
    }
    writer.flush()?;
    apply::commit(store, &plan, &m, &[])?;
    report.committed = true;
    Ok(())
}

/// Buffers immutable objects into write batches of bounded size.
struct ObjectWriter<'a> {
    store: &'a Store,
    batch: WriteBatch,
    bytes: usize,
    seen: BTreeSet<ObjectKey>,
}

impl<'a> ObjectWriter<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            batch: WriteBatch::default(),
            bytes: 0,
            seen: BTreeSet::new(),
        }
    }
    fn put(&mut self, key: ObjectKey, bytes: &[u8]) -> Result<(), IngestError> {
        if !self.seen.insert(key) {
            return Ok(());
        }
        self.store.put_object(&mut self.batch, &key, bytes);
        self.bytes += bytes.len();
        if self.bytes >= OBJECT_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), IngestError> {
        let b = std::mem::take(&mut self.batch);
        self.bytes = 0;
        self.store.write_unreferenced(b)?;
        Ok(())
    }
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
    let consensus_objects: HashMap<ObjectId, Vec<u8>> =
        crate::consensus::extend(store, tenant, &mut m, &HashMap::new())?
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
