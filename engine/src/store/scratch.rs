//! Scratch folders inside the store: where an import stages an archive it cannot read in
//! one pass, where `rebuild` reads a bundle's signed manifest, and where a bulk load
//! writes its SST and sort-run files before RocksDB ingests them.
//!
//! Every scratch folder is `<store>/staging/<purpose>-<pid>-<nanos>`: unique, and
//! recognisable as ours by the folder it is in. It is removed when its owner ends, on
//! success and on failure ([`Drop`]); `<store>/staging` itself goes with its last folder.
//! A process killed mid-run leaves them behind, so [`Store::open`](super::Store::open)
//! removes all of `<store>/staging` right after it took RocksDB's lock on the store and
//! before anything creates a scratch folder. That is safe because only the process holding
//! the lock uses the store's scratch space: whatever is there then is a dead process's.
use std::path::{Path, PathBuf};

/// The folder below the store that holds every scratch folder.
pub const STAGING_DIR: &str = "staging";

/// A scratch folder, removed (with `<store>/staging` when it was the last one) when dropped.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Create `<store>/staging/<purpose>-<pid>-<nanos>`.
    pub fn new(store: &super::Store, purpose: &str) -> std::io::Result<Self> {
        Self::new_in(store.path(), purpose)
    }

    fn new_in(store_dir: &Path, purpose: &str) -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = store_dir
            .join(STAGING_DIR)
            .join(format!("{purpose}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // Fails (and is meant to) while another scratch folder of this process is in use.
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Remove `<store>/staging` and everything in it (what killed processes left). Call only
/// while holding the store's lock, before creating a scratch folder. Best effort: a folder
/// that cannot be removed is left for the next open (it never affects the store's state).
pub fn sweep(store_dir: &Path) -> Vec<PathBuf> {
    let dir = store_dir.join(STAGING_DIR);
    // No `staging/` folder is no reason to skip the options files below.
    let mut removed: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    if !removed.is_empty() || dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // RocksDB writes its options to `OPTIONS-<n>.dbtmp` and renames it; a run killed in
    // between leaves the temporary file, which RocksDB never reads (called under the lock).
    for e in std::fs::read_dir(store_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("OPTIONS-") && name.ends_with(".dbtmp") && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_folders_go_when_dropped_and_leftovers_when_swept() {
        let t = tempfile::tempdir().unwrap();
        let a = Scratch::new_in(t.path(), "import").unwrap();
        let b = Scratch::new_in(t.path(), "import").unwrap();
        assert_ne!(a.0, b.0, "unique names");
        let name = a.0.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("import-{}-", std::process::id())), "{name}");
        std::fs::write(a.0.join("f"), b"x").unwrap();
        drop(a);
        assert!(t.path().join(STAGING_DIR).exists(), "b is still in use");
        drop(b);
        assert!(
            !t.path().join(STAGING_DIR).exists(),
            "the last one takes staging/ with it"
        );
        // A killed process's folder: forgotten, not dropped.
        let c = Scratch::new_in(t.path(), "import").unwrap();
        let left = c.0.clone();
        std::mem::forget(c);
        assert_eq!(sweep(t.path()), vec![left]);
        assert!(!t.path().join(STAGING_DIR).exists());
        assert!(sweep(t.path()).is_empty());
    }

    #[test]
    fn a_killed_runs_options_file_goes_even_without_a_staging_folder() {
        let t = tempfile::tempdir().unwrap();
        let tmp = t.path().join("OPTIONS-000007.dbtmp");
        std::fs::write(&tmp, b"partial").unwrap();
        std::fs::write(t.path().join("OPTIONS-000005"), b"kept").unwrap();
        assert!(!t.path().join(STAGING_DIR).exists());
        assert_eq!(sweep(t.path()), vec![tmp.clone()]);
        assert!(!tmp.exists());
        assert!(t.path().join("OPTIONS-000005").exists(), "real options files stay");
    }
}
