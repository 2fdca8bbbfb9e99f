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
