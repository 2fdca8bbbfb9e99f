//! Materialising records into bundle files, one (collection, shard) unit at a time,
//! in parallel. Each unit reads only its own part of the tree and writes its file to
//! the staging directory, so memory stays bounded by the largest shard.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::bundle::archive::{Segment, SegmentReader};
use crate::bundle::format::INDEX_FORMAT_VERSION_1;
use crate::bundle::layout::{layout, safe_name, shard_path, FileLayout};
use crate::ids::{FileDigest, NodeHash, ObjectId};
use crate::merkle::{shard_root, subject_root, SubjectRef};
use crate::model::{Collection, Leaf};
use crate::store::{ObjectKey, Store, StoreError};

use super::select::Filter;
use super::ExportError;

/// One subject's entry in an index file. `records` is the serialized JSON object
/// `{id: {"hash", "modified"}}` (index format 2: `{id: {"modified"}}` but for
/// one-file-per-subject collections), kept as text so that indexes of millions of records
/// do not live in memory as JSON trees.
pub struct IndexEntry {
    pub subject: String,
    pub shard: u8,
    pub root: Option<NodeHash>,
    pub file: String,
    pub records: String,
}

/// The records of one unit: every subject of a shard with its (already filtered) leaves.
pub struct UnitInput {
    pub collection: Collection,
    pub shard: u8,
    pub subjects: Vec<(String, Vec<Leaf>)>,
}

/// What a unit produced.
pub struct UnitOutput {
    pub collection: Collection,
    pub shard: u8,
    /// Files written (path in bundle, staged file).
    pub files: Vec<(String, Body)>,
    /// For single-file collections: the unit's lines, concatenated later.
    pub lines: Vec<u8>,
    /// Subject roots of the exported (filtered) records.
    pub subjects: Vec<SubjectRef>,
    /// Index entries of the unit's subjects (moved to `index_part` by `spill_index`).
    pub index: Vec<IndexEntry>,
    pub index_part: Option<PathBuf>,
    pub records: u64,
}

/// Read a shard from the tree and filter it.
pub fn load_unit(
    store: &Store,
    c: Collection,
    shard: u8,
    root: &NodeHash,
    filter: &Filter,
) -> Result<UnitInput, StoreError> {
    let node = store.shard_node(shard, root)?;
    let mut subjects = Vec::with_capacity(node.subjects.len());
    for s in node.subjects {
        if !filter.subject(&s.subject) {
            continue;
        }
        let leaves: Vec<Leaf> = store
            .subject_node(&s.root)?
            .leaves
            .into_iter()
            .filter(|l| filter.leaf(l))
            .collect();
        if !leaves.is_empty() {
            subjects.push((s.subject, leaves));
        }
    }
    Ok(UnitInput {
        collection: c,
        shard,
        subjects,
    })
}

fn fetch_objects<'s>(
    store: &'s Store,
    c: Collection,
    shard: u8,
    leaves: &[&Leaf],
) -> Result<Vec<rocksdb::DBPinnableSlice<'s>>, ExportError> {
    let keys: Vec<ObjectKey> = leaves
        .iter()
        .map(|l| ObjectKey::in_shard(c, shard, &l.object))
        .collect();
    store
        .objects(&keys)?
        .into_iter()
        .zip(leaves)
        .map(|(o, l)| {
            o.ok_or_else(|| ExportError::ObjectMissing {
                id: l.id.clone(),
                object: l.object,
            })
        })
        .collect()
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn push_hash(out: &mut Vec<u8>, h: &ObjectId) {
    let mut hexbuf = [0u8; 64];
    hex::encode_to_slice(h.as_bytes(), &mut hexbuf).expect("64 hex digits");
    out.extend_from_slice(b"\"blake3:");
    out.extend_from_slice(&hexbuf);
    out.push(b'"');
}

fn push_modified(out: &mut Vec<u8>, m: Option<i64>) {
    match m {
        Some(t) => out.extend_from_slice(t.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// A record line: `{"kind","subject","id","hash","modified","doc"}` with `doc` verbatim.
pub fn record_line(out: &mut Vec<u8>, c: Collection, subject: &str, leaf: &Leaf, doc: &[u8]) {
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(c.name().as_bytes());
    out.extend_from_slice(b"\",\"subject\":");
    push_json_str(out, subject);
    out.extend_from_slice(b",\"id\":");
    push_json_str(out, &leaf.id);
    out.extend_from_slice(b",\"hash\":");
    push_hash(out, &leaf.object);
    out.extend_from_slice(b",\"modified\":");
    push_modified(out, leaf.modified);
    out.extend_from_slice(b",\"doc\":");
    out.extend_from_slice(doc);
    out.extend_from_slice(b"}\n");
}

/// Seals a file's shipped bytes (encryption) — identity when the bundle is not encrypted.
pub type Sealer<'a> = &'a (dyn Fn(&str, Vec<u8>) -> Result<Vec<u8>, ExportError> + Sync);

pub struct UnitContext<'a> {
    pub store: &'a Store,
    pub staging: &'a Path,
    /// Prefix of data paths: `""` for full bundles, `"changed/"` for deltas.
    pub prefix: &'a str,
    pub zstd_level: i32,
    pub seal: Sealer<'a>,
    /// Keep produced files in memory instead of staging them on disk: for deltas, whose
    /// hundreds of small shard files would otherwise cost more in file creation than in
    /// compression. Full bundles always stage (their size follows the store's).
    pub in_memory: bool,
    /// The index format written (`bundle::format::index_format_version`): format 2 names
    /// each record's hash only for one-file-per-subject collections.
    pub index_version: u32,
}

/// A produced bundle file, already sealed when its path is encrypted.
pub enum Body {
    /// Staged on disk; digest and size taken from the bytes as they were written.
    File(PathBuf, FileDigest, u64),
    Sealed(Vec<u8>),
}

pub fn write_staged(ctx: &UnitContext<'_>, path: &str, bytes: Vec<u8>) -> Result<Body, ExportError> {
    let sealed = (ctx.seal)(path, bytes)?;
    if ctx.in_memory {
        return Ok(Body::Sealed(sealed));
    }
    let dest = ctx.staging.join(path);
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(|e| ExportError::io(p, e))?;
    }
    let mut f = std::fs::File::create(&dest).map_err(|e| ExportError::io(&dest, e))?;
    f.write_all(&sealed).map_err(|e| ExportError::io(&dest, e))?;
    Ok(Body::File(dest, FileDigest::of(&sealed), sealed.len() as u64))
}

thread_local! {
    /// One zstd context per thread, kept across files: a delta writes ~1,000 small shard
    /// files, and creating (and zeroing) a level-3 context per file cost more than
    /// compressing them. Every frame starts from a reset context, so the bytes do not
    /// depend on what the context compressed before.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

pub fn compress(bytes: &[u8], level: i32) -> Result<Vec<u8>, ExportError> {
    let io = |e| ExportError::io(Path::new("zstd"), e);
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level).map_err(io)?;
            // The frame checksum makes a corrupted shard a zstd error on its own, before
            // the manifest digest of the file is compared.
            c.include_checksum(true).map_err(io)?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(bytes).map_err(io)
    })
}

pub fn run_unit(ctx: &UnitContext<'_>, input: UnitInput) -> Result<UnitOutput, ExportError> {
    let c = input.collection;
    let mut out = UnitOutput {
        collection: c,
        shard: input.shard,
        files: Vec::new(),
        lines: Vec::new(),
        subjects: Vec::new(),
        index: Vec::new(),
        index_part: None,
        records: 0,
    };
    let mut lines = Vec::new();
    let file_for = |subject: &str| -> String {
        match layout(c) {
            FileLayout::Sharded(dir) => format!("{}{}", ctx.prefix, shard_path(dir, input.shard)),
            FileLayout::Single(p) => format!("{}{p}", ctx.prefix),
            FileLayout::PerSubject(dir, name) => format!("{}{dir}/{}/{name}", ctx.prefix, safe_name(subject)),
        }
    };
    let all: Vec<&Leaf> = input.subjects.iter().flat_map(|(_, l)| l.iter()).collect();
    let mut fetched = fetch_objects(ctx.store, c, input.shard, &all)?.into_iter();
    for (subject, leaves) in &input.subjects {
        let docs: Vec<rocksdb::DBPinnableSlice<'_>> = fetched.by_ref().take(leaves.len()).collect();
        let file = file_for(subject);
        let hashes = ctx.index_version == INDEX_FORMAT_VERSION_1 || matches!(layout(c), FileLayout::PerSubject(..));
        let recs = index_records(leaves, hashes);
        match layout(c) {
            FileLayout::PerSubject(..) => {
                if docs.len() != 1 {
                    return Err(ExportError::Layout(format!(
                        "{} subject {subject:?} holds {} records; one file per subject needs exactly one",
                        c.name(),
                        docs.len()
                    )));
                }
                let path = write_staged(ctx, &file, docs[0].to_vec())?;
                out.files.push((file.clone(), path));
            }
            _ => {
                for (leaf, doc) in leaves.iter().zip(&docs) {
                    record_line(&mut lines, c, subject, leaf, doc);
                }
            }
        }
        let root = subject_root(subject, leaves);
        out.records += leaves.len() as u64;
        out.subjects.push(SubjectRef {
            subject: subject.clone(),
            root,
            records: leaves.len() as u64,
        });
        out.index.push(IndexEntry {
            subject: subject.clone(),
            shard: input.shard,
            root: Some(root),
            file,
            records: recs,
        });
    }
    match layout(c) {
        FileLayout::Sharded(_) if !lines.is_empty() => {
            let file = file_for("");
            let path = write_staged(ctx, &file, compress(&lines, ctx.zstd_level)?)?;
            out.files.push((file, path));
        }
        FileLayout::Single(_) => out.lines = lines,
        _ => {}
    }
    Ok(out)
}

/// A subject's `records` object of an index entry: `{id: {"hash", "modified"}}`, or
/// `{id: {"modified"}}` without `hashes`.
fn index_records(leaves: &[Leaf], hashes: bool) -> String {
    let mut recs: Vec<u8> = Vec::with_capacity(leaves.len() * if hashes { 110 } else { 40 });
    recs.push(b'{');
    // Object bytes are not re-hashed here: RocksDB checks every block's checksum on
    // read, objects were hashed when written, `verify`/`import` re-hash every record
    // on the far side and `verify --store` re-hashes the store (docs/architecture.md,
    // "Integrity"); re-hashing here was a visible share of a full export.
    for (i, leaf) in leaves.iter().enumerate() {
        if i > 0 {
            recs.push(b',');
        }
        push_json_str(&mut recs, &leaf.id);
        if hashes {
            recs.extend_from_slice(b":{\"hash\":");
            push_hash(&mut recs, &leaf.object);
            recs.extend_from_slice(b",\"modified\":");
        } else {
            recs.extend_from_slice(b":{\"modified\":");
        }
        push_modified(&mut recs, leaf.modified);
        recs.push(b'}');
    }
    recs.push(b'}');
    String::from_utf8(recs).expect("JSON text is UTF-8")
}

/// Shard root of a unit's exported subjects.
pub fn unit_shard_root(o: &UnitOutput) -> NodeHash {
    shard_root(o.shard, &o.subjects)
}

/// Assemble single-file collections from their units' lines, sorted by (subject, id).
/// `outputs` may hold every collection's units; only `c`'s are read.
pub fn finish_single(
    ctx: &UnitContext<'_>,
    c: Collection,
    outputs: &[UnitOutput],
) -> Result<Option<(String, Body)>, ExportError> {
    let FileLayout::Single(p) = layout(c) else {
        return Ok(None);
    };
    let mut all: Vec<&[u8]> = Vec::new();
    for o in outputs.iter().filter(|o| o.collection == c) {
        all.extend(o.lines.split_inclusive(|b| *b == b'\n'));
    }
    if all.is_empty() {
        return Ok(None);
    }
    // Lines start with {"kind":..,"subject":..,"id":..}: bytewise order is (subject, id)
    // order within one collection up to JSON escaping, and is deterministic either way.
    all.sort_unstable();
    let mut joined = Vec::with_capacity(all.iter().map(|l| l.len()).sum());
    for l in all {
        joined.extend_from_slice(l);
    }
    let file = format!("{}{p}", ctx.prefix);
    let path = write_staged(ctx, &file, compress(&joined, ctx.zstd_level)?)?;
    Ok(Some((file, path)))
}

/// One index entry as JSON text: `"subject":{"shard","root","file","records"}`.
pub fn entry_text(e: &IndexEntry, out: &mut Vec<u8>) {
    push_json_str(out, &e.subject);
    let meta = json!({"shard": format!("{:02x}", e.shard), "root": e.root.map(|r| r.to_prefixed()), "file": e.file});
    let mut meta = serde_json::to_vec(&meta).expect("json");
    meta.pop();
    out.push(b':');
    out.extend_from_slice(&meta);
    out.extend_from_slice(b",\"records\":");
    out.extend_from_slice(e.records.as_bytes());
    out.push(b'}');
}

/// Move a unit's index entries to a part file (full exports: the index of millions of
/// records then never sits in memory).
pub fn spill_index(o: &mut UnitOutput, dir: &Path) -> Result<(), ExportError> {
    if o.index.is_empty() {
        return Ok(());
    }
    let mut text = Vec::new();
    for (i, e) in o.index.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        entry_text(e, &mut text);
    }
    std::fs::create_dir_all(dir).map_err(|e| ExportError::io(dir, e))?;
    let path = dir.join(format!("{}-{:02x}.part", o.collection.name(), o.shard));
    std::fs::write(&path, text).map_err(|e| ExportError::io(&path, e))?;
    o.index = Vec::new();
    o.index_part = Some(path);
    Ok(())
}

/// The four index files (compact JSON) as segments: the units' entries stay where they are
/// (memory or part files) and are streamed into the archive, so the index of millions of
/// records is neither held in memory nor copied into a combined file. Returns bundle path →
/// segments, in file order.
pub fn index_segments(
    outputs: &[UnitOutput],
    kind_roots: &BTreeMap<Collection, NodeHash>,
    index_version: u32,
) -> BTreeMap<&'static str, Vec<Segment>> {
    let mut by_c: BTreeMap<Collection, Vec<&UnitOutput>> = BTreeMap::new();
    for o in outputs {
        by_c.entry(o.collection).or_default().push(o);
    }
    let mut files = BTreeMap::new();
    for f in crate::bundle::layout::INDEX_FILES {
        let mut segs = Vec::new();
        let mut text = format!("{{\"formatVersion\":{index_version},\"collections\":{{").into_bytes();
        let mut first_c = true;
        for (c, units) in by_c.iter().filter(|(c, _)| crate::bundle::layout::index_of(**c) == f) {
            let records: u64 = units.iter().map(|u| u.records).sum();
            let mut shards = serde_json::Map::new();
            for u in units.iter().filter(|u| !u.subjects.is_empty()) {
                shards.insert(
                    format!("{:02x}", u.shard),
                    json!({"root": unit_shard_root(u).to_prefixed(), "records": u.records}),
                );
            }
            if !first_c {
                text.push(b',');
            }
            first_c = false;
            let head =
                json!({"root": kind_roots.get(c).map(|r| r.to_prefixed()), "records": records, "shards": shards});
            let mut head = serde_json::to_vec(&head).expect("json");
            head.pop();
            push_json_str(&mut text, c.name());
            text.push(b':');
            text.extend_from_slice(&head);
            text.extend_from_slice(b",\"subjects\":{");
            let mut first = true;
            for u in units {
                // A part file exists only for a unit with entries.
                if u.index_part.is_none() && u.index.is_empty() {
                    continue;
                }
                if !first {
                    text.push(b',');
                }
                first = false;
                match &u.index_part {
                    Some(part) => {
                        segs.push(Segment::Bytes(std::mem::take(&mut text)));
                        segs.push(Segment::File(part.clone()));
                    }
                    None => {
                        for (i, e) in u.index.iter().enumerate() {
                            if i > 0 {
                                text.push(b',');
                            }
                            entry_text(e, &mut text);
                        }
                    }
                }
            }
            text.extend_from_slice(b"}}");
        }
        text.extend_from_slice(b"}}\n");
        segs.push(Segment::Bytes(text));
        segs.retain(|s| !matches!(s, Segment::Bytes(b) if b.is_empty()));
        files.insert(f, segs);
    }
    files
}

/// Write the four index files into `dir` (published mirrors: index format 1, every
/// record with its hash). Returns bundle path → file.
pub fn build_indexes(
    outputs: &[UnitOutput],
    kind_roots: &BTreeMap<Collection, NodeHash>,
    dir: &Path,
) -> Result<BTreeMap<&'static str, PathBuf>, ExportError> {
    let mut files = BTreeMap::new();
    for (f, segs) in index_segments(outputs, kind_roots, INDEX_FORMAT_VERSION_1) {
        let path = dir.join(f);
        std::fs::create_dir_all(path.parent().expect("index files live in indexes/"))
            .map_err(|e| ExportError::io(&path, e))?;
        let io = |e: std::io::Error| ExportError::io(&path, e);
        let mut out = std::fs::File::create(&path).map_err(io)?;
        std::io::copy(&mut SegmentReader::new(segs), &mut out).map_err(io)?;
        files.insert(f, path);
    }
    Ok(files)
}

/// sha256 and length of a file made of segments, read once.
pub fn digest_segments(segs: &[Segment]) -> Result<(FileDigest, u64), ExportError> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    for s in segs {
        match s {
            Segment::Bytes(b) => {
                h.update(b);
                n += b.len() as u64;
            }
            Segment::File(p) => {
                n += hash_file_into(p, &mut h)?;
            }
        }
    }
    Ok((FileDigest(h.finalize().into()), n))
}

fn hash_file_into(p: &Path, h: &mut sha2::Sha256) -> Result<u64, ExportError> {
    let io = |e: std::io::Error| ExportError::io(p, e);
    std::io::copy(&mut std::fs::File::open(p).map_err(io)?, h).map_err(io)
}
