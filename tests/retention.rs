//! Retention and garbage collection (issue 20): `prune` keeps what `rebuild` needs,
//! removes the rest (bundle files, catalog entries, then the store's unreferenced objects
//! and nodes), survives kill -9 anywhere, and RocksDB's info logs stay bounded.

use std::path::{Path, PathBuf};
use std::process::Command;

use stellamirror_tests::{bin, keypair, p, sm, sm_at, state_root};

const RECORDS: usize = 400;

/// Cycle `k` of a synthetic OSV source: a tenth of the records change every cycle, so
/// every cycle's old versions are garbage once no kept export refers to them.
fn cycle_input(dir: &Path, k: usize) -> PathBuf {
    let mut body = String::new();
    for i in 0..RECORDS {
        let phase = i % 10;
        let version = if k >= phase { (k - phase) / 10 + 1 } else { 0 };
        body.push_str(&format!(
            "{{\"id\":\"SYN-{i}\",\"modified\":\"2026-08-01T00:00:00Z\",\"summary\":\"record {i} version {version} {}\",\"affected\":[{{\"package\":{{\"ecosystem\":\"Go\",\"name\":\"example.com/m{i}\"}}}}]}}\n",
            "x".repeat(200)
        ));
    }
    let f = dir.join(format!("cycle-{k}.jsonl"));
    std::fs::write(&f, body).unwrap();
    f
}

fn hour(k: usize) -> String {
    format!("2026-08-{:02}T{:02}:00:00Z", 14 + k / 24, k % 24)
}

struct Producer {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
    out: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

impl Producer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (key, public) = keypair(&root, "k");
        Producer {
            store: root.join("store"),
            out: root.join("out"),
            root,
            key,
            public,
            _dir: dir,
        }
    }

    /// Ingest cycle `k` and export it: a full bundle when `full`, else a delta on latest.
    fn cycle(&self, k: usize, full: bool) {
        let input = cycle_input(&self.root, k);
        sm([
            "ingest",
            "--store",
            p(&self.store),
            "--tenant",
            "acme",
            "--source",
            "syn",
            "--complete",
            "--allow-mass-removal",
            p(&input),
        ])
        .ok();
        let run = format!("{}{k}", if full { "f" } else { "d" });
        let mut args = vec!["export", if full { "full" } else { "delta" }, "--store", p(&self.store)];
        args.extend(["--tenant", "acme", "--out", p(&self.out), "--sign-key", p(&self.key)]);
        let created = hour(k);
        args.extend(["--run-id", &run, "--created-at", &created]);
        if !full {
            args.extend(["--base", "latest"]);
        }
        sm(args).ok();
    }

    fn bundles(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tar.zst"))
            .collect();
        v.sort();
        v
    }
}

#[test]
fn prune_keeps_what_rebuild_needs_and_collects_the_rest() {
    let pr = Producer::new();
    for k in 0..6 {
        pr.cycle(k, k % 3 == 0);
    }
    let store = p(&pr.store);
    let now = "2026-08-14T06:00:00Z";
    let prune = [
        "prune",
        "--store",
        store,
        "--channel",
        "default",
        "--keep-full",
        "1",
        "--keep-within",
        "90m",
    ];
    let before = sm(["log", "--store", store, "--json"]).ok().stdout;
    let mut dry = prune.to_vec();
    dry.extend(["--dry-run", "--json"]);
    let plan = sm_at(now, &dry).ok().json();
    let planned: Vec<&str> = plan["plans"][0]["prune"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["runId"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["f0", "d1", "d2"], "{plan}");
    assert!(plan["gc"]["objectsRemoved"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(
        sm(["log", "--store", store, "--json"]).ok().stdout,
        before,
        "a dry run changed the catalog"
    );
    assert_eq!(pr.bundles().len(), 6, "a dry run removed files");

    let mut real = prune.to_vec();
    real.push("--json");
    let r = sm_at(now, &real).ok().json();
    assert_eq!(
        pr.bundles(),
        ["d4-delta.tar.zst", "d5-delta.tar.zst", "f3-full.tar.zst"]
    );
    let gc = &r["gc"];
    assert!(
        gc["objectsRemoved"].as_u64().unwrap() > 0 && gc["nodesRemoved"].as_u64().unwrap() > 0,
        "{r}"
    );
    sm(["verify", "--store", store]).ok();

    // What is left in the folder still rebuilds the producer's state.
    let rebuilt = pr.root.join("rebuilt");
    sm([
        "rebuild",
        "--bundles",
        p(&pr.out),
        "--store",
        p(&rebuilt),
        "--trust",
        p(&pr.public),
    ])
    .ok();
    assert_eq!(state_root(&rebuilt, "acme"), state_root(&pr.store, "acme"));

    // A pruned export is refused as such; kept ones still regenerate byte for byte.
    let rerun = |id: &str| {
        sm([
            "export",
            "full",
            "--store",
            store,
            "--tenant",
            "acme",
            "--out",
            p(&pr.root.join("rerun")),
            "--rerun",
            id,
            "--sign-key",
            p(&pr.key),
        ])
    };
    rerun("f0").fails_with("ERR_EXPORT_PRUNED");
    for id in ["f3", "d4", "d5"] {
        assert!(rerun(id).ok().stdout.contains("identical to the original: true"));
    }
    sm([
        "export",
        "delta",
        "--store",
        store,
        "--tenant",
        "acme",
        "--base",
        "d1",
        "--sign-key",
        p(&pr.key),
    ])
    .fails_with("ERR_EXPORT_PRUNED");

    let audit = std::fs::read_to_string(pr.store.join("audit.jsonl")).unwrap();
    let event = |name: &str| -> serde_json::Value {
        let line = audit
            .lines()
            .rev()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name}"));
        serde_json::from_str(line).unwrap()
    };
    let pruned = event("mirror.export.pruned");
    assert!(pruned.to_string().contains("\"filesRemoved\":3"), "{pruned}");
    let collected = event("mirror.store.collected");
    assert!(collected.to_string().contains("bytesFreed"), "{collected}");
    assert!(collected.to_string().contains("objectsRemoved"), "{collected}");
    // Nothing left to do: a second prune removes nothing.
    let again = sm_at(now, &real).ok().json();
    assert_eq!(again["plans"][0]["prune"].as_array().unwrap().len(), 0);
    assert_eq!(again["gc"]["objectsRemoved"], 0);
}

#[test]
fn prune_and_gc_killed_anywhere_never_delete_a_referenced_object() {
    let pr = Producer::new();
    let store = p(&pr.store);
    pr.cycle(0, true);
    let prune_args = |now: &str| -> Vec<String> {
        [
            "--quiet",
            "prune",
            "--store",
            store,
            "--keep-full",
            "1",
            "--keep-within",
            "2h",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--now".to_string(), now.to_string()])
        .collect()
    };
    // One unkilled round measures how long a whole prune takes, and its collection alone.
    pr.cycle(1, false);
    pr.cycle(2, false);
    let started = std::time::Instant::now();
    let o = Command::new(bin()).args(prune_args(&hour(4))).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let span_us = (started.elapsed().as_micros() as u64 * 3 / 2).max(20_000);
    let audit = pr.store.join("audit.jsonl");
    let gc_us = last_collection_us(&audit).max(2_000);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut interrupted = 0;
    for trial in 0..30 {
        let k = trial + 3;
        pr.cycle(k, k % 5 == 0);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pruned_before = count_events(&audit, "mirror.export.pruned");
        let mut child = Command::new(bin())
            .args(prune_args(&hour(k)))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Even trials kill anywhere in the run; odd ones wait until the prune is recorded
        // and kill somewhere in the collection that follows it, so some kill always lands
        // in that short window however fast or loaded the machine is.
        if trial % 2 == 1 {
            while count_events(&audit, "mirror.export.pruned") == pruned_before && child.try_wait().unwrap().is_none() {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            std::thread::sleep(std::time::Duration::from_micros(x % gc_us));
        } else {
            std::thread::sleep(std::time::Duration::from_micros(x % span_us));
        }
        let _ = child.kill(); // SIGKILL
        let finished = child.wait().unwrap().success();
        sm(["verify", "--store", store]).ok();
        let left = sm(["gc", "--store", store, "--dry-run", "--json"]).ok().json();
        if !finished && left["objectsRemoved"].as_u64().unwrap() + left["nodesRemoved"].as_u64().unwrap() > 0 {
            interrupted += 1;
        }
    }
    eprintln!("{interrupted} of 30 kills landed mid-collection");
    assert!(interrupted > 0, "no kill landed mid-collection: the test means nothing");
    // A rerun completes, and every kept export still regenerates byte for byte.
    let o = Command::new(bin()).args(prune_args(&hour(32))).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left = sm(["gc", "--store", store, "--dry-run", "--json"]).ok().json();
    assert_eq!(left["objectsRemoved"], 0, "{left}");
    let log = sm(["log", "--store", store, "--json"]).ok().json();
    let kept: Vec<&str> = log["exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pruned"].is_null())
        .map(|e| e["runId"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["f30", "d31", "d32"], "{log}");
    for id in kept {
        let r = sm([
            "export",
            "full",
            "--store",
            store,
            "--tenant",
            "acme",
            "--out",
            p(&pr.root.join("rerun")),
            "--rerun",
            id,
            "--sign-key",
            p(&pr.key),
        ])
        .ok();
        assert!(
            r.stdout.contains("identical to the original: true"),
            "{id}: {}",
            r.stdout
        );
    }
}

#[test]
fn repeated_commands_do_not_pile_up_rocksdb_info_logs() {
    let pr = Producer::new();
    pr.cycle(0, true);
    for _ in 0..12 {
        sm(["status", "--store", p(&pr.store)]).ok();
    }
    let old_logs = std::fs::read_dir(&pr.store)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("LOG.old"))
        .count();
    assert!(old_logs <= 3, "{old_logs} LOG.old.* files after 14 commands");
}

/// How many audit events named `name` the store's audit log holds.
fn count_events(audit: &Path, name: &str) -> usize {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines().filter(|l| l.contains(name)).count()
}

/// How long the last recorded collection took, in microseconds.
fn last_collection_us(audit: &Path) -> u64 {
    let text = std::fs::read_to_string(audit).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("mirror.store.collected"))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    let seconds = event.to_string();
    let seconds = find_number(&event, "seconds").unwrap_or_else(|| panic!("no seconds in {seconds}"));
    (seconds * 1e6) as u64
}

/// The first number named `key` anywhere in `v`.
fn find_number(v: &serde_json::Value, key: &str) -> Option<f64> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|n| n.as_f64())
            .or_else(|| m.values().find_map(|x| find_number(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_number(x, key)),
        _ => None,
    }
}
