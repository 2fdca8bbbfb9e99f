//! Replacing a tenant's whole state (full bundles, reset-baseline deltas) by bulk load.
//!
//! The records arrive file by file, each hashed once by the reader. Objects go straight
//! into sorted SST files (a sharded data file is one (collection, shard) placement prefix,
//! and shard files arrive in shard order); records, the source index and Merkle nodes,
//! keyed by id or hash, go through an external sort. The Merkle tree is built bottom-up
//! from the empty state as each shard completes (every node is written once).
//!
//! Nothing is handed to RocksDB until [`BulkLoad::root`] equals the bundle's signed target.
//! [`BulkLoad::commit`] then ingests the files — objects and nodes (immutable,
//! unreferenced), records and sources of the next records generation (which no head
//! names) — and only then one synced batch moves the head to the new root and generation
//! and drops the old generation. A crash at any point before that batch leaves the old
//! state; files left in the staging area go with it, and ingested leftovers of the next
//! generation are cleared by the next attempt before it ingests its own.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use super::ImportError;
use crate::apply::ChangeCounts;
use crate::bundle::error::BundleError;
use crate::ids::NodeHash;
use crate::merkle::{KindNode, KindRef, Node, ShardNode, StateNode, SubjectNode, SubjectRef};
use crate::model::{shard_of, Collection, Leaf, Tenant};
use crate::store::bulk::{Spill, SstOptions, SstSink};
use crate::store::{
    encode_entry, head_key, head_value, node_key, Keyspace, NodeTag, ObjectKey, RecordEntry, Store, StoreError,
    CF_META, CF_NODES, CF_OBJECTS, CF_RECORDS, CF_SOURCES,
};

/// Memory bounds of the external sorts (their pairs are spilled to run files beyond).
const RECORDS_SPILL: usize = 48 << 20;
const NODES_SPILL: usize = 48 << 20;
const SOURCES_SPILL: usize = 16 << 20;
const OBJECTS_SPILL: usize = 32 << 20;

/// SST options of the four column families a bulk load writes (kept alive by the caller
/// while the load's writers use them).
pub struct BulkOptions {
    objects: SstOptions,
    nodes: SstOptions,
    records: SstOptions,
    sources: SstOptions,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            objects: SstOptions::new(CF_OBJECTS),
            nodes: SstOptions::new(CF_NODES),
            records: SstOptions::new(CF_RECORDS),
            sources: SstOptions::new(CF_SOURCES),
        }
    }
}

/// Objects on their way into SST files: one sink per collection (their key ranges are
/// disjoint), fed in key order; objects that arrive out of order (one-file-per-subject
/// layouts, or an archive whose shard files are not in order) are sorted at the end.
pub struct ObjectFiles<'o> {
    opts: &'o SstOptions,
    dir: PathBuf,
    sinks: BTreeMap<Collection, SstSink<'o>>,
    late: Spill,
}

impl<'o> ObjectFiles<'o> {
    pub fn new(opts: &'o BulkOptions, dir: &Path) -> Self {
        Self {
            opts: &opts.objects,
            dir: dir.to_path_buf(),
            sinks: BTreeMap::new(),
            late: Spill::new(dir, "objects-late", OBJECTS_SPILL),
        }
    }

    /// Objects of one file (appended to the collection's sink when they follow what it
    /// holds, else sorted later).
    pub fn put(&mut self, c: Collection, mut objs: Vec<(ObjectKey, &[u8])>) -> Result<(), StoreError> {
        objs.sort_unstable_by_key(|a| a.0);
        objs.dedup_by(|a, b| a.0 == b.0);
        let Some(first) = objs.first() else { return Ok(()) };
        let (opts, dir) = (self.opts, &self.dir);
        let sink = self
            .sinks
            .entry(c)
            .or_insert_with(|| SstSink::new(opts, dir, &format!("objects-{}", c.code())));
        if sink.accepts(first.0.as_bytes()) {
            for (k, v) in objs {
                sink.put(k.as_bytes(), v)?;
            }
        } else {
            for (k, v) in objs {
                self.late.put(k.as_bytes(), v)?;
            }
        }
        Ok(())
    }

    /// Finish the files and ingest them (objects are immutable and unreferenced).
    pub fn ingest(self, store: &Store) -> Result<(), StoreError> {
        let mut in_order = Vec::new();
        for (_, sink) in self.sinks {
            in_order.extend(sink.finish()?);
        }
        store.ingest(CF_OBJECTS, in_order)?;
        ingest_sorted(store, CF_OBJECTS, self.late, self.opts, &self.dir)
    }
}

/// Sort content-addressed pairs (objects, nodes) into SST files and ingest them.
pub fn ingest_sorted(store: &Store, cf: &str, spill: Spill, opts: &SstOptions, dir: &Path) -> Result<(), StoreError> {
    let mut sink = SstSink::new(opts, dir, cf);
    spill.drain_into(&mut sink, &|_: &[u8]| {
        StoreError::Corrupt(format!("a content-addressed key of {cf} holds two values"))
    })?;
    store.ingest(cf, sink.finish()?)
}

/// Merkle nodes of an update, sorted into SST files and ingested.
pub fn ingest_nodes(
    store: &Store,
    nodes: &[(NodeHash, Vec<u8>)],
    opts: &BulkOptions,
    dir: &Path,
) -> Result<(), StoreError> {
    let mut spill = Spill::new(dir, "delta-nodes", NODES_SPILL);
    for (h, b) in nodes {
        let tag = NodeTag::of_encoded(b).expect("nodes are encoded by Node::encode");
        spill.put(&node_key(tag, h), b)?;
    }
    ingest_sorted(store, CF_NODES, spill, &opts.nodes, dir)
}

/// One record as read from a data file: subject, leaf, document bytes.
pub type ReadRecord<'a> = (String, Leaf, &'a [u8]);

/// The Merkle tree of a new state, built shard by shard from nothing.
struct TreeBuilder {
    tenant: String,
    kinds: BTreeMap<Collection, KindNode>,
}

fn malformed(what: String, reason: &str) -> BundleError {
    BundleError::Malformed {
        path: what,
        reason: reason.into(),
    }
}

impl TreeBuilder {
    fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            kinds: Collection::ALL.into_iter().map(|c| (c, KindNode::empty(c))).collect(),
        }
    }

    /// The complete contents of one shard: its subject and shard nodes go to `nodes`.
    fn add_shard(
        &mut self,
        c: Collection,
        shard: u8,
        subjects: BTreeMap<String, Vec<Leaf>>,
        nodes: &mut Spill,
    ) -> Result<(), ImportError> {
        let kind = self.kinds.get_mut(&c).expect("every collection");
        if kind.shards[shard as usize] != crate::merkle::empty_shard_root(shard) {
            return Err(malformed(
                format!("{} shard {shard:02x}", c.name()),
                "shard appears twice in the bundle",
            )
            .into());
        }
        let mut refs = Vec::with_capacity(subjects.len());
        for (subject, mut leaves) in subjects {
            leaves.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            if let Some(w) = leaves.windows(2).find(|w| w[0].id == w[1].id) {
                return Err(malformed(format!("{} record {:?}", c.name(), w[0].id), "record listed twice").into());
            }
            let node = SubjectNode { subject, leaves };
            let root = node.root();
            refs.push(SubjectRef {
                subject: node.subject.clone(),
                root,
                records: node.leaves.len() as u64,
            });
            nodes.put(&node_key(NodeTag::Subject, &root), &Node::Subject(node).encode())?;
        }
        let node = ShardNode { shard, subjects: refs };
        let root = node.root();
        kind.records += node.records();
        kind.subjects += node.subjects.len() as u64;
        kind.shards[shard as usize] = root;
        nodes.put(&node_key(NodeTag::Shard, &root), &Node::Shard(node).encode())?;
        Ok(())
    }

    /// Kind and state nodes; the new state.
    fn finish(&self, nodes: &mut Spill) -> Result<StateNode, StoreError> {
        let mut state = StateNode::empty(&self.tenant);
        for k in state.kinds.iter_mut() {
            let kind = &self.kinds[&k.collection];
            let root = kind.root();
            if root != k.root {
                nodes.put(&node_key(NodeTag::Kind, &root), &Node::Kind(kind.clone()).encode())?;
            }
            *k = KindRef {
                collection: k.collection,
                root,
                records: kind.records,
                subjects: kind.subjects,
            };
        }
        nodes.put(
            &node_key(NodeTag::State, &state.root()),
            &Node::State(state.clone()).encode(),
        )?;
        Ok(state)
    }
}

pub struct BulkLoad<'s, 'o> {
    store: &'s Store,
    tenant: Tenant,
    old: Keyspace,
    new: Keyspace,
    old_state: StateNode,
    source: String,
    opts: &'o BulkOptions,
    dir: PathBuf,
    objects: ObjectFiles<'o>,
    records: Spill,
    sources: Spill,
    nodes: Spill,
    tree: TreeBuilder,
    state: Option<StateNode>,
    pub counts: BTreeMap<Collection, ChangeCounts>,
}

impl<'s, 'o> BulkLoad<'s, 'o> {
    /// `dir` holds the files being built (inside the store folder: ingestion moves them).
    pub fn new(
        store: &'s Store,
        tenant: &Tenant,
        source: &str,
        opts: &'o BulkOptions,
        dir: &Path,
    ) -> Result<Self, StoreError> {
        let old = store.keyspace(tenant)?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            store,
            tenant: tenant.clone(),
            new: Keyspace::new(tenant.as_str(), old.generation + 1),
            old,
            old_state: store.state(tenant)?,
            source: source.to_string(),
            opts,
            dir: dir.to_path_buf(),
            objects: ObjectFiles::new(opts, dir),
            records: Spill::new(dir, "records", RECORDS_SPILL),
            sources: Spill::new(dir, "sources", SOURCES_SPILL),
            nodes: Spill::new(dir, "nodes", NODES_SPILL),
            tree: TreeBuilder::new(tenant.as_str()),
            state: None,
            counts: BTreeMap::new(),
        })
    }

    fn put_record(&mut self, c: Collection, subject: &str, leaf: &Leaf) -> Result<(), StoreError> {
        let entry = RecordEntry {
            subject: subject.to_string(),
            object: leaf.object,
            modified: leaf.modified,
            source: self.source.clone(),
            derived: Vec::new(),
        };
        self.records
            .put(&self.new.record_key(c, &leaf.id), &encode_entry(&entry))?;
        if c.is_primary() {
            self.sources.put(&self.new.source_key(&self.source, c, &leaf.id), b"")?;
        }
        self.counts.entry(c).or_default().added += 1;
        Ok(())
    }

    /// Records and tree of complete shards: `leaves` holds every record of each shard it
    /// touches.
    fn put_leaves(&mut self, c: Collection, leaves: Vec<(String, Leaf)>) -> Result<(), ImportError> {
        let mut shards: BTreeMap<u8, BTreeMap<String, Vec<Leaf>>> = BTreeMap::new();
        for (subject, leaf) in leaves {
            self.put_record(c, &subject, &leaf)?;
            shards
                .entry(shard_of(&subject))
                .or_default()
                .entry(subject)
                .or_default()
                .push(leaf);
        }
        for (shard, subjects) in shards {
            self.tree.add_shard(c, shard, subjects, &mut self.nodes)?;
        }
        Ok(())
    }

    /// Every record of a data file that holds whole shards (a sharded file, or a
    /// single-file collection).
    pub fn add_file(&mut self, c: Collection, recs: Vec<ReadRecord<'_>>) -> Result<(), ImportError> {
        let objs = recs
            .iter()
            .map(|(s, l, d)| (ObjectKey::new(c, s, &l.object), *d))
            .collect();
        self.objects.put(c, objs)?;
        self.put_leaves(c, recs.into_iter().map(|(s, l, _)| (s, l)).collect())
    }

    /// The document of a one-file-per-subject record, ahead of its leaf.
    pub fn add_object(&mut self, c: Collection, key: ObjectKey, doc: &[u8]) -> Result<(), StoreError> {
        self.objects.put(c, vec![(key, doc)])
    }

    /// The leaves of a one-file-per-subject collection (every record of it).
    pub fn add_leaves(&mut self, c: Collection, leaves: Vec<(String, Leaf)>) -> Result<(), ImportError> {
        self.put_leaves(c, leaves)
    }

    /// The root of the new state (after everything added so far).
    pub fn root(&mut self) -> Result<NodeHash, StoreError> {
        if self.state.is_none() {
            self.state = Some(self.tree.finish(&mut self.nodes)?);
        }
        Ok(self.state.as_ref().expect("set above").root())
    }

    /// Ingest everything and switch the tenant to the new state, with `extra` meta
    /// entries, in one commit. Call only once [`Self::root`] is the verified target.
    pub fn commit(mut self, extra: &[(Vec<u8>, Vec<u8>)]) -> Result<BTreeMap<Collection, ChangeCounts>, ImportError> {
        let root = self.root()?;
        let BulkLoad {
            store: s,
            tenant,
            old,
            new,
            old_state,
            opts,
            dir,
            objects,
            records,
            sources,
            nodes,
            mut counts,
            ..
        } = self;
        let record_twice = |k: &[u8]| {
            let id = String::from_utf8_lossy(&k[new.prefix().len()..]).replace('\0', " record ");
            ImportError::from(malformed(id, "appears twice in the bundle with different content"))
        };
        objects.ingest(s)?;
        ingest_sorted(s, CF_NODES, nodes, &opts.nodes, &dir)?;
        let mut rec_sink = SstSink::new(&opts.records, &dir, "records");
        records.drain_into(&mut rec_sink, &record_twice)?;
        let mut source_sink = SstSink::new(&opts.sources, &dir, CF_SOURCES);
        sources.drain_into(&mut source_sink, &|_: &[u8]| {
            StoreError::Corrupt("a source key twice".into())
        })?;
        // Leftovers of an interrupted attempt at this generation go first (their range
        // tombstone is older than the files ingested after it).
        let leftover = |cf: &str| -> Result<bool, StoreError> {
            Ok(s.first_key_from(cf, new.prefix())?
                .is_some_and(|k| k.starts_with(new.prefix())))
        };
        if leftover(CF_RECORDS)? || leftover(CF_SOURCES)? {
            let mut b = WriteBatch::default();
            b.delete_range_cf(s.cf(CF_RECORDS), new.prefix(), &new.end());
            b.delete_range_cf(s.cf(CF_SOURCES), new.prefix(), &new.end());
            s.write_unreferenced(b)?;
        }
        s.ingest(CF_RECORDS, rec_sink.finish()?)?;
        s.ingest(CF_SOURCES, source_sink.finish()?)?;
        for k in &old_state.kinds {
            if k.records > 0 {
                counts.entry(k.collection).or_default().removed += k.records;
            }
        }
        let mut b = WriteBatch::default();
        b.delete_range_cf(s.cf(CF_RECORDS), old.prefix(), &old.end());
        b.delete_range_cf(s.cf(CF_SOURCES), old.prefix(), &old.end());
        s.batch_put(&mut b, CF_META, &head_key(tenant.as_str()), &head_value(&root, &new));
        for (k, v) in extra {
            s.batch_put(&mut b, CF_META, k, v);
        }
        s.commit(b)?;
        Ok(counts)
    }
}
