//! The streaming verifier keeps every content check of the whole-index one: the vector
//! bundle is staged and verified, then one staged file is changed (after the digests were
//! checked, as a verifier bug or a producer's inconsistent bundle would leave it) and the
//! content check must refuse it naming the subject and what differs. The one-pass archive
//! check (`verify_archive`) gives the same counts without staging the data.
use std::path::{Path, PathBuf};

use serde_json::Value;
use stellamirror_format::bundle::archive::{stage_archive, Limits, Staged};
use stellamirror_format::bundle::error::BundleError;
use stellamirror_format::bundle::signing::TrustedKey;
use stellamirror_format::bundle::verify::{gate, verify_records, verify_staged, Verified};

const VEX_INDEX: &str = "indexes/vex.index.json";
const FINDINGS_INDEX: &str = "indexes/findings.index.json";
const PROXY: &str = "pkg:golang/github.com/brancz/kube-rbac-proxy";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn staged(dir: &Path) -> (Staged, Verified) {
    let pem = std::fs::read_to_string(vectors().join("producer.pub.pem")).unwrap();
    let trust = vec![TrustedKey::from_pem(&pem).unwrap()];
    let bundle = vectors().join("vector-full-full.tar.zst");
    let staged = stage_archive(&bundle, &dir.join("s"), &Limits::default(), &mut |g| gate(&trust, g)).unwrap();
    let verified = verify_staged(&staged, &trust).unwrap();
    (staged, verified)
}

/// Verify the vector bundle's content after `edit` changed index file `index`.
fn with_index_edit(index: &str, edit: impl FnOnce(&mut Value)) -> BundleError {
    let dir = tempfile::tempdir().unwrap();
    let (staged, mut verified) = staged(dir.path());
    let path = staged.root.join(index);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    verify_records(&staged, &mut verified, &|_, b| Ok(b)).unwrap_err()
}

fn subjects<'a>(doc: &'a mut Value, collection: &str) -> &'a mut serde_json::Map<String, Value> {
    doc["collections"][collection]["subjects"].as_object_mut().unwrap()
}

#[test]
fn the_unchanged_vector_bundle_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (staged, mut verified) = staged(dir.path());
    verify_records(&staged, &mut verified, &|_, b| Ok(b)).unwrap();
    assert!(verified.records_checked > 0);
}

#[test]
fn a_record_missing_from_the_index_names_the_subject() {
    let e = with_index_edit(VEX_INDEX, |d| {
        let recs = subjects(d, "vex.normalized")[PROXY]["records"].as_object_mut().unwrap();
        let first = recs.keys().next().unwrap().clone();
        recs.remove(&first);
    });
    assert!(
        matches!(&e, BundleError::Malformed { path, reason } if path == VEX_INDEX && reason.contains(PROXY) && reason.contains("index records differ")),
        "{e}"
    );
}

#[test]
fn a_changed_subject_root_is_a_root_mismatch_naming_the_subject() {
    let e = with_index_edit(VEX_INDEX, |d| {
        subjects(d, "vex.raw")[PROXY]["root"] = format!("blake3:{}", "00".repeat(32)).into();
    });
    assert!(
        matches!(&e, BundleError::RootMismatch { what, .. } if what.contains(PROXY) && what.contains("vex.raw")),
        "{e}"
    );
    assert_eq!(e.code(), "ERR_STATE_ROOT_MISMATCH");
}

#[test]
fn a_subject_missing_from_the_index_is_named() {
    let e = with_index_edit(VEX_INDEX, |d| {
        subjects(d, "vex.raw").remove(PROXY);
    });
    assert!(
        matches!(&e, BundleError::Malformed { reason, .. } if reason.contains(PROXY) && reason.contains("missing from the index")),
        "{e}"
    );
}

#[test]
fn an_index_subject_without_data_is_named() {
    let e = with_index_edit(VEX_INDEX, |d| {
        let s = subjects(d, "vex.raw");
        let mut extra = s[PROXY].clone();
        extra["root"] = Value::Null;
        s.insert("pkg:npm/not-in-the-data".into(), extra);
    });
    assert!(
        matches!(&e, BundleError::Malformed { reason, .. } if reason.contains("pkg:npm/not-in-the-data") && reason.contains("none in the data")),
        "{e}"
    );
}

#[test]
fn a_single_file_collection_is_checked_against_its_index_too() {
    let e = with_index_edit(FINDINGS_INDEX, |d| {
        let recs = subjects(d, "consensus")[PROXY]["records"].as_object_mut().unwrap();
        let last = recs.keys().next_back().unwrap().clone();
        recs.remove(&last);
    });
    assert!(
        matches!(&e, BundleError::Malformed { path, reason } if path == FINDINGS_INDEX && reason.contains(PROXY) && reason.contains("consensus")),
        "{e}"
    );
}

#[test]
fn a_subject_listed_twice_in_its_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (staged, mut verified) = staged(dir.path());
    let path = staged.root.join(VEX_INDEX);
    let text = std::fs::read_to_string(&path).unwrap();
    // The first subject entry of vex.raw, written a second time right after itself.
    let key = format!("\"{PROXY}\":");
    let start = text.find(&key).unwrap();
    let end = start + text[start..].find("}},").unwrap() + 3;
    let twice = format!("{}{}{}", &text[..end], &text[start..end], &text[end..]);
    std::fs::write(&path, twice).unwrap();
    let e = verify_records(&staged, &mut verified, &|_, b| Ok(b)).unwrap_err();
    assert!(
        matches!(&e, BundleError::Malformed { reason, .. } if reason.contains("listed twice or out of order")),
        "{e}"
    );
}

#[test]
fn a_record_whose_document_changed_is_a_record_hash_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (staged, mut verified) = staged(dir.path());
    let path = staged.root.join("data/raw/vex/1c.jsonl.zst");
    let plain = zstd::decode_all(std::fs::read(&path).unwrap().as_slice()).unwrap();
    let text = String::from_utf8(plain).unwrap();
    let changed = text.replacen("\"doc\":{", "\"doc\":{\"x\":1,", 1);
    std::fs::write(&path, zstd::encode_all(changed.as_bytes(), 3).unwrap()).unwrap();
    let e = verify_records(&staged, &mut verified, &|_, b| Ok(b)).unwrap_err();
    assert!(
        matches!(&e, BundleError::DigestMismatch { path, what, .. } if path.starts_with("data/raw/vex/1c.jsonl.zst:") && what == "record hash"),
        "{e}"
    );
}

#[test]
fn index_records_with_and_without_hashes_in_one_collection_are_refused() {
    let e = with_index_edit(VEX_INDEX, |d| {
        let recs = subjects(d, "vex.normalized")[PROXY]["records"].as_object_mut().unwrap();
        let first = recs.values_mut().next().unwrap();
        first["hash"] = format!("blake3:{}", "00".repeat(32)).into();
    });
    assert!(
        matches!(&e, BundleError::Malformed { reason, .. } if reason.contains("vex.normalized") && reason.contains("carry a hash")),
        "{e}"
    );
}

#[test]
fn the_archive_is_verified_in_one_pass_without_staging_its_data() {
    use stellamirror_format::bundle::verify_archive::verify_archive;
    let pem = std::fs::read_to_string(vectors().join("producer.pub.pem")).unwrap();
    let trust = vec![TrustedKey::from_pem(&pem).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let bundle = vectors().join("vector-full-full.tar.zst");
    let (streamed, v) = verify_archive(&bundle, &dir.path().join("s"), &trust, &Limits::default())
        .unwrap()
        .expect("a plaintext format-3 bundle is streamed");
    let (staged_bundle, mut staged_v) = staged(&dir.path().join("t"));
    verify_records(&staged_bundle, &mut staged_v, &|_, b| Ok(b)).unwrap();
    assert!(v.data_checked);
    assert_eq!(v.records_checked, staged_v.records_checked);
    assert!(!streamed.root.join("data").exists(), "no data file was staged");
    assert!(!streamed.root.join("indexes").exists(), "no index file was staged");
    assert!(
        streamed.files.keys().any(|p| p.starts_with("data/")),
        "every entry was hashed"
    );
    // A format-2 bundle is left to the staged path, having read only its manifest.
    let f2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/bundles/format-2");
    let pem2 = std::fs::read_to_string(f2.join("producer.pub.pem")).unwrap();
    let trust2 = vec![TrustedKey::from_pem(&pem2).unwrap()];
    let r = verify_archive(
        &f2.join("v2-full-full.tar.zst"),
        &dir.path().join("v"),
        &trust2,
        &Limits::default(),
    );
    assert!(r.unwrap().is_none(), "format 2 is staged");
}
