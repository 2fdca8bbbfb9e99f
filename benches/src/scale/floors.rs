//! The floors: what exactly the bytes a stellamirror job handles cost with standard tools, in
//! the same run. Every floor reads the same bytes as the job it bounds:
//!
//! * **inputs** (`INPUT_PATHS`: `advisories.jsonl`, `vex/`, `sboms/`, `policy/`, as ingested):
//!   `tar --sort=name | zstd -T0 -3` (floor-input, time and bytes), `b3sum` / `sha256sum`,
//!   `restic backup` (initial, then incremental on a live copy updated in place) and
//!   `restic restore`;
//! * **the full bundle**: `zstd -d` of it to one uncompressed stream, `zstd -T0 -3` of that
//!   stream (what an export must at least compress), `b3sum` / `sha256sum` of it (what hashing
//!   costs on this CPU), and `zstd -d | tar -x` (extract);
//! * **the change**: the records that differ between two generations alone — `comm -13` of
//!   the sorted JSONL generations plus the new and changed VEX/SBOM files — at `zstd -3`.
//!
//! A floor made slow by something the product does not do (say, a million small files) would
//! not be a floor, which is why the generator writes no per-record files.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::run::{sh_path, Measured, Runner};
use crate::fsio::{self, walk_files};
use crate::generate::{ADVISORIES, INPUT_PATHS, POLICY_FILE};
use crate::{Context, Result};

fn input_args() -> String {
    INPUT_PATHS.join(" ")
}

/// Every input file of a generation (relative path, absolute path, size), sorted.
pub fn input_files(root: &Path) -> Result<Vec<(PathBuf, PathBuf, u64)>> {
    let mut out = Vec::new();
    for sub in INPUT_PATHS {
        let p = root.join(sub);
        let files = if p.is_file() {
            vec![(p.clone(), fs::metadata(&p)?.len())]
        } else {
            walk_files(&p)?
        };
        for (abs, len) in files {
            let rel = abs.strip_prefix(root).map(Path::to_path_buf).unwrap_or(abs.clone());
            out.push((rel, abs, len));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every input file once (untimed), so every floor and every stellamirror job of the
/// run starts from the same warm page cache whatever ran before.
pub fn warm_cache(r: &mut Runner, label: &str, data: &Path) -> Measured {
    let script = format!("find {} -type f -print0 | xargs -0 -r cat > /dev/null", input_args());
    r.shell(label, &script, Some(data))
}

/// `find INPUTS -type f | xargs TOOL`: read and hash every input file once.
pub fn hash_inputs(r: &mut Runner, label: &str, tool: &str, data: &Path) -> Measured {
    let script = format!("find {} -type f -print0 | xargs -0 -r {tool} > /dev/null", input_args());
    r.shell(label, &script, Some(data))
}

/// floor-input: `tar --sort=name INPUTS | zstd -T0 -3` (names sorted, like a deterministic
/// bundle). Its output is the archive whose bytes the full bundle is compared with.
pub fn compress_inputs(r: &mut Runner, data: &Path, out: &Path) -> Measured {
    let script = format!(
        "tar --sort=name -cf - {} | zstd -T0 -3 -q -f -o {}",
        input_args(),
        sh_path(out)
    );
    r.shell("floor-input-tar-zstd", &script, Some(data))
}

/// `zstd -d` of a bundle into one uncompressed stream on disk (the input of the bundle floors).
pub fn decompress_to(r: &mut Runner, bundle: &Path, out: &Path) -> Measured {
    let script = format!("zstd -d -q -f -c {} > {}", sh_path(bundle), sh_path(out));
    r.shell("floor-bundle-zstd-d", &script, None)
}

/// floor-bundle: `zstd -T0 -3` of the bundle's uncompressed content as one stream.
pub fn compress_stream(r: &mut Runner, stream: &Path, out: &Path) -> Measured {
    let script = format!("zstd -T0 -3 -q -f -c {} > {}", sh_path(stream), sh_path(out));
    r.shell("floor-bundle-zstd-3", &script, None)
}

/// `TOOL FILE`: hashing cost of one stream on this CPU.
pub fn hash_file(r: &mut Runner, tool: &str, file: &Path) -> Measured {
    let script = format!("{tool} {} > /dev/null", sh_path(file));
    r.shell(&format!("floor-bundle-{tool}"), &script, None)
}

/// extract: `zstd -d | tar -x` of the bundle into a fresh directory.
pub fn extract(r: &mut Runner, archive: &Path, into: &Path) -> Measured {
    let _ = fsio::remove_any(into);
    let script = format!(
        "mkdir -p {0} && zstd -d -q -c {1} | tar -xf - -C {0}",
        sh_path(into),
        sh_path(archive)
    );
    r.shell("floor-extract-zstd-tar-x", &script, None)
}

/// Input files of `next` that are new or differ from `prev` (relative paths), files of `prev`
/// gone from `next`. Unchanged VEX and SBOM files are hard links (same inode) by the
/// generator's invariant, so no content is read; the JSONL files are always rewritten and so
/// always listed (their changed lines are found by `changed_records`).
pub fn diff_inputs(prev: &Path, next: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let index = |root: &Path| -> Result<HashMap<PathBuf, (u64, u64)>> {
        let mut m = HashMap::new();
        for (rel, abs, _) in input_files(root)? {
            let md = fs::metadata(&abs)?;
            m.insert(rel, (md.dev(), md.ino()));
        }
        Ok(m)
    };
    let (a, b) = (index(prev)?, index(next)?);
    let mut changed: Vec<PathBuf> = b
        .iter()
        .filter(|(rel, id)| a.get(*rel) != Some(id))
        .map(|(rel, _)| rel.clone())
        .collect();
    let mut removed: Vec<PathBuf> = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    changed.sort();
    removed.sort();
    Ok((changed, removed))
}

/// The changed records alone, as one file under `dir`: the JSONL lines of `next` that are not
/// lines of `prev` (`LC_ALL=C comm -13` of both sorted), then every new or changed VEX/SBOM
/// file. Returns its path and size; preparing it is not timed.
pub fn changed_records(
    r: &mut Runner,
    prev: &Path,
    next: &Path,
    changed: &[PathBuf],
    dir: &Path,
) -> Result<(PathBuf, u64)> {
    fs::create_dir_all(dir)?;
    let out = dir.join("changed-records");
    let list = dir.join("changed-files.list");
    let mut names = Vec::new();
    for c in changed.iter().filter(|c| !is_jsonl(c)) {
        names.extend_from_slice(c.to_string_lossy().as_bytes());
        names.push(0);
    }
    fs::write(&list, names).ctx(|| format!("writing {}", list.display()))?;
    let mut script = format!(": > {}", sh_path(&out));
    for jsonl in [ADVISORIES, POLICY_FILE] {
        script.push_str(&format!(
            " && LC_ALL=C comm -13 <(LC_ALL=C sort {a}) <(LC_ALL=C sort {b}) >> {o}",
            a = sh_path(&prev.join(jsonl)),
            b = sh_path(&next.join(jsonl)),
            o = sh_path(&out)
        ));
    }
    script.push_str(&format!(
        " && (cd {} && xargs -0 -r cat < {}) >> {}",
        sh_path(next),
        sh_path(&list),
        sh_path(&out)
    ));
    let m = r.shell("prep-changed-records", &script, None);
    if !m.outcome.is_ok() {
        return Err(crate::Error(format!("changed records: {}", m.outcome.label())));
    }
    let len = fs::metadata(&out)?.len();
    Ok((out, len))
}

fn is_jsonl(rel: &Path) -> bool {
    rel == Path::new(ADVISORIES) || rel == Path::new(POLICY_FILE)
}

/// floor-delta: `zstd -3` of the changed records alone.
pub fn compress_changed(r: &mut Runner, label: &str, records: &Path, out: &Path) -> Measured {
    let script = format!("zstd -3 -q -f -c {} > {}", sh_path(records), sh_path(out));
    r.shell(label, &script, None)
}

/// A live copy of the inputs made of hard links, which restic backs up and which is then
/// updated in place to the next generation (as a mirror directory would be), so restic's
/// incremental backup sees unchanged files unchanged (same path, inode, mtime).
pub fn make_live(data: &Path, live: &Path) -> Result<()> {
    fsio::remove_any(live)?;
    for (rel, abs, _) in input_files(data)? {
        let target = live.join(rel);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        fsio::link_or_copy(&abs, &target)?;
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
