//! A store directory a writing command (ingest, import, rebuild) is about to create. If the
//! command fails, the directory is removed again, so a refusal leaves the file system exactly
//! as it was: no new store at a mistyped `--store` path, no half-initialised one after a bad
//! bundle. The command has closed the store (and released its lock) before it returns.
use std::path::{Path, PathBuf};

use crate::failure::Failure;

pub struct FreshStore(Option<PathBuf>);

impl FreshStore {
    /// Notes whether `path` exists before the command runs.
    pub fn before(path: &Path) -> FreshStore {
        FreshStore((!path.exists()).then(|| path.to_path_buf()))
    }

    /// Passes the command's result through; on failure removes the store it created.
    pub fn after<T>(self, result: Result<T, Failure>) -> Result<T, Failure> {
        if let (Err(_), Some(created)) = (&result, &self.0) {
            let _ = std::fs::remove_dir_all(created);
        }
        result
    }
}
