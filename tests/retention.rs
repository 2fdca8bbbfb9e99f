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
    // Nothing is pending any more, so this is the full mark and sweep's count: the
    // incremental collections, killed or not, left no garbage behind.
    let left = sm(["gc", "--store", store, "--dry-run", "--json"]).ok().json();
    assert_eq!(left["mode"], "full", "{left}");
    assert_eq!(
        (left["objectsRemoved"].as_u64(), left["nodesRemoved"].as_u64()),
        (Some(0), Some(0)),
        "{left}"
    );
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

/// A synthetic OSV source whose records churn at random, including records that revert to
/// earlier content (the same object hash comes back), records removed and re-added, and
/// records that move to another package (subject).
struct Churn {
    /// Per record: the (version, package) it has now, or `None` while removed.
    now: Vec<Option<(u32, u32)>>,
    /// Per record: every (version, package) it has had.
    history: Vec<Vec<(u32, u32)>>,
    next_version: u32,
    rng: u64,
}

const CHURN_RECORDS: usize = 120;
const CHURN_PACKAGES: u64 = 20;

impl Churn {
    fn new() -> Self {
        let start: Vec<(u32, u32)> = (0..CHURN_RECORDS)
            .map(|i| (0, (i as u64 % CHURN_PACKAGES) as u32))
            .collect();
        Churn {
            now: start.iter().copied().map(Some).collect(),
            history: start.iter().map(|v| vec![*v]).collect(),
            next_version: 1,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn draw(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    /// One cycle of churn.
    fn step(&mut self) {
        for i in 0..CHURN_RECORDS {
            let roll = self.draw(100);
            let earlier = self.draw(self.history[i].len() as u64) as usize;
            let package = self.draw(CHURN_PACKAGES) as u32;
            let next = match (roll, self.now[i]) {
                (0..=7, Some((_, p))) => Some((self.fresh(), p)),
                (8..=13, Some(_)) => Some(self.history[i][earlier]),
                (14..=17, Some(_)) => None,
                (18..=27, None) => Some(self.history[i][earlier]),
                (28..=30, Some((v, _))) => Some((v, package)),
                (_, now) => now,
            };
            if let Some(v) = next {
                if !self.history[i].contains(&v) {
                    self.history[i].push(v);
                }
            }
            self.now[i] = next;
        }
    }

    fn fresh(&mut self) -> u32 {
        self.next_version += 1;
        self.next_version
    }

    fn write(&self, dir: &Path, k: usize) -> PathBuf {
        let mut body = String::new();
        for (i, now) in self.now.iter().enumerate() {
            let Some((version, package)) = now else { continue };
            body.push_str(&format!(
                "{{\"id\":\"REV-{i}\",\"modified\":\"2026-08-01T00:00:00Z\",\"summary\":\"record {i} version {version}\",\"affected\":[{{\"package\":{{\"ecosystem\":\"Go\",\"name\":\"example.com/p{package}\"}}}}]}}\n"
            ));
        }
        let f = dir.join(format!("churn-{k}.jsonl"));
        std::fs::write(&f, body).unwrap();
        f
    }
}

/// The incremental collection `prune` runs leaves exactly what a full mark and sweep
/// would: after every cycle a full dry run finds nothing left, the live state verifies and
/// every kept export still regenerates byte for byte. The churn makes content come back
/// (reverts, removed-then-re-added records) and keeps an older full export alive while
/// the deltas after it are pruned, so some candidates are referenced by kept roots other
/// than the pruned snapshot's successor: without the reference check they would be
/// deleted and a rerun would fail.
#[test]
fn incremental_collection_leaves_exactly_what_a_full_mark_and_sweep_would() {
    let pr = Producer::new();
    let store = p(&pr.store);
    let mut churn = Churn::new();
    let (mut removed, mut referenced, mut pruned) = (0u64, 0u64, 0usize);
    for k in 0..20 {
        if k > 0 {
            churn.step();
        }
        let input = churn.write(&pr.root, k);
        let ingest = ["ingest", "--store", store, "--tenant", "acme", "--source", "rev"];
        let mut args = ingest.to_vec();
        args.extend(["--complete", "--allow-mass-removal", p(&input)]);
        sm(args).ok();
        let full = k % 4 == 0;
        let run = format!("{}{k}", if full { "f" } else { "d" });
        let created = hour(k);
        let mut args = vec!["export", if full { "full" } else { "delta" }, "--store", store];
        args.extend(["--tenant", "acme", "--out", p(&pr.out), "--sign-key", p(&pr.key)]);
        args.extend(["--run-id", &run, "--created-at", &created]);
        if !full {
            args.extend(["--base", "latest"]);
        }
        sm(args).ok();
        let prune = [
            "prune",
            "--store",
            store,
            "--keep-full",
            "2",
            "--keep-within",
            "90m",
            "--json",
        ];
        let r = sm_at(&created, prune).ok().json();
        pruned += r["plans"][0]["prune"].as_array().unwrap().len();
        let gc = &r["gc"];
        assert_eq!(gc["mode"], "incremental", "{r}");
        removed += gc["objectsRemoved"].as_u64().unwrap();
        referenced += gc["objectsKept"].as_u64().unwrap() + gc["nodesKept"].as_u64().unwrap();

        let left = sm(["gc", "--store", store, "--full", "--dry-run", "--json"])
            .ok()
            .json();
        assert_eq!(left["mode"], "full", "{left}");
        assert_eq!(
            (left["nodesRemoved"].as_u64(), left["objectsRemoved"].as_u64()),
            (Some(0), Some(0)),
            "cycle {k}: the incremental collection left garbage a full one finds: {left}"
        );
        sm(["verify", "--store", store]).ok();
        for id in kept_exports(store) {
            let out = pr.root.join("rerun");
            let out = p(&out);
            let mut args = vec!["export", "full", "--store", store, "--tenant", "acme", "--out", out];
            args.extend(["--rerun", &id, "--sign-key", p(&pr.key)]);
            let o = sm(args).ok();
            assert!(
                o.stdout.contains("identical to the original: true"),
                "cycle {k} {id}: {}",
                o.stdout
            );
        }
    }
    eprintln!("pruned {pruned} exports; removed {removed} objects; {referenced} candidates kept as referenced");
    assert!(
        pruned >= 10 && removed > 0,
        "the churn pruned {pruned} exports and removed {removed} objects"
    );
    assert!(
        referenced > 0,
        "no candidate was referenced by a kept root: the check was not exercised"
    );
}

/// The run ids of the catalog's exports that are not pruned.
fn kept_exports(store: &str) -> Vec<String> {
    let log = sm(["log", "--store", store, "--json"]).ok().json();
    log["exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pruned"].is_null())
        .map(|e| e["runId"].as_str().unwrap().to_string())
        .collect()
}

/// An object key names its collection and shard, not its subject: identical documents
/// under two subjects of one shard share one object. Collecting the subjects that went
/// must keep the object the others still hold. 300 copies of one OpenVEX document without
/// products, half of them removed, put many removed and kept copies in the same shard.
#[test]
fn identical_documents_under_two_subjects_survive_the_collection_of_one() {
    let pr = Producer::new();
    let store = p(&pr.store);
    let vex = pr.root.join("vex");
    std::fs::create_dir_all(&vex).unwrap();
    let doc = stellamirror_tests::manifest_dir()
        .join("data/consensus/rancher-2026-07-22/golang__github.com__brancz__kube-rbac-proxy__scan.openvex.json");
    let doc = std::fs::read(doc).unwrap();
    // A document without products is its own subject (`vex-document:<path>`): identical
    // bytes under 300 subjects. The copies of a real one also stage the ingest in chunks.
    let empty = br#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/empty","author":"Example Security","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[]}"#;
    for i in 0..300 {
        std::fs::write(vex.join(format!("copy-{i:03}.openvex.json")), &doc).unwrap();
        std::fs::write(vex.join(format!("empty-{i:03}.openvex.json")), empty).unwrap();
    }
    let ingest = |k: usize| {
        let mut args = vec!["ingest", "--store", store, "--tenant", "acme", "--source", "hub"];
        args.extend(["--complete", "--allow-mass-removal", "--source-root", p(&vex), p(&vex)]);
        sm(args).ok();
        let run = format!("f{k}");
        let created = hour(k);
        let mut args = vec![
            "export",
            "full",
            "--store",
            store,
            "--tenant",
            "acme",
            "--out",
            p(&pr.out),
        ];
        args.extend(["--sign-key", p(&pr.key), "--run-id", &run, "--created-at", &created]);
        sm(args).ok();
    };
    ingest(0);
    for i in 0..150 {
        std::fs::remove_file(vex.join(format!("copy-{i:03}.openvex.json"))).unwrap();
        std::fs::remove_file(vex.join(format!("empty-{i:03}.openvex.json"))).unwrap();
    }
    ingest(1);
    // What no export ever referenced (consensus objects a later chunk of the same run
    // replaced) is `gc --full`'s; the incremental collection must leave exactly that.
    let full_dry_run = || {
        sm(["gc", "--store", store, "--full", "--dry-run", "--json"])
            .ok()
            .json()
    };
    let never_referenced = full_dry_run()["objectsRemoved"].clone();
    let r = sm_at(&hour(2), ["prune", "--store", store, "--keep-full", "1", "--json"])
        .ok()
        .json();
    assert_eq!(r["plans"][0]["prune"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["gc"]["mode"], "incremental", "{r}");
    assert!(r["gc"]["objectsRemoved"].as_u64().unwrap() > 0, "{r}");
    sm(["verify", "--store", store]).ok();
    let rerun = pr.root.join("rerun");
    let mut args = vec![
        "export",
        "full",
        "--store",
        store,
        "--tenant",
        "acme",
        "--out",
        p(&rerun),
    ];
    args.extend(["--rerun", "f1", "--sign-key", p(&pr.key)]);
    assert!(sm(args).ok().stdout.contains("identical to the original: true"));
    let left = full_dry_run();
    assert_eq!(left["objectsRemoved"], never_referenced, "{left}");
}
