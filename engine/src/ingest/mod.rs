//! `ingest` and `remove`: documents in, records out, one atomic commit.
//!
//! Pipeline: enumerate inputs → parse every document (in parallel, block by block) →
//! refuse the run on the first bad document unless `keep_going` → plan the mutation
//! against the live records (unchanged content is a no-op) → write new objects →
//! commit records, sources and the new head in one batch. A crash before the commit
//! leaves only unreferenced objects and nodes; the tenant's state is unchanged.
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
use crate::store::{RecordEntry, Store, CF_OBJECTS, CF_SOURCES};

/// Inputs larger than this are parsed twice (validate, then write) instead of being
/// held in memory between parsing and writing.
const RETAIN_LIMIT_BYTES: u64 = 512 << 20;
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

struct Pending {
    entry: RecordEntry,
    bytes: Option<Vec<u8>>,
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
    let retain = total <= RETAIN_LIMIT_BYTES;
    let tenant = &opts.tenant;
    let previous_root = store.state(tenant)?.root();

    // Pass 1: parse and validate everything before touching the store.
    progress.phase("parse", total);
    let mut pending: BTreeMap<(Collection, String), Pending> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut documents = 0u64;
    parse_all(&files, &opts.ctx, progress, |p| {
        match p {
            Err(bad) if opts.keep_going => skipped.push(bad),
            Err(bad) => return Err(IngestError::BadInput(bad)),
            Ok(doc) => {
                documents += 1;
                let key = (doc.primary.collection, doc.primary.id.clone());
                // The same document twice in one run: the later one wins whole.
                if let Some(prev) = pending.remove(&key) {
                    for d in prev.entry.derived {
                        pending.remove(&d);
                    }
                }
                let derived_keys = doc.derived.iter().map(|d| (d.collection, d.id.clone())).collect();
                pending.insert(
                    key,
                    Pending {
                        entry: entry_of(&doc.primary, &opts.source, derived_keys),
                        bytes: retain.then_some(doc.primary.bytes),
                    },
                );
                for d in doc.derived {
                    let entry = entry_of(&d, &opts.source, Vec::new());
                    // VEX statements stay in memory even for huge inputs: consensus
                    // reads them before their objects are written (they are small).
                    let keep = retain || d.collection == Collection::VexNormalized;
                    pending.insert(
                        (d.collection, d.id),
                        Pending {
                            entry,
                            bytes: keep.then_some(d.bytes),
                        },
                    );
                }
            }
        }
        Ok(())
    })?;
    progress.finish();

    // Plan: upserts, derived records a new version no longer produces, and (with
    // `complete`) the source's records absent from the input.
    let mut m = Mutation::default();
    for ((c, id), p) in &pending {
        if c.is_primary() {
            if let Some(old) = store.record(tenant, *c, id)? {
                for d in &old.derived {
                    if !p.entry.derived.contains(d) {
                        m.deletes.insert(d.clone());
                    }
                }
            }
        }
        m.upserts.insert((*c, id.clone()), p.entry.clone());
    }
    let mut complete_withheld = 0u64;
    if opts.complete {
        let prefix = format!("{}\0{}\0", tenant.as_str(), opts.source).into_bytes();
        let mut absent = Vec::new();
        for kv in store.scan_prefix(CF_SOURCES, &prefix) {
            let (k, _) = kv?;
            let rest = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            let Some((cname, id)) = rest.split_once('\0') else {
                continue;
            };
            let Some(c) = Collection::from_name(cname) else {
                continue;
            };
            if !pending.contains_key(&(c, id.to_string())) {
                absent.push((c, id.to_string()));
            }
        }
        if skipped.is_empty() {
            for (c, id) in absent {
                if let Some(old) = store.record(tenant, c, &id)? {
                    m.deletes.extend(old.derived.iter().cloned());
                }
                m.deletes.insert((c, id));
            }
        } else {
            complete_withheld = absent.len() as u64;
        }
    }
    // VEX consensus (crate::consensus, docs/consensus.md): recompute the pairs whose
    // statements this run adds, changes or removes.
    let statement_bytes: HashMap<ObjectId, &[u8]> = pending
        .iter()
        .filter(|((c, _), _)| *c == Collection::VexNormalized)
        .filter_map(|(_, p)| Some((p.entry.object, p.bytes.as_deref()?)))
        .collect();
    let consensus_objects = crate::consensus::extend(store, tenant, &mut m, &statement_bytes)?;
    let plan = apply::plan(store, tenant, &m)?;
    let mut report = IngestReport {
        tenant: tenant.to_string(),
        documents,
        counts: plan.counts.clone(),
        skipped,
        complete_withheld,
        previous_root,
        state_root: plan.root(),
        committed: false,
    };
    if plan.is_noop() || opts.dry_run {
        if plan.is_noop() {
            report.state_root = previous_root;
        }
        return Ok(report);
    }

    // Objects the plan needs that are not stored yet, then the commit.
    let needed: HashSet<ObjectId> = m
        .upserts
        .values()
        .map(|e| e.object)
        .filter(|o| !store.has_object(o).unwrap_or(false))
        .collect();
    let mut writer = ObjectWriter::new(store);
    if retain {
        for p in pending.values() {
            if let Some(b) = &p.bytes {
                if needed.contains(&p.entry.object) {
                    writer.put(p.entry.object, b)?;
                }
            }
        }
    } else {
        progress.phase("store", total);
        parse_all(&files, &opts.ctx, progress, |p| {
            if let Ok(doc) = p {
                for r in std::iter::once(&doc.primary).chain(doc.derived.iter()) {
                    let id = ObjectId::of(&r.bytes);
                    if needed.contains(&id) {
                        writer.put(id, &r.bytes)?;
                    }
                }
            }
            Ok(())
        })?;
        progress.finish();
    }
    for (id, b) in &consensus_objects {
        if needed.contains(id) {
            writer.put(*id, b)?;
        }
    }
    writer.flush()?;
    apply::commit(store, &plan, &[])?;
    report.committed = true;
    Ok(report)
}

/// Buffers immutable objects into write batches of bounded size.
struct ObjectWriter<'a> {
    store: &'a Store,
    batch: WriteBatch,
    bytes: usize,
    seen: BTreeSet<ObjectId>,
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
    fn put(&mut self, id: ObjectId, bytes: &[u8]) -> Result<(), IngestError> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        self.store.batch_put(&mut self.batch, CF_OBJECTS, id.as_bytes(), bytes);
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
    let consensus_objects = crate::consensus::extend(store, tenant, &mut m, &HashMap::new())?;
    let plan = apply::plan(store, tenant, &m)?;
    let mut batch = WriteBatch::default();
    for (id, b) in &consensus_objects {
        if !store.has_object(id)? {
            store.batch_put(&mut batch, CF_OBJECTS, id.as_bytes(), b);
        }
    }
    store.write_unreferenced(batch)?;
    apply::commit(store, &plan, &[])?;
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
