//! The far side: ordered import, refusals that change nothing, hostile archives,
//! crash safety, disaster-recovery rebuild.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stellamirror_tests::{
    data, export_delta, export_full, files_below, import_bundle, ingest, keypair, p, shared, sm, state_root, status,
    tool,
};

struct Chain {
    _dir: tempfile::TempDir,
    root: PathBuf,
    producer: PathBuf,
    public: PathBuf,
    bundles: Vec<PathBuf>,
    /// Producer state root after each bundle.
    roots: Vec<String>,
}

/// Ingest steps of real history; a full export after the first, a delta after each other.
fn history_steps() -> Vec<Vec<(&'static str, PathBuf)>> {
    if let (Some(p1), Some(p2), Some(p3), Some(g1), Some(g2), Some(g3)) = (
        shared("history/pypa-2024-09-10.jsonl"),
        shared("history/pypa-2024-10-03.jsonl"),
        shared("advisories/pypa.jsonl"),
        shared("history/go-2026-07-21.jsonl"),
        shared("history/go-2026-08-14.jsonl"),
        shared("advisories/go.jsonl"),
    ) {
        return vec![
            vec![("pypa", p1), ("go", g1)],
            vec![("pypa", p2)],
            vec![("go", g2)],
            vec![("pypa", p3), ("go", g3)],
        ];
    }
    vec![
        vec![("go", data("osv/go-old.jsonl")), ("vex", data("vex/rancher-old"))],
        vec![("go", data("osv/go-new.jsonl"))],
        vec![("vex", data("vex/rancher-new"))],
        vec![("pypa", data("osv/pypa.jsonl"))],
    ]
}

fn chain() -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (key, public) = keypair(&root, "producer");
    let producer = root.join("producer");
    let out = root.join("bundles");
    let mut bundles = Vec::new();
    let mut roots = Vec::new();
    for (i, step) in history_steps().into_iter().enumerate() {
        for (source, path) in step {
            ingest(&producer, "acme", &["--source", source, "--complete"], &[&path]).ok();
        }
        let created = format!("2026-09-0{}T00:00:00Z", i + 1);
        if i == 0 {
            bundles.push(export_full(&producer, &out, &key, "f0", &created, &[]));
        } else {
            let run = format!("d{i}");
            export_delta(&producer, &out, &key, "latest", &run, &created, &[]).ok();
            bundles.push(out.join(format!("{run}-delta.tar.zst")));
        }
        roots.push(state_root(&producer, "acme"));
    }
    Chain {
        _dir: dir,
        root,
        producer,
        public,
        bundles,
        roots,
    }
}

fn import(c: &Chain, bundle: &Path, store: &Path) -> stellamirror_tests::Run {
    import_bundle(bundle, store, &c.public, &["--json"])
}

#[test]
fn full_and_three_real_deltas_reproduce_the_exporters_state() {
    let c = chain();
    let mirror = c.root.join("mirror");
    for (b, root) in c.bundles.iter().zip(&c.roots) {
        let r = import(&c, b, &mirror).ok().json();
        assert_eq!(r["outcome"], "applied");
        assert_eq!(&r["stateRoot"], root);
    }
    let (mut a, mut b) = (status(&c.producer, "acme"), status(&mirror, "acme"));
    assert_eq!(b["appliedExportIds"], serde_json::json!(["f0", "d1", "d2", "d3"]));
    // What the mirror applied, and how fresh it is, exists on the mirror side only;
    // RocksDB's write counter is each store's own.
    assert_eq!(b["freshness"]["runId"], "d3");
    assert_eq!(b["freshness"]["sequence"], 4);
    for k in ["appliedExportIds", "storeSequence", "freshness"] {
        a.as_object_mut().unwrap().remove(k);
        b.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(a, b, "identical status on both sides");
    sm(["verify", "--store", p(&mirror)]).ok();
    let log = sm(["log", "--store", p(&mirror), "--json"]).ok().json();
    assert_eq!(log["imports"].as_array().unwrap().len(), 4);
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.delta.applied\"").count(), 3);
    assert_eq!(audit.matches("\"mirror.bundle.imported\"").count(), 1);
}

#[test]
fn out_of_order_skipped_repeated_and_foreign_tenant_imports_are_refused_or_no_ops() {
    let c = chain();
    let mirror = c.root.join("mirror");
    import(&c, &c.bundles[0], &mirror).ok();
    let before = state_root(&mirror, "acme");
    // Skipping d1.
    import(&c, &c.bundles[2], &mirror).fails_with("ERR_DELTA_OUT_OF_ORDER");
    assert_eq!(state_root(&mirror, "acme"), before);
    // Applying d1 twice: the second is a no-op that says so.
    import(&c, &c.bundles[1], &mirror).ok();
    let after = state_root(&mirror, "acme");
    assert_eq!(
        import(&c, &c.bundles[1], &mirror).ok().json()["outcome"],
        "already-applied"
    );
    assert_eq!(state_root(&mirror, "acme"), after);
    // Into another tenant.
    import_bundle(&c.bundles[2], &mirror, &c.public, &["--tenant", "other", "--json"])
        .fails_with("ERR_TENANT_MISMATCH");
    assert_eq!(state_root(&mirror, "acme"), after);
    // A mirror that diverged (local ingest) refuses the next delta.
    ingest(&mirror, "acme", &[], &[&data("sboms")]).ok();
    let diverged = state_root(&mirror, "acme");
    import(&c, &c.bundles[2], &mirror).fails_with("ERR_STATE_ROOT_MISMATCH");
    assert_eq!(state_root(&mirror, "acme"), diverged);
}

#[test]
fn a_delta_into_an_empty_store_is_out_of_order() {
    let c = chain();
    let mirror = c.root.join("mirror");
    import(&c, &c.bundles[1], &mirror).fails_with("ERR_DELTA_OUT_OF_ORDER");
}

/// Repack an extracted bundle with Python's tarfile (manifest and signatures first, as
/// stellamirror writes them) plus `extra`, a Python snippet adding hostile entries.
fn repack(c: &Chain, extra: &str, name: &str) -> PathBuf {
    let x = c.root.join(format!("x-{name}"));
    std::fs::create_dir_all(&x).unwrap();
    assert_eq!(
        tool(
            "sh",
            &["-c", &format!("zstd -dc '{}' | tar -xf -", c.bundles[0].display())],
            &x
        )
        .code,
        0
    );
    let tar = c.root.join(format!("{name}.tar"));
    let script = format!(
        r#"
import io, tarfile, os
t = tarfile.open({tar:?}, "w", format=tarfile.GNU_FORMAT)
def add_bytes(name, data, **kw):
    ti = tarfile.TarInfo(name); ti.size = len(data)
    for k, v in kw.items(): setattr(ti, k, v)
    t.addfile(ti, io.BytesIO(data))
first = ["mirror/manifest.yaml", "mirror/signatures/manifest.sig", "mirror/signatures/export.sig"]
rest = sorted(os.path.join(d, f)[2:] for d, _, fs in os.walk(".") for f in fs)
for n in first + [r for r in rest if r not in first]:
    t.add(n, arcname=n)
{extra}
t.close()
"#
    );
    let r = tool("python3", &["-c", &script], &x);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tool("zstd", &["-q", "-f", p(&tar)], &c.root).code, 0);
    c.root.join(format!("{name}.tar.zst"))
}

fn refused_and_nothing_written(c: &Chain, bundle: &Path, code: &str, canary: &Path) {
    let mirror = c.root.join("mirror-hostile");
    import(c, &c.bundles[0], &mirror).ok();
    let before = state_root(&mirror, "acme");
    let hist = status(&mirror, "acme")["appliedExportIds"].clone();
    import(c, bundle, &mirror).fails_with(code);
    assert_eq!(state_root(&mirror, "acme"), before);
    assert_eq!(status(&mirror, "acme")["appliedExportIds"], hist);
    assert!(
        !canary.exists(),
        "{} was written outside the staging area",
        canary.display()
    );
    let staging = mirror.join("staging");
    assert!(
        !staging.exists() || files_below(&staging).is_empty(),
        "staging area cleaned up"
    );
}

/// Repack bundle `i` with GNU tar in plain path order: the manifest no longer comes
/// first, so the importer cannot check entries against it while streaming.
fn repack_sorted(c: &Chain, i: usize) -> PathBuf {
    let x = c.root.join(format!("sorted-{i}"));
    std::fs::create_dir_all(&x).unwrap();
    let out = c.root.join(format!("sorted-{i}.tar.zst"));
    let script = format!(
        "zstd -dc '{}' | tar -xf - && find mirror delta -type f 2>/dev/null | LC_ALL=C sort | tar -cf - --no-recursion -T - | zstd -q -o '{}'",
        c.bundles[i].display(),
        out.display()
    );
    let r = tool("sh", &["-c", &script], &x);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

#[test]
fn archives_whose_manifest_is_not_first_are_staged_and_imported() {
    let c = chain();
    let mirror = c.root.join("mirror");
    for i in 0..2 {
        let b = repack_sorted(&c, i);
        let r = import(&c, &b, &mirror).ok().json();
        assert_eq!(r["outcome"], "applied");
        assert_eq!(r["stateRoot"], c.roots[i]);
    }
    sm(["verify", "--store", p(&mirror)]).ok();
    let staging = mirror.join("staging");
    assert!(
        !staging.exists() || files_below(&staging).is_empty(),
        "staging area cleaned up"
    );
}

#[test]
fn path_traversal_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("evil-traversal.txt");
    let b = repack(
        &c,
        r#"add_bytes("mirror/../../evil-traversal.txt", b"owned")"#,
        "traversal",
    );
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNSAFE_ENTRY", &canary);
}

#[test]
fn absolute_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("evil-absolute.txt");
    let b = repack(
        &c,
        &format!("add_bytes({:?}, b\"owned\")", canary.display().to_string()),
        "absolute",
    );
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNSAFE_ENTRY", &canary);
}

#[test]
fn symlink_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("evil-symlink");
    let b = repack(
        &c,
        &format!(
            "add_bytes(\"mirror/data/link\", b\"\", type=tarfile.SYMTYPE, linkname={:?})",
            canary.display().to_string()
        ),
        "symlink",
    );
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNSAFE_ENTRY", &canary);
}

#[test]
fn hardlink_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("evil-hardlink");
    let b = repack(
        &c,
        r#"add_bytes("mirror/data/hard", b"", type=tarfile.LNKTYPE, linkname="mirror/export.json")"#,
        "hardlink",
    );
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNSAFE_ENTRY", &canary);
}

#[test]
fn unlisted_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("none");
    let b = repack(&c, r#"add_bytes("mirror/data/extra.jsonl", b"{}\n")"#, "unlisted");
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNLISTED_FILE", &canary);
}

#[test]
fn duplicate_entry_is_refused() {
    let c = chain();
    let canary = c.root.join("none");
    let b = repack(
        &c,
        r#"t.add("mirror/export.json", arcname="mirror/export.json")"#,
        "duplicate",
    );
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_UNSAFE_ENTRY", &canary);
}

#[test]
fn zstd_bomb_is_refused_not_swallowed() {
    let c = chain();
    let canary = c.root.join("none");
    // 1 GiB of zeros as the first entry (before any manifest), streamed straight into
    // zstd: the archive is a few kilobytes.
    let bomb_dir = c.root.join("bomb");
    std::fs::create_dir_all(&bomb_dir).unwrap();
    let script = "import tarfile, io, sys\nclass Z(io.RawIOBase):\n    def __init__(s, n): s.n = n\n    def readable(s): return True\n    def readinto(s, b):\n        k = min(len(b), s.n); b[:k] = bytes(k); s.n -= k; return k\nt = tarfile.open(fileobj=sys.stdout.buffer, mode='w|')\nti = tarfile.TarInfo('mirror/manifest.yaml'); ti.size = 1 << 30\nt.addfile(ti, io.BufferedReader(Z(1 << 30)))\nt.close()\n";
    let r = tool(
        "sh",
        &["-c", &format!("python3 -c \"{script}\" | zstd -q -1 -o bomb.tar.zst")],
        &bomb_dir,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = bomb_dir.join("bomb.tar.zst");
    assert!(std::fs::metadata(&b).unwrap().len() < 1 << 20);
    refused_and_nothing_written(&c, &b, "ERR_BUNDLE_TOO_LARGE", &canary);
}

#[test]
fn truncated_archive_is_refused() {
    let c = chain();
    let bytes = std::fs::read(&c.bundles[0]).unwrap();
    let b = c.root.join("truncated.tar.zst");
    std::fs::write(&b, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mirror = c.root.join("m");
    import(&c, &b, &mirror).fails_with("ERR_BUNDLE_MALFORMED");
    assert!(!mirror.exists(), "a refused import into a new store leaves no store");
}

#[test]
fn a_tampered_byte_anywhere_in_the_archive_is_refused() {
    let c = chain();
    let bytes = std::fs::read(&c.bundles[1]).unwrap();
    let mirror = c.root.join("m");
    import(&c, &c.bundles[0], &mirror).ok();
    let before = state_root(&mirror, "acme");
    for frac in [3usize, 2, 5] {
        let mut t = bytes.clone();
        let i = t.len() * (frac - 1) / frac;
        t[i] ^= 0x40;
        let b = c.root.join(format!("tampered{frac}.tar.zst"));
        std::fs::write(&b, t).unwrap();
        let r = import(&c, &b, &mirror);
        assert_ne!(r.code, 0);
        assert!(
            ["ERR_BUNDLE_MALFORMED", "ERR_DIGEST_MISMATCH", "ERR_SIGNATURE_INVALID"]
                .iter()
                .any(|k| r.stdout.contains(k)),
            "{}",
            r.stdout
        );
        assert_eq!(state_root(&mirror, "acme"), before);
    }
}

/// `copies` distinct copies of the Go excerpt (ids suffixed with `tag` and the copy).
fn big_osv(dir: &Path, tag: &str, copies: usize) -> PathBuf {
    let src = std::fs::read_to_string(data("osv/go-new.jsonl")).unwrap();
    let mut big = String::new();
    for i in 0..copies {
        for l in src.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"] = serde_json::Value::String(format!("{}-{tag}{i}", v["id"].as_str().unwrap()));
            big.push_str(&serde_json::to_string(&v).unwrap());
            big.push('\n');
        }
    }
    let path = dir.join(format!("big-{tag}.jsonl"));
    std::fs::write(&path, big).unwrap();
    path
}

/// xorshift64*: reproducible kill points from a printed seed.
struct KillClock(u64);

impl KillClock {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// Start an import of `bundle` into `store` and SIGKILL it after `ms` milliseconds.
fn import_killed_after(bundle: &Path, store: &Path, public: &Path, ms: u64) {
    let mut child = Command::new(stellamirror_tests::bin())
        .args([
            "--quiet",
            "import",
            p(bundle),
            "--store",
            p(store),
            "--trust",
            p(public),
        ])
        .env("STELLAMIRROR_NOW", stellamirror_tests::TEST_NOW)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL at random moments of a bulk-loaded full import — into an empty store and over
/// an existing state (a new records generation) — leaves the store exactly at the old
/// state or at the new one, never between; rerunning the import completes it. Set
/// `STELLAMIRROR_KILL_POINTS` for more kill points (default 30) and
/// `STELLAMIRROR_KILL_SEED` to replay a run.
#[test]
fn sigkill_during_bulk_import_leaves_the_old_or_the_new_state() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let mut bundles = Vec::new();
    let mut roots = Vec::new();
    for (tag, copies) in [("a", 100), ("b", 300)] {
        let producer = t.path().join(format!("producer-{tag}"));
        ingest(&producer, "acme", &[], &[&big_osv(t.path(), tag, copies)]).ok();
        let out = t.path().join(format!("out-{tag}"));
        bundles.push(export_full(
            &producer,
            &out,
            &key,
            &format!("big-{tag}"),
            "2026-09-01T00:00:00Z",
            // The second producer continues the first one's sequence: its bundle is newer.
            if tag == "b" { &["--min-sequence", "2"] } else { &[] },
        ));
        roots.push(state_root(&producer, "acme"));
    }
    let (old_root, want) = (roots[0].clone(), roots[1].clone());
    // A store at the old state, copied for every kill point over an existing state.
    let template = t.path().join("template");
    import_bundle(&bundles[0], &template, &public, &[]).ok();
    assert_eq!(state_root(&template, "acme"), old_root);
    let timed = t.path().join("timed");
    assert_eq!(tool("cp", &["-a", p(&template), p(&timed)], t.path()).code, 0);
    let started = std::time::Instant::now();
    import_bundle(&bundles[1], &timed, &public, &[]).ok();
    let span = (started.elapsed().as_millis() as u64 * 6 / 5).max(50);
    let points: u64 = std::env::var("STELLAMIRROR_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("STELLAMIRROR_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0014);
    let mut clock = KillClock(seed | 1);
    let (mut saw_old, mut saw_new) = (0, 0);
    for k in 0..points {
        let store = t.path().join(format!("m{k}"));
        let over_existing = k % 2 == 1;
        if over_existing {
            assert_eq!(tool("cp", &["-a", p(&template), p(&store)], t.path()).code, 0);
        }
        let ms = clock.next_below(span);
        import_killed_after(&bundles[1], &store, &public, ms);
        let at = format!("seed {seed}, kill point {k} after {ms} ms of ~{span}");
        let s = sm(["status", "--store", p(&store), "--tenant", "acme", "--json"]);
        if !store.join("CURRENT").exists() || (!over_existing && s.code != 0) {
            // Killed before the store or the tenant's first commit existed: before.
            if s.code != 0 && store.join("CURRENT").exists() {
                s.fails_with("ERR_TENANT_UNKNOWN");
            }
            saw_old += 1;
        } else {
            let s = s.ok().json();
            let root = s["stateRoot"].as_str().unwrap_or_default().to_string();
            if root == want {
                saw_new += 1;
            } else if over_existing {
                assert_eq!(root, old_root, "{at}: the old state or the new one, never between");
                saw_old += 1;
            } else {
                assert_eq!(s["records"], 0, "{at}: an empty store stays empty until the commit");
                saw_old += 1;
            }
        }
        import_bundle(&bundles[1], &store, &public, &[]).ok();
        assert_eq!(state_root(&store, "acme"), want, "{at}: the rerun completes the import");
        if k % 5 == 0 || k + 1 == points {
            sm(["verify", "--store", p(&store)]).ok();
        }
    }
    eprintln!("{points} kill points: {saw_old} before the commit, {saw_new} after");
    assert!(
        saw_old > 0 && (saw_new > 0 || points < 10),
        "kills must land before and after the commit for this test to mean anything ({saw_old} before, {saw_new} after)"
    );
}

#[test]
fn rebuild_from_a_folder_of_bundles_reproduces_the_exporter() {
    let c = chain();
    let folder = c.root.join("bundles");
    let rebuilt = c.root.join("rebuilt");
    let r = sm([
        "rebuild",
        "--bundles",
        p(&folder),
        "--store",
        p(&rebuilt),
        "--trust",
        p(&c.public),
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(r["chain"], serde_json::json!(["f0", "d1", "d2", "d3"]));
    assert_eq!(state_root(&rebuilt, "acme"), state_root(&c.producer, "acme"));
    // A missing link in the chain is reported, naming what is missing.
    std::fs::remove_file(&c.bundles[2]).unwrap();
    let r = sm([
        "rebuild",
        "--bundles",
        p(&folder),
        "--store",
        p(&c.root.join("gap")),
        "--trust",
        p(&c.public),
        "--json",
    ])
    .fails_with("ERR_REBUILD_CHAIN_GAP");
    assert!(r.stdout.contains("d2"), "{}", r.stdout);
}

#[test]
fn publish_writes_the_current_mirror_tree_and_reuses_unchanged_files() {
    let c = chain();
    let mirror = c.root.join("mirror");
    let public_dir = c.root.join("published");
    for b in &c.bundles[..2] {
        import_bundle(b, &mirror, &c.public, &["--publish", p(&public_dir)]).ok();
    }
    let current = public_dir.join("acme/current");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(current.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["stateRoot"].as_str().unwrap(), state_root(&mirror, "acme"));
    let files = files_below(&current);
    assert!(files.iter().any(|f| f.starts_with("bundle/base/data/raw/advisories/")));
    assert!(files.iter().any(|f| f == "bundle/base/indexes/advisories.index.json"));
    use std::os::unix::fs::MetadataExt;
    let linked = files
        .iter()
        .filter(|f| std::fs::metadata(current.join(f)).unwrap().nlink() > 1)
        .count();
    assert!(
        linked > 0,
        "files unchanged since the previous version are hard links to it"
    );
}

#[test]
fn a_full_import_over_an_existing_state_replaces_it_whole() {
    let c = chain();
    let mirror = c.root.join("mirror");
    for b in &c.bundles {
        import(&c, b, &mirror).ok();
    }
    // Another producer's full bundle (different records) replaces everything.
    let (key2, public2) = keypair(&c.root, "other");
    let other = c.root.join("other-store");
    ingest(&other, "acme", &[], &[&data("osv/pypa.jsonl")]).ok();
    let out = c.root.join("other-out");
    let b = export_full(&other, &out, &key2, "o1", "2026-10-01T00:00:00Z", &[]);
    // Its sequence (1, the other producer's first export) is below the chain's (4): a
    // change of producer is a deliberate step back in sequence.
    import_bundle(&b, &mirror, &public2, &[]).fails_with("ERR_BUNDLE_ROLLBACK");
    import_bundle(&b, &mirror, &public2, &["--allow-rollback"]).ok();
    assert_eq!(status(&mirror, "acme")["kinds"], status(&other, "acme")["kinds"]);
    assert_eq!(state_root(&mirror, "acme"), state_root(&other, "acme"));
    sm(["verify", "--store", p(&mirror)]).ok();
    // A delta of the old chain was applied once: importing it again is a no-op that
    // leaves the new state alone.
    let again = import(&c, &c.bundles[1], &mirror).ok().json();
    assert_eq!(again["outcome"], "already-applied");
    assert_eq!(state_root(&mirror, "acme"), state_root(&other, "acme"));
}
