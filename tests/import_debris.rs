//! Finding 4 of issue 17, import side: a killed import (full or delta, in one pass or
//! staged) or rebuild leaves scratch folders in the store; the next command that opens the
//! store — here a plain `status` — removes them, and a finished or refused run leaves none.
//! Kill points are pseudo-random within each run's measured length: set
//! `STELLAMIRROR_KILL_POINTS` (per case, default 8; four cases) and
//! `STELLAMIRROR_KILL_SEED` to replay a run.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stellamirror_tests::{
    age_identity, big_osv, bin, export_delta, export_full, import_bundle, ingest, keypair, p, sm, state_root,
    store_debris, tool, KillClock, TEST_NOW,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One killed command: its arguments (with `{store}` for the store) and the store it
/// starts from (`None`: no store yet).
struct Case {
    name: &'static str,
    args: Vec<String>,
    template: Option<PathBuf>,
    want: String,
}

fn run_args(case: &Case, store: &Path) -> Vec<String> {
    case.args.iter().map(|a| a.replace("{store}", p(store))).collect()
}

fn fresh_store(case: &Case, store: &Path, dir: &Path) {
    let _ = std::fs::remove_dir_all(store);
    if let Some(t) = &case.template {
        assert_eq!(tool("cp", &["-a", p(t), p(store)], dir).code, 0);
    }
}

/// Run the case's command to completion and check it leaves the wanted state, no debris.
fn complete(case: &Case, store: &Path, at: &str) {
    let r = sm(run_args(case, store));
    assert_eq!(r.code, 0, "{at}: {}", r.stderr);
    assert_eq!(state_root(store, "acme"), case.want, "{at}: the rerun completes");
    assert_eq!(
        store_debris(store),
        Vec::<String>::new(),
        "{at}: a finished run leaves no debris"
    );
}

#[test]
fn finding_4_killed_imports_leave_no_debris_after_the_next_command() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, public) = keypair(dir, "k");
    let (identity, recipient) = age_identity(dir, "mirror.age");
    let producer = dir.join("producer");
    ingest(&producer, "acme", &["--source", "a"], &[&big_osv(dir, "a", 150)]).ok();
    let out = dir.join("bundles");
    let full = export_full(&producer, &out, &key, "f1", "2026-09-01T00:00:00Z", &[]);
    let full_root = state_root(&producer, "acme");
    let sealed_out = dir.join("sealed");
    let sealed = export_full(
        &producer,
        &sealed_out,
        &key,
        "s1",
        "2026-09-01T00:00:00Z",
        &["--encrypt", "age", "--recipient", &recipient, "--detached"],
    );
    ingest(&producer, "acme", &["--source", "b"], &[&big_osv(dir, "b", 150)]).ok();
    export_delta(&producer, &out, &key, "f1", "d1", "2026-09-02T00:00:00Z", &[]).ok();
    let delta = out.join("d1-delta.tar.zst");
    let delta_root = state_root(&producer, "acme");
    let base = dir.join("base");
    import_bundle(&full, &base, &public, &[]).ok();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let import = |b: &Path, extra: &[&str]| {
        let mut a = s(&["import", p(b), "--store", "{store}", "--trust", p(&public)]);
        a.extend(s(extra));
        a
    };
    let cases = [
        Case {
            name: "full import, one pass",
            args: import(&full, &[]),
            template: None,
            want: full_root.clone(),
        },
        Case {
            name: "delta import, one pass",
            args: import(&delta, &[]),
            template: Some(base.clone()),
            want: delta_root.clone(),
        },
        Case {
            name: "encrypted full import, staged",
            args: import(&sealed, &["--identity", p(&identity)]),
            template: None,
            want: full_root.clone(),
        },
        Case {
            name: "rebuild",
            args: s(&[
                "rebuild",
                "--bundles",
                p(&out),
                "--store",
                "{store}",
                "--trust",
                p(&public),
            ]),
            template: None,
            want: delta_root.clone(),
        },
    ];
    let points = env_u64("STELLAMIRROR_KILL_POINTS", 8);
    let seed = env_u64("STELLAMIRROR_KILL_SEED", 0x5eed_0017);
    let mut clock = KillClock(seed | 1);
    let mut left_some = 0;
    for case in &cases {
        let store = dir.join("m");
        fresh_store(case, &store, dir);
        let started = Instant::now();
        complete(case, &store, case.name);
        let span = (started.elapsed().as_millis() as u64 * 6 / 5).max(50);
        for k in 0..points {
            fresh_store(case, &store, dir);
            let ms = clock.next_below(span);
            let at = format!("{}: seed {seed}, kill point {k} after {ms} ms of ~{span}", case.name);
            let mut child = Command::new(bin())
                .arg("--quiet")
                .args(run_args(case, &store))
                .env("STELLAMIRROR_NOW", TEST_NOW)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(ms));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            left_some += usize::from(!store_debris(&store).is_empty());
            if store.join("CURRENT").exists() {
                // Any command that opens the store sweeps; status may find no tenant yet.
                let _ = sm(["status", "--store", p(&store), "--tenant", "acme"]);
                assert_eq!(
                    store_debris(&store),
                    Vec::<String>::new(),
                    "{at}: swept by the next command"
                );
            }
            complete(case, &store, &at);
        }
    }
    eprintln!(
        "{} kill points: {left_some} left debris before the next command",
        points * 4
    );
    assert!(left_some > 0, "no kill left debris: the test means nothing");
    // A refused import over an existing store leaves no debris either.
    let mut bytes = std::fs::read(&delta).unwrap();
    let n = bytes.len();
    bytes.truncate(n * 3 / 4);
    let cut = dir.join("cut-delta.tar.zst");
    std::fs::write(&cut, bytes).unwrap();
    let store = dir.join("refused");
    assert_eq!(tool("cp", &["-a", p(&base), p(&store)], dir).code, 0);
    assert_ne!(import_bundle(&cut, &store, &public, &[]).code, 0);
    assert_eq!(
        store_debris(&store),
        Vec::<String>::new(),
        "a refused import leaves no debris"
    );
    assert_eq!(state_root(&store, "acme"), full_root);
}
