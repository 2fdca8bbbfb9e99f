//! A large ingest is atomic: killed (SIGKILL) at random moments while it stages and
//! commits many chunks, the tenant is at exactly the old state or the new one, the store
//! verifies, and rerunning completes it. Real corpora (`../shared/data` history
//! snapshots, committed excerpts otherwise). Trials: `STELLAMIRROR_KILL_TRIALS`
//! (default 30).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stellamirror_tests::{data, ingest, p, shared, sm, state_root};

/// One kind of trial: the base ingest, then the ingest that gets killed.
struct Case {
    base: Vec<(Vec<String>, PathBuf)>,
    args: Vec<String>,
    input: PathBuf,
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The OpenVEX documents of a VEX Hub snapshot (without its `manifest.json`).
fn openvex_only(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".openvex.json") {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    to.to_path_buf()
}

fn cases(dir: &Path) -> Vec<Case> {
    let real = (
        shared("history/pypa-2022-01-14.jsonl"),
        shared("advisories/pypa.jsonl"),
        shared("history/rancher-vexhub-2026-07-22").map(|d| openvex_only(&d, &dir.join("vex-old"))),
        shared("history/rancher-vexhub-2026-08-15").map(|d| openvex_only(&d, &dir.join("vex-new"))),
    );
    let (osv_old, osv_new, vex_old, vex_new, records) = match real {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d, "300"),
        _ => (
            data("osv/go-old.jsonl"),
            data("osv/go-new.jsonl"),
            data("vex/rancher-old"),
            data("vex/rancher-new"),
            "10",
        ),
    };
    let base = vec![
        (strings(&["--source", "osv", "--complete"]), osv_old),
        (strings(&["--source", "vex", "--complete"]), vex_old),
    ];
    vec![
        Case {
            base: base.clone(),
            args: strings(&["--source", "osv", "--complete", "--batch-records", records]),
            input: osv_new,
        },
        Case {
            base,
            // The hub dropped 369 of its 511 documents between the two snapshots.
            args: strings(&[
                "--source",
                "vex",
                "--complete",
                "--allow-mass-removal",
                "--batch-records",
                records,
            ]),
            input: vex_new,
        },
    ]
}

fn run_ingest(store: &Path, args: &[String], input: &Path) -> serde_json::Value {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ingest(store, "acme", &a, &[input]).ok().json()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A small deterministic generator (xorshift), so that a failing trial can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn sigkill_at_random_points_of_a_staged_ingest_leaves_the_old_or_the_new_state() {
    let trials: usize = std::env::var("STELLAMIRROR_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let t = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (ci, case) in cases(t.path()).iter().enumerate() {
        // Reference: the base store (copied for every trial), and the uninterrupted run.
        let base = t.path().join(format!("base{ci}"));
        for (args, path) in &case.base {
            run_ingest(&base, args, path);
        }
        let before = state_root(&base, "acme");
        let reference = t.path().join(format!("ref{ci}"));
        copy_dir(&base, &reference);
        let started = Instant::now();
        let r = run_ingest(&reference, &case.args, &case.input);
        let full = started.elapsed();
        assert_eq!(r["staged"], true, "the input must be staged in chunks: {r}");
        let after = state_root(&reference, "acme");
        assert_ne!(before, after);
        let (mut saw_before, mut saw_after) = (0, 0);
        for trial in (0..trials).filter(|i| i % 2 == ci) {
            let store = t.path().join(format!("trial{trial}"));
            copy_dir(&base, &store);
            let delay = Duration::from_millis(rng.below(full.as_millis() as u64 * 5 / 4 + 10));
            let mut args = vec!["--quiet".to_string(), "ingest".into(), "--store".into()];
            args.extend([p(&store).to_string(), "--tenant".into(), "acme".into()]);
            args.extend(case.args.iter().cloned());
            args.push(p(&case.input).to_string());
            let mut child = Command::new(stellamirror_tests::bin()).args(&args).spawn().unwrap();
            std::thread::sleep(delay);
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            let root = state_root(&store, "acme");
            assert!(
                root == before || root == after,
                "trial {trial}: killed after {delay:?} (a full run takes {full:?}): root {root} is neither before nor after"
            );
            saw_before += usize::from(root == before);
            saw_after += usize::from(root == after);
            // Whichever it is, the live records are exactly the tree's leaves.
            sm(["verify", "--store", p(&store)]).ok();
            run_ingest(&store, &case.args, &case.input);
            assert_eq!(state_root(&store, "acme"), after, "trial {trial}: rerun completes");
            std::fs::remove_dir_all(&store).unwrap();
        }
        eprintln!(
            "case {ci}: a full run takes {full:?}; {saw_before} kills left the old state, {saw_after} the new one"
        );
        if trials >= 10 {
            assert!(
                saw_before > 0 && saw_after > 0,
                "case {ci}: kills must land both before and after the commit (before {saw_before}, after {saw_after})"
            );
        }
    }
}
