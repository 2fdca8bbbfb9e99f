//! Regression tests for the hardening findings of issue 17, one test named after each
//! finding it covers: a signed bundle is still untrusted input, and refusals leave nothing
//! behind.

use std::path::Path;
use std::process::{Command, Stdio};

use stellamirror_tests::{
    bin, export_full, files_below, import_bundle, ingest_sample, keypair, openssl_sign, openssl_verify, p, sm,
    state_root, tool,
};

/// A producer store with the committed sample and one signed full bundle.
fn produce(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, public) = keypair(dir, "producer");
    let store = dir.join("producer-store");
    ingest_sample(&store, "old");
    let bundle = export_full(&store, &dir.join("out"), &key, "full-1", "2026-09-01T00:00:00Z", &[]);
    (bundle, public)
}

/// A copy of `bundle` with `edit` applied to its bytes.
fn tampered(bundle: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut bytes = std::fs::read(bundle).unwrap();
    edit(&mut bytes);
    let out = bundle.with_file_name(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

/// `verify` and `import` both refuse, and the import leaves no store behind.
fn refused_everywhere(bad: &Path, public: &Path, dir: &Path, reason: &str) {
    let v = sm(["verify", p(bad), "--trust", p(public)]).fails_with("ERR_BUNDLE_MALFORMED");
    assert!(v.stderr.contains(reason), "{}", v.stderr);
    let mirror = dir.join(format!("mirror-{}", bad.file_name().unwrap().to_string_lossy()));
    import_bundle(bad, &mirror, public, &[]).fails_with("ERR_BUNDLE_MALFORMED");
    assert!(!mirror.exists(), "a refused import left {}", mirror.display());
}

#[test]
fn finding_6_the_zstd_frame_checksum_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, public) = produce(dir.path());
    // The frame ends with its 4-byte XXH64 checksum: the content still decodes, only the
    // checksum disagrees (the standard CLI says so too).
    let bad = tampered(&bundle, "checksum.tar.zst", |b| *b.last_mut().unwrap() ^= 0x01);
    let t = tool("zstd", &["-t", "-q", p(&bad)], dir.path());
    assert_ne!(t.code, 0, "zstd -t accepts the tampered checksum");
    refused_everywhere(&bad, &public, dir.path(), "checksum");
    sm(["verify", p(&bundle), "--trust", p(&public)]).ok();
}

#[test]
fn finding_6_bytes_after_the_archive_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, public) = produce(dir.path());
    let garbage = tampered(&bundle, "trailing.tar.zst", |b| {
        b.extend_from_slice(b"trailing garbage")
    });
    refused_everywhere(&garbage, &public, dir.path(), "after the end");
    // A second, valid zstd frame (which `zstd -d` would decode and concatenate).
    let frame = zstd_frame(b"extra data");
    let second = tampered(&bundle, "second-frame.tar.zst", |b| b.extend_from_slice(&frame));
    refused_everywhere(&second, &public, dir.path(), "after the end");
}

/// `data` compressed by the zstd CLI: one complete, valid frame.
fn zstd_frame(data: &[u8]) -> Vec<u8> {
    let out = Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn finding_7_keygen_writes_a_private_key_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keypair(dir.path(), "k");
    // OpenSSL 3.0 reads PKCS#8 v1 Ed25519 keys (not v2): derive the public key from ours.
    let derived = tool("openssl", &["pkey", "-in", p(&private), "-pubout"], dir.path()).ok();
    assert_eq!(derived.stdout, std::fs::read_to_string(&public).unwrap());
    // And a signature made by openssl with our private key verifies with our public key.
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"hello").unwrap();
    openssl_sign(&private, dir.path(), "msg", "msg.sig");
    openssl_verify(&public, dir.path(), "msg", "msg.sig").ok();
}

#[test]
fn finding_7_a_broken_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    ingest_sample(&store, "old");
    // A pipe whose reader is already gone: the first write fails with EPIPE, always.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(bin())
        .args(["status", "--store", p(&store), "--tenant", "acme", "--json"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn finding_7_keygen_age_writes_what_its_help_says() {
    let dir = tempfile::tempdir().unwrap();
    let help = sm(["keygen", "--help"]).ok();
    assert!(help.stdout.contains("NAME (identity, 0600"), "{}", help.stdout);
    assert!(help.stdout.contains("NAME.pub (recipient)"), "{}", help.stdout);
    let base = dir.path().join("mirror.age");
    let r = sm(["keygen", "--age", "--out", p(&base), "--json"]).ok().json();
    assert_eq!(files_below(dir.path()), vec!["mirror.age", "mirror.age.pub"]);
    let recipient = std::fs::read_to_string(dir.path().join("mirror.age.pub")).unwrap();
    assert_eq!(recipient.trim(), r["recipient"].as_str().unwrap());
    // The identity file is one the age CLI reads: it decrypts what it encrypts to the recipient.
    let enc = tool(
        "sh",
        &[
            "-c",
            &format!("printf secret | age -r {} | age -d -i {}", recipient.trim(), p(&base)),
        ],
        dir.path(),
    )
    .ok();
    assert_eq!(enc.stdout, "secret");
}

/// Non-negotiable: a refusal leaves no new store directory. A bad input to `ingest` and a
/// bad bundle to `import` or `rebuild`, each aimed at a store path that does not exist yet.
#[test]
fn a_failed_writer_leaves_no_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, public) = produce(dir.path());
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, b"{\"id\": ").unwrap();
    let store = dir.path().join("typo-store");
    sm([
        "ingest",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--source",
        "x",
        p(&bad_json),
    ])
    .fails_with("ERR_INPUT_INVALID");
    assert!(!store.exists());
    let bad = tampered(&bundle, "bad.tar.zst", |b| b.truncate(b.len() / 2));
    import_bundle(&bad, &store, &public, &[]).fails_with("ERR_BUNDLE_MALFORMED");
    assert!(!store.exists());
    let folder = dir.path().join("only-bad");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&bad, folder.join("full-1-full.tar.zst")).unwrap();
    let r = sm([
        "rebuild",
        "--bundles",
        p(&folder),
        "--store",
        p(&store),
        "--trust",
        p(&public),
    ]);
    assert_ne!(r.code, 0);
    assert!(!store.exists());
    // An existing store is left as it was (not removed) when a later import fails.
    let mirror = dir.path().join("mirror");
    import_bundle(&bundle, &mirror, &public, &[]).ok();
    let root = state_root(&mirror, "acme");
    import_bundle(&bad, &mirror, &public, &[]).fails_with("ERR_BUNDLE_MALFORMED");
    assert_eq!(state_root(&mirror, "acme"), root);
}

#[test]
fn finding_5_a_store_path_that_is_a_file_is_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-store");
    std::fs::write(&file, b"precious").unwrap();
    let input = stellamirror_tests::data("osv/go-old.jsonl");
    for args in [
        vec!["status", "--store", p(&file), "--tenant", "acme"],
        vec![
            "ingest",
            "--store",
            p(&file),
            "--tenant",
            "acme",
            "--source",
            "go",
            p(&input),
        ],
    ] {
        let r = sm(&args).fails_with("ERR_STORE_OPEN");
        assert!(r.stderr.contains("is a file, not a store directory"), "{}", r.stderr);
        assert!(!r.stderr.contains("Os {"), "debug formatting in {}", r.stderr);
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

/// Entries of `dir` that are not finished bundles (what a killed export can leave).
fn debris(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') || !n.ends_with("-full.tar.zst"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn finding_4_killed_exports_leave_no_debris_after_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keypair(dir.path(), "producer");
    let store = dir.path().join("store");
    ingest_sample(&store, "old");
    let out = dir.path().join("out");
    // Kill points spread over an export's whole life, as long as one takes on this machine
    // now (timed first, into another folder); a fixed pseudo-random sequence, so a failure
    // can be replayed.
    let started = std::time::Instant::now();
    export_full(
        &store,
        &dir.path().join("timed"),
        &key,
        "timed",
        "2026-09-01T00:00:00Z",
        &["--channel", "adhoc"],
    );
    let span_us = (started.elapsed().as_micros() as u64 * 6 / 5).max(20_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left_some = 0;
    for trial in 0..30 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay_us = x % span_us;
        let run = format!("killed-{trial}");
        let mut child = Command::new(bin())
            .args(["--quiet", "export", "full", "--store", p(&store), "--tenant", "acme"])
            .args(["--out", p(&out), "--run-id", &run, "--sign-key", p(&key)])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        left_some += usize::from(!debris(&out).is_empty());
    }
    assert!(left_some > 0, "no kill landed mid-export: the test means nothing");
    export_full(&store, &out, &key, "after", "2026-09-02T00:00:00Z", &[]);
    assert_eq!(
        debris(&out),
        Vec::<String>::new(),
        "the next export sweeps what killed ones left"
    );
}
