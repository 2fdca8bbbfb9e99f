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
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter};

use super::{cf_options, Store, StoreError};

/// SST files are rolled at this size (RocksDB's own target for bottom levels is similar).
const SST_TARGET_BYTES: u64 = 128 << 20;

fn io(what: &Path, e: std::io::Error) -> StoreError {
    StoreError::Db(format!("{}: {e}", what.display()))
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
            w.open(&path)?;
            self.files.push(path);
            self.writer = Some(w);
        }
        self.writer.as_mut().expect("opened above").put(key, value)?;
        self.last = Some(key.to_vec());
        self.entries += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), StoreError> {
        if let Some(mut w) = self.writer.take() {
            w.finish()?;
        }
        Ok(())
    }

    /// Finish the last file; the files written, in key order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, StoreError> {
        self.close()?;
        Ok(std::mem::take(&mut self.files))
    }
}

/// A key and its value.
type Pair = (Box<[u8]>, Box<[u8]>);

/// An external sort of key/value pairs with bounded memory.
pub struct Spill {
    dir: PathBuf,
    stem: String,
    mem: Vec<Pair>,
    mem_bytes: usize,
    limit: usize,
    runs: Vec<PathBuf>,
}

impl Spill {
    pub fn new(dir: &Path, stem: &str, limit: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            mem: Vec::new(),
            mem_bytes: 0,
            limit,
            runs: Vec::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.mem_bytes += key.len() + value.len() + 48;
        self.mem.push((key.into(), value.into()));
        if self.mem_bytes >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.runs.is_empty()
    }

    /// Sort the in-memory pairs and write them as one run file (u32 lengths, key, value).
    fn spill(&mut self) -> Result<(), StoreError> {
        self.mem.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let path = self.dir.join(format!("{}-run-{:05}", self.stem, self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(|e| io(&path, e))?);
        for (k, v) in self.mem.drain(..) {
            let head = [(k.len() as u32).to_le_bytes(), (v.len() as u32).to_le_bytes()].concat();
            w.write_all(&head)
                .and_then(|_| w.write_all(&k))
                .and_then(|_| w.write_all(&v))
                .map_err(|e| io(&path, e))?;
        }
        w.flush().map_err(|e| io(&path, e))?;
        self.mem_bytes = 0;
        self.runs.push(path);
        Ok(())
    }

    /// Merge every run into `sink` in key order, each key once. A key held twice with
    /// equal values is a content-addressed duplicate (written once); with different
    /// values it is the caller's `conflict`.
    pub fn drain_into<E: From<StoreError>>(
        mut self,
        sink: &mut SstSink<'_>,
        conflict: &dyn Fn(&[u8]) -> E,
    ) -> Result<(), E> {
        self.mem.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sources: Vec<RunReader> = Vec::with_capacity(self.runs.len() + 1);
        for p in &self.runs {
            sources.push(RunReader::File(
                BufReader::with_capacity(1 << 20, File::open(p).map_err(|e| io(p, e))?),
                p.clone(),
            ));
        }
        sources.push(RunReader::Mem(std::mem::take(&mut self.mem).into_iter()));
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some((k, v)) = s.next_pair()? {
                heap.push(Reverse((k, i, v)));
            }
        }
        let mut last: Option<Pair> = None;
        while let Some(Reverse((k, i, v))) = heap.pop() {
            if let Some(next) = sources[i].next_pair()? {
                heap.push(Reverse((next.0, i, next.1)));
            }
            match &last {
                Some((lk, lv)) if *lk == k => {
                    if *lv != v {
                        return Err(conflict(&k));
                    }
                    continue;
                }
                _ => {}
            }
            sink.put(&k, &v)?;
            last = Some((k, v));
        }
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

enum RunReader {
    File(BufReader<File>, PathBuf),
    Mem(std::vec::IntoIter<Pair>),
}

impl RunReader {
    fn next_pair(&mut self) -> Result<Option<Pair>, StoreError> {
        match self {
            RunReader::Mem(it) => Ok(it.next()),
            RunReader::File(r, path) => {
                let mut head = [0u8; 8];
                match r.read_exact(&mut head) {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    other => other.map_err(|e| io(path, e))?,
                }
                let kl = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
                let vl = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
                let mut k = vec![0u8; kl];
                let mut v = vec![0u8; vl];
                r.read_exact(&mut k)
                    .and_then(|_| r.read_exact(&mut v))
                    .map_err(|e| io(path, e))?;
                Ok(Some((k.into(), v.into())))
            }
        }
    }
}

impl Store {
    /// Link finished SST files into a column family (moved, not copied: they must be on
    /// the store's file system). The files of one call must not overlap one another.
    pub fn ingest(&self, cf: &str, files: Vec<PathBuf>) -> Result<(), StoreError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut o = IngestExternalFileOptions::default();
        o.set_move_files(true);
        Ok(self.db.ingest_external_file_cf_opts(self.cf(cf), &o, files)?)
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
