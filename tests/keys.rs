//! Keys on the far side: a trust file with validity windows and revocations, and key
//! rotation by a statement the old key signs, shipped in a bundle.
use std::path::{Path, PathBuf};

use stellamirror_tests::{
    export_delta, export_full, extract, import_bundle, ingest, ingest_sample, keypair, openssl_sign, p, relist, sm,
    state_root, status, Run,
};

/// Producer with keys `old` and `new`: f1 (08-14, old key), d2 (08-15, old key, rotates
/// to the new key), then two deltas on d2 created 08-16: d3 signed by the new key and
/// d3x signed by the old one.
struct Rotation {
    dir: tempfile::TempDir,
    old_pub: PathBuf,
    old: PathBuf,
    store: PathBuf,
    out: PathBuf,
}

fn rotation() -> Rotation {
    let dir = tempfile::tempdir().unwrap();
    let (old, old_pub) = keypair(dir.path(), "old");
    let (new, new_pub) = keypair(dir.path(), "new");
    let store = dir.path().join("producer");
    let out = dir.path().join("out");
    ingest_sample(&store, "old");
    export_full(&store, &out, &old, "f1", "2026-08-14T00:00:00Z", &[]);
    ingest_sample(&store, "new");
    export_delta(
        &store,
        &out,
        &old,
        "f1",
        "d2",
        "2026-08-15T00:00:00Z",
        &["--rotate-to", p(&new_pub)],
    )
    .ok();
    ingest(
        &store,
        "acme",
        &["--source", "pypa"],
        &[&stellamirror_tests::data("osv/pypa.jsonl")],
    )
    .ok();
    export_delta(&store, &out, &new, "d2", "d3", "2026-08-16T00:00:00Z", &[]).ok();
    export_delta(&store, &out, &old, "d2", "d3x", "2026-08-16T00:00:00Z", &[]).ok();
    Rotation {
        dir,
        old_pub,
        old,
        store,
        out,
    }
}

impl Rotation {
    fn bundle(&self, run: &str) -> PathBuf {
        let kind = if run.starts_with('f') { "full" } else { "delta" };
        self.out.join(format!("{run}-{kind}.tar.zst"))
    }
    /// Import trusting only the old key.
    fn import(&self, run: &str, mirror: &Path) -> Run {
        import_bundle(&self.bundle(run), mirror, &self.old_pub, &["--json"])
    }
}

#[test]
fn a_bundle_signed_by_a_rotated_out_key_after_the_rotation_is_refused() {
    let r = rotation();
    // Before the rotation is applied, the new key is unknown.
    let fresh = r.dir.path().join("fresh");
    r.import("f1", &fresh).ok();
    r.import("d3", &fresh).fails_with("ERR_SIGNATURE_UNTRUSTED");

    let mirror = r.dir.path().join("mirror");
    r.import("f1", &mirror).ok();
    r.import("d2", &mirror).ok();
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.key.rotated\"").count(), 1, "{audit}");
    let before = (state_root(&mirror, "acme"), status(&mirror, "acme"));
    // Signed by the old key, created after the rotation: refused, nothing written.
    let refused = r.import("d3x", &mirror).fails_with("ERR_SIGNATURE_REVOKED").json();
    let msg = refused["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("rotated out at 2026-08-15T00:00:00Z by bundle d2"),
        "{msg}"
    );
    assert_eq!((state_root(&mirror, "acme"), status(&mirror, "acme")), before);
    // Signed by the new key, which only the rotation statement introduced.
    r.import("d3", &mirror).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&r.store, "acme"));
    // `verify` of the chain follows the rotation too, trusting only the old key.
    let chain = sm([
        "verify",
        p(&r.bundle("f1")),
        p(&r.bundle("d2")),
        p(&r.bundle("d3")),
        "--trust",
        p(&r.old_pub),
    ]);
    assert_eq!(chain.code, 0, "{}", chain.stderr);
    let forked = sm([
        "verify",
        p(&r.bundle("f1")),
        p(&r.bundle("d2")),
        p(&r.bundle("d3x")),
        "--trust",
        p(&r.old_pub),
    ]);
    assert_eq!(forked.code, 3);
    assert!(forked.stderr.contains("ERR_SIGNATURE_REVOKED"), "{}", forked.stderr);
    // The rotation bundle again is a no-op and records nothing twice.
    r.import("d2", &mirror).ok();
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.key.rotated\"").count(), 1);
}

#[test]
fn a_rotation_statement_moved_into_another_bundle_is_refused() {
    // Even the old key's holder cannot reuse a statement: it names its own bundle.
    let r = rotation();
    let d2 = extract(&r.bundle("d2"), &r.dir.path().join("d2"));
    let d3x = extract(&r.bundle("d3x"), &r.dir.path().join("d3x"));
    std::fs::create_dir_all(d3x.join("keys")).unwrap();
    std::fs::copy(d2.join("keys/rotation.dsse.json"), d3x.join("keys/rotation.dsse.json")).unwrap();
    // List it (a second artifact line after README.md) and sign the manifest again.
    let m = d3x.join("manifest.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    let text = text.replacen(
        "- path: README.md\n",
        "- path: keys/rotation.dsse.json\n  sha256: x\n  bytes: 0\n- path: README.md\n",
        1,
    );
    std::fs::write(&m, text).unwrap();
    relist(&d3x, "keys/rotation.dsse.json");
    openssl_sign(&r.old, &d3x, "manifest.yaml", "signatures/manifest.sig");
    // A mirror that has not seen d2's rotation (after it, the old key is revoked anyway).
    let mirror = r.dir.path().join("mirror");
    r.import("f1", &mirror).ok();
    let refused = import_bundle(&d3x, &mirror, &r.old_pub, &[]).fails_with("ERR_KEY_ROTATION_INVALID");
    assert!(refused.stderr.contains("keys/rotation.dsse.json"), "{}", refused.stderr);
    // It would otherwise have introduced the new key.
    r.import("d3", &mirror).fails_with("ERR_SIGNATURE_UNTRUSTED");
}

fn write_trust_file(dir: &Path, name: &str, body: serde_json::Value) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, serde_json::to_vec_pretty(&body).unwrap()).unwrap();
    f
}

#[test]
fn a_trust_file_revokes_keys_and_bounds_them_to_a_validity_window() {
    let r = rotation();
    let dir = r.dir.path();
    let pem = std::fs::read_to_string(&r.old_pub).unwrap();
    let with_file = |run: &str, mirror: &str, file: &Path| {
        sm([
            "import",
            p(&r.bundle(run)),
            "--store",
            p(&dir.join(mirror)),
            "--trust-file",
            p(file),
        ])
    };
    // Revoked: refused, and `verify` (exit 3) agrees.
    let revoked = write_trust_file(
        dir,
        "revoked.json",
        serde_json::json!({"version": 1, "keys": [{"name": "old", "pem": pem, "revoked": true, "reason": "laptop lost"}]}),
    );
    let refused = with_file("f1", "a", &revoked).fails_with("ERR_SIGNATURE_REVOKED");
    assert!(refused.stderr.contains("laptop lost"), "{}", refused.stderr);
    assert!(!dir.join("a/audit.jsonl").exists(), "nothing applied");
    let v = sm(["verify", p(&r.bundle("f1")), "--trust-file", p(&revoked)]);
    assert_eq!(v.code, 3, "{}", v.stderr);
    assert!(v.stderr.contains("ERR_SIGNATURE_REVOKED"));
    // A window: valid for bundles created before 08-15 (by path, relative to the file).
    let window = write_trust_file(
        dir,
        "window.json",
        serde_json::json!({"version": 1, "keys": [{"name": "old", "publicKey": "old.pub.pem", "notAfter": "2026-08-15T00:00:00Z"}]}),
    );
    with_file("f1", "b", &window).ok();
    let late = with_file("d2", "b", &window).fails_with("ERR_SIGNATURE_UNTRUSTED");
    assert!(late.stderr.contains("notAfter 2026-08-15T00:00:00Z"), "{}", late.stderr);
    // Both keys in one file: the whole chain imports, whatever the rotation says.
    let both = write_trust_file(
        dir,
        "both.json",
        serde_json::json!({"version": 1, "keys": [{"publicKey": "old.pub.pem"}, {"publicKey": "new.pub.pem"}]}),
    );
    for run in ["f1", "d2", "d3"] {
        with_file(run, "c", &both).ok();
    }
    // Malformed trust files are refused before anything is read.
    let bad = write_trust_file(
        dir,
        "bad.json",
        serde_json::json!({"version": 1, "keys": [{"publicKey": "old.pub.pem", "pem": pem}]}),
    );
    with_file("f1", "d", &bad).fails_with("ERR_TRUST_FILE_INVALID");
    let wrong_id = write_trust_file(
        dir,
        "wrong-id.json",
        serde_json::json!({"version": 1, "keys": [{"publicKey": "old.pub.pem", "keyId": "sha256:00"}]}),
    );
    with_file("f1", "d", &wrong_id).fails_with("ERR_TRUST_FILE_INVALID");
}

/// Extracted folders (and encrypted bundles) are staged instead of read in one pass: the
/// staged path applies a rotation and refuses the rotated-out key just the same.
#[test]
fn a_rotation_is_applied_and_enforced_on_the_staged_path_too() {
    let r = rotation();
    let x = r.dir.path().join("x");
    let folder = |run: &str| extract(&r.bundle(run), &x.join(run));
    let mirror = r.dir.path().join("mirror");
    let import = |dir: &Path| import_bundle(dir, &mirror, &r.old_pub, &["--json"]);
    import(&folder("f1")).ok();
    import(&folder("d2")).ok();
    let audit = std::fs::read_to_string(mirror.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"mirror.key.rotated\"").count(), 1, "{audit}");
    let before = (state_root(&mirror, "acme"), status(&mirror, "acme"));
    import(&folder("d3x")).fails_with("ERR_SIGNATURE_REVOKED");
    assert_eq!((state_root(&mirror, "acme"), status(&mirror, "acme")), before);
    import(&folder("d3")).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&r.store, "acme"));
}
