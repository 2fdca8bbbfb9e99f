//! The deterministic `tar.zst` container and its defensive reader.
//!
//! Writer invariants: entries are regular files only, in the order `manifest.yaml`,
//! `signatures/manifest.sig`, `signatures/export.sig`, then every other path sorted
//! bytewise; mode 0644, uid/gid 0, empty owner names, mtime = the run's `createdAt`;
//! the outer zstd level is fixed and it always runs in multi-threaded mode (whose output
//! does not depend on the worker count). The same inputs therefore give the same bytes.
//!
//! Reader: because the signed manifest comes first, the reader verifies it (through
//! the caller's gate) before accepting any other entry, then refuses unlisted entries
//! and entries whose declared size differs from the manifest before reading their
//! data. Decompressed bytes are bounded by the declared sizes (a zstd bomb is cut off).
//! The archive is exactly one zstd frame: after the tar end the reader decodes the frame to
//! its end (so libzstd checks the frame checksum), accepts only zero padding there, and
//! refuses any byte after the frame (trailing data or a second frame).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{io_err, write_err, BundleError};
use super::format::Artifact;
use crate::ids::FileDigest;

/// Outer compression level. The data files inside are compressed already.
pub const OUTER_ZSTD_LEVEL: i32 = 1;

pub const MANIFEST: &str = "manifest.yaml";
pub const EXPORT: &str = "export.json";
pub const MANIFEST_SIG: &str = "signatures/manifest.sig";
pub const EXPORT_SIG: &str = "signatures/export.sig";

pub enum EntrySource {
    Bytes(Vec<u8>),
    File(PathBuf),
    /// A file made of consecutive segments (index files streamed from their parts).
    Parts(Vec<Segment>),
}

/// One piece of a file assembled on the fly.
pub enum Segment {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Segment {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Segment::Bytes(b) => Ok(b.len() as u64),
            Segment::File(p) => Ok(std::fs::metadata(p)?.len()),
        }
    }
}

/// Reads segments one after the other, opening each file only when it is reached.
pub struct SegmentReader {
    rest: std::collections::VecDeque<Segment>,
    current: Option<Box<dyn Read>>,
}

impl SegmentReader {
    pub fn new(segments: Vec<Segment>) -> Self {
        Self {
            rest: segments.into(),
            current: None,
        }
    }
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            match self.rest.pop_front() {
                None => return Ok(0),
                Some(Segment::Bytes(b)) => self.current = Some(Box::new(std::io::Cursor::new(b))),
                Some(Segment::File(p)) => self.current = Some(Box::new(File::open(p)?)),
            }
        }
    }
}

pub struct Entry {
    /// Path below the top folder.
    pub path: String,
    pub source: EntrySource,
}

fn rank(path: &str) -> (u8, &str) {
    match path {
        MANIFEST => (0, path),
        MANIFEST_SIG => (1, path),
        EXPORT_SIG => (2, path),
        _ => (3, path),
    }
}

/// Prefix of the temporary archive beside its destination (swept by `export::debris`).
pub const PARTIAL_PREFIX: &str = ".stellamirror-partial-";

/// `.stellamirror-partial-<bundle name>-<pid>` beside `dest`.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{PARTIAL_PREFIX}{name}-{}", std::process::id()))
}

/// Write the archive to `dest` atomically (temp file, fsync, rename). Returns its size.
pub fn write_archive(dest: &Path, top: &str, mut entries: Vec<Entry>, mtime: u64) -> Result<u64, BundleError> {
    entries.sort_by(|a, b| rank(&a.path).cmp(&rank(&b.path)));
    let tmp = partial_path(dest);
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let mut enc = zstd::Encoder::new(BufWriter::with_capacity(1 << 20, file), OUTER_ZSTD_LEVEL)?;
        // A frame checksum makes transport corruption a clear error even before digests.
        enc.include_checksum(true)?;
        // zstd's streaming multi-threaded output is the same for any worker count >= 1
        // (zstd issues #2238/#2327), so bundles stay byte-identical across machines.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        enc.multithread(workers.max(1))?;
        let mut tar = tar::Builder::new(enc);
        tar.mode(tar::HeaderMode::Deterministic);
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            let name = format!("{top}/{}", e.path);
            match e.source {
                EntrySource::Bytes(b) => {
                    h.set_size(b.len() as u64);
                    tar.append_data(&mut h, &name, b.as_slice())?;
                }
                EntrySource::File(p) => {
                    let f = File::open(p)?;
                    h.set_size(f.metadata()?.len());
                    tar.append_data(&mut h, &name, f)?;
                }
                EntrySource::Parts(segs) => {
                    let mut size = 0;
                    for s in &segs {
                        size += s.len()?;
                    }
                    h.set_size(size);
                    tar.append_data(&mut h, &name, SegmentReader::new(segs))?;
                }
            }
        }
        let enc = tar.into_inner()?;
        let mut w = enc.finish()?;
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(dest, e, "room for the bundle archive".into()));
    }
    std::fs::rename(&tmp, dest).map_err(|e| write_err(dest, e, "room for the bundle archive".into()))?;
    if let Some(dir) = dest.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(std::fs::metadata(dest).map_err(|e| io_err(dest, e))?.len())
}

/// The pre-authentication budget: what a reader spends on an archive before the manifest
/// signature verified. Only `manifest.yaml` (at most [`Limits::max_manifest_bytes`],
/// 16 MiB by default) and its signatures (at most [`MAX_SIGNATURE_BYTES`] each) are read;
/// any other entry before them is refused at once, unread. Decompressed bytes are bounded by
/// the sum (plus tar headers), and the zstd window by [`WINDOW_LOG_MAX`], so memory stays
/// within a few tens of MiB whatever the archive holds (docs/bundle-format.md, "Limits").
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// The largest zstd window a reader accepts (2^24 = 16 MiB; the writer uses 2^19 to 2^21).
pub const WINDOW_LOG_MAX: u32 = 24;
/// Tar headers and padding of the manifest and its two signatures.
const PRE_AUTH_SLACK: u64 = 64 << 10;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Decompressed bytes allowed in total (after authentication the signed sizes set the
    /// bound, never above this).
    pub max_total_bytes: u64,
    pub max_entries: u64,
    /// The largest `manifest.yaml` read before its signature is verified.
    pub max_manifest_bytes: u64,
}

impl Limits {
    /// Decompressed bytes read before the manifest signature verified.
    pub fn pre_auth_bytes(&self) -> u64 {
        self.max_manifest_bytes + 2 * MAX_SIGNATURE_BYTES + PRE_AUTH_SLACK
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 64 << 30,
            max_entries: super::validate::MAX_ARTIFACTS as u64 + 3,
            max_manifest_bytes: 16 << 20,
        }
    }
}

/// A file as staged: where it is, its digest and size.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub digest: FileDigest,
    pub bytes: u64,
}

/// A bundle laid out in a directory (extracted or given), with every file's digest.
#[derive(Clone, Debug)]
pub struct Staged {
    pub root: PathBuf,
    pub top: String,
    pub files: BTreeMap<String, StagedFile>,
}

impl Staged {
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, BundleError> {
        let p = self.root.join(rel);
        std::fs::read(&p).map_err(|_| BundleError::MissingFile { path: rel.to_string() })
    }
}

/// The error `Bounded` raises when its limit is reached, recognised by type (not by text).
#[derive(Debug)]
struct LimitExceeded(u64);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed size limit of {} bytes exceeded", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// Decompressed-byte counter with a limit that can be raised once the manifest is known.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: Arc<AtomicU64>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let limit = self.limit.load(Ordering::Relaxed);
        if self.read > limit {
            return Err(std::io::Error::other(LimitExceeded(limit)));
        }
        Ok(n)
    }
}

/// Validate a tar path: relative, only normal components, under one top folder.
fn split_entry_path(raw: &[u8]) -> Result<(String, String), String> {
    let s = std::str::from_utf8(raw).map_err(|_| "path is not UTF-8".to_string())?;
    if s.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut parts = Vec::new();
    for c in Path::new(s).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().to_string()),
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::CurDir => return Err("path contains '.'".into()),
            _ => return Err("absolute path".into()),
        }
    }
    if parts.len() < 2 {
        return Err("entry outside the bundle's top folder".into());
    }
    let top = parts.remove(0);
    Ok((top, parts.join("/")))
}

/// What the reader hands the gate: the manifest and its signature, unparsed.
pub struct GateInput<'a> {
    pub manifest: &'a [u8],
    pub manifest_sig: &'a [u8],
}

/// Where the reader puts an entry's bytes (decided per entry by the visitor).
pub enum Target {
    /// Hash them only.
    Discard,
    /// Keep them in memory and hand them to [`ArchiveVisitor::complete`] once their size
    /// and sha256 are checked against the manifest (or, before the manifest is known, as
    /// read).
    Memory,
    /// Write them to this file.
    File(PathBuf),
    /// Hand them to [`ArchiveVisitor::consume`] as they are read (hashed on the way).
    Stream,
}

/// Receives a bundle archive entry by entry (see [`read_archive`]).
pub trait ArchiveVisitor {
    /// Verify the manifest signature and return the listed artifacts. Runs as soon as the
    /// manifest and its signature have been read, before any other entry is accepted.
    fn gate(&mut self, input: &GateInput<'_>) -> Result<Vec<Artifact>, BundleError>;
    /// Where entry `rel` (below the top folder) of `size` bytes goes.
    fn target(&mut self, top: &str, rel: &str, size: u64) -> Result<Target, BundleError>;
    /// The bytes of an entry kept in memory.
    fn complete(&mut self, rel: &str, bytes: Vec<u8>) -> Result<(), BundleError>;
    /// The bytes of a [`Target::Stream`] entry, as the reader reads them: whatever `r`
    /// yields is hashed, what the visitor leaves unread is drained, and the entry's size
    /// and sha256 are checked against the manifest before [`read_archive`] goes on (a digest
    /// mismatch is reported before the visitor's own refusal of the same entry).
    fn consume(&mut self, rel: &str, r: &mut dyn Read) -> Result<(), BundleError> {
        let _ = (rel, r);
        Ok(())
    }
}

/// Stream `archive` into `staging`, refusing unsafe entries. `gate` verifies the
/// manifest signature and returns the listed artifacts; it runs as soon as the manifest
/// and its signature have been read (before any other entry is accepted).
pub fn stage_archive(
    archive: &Path,
    staging: &Path,
    limits: &Limits,
    gate: &mut dyn FnMut(&GateInput<'_>) -> Result<Vec<Artifact>, BundleError>,
) -> Result<Staged, BundleError> {
    struct Stage<'a> {
        staging: &'a Path,
        gate: &'a mut dyn FnMut(&GateInput<'_>) -> Result<Vec<Artifact>, BundleError>,
    }
    impl ArchiveVisitor for Stage<'_> {
        fn gate(&mut self, input: &GateInput<'_>) -> Result<Vec<Artifact>, BundleError> {
            (self.gate)(input)
        }
        fn target(&mut self, top: &str, rel: &str, _: u64) -> Result<Target, BundleError> {
            let dest = self.staging.join(top).join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|err| write_err(parent, err, "room for the staged bundle".into()))?;
            }
            Ok(Target::File(dest))
        }
        fn complete(&mut self, _: &str, _: Vec<u8>) -> Result<(), BundleError> {
            Ok(())
        }
    }
    let (top, files) = read_archive(archive, limits, &mut Stage { staging, gate })?;
    Ok(Staged {
        root: staging.join(&top),
        top,
        files,
    })
}

/// A tar entry type in words (for refusals).
fn entry_kind(kind: tar::EntryType) -> String {
    use tar::EntryType as E;
    match kind {
        E::Symlink => "symbolic link".into(),
        E::Link => "hard link".into(),
        E::Directory => "directory".into(),
        E::Char | E::Block => "device".into(),
        E::Fifo => "FIFO".into(),
        other => format!("tar type '{}'", other.as_byte().escape_ascii()),
    }
}

/// Checks of one entry's header: a regular file at a safe relative path under the one top
/// folder, not seen before. Returns (top folder, path below it).
fn check_header(
    e: &tar::Entry<'_, impl Read>,
    top: &mut Option<String>,
    files: &BTreeMap<String, StagedFile>,
) -> Result<(String, String), BundleError> {
    let raw_path = e.path_bytes().to_vec();
    let shown = String::from_utf8_lossy(&raw_path).to_string();
    let kind = e.header().entry_type();
    if kind != tar::EntryType::Regular && kind != tar::EntryType::Continuous {
        return Err(BundleError::UnsafeEntry {
            entry: shown,
            reason: format!("{} entries are not allowed (regular files only)", entry_kind(kind)),
        });
    }
    let (t, rel) = split_entry_path(&raw_path).map_err(|reason| BundleError::UnsafeEntry {
        entry: shown.clone(),
        reason,
    })?;
    if t != "mirror" && t != "delta" {
        return Err(BundleError::UnsafeEntry {
            entry: shown,
            reason: "top folder must be mirror/ or delta/".into(),
        });
    }
    match top {
        None => *top = Some(t.clone()),
        Some(prev) if *prev != t => {
            return Err(BundleError::UnsafeEntry {
                entry: shown,
                reason: format!("second top folder (first was {prev}/)"),
            })
        }
        _ => {}
    }
    if files.contains_key(&rel) {
        return Err(BundleError::UnsafeEntry {
            entry: shown,
            reason: "duplicate entry".into(),
        });
    }
    Ok((t, rel))
}

/// Before its data is read: an entry must be listed with its size once the manifest is
/// verified (returns its listed digest); before that, only the manifest and its
/// signatures are accepted, within the pre-authentication budget.
fn check_listed(
    listed: Option<&BTreeMap<String, (u64, FileDigest)>>,
    rel: &str,
    size: u64,
    limits: &Limits,
) -> Result<Option<FileDigest>, BundleError> {
    let is_sig = rel == MANIFEST_SIG || rel == EXPORT_SIG;
    let budget = match rel {
        MANIFEST => Some(limits.max_manifest_bytes),
        _ if is_sig => Some(MAX_SIGNATURE_BYTES),
        _ => None,
    };
    if let Some(b) = budget.filter(|b| size > *b) {
        return Err(BundleError::PreAuthBudget {
            entry: rel.into(),
            size,
            budget: b,
        });
    }
    match listed {
        Some(_) if budget.is_some() => Ok(None),
        Some(l) => match l.get(rel) {
            None => Err(BundleError::UnlistedFile { path: rel.into() }),
            Some((b, _)) if *b != size => Err(BundleError::DigestMismatch {
                path: rel.into(),
                what: "size".into(),
                expected: b.to_string(),
                actual: size.to_string(),
            }),
            Some((_, d)) => Ok(Some(*d)),
        },
        None if budget.is_none() => Err(BundleError::BeforeManifest { entry: rel.into() }),
        None => Ok(None),
    }
}

/// Read `archive` entry by entry, refusing unsafe entries, and hand each to `v`. Once the
/// manifest is verified (by `v.gate`), an unlisted entry or one whose size differs is
/// refused before its data is read, and an entry whose sha256 differs is refused when it
/// ends (before `v.complete` sees it). Returns the top folder and every entry's digest.
pub fn read_archive(
    archive: &Path,
    limits: &Limits,
    v: &mut dyn ArchiveVisitor,
) -> Result<(String, BTreeMap<String, StagedFile>), BundleError> {
    let arc_name = archive.display().to_string();
    let malformed = |reason: String| BundleError::Malformed {
        path: arc_name.clone(),
        reason,
    };
    let file = File::open(archive).map_err(|e| io_err(archive, e))?;
    let mut dec = zstd::Decoder::new(file)
        .map_err(|e| malformed(format!("not zstd: {e}")))?
        .single_frame();
    dec.window_log_max(WINDOW_LOG_MAX)
        .map_err(|e| malformed(format!("zstd window: {e}")))?;
    let limit = Arc::new(AtomicU64::new(limits.pre_auth_bytes()));
    let bounded = Bounded {
        inner: dec,
        read: 0,
        limit: limit.clone(),
    };
    let mut ar = tar::Archive::new(bounded);
    let mut top: Option<String> = None;
    let mut files: BTreeMap<String, StagedFile> = BTreeMap::new();
    let mut listed: Option<BTreeMap<String, (u64, FileDigest)>> = None;
    let mut manifest: Option<Vec<u8>> = None;
    let mut manifest_sig: Option<Vec<u8>> = None;
    let mut count = 0u64;
    let entries = ar.entries().map_err(|e| malformed(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut e = entry.map_err(|e| classify_read_error(&arc_name, e, limits))?;
        count += 1;
        if count > limits.max_entries {
            return Err(BundleError::TooLarge {
                what: "entry count".into(),
                limit: limits.max_entries,
            });
        }
        let (t, rel) = check_header(&e, &mut top, &files)?;
        let size = e
            .header()
            .size()
            .map_err(|err| malformed(format!("{rel}: bad size: {err}")))?;
        let is_meta = rel == MANIFEST || rel == MANIFEST_SIG || rel == EXPORT_SIG;
        let expected = check_listed(listed.as_ref(), &rel, size, limits)?;
        let keep_meta = is_meta && listed.is_none();
        let target = v.target(&t, &rel, size)?;
        let keep = keep_meta || matches!(target, Target::Memory);
        let dest = match &target {
            Target::File(p) => Some(p.as_path()),
            _ => None,
        };
        let copy_err = |err: Copy| match err {
            Copy::Read(err) => classify_read_error(&arc_name, err, limits),
            Copy::Write(err) => write_err(dest.unwrap_or(Path::new(&rel)), err, format!("{size} bytes for {rel}")),
        };
        let (digest, kept, consumed) = match &target {
            Target::Stream => {
                let (d, consumed) = stream_hashing(&mut e, &mut |r| v.consume(&rel, r)).map_err(copy_err)?;
                (d, None, consumed)
            }
            _ => {
                let (d, kept) = copy_hashing(&mut e, dest, keep.then_some(size)).map_err(copy_err)?;
                (d, kept, Ok(()))
            }
        };
        // export.json is left to the verifier, which checks its signature first (a
        // changed export.json is reported as a bad signature, as for a staged folder).
        if let Some(want) = expected.filter(|d| *d != digest && rel != EXPORT) {
            return Err(BundleError::DigestMismatch {
                path: rel,
                what: "sha256".into(),
                expected: want.to_prefixed(),
                actual: digest.to_prefixed(),
            });
        }
        consumed?;
        files.insert(rel.clone(), StagedFile { digest, bytes: size });
        let kept = kept.unwrap_or_default();
        if keep_meta && rel == MANIFEST {
            manifest = Some(kept.clone());
        } else if keep_meta && rel == MANIFEST_SIG {
            manifest_sig = Some(kept.clone());
        }
        if matches!(target, Target::Memory) {
            v.complete(&rel, kept)?;
        }
        if listed.is_none() {
            if let (Some(m), Some(s)) = (&manifest, &manifest_sig) {
                listed = Some(open_gate(v, m, s, limits, &limit)?);
            }
        }
    }
    let top = top.ok_or_else(|| malformed("empty archive".into()))?;
    check_archive_end(ar.into_inner(), &arc_name, limits)?;
    Ok((top, files))
}

/// Run the visitor's gate on the manifest and its signature; returns the listing (path →
/// size and digest) and raises the decompressed-byte limit to what it lists.
fn open_gate(
    v: &mut dyn ArchiveVisitor,
    manifest: &[u8],
    manifest_sig: &[u8],
    limits: &Limits,
    limit: &AtomicU64,
) -> Result<BTreeMap<String, (u64, FileDigest)>, BundleError> {
    let artifacts = v.gate(&GateInput { manifest, manifest_sig })?;
    // Every listed file, plus tar headers and padding, plus the signatures.
    let total: u64 = artifacts.iter().map(|a| a.bytes + 2048).sum::<u64>() + (4 << 20) + limits.max_manifest_bytes;
    limit.store(total.min(limits.max_total_bytes), Ordering::Relaxed);
    Ok(artifacts.into_iter().map(|a| (a.path, (a.bytes, a.sha256))).collect())
}

/// After the tar end: the rest of the frame must be zero padding (reading it to the frame's
/// end makes libzstd verify the frame checksum), and nothing may follow the frame.
fn check_archive_end(
    mut rest: Bounded<zstd::Decoder<'static, std::io::BufReader<File>>>,
    arc: &str,
    limits: &Limits,
) -> Result<(), BundleError> {
    let malformed = |reason: &str| BundleError::Malformed {
        path: arc.to_string(),
        reason: reason.into(),
    };
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = rest.read(&mut buf).map_err(|e| classify_read_error(arc, e, limits))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(malformed("data after the end of the tar archive"));
        }
    }
    let mut file = rest.inner.finish();
    let mut one = [0u8; 1];
    match file.read(&mut one) {
        Ok(0) => Ok(()),
        Ok(_) => Err(malformed(
            "bytes after the end of the zstd frame (trailing data or a second frame)",
        )),
        Err(e) => Err(io_err(Path::new(arc), e)),
    }
}

fn classify_read_error(arc: &str, e: std::io::Error, limits: &Limits) -> BundleError {
    let limit = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        .map(|l| l.0);
    if let Some(limit) = limit {
        BundleError::TooLarge {
            what: "decompressed size".into(),
            limit: limit.min(limits.max_total_bytes),
        }
    } else {
        BundleError::Malformed {
            path: arc.to_string(),
            reason: format!("corrupt or truncated archive: {e}"),
        }
    }
}

/// Why [`copy_hashing`] stopped: reading the source (a bad archive) or writing the copy
/// (the destination's file system).
enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copy an entry to `dest` (or nowhere), hashing it; `keep` (its size) also returns its
/// bytes.
fn copy_hashing(
    r: &mut impl Read,
    dest: Option<&Path>,
    keep: Option<u64>,
) -> Result<(FileDigest, Option<Vec<u8>>), Copy> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut out = match dest {
        Some(p) => Some(BufWriter::with_capacity(1 << 20, File::create(p).map_err(Copy::Write)?)),
        None => None,
    };
    // The size is the header's, checked against the listing (or bounded) by the caller.
    let mut kept = keep.map(|n| Vec::with_capacity(n.min(1 << 30) as usize));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(Copy::Read)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if let Some(o) = out.as_mut() {
            o.write_all(&buf[..n]).map_err(Copy::Write)?;
        }
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
    }
    if let Some(mut o) = out {
        o.flush().map_err(Copy::Write)?;
    }
    Ok((FileDigest(h.finalize().into()), kept))
}

/// Hands an entry's bytes to a consumer while hashing them; a read error of the archive is
/// kept so that it is reported as the archive's, not as the consumer's refusal.
struct Hashing<'r, R> {
    inner: &'r mut R,
    h: sha2::Sha256,
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        match self.inner.read(buf) {
            Ok(n) => {
                self.h.update(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let shown = std::io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                Err(shown)
            }
        }
    }
}

/// Run `consume` over an entry's bytes, then drain and hash what it left. Returns the
/// digest and the consumer's result (an archive read error wins over both).
fn stream_hashing(
    r: &mut impl Read,
    consume: &mut dyn FnMut(&mut dyn Read) -> Result<(), BundleError>,
) -> Result<(FileDigest, Result<(), BundleError>), Copy> {
    use sha2::Digest;
    let mut hr = Hashing {
        inner: r,
        h: sha2::Sha256::new(),
        failed: None,
    };
    let consumed = consume(&mut hr);
    let drained = std::io::copy(&mut hr, &mut std::io::sink());
    if let Some(e) = hr.failed.take() {
        return Err(Copy::Read(e));
    }
    drained.map_err(Copy::Read)?;
    Ok((FileDigest(hr.h.finalize().into()), consumed))
}

/// A bundle already extracted to a folder (`verify DIR`): digests of every file;
/// symlinks and special files are refused.
pub fn scan_folder(dir: &Path) -> Result<Staged, BundleError> {
    let top = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name().follow_links(false) {
        let entry = entry.map_err(|e| BundleError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .replace('\\', "/");
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(BundleError::UnsafeEntry {
                entry: rel,
                reason: "symlinks and special files are not allowed".into(),
            });
        }
        let mut f = File::open(entry.path()).map_err(|e| io_err(entry.path(), e))?;
        let (digest, _) = copy_hashing(&mut f, None, None).map_err(|e| match e {
            Copy::Read(e) | Copy::Write(e) => io_err(entry.path(), e),
        })?;
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        files.insert(rel, StagedFile { digest, bytes });
    }
    Ok(Staged {
        root: dir.to_path_buf(),
        top,
        files,
    })
}
