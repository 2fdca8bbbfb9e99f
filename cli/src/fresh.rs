//! A store directory a writing command (ingest, import, rebuild) is about to create. If the
//! command fails, the directory is removed again, so a refusal leaves the file system exactly
//! as it was: no new store at a mistyped `--store` path, no half-initialised one after a bad
//! bundle. The command has closed the store (and released its lock) before it returns.
use std::path::{Path, PathBuf};

use crate::failure::Failure;

pub struct FreshStore(Vec<PathBuf>);

impl FreshStore {
    /// Notes whether `path` exists before the command runs.
    pub fn before(path: &Path) -> FreshStore {
        Self::before_all(&[path.to_path_buf()])
    }

    /// Notes which of `paths` (files or folders) do not exist before the command runs:
    /// `export` uses it for its output folder and the store key it may create.
    pub fn before_all(paths: &[PathBuf]) -> FreshStore {
        FreshStore(paths.iter().filter(|p| !p.exists()).cloned().collect())
    }

    /// Passes the command's result through; on failure removes what it created.
    pub fn after<T>(self, result: Result<T, Failure>) -> Result<T, Failure> {
        if result.is_err() {
            for created in &self.0 {
                if created.is_dir() {
                    let _ = std::fs::remove_dir_all(created);
                } else {
                    let _ = std::fs::remove_file(created);
                }
            }
        }
        result
    }
}
