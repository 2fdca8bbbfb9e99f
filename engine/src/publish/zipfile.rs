//! Deterministic zip archives, rewritten by merging: entries of the previous archive that
//! a change does not touch are copied compressed (no inflate/deflate), touched ones are
//! replaced, removed or added. Entries are kept in the order of a sort key, every entry
//! has the same fixed time (1980-01-01, the zip epoch) and mode, so equal contents give
//! equal bytes whether an archive was merged or written from scratch.
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, PreparedZipFile, ZipArchive, ZipWriter};

use super::PublishError;

/// The options every entry is written with.
pub fn entry_options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
}

/// Compress one entry (callable from any thread).
pub fn prepare(name: &str, bytes: &[u8], out: &Path) -> Result<PreparedZipFile, PublishError> {
    PreparedZipFile::from_data(name, entry_options(), bytes).map_err(|e| PublishError::zip(out, e))
}

/// The sort key of an entry name; entries whose name has none are dropped.
pub type KeyOf = fn(&str) -> Option<String>;

/// A new archive at `out` built from `prev` (sorted by `key_of`) and changes given in
/// increasing key order.
pub struct MergeWriter {
    out: PathBuf,
    writer: ZipWriter<BufWriter<File>>,
    prev: Option<(ZipArchive<SeekBuf>, PathBuf)>,
    /// (key, entry index) of the previous archive, sorted by key.
    prev_keys: Vec<(String, usize)>,
    pos: usize,
    entries: u64,
}

impl MergeWriter {
    pub fn create(out: &Path, prev: Option<&Path>, key_of: KeyOf) -> Result<Self, PublishError> {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PublishError::io(dir, e))?;
        }
        let file = File::create(out).map_err(|e| PublishError::io(out, e))?;
        let mut prev_keys = Vec::new();
        let prev = match prev.filter(|p| p.exists()) {
            None => None,
            Some(p) => {
                let f = File::open(p).map_err(|e| PublishError::io(p, e))?;
                let archive = ZipArchive::new(SeekBuf::new(f)).map_err(|e| PublishError::zip(p, e))?;
                for (i, name) in archive.file_names().enumerate() {
                    let name = name.map_err(|e| PublishError::zip(p, e))?;
                    if let Some(k) = key_of(&name) {
                        prev_keys.push((k, i));
                    }
                }
                prev_keys.sort();
                Some((archive, p.to_path_buf()))
            }
        };
        Ok(Self {
            out: out.to_path_buf(),
            // Large writes: a merged zip is mostly entries copied from the previous one.
            writer: ZipWriter::new(BufWriter::with_capacity(1 << 20, file)),
            prev,
            prev_keys,
            pos: 0,
            entries: 0,
        })
    }

    /// Copy the previous entries before `key`, and drop the previous entry at `key`.
    pub fn advance(&mut self, key: &str) -> Result<(), PublishError> {
        while self.pos < self.prev_keys.len() && self.prev_keys[self.pos].0.as_str() < key {
            self.copy_prev()?;
        }
        if self.pos < self.prev_keys.len() && self.prev_keys[self.pos].0 == key {
            self.pos += 1;
        }
        Ok(())
    }

    fn copy_prev(&mut self) -> Result<(), PublishError> {
        let (archive, path) = self.prev.as_mut().expect("keys come from the previous archive");
        let index = self.prev_keys[self.pos].1;
        let entry = archive.by_index_raw(index).map_err(|e| PublishError::zip(path, e))?;
        self.writer
            .raw_copy_file(entry)
            .map_err(|e| PublishError::zip(&self.out, e))?;
        self.pos += 1;
        self.entries += 1;
        Ok(())
    }

    /// Add an entry at `key` (after `advance(key)`).
    pub fn add(&mut self, entry: PreparedZipFile) -> Result<(), PublishError> {
        self.writer
            .add_prepared_file(entry)
            .map_err(|e| PublishError::zip(&self.out, e))?;
        self.entries += 1;
        Ok(())
    }

    /// Copy what is left of the previous archive and close the file. Returns the number of
    /// entries; an archive left empty is removed.
    pub fn finish(mut self) -> Result<u64, PublishError> {
        while self.pos < self.prev_keys.len() {
            self.copy_prev()?;
        }
        let out = self.out.clone();
        let entries = self.entries;
        let buffered = self.writer.finish().map_err(|e| PublishError::zip(&out, e))?;
        buffered
            .into_inner()
            .map_err(|e| PublishError::io(&out, e.into_error()))?;
        if entries == 0 {
            std::fs::remove_file(&out).map_err(|e| PublishError::io(&out, e))?;
        }
        Ok(entries)
    }
}

/// A read buffer that survives seeks inside it. The zip reader seeks to every entry it
/// copies; entries are copied in file order, so the target is almost always already in
/// the buffer (`BufReader` drops its buffer on every seek: one read call per entry).
pub struct SeekBuf {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    pos: usize,
}

impl SeekBuf {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: Vec::new(),
            start: 0,
            pos: 0,
        }
    }
    fn offset(&self) -> u64 {
        self.start + self.pos as u64
    }
}

impl Read for SeekBuf {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            let at = self.offset();
            self.file.seek(SeekFrom::Start(at))?;
            self.buf.resize(1 << 20, 0);
            let n = self.file.read(&mut self.buf)?;
            self.buf.truncate(n);
            self.start = at;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Seek for SeekBuf {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(x) => x,
            SeekFrom::Current(d) => self
                .offset()
                .checked_add_signed(d)
                .ok_or(std::io::ErrorKind::InvalidInput)?,
            SeekFrom::End(d) => {
                let len = self.file.metadata()?.len();
                len.checked_add_signed(d).ok_or(std::io::ErrorKind::InvalidInput)?
            }
        };
        if target >= self.start && target <= self.start + self.buf.len() as u64 {
            self.pos = (target - self.start) as usize;
        } else {
            self.buf.clear();
            self.start = target;
            self.pos = 0;
        }
        Ok(target)
    }
}
