//! `publish`: the scanner-facing layouts, checked with standard tools (`unzip -t`, Python
//! `jsonschema` against the official schemas in tests/data/schemas, `openssl` for the
//! state signature), and incremental publishing checked against a fresh full one: the
//! scanner layouts byte for byte, the bundle layout's chain by replaying it.
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stellamirror_tests::*;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Ingest the committed excerpts: Go and PyPA advisories, Rancher VEX, CSAF, an SBOM.
fn sample_store(root: &Path) -> PathBuf {
    let store = root.join("store");
    ingest_sample(&store, "old");
    ingest(&store, "acme", &["--source", "pypa"], &[&data("osv/pypa.jsonl")]).ok();
    ingest(&store, "acme", &["--source", "csaf"], &[&data("csaf")]).ok();
    store
}

fn publish(store: &Path, out: &Path) -> serde_json::Value {
    publish_with(store, out, &[])
}

fn publish_with(store: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "publish",
        "--store",
        p(store),
        "--tenant",
        "acme",
        "--out",
        p(out),
        "--base-url",
        "https://mirror.example/acme",
        "--json",
    ];
    args.extend_from_slice(extra);
    sm(args).ok().json()
}

/// Never fold the bundle layout's deltas into a new base (the samples are small, so any
/// delta is a large fraction of them).
const KEEP_DELTAS: [&str; 2] = ["--fold-percent", "100000"];

fn zstd_lines(file: &Path) -> Vec<String> {
    let r = tool("zstd", &["-dcq", p(file)], Path::new("."));
    assert_eq!(r.code, 0, "zstd -d {}: {}", file.display(), r.stderr);
    r.stdout.lines().map(String::from).collect()
}

/// A record's identity across layers: (collection, id); a changed record may move to
/// another subject, and its line carries the subject.
fn record_key(v: &serde_json::Value) -> String {
    format!("{}\t{}", v["kind"].as_str().unwrap(), v["id"].as_str().unwrap())
}

/// Add one layer of the bundle layout (a full layout at `root`, or a delta's `changed/`) to
/// `recs`, keyed by [`record_key`]: JSON Lines records from the data files, and
/// the one-file-per-subject records through the index entries that name their files.
fn add_layer(root: &Path, recs: &mut BTreeMap<String, String>) {
    if !root.join("data").is_dir() {
        return;
    }
    for f in files_below(&root.join("data"))
        .iter()
        .filter(|f| f.ends_with(".jsonl.zst"))
    {
        for line in zstd_lines(&root.join("data").join(f)) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            recs.insert(record_key(&v), line);
        }
    }
    let indexes = match root.ends_with("changed") {
        true => root.parent().unwrap().join("indexes"),
        false => root.join("indexes"),
    };
    for ix in files_below(&indexes) {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(indexes.join(&ix)).unwrap()).unwrap();
        for (c, col) in v["collections"].as_object().unwrap() {
            for (subject, e) in col["subjects"].as_object().unwrap() {
                let file = e["file"].as_str().unwrap();
                if file.ends_with(".jsonl.zst") {
                    continue;
                }
                let rel = file.strip_prefix("changed/").unwrap_or(file);
                let body = std::fs::read_to_string(root.join(rel)).unwrap();
                for id in e["records"].as_object().unwrap().keys() {
                    recs.insert(format!("{c}\t{id}"), format!("{subject}\n{body}"));
                }
            }
        }
    }
}

/// The records a published bundle layout holds: its base, then each delta of
/// `bundle/chain.json` applied in order (removed ids dropped, changed records replaced),
/// as a reader replays it. Returns the records and the number of deltas.
fn bundle_records(version: &Path) -> (BTreeMap<String, String>, usize) {
    let chain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("bundle/chain.json")).unwrap()).unwrap();
    let mut recs = BTreeMap::new();
    add_layer(&version.join(chain["base"]["path"].as_str().unwrap()), &mut recs);
    let deltas = chain["deltas"].as_array().unwrap();
    for d in deltas {
        let dir = version.join(d["path"].as_str().unwrap());
        for f in files_below(&dir.join("removed")) {
            for line in std::fs::read_to_string(dir.join("removed").join(f)).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let key = record_key(&v);
                assert!(
                    recs.remove(&key).is_some(),
                    "{key} is removed by {} but was not there",
                    d["path"]
                );
            }
        }
        add_layer(&dir.join("changed"), &mut recs);
    }
    (recs, deltas.len())
}

/// Validate a published tree with the official schemas; returns the validator's summary.
pub fn validate(tree: &Path) -> serde_json::Value {
    let r = tool("bash", &[script("install-py.sh").to_str().unwrap()], tree);
    assert_eq!(r.code, 0, "install-py.sh: {}", r.stderr);
    let r = tool(
        "python3",
        &[script("validate-published.py").to_str().unwrap(), p(tree)],
        tree,
    );
    let summary: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("validator output ({e}): {}\n{}", r.stdout, r.stderr));
    assert_eq!(summary["failures"], serde_json::json!([]), "{summary}");
    assert_eq!(r.code, 0, "{}", r.stderr);
    summary
}

/// Every OSV id of a JSON Lines file, with the base ecosystems of its affected packages.
fn osv_ids(files: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for f in files {
        for line in std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ecos = v["affected"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["package"]["ecosystem"].as_str())
                .map(|e| e.split(':').next().unwrap().to_string())
                .collect();
            out.insert(v["id"].as_str().unwrap().to_string(), ecos);
        }
    }
    out
}

fn zip_names(zip: &Path) -> BTreeSet<String> {
    let r = tool("unzip", &["-Z1", p(zip)], Path::new("."));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.lines().map(String::from).collect()
}

#[test]
fn published_layouts_pass_unzip_and_the_official_schemas() {
    let t = tempfile::tempdir().unwrap();
    let store = sample_store(t.path());
    let out = t.path().join("pub");
    let r = publish(&store, &out);
    assert_eq!(r["outcome"], "written");
    let cur = out.join("acme/current");
    // The OSV bucket layout: one zip per ecosystem, listed in ecosystems.txt, the same
    // bytes in osv-scanner's and osv-scalibr's offline folders; `unzip -t` passes on each.
    let ecos: Vec<String> = std::fs::read_to_string(cur.join("osv/ecosystems.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ecos, ["Go", "PyPI"]);
    let want = osv_ids(&[data("osv/go-old.jsonl"), data("osv/pypa.jsonl")]);
    let mut seen = BTreeSet::new();
    for eco in &ecos {
        for dir in ["osv", "osv-scanner", "osv-scalibr"] {
            let zip = cur.join(format!("{dir}/{eco}/all.zip"));
            let r = tool("unzip", &["-t", p(&zip)], t.path());
            assert_eq!(r.code, 0, "unzip -t {}: {}", zip.display(), r.stdout);
            assert_eq!(
                std::fs::read(&zip).unwrap(),
                std::fs::read(cur.join(format!("osv/{eco}/all.zip"))).unwrap()
            );
        }
        // Ids in the zips are the store's advisory ids, each in its ecosystems' zips.
        for name in zip_names(&cur.join(format!("osv/{eco}/all.zip"))) {
            let id = name.strip_suffix(".json").expect("<id>.json").to_string();
            assert!(want[&id].contains(eco), "{id} is not a {eco} advisory");
            seen.insert(id);
        }
    }
    let want_ids: BTreeSet<String> = want.keys().cloned().collect();
    assert_eq!(seen, want_ids);
    // The store's advisories.raw records are these OSV advisories and the two CSAF
    // advisories of tests/data/csaf (the third CSAF document is VEX).
    let raw = status(&store, "acme")["kinds"]["advisories.raw"]["records"].as_u64();
    assert_eq!(raw, Some(seen.len() as u64 + 2));
    // The raw bytes as stored: an advisory in the zip equals the compact input line.
    let r = tool(
        "unzip",
        &["-p", p(&cur.join("osv/Go/all.zip")), "GO-2026-5970.json"],
        t.path(),
    );
    let line = std::fs::read_to_string(data("osv/go-old.jsonl"))
        .unwrap()
        .lines()
        .find(|l| l.contains("\"GO-2026-5970\""))
        .map(|l| serde_json::to_string(&serde_json::from_str::<serde_json::Value>(l).unwrap()).unwrap());
    if let Some(line) = line {
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap(),
            serde_json::from_str::<serde_json::Value>(&line).unwrap()
        );
    }
    let summary = validate(&cur);
    assert_eq!(summary["counts"]["osv"].as_u64(), Some(want.len() as u64));
    assert_eq!(summary["counts"]["openvex"].as_u64(), Some(4), "{summary}");
    assert_eq!(summary["counts"]["providerMetadata"], 1);
    assert_eq!(summary["upstreamInvalid"], serde_json::json!([]), "{summary}");
    // CSAF provider: documents with their digests, listings, the signed state.
    let bsi = cur.join(".well-known/csaf/white/2022/bsi-2022-0001.json");
    assert_eq!(
        std::fs::read(&bsi).unwrap(),
        serde_json::to_vec(
            &serde_json::from_slice::<serde_json::Value>(&std::fs::read(data("csaf/bsi-2022-0001.json")).unwrap())
                .unwrap()
        )
        .unwrap()
    );
    let r = tool("sha256sum", &["-c", "bsi-2022-0001.json.sha256"], bsi.parent().unwrap());
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = tool("sha512sum", &["-c", "bsi-2022-0001.json.sha512"], bsi.parent().unwrap());
    assert_eq!(r.code, 0, "{}", r.stdout);
    let index = std::fs::read_to_string(cur.join(".well-known/csaf/white/index.txt")).unwrap();
    assert_eq!(index, "2021/rhsa-2021_5217.json\n2022/bsi-2022-0001.json\n");
    let r = tool(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "state.pub.pem",
            "-rawin",
            "-in",
            "state.json",
            "-sigfile",
            "state.json.sig",
        ],
        &cur,
    );
    assert_eq!(r.code, 0, "state.json signature: {}{}", r.stdout, r.stderr);
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(cur.join("state.json")).unwrap()).unwrap();
    assert_eq!(st["stateRoot"].as_str().unwrap(), state_root(&store, "acme"));
}

#[test]
fn an_incremental_publish_links_what_did_not_change_and_equals_a_full_one() {
    let t = tempfile::tempdir().unwrap();
    let store = sample_store(t.path());
    let out = t.path().join("pub");
    publish_with(&store, &out, &KEEP_DELTAS);
    let first = std::fs::canonicalize(out.join("acme/current")).unwrap();
    // The new Go generation changes Go advisories and Rancher VEX, not PyPI or CSAF.
    ingest_sample(&store, "new");
    let r = publish_with(&store, &out, &KEEP_DELTAS);
    assert_eq!(r["incremental"], true);
    assert_eq!(r["bundle"]["baseWritten"], false, "{r}");
    assert_eq!(r["bundle"]["deltas"], 1, "{r}");
    let second = std::fs::canonicalize(out.join("acme/current")).unwrap();
    assert_ne!(first, second);
    let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
    for same in ["osv/PyPI/all.zip", ".well-known/csaf/white/2022/bsi-2022-0001.json"] {
        assert_eq!(
            ino(first.join(same)),
            ino(second.join(same)),
            "{same} is a hard link to the previous version"
        );
    }
    assert_ne!(ino(first.join("osv/Go/all.zip")), ino(second.join("osv/Go/all.zip")));
    assert!(r["filesLinked"].as_u64().unwrap() > 0, "{r}");
    // The same state published from scratch: the scanner layouts and the sidecar are the
    // same bytes; the bundle layout (a base there, base + delta here) holds the same records.
    let full = t.path().join("full");
    let f = publish(&store, &full);
    assert_eq!(f["incremental"], false);
    let full_cur = std::fs::canonicalize(full.join("acme/current")).unwrap();
    let outside = |d: &Path| -> Vec<String> {
        files_below(d)
            .into_iter()
            .filter(|f| !f.starts_with("bundle/"))
            .collect()
    };
    let (a, b) = (outside(&second), outside(&full_cur));
    assert_eq!(a, b);
    let ((replayed, deltas), (fresh, none)) = (bundle_records(&second), bundle_records(&full_cur));
    assert_eq!((deltas, none), (1, 0));
    let differ: Vec<&String> = replayed
        .keys()
        .chain(fresh.keys())
        .filter(|k| replayed.get(*k) != fresh.get(*k))
        .take(5)
        .collect();
    assert!(
        differ.is_empty(),
        "base + delta do not replay to a fresh base's records: {differ:?}"
    );
    assert!(
        fresh.keys().any(|k| k.starts_with("sboms.raw\t")),
        "per-subject records are compared too"
    );
    for rel in &a {
        assert!(
            std::fs::read(second.join(rel)).unwrap() == std::fs::read(full.join("acme/current").join(rel)).unwrap(),
            "{rel} differs between the incremental and the full publish"
        );
    }
    validate(&second);
    // Publishing an unchanged state again changes nothing.
    assert_eq!(publish(&store, &out)["outcome"], "unchanged");
}

#[test]
fn the_shared_corpora_publish_and_validate_when_present() {
    let (Some(adv), Some(vex), Some(csaf)) = (shared("advisories"), shared("vex/openvex"), shared("csaf")) else {
        eprintln!("../shared/data not present: skipped");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ingest(&store, "acme", &["--source", "osv"], &[&adv]).ok();
    ingest(&store, "acme", &["--source", "vex", "--keep-going"], &[&vex]);
    ingest(&store, "acme", &["--source", "csaf", "--keep-going"], &[&csaf]);
    let out = t.path().join("pub");
    publish(&store, &out);
    let cur = out.join("acme/current");
    for z in ["osv/Go/all.zip", "osv/PyPI/all.zip"] {
        let r = tool("unzip", &["-tq", p(&cur.join(z))], t.path());
        assert_eq!(r.code, 0, "{z}: {}", r.stdout);
    }
    let summary = validate(&cur);
    let want = osv_ids(&[adv.join("go.jsonl"), adv.join("pypa.jsonl")]);
    assert_eq!(summary["counts"]["osv"].as_u64(), Some(want.len() as u64));
    // Raw upstream documents are published as received; report those the schema rejects.
    eprintln!("upstream OpenVEX deviations: {}", summary["upstreamInvalid"]);
}

/// One Go advisory the samples do not hold, in a file of its own.
fn one_more_advisory(dir: &Path) -> PathBuf {
    let first = std::fs::read_to_string(data("osv/go-old.jsonl")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    v["id"] = "GO-2099-0001".into();
    v["aliases"] = serde_json::json!([]);
    let f = dir.join("extra.jsonl");
    std::fs::write(&f, serde_json::to_string(&v).unwrap() + "\n").unwrap();
    f
}

#[test]
fn a_delta_publish_writes_what_the_delta_touched_whatever_the_store_size() {
    let t = tempfile::tempdir().unwrap();
    let extra = one_more_advisory(t.path());
    let mut reports = Vec::new();
    for (name, bigger) in [("small", false), ("big", true)] {
        let store = t.path().join(name).join("store");
        ingest_sample(&store, "old");
        if bigger {
            ingest(&store, "acme", &["--source", "pypa"], &[&data("osv/pypa.jsonl")]).ok();
            ingest(&store, "acme", &["--source", "csaf"], &[&data("csaf")]).ok();
        }
        let out = t.path().join(name).join("pub");
        publish_with(&store, &out, &KEEP_DELTAS);
        let before = std::fs::canonicalize(out.join("acme/current")).unwrap();
        ingest(&store, "acme", &["--source", "extra"], &[&extra]).ok();
        let r = publish_with(&store, &out, &KEEP_DELTAS);
        let after = std::fs::canonicalize(out.join("acme/current")).unwrap();
        eprintln!("{name}: {r}");
        let b = &r["bundle"];
        assert_eq!(b["baseWritten"], false, "{r}");
        assert_eq!(b["deltaRecords"], r["changedRecords"], "{r}");
        // Written: the delta's own files and the chain. Linked: every other file of the
        // previous version's bundle layout (all but its chain.json).
        let delta = files_below(&after.join("bundle/deltas/0001"));
        assert_eq!(
            b["filesWritten"].as_u64(),
            Some(delta.len() as u64 + 1),
            "{r}: {delta:?}"
        );
        let previous = files_below(&before.join("bundle")).len() as u64 - 1;
        assert_eq!(b["filesLinked"].as_u64(), Some(previous), "{r}");
        reports.push(r);
    }
    let (small, big) = (&reports[0], &reports[1]);
    assert_eq!(small["changedRecords"], big["changedRecords"]);
    // The same delta writes the same files into a store holding more records; only the
    // number of links grows with the store.
    for k in ["filesWritten", "deltaRecords"] {
        assert_eq!(small["bundle"][k], big["bundle"][k], "bundle {k}: {small} / {big}");
    }
    assert_eq!(small["filesWritten"], big["filesWritten"], "{small} / {big}");
    assert!(
        big["filesLinked"].as_u64() > small["filesLinked"].as_u64(),
        "{small} / {big}"
    );
}

#[test]
fn deltas_are_folded_into_a_new_base_that_reuses_the_old_one() {
    let t = tempfile::tempdir().unwrap();
    let store = sample_store(t.path());
    let out = t.path().join("pub");
    publish_with(&store, &out, &KEEP_DELTAS);
    ingest_sample(&store, "new");
    assert_eq!(publish_with(&store, &out, &KEEP_DELTAS)["bundle"]["deltas"], 1);
    ingest(&store, "acme", &["--source", "extra"], &[&one_more_advisory(t.path())]).ok();
    // A chain of one delta is at --max-deltas 1: this publish folds it.
    let r = publish_with(&store, &out, &["--max-deltas", "1"]);
    assert_eq!(r["bundle"]["baseWritten"], true, "{r}");
    assert_eq!(r["bundle"]["deltas"], 0, "{r}");
    assert!(
        r["bundle"]["filesLinked"].as_u64().unwrap() > 0,
        "units unchanged since the old base are linked from it: {r}"
    );
    let cur = std::fs::canonicalize(out.join("acme/current")).unwrap();
    assert!(!cur.join("bundle/deltas").exists());
    let full = t.path().join("full");
    publish(&store, &full);
    let fresh = std::fs::canonicalize(full.join("acme/current")).unwrap();
    for rel in files_below(&fresh.join("bundle")) {
        assert!(
            std::fs::read(cur.join("bundle").join(&rel)).unwrap()
                == std::fs::read(fresh.join("bundle").join(&rel)).unwrap(),
            "{rel} of the folded base differs from a fresh one"
        );
    }
    assert_eq!(files_below(&cur.join("bundle")), files_below(&fresh.join("bundle")));
}
