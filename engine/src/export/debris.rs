//! What a killed export leaves in its output folder, and sweeping it.
//!
//! An export writes only two kinds of temporary entries into its output folder, both named
//! so they are recognisable and carry the writing process's id last:
//! `.stellamirror-staging-<runId>-<pid>` (the staged files) and
//! `.stellamirror-partial-<bundle>-<pid>` (the archive before its atomic rename). Both are
//! removed when the export ends, however it ends, except when the process is killed. The
//! next export into the same folder removes every such entry whose process is gone (an
//! entry of a live process, say a concurrent export from another store, is left alone).
//! `*.tar.partial-<pid>` files of earlier versions are swept the same way.
use std::path::{Path, PathBuf};

pub use crate::bundle::archive::PARTIAL_PREFIX;

pub const STAGING_PREFIX: &str = ".stellamirror-staging-";

/// The process id a temporary entry's name ends with, if the name is one of ours.
fn owner(name: &str) -> Option<u32> {
    let ours = name.starts_with(STAGING_PREFIX) || name.starts_with(PARTIAL_PREFIX) || name.contains(".tar.partial-");
    if !ours {
        return None;
    }
    name.rsplit_once('-').and_then(|(_, pid)| pid.parse().ok())
}

fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary entries of dead exports from `out_dir`; returns what it removed.
pub fn sweep(out_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(out_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else { continue };
        if alive(pid) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // pid 0 never names a live process here; our own pid is alive.
        let dead_staging = d.join(format!("{STAGING_PREFIX}run-1-0"));
        let dead_partial = d.join(format!("{PARTIAL_PREFIX}run-1-full.tar.zst-0"));
        let legacy = d.join("run-1-full.tar.partial-0");
        let live = d.join(format!("{STAGING_PREFIX}run-2-{}", std::process::id()));
        let bundle = d.join("run-1-full.tar.zst");
        let other = d.join("notes-0");
        std::fs::create_dir_all(&dead_staging).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        for f in [&dead_partial, &legacy, &bundle, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        let mut removed = sweep(d).unwrap();
        removed.sort();
        let mut expected = vec![dead_staging, dead_partial, legacy];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(live.exists() && bundle.exists() && other.exists());
    }
}
