//! Channels (issue 20): named export lines. `--base latest` is the channel's last export,
//! one-off exports (`--channel adhoc`, `--detached`) never move a channel, an export that
//! differs from its channel is refused, and importers can follow chosen channels only.

use std::path::Path;

use stellamirror_tests::{export_delta, export_full, import_bundle, ingest_sample, keypair, p, sm, state_root};

fn delta_selectors(out: &Path, run: &str) -> String {
    let x = out.join(format!("x-{run}"));
    let top = stellamirror_tests::extract(&out.join(format!("{run}-delta.tar.zst")), &x);
    std::fs::read_to_string(top.join("manifest.yaml")).unwrap()
}

/// Incident 1: a one-off Go-only export must not make the next scheduled delta Go-only.
#[test]
fn a_one_off_export_does_not_change_the_next_delta() {
    let t = tempfile::tempdir().unwrap();
    let (key, _) = keypair(t.path(), "k");
    let store = t.path().join("store");
    ingest_sample(&store, "old");
    let out = t.path().join("out");
    export_full(&store, &out, &key, "f1", "2026-08-14T00:00:00Z", &[]);
    let elsewhere = t.path().join("elsewhere");
    for (run, flag) in [("go1", &["--channel", "adhoc"][..]), ("go2", &["--detached"][..])] {
        let mut extra = vec!["--product", "pkg:golang/**"];
        extra.extend_from_slice(flag);
        export_full(&store, &elsewhere, &key, run, "2026-08-14T01:00:00Z", &extra);
    }
    ingest_sample(&store, "new");
    let r = export_delta(&store, &out, &key, "latest", "d1", "2026-08-14T02:00:00Z", &["--json"]).ok();
    let report = r.json();
    assert_eq!(report["diff"]["baseExportId"], "f1", "{report}");
    let manifest = delta_selectors(&out, "d1");
    assert!(
        !manifest.contains("pkg:golang/**"),
        "the delta inherited the one-off's selectors:\n{manifest}"
    );
    // Without --channel adhoc / --detached the same one-off is refused, not silently adopted.
    let r = sm([
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&elsewhere),
        "--product",
        "pkg:golang/**",
        "--sign-key",
        p(&key),
        "--run-id",
        "go3",
    ])
    .fails_with("ERR_CHANNEL_MISMATCH");
    assert!(r.stderr.contains("--channel adhoc"), "{}", r.stderr);
    assert!(!elsewhere.join("go3-full.tar.zst").exists());
}

/// Incident 2: a test full export to another folder must not break the next real delta on
/// the far side (ERR_DELTA_OUT_OF_ORDER).
#[test]
fn a_test_export_elsewhere_does_not_break_the_next_delta_on_the_far_side() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = t.path().join("store");
    let mirror = t.path().join("mirror");
    ingest_sample(&store, "old");
    let out = t.path().join("out");
    let f1 = export_full(&store, &out, &key, "f1", "2026-08-14T00:00:00Z", &[]);
    import_bundle(&f1, &mirror, &public, &[]).ok();
    export_full(
        &store,
        &t.path().join("test"),
        &key,
        "t1",
        "2026-08-14T01:00:00Z",
        &["--channel", "adhoc"],
    );
    // A second channel of its own, with its own folder, does not move `default` either.
    export_full(
        &store,
        &t.path().join("nightly"),
        &key,
        "n1",
        "2026-08-14T01:30:00Z",
        &["--channel", "nightly"],
    );
    ingest_sample(&store, "new");
    // --out is the channel's folder by default.
    sm([
        "export",
        "delta",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--base",
        "latest",
        "--run-id",
        "d1",
        "--created-at",
        "2026-08-14T02:00:00Z",
        "--sign-key",
        p(&key),
    ])
    .ok();
    import_bundle(&out.join("d1-delta.tar.zst"), &mirror, &public, &[]).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&store, "acme"));
    // The nightly channel's delta is based on the nightly channel's last export.
    let r = sm([
        "export",
        "delta",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--channel",
        "nightly",
        "--base",
        "latest",
        "--run-id",
        "n2",
        "--created-at",
        "2026-08-14T03:00:00Z",
        "--sign-key",
        p(&key),
        "--json",
    ])
    .ok();
    assert_eq!(r.json()["diff"]["baseExportId"], "n1");
    assert!(t.path().join("nightly/n2-delta.tar.zst").exists());
    // A full export of the channel to another folder is refused without --redefine.
    sm([
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&t.path().join("test")),
        "--sign-key",
        p(&key),
        "--run-id",
        "t2",
    ])
    .fails_with("ERR_CHANNEL_MISMATCH");
}

#[test]
fn importers_refuse_channels_they_do_not_follow_only_when_told() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = t.path().join("store");
    ingest_sample(&store, "old");
    let nightly = export_full(
        &store,
        &t.path().join("n"),
        &key,
        "n1",
        "2026-08-14T00:00:00Z",
        &["--channel", "nightly"],
    );
    let mirror = t.path().join("mirror");
    let r = import_bundle(&nightly, &mirror, &public, &["--channel", "default"]).fails_with("ERR_CHANNEL_UNKNOWN");
    assert!(r.stderr.contains("channel nightly"), "{}", r.stderr);
    assert!(!mirror.exists(), "a refused import left a store behind");
    import_bundle(
        &nightly,
        &mirror,
        &public,
        &["--channel", "default", "--channel", "nightly"],
    )
    .ok();
    import_bundle(&nightly, &t.path().join("m2"), &public, &[]).ok();
}

/// A delta follows the last export applied on its own channel: deltas of two channels
/// interleave on one mirror as long as the state they are based on is the mirror's.
#[test]
fn far_side_orders_deltas_per_channel() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "k");
    let store = t.path().join("store");
    let mirror = t.path().join("mirror");
    ingest_sample(&store, "old");
    let out = t.path().join("out");
    let f1 = export_full(&store, &out, &key, "f1", "2026-08-14T00:00:00Z", &[]);
    import_bundle(&f1, &mirror, &public, &[]).ok();
    // Another channel's full of the same state, applied on the mirror after f1.
    let n1 = export_full(
        &store,
        &t.path().join("n"),
        &key,
        "n1",
        "2026-08-14T00:30:00Z",
        &["--channel", "nightly"],
    );
    import_bundle(&n1, &mirror, &public, &[]).ok();
    ingest_sample(&store, "new");
    export_delta(&store, &out, &key, "latest", "d1", "2026-08-14T01:00:00Z", &[]).ok();
    import_bundle(&out.join("d1-delta.tar.zst"), &mirror, &public, &[]).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&store, "acme"));
}
