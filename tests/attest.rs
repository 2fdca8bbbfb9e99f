//! Standard attestations: provenance.json is an in-toto Statement v1 with a SLSA
//! Provenance v1 predicate, signed in a DSSE envelope that a third-party implementation
//! (Python securesystemslib) verifies with the producer's public key.
use std::path::{Path, PathBuf};

use serde_json::Value;
use stellamirror_tests::{
    export_delta, export_full, extract, files_below, import_bundle, ingest_sample, keypair, openssl_sign,
    openssl_verify, p, relist, sha256_hex, tool,
};

struct Bundles {
    dir: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
    full: PathBuf,
    delta: PathBuf,
}

fn bundles() -> Bundles {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let store = dir.path().join("producer");
    let out = dir.path().join("out");
    ingest_sample(&store, "old");
    let full = export_full(&store, &out, &key, "f1", "2026-08-14T00:00:00Z", &[]);
    ingest_sample(&store, "new");
    export_delta(&store, &out, &key, "f1", "d2", "2026-08-15T00:00:00Z", &[]).ok();
    let delta = out.join("d2-delta.tar.zst");
    Bundles {
        dir,
        key,
        public,
        full,
        delta,
    }
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The Python interpreter of tests/scripts/install-py-attest.sh's environment.
fn python() -> String {
    let script = stellamirror_tests::manifest_dir().join("scripts/install-py-attest.sh");
    let r = tool("bash", &[p(&script)], Path::new("."));
    assert_eq!(r.code, 0, "install-py-attest.sh: {}", r.stderr);
    r.stdout.lines().last().expect("interpreter path").to_string()
}

/// `verify_dsse.py ENVELOPE PUBLIC` with securesystemslib.
fn securesystemslib_verify(envelope: &Path, public: &Path) -> stellamirror_tests::Run {
    let script = stellamirror_tests::manifest_dir().join("scripts/verify_dsse.py");
    tool(&python(), &[p(&script), p(envelope), p(public)], Path::new("."))
}

#[test]
fn provenance_is_a_slsa_statement_over_every_shipped_file() {
    let b = bundles();
    for (bundle, profile, base) in [
        (&b.full, "mirror:full", Value::Null),
        (&b.delta, "mirror:delta", "f1".into()),
    ] {
        let top = extract(bundle, &b.dir.path().join(profile.replace(':', "-")));
        let st = json_file(&top.join("provenance.json"));
        assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
        let def = &st["predicate"]["buildDefinition"];
        assert_eq!(def["buildType"], "https://stellamirror.dev/buildtypes/mirror-bundle/v2");
        assert_eq!(def["externalParameters"]["profile"], profile);
        assert_eq!(def["externalParameters"]["base"]["exportId"], base);
        assert_eq!(
            def["internalParameters"]["sequence"],
            if base.is_null() { 1 } else { 2 }
        );
        assert!(def["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "go"));
        assert_eq!(
            st["predicate"]["runDetails"]["builder"]["id"],
            "https://stellamirror.dev/builder/stellamirror"
        );
        // Subjects: every file but the statement itself, export.json, the manifest and
        // the signatures, each with the sha256 coreutils computes.
        let mut want: Vec<String> = files_below(&top)
            .into_iter()
            .filter(|f| !["provenance.json", "export.json", "manifest.yaml"].contains(&f.as_str()))
            .filter(|f| !f.starts_with("signatures/"))
            .collect();
        want.sort();
        let mut got: Vec<String> = Vec::new();
        for s in st["subject"].as_array().unwrap() {
            let name = s["name"].as_str().unwrap();
            assert_eq!(s["digest"]["sha256"], sha256_hex(&top.join(name)), "{name}");
            got.push(name.to_string());
        }
        got.sort();
        assert_eq!(got, want, "{profile}: subjects");
    }
}

#[test]
fn the_dsse_envelope_verifies_with_securesystemslib_and_fails_when_tampered() {
    let b = bundles();
    for (bundle, name) in [(&b.full, "full"), (&b.delta, "delta")] {
        let top = extract(bundle, &b.dir.path().join(name));
        let envelope = top.join("signatures/provenance.dsse.json");
        let r = securesystemslib_verify(&envelope, &b.public);
        assert_eq!(r.code, 0, "{name}: securesystemslib refused the envelope: {}", r.stderr);
        let out: Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(out["payloadType"], "application/vnd.in-toto+json");
        assert_eq!(
            out["payload"].as_str().unwrap(),
            std::fs::read_to_string(top.join("provenance.json")).unwrap(),
            "the payload is provenance.json, byte for byte"
        );
        let env = json_file(&envelope);
        assert_eq!(
            env["signatures"][0]["keyid"], out["keyid"],
            "our key id is sha256 of the SPKI DER"
        );
        // The raw signatures stay, for openssl.
        let r = openssl_verify(&b.public, &top, "manifest.yaml", "signatures/manifest.sig");
        assert_eq!(r.code, 0, "openssl: {}", r.stdout);
    }
    // One changed byte of the payload, signature kept: securesystemslib refuses it.
    let top = extract(&b.full, &b.dir.path().join("tampered"));
    let envelope = top.join("signatures/provenance.dsse.json");
    let mut env = json_file(&envelope);
    let prov = std::fs::read_to_string(top.join("provenance.json")).unwrap();
    let forged = prov.replacen("\"sequence\": 1", "\"sequence\": 9", 1);
    assert_ne!(forged, prov);
    env["payload"] = Value::String(base64(forged.as_bytes()));
    std::fs::write(&envelope, serde_json::to_vec_pretty(&env).unwrap()).unwrap();
    let r = securesystemslib_verify(&envelope, &b.public);
    assert_eq!(r.code, 1, "a forged payload must not verify: {}", r.stdout);
    // Another key does not verify the genuine envelope either.
    let (_, other) = keypair(b.dir.path(), "other");
    let genuine = extract(&b.full, &b.dir.path().join("genuine")).join("signatures/provenance.dsse.json");
    assert_eq!(securesystemslib_verify(&genuine, &other).code, 1);
}

/// Standard base64 (RFC 4648) with `base64` from coreutils.
fn base64(bytes: &[u8]) -> String {
    let t = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(t.path(), bytes).unwrap();
    let r = tool("base64", &["-w0", p(t.path())], Path::new("."));
    assert_eq!(r.code, 0);
    r.stdout.trim().to_string()
}

#[test]
fn import_checks_the_envelope_even_when_the_manifest_lists_it() {
    // The key holder could list a bad envelope in a validly signed manifest: our own
    // verifier must check the DSSE signature, not only the digest.
    let b = bundles();
    let top = extract(&b.full, &b.dir.path().join("x"));
    let envelope = top.join("signatures/provenance.dsse.json");
    let mut env = json_file(&envelope);
    env["signatures"][0]["sig"] = Value::String(base64(&[7u8; 64]));
    std::fs::write(&envelope, serde_json::to_vec_pretty(&env).unwrap()).unwrap();
    relist(&top, "signatures/provenance.dsse.json");
    openssl_sign(&b.key, &top, "manifest.yaml", "signatures/manifest.sig");
    let mirror = b.dir.path().join("mirror");
    // Staged (an extracted folder) and streamed (an archive) imports alike.
    let archive = b.dir.path().join("bad-envelope.tar.zst");
    stellamirror_tests::pack(&top, &archive);
    for bundle in [&top, &archive] {
        let r = import_bundle(bundle, &mirror, &b.public, &["--json"]).fails_with("ERR_SIGNATURE_INVALID");
        assert_eq!(r.json()["error"]["detail"]["path"], "signatures/provenance.dsse.json");
    }
    assert!(!mirror.exists(), "a refused import into a new store leaves no store");
    // And a payload that is not provenance.json (envelope of another bundle) is refused.
    let other = extract(&b.delta, &b.dir.path().join("y")).join("signatures/provenance.dsse.json");
    std::fs::copy(&other, &envelope).unwrap();
    relist(&top, "signatures/provenance.dsse.json");
    openssl_sign(&b.key, &top, "manifest.yaml", "signatures/manifest.sig");
    let archive = b.dir.path().join("foreign-envelope.tar.zst");
    stellamirror_tests::pack(&top, &archive);
    for bundle in [&top, &archive] {
        let r = import_bundle(bundle, &mirror, &b.public, &[]).fails_with("ERR_BUNDLE_MALFORMED");
        assert!(
            r.stderr.contains("payload differs from provenance.json"),
            "{}",
            r.stderr
        );
    }
}
