//! Finding 5 of issue 17: a full disk is `ERR_NO_SPACE`, naming the path and what was
//! needed — for an import into the store (refused up front when the signed sizes do not
//! fit, or when a write fails mid-way, in one pass or staged) and for an export into its
//! output folder — never `ERR_BUNDLE_MALFORMED`; the store is left as it was. Real full
//! file systems: small tmpfs mounts (needs root; skipped with the reason otherwise).
use std::path::{Path, PathBuf};

use stellamirror_tests::{
    age_identity, big_osv, export_full, import_bundle, ingest, ingest_sample, keypair, p, sm, state_root, store_debris,
    tool,
};

/// A tmpfs of `size` mounted at `dir` for the test's life.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let opts = format!("size={size}");
        let r = tool("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", p(dir)], dir);
        if r.code != 0 {
            return Err(format!("mount -t tmpfs failed: {}", r.stderr.trim()));
        }
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Whether this test can mount a tmpfs here (root, and mounts allowed); the reason if not.
fn can_mount(dir: &Path) -> Result<(), String> {
    Mount::new(&dir.join("probe"), "64k").map(drop)
}

#[test]
fn finding_5_a_full_disk_is_err_no_space_naming_the_path_and_what_was_needed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    if let Err(reason) = can_mount(dir) {
        eprintln!("SKIPPED: no small file system to fill ({reason})");
        return;
    }
    let (key, public) = keypair(dir, "k");
    let (identity, recipient) = age_identity(dir, "mirror.age");
    // A small bundle that fits anywhere, and a big one (about 5 MB listed, 2.3 MB packed).
    let small_store = dir.join("small");
    ingest_sample(&small_store, "old");
    let small = export_full(
        &small_store,
        &dir.join("out-small"),
        &key,
        "s1",
        "2026-09-01T00:00:00Z",
        &[],
    );
    let producer = dir.join("producer");
    ingest(&producer, "acme", &["--source", "a"], &[&big_osv(dir, "a", 150)]).ok();
    let out = dir.join("out");
    let big = export_full(
        &producer,
        &out,
        &key,
        "f1",
        "2026-09-02T00:00:00Z",
        &["--min-sequence", "2"],
    );
    let sealed = export_full(
        &producer,
        &out,
        &key,
        "f2",
        "2026-09-02T00:00:00Z",
        &["--encrypt", "age", "--recipient", &recipient, "--detached"],
    );

    // 1. The signed sizes do not fit: refused before anything is written.
    let fs = Mount::new(&dir.join("fs3m"), "3m").unwrap();
    let store = fs.0.join("m");
    let r = import_bundle(&big, &store, &public, &[]).fails_with("ERR_NO_SPACE");
    assert!(r.stderr.contains(p(&store)), "names the store: {}", r.stderr);
    // Up front when the signed sizes exceed the free space, else at the first write.
    assert!(r.stderr.contains("needed: "), "{}", r.stderr);
    assert!(!store.exists(), "a refused import into a new store leaves no store");

    // 2. They fit, the store's data does not: a write fails mid-import (one pass), over an
    //    existing state, which stays.
    let fs = Mount::new(&dir.join("fs12m"), "12m").unwrap();
    let store = fs.0.join("m");
    import_bundle(&small, &store, &public, &[]).ok();
    let before = state_root(&store, "acme");
    let r = import_bundle(&big, &store, &public, &[]).fails_with("ERR_NO_SPACE");
    assert!(r.stderr.contains(p(&store)), "names the store: {}", r.stderr);
    assert!(r.stderr.contains("needed: room for"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("MALFORMED") && !r.stderr.contains("Os {"),
        "{}",
        r.stderr
    );
    assert_eq!(state_root(&store, "acme"), before, "the store is left as it was");
    assert_eq!(store_debris(&store), Vec::<String>::new());

    // 3. The staged path (an encrypted bundle is copied into the store first).
    let fs = Mount::new(&dir.join("fs8m-staged"), "8m").unwrap();
    let store = fs.0.join("m");
    import_bundle(&small, &store, &public, &[]).ok();
    let r = import_bundle(&sealed, &store, &public, &["--identity", p(&identity)]).fails_with("ERR_NO_SPACE");
    assert!(r.stderr.contains(p(&store)), "names the store: {}", r.stderr);
    assert_eq!(state_root(&store, "acme"), before);
    assert_eq!(store_debris(&store), Vec::<String>::new());

    // 4. An export into a full output folder.
    let fs = Mount::new(&dir.join("fs1m"), "1m").unwrap();
    let full_out = fs.0.join("out");
    let r = sm([
        "export",
        "full",
        "--store",
        p(&producer),
        "--tenant",
        "acme",
        "--out",
        p(&full_out),
        "--run-id",
        "f3",
        "--sign-key",
        p(&key),
        "--detached",
    ])
    .fails_with("ERR_NO_SPACE");
    assert!(r.stderr.contains(p(&full_out)), "names the output folder: {}", r.stderr);
    assert!(r.stderr.contains("needed: room for"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(&full_out).map(|d| d.count()).into_iter().collect();
    assert!(left.iter().all(|n| *n == 0), "a failed export leaves nothing in --out");
}
