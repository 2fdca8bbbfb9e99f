//! Rollback and freeze protection on the far side: bundles older than the newest applied
//! one, and expired bundles, are refused before anything is written.
use std::path::{Path, PathBuf};

use serde_json::Value;
use stellamirror_tests::{
    data, export_delta, export_full, files_below, import_bundle, ingest, ingest_sample, keypair, p, sm, sm_at,
    state_root, status, Run,
};

/// A producer's history: full `f1` (08-14), delta `d2` on it and a reset-baseline delta
/// `r2` (08-15) after an upstream update, full `f3` (08-16) after another.
struct Producer {
    dir: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
    store: PathBuf,
    out: PathBuf,
    /// State root after f1, after d2 (= r2) and after f3.
    roots: [String; 3],
}

fn producer() -> Producer {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let store = dir.path().join("producer");
    let out = dir.path().join("bundles");
    ingest_sample(&store, "old");
    export_full(&store, &out, &key, "f1", "2026-08-14T00:00:00Z", &[]);
    let r1 = state_root(&store, "acme");
    ingest_sample(&store, "new");
    export_delta(&store, &out, &key, "f1", "d2", "2026-08-15T00:00:00Z", &[]).ok();
    export_delta(
        &store,
        &out,
        &key,
        "d2",
        "r2",
        "2026-08-15T00:00:00Z",
        &["--reset-baseline"],
    )
    .ok();
    let r2 = state_root(&store, "acme");
    ingest(&store, "acme", &["--source", "pypa"], &[&data("osv/pypa.jsonl")]).ok();
    export_full(&store, &out, &key, "f3", "2026-08-16T00:00:00Z", &[]);
    let r3 = state_root(&store, "acme");
    Producer {
        dir,
        key,
        public,
        store,
        out,
        roots: [r1, r2, r3],
    }
}

impl Producer {
    fn bundle(&self, run: &str) -> PathBuf {
        let kind = if run.starts_with('f') { "full" } else { "delta" };
        self.out.join(format!("{run}-{kind}.tar.zst"))
    }
    fn import(&self, run: &str, mirror: &Path, extra: &[&str]) -> Run {
        import_bundle(&self.bundle(run), mirror, &self.public, extra)
    }
}

/// Everything a refused import must leave as it was: state, status, history, audit log,
/// and the store's data files (RocksDB's own logs and option files aside).
fn snapshot(mirror: &Path) -> (String, Value, Value, String, Vec<String>) {
    let files = files_below(mirror)
        .into_iter()
        .filter(|f| f.ends_with(".sst") || f.ends_with(".jsonl"))
        .collect();
    (
        state_root(mirror, "acme"),
        status(mirror, "acme"),
        sm(["log", "--store", p(mirror), "--json"]).ok().json(),
        std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap_or_default(),
        files,
    )
}

#[test]
fn replaying_an_older_full_bundle_after_a_newer_one_is_refused_and_changes_nothing() {
    let pr = producer();
    let mirror = pr.dir.path().join("mirror");
    pr.import("f3", &mirror, &[]).ok();
    let before = snapshot(&mirror);
    let r = pr.import("f1", &mirror, &[]).fails_with("ERR_BUNDLE_ROLLBACK");
    // Both bundles are named, with their sequence and creation time.
    for part in [
        "f1",
        "sequence 1",
        "2026-08-14T00:00:00Z",
        "f3",
        "sequence 4",
        "2026-08-16T00:00:00Z",
    ] {
        assert!(r.stderr.contains(part), "{part} missing from: {}", r.stderr);
    }
    assert_eq!(
        snapshot(&mirror),
        before,
        "a refused rollback leaves the store as it was"
    );
    assert_eq!(state_root(&mirror, "acme"), pr.roots[2]);
}

#[test]
fn replaying_older_deltas_after_a_newer_full_is_refused_and_changes_nothing() {
    let pr = producer();
    let mirror = pr.dir.path().join("mirror");
    pr.import("f1", &mirror, &[]).ok();
    pr.import("f3", &mirror, &[]).ok();
    let before = snapshot(&mirror);
    // A delta on f1 and a reset-baseline delta (which needs no base and would otherwise
    // replace the whole state with the older one), both older than f3.
    for run in ["d2", "r2"] {
        let r = pr.import(run, &mirror, &["--json"]).fails_with("ERR_BUNDLE_ROLLBACK");
        assert_eq!(r.json()["error"]["code"], "ERR_BUNDLE_ROLLBACK");
        assert_eq!(snapshot(&mirror), before, "{run}: the store is unchanged");
    }
}

#[test]
fn allow_rollback_restores_an_older_state_and_is_audited_and_shown() {
    let pr = producer();
    let mirror = pr.dir.path().join("mirror");
    pr.import("f1", &mirror, &[]).ok();
    pr.import("d2", &mirror, &[]).ok();
    pr.import("f3", &mirror, &[]).ok();
    pr.import("r2", &mirror, &["--allow-rollback"]).ok();
    assert_eq!(state_root(&mirror, "acme"), pr.roots[1]);
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    let event: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "mirror.rollback.accepted")
        .expect("mirror.rollback.accepted in the audit log");
    assert_eq!(event["runId"], "r2");
    assert_eq!(event["newestRunId"], "f3");
    assert_eq!(event["sequence"], 3);
    let f = &status(&mirror, "acme")["freshness"];
    assert_eq!(f["runId"], "r2");
    assert_eq!(f["rollbackFrom"], "f3");
    let human = sm(["status", "--store", p(&mirror), "--tenant", "acme"]).ok();
    assert!(human.stdout.contains("ROLLBACK accepted"), "{}", human.stdout);
    // An older bundle applied long ago is a no-op, not a second rollback.
    let again = pr.import("f1", &mirror, &["--json"]).ok().json();
    assert_eq!(again["outcome"], "already-applied");
    assert_eq!(state_root(&mirror, "acme"), pr.roots[1]);
    // Going back deliberately does not lock the mirror: the newer bundle applies again.
    pr.import("f3", &mirror, &[]).ok();
    assert_eq!(state_root(&mirror, "acme"), pr.roots[2]);
    assert_eq!(status(&mirror, "acme")["freshness"]["rollbackFrom"], Value::Null);
}

#[test]
fn a_producer_store_rebuilt_from_scratch_continues_with_min_sequence() {
    // A second producer store for the same tenant starts its own sequence at 1: its
    // first export does not go after f3 (sequence 4) even though it is newer.
    let pr = producer();
    let other = pr.dir.path().join("other");
    ingest_sample(&other, "new");
    let o = pr.dir.path().join("o");
    let b = export_full(&other, &o, &pr.key, "o1", "2026-08-20T00:00:00Z", &[]);
    let mirror = pr.dir.path().join("mirror");
    pr.import("f3", &mirror, &[]).ok();
    let r = import_bundle(&b, &mirror, &pr.public, &[]).fails_with("ERR_BUNDLE_ROLLBACK");
    assert!(r.stderr.contains("o1 (sequence 1"), "{}", r.stderr);
    // Continuing above the mirrors' sequence, and on from there.
    let b2 = export_full(
        &other,
        &o,
        &pr.key,
        "o2",
        "2026-08-20T00:00:00Z",
        &["--min-sequence", "5"],
    );
    import_bundle(&b2, &mirror, &pr.public, &[]).ok();
    export_delta(&other, &o, &pr.key, "o2", "o3", "2026-08-21T00:00:00Z", &[]).ok();
    let log = sm(["log", "--store", p(&other), "--json"]).ok().json();
    assert_eq!(log["exports"].as_array().unwrap().last().unwrap()["seq"], 6);
    import_bundle(&o.join("o3-delta.tar.zst"), &mirror, &pr.public, &[]).ok();
    assert_eq!(status(&mirror, "acme")["freshness"]["sequence"], 6);
}

#[test]
fn manifests_sign_channel_sequence_and_expiry_and_defaults_follow_the_profile() {
    let pr = producer();
    let x = pr.dir.path().join("x");
    for (run, seq, expires) in [
        ("f1", 1, "2026-09-13T00:00:00Z"),
        ("d2", 2, "2026-08-22T00:00:00Z"),
        ("f3", 4, "2026-09-15T00:00:00Z"),
    ] {
        let top = stellamirror_tests::extract(&pr.bundle(run), &x.join(run));
        let m = std::fs::read_to_string(top.join("manifest.yaml")).unwrap();
        assert!(m.starts_with("formatVersion: 3\n"), "{m}");
        for line in [
            "channel: default".to_string(),
            format!("sequence: {seq}"),
            format!("expiresAt: {expires}"),
        ] {
            assert!(
                m.lines().any(|l| l == line),
                "{run}: {line:?} missing from manifest.yaml"
            );
        }
    }
    // --expires-in sets the lifetime from createdAt.
    export_delta(
        &pr.store,
        &pr.out,
        &pr.key,
        "latest",
        "d5",
        "2026-08-17T00:00:00Z",
        &["--expires-in", "36h"],
    )
    .ok();
    let top = stellamirror_tests::extract(&pr.bundle("d5"), &x.join("d5"));
    let m = std::fs::read_to_string(top.join("manifest.yaml")).unwrap();
    assert!(m.lines().any(|l| l == "expiresAt: 2026-08-18T12:00:00Z"), "{m}");
    let bad = sm([
        "export",
        "delta",
        "--store",
        p(&pr.store),
        "--tenant",
        "acme",
        "--out",
        p(&pr.out),
        "--base",
        "latest",
        "--expires-in",
        "7",
    ]);
    assert_eq!(bad.code, 2, "a duration needs a unit: {}", bad.stderr);
    assert!(bad.stderr.contains("duration"), "{}", bad.stderr);
}

#[test]
fn an_expired_bundle_is_refused_unless_allowed_and_status_reports_age_and_expiry() {
    let pr = producer();
    let mirror = pr.dir.path().join("mirror");
    let import_at = |now: &str, run: &str, extra: &[&str]| {
        let bundle = pr.bundle(run);
        let mut args = vec!["import", p(&bundle), "--store", p(&mirror), "--trust", p(&pr.public)];
        args.extend_from_slice(extra);
        sm_at(now, args)
    };
    // f1 expires 30 days after 2026-08-14.
    let r = import_at("2026-09-13T00:00:00Z", "f1", &[]).fails_with("ERR_BUNDLE_EXPIRED");
    assert!(r.stderr.contains("2026-09-13T00:00:00Z"), "{}", r.stderr);
    assert!(!mirror.join("audit.jsonl").exists(), "nothing was applied or audited");
    import_at("2026-09-12T23:59:59Z", "f1", &[]).ok();
    // d2 lives 7 days: refused on 08-22, accepted with --allow-expired (audited).
    import_at("2026-08-22T00:00:00Z", "d2", &[]).fails_with("ERR_BUNDLE_EXPIRED");
    assert_eq!(state_root(&mirror, "acme"), pr.roots[0]);
    import_at("2026-08-22T00:00:00Z", "d2", &["--allow-expired"]).ok();
    assert_eq!(state_root(&mirror, "acme"), pr.roots[1]);
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.expired.accepted\"").count(), 1);

    // status: age of the newest applied bundle and whether it is past expiry.
    let st = |now: &str, extra: &[&str]| {
        let mut args = vec!["status", "--store", p(&mirror), "--tenant", "acme", "--json"];
        args.extend_from_slice(extra);
        sm_at(now, args)
    };
    let f = st("2026-08-18T00:00:00Z", &[]).ok().json()["freshness"].clone();
    assert_eq!(f["runId"], "d2");
    assert_eq!(f["ageSeconds"], 3 * 86_400);
    assert_eq!(f["expiresAt"], "2026-08-22T00:00:00Z");
    assert_eq!(f["expired"], false);
    assert_eq!(
        st("2026-08-23T00:00:00Z", &[]).ok().json()["freshness"]["expired"],
        true
    );

    // --max-age for monitoring: exit 0 when fresh enough, 5 when older or expired.
    assert_eq!(
        st("2026-08-18T00:00:00Z", &["--max-age", "4d"]).ok().json()["stale"],
        serde_json::json!([])
    );
    let old = st("2026-08-18T00:00:00Z", &["--max-age", "2d"]);
    assert_eq!(old.code, 5, "{}", old.stdout);
    assert!(old.json()["stale"][0].as_str().unwrap().contains("3d old"));
    assert_eq!(
        st("2026-08-23T00:00:00Z", &["--max-age", "30d"]).code,
        5,
        "expired data is stale"
    );
    let human = sm_at(
        "2026-08-18T00:00:00Z",
        ["status", "--store", p(&mirror), "--max-age", "1d"],
    );
    assert_eq!(human.code, 5);
    assert!(human.stderr.contains("ERR_MIRROR_STALE"), "{}", human.stderr);
    assert!(human.stdout.contains("3d old"), "{}", human.stdout);
    // A store that imported nothing is stale too.
    assert_eq!(sm(["status", "--store", p(&pr.store), "--max-age", "1d"]).code, 5);
}

#[test]
fn rebuild_judges_only_the_chain_end_for_expiry() {
    // A full bundle that lives one day, and a delta on it that lives seven.
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let store = dir.path().join("producer");
    let folder = dir.path().join("bundles");
    ingest_sample(&store, "old");
    export_full(
        &store,
        &folder,
        &key,
        "f1",
        "2026-08-14T00:00:00Z",
        &["--expires-in", "1d"],
    );
    ingest_sample(&store, "new");
    export_delta(&store, &folder, &key, "f1", "d2", "2026-08-15T00:00:00Z", &[]).ok();
    let rebuild = |now: &str, target: &str, extra: &[&str]| {
        let s = dir.path().join(target);
        let mut args = vec![
            "rebuild",
            "--bundles",
            p(&folder),
            "--store",
            p(&s),
            "--trust",
            p(&public),
        ];
        args.extend_from_slice(extra);
        sm_at(now, args)
    };
    // On 08-17 the full has expired but the delta that supersedes it has not.
    rebuild("2026-08-17T00:00:00Z", "a", &[]).ok();
    assert_eq!(state_root(&dir.path().join("a"), "acme"), state_root(&store, "acme"));
    // On 08-23 the chain's end has expired too.
    rebuild("2026-08-23T00:00:00Z", "b", &[]).fails_with("ERR_BUNDLE_EXPIRED");
    rebuild("2026-08-23T00:00:00Z", "c", &["--allow-expired"]).ok();
    // Importing the same bundles one by one judges each: the full is refused on 08-17.
    let m = dir.path().join("m");
    let f1 = folder.join("f1-full.tar.zst");
    sm_at(
        "2026-08-17T00:00:00Z",
        ["import", p(&f1), "--store", p(&m), "--trust", p(&public)],
    )
    .fails_with("ERR_BUNDLE_EXPIRED");
}

/// Turn an extracted format-2 bundle into the format-1 form (no channel, sequence,
/// expiresAt or DSSE envelope), signed again with openssl.
fn downgrade_to_format_1(top: &Path, key: &Path) {
    let manifest = top.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l == "- path: signatures/provenance.dsse.json" {
            lines.next();
            lines.next();
            continue;
        }
        if ["channel: ", "sequence: ", "expiresAt: "]
            .iter()
            .any(|k| l.starts_with(k))
        {
            continue;
        }
        out.push(if l == "formatVersion: 3" { "formatVersion: 1" } else { l });
    }
    std::fs::write(&manifest, out.join("\n") + "\n").unwrap();
    std::fs::remove_file(top.join("signatures/provenance.dsse.json")).unwrap();
    let export = top.join("export.json");
    let mut e: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    e["formatVersion"] = 1.into();
    for k in ["channel", "sequence", "expiresAt"] {
        e.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(&export, serde_json::to_vec_pretty(&e).unwrap()).unwrap();
    stellamirror_tests::relist(top, "export.json");
    stellamirror_tests::openssl_sign(key, top, "export.json", "signatures/export.sig");
    stellamirror_tests::openssl_sign(key, top, "manifest.yaml", "signatures/manifest.sig");
}

#[test]
fn format_1_bundles_import_never_expire_and_are_ordered_by_created_at() {
    let pr = producer();
    let top = stellamirror_tests::extract(&pr.bundle("f1"), &pr.dir.path().join("v1"));
    downgrade_to_format_1(&top, &pr.key);
    let import_v1 =
        |mirror: &Path, now: &str| sm_at(now, ["import", p(&top), "--store", p(mirror), "--trust", p(&pr.public)]);
    // Years later it still imports: format 1 carries no expiry.
    let a = pr.dir.path().join("a");
    import_v1(&a, "2030-01-01T00:00:00Z").ok();
    assert_eq!(state_root(&a, "acme"), pr.roots[0]);
    let f = &status(&a, "acme")["freshness"];
    assert_eq!(
        (f["sequence"].clone(), f["expiresAt"].clone()),
        (Value::Null, Value::Null)
    );
    let human = sm(["status", "--store", p(&a), "--tenant", "acme"]).ok();
    assert!(human.stdout.contains("expires: never"), "{}", human.stdout);
    // Format-2 bundles follow it by sequence and time.
    pr.import("f3", &a, &[]).ok();
    // Older than the newest applied one by createdAt: refused like any other.
    let b = pr.dir.path().join("b");
    pr.import("f3", &b, &[]).ok();
    let r = import_v1(&b, stellamirror_tests::TEST_NOW).fails_with("ERR_BUNDLE_ROLLBACK");
    assert!(r.stderr.contains("sequence none"), "{}", r.stderr);
    assert_eq!(state_root(&b, "acme"), pr.roots[2]);
}

#[test]
fn files_of_two_valid_bundles_mixed_into_one_archive_are_refused() {
    let pr = producer();
    let a = stellamirror_tests::extract(&pr.bundle("f1"), &pr.dir.path().join("a"));
    let b = stellamirror_tests::extract(&pr.bundle("f3"), &pr.dir.path().join("b"));
    let mirror = pr.dir.path().join("mirror");
    pr.import("f1", &mirror, &[]).ok();
    let before = snapshot(&mirror);
    // Both bundles hold this shard, with different records (f3 adds and changes some).
    let shard = files_below(&a)
        .into_iter()
        .filter(|f| f.starts_with("data/raw/advisories/") && b.join(f).exists())
        .find(|f| std::fs::read(a.join(f)).unwrap() != std::fs::read(b.join(f)).unwrap())
        .expect("a data file both bundles hold, with different content");
    // (case, files taken from f3, the file the refusal must name; None: the first file
    // whose bytes differ from what the manifest lists, in archive order)
    let cases: [(&str, Vec<&str>, Option<&str>); 3] = [
        // f1's signed documents with one of f3's data files.
        ("data", vec![shard.as_str()], Some(shard.as_str())),
        // f3's manifest and signature over f1's files.
        ("manifest", vec!["manifest.yaml", "signatures/manifest.sig"], None),
        // f1's manifest with f3's export.json and its valid signature.
        (
            "export",
            vec!["export.json", "signatures/export.sig"],
            Some("export.json"),
        ),
    ];
    for (name, from_b, named) in cases {
        let top = stellamirror_tests::extract(&pr.bundle("f1"), &pr.dir.path().join(format!("mix-{name}")));
        for f in &from_b {
            std::fs::copy(b.join(f), top.join(f)).unwrap();
        }
        let archive = pr.dir.path().join(format!("mix-{name}.tar.zst"));
        stellamirror_tests::pack(&top, &archive);
        let r = import_bundle(&archive, &mirror, &pr.public, &["--json"]).fails_with("ERR_DIGEST_MISMATCH");
        let path = r.json()["error"]["detail"]["path"].as_str().unwrap().to_string();
        match named {
            Some(n) => assert_eq!(path, n, "{name}"),
            None => assert_ne!(
                std::fs::read(a.join(&path)).unwrap(),
                std::fs::read(b.join(&path)).unwrap()
            ),
        }
        let v = sm(["verify", p(&archive), "--trust", p(&pr.public)]);
        assert_eq!(v.code, 3, "{name}: verify refuses it too");
        assert_eq!(snapshot(&mirror), before, "{name}: nothing written");
    }
    // The repacking itself is faithful: f1 repacked unchanged verifies.
    let same = stellamirror_tests::extract(&pr.bundle("f1"), &pr.dir.path().join("same"));
    let archive = pr.dir.path().join("same.tar.zst");
    stellamirror_tests::pack(&same, &archive);
    sm(["verify", p(&archive), "--trust", p(&pr.public)]).ok();
}

#[test]
fn genuine_format_1_bundles_of_the_previous_version_verify_and_import() {
    // tests/data/bundles/format-1: written by stellamirror before format 2.
    let dir = tempfile::tempdir().unwrap();
    let fx = stellamirror_tests::data("bundles/format-1");
    let (full, delta, public) = (
        fx.join("v1-full-full.tar.zst"),
        fx.join("v1-delta-delta.tar.zst"),
        fx.join("producer.pub.pem"),
    );
    let v = sm(["verify", p(&full), p(&delta), "--trust", p(&public), "--json"])
        .ok()
        .json();
    assert_eq!(v["bundles"][1]["sequence"], Value::Null);
    let mirror = dir.path().join("mirror");
    for b in [&full, &delta] {
        // Years after their creation: format 1 has no expiry.
        sm_at(
            "2031-01-01T00:00:00Z",
            ["import", p(b), "--store", p(&mirror), "--trust", p(&public)],
        )
        .ok();
    }
    assert_eq!(
        state_root(&mirror, "acme"),
        "blake3:a98dba9f8c631b0b4305d00906bdc86e67929aa7844ca10a2b46b68f371e7fe7"
    );
    sm(["verify", "--store", p(&mirror)]).ok();
    // The older full again: already applied, a no-op that rolls nothing back.
    let again = import_bundle(&full, &mirror, &public, &["--json"]).ok().json();
    assert_eq!(again["outcome"], "already-applied");
}

/// Extracted folders (and encrypted bundles) are staged instead of read in one pass; the
/// staged path refuses expired and older bundles just the same, before writing anything.
#[test]
fn a_staged_bundle_is_refused_for_rollback_and_expiry_as_a_streamed_one() {
    let pr = producer();
    let x = pr.dir.path().join("x");
    let folder = |run: &str| stellamirror_tests::extract(&pr.bundle(run), &x.join(run));
    let (f1, f3) = (folder("f1"), folder("f3"));
    let mirror = pr.dir.path().join("mirror");
    let import_at = |now: &str, dir: &Path, extra: &[&str]| {
        let mut args = vec!["import", p(dir), "--store", p(&mirror), "--trust", p(&pr.public)];
        args.extend_from_slice(extra);
        sm_at(now, args)
    };
    // f1 expires 30 days after 2026-08-14.
    import_at("2026-09-13T00:00:00Z", &f1, &[]).fails_with("ERR_BUNDLE_EXPIRED");
    assert!(!mirror.join("audit.jsonl").exists(), "nothing was applied or audited");
    import_at(stellamirror_tests::TEST_NOW, &f3, &[]).ok();
    let before = snapshot(&mirror);
    import_at(stellamirror_tests::TEST_NOW, &f1, &[]).fails_with("ERR_BUNDLE_ROLLBACK");
    assert_eq!(
        snapshot(&mirror),
        before,
        "a refused rollback leaves the store as it was"
    );
    import_at(stellamirror_tests::TEST_NOW, &f1, &["--allow-rollback"]).ok();
    assert_eq!(state_root(&mirror, "acme"), pr.roots[0]);
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.rollback.accepted\"").count(), 1, "{audit}");
}

#[test]
fn genuine_format_2_bundles_of_the_previous_version_verify_and_import() {
    // tests/data/bundles/format-2: written by stellamirror before format 3 (a full, a delta
    // on it, and the full again encrypted in aes-gcm mode).
    let dir = tempfile::tempdir().unwrap();
    let fx = stellamirror_tests::data("bundles/format-2");
    let (full, delta, aes, public, identity) = (
        fx.join("v2-full-full.tar.zst"),
        fx.join("v2-delta-delta.tar.zst"),
        fx.join("v2-aes-full.tar.zst"),
        fx.join("producer.pub.pem"),
        fx.join("mirror.age"),
    );
    let v = sm(["verify", p(&full), p(&delta), "--trust", p(&public), "--json"])
        .ok()
        .json();
    assert_eq!(v["bundles"][0]["sequence"], 1);
    assert_eq!(v["bundles"][1]["sequence"], 3);
    sm(["verify", p(&aes), "--trust", p(&public), "--identity", p(&identity)]).ok();
    let mirror = dir.path().join("mirror");
    for b in [&full, &delta] {
        import_bundle(b, &mirror, &public, &[]).ok();
    }
    assert_eq!(
        state_root(&mirror, "acme"),
        "blake3:23ebdc254fae8e095d10fbf8ef866196628e9f06a0b00cb5d05250a3cb868efd"
    );
    sm(["verify", "--store", p(&mirror)]).ok();
    let other = dir.path().join("other");
    import_bundle(&aes, &other, &public, &["--identity", p(&identity)]).ok();
    assert_eq!(
        state_root(&other, "acme"),
        "blake3:fe9e5460e07dcb4658d6539a7de993bab5a1b8130e08260da7841667fb050194"
    );
}
