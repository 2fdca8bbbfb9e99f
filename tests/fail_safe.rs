//! Commands fail safe (issue 20): a mistyped tenant is refused, naming the tenants the
//! store has, and nothing is written — no output file, no key, no change to the store.

use stellamirror_tests::{ingest_sample, keypair, p, sm, state_root};

#[test]
fn an_unknown_tenant_is_refused_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keypair(dir.path(), "producer");
    let store = dir.path().join("store");
    ingest_sample(&store, "old");
    let root = state_root(&store, "acme");
    let out = dir.path().join("out");
    let runs = [
        vec!["status", "--store", p(&store), "--tenant", "acmee"],
        vec![
            "export",
            "full",
            "--store",
            p(&store),
            "--tenant",
            "acmee",
            "--out",
            p(&out),
            "--sign-key",
            p(&key),
        ],
        vec![
            "export",
            "full",
            "--store",
            p(&store),
            "--tenant",
            "acmee",
            "--out",
            p(&out),
        ],
        vec!["remove", "--store", p(&store), "--tenant", "acmee", "GO-2020-0001"],
    ];
    for args in runs {
        let r = sm(&args).fails_with("ERR_TENANT_UNKNOWN");
        assert!(r.stderr.contains("tenant acmee is not in store"), "{}", r.stderr);
        assert!(r.stderr.contains("(tenants: acme)"), "{}", r.stderr);
    }
    assert!(!out.exists(), "a refused export wrote {}", out.display());
    assert!(
        !store.join("keys").exists(),
        "a refused export created the store's signing key"
    );
    assert_eq!(state_root(&store, "acme"), root);
}

/// Commands that only read (status, export, verify --store, log, prune, gc) never create a
/// store at a mistyped `--store` path.
#[test]
fn read_commands_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-store");
    let out = dir.path().join("out");
    let m = p(&missing);
    let runs = [
        vec!["status", "--store", m],
        vec!["status", "--store", m, "--tenant", "acme"],
        vec!["export", "full", "--store", m, "--tenant", "acme", "--out", p(&out)],
        vec![
            "export",
            "delta",
            "--store",
            m,
            "--tenant",
            "acme",
            "--out",
            p(&out),
            "--base",
            "latest",
        ],
        vec!["verify", "--store", m],
        vec!["log", "--store", m],
        vec!["prune", "--store", m, "--keep-full", "1"],
        vec!["gc", "--store", m],
    ];
    for args in runs {
        sm(&args).fails_with("ERR_STORE_OPEN");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
}

/// A failed export (here: a delta with no base yet, a full of nothing) leaves neither an
/// output folder nor the store signing key it would have created.
#[test]
fn a_failed_export_creates_no_key_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ingest_sample(&store, "old");
    let out = dir.path().join("out");
    let delta = [
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
    ];
    sm(delta).fails_with("ERR_EXPORT_BASE_MISSING");
    let nothing = [
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&out),
        "--product",
        "pkg:nomatch/**",
    ];
    sm(nothing).fails_with("ERR_EXPORT_EMPTY");
    assert!(!out.exists(), "a failed export left {}", out.display());
    assert!(
        !store.join("keys").exists(),
        "a failed export created the store's signing key"
    );
    // The same export succeeds once the key exists, and a later failure keeps it.
    sm([
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&out),
    ])
    .ok();
    let key = store.join("keys/export-signing.pem");
    assert!(key.exists());
    let other = dir.path().join("other");
    sm([
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--channel",
        "adhoc",
        "--out",
        p(&other),
        "--product",
        "pkg:nomatch/**",
        "--run-id",
        "x2",
    ])
    .fails_with("ERR_EXPORT_EMPTY");
    assert!(key.exists() && !other.exists());
}

/// A tenant with no records is exported only with --allow-empty.
#[test]
fn exporting_an_empty_tenant_needs_allow_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("one.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"SYN-1\",\"modified\":\"2026-08-01T00:00:00Z\",\"affected\":[{\"package\":{\"ecosystem\":\"Go\",\"name\":\"example.com/m\"}}]}\n",
    )
    .unwrap();
    stellamirror_tests::ingest(&store, "acme", &["--source", "syn"], &[&input]).ok();
    sm([
        "remove",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--kind",
        "advisories",
        "SYN-1",
    ])
    .ok();
    let out = dir.path().join("out");
    let full = [
        "export",
        "full",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--out",
        p(&out),
    ];
    let r = sm(full).fails_with("ERR_EXPORT_EMPTY");
    assert!(r.stderr.contains("tenant acme has no record at all"), "{}", r.stderr);
    assert!(!out.exists());
    let mut allowed = full.to_vec();
    allowed.push("--allow-empty");
    sm(&allowed).ok();
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}
