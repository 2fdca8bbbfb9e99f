//! Turning parsed documents into one atomic commit, whatever the input's size.
//!
//! Documents are collected into chunks of bounded size. An input that fits one chunk is
//! planned and committed in one synced batch, as every small mutation is. A larger one
//! is staged (`store::staging`): each full chunk is planned on top of the previous ones
//! (the records read through the staged changes), its objects written unreferenced, its
//! record changes staged and its leaf changes kept for one Merkle update after the last
//! chunk (`store::deferred`); the last chunk (with the `--complete` removals) ends in
//! one small commit that moves the head.
//! Memory stays bounded by the chunk size; a crash anywhere leaves the old state or the
//! new one.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rocksdb::WriteBatch;

use super::digest::Position;
use super::formats::{NewRecord, ParsedDoc};
use super::identity::{own_version_of_bytes, DocVersion};
use super::{IngestError, IngestReport};
use crate::apply::{self, Mutation, Plan};
use crate::ids::{InputDigest, ObjectId};
use crate::merkle::StateNode;
use crate::model::{Collection, Tenant};
use crate::store::bulk::{ScratchDir, Spill, SstOptions, SstSink};
use crate::store::deferred::DeferredTree;
use crate::store::staging::{self, LiveView, RecordView, StagedOps, StagedView};
use crate::store::{ObjectKey, RecordEntry, Store, StoreError, CF_OBJECTS};

const OBJECT_CHUNK_BYTES: usize = 16 << 20;

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
pub struct Chunk {
    pub m: Mutation,
    bytes: HashMap<ObjectId, Vec<u8>>,
    /// Records (primary + derived) added: a second bound on a chunk, since one VEX
    /// document yields hundreds of statements (and as many consensus records).
    pub records: usize,
    pub size: usize,
    /// Each parsed primary record's own version number and input position: a record
    /// whose stored version is newer is left out at planning (docs/formats.md).
    origin: HashMap<(Collection, String), (u64, Position)>,
}

impl Chunk {
    /// Drop a primary record queued earlier in this chunk, with its derived records.
    fn forget(&mut self, key: &(Collection, String)) {
        if let Some(prev) = self.m.upserts.remove(key) {
            for d in prev.derived {
                self.m.upserts.remove(&d);
            }
        }
        self.m.digests.remove(key);
        self.origin.remove(key);
    }

    pub fn add(&mut self, doc: ParsedDoc, digest: InputDigest, source: &str, version: u64, at: Position) {
        let key = (doc.primary.collection, doc.primary.id.clone());
        // The same document twice in one chunk: the later one wins whole.
        self.forget(&key);
        let derived_keys = doc.derived.iter().map(|d| (d.collection, d.id.clone())).collect();
        let doc_derived = doc.derived.len();
        let e = entry_of(&doc.primary, source, derived_keys);
        self.size += doc.primary.bytes.len();
        self.bytes.insert(e.object, doc.primary.bytes);
        self.m.upserts.insert(key.clone(), e);
        self.m.digests.insert(key.clone(), digest);
        self.origin.insert(key, (version, at));
        for d in doc.derived {
            let e = entry_of(&d, source, Vec::new());
            self.size += d.bytes.len();
            self.bytes.insert(e.object, d.bytes);
            self.m.upserts.insert((d.collection, d.id), e);
        }
        self.records += 1 + doc_derived;
    }

    /// Put the live record `key` (and its derived records) back in place of a document
    /// parsed earlier in this run: the input held the live version again, later.
    pub fn restore(
        &mut self,
        store: &Store,
        tenant: &Tenant,
        key: (Collection, String),
        digest: InputDigest,
    ) -> Result<(), StoreError> {
        self.forget(&key);
        let live = LiveView::new(store, tenant)?;
        let Some(e) = live.record(key.0, &key.1)? else {
            return Ok(());
        };
        for d in &e.derived {
            if let Some(de) = live.record(d.0, &d.1)? {
                let b = store.object_required(&ObjectKey::new(d.0, &de.subject, &de.object))?;
                self.bytes.insert(de.object, b);
                self.m.upserts.insert(d.clone(), de);
            }
        }
        let b = store.object_required(&ObjectKey::new(key.0, &e.subject, &e.object))?;
        self.bytes.insert(e.object, b);
        self.m.upserts.insert(key.clone(), e);
        self.m.digests.insert(key, digest);
        Ok(())
    }
}

/// What a staged run holds until its commit.
struct Staged {
    /// The tenant's state before the run.
    base: StateNode,
    tree: DeferredTree,
    /// Objects of the staged chunks: sorted into SST files and ingested just before the
    /// commit, so each is written once (not through memtables, flushes and compactions).
    objects: Spill,
    /// Holds the sorts' files; declared last, so dropped after them.
    dir: ScratchDir,
}

/// In-memory buffer of the objects' sort.
const OBJECTS_SPILL: usize = 32 << 20;

impl Staged {
    fn new(store: &Store, tenant: &Tenant) -> Result<Self, StoreError> {
        let dir = ScratchDir::new(store)?;
        Ok(Self {
            base: store.state(tenant)?,
            tree: DeferredTree::new(dir.path()),
            objects: Spill::new(dir.path(), "objects", OBJECTS_SPILL),
            dir,
        })
    }
}

/// Sort the staged objects into SST files and link them into the store (immutable and
/// unreferenced until the commit; content-addressed, so a key seen twice is one object).
fn ingest_objects(store: &Store, objects: Spill, dir: &ScratchDir) -> Result<(), StoreError> {
    let opts = SstOptions::new(CF_OBJECTS);
    let mut sink = SstSink::new(&opts, dir.path(), "objects");
    objects.drain_into(&mut sink, &|k| {
        StoreError::Corrupt(format!("ingest: object key {} with two contents", hex::encode(k)))
    })?;
    store.ingest(CF_OBJECTS, sink.finish()?)
}

/// Plans and writes the chunks of one ingest; see the module comment.
pub struct Committer<'a> {
    store: &'a Store,
    tenant: Tenant,
    /// What the chunks staged so far left for the commit (None: nothing staged, commit
    /// directly).
    staged: Option<Staged>,
    /// Whether a staged chunk changed anything.
    wrote: bool,
    /// Meta entries written with the commit (the source root, when this run records it).
    extra: Vec<(Vec<u8>, Vec<u8>)>,
    /// Own version numbers of the documents earlier chunks staged: their objects wait in
    /// the sort for the commit, so a later version of one of them in a later chunk is
    /// compared with this number, not with the stored bytes.
    staged_versions: HashMap<ObjectId, u64>,
}

impl<'a> Committer<'a> {
    pub fn new(store: &'a Store, tenant: &Tenant, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Self {
            store,
            tenant: tenant.clone(),
            staged: None,
            wrote: false,
            extra,
            staged_versions: HashMap::new(),
        }
    }

    pub fn is_staged(&self) -> bool {
        self.staged.is_some()
    }

    /// Stage a full chunk (the input continues after it).
    pub fn stage(&mut self, chunk: Chunk, report: &mut IngestReport) -> Result<(), IngestError> {
        let mut staged = match self.staged.take() {
            Some(s) => s,
            None => Staged::new(self.store, &self.tenant)?,
        };
        let r = self.stage_into(&mut staged, chunk, report);
        self.staged = Some(staged);
        r
    }

    fn stage_into(&mut self, staged: &mut Staged, chunk: Chunk, report: &mut IngestReport) -> Result<(), IngestError> {
        let view = StagedView::new(self.store, &self.tenant)?;
        let (plan, m) = self.prepare(&view, chunk, Vec::new(), report, Planning::Deferred(&mut staged.tree))?;
        if plan.is_noop() {
            return Ok(());
        }
        self.wrote = true;
        self.write_staged(&mut staged.objects, &plan, &m)?;
        self.staged_versions.extend(m.versions.iter().copied());
        Ok(())
    }

    fn write_staged(&self, objects: &mut Spill, plan: &Plan, m: &Prepared) -> Result<(), IngestError> {
        m.write_objects(self.store, plan, Some(objects))?;
        apply::write_nodes(self.store, plan, true)?;
        let mut ops = StagedOps::new(self.store, &self.tenant);
        apply::record_ops(plan, &m.m, &mut ops);
        ops.write()?;
        Ok(())
    }

    /// Plan the last chunk with the `--complete` removals and commit everything.
    pub fn finish(
        mut self,
        chunk: Chunk,
        absent: Vec<(Collection, String)>,
        dry_run: bool,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        let Some(mut staged) = self.staged.take() else {
            let view = LiveView::new(self.store, &self.tenant)?;
            let base = self.store.state(&self.tenant)?;
            let (plan, m) = self.prepare(&view, chunk, absent, report, Planning::Now(base))?;
            report.state_root = plan.root();
            if plan.is_noop() || dry_run {
                return Ok(());
            }
            m.write_objects(self.store, &plan, None)?;
            apply::commit(self.store, &plan, &m.m, &self.extra)?;
            report.committed = true;
            return Ok(());
        };
        let view = StagedView::new(self.store, &self.tenant)?;
        let (plan, m) = self.prepare(&view, chunk, absent, report, Planning::Deferred(&mut staged.tree))?;
        if !plan.is_noop() {
            self.wrote = true;
            self.write_staged(&mut staged.objects, &plan, &m)?;
        }
        if !self.wrote {
            staging::discard(self.store, &self.tenant)?;
            return Ok(());
        }
        // The objects, the Merkle update of every chunk at once (store::deferred), then
        // the head.
        let Staged {
            base,
            tree,
            objects,
            dir,
        } = staged;
        ingest_objects(self.store, objects, &dir)?;
        let state = tree.apply(self.store, &base)?;
        report.state_root = state.root();
        staging::commit_staged(self.store, &self.tenant, &state.root(), view.keyspace(), &self.extra)?;
        report.committed = true;
        Ok(())
    }

    /// Drop what was staged (the run is refused).
    pub fn abandon(self) -> Result<(), StoreError> {
        if self.staged.is_some() {
            staging::discard(self.store, &self.tenant)?;
        }
        Ok(())
    }
}

/// A chunk's mutation, extended with derived-record cleanup, removals and consensus,
/// with the bytes of every object it may write.
struct Prepared {
    m: Mutation,
    bytes: HashMap<ObjectId, Vec<u8>>,
    consensus: HashMap<ObjectId, Vec<u8>>,
    /// (object, own version) of the documents this chunk writes that carry one.
    versions: Vec<(ObjectId, u64)>,
}

/// How a chunk's Merkle update is made: now, on this state, or deferred to the end of a
/// staged run.
enum Planning<'t> {
    Now(StateNode),
    Deferred(&'t mut DeferredTree),
}

impl Committer<'_> {
    /// Extend a chunk into its full mutation (derived records the new versions no longer
    /// produce, `absent` records with theirs, the consensus of the VEX pairs touched),
    /// plan it and add its counts to `report`.
    fn prepare(
        &self,
        view: &dyn RecordView,
        chunk: Chunk,
        absent: Vec<(Collection, String)>,
        report: &mut IngestReport,
        planning: Planning<'_>,
    ) -> Result<(Plan, Prepared), IngestError> {
        let (store, tenant) = (self.store, &self.tenant);
        let Chunk {
            mut m, bytes, origin, ..
        } = chunk;
        let mut gone: BTreeSet<(Collection, String)> = BTreeSet::new();
        let mut older: Vec<(Collection, String)> = Vec::new();
        for ((c, id), e) in m.upserts.iter().filter(|((c, _), _)| c.is_primary()) {
            if let Some(old) = view.record(*c, id)? {
                let key = (*c, id.clone());
                if old.object != e.object
                    && stored_is_newer(store, &self.staged_versions, *c, &old, e, origin.get(&key).map(|o| o.0))?
                {
                    older.push(key);
                    continue;
                }
                gone.extend(old.derived.into_iter().filter(|d| !e.derived.contains(d)));
            }
        }
        for key in older {
            if let Some(e) = m.upserts.remove(&key) {
                for d in e.derived {
                    m.upserts.remove(&d);
                }
            }
            m.digests.remove(&key);
            let at = origin.get(&key).map_or(0, |o| o.1);
            report.superseded_by_store.push((key.0, key.1, at));
        }
        m.deletes.extend(gone);
        for (c, id) in absent {
            if let Some(old) = view.record(c, &id)? {
                m.deletes.extend(old.derived);
            }
            m.deletes.insert((c, id));
        }
        let versions: Vec<(ObjectId, u64)> = m
            .upserts
            .iter()
            .filter(|((c, _), _)| c.is_primary())
            .filter_map(|(k, e)| origin.get(k).map(|o| (e.object, o.0)))
            .collect();
        // VEX consensus (crate::consensus, docs/consensus.md): recompute the pairs whose
        // statements this chunk adds, changes or removes.
        let statement_bytes: HashMap<ObjectId, &[u8]> = m
            .upserts
            .iter()
            .filter(|((c, _), _)| *c == Collection::VexNormalized)
            .filter_map(|(_, e)| Some((e.object, bytes.get(&e.object)?.as_slice())))
            .collect();
        let consensus: HashMap<ObjectId, Vec<u8>> = crate::consensus::extend(store, view, &mut m, &statement_bytes)?
            .into_iter()
            .collect();
        let plan = match planning {
            Planning::Now(base) => apply::plan_on(store, view, tenant, base, &m)?,
            Planning::Deferred(tree) => {
                apply::plan_deferred(view, tenant, StateNode::empty(tenant.as_str()), &m, tree)?
            }
        };
        add_counts(&mut report.counts, &plan);
        Ok((
            plan,
            Prepared {
                m,
                bytes,
                consensus,
                versions,
            },
        ))
    }
}

/// Whether the stored version of a document is newer, by the documents' own version
/// fields, than the one this run parsed (`version`: its own version number, None for a
/// record restored from the store). The stored raw document is read only when the new
/// one has a version number (OSV compares by `modified` alone).
fn stored_is_newer(
    store: &Store,
    staged: &HashMap<ObjectId, u64>,
    c: Collection,
    old: &RecordEntry,
    new: &RecordEntry,
    version: Option<u64>,
) -> Result<bool, StoreError> {
    let Some(version) = version else {
        return Ok(false);
    };
    let old_version = if version == 0 {
        0
    } else {
        match store.object(&ObjectKey::new(c, &old.subject, &old.object))? {
            Some(bytes) => own_version_of_bytes(&bytes),
            None => *staged
                .get(&old.object)
                .ok_or_else(|| StoreError::Corrupt(format!("object {} is missing", old.object)))?,
        }
    };
    let stored = DocVersion {
        version: old_version,
        time: old.modified.unwrap_or(i64::MIN),
    };
    let parsed = DocVersion {
        version,
        time: new.modified.unwrap_or(i64::MIN),
    };
    Ok(stored > parsed)
}

fn add_counts(into: &mut BTreeMap<Collection, apply::ChangeCounts>, plan: &Plan) {
    for (c, n) in &plan.counts {
        let t = into.entry(*c).or_default();
        t.added += n.added;
        t.changed += n.changed;
        t.removed += n.removed;
    }
}

impl Prepared {
    /// Objects first (immutable, unreferenced until the commit): into write batches, or
    /// into a staged run's sort.
    fn write_objects(&self, store: &Store, plan: &Plan, sort: Option<&mut Spill>) -> Result<(), IngestError> {
        let mut writer = ObjectWriter::new(store, sort);
        for key in plan.objects(&self.m) {
            let id = key.id();
            let b = self
                .bytes
                .get(&id)
                .or_else(|| self.consensus.get(&id))
                .ok_or_else(|| StoreError::Corrupt(format!("ingest lost the bytes of object {id}")))?;
            writer.put(key, b)?;
        }
        writer.flush()
    }
}

/// Buffers immutable objects into write batches of bounded size (or a sort).
struct ObjectWriter<'a> {
    store: &'a Store,
    sort: Option<&'a mut Spill>,
    batch: WriteBatch,
    bytes: usize,
    seen: BTreeSet<ObjectKey>,
}

impl<'a> ObjectWriter<'a> {
    fn new(store: &'a Store, sort: Option<&'a mut Spill>) -> Self {
        Self {
            store,
            sort,
            batch: WriteBatch::default(),
            bytes: 0,
            seen: BTreeSet::new(),
        }
    }
    fn put(&mut self, key: ObjectKey, bytes: &[u8]) -> Result<(), IngestError> {
        if !self.seen.insert(key) {
            return Ok(());
        }
        // A staged run sorts its objects for the commit, except VEX statements: the
        // consensus of a later chunk reads the statements of earlier ones from the store
        // (`consensus::extend`). Written at once they are immutable and unreferenced until
        // the commit, like the staged Merkle nodes: garbage for `gc --full` if the run is
        // refused or killed, never a changed state.
        let statement = key.as_bytes()[0] == Collection::VexNormalized.code();
        if let Some(sort) = self.sort.as_mut().filter(|_| !statement) {
            return Ok(sort.put(key.as_bytes(), bytes)?);
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
        let pending = self.bytes > 0;
        self.bytes = 0;
        if pending {
            self.store.write_unreferenced(b)?;
        }
        Ok(())
    }
}
