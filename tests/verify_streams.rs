//! Issue 15, "verify streams". `stellamirror verify` of a genuine full bundle of 600,000
//! records (300,000 small OSV advisories, raw and normalized) stays within a memory bound
//! that does not grow with the bundle, and does not stage the bundle's data, measured with
//! `/usr/bin/time -v` and `/proc/PID/io`. A verifier that parsed whole index files and kept
//! every subject's records until the Merkle roots were computed needs several times the
//! bound on this bundle (docs/benchmarks.md, "Verify memory"); the streaming one keeps one
//! shard and 256 roots per collection. A bundle whose index and data disagree, re-signed, is
//! refused by the one-pass archive check as by the check of its extracted folder.
use std::io::Write;
use std::path::{Path, PathBuf};

use stellamirror_tests::{
    export_full, extract, ingest, ingest_sample, keypair, measured, openssl_sign, p, pack, sm, tool, Run,
};

/// The binary's own memory with room, not a share of the bundle: the bound holds whatever
/// the record count.
const MAX_VERIFY_RSS_KIB: u64 = 64 << 10;
const ADVISORIES: usize = 300_000;

/// `n` small OSV advisories, one per line.
fn advisories(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            r#"{{"schema_version":"1.6.0","id":"GHSA-{i:06}","modified":"2024-01-01T00:00:00Z","summary":"s","affected":[{{"package":{{"ecosystem":"npm","name":"p{}"}}}}]}}"#,
            i % 5000
        )
        .unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn verify_of_a_large_full_bundle_stays_within_its_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let input = dir.path().join("advisories.jsonl");
    advisories(&input, ADVISORIES);
    let store = dir.path().join("store");
    ingest(&store, "acme", &["--source", "osv"], &[&input]).ok();
    let bundle = export_full(
        &store,
        &dir.path().join("out"),
        &key,
        "full-1",
        "2026-08-01T00:00:00Z",
        &[],
    );
    std::fs::remove_dir_all(&store).unwrap();
    let m = measured(
        &["--json", "verify", p(&bundle), "--trust", p(&public)],
        &dir.path().join("tmp"),
    );
    let size = std::fs::metadata(&bundle).unwrap().len();
    eprintln!(
        "verify of {ADVISORIES} advisories ({size} bytes): peak RSS {} KiB, {} bytes written",
        m.peak_rss_kib, m.written
    );
    let r = m.run.ok().json();
    assert_eq!(r["bundles"][0]["recordsChecked"], 2 * ADVISORIES as u64, "{r}");
    assert_eq!(r["bundles"][0]["dataChecked"], true, "{r}");
    assert!(
        m.written < size / 4,
        "verify wrote {} bytes for a {size}-byte bundle: its data was staged",
        m.written
    );
    assert!(
        m.peak_rss_kib <= MAX_VERIFY_RSS_KIB,
        "verify peak RSS {} KiB over {} KiB",
        m.peak_rss_kib,
        MAX_VERIFY_RSS_KIB
    );
}

/// The sample's full bundle with `edit` applied to `indexes/advisories.index.json`, its
/// listing updated and `manifest.yaml` signed again; returns (archive, extracted folder).
fn inconsistent(dir: &Path, key: &Path, edit: impl FnOnce(String) -> String) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    ingest_sample(&store, "old");
    let bundle = export_full(&store, &dir.join("out"), key, "full-1", "2026-08-01T00:00:00Z", &[]);
    let top = extract(&bundle, &dir.join("x"));
    let index = top.join("indexes/advisories.index.json");
    let old = std::fs::read(&index).unwrap();
    let new = edit(String::from_utf8(old.clone()).unwrap());
    assert_ne!(new.as_bytes(), old.as_slice(), "the edit changed the index");
    std::fs::write(&index, &new).unwrap();
    std::fs::write(dir.join("old.json"), &old).unwrap();
    let (old_digest, new_digest) = (sha256_hex(&dir.join("old.json")), sha256_hex(&index));
    let manifest = top.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text
        .replace(&format!("sha256:{old_digest}"), &format!("sha256:{new_digest}"))
        .replace(&format!("bytes: {}\n", old.len()), &format!("bytes: {}\n", new.len()));
    std::fs::write(&manifest, text).unwrap();
    openssl_sign(key, &top, "manifest.yaml", "signatures/manifest.sig");
    let archive = dir.join("inconsistent-full.tar.zst");
    pack(&top, &archive);
    (archive, top)
}

fn sha256_hex(file: &Path) -> String {
    let r = tool("sha256sum", &[p(file)], file.parent().unwrap());
    assert_eq!(r.code, 0, "sha256sum: {}", r.stderr);
    r.stdout.split_whitespace().next().unwrap().to_string()
}

/// The first subject of `advisories.raw` in index text, and where the text of its `field`
/// value begins (just after `"field":`).
fn first_subject(text: &str, field: &str) -> (String, usize) {
    let at = text.find("\"advisories.raw\"").unwrap();
    let start = at + text[at..].find("\"subjects\":{\"").unwrap() + "\"subjects\":{\"".len();
    let end = start + text[start..].find('"').unwrap();
    let marker = format!("\"{field}\":");
    let value = end + text[end..].find(&marker).unwrap() + marker.len();
    (text[start..end].to_string(), value)
}

fn refused_alike(archive: &Path, folder: &Path, public: &Path, code: &str, names: &str) -> Run {
    let streamed = sm(["verify", p(archive), "--trust", p(public), "--json"]).fails_with(code);
    let staged = sm(["verify", p(folder), "--trust", p(public), "--json"]).fails_with(code);
    assert!(streamed.stdout.contains(names), "names {names}: {}", streamed.stdout);
    let message = |r: &Run| r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    let strip = |m: String, b: &Path| m.replace(&b.display().to_string(), "BUNDLE");
    assert_eq!(
        strip(message(&streamed), archive),
        strip(message(&staged), folder),
        "the archive and its folder are refused alike"
    );
    streamed
}

#[test]
fn an_index_root_that_differs_from_the_data_is_refused_naming_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let mut subject = String::new();
    let (archive, folder) = inconsistent(dir.path(), &key, |text| {
        let (s, at) = first_subject(&text, "root");
        subject = s;
        let hex = at + "\"blake3:".len();
        format!("{}{}{}", &text[..hex], "0".repeat(64), &text[hex + 64..])
    });
    refused_alike(&archive, &folder, &public, "ERR_STATE_ROOT_MISMATCH", &subject);
}

#[test]
fn an_index_record_id_that_differs_from_the_data_is_refused_naming_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let mut subject = String::new();
    let (archive, folder) = inconsistent(dir.path(), &key, |text| {
        let (s, at) = first_subject(&text, "records");
        subject = s;
        let id = at + "{\"".len();
        format!("{}renamed-{}", &text[..id], &text[id..])
    });
    let r = refused_alike(&archive, &folder, &public, "ERR_BUNDLE_MALFORMED", &subject);
    assert!(r.stdout.contains("index records differ from the data"), "{}", r.stdout);
}
