//! The peers: what the same data costs with standard tools. Each is a floor (or a peer product)
//! for one stellamirror job: hashing every record file, `tar | zstd` (full export), `zstd -d |
//! tar -x` (import), `tar | zstd` of only the changed files (delta export), restic (backup /
//! incremental backup / restore of the same files).
//!
//! All peers read the same tree: `plain/` (one file per advisory) plus `vex/`, `sboms/`,
//! `policy/` as generated, i.e. exactly the bytes stellamirror ingests.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::run::{sh_path, Measured, Runner};
use crate::fsio::{self, walk_files};
use crate::generate::PEER_PATHS;
use crate::{Context, Result};

fn peer_args() -> String {
    PEER_PATHS.join(" ")
}

/// `find | xargs TOOL`: read and hash every record file once.
pub fn hash_floor(r: &mut Runner, tool: &str, data: &Path) -> Measured {
    let script = format!("find {} -type f -print0 | xargs -0 -r {tool} > /dev/null", peer_args());
    r.shell(&format!("peer-{tool}"), &script, Some(data))
}

/// `tar | zstd -T0 -3`: the compression floor for a full export (names sorted, like a
/// deterministic bundle).
pub fn compress_floor(r: &mut Runner, data: &Path, out: &Path) -> Measured {
    let script = format!(
        "tar --sort=name -cf - {} | zstd -T0 -3 -q -f -o {}",
        peer_args(),
        sh_path(out)
    );
    r.shell("peer-tar-zstd", &script, Some(data))
}

/// `zstd -d | tar -x` into a fresh directory: the extract floor for an import.
pub fn extract_floor(r: &mut Runner, archive: &Path, into: &Path) -> Measured {
    let _ = fsio::remove_any(into);
    let script = format!(
        "mkdir -p {0} && zstd -d -q -c {1} | tar -xf - -C {0}",
        sh_path(into),
        sh_path(archive)
    );
    r.shell("peer-zstd-tar-x", &script, None)
}

/// `zstd -d` to nowhere: decompression alone (the stricter import floor).
pub fn decompress_floor(r: &mut Runner, archive: &Path) -> Measured {
    let script = format!("zstd -d -q -c {} > /dev/null", sh_path(archive));
    r.shell("peer-zstd-d", &script, None)
}

/// Files of `next` that are new or differ from `prev` (relative paths), files of `prev` gone
/// from `next`, and the bytes of the former. Unchanged records are hard links (same inode)
/// by the generator's invariant, so no content is read.
pub fn diff_trees(prev: &Path, next: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>, u64)> {
    let index = |root: &Path| -> Result<HashMap<PathBuf, (u64, u64, u64)>> {
        let mut m = HashMap::new();
        for sub in PEER_PATHS {
            for (p, len) in walk_files(&root.join(sub))? {
                let md = fs::metadata(&p)?;
                let rel = p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p);
                m.insert(rel, (md.dev(), md.ino(), len));
            }
        }
        Ok(m)
    };
    let a = index(prev)?;
    let b = index(next)?;
    let mut changed: Vec<PathBuf> = Vec::new();
    let mut bytes = 0;
    for (rel, (dev, ino, len)) in &b {
        let same = matches!(a.get(rel), Some((d, i, _)) if d == dev && i == ino);
        if !same {
            changed.push(rel.clone());
            bytes += len;
        }
    }
    let mut removed: Vec<PathBuf> = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    changed.sort();
    removed.sort();
    Ok((changed, removed, bytes))
}

/// `tar | zstd` of only the changed files of `next`: the floor for a delta export.
pub fn delta_floor(r: &mut Runner, next: &Path, changed: &[PathBuf], list: &Path, out: &Path) -> Result<Measured> {
    let mut bytes = Vec::new();
    for c in changed {
        bytes.extend_from_slice(c.to_string_lossy().as_bytes());
        bytes.push(0);
    }
    fs::write(list, bytes).ctx(|| format!("writing {}", list.display()))?;
    let script = format!(
        "tar --sort=name --null -cf - -T {} | zstd -T0 -3 -q -f -o {}",
        sh_path(list),
        sh_path(out)
    );
    Ok(r.shell("peer-delta-tar-zstd", &script, Some(next)))
}

/// A live copy of the peer tree made of hard links, which restic backs up and which is then
/// updated in place to the next generation (as a mirror directory would be), so restic's
/// incremental backup sees unchanged files unchanged (same path, inode, mtime).
pub fn make_live(data: &Path, live: &Path) -> Result<()> {
    fsio::remove_any(live)?;
    for sub in PEER_PATHS {
        for (p, _) in walk_files(&data.join(sub))? {
            let rel = p
                .strip_prefix(data)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone());
            let target = live.join(rel);
            if let Some(dir) = target.parent() {
                fs::create_dir_all(dir)?;
            }
            fsio::link_or_copy(&p, &target)?;
        }
    }
    Ok(())
}

/// Applies the next generation to the live tree: replace changed files, add new ones, delete
/// removed ones (and folders left empty).
pub fn sync_live(live: &Path, next: &Path, changed: &[PathBuf], removed: &[PathBuf]) -> Result<()> {
    for rel in removed {
        fsio::remove_any(&live.join(rel))?;
        if let Some(dir) = live.join(rel).parent() {
            let _ = fs::remove_dir(dir); // fails unless empty, which is what we want
        }
    }
    for rel in changed {
        let target = live.join(rel);
        fsio::remove_any(&target)?;
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        fsio::link_or_copy(&next.join(rel), &target)?;
    }
    Ok(())
}

/// restic with a local repository under `peer`; the password comes from `RESTIC_PASSWORD`.
pub struct Restic {
    pub repo: PathBuf,
    pub program: PathBuf,
}

impl Restic {
    pub fn new(r: &mut Runner, program: PathBuf, peer: &Path) -> Restic {
        let repo = peer.join("restic-repo");
        r.set_env("RESTIC_REPOSITORY", &repo.to_string_lossy());
        r.set_env("RESTIC_CACHE_DIR", &peer.join("restic-cache").to_string_lossy());
        Restic { repo, program }
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    pub fn init(&self, r: &mut Runner) -> Measured {
        let _ = fsio::remove_any(&self.repo);
        r.run("restic-init", &self.program, &Self::args(&["init", "-q"]), None)
    }

    /// `--host` is fixed so the second backup finds the first as its parent. Not quiet: the
    /// summary ("Files: N new, N changed, N unmodified") shows the parent was used.
    pub fn backup(&self, r: &mut Runner, label: &str, live: &Path) -> Measured {
        let live = live.to_string_lossy();
        r.run(
            label,
            &self.program,
            &Self::args(&["backup", "--host", "smscale", &live]),
            None,
        )
    }

    pub fn restore(&self, r: &mut Runner, target: &Path) -> Measured {
        let _ = fsio::remove_any(target);
        let t = target.to_string_lossy();
        r.run(
            "restic-restore",
            &self.program,
            &Self::args(&["restore", "-q", "latest", "--target", &t]),
            None,
        )
    }
}

/// restic's "Files: …" summary line from a backup's stdout.
pub fn restic_files_line(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Files:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}
