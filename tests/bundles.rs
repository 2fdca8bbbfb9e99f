//! Full and delta bundles checked with real tools: GNU tar, zstd, openssl, jq.
use std::path::{Path, PathBuf};

use stellamirror_tests::{
    data, export_delta, export_full, extract, files_below, ingest, ingest_sample, keypair, p, shared, sm, tool,
};

const CREATED: &str = "2026-08-14T00:00:00Z";

/// A store with the Go excerpt, Rancher VEX and an SBOM for tenant `acme`.
fn producer(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    ingest_sample(&store, "old");
    store
}

#[test]
fn full_bundle_is_readable_and_verifiable_with_standard_tools() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let bundle = export_full(&store, &t.path().join("out"), &key, "f1", CREATED, &[]);
    let x = t.path().join("x");
    extract(&bundle, &x);
    let m = x.join("mirror");
    for (file, sig) in [
        ("manifest.yaml", "signatures/manifest.sig"),
        ("export.json", "signatures/export.sig"),
    ] {
        let r = tool(
            "openssl",
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                p(&public),
                "-rawin",
                "-in",
                file,
                "-sigfile",
                sig,
            ],
            &m,
        );
        assert_eq!(r.code, 0, "openssl verifies {sig}: {}{}", r.stdout, r.stderr);
    }
    let files = files_below(&m);
    for required in [
        "README.md",
        "export.json",
        "provenance.json",
        "indexes/advisories.index.json",
        "indexes/vex.index.json",
        "indexes/sbom.index.json",
        "indexes/findings.index.json",
    ] {
        assert!(
            files.contains(&required.to_string()),
            "{required} missing from {files:?}"
        );
    }
    assert!(files
        .iter()
        .any(|f| f.starts_with("data/raw/advisories/") && f.ends_with(".jsonl.zst")));
    assert!(files.iter().any(|f| f.starts_with("data/normalized/vex/")));
    assert!(files
        .iter()
        .any(|f| f.starts_with("data/raw/sboms/") && f.ends_with(".jsonl.zst")));
    let mut lines = 0;
    for f in &files {
        if f.ends_with(".json") {
            assert_eq!(tool("jq", &["-e", ".", f], &m).code, 0, "jq reads {f}");
        }
        if f.ends_with(".jsonl.zst") {
            let r = tool("sh", &["-c", &format!("zstd -dc '{f}' | jq -c '{{kind,id,hash}}'")], &m);
            assert_eq!(r.code, 0, "{f}: {}", r.stderr);
            lines += r.stdout.lines().count();
        }
    }
    // The manifest counts match what the files hold (raw + normalized advisories, VEX, SBOMs).
    let manifest = std::fs::read_to_string(m.join("manifest.yaml")).unwrap();
    let yaml_count = |k: &str| -> usize {
        let line = manifest
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{k}:")))
            .unwrap();
        line.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    let in_jsonl = [
        "advisories.raw",
        "advisories.normalized",
        "vex.raw",
        "vex.normalized",
        "sboms.raw",
        "sboms.normalized",
        "policy.evaluations",
        "consensus",
    ]
    .iter()
    .map(|k| yaml_count(k))
    .sum::<usize>();
    assert_eq!(lines, in_jsonl);
    sm(["verify", p(&bundle), "--trust", p(&public)]).ok();
    // The audit log records the bundle with its digest, size and counts.
    let audit = std::fs::read_to_string(store.join("audit.jsonl")).unwrap();
    let created: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "mirror.bundle.created")
        .expect("a mirror.bundle.created event");
    assert_eq!(created["runId"], "f1");
    assert_eq!(
        created["counts"]["advisories.raw"].as_u64().unwrap() as usize,
        yaml_count("advisories.raw")
    );
    assert!(created["manifestDigest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn two_exports_of_the_same_state_are_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    let a = producer(&t.path().join("a"));
    let b = producer(&t.path().join("b"));
    let ba = export_full(&a, &t.path().join("oa"), &key, "same", CREATED, &[]);
    let bb = export_full(&b, &t.path().join("ob"), &key, "same", CREATED, &[]);
    assert_eq!(std::fs::read(&ba).unwrap(), std::fs::read(&bb).unwrap());
    // And `--rerun` regenerates it from the store's snapshot, even after new ingests.
    ingest(
        &a,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-new.jsonl")],
    )
    .ok();
    let rerun_dir = t.path().join("rerun");
    let r = sm([
        "export",
        "full",
        "--store",
        p(&a),
        "--tenant",
        "acme",
        "--out",
        p(&rerun_dir),
        "--rerun",
        "same",
        "--sign-key",
        p(&key),
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(r["identicalToOriginal"], true);
    assert_eq!(
        std::fs::read(rerun_dir.join("same-full.tar.zst")).unwrap(),
        std::fs::read(&ba).unwrap()
    );
}

fn tamper_case(name: &str, change: impl Fn(&Path), code: &str, names: &str) {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let bundle = export_full(&store, &t.path().join("out"), &key, "f1", CREATED, &[]);
    let x = t.path().join("x");
    extract(&bundle, &x);
    let m = x.join("mirror");
    sm(["verify", p(&m), "--trust", p(&public)]).ok();
    change(&m);
    let r = sm(["verify", p(&m), "--trust", p(&public), "--json"]).fails_with(code);
    assert_eq!(r.code, 3, "{name}: verify failures exit 3");
    assert!(
        r.stdout.contains(names),
        "{name}: the error names {names}: {}",
        r.stdout
    );
}

fn first_data_file(m: &Path) -> String {
    files_below(m)
        .into_iter()
        .find(|f| f.starts_with("data/raw/advisories/"))
        .unwrap()
}

#[test]
fn flipping_one_byte_of_any_file_fails_verify_naming_it() {
    for target in ["data", "indexes/vex.index.json", "README.md", "provenance.json"] {
        tamper_case(
            target,
            |m| {
                let f = if target == "data" {
                    first_data_file(m)
                } else {
                    target.to_string()
                };
                let path = m.join(&f);
                let mut b = std::fs::read(&path).unwrap();
                let i = b.len() / 2;
                b[i] ^= 0x01;
                std::fs::write(&path, b).unwrap();
            },
            "ERR_DIGEST_MISMATCH",
            if target == "data" {
                "data/raw/advisories/"
            } else {
                target
            },
        );
    }
}

#[test]
fn flipping_a_byte_of_the_manifest_or_export_json_fails_the_signature() {
    for f in ["manifest.yaml", "export.json"] {
        tamper_case(
            f,
            |m| {
                let path = m.join(f);
                let s = std::fs::read_to_string(&path).unwrap().replacen("acme", "acmf", 1);
                std::fs::write(&path, s).unwrap();
            },
            "ERR_SIGNATURE_INVALID",
            "sig",
        );
    }
}

#[test]
fn a_removed_file_fails_verify_naming_it() {
    tamper_case(
        "removed",
        |m| std::fs::remove_file(m.join("indexes/sbom.index.json")).unwrap(),
        "ERR_BUNDLE_MISSING_FILE",
        "indexes/sbom.index.json",
    );
}

#[test]
fn an_added_file_fails_verify_naming_it() {
    tamper_case(
        "added",
        |m| std::fs::write(m.join("data/extra.jsonl"), "{}\n").unwrap(),
        "ERR_BUNDLE_UNLISTED_FILE",
        "data/extra.jsonl",
    );
}

#[test]
fn a_bundle_signed_by_another_key_is_untrusted() {
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    let (_, other_public) = keypair(t.path(), "other");
    let store = producer(t.path());
    let bundle = export_full(&store, &t.path().join("out"), &key, "f1", CREATED, &[]);
    let r = sm(["verify", p(&bundle), "--trust", p(&other_public), "--json"]).fails_with("ERR_SIGNATURE_UNTRUSTED");
    assert_eq!(r.code, 3);
}

#[test]
fn an_export_for_one_tenant_holds_nothing_of_another() {
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    let store = producer(t.path());
    ingest(&store, "other", &[], &[&data("osv/pypa.jsonl")]).ok();
    let bundle = export_full(&store, &t.path().join("out"), &key, "f1", CREATED, &[]);
    let x = t.path().join("x");
    extract(&bundle, &x);
    let r = tool(
        "sh",
        &[
            "-c",
            "for f in $(find . -name '*.zst'); do zstd -dc $f; done; cat $(find . -name '*.json' -o -name '*.yaml')",
        ],
        &x,
    );
    assert!(r.stdout.contains("GO-20"), "sanity: the tenant's own records are there");
    assert!(
        !r.stdout.contains("PYSEC-"),
        "no record of tenant `other` in tenant acme's bundle"
    );
}

#[test]
fn product_selectors_export_only_matching_subjects_and_are_recorded() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let out = t.path().join("out");
    let bundle = export_full(
        &store,
        &out,
        &key,
        "sel",
        CREATED,
        &["--product", "pkg:golang/github.com/**"],
    );
    sm(["verify", p(&bundle), "--trust", p(&public)]).ok();
    let x = t.path().join("x");
    extract(&bundle, &x);
    let r = tool(
        "sh",
        &[
            "-c",
            "for f in $(find mirror/data -name '*.zst'); do zstd -dc $f; done | jq -r .subject | sort -u",
        ],
        &x,
    );
    assert!(!r.stdout.is_empty());
    assert!(
        r.stdout.lines().all(|s| s.starts_with("pkg:golang/github.com/")),
        "{}",
        r.stdout
    );
    let m = std::fs::read_to_string(x.join("mirror/manifest.yaml")).unwrap();
    assert!(
        m.contains("pkg:golang/github.com/**"),
        "selectors recorded in the manifest"
    );
}

/// A delta's index names, for every subject it carries, the subject's root in the target
/// state under the export's selectors: the root a full export of that state names. With a
/// time window that root is recomputed from the subject's records inside the window.
#[test]
fn delta_indexes_name_the_subject_roots_a_full_export_of_the_target_names() {
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    for selectors in [&[][..], &["--from", "2026-07-01T00:00:00Z"][..]] {
        let t = tempfile::tempdir().unwrap();
        let (key, _) = keypair(t.path(), "k");
        let store = producer(t.path());
        let out = t.path().join("out");
        export_full(&store, &out, &key, "f1", CREATED, selectors);
        ingest_sample(&store, "new");
        export_delta(&store, &out, &key, "f1", "d1", "2026-08-15T00:00:00Z", &[]).ok();
        let full = export_full(&store, &out, &key, "f2", "2026-08-15T00:00:00Z", selectors);
        let d = extract(&out.join("d1-delta.tar.zst"), &t.path().join("xd"));
        let f = extract(&full, &t.path().join("xf"));
        let mut compared = 0;
        for index in files_below(&d.join("indexes")) {
            let (di, fi) = (
                read(&d.join("indexes").join(&index)),
                read(&f.join("indexes").join(&index)),
            );
            for (c, coll) in di["collections"].as_object().unwrap() {
                for (subject, e) in coll["subjects"].as_object().unwrap() {
                    let want = &fi["collections"][c]["subjects"][subject]["root"];
                    assert_eq!(&e["root"], want, "{selectors:?} {index} {c} {subject:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 0, "{selectors:?}: the delta carries subjects");
    }
}

fn diff_json(bundle: &Path) -> serde_json::Value {
    let r = tool(
        "sh",
        &[
            "-c",
            &format!("zstd -dc '{}' | tar -xOf - delta/manifest.diff.json", bundle.display()),
        ],
        Path::new("/"),
    );
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn delta_of_real_churn_matches_the_expected_counts_and_records() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let out = t.path().join("out");
    let full = export_full(&store, &out, &key, "f1", CREATED, &[]);
    ingest_sample(&store, "new");
    export_delta(&store, &out, &key, "f1", "d1", "2026-08-15T00:00:00Z", &[]).ok();
    let delta = out.join("d1-delta.tar.zst");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("expected.json")).unwrap()).unwrap();
    let go = &expected["osv/go-old.jsonl -> osv/go-new.jsonl"];
    let vex = &expected["vex/rancher-old -> vex/rancher-new"];
    let d = diff_json(&delta);
    assert_eq!(d["baseExportId"], "f1");
    assert_eq!(d["resetBaseline"], false);
    assert_eq!(d["added"]["advisories"], go["added"]);
    assert_eq!(d["changed"]["advisories"], go["changed"]);
    assert_eq!(d["removed"]["advisories"], go["removed"]);
    assert_eq!(d["added"]["vex"], vex["added"]);
    assert_eq!(d["changed"]["vex"], vex["changed"]);
    assert_eq!(d["removed"]["vex"], vex["removed"]);
    // changed/ holds exactly the added + changed raw advisories; removed/ the removed ids.
    let x = t.path().join("x");
    extract(&delta, &x);
    let ids = tool(
        "sh",
        &[
            "-c",
            "for f in delta/changed/data/raw/advisories/*.zst; do zstd -dc $f; done | jq -r .id | sort",
        ],
        &x,
    );
    assert_eq!(
        ids.stdout.lines().count() as u64,
        go["added"].as_u64().unwrap() + go["changed"].as_u64().unwrap()
    );
    let removed = tool(
        "sh",
        &[
            "-c",
            "jq -r 'select(.kind==\"advisories.raw\") | .id' delta/removed/advisories.jsonl",
        ],
        &x,
    );
    let mut want: Vec<String> = go["removed_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    want.sort();
    let mut got: Vec<String> = removed.stdout.lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, want);
    sm(["verify", p(&full), p(&delta), "--trust", p(&public)]).ok();
    // Given in the wrong order, the chain check refuses.
    sm(["verify", p(&delta), p(&full), "--trust", p(&public), "--json"]).ok();
    let d2 = out.join("d2-delta.tar.zst");
    export_delta(&store, &out, &key, "d1", "d2", "2026-08-16T00:00:00Z", &[]).ok();
    sm(["verify", p(&full), p(&d2), "--trust", p(&public), "--json"]).fails_with("ERR_DELTA_OUT_OF_ORDER");
}

#[test]
fn an_empty_delta_is_a_valid_signed_bundle_with_zero_counts() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let out = t.path().join("out");
    export_full(&store, &out, &key, "f1", CREATED, &[]);
    export_delta(&store, &out, &key, "latest", "d0", CREATED, &[]).ok();
    let d = diff_json(&out.join("d0-delta.tar.zst"));
    for k in ["added", "changed", "removed"] {
        assert!(d[k].as_object().unwrap().values().all(|v| v == 0), "{k}: {d}");
    }
    assert_eq!(d["baseStateRoot"], d["targetStateRoot"]);
    sm(["verify", p(&out.join("d0-delta.tar.zst")), "--trust", p(&public)]).ok();
}

#[test]
fn a_delta_against_an_unknown_base_fails_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    let store = producer(t.path());
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    sm([
        "export",
        "delta",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&out),
        "--base",
        "nope",
        "--sign-key",
        p(&key),
        "--json",
    ])
    .fails_with("ERR_EXPORT_BASE_MISSING");
    assert!(files_below(&out).is_empty(), "nothing written: {:?}", files_below(&out));
    sm([
        "export",
        "delta",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&out),
        "--base",
        "latest",
        "--sign-key",
        p(&key),
        "--json",
    ])
    .fails_with("ERR_EXPORT_BASE_MISSING");
}

#[test]
fn reset_baseline_delta_carries_the_complete_state() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = producer(t.path());
    let out = t.path().join("out");
    export_full(&store, &out, &key, "f1", CREATED, &[]);
    export_delta(&store, &out, &key, "f1", "r1", CREATED, &["--reset-baseline"]).ok();
    let d = diff_json(&out.join("r1-delta.tar.zst"));
    assert_eq!(d["resetBaseline"], true);
    assert_eq!(
        d["added"]["advisories"].as_u64().unwrap() as usize,
        std::fs::read_to_string(data("osv/go-old.jsonl"))
            .unwrap()
            .lines()
            .count()
    );
    sm(["verify", p(&out.join("r1-delta.tar.zst")), "--trust", p(&public)]).ok();
}

/// On the full history corpora (when ../shared/data is present): every advisory delta in
/// DELTAS.json between consecutive snapshots is reproduced exactly.
#[test]
fn deltas_of_the_full_history_corpora_match_deltas_json() {
    let Some(deltas) = shared("history/DELTAS.json") else {
        eprintln!("../shared/data absent: covered on the committed excerpt by delta_of_real_churn_matches_the_expected_counts_and_records");
        return;
    };
    let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(deltas).unwrap()).unwrap();
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    for (i, d) in all.as_array().unwrap().iter().enumerate() {
        let (old, new) = (
            shared(d["old"].as_str().unwrap()).unwrap(),
            shared(d["new"].as_str().unwrap()).unwrap(),
        );
        let store = t.path().join(format!("s{i}"));
        let out = t.path().join(format!("o{i}"));
        ingest(&store, "acme", &["--source", "osv", "--complete"], &[&old]).ok();
        export_full(&store, &out, &key, "base", CREATED, &[]);
        ingest(&store, "acme", &["--source", "osv", "--complete"], &[&new]).ok();
        export_delta(&store, &out, &key, "base", "d", CREATED, &[]).ok();
        let got = diff_json(&out.join("d-delta.tar.zst"));
        for k in ["added", "changed", "removed"] {
            assert_eq!(got[k]["advisories"], d[k], "{} -> {}: {k}", d["old"], d["new"]);
        }
    }
}

/// On the Rancher VEX Hub history (when ../shared/data is present): the old state is the
/// current documents minus those added since, with the changed ones at their old version
/// (history/<dir>/manifest.json); the delta to today's hub must count exactly the
/// manifest's added / changed / removed documents, and carry those documents.
#[test]
fn vex_hub_deltas_match_the_history_manifests() {
    let Some(hub) = shared("vex/openvex/rancher-vexhub") else {
        eprintln!("../shared/data absent: covered on the committed excerpt by delta_of_real_churn_matches_the_expected_counts_and_records");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    for dir in ["rancher-vexhub-2026-08-15", "rancher-vexhub-2026-07-22"] {
        let hist = shared(&format!("history/{dir}")).unwrap();
        let man: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(hist.join("manifest.json")).unwrap()).unwrap();
        let names = |k: &str| -> Vec<String> {
            man[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let old = t.path().join(format!("old-{dir}"));
        std::fs::create_dir_all(&old).unwrap();
        for f in names("unchanged") {
            std::fs::copy(hub.join(&f), old.join(&f)).unwrap();
        }
        for f in names("changed") {
            std::fs::copy(hist.join(&f), old.join(&f)).unwrap();
        }
        let store = t.path().join(format!("s-{dir}"));
        let out = t.path().join(format!("o-{dir}"));
        ingest(&store, "acme", &["--source", "vexhub", "--complete"], &[&old]).ok();
        export_full(&store, &out, &key, "base", CREATED, &[]);
        ingest(&store, "acme", &["--source", "vexhub", "--complete"], &[&hub]).ok();
        export_delta(&store, &out, &key, "base", "d", CREATED, &[]).ok();
        let bundle = out.join("d-delta.tar.zst");
        let d = diff_json(&bundle);
        assert_eq!(
            d["added"]["vex"].as_u64().unwrap() as usize,
            names("added_since").len(),
            "{dir}: added"
        );
        assert_eq!(
            d["changed"]["vex"].as_u64().unwrap() as usize,
            names("changed").len(),
            "{dir}: changed"
        );
        assert_eq!(
            d["removed"]["vex"].as_u64().unwrap() as usize,
            names("removed_since").len(),
            "{dir}: removed"
        );
        let x = t.path().join(format!("x-{dir}"));
        extract(&bundle, &x);
        let ids = tool(
            "sh",
            &[
                "-c",
                "for f in delta/changed/data/raw/vex/*.zst; do zstd -dc $f; done | jq -r .id | sort",
            ],
            &x,
        );
        let mut want = names("changed");
        want.extend(names("added_since"));
        want.sort();
        assert_eq!(
            ids.stdout.lines().map(str::to_string).collect::<Vec<_>>(),
            want,
            "{dir}: changed/ holds exactly those documents"
        );
    }
}
