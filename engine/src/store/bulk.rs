//! Bulk loading: sorted SST files built beside the database and ingested whole.
//!
//! A full import writes millions of keys nobody reads until one commit switches the head.
//! Sent through write batches they would pass the write-ahead log, the memtables, a flush
//! and level-0 → level-1 compactions (each key written three or four times). Instead they
//! are written once, in key order, into SST files ([`SstSink`]), and handed to RocksDB
//! with `ingest_external_file`, which links the files into the tree (into the bottommost
//! level when nothing overlaps them, as in an empty store).
//!
//! Keys that do not arrive in order (records and nodes are keyed by id or hash) go
//! through [`Spill`], an external sort: bounded in-memory runs, sorted and written to run
//! files, merged into the sink at the end.
//!
//! Atomicity is unchanged: ingested objects and nodes are immutable and unreferenced, and
//! ingested records belong to a generation no head names, until the usual synced commit.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter};

use super::{cf_options, Store, StoreError};

/// SST files are rolled at this size (RocksDB's own target for bottom levels is similar).
const SST_TARGET_BYTES: u64 = 128 << 20;

/// The range of one readahead request of [`Store::prefetch`].
const PREFETCH_CHUNK: u64 = 2 << 20;

fn io(what: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(what, e, "room for the bulk load's sort runs")
}

/// An SST writer's failure below `dir` (a full disk named as such).
fn sst(dir: &Path, e: rocksdb::Error) -> StoreError {
    StoreError::rocks(dir, e, "room for the bulk load's table files")
}

/// A folder in the store for a staged ingest's sorts (their run files and SST files must
/// be on the store's file system), removed when dropped. A killed ingest leaves it
/// behind; [`ScratchDir::clear_leftovers`] (called by `Store::open`) removes it: RocksDB's
/// lock means the process that opened the store is the only one using it.
pub struct ScratchDir(PathBuf);

const SCRATCH: &str = "ingest-scratch";

impl ScratchDir {
    pub fn clear_leftovers(store_path: &Path) {
        let _ = std::fs::remove_dir_all(store_path.join(SCRATCH));
    }

    pub fn new(store: &Store) -> Result<Self, StoreError> {
        let root = store.path().join(SCRATCH);
        let dir = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(root) = self.0.parent() {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// The options SST files of one column family are written with (the family's own).
pub struct SstOptions(Options);

impl SstOptions {
    pub fn new(cf: &str) -> Self {
        Self(cf_options(cf))
    }
}

/// Writes strictly increasing keys into SST files below `dir`.
pub struct SstSink<'o> {
    opts: &'o Options,
    dir: PathBuf,
    stem: String,
    writer: Option<SstFileWriter<'o>>,
    files: Vec<PathBuf>,
    last: Option<Vec<u8>>,
    pub entries: u64,
}

impl<'o> SstSink<'o> {
    pub fn new(opts: &'o SstOptions, dir: &Path, stem: &str) -> Self {
        Self {
            opts: &opts.0,
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            writer: None,
            files: Vec::new(),
            last: None,
            entries: 0,
        }
    }

    /// Whether `key` may come next (it is greater than every key put so far).
    pub fn accepts(&self, key: &[u8]) -> bool {
        self.last.as_deref().is_none_or(|l| key > l)
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if !self.accepts(key) {
            return Err(StoreError::Corrupt(format!(
                "bulk load: key {} out of order in {}",
                hex::encode(key),
                self.stem
            )));
        }
        if self.writer.as_ref().is_some_and(|w| w.file_size() >= SST_TARGET_BYTES) {
            self.close()?;
        }
        if self.writer.is_none() {
            let path = self.dir.join(format!("{}-{:05}.sst", self.stem, self.files.len()));
            let w = SstFileWriter::create(self.opts);
            w.open(&path).map_err(|e| sst(&self.dir, e))?;
            self.files.push(path);
            self.writer = Some(w);
        }
        self.writer
            .as_mut()
            .expect("opened above")
            .put(key, value)
            .map_err(|e| sst(&self.dir, e))?;
        let last = self.last.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        self.entries += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), StoreError> {
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(|e| sst(&self.dir, e))?;
        }
        Ok(())
    }

    /// Finish the last file; the files written, in key order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, StoreError> {
        self.close()?;
        Ok(std::mem::take(&mut self.files))
    }
}

/// Pairs held in one buffer (no allocation per pair): `index` holds (start, key length,
/// value length) of each pair in `bytes`.
#[derive(Default)]
struct Arena {
    bytes: Vec<u8>,
    index: Vec<(usize, u32, u32)>,
}

impl Arena {
    /// Room for `bytes` of pairs, reserved once: a growing buffer would be copied (and
    /// its fresh pages faulted in) at every doubling.
    fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            index: Vec::new(),
        }
    }

    fn push(&mut self, key: &[u8], value: &[u8]) {
        self.index
            .push((self.bytes.len(), key.len() as u32, value.len() as u32));
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
    }

    fn size(&self) -> usize {
        self.bytes.len() + self.index.len() * std::mem::size_of::<(usize, u32, u32)>()
    }

    fn pair(&self, e: &(usize, u32, u32)) -> (&[u8], &[u8]) {
        let k = e.0 + e.1 as usize;
        (&self.bytes[e.0..k], &self.bytes[k..k + e.2 as usize])
    }

    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.index
            .sort_unstable_by(|a, b| bytes[a.0..a.0 + a.1 as usize].cmp(&bytes[b.0..b.0 + b.1 as usize]));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.index.clear();
    }
}

/// An external sort of key/value pairs with bounded memory.
pub struct Spill {
    dir: PathBuf,
    stem: String,
    mem: Arena,
    limit: usize,
    runs: Vec<PathBuf>,
}

impl Spill {
    pub fn new(dir: &Path, stem: &str, limit: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            mem: Arena::with_capacity(limit),
            limit,
            runs: Vec::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.mem.push(key, value);
        if self.mem.size() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.mem.index.is_empty() && self.runs.is_empty()
    }

    /// Sort the in-memory pairs and write them as one run file (u32 lengths, key, value).
    fn spill(&mut self) -> Result<(), StoreError> {
        self.mem.sort();
        let path = self.dir.join(format!("{}-run-{:05}", self.stem, self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(|e| io(&path, e))?);
        for e in &self.mem.index {
            let (k, v) = self.mem.pair(e);
            let head = [(k.len() as u32).to_le_bytes(), (v.len() as u32).to_le_bytes()].concat();
            w.write_all(&head)
                .and_then(|_| w.write_all(k))
                .and_then(|_| w.write_all(v))
                .map_err(|e| io(&path, e))?;
        }
        w.flush().map_err(|e| io(&path, e))?;
        self.mem.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Merge every run into `sink` in key order, each key once. A key held twice with
    /// equal values is a content-addressed duplicate (written once); with different
    /// values it is the caller's `conflict`.
    pub fn drain_into<E: From<StoreError>>(
        self,
        sink: &mut SstSink<'_>,
        conflict: &dyn Fn(&[u8]) -> E,
    ) -> Result<(), E> {
        let (mut last, mut last_value, mut any) = (Vec::new(), Vec::new(), false);
        self.for_each_sorted(|k, v| {
            if any && k == last.as_slice() {
                if v != last_value.as_slice() {
                    return Err(conflict(k));
                }
                return Ok(());
            }
            sink.put(k, v)?;
            last.clear();
            last.extend_from_slice(k);
            last_value.clear();
            last_value.extend_from_slice(v);
            any = true;
            Ok(())
        })
    }

    /// Visit every pair in key order (equal keys in no particular order), then delete
    /// the run files.
    pub fn for_each_sorted<E: From<StoreError>>(
        mut self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.mem.sort();
        if self.runs.is_empty() {
            // Everything fit in memory: one sorted pass, no merge.
            for e in &self.mem.index {
                let (k, v) = self.mem.pair(e);
                f(k, v)?;
            }
            return Ok(());
        }
        let mut cursors: Vec<Cursor> = Vec::with_capacity(self.runs.len() + 1);
        for p in &self.runs {
            let r = BufReader::with_capacity(1 << 20, File::open(p).map_err(|e| io(p, e))?);
            cursors.push(Cursor::new(Run::File(r, p.clone()))?);
        }
        cursors.push(Cursor::new(Run::Mem(std::mem::take(&mut self.mem), 0))?);
        // A k-way merge over a handful of runs: the smallest current key by a linear scan,
        // every pair read into its cursor's reused buffers (no allocation per pair).
        loop {
            let mut min: Option<usize> = None;
            for (i, c) in cursors.iter().enumerate() {
                if c.live && min.is_none_or(|m| c.key < cursors[m].key) {
                    min = Some(i);
                }
            }
            let Some(i) = min else { break };
            f(&cursors[i].key, &cursors[i].value)?;
            cursors[i].advance()?;
        }
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

/// Where a run's pairs come from: a run file, or the sorted in-memory arena (at a
/// position).
enum Run {
    File(BufReader<File>, PathBuf),
    Mem(Arena, usize),
}

/// The current pair of one run.
struct Cursor {
    run: Run,
    key: Vec<u8>,
    value: Vec<u8>,
    live: bool,
}

impl Cursor {
    fn new(run: Run) -> Result<Self, StoreError> {
        let mut c = Cursor {
            run,
            key: Vec::new(),
            value: Vec::new(),
            live: true,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<(), StoreError> {
        match &mut self.run {
            Run::Mem(arena, pos) => match arena.index.get(*pos) {
                None => self.live = false,
                Some(e) => {
                    let (k, v) = arena.pair(e);
                    self.key.clear();
                    self.key.extend_from_slice(k);
                    self.value.clear();
                    self.value.extend_from_slice(v);
                    *pos += 1;
                }
            },
            Run::File(r, path) => {
                let mut head = [0u8; 8];
                match r.read_exact(&mut head) {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        self.live = false;
                        return Ok(());
                    }
                    other => other.map_err(|e| io(path, e))?,
                }
                let kl = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
                let vl = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
                self.key.resize(kl, 0);
                self.value.resize(vl, 0);
                r.read_exact(&mut self.key)
                    .and_then(|_| r.read_exact(&mut self.value))
                    .map_err(|e| io(path, e))?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Ask the kernel to read the table files of `cfs` back into the page cache, in the
    /// background. RocksDB's `SstFileWriter` drops every file it writes from the page cache
    /// (`fadvise(DONTNEED)` after each MiB and at the end; its C API cannot turn this
    /// off), so after a bulk load whoever reads those families next — the delta right
    /// after a full import, `rebuild`'s store check — would wait for the disk one block at
    /// a time. Advice only: a failure changes nothing but speed, so it is not reported.
    pub fn prefetch(&self, cfs: &[&str]) {
        let Ok(files) = self.db.live_files() else { return };
        for f in files.iter().filter(|f| cfs.contains(&f.column_family_name.as_str())) {
            let path = self.path().join(f.name.trim_start_matches('/'));
            let Ok(file) = File::open(&path) else { continue };
            // Linux reads at most its readahead window per call: advise chunk by chunk.
            for at in (0..f.size as u64).step_by(PREFETCH_CHUNK as usize) {
                let len = std::num::NonZeroU64::new(PREFETCH_CHUNK);
                let _ = rustix::fs::fadvise(&file, at, len, rustix::fs::Advice::WillNeed);
            }
        }
    }

    /// Link finished SST files into a column family (moved, not copied: they must be on
    /// the store's file system). The files of one call must not overlap one another.
    pub fn ingest(&self, cf: &str, files: Vec<PathBuf>) -> Result<(), StoreError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut o = IngestExternalFileOptions::default();
        o.set_move_files(true);
        self.db
            .ingest_external_file_cf_opts(self.cf(cf), &o, files)
            .map_err(|e| self.rocks(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CF_NODES, CF_RECORDS};

    #[test]
    fn spilled_pairs_are_ingested_sorted_and_once() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("s")).unwrap();
        let work = t.path().join("w");
        std::fs::create_dir_all(&work).unwrap();
        let opts = SstOptions::new(CF_NODES);
        let mut sink = SstSink::new(&opts, &work, "nodes");
        // A tiny memory bound forces many runs; every key comes twice (same value).
        let mut spill = Spill::new(&work, "nodes", 256);
        for round in 0..2 {
            for i in (0..500u32).rev() {
                spill.put(&i.to_be_bytes(), format!("v{i}").as_bytes()).unwrap();
            }
            assert!(round == 1 || !spill.runs.is_empty());
        }
        spill
            .drain_into(&mut sink, &|k| StoreError::Corrupt(hex::encode(k)))
            .unwrap();
        assert_eq!(sink.entries, 500);
        store.ingest(CF_NODES, sink.finish().unwrap()).unwrap();
        for i in [0u32, 7, 499] {
            assert_eq!(
                store.get(CF_NODES, &i.to_be_bytes()).unwrap(),
                Some(format!("v{i}").into_bytes())
            );
        }
    }

    #[test]
    fn one_key_with_two_values_is_a_conflict() {
        let t = tempfile::tempdir().unwrap();
        let opts = SstOptions::new(CF_RECORDS);
        let mut sink = SstSink::new(&opts, t.path(), "records");
        let mut spill = Spill::new(t.path(), "records", 1 << 20);
        spill.put(b"k", b"a").unwrap();
        spill.put(b"k", b"b").unwrap();
        let err = spill
            .drain_into(&mut sink, &|k| StoreError::Corrupt(String::from_utf8_lossy(k).into()))
            .unwrap_err();
        assert_eq!(err.to_string(), "store is inconsistent: k");
    }

    #[test]
    fn a_sink_refuses_keys_out_of_order() {
        let t = tempfile::tempdir().unwrap();
        let opts = SstOptions::new(CF_RECORDS);
        let mut sink = SstSink::new(&opts, t.path(), "records");
        sink.put(b"b", b"").unwrap();
        assert!(!sink.accepts(b"a") && !sink.accepts(b"b") && sink.accepts(b"c"));
        assert!(sink.put(b"a", b"").is_err());
    }
}
