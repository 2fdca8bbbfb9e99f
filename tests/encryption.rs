//! Encrypted bundles: interop with the real `age` CLI, AES-GCM round trips, refusals,
//! exactly which paths each mode encrypts, and an encrypted delta chain.
use std::path::{Path, PathBuf};

use stellamirror_tests::{
    data, export_delta, extract, files_below, import_bundle, ingest, ingest_sample, keypair, p, sm, state_root, tool,
};

struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let store = dir.path().join("store");
    ingest_sample(&store, "old");
    Setup {
        dir,
        store,
        key,
        public,
    }
}

/// `stellamirror keygen --age`: identity (0600) and recipient.
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let base = dir.join(name);
    let r = sm(["keygen", "--age", "--out", p(&base), "--json"]).ok().json();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&base).unwrap().permissions().mode() & 0o777, 0o600);
    (base, r["recipient"].as_str().unwrap().to_string())
}

fn export(s: &Setup, run: &str, extra: &[&str]) -> PathBuf {
    let out = s.dir.path().join("out");
    // Each export chooses its own encryption: it redefines the channel (issue 20).
    let mut extra = extra.to_vec();
    extra.push("--redefine");
    stellamirror_tests::export_full(&s.store, &out, &s.key, run, "2026-09-01T00:00:00Z", &extra)
}

fn encrypted_paths(m: &Path) -> Vec<String> {
    let r = tool("sh", &["-c", "grep -A100000 'encryptedPaths:' manifest.yaml | tail -n +2 | sed -n '/^  - /p;/^  [a-z]/q' | sed 's/^  - //'"], m);
    let mut v: Vec<String> = r.stdout.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn age_cli_decrypts_every_encrypted_file_with_a_stellamirror_identity() {
    let s = setup();
    let (identity, recipient) = age_identity(s.dir.path(), "mirror.age");
    let b = export(&s, "a1", &["--encrypt", "age", "--recipient", &recipient]);
    sm(["verify", p(&b), "--trust", p(&s.public)]).ok();
    let m = extract(&b, &s.dir.path().join("x"));
    let enc = encrypted_paths(&m);
    assert!(!enc.is_empty());
    for f in &enc {
        let out = s.dir.path().join("plain");
        let r = tool("age", &["-d", "-i", p(&identity), "-o", p(&out), f], &m);
        assert_eq!(r.code, 0, "age -d {f}: {}", r.stderr);
        if f.ends_with(".jsonl.zst") {
            assert_eq!(
                tool(
                    "sh",
                    &["-c", &format!("zstd -dc '{}' | jq -c .id >/dev/null", out.display())],
                    &m
                )
                .code,
                0
            );
        }
    }
}

#[test]
fn an_age_keygen_recipient_works_for_export_and_import() {
    let s = setup();
    let id = s.dir.path().join("age-keygen.txt");
    let r = tool("age-keygen", &["-o", p(&id)], s.dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recipient = tool("age-keygen", &["-y", p(&id)], s.dir.path())
        .stdout
        .trim()
        .to_string();
    let b = export(&s, "a2", &["--encrypt", "age", "--recipient", &recipient]);
    let mirror = s.dir.path().join("mirror");
    import_bundle(&b, &mirror, &s.public, &["--identity", p(&id)]).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&s.store, "acme"));
}

#[test]
fn aes_gcm_bundles_round_trip_and_verify_with_an_identity() {
    let s = setup();
    let (identity, recipient) = age_identity(s.dir.path(), "id");
    let b = export(&s, "g1", &["--encrypt", "aes-gcm", "--recipient", &recipient]);
    let v = sm([
        "verify",
        p(&b),
        "--trust",
        p(&s.public),
        "--identity",
        p(&identity),
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(v["bundles"][0]["dataChecked"], true);
    let v = sm(["verify", p(&b), "--trust", p(&s.public), "--json"]).ok().json();
    assert_eq!(
        v["bundles"][0]["dataChecked"], false,
        "without an identity only signatures and digests are checked"
    );
    let mirror = s.dir.path().join("mirror");
    import_bundle(&b, &mirror, &s.public, &["--identity", p(&identity)]).ok();
    assert_eq!(state_root(&mirror, "acme"), state_root(&s.store, "acme"));
    let m = extract(&b, &s.dir.path().join("x"));
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.join("provenance.json")).unwrap()).unwrap();
    // Format 2: SLSA provenance; the wrapped keys are an internal parameter of the run.
    let wrapped = prov["predicate"]["buildDefinition"]["internalParameters"]["encryption"]["recipients"]
        .as_array()
        .unwrap();
    assert_eq!(wrapped.len(), 1);
    assert_eq!(wrapped[0]["recipient"], recipient.as_str());
}

#[test]
fn a_wrong_or_missing_identity_fails_with_decrypt_failed_and_applies_nothing() {
    let s = setup();
    let (_, recipient) = age_identity(s.dir.path(), "right");
    let (wrong, _) = age_identity(s.dir.path(), "wrong");
    for mode in ["age", "aes-gcm"] {
        let b = export(
            &s,
            &format!("w-{mode}"),
            &["--encrypt", mode, "--recipient", &recipient],
        );
        let mirror = s.dir.path().join(format!("m-{mode}"));
        let r = import_bundle(&b, &mirror, &s.public, &["--identity", p(&wrong), "--json"])
            .fails_with("ERR_DECRYPT_FAILED");
        assert!(!r.stdout.contains("AGE-SECRET-KEY"), "no key material in errors");
        import_bundle(&b, &mirror, &s.public, &["--json"]).fails_with("ERR_DECRYPT_FAILED");
        assert!(!mirror.exists(), "a refused import into a new store leaves no store");
    }
}

#[test]
fn default_and_strict_modes_encrypt_exactly_the_documented_paths() {
    let s = setup();
    let (_, recipient) = age_identity(s.dir.path(), "id");
    let b = export(&s, "d", &["--encrypt", "aes-gcm", "--recipient", &recipient]);
    let m = extract(&b, &s.dir.path().join("xd"));
    let all = files_below(&m);
    let want: Vec<String> = all.iter().filter(|f| f.starts_with("data/")).cloned().collect();
    assert_eq!(encrypted_paths(&m), want, "default mode encrypts data/ only");
    let b = export(
        &s,
        "s",
        &["--encrypt", "aes-gcm", "--recipient", &recipient, "--strict"],
    );
    let m = extract(&b, &s.dir.path().join("xs"));
    let all = files_below(&m);
    let want: Vec<String> = all
        .iter()
        .filter(|f| !(f.as_str() == "manifest.yaml" || f.as_str() == "export.json" || f.starts_with("signatures/")))
        .cloned()
        .collect();
    assert_eq!(
        encrypted_paths(&m),
        want,
        "strict mode encrypts all but manifest, export.json, signatures"
    );
    // Strict: the wrapped data keys move to export.json (provenance is encrypted).
    let ex: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m.join("export.json")).unwrap()).unwrap();
    assert_eq!(ex["wrappedKeys"].as_array().unwrap().len(), 1);
    let audit = std::fs::read_to_string(s.store.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"mirror.encryption.enabled\""));
}

#[test]
fn an_encrypted_delta_chain_imports_to_the_exporters_root() {
    let s = setup();
    let (identity, recipient) = age_identity(s.dir.path(), "id");
    let out = s.dir.path().join("out");
    let full = export(
        &s,
        "f",
        &["--encrypt", "aes-gcm", "--recipient", &recipient, "--strict"],
    );
    ingest(
        &s.store,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-new.jsonl")],
    )
    .ok();
    export_delta(
        &s.store,
        &out,
        &s.key,
        "f",
        "d",
        "2026-09-02T00:00:00Z",
        &["--encrypt", "age", "--recipient", &recipient, "--redefine"],
    )
    .ok();
    let mirror = s.dir.path().join("mirror");
    for b in [full, out.join("d-delta.tar.zst")] {
        import_bundle(&b, &mirror, &s.public, &["--identity", p(&identity)]).ok();
    }
    assert_eq!(state_root(&mirror, "acme"), state_root(&s.store, "acme"));
}
