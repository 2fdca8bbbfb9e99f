//! File-system helpers: a background writer for the one-file-per-record tree, and walks.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::{Context, Error, Result};

enum Job {
    Write(PathBuf, Vec<u8>),
    /// Hard-link `from` to `to` (copy if linking is impossible, e.g. across file systems).
    Link(PathBuf, PathBuf),
}

/// Writes many small files on a second thread so JSON generation and file creation overlap
/// (file creation, not serialisation, dominates at a million files). The bounded channel caps
/// memory at a few thousand pending records.
pub struct FileSink {
    tx: Option<SyncSender<Job>>,
    /// Behind a mutex so that `send` (through `&self`) can collect the writer's own error.
    handle: Mutex<Option<JoinHandle<Result<u64>>>>,
}

impl FileSink {
    pub fn new() -> Self {
        let (tx, rx) = sync_channel::<Job>(4096);
        let handle = std::thread::spawn(move || -> Result<u64> {
            let mut n = 0u64;
            for job in rx {
                match job {
                    Job::Write(p, bytes) => fs::write(&p, bytes).ctx(|| format!("writing {}", p.display()))?,
                    Job::Link(from, to) => link_or_copy(&from, &to)?,
                }
                n += 1;
            }
            Ok(n)
        });
        FileSink {
            tx: Some(tx),
            handle: Mutex::new(Some(handle)),
        }
    }

    /// Queues a job. The channel only closes when the writer stopped on an error: report that
    /// error (e.g. "No space left on device"), not the closed channel.
    fn send(&self, job: Job) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Err(Error("file sink already finished".into()));
        };
        if tx.send(job).is_ok() {
            return Ok(());
        }
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        match handle.map(|h| h.join()) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(Error("file writer thread stopped".into())),
        }
    }

    pub fn write(&self, path: PathBuf, bytes: Vec<u8>) -> Result<()> {
        self.send(Job::Write(path, bytes))
    }

    pub fn link(&self, from: PathBuf, to: PathBuf) -> Result<()> {
        self.send(Job::Link(from, to))
    }

    /// Waits for every queued file; returns how many were written or linked.
    pub fn finish(mut self) -> Result<u64> {
        drop(self.tx.take());
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        match handle {
            Some(h) => h.join().map_err(|_| Error("file writer thread panicked".into()))?,
            None => Ok(0),
        }
    }
}

impl Default for FileSink {
    fn default() -> Self {
        Self::new()
    }
}

/// Hard link when possible: unchanged records then share an inode with the previous
/// version, which both saves disk and lets the harness find changed files without reading.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).ctx(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary name and a rename, so a reader never sees a
/// half-written file (used for the manifests that mark a dataset complete).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).ctx(|| format!("writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).ctx(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}

/// Every regular file under `root`, sorted by path (deterministic order), with its size.
pub fn walk_files(root: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error(format!("listing {}: {e}", dir.display()))),
        };
        for entry in rd {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push((entry.path(), entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Total apparent size of the regular files under `root` (0 if it does not exist).
pub fn tree_bytes(root: &Path) -> Result<u64> {
    if root.is_file() {
        return Ok(fs::metadata(root)?.len());
    }
    Ok(walk_files(root)?.iter().map(|f| f.1).sum())
}

/// Removes `path` if it exists (file or directory).
pub fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx(|| format!("removing {}", path.display())),
        Ok(_) => fs::remove_file(path).ctx(|| format!("removing {}", path.display())),
        Err(_) => Ok(()),
    }
}
