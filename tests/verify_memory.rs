//! Issue 15, "verify streams": `stellamirror verify` of a genuine full bundle of 600,000
//! records (300,000 small OSV advisories, raw and normalized) stays within a memory bound
//! that does not grow with the bundle, measured with `/usr/bin/time -v`. A verifier that
//! parsed whole index files and kept every subject's records until the Merkle roots were
//! computed needs several times the bound on this bundle (docs/benchmarks.md, "Verify
//! memory"); the streaming one keeps one shard and 256 roots per collection.
use std::io::Write;
use std::path::Path;

use stellamirror_tests::{export_full, ingest, keypair, measured, p};

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
    eprintln!("verify of {ADVISORIES} advisories: peak RSS {} KiB", m.peak_rss_kib);
    let r = m.run.ok().json();
    assert_eq!(r["bundles"][0]["recordsChecked"], 2 * ADVISORIES as u64, "{r}");
    assert_eq!(r["bundles"][0]["dataChecked"], true, "{r}");
    assert!(
        m.peak_rss_kib <= MAX_VERIFY_RSS_KIB,
        "verify peak RSS {} KiB over {} KiB",
        m.peak_rss_kib,
        MAX_VERIFY_RSS_KIB
    );
}
