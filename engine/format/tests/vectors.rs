//! Test vectors for a second implementation (tests/vectors/README.md): the Merkle hashes
//! of `merkle.json`, and a small format-3 bundle that must verify and produce the roots
//! in `bundle.json` — checked here with this crate alone (no database).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stellamirror_format::bundle::archive::{stage_archive, Limits};
use stellamirror_format::bundle::signing::TrustedKey;
use stellamirror_format::bundle::verify::{gate, verify_records, verify_staged};
use stellamirror_format::ids::ObjectId;
use stellamirror_format::merkle::{empty_shard_root, kind_root, leaf_hash, shard_root, state_root, subject_root};
use stellamirror_format::merkle::{KindRef, SubjectRef};
use stellamirror_format::model::{shard_of, Collection, Leaf};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// `merkle.json`: inputs and the hashes they must give (all `blake3:<hex>`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MerkleVectors {
    /// Record documents (UTF-8 text) and their object ids (plain blake3 of the bytes).
    objects: Vec<(String, String)>,
    /// (id, object id) → leaf hash.
    leaves: Vec<(String, String, String)>,
    subject: String,
    /// Root of `subject` over the leaves above, in that (id) order.
    subject_root: String,
    /// The subject's shard: the first byte of blake3(subject).
    shard: u8,
    /// Shard root over the one subject.
    shard_root: String,
    /// Roots of the empty shards 00 and ff.
    empty_shard_roots: (String, String),
    /// Kind root of `vex.raw` whose only non-empty shard is `shard`.
    kind_root: String,
    tenant: String,
    /// State root of `tenant`: every collection empty but `vex.raw`.
    state_root: String,
}

fn compute() -> MerkleVectors {
    let docs = [
        r#"{"id":"GO-2020-0001","modified":"2021-04-14T20:04:52Z"}"#,
        r#"{"id":"GO-2020-0002"}"#,
    ];
    let objects: Vec<(String, ObjectId)> = docs
        .iter()
        .map(|d| (d.to_string(), ObjectId::of(d.as_bytes())))
        .collect();
    let leaves: Vec<Leaf> = ["GO-2020-0001", "GO-2020-0002"]
        .iter()
        .zip(&objects)
        .map(|(id, (_, o))| Leaf {
            id: id.to_string(),
            object: *o,
            modified: None,
        })
        .collect();
    let subject = "pkg:golang/github.com/gin-gonic/gin";
    let sroot = subject_root(subject, &leaves);
    let shard = shard_of(subject);
    let refs = [SubjectRef {
        subject: subject.into(),
        root: sroot,
        records: 2,
    }];
    let shroot = shard_root(shard, &refs);
    let shards: Vec<_> = (0..=255u8)
        .map(|s| if s == shard { shroot } else { empty_shard_root(s) })
        .collect();
    let kroot = kind_root(Collection::VexRaw, &shards);
    let empty: Vec<_> = (0..=255u8).map(empty_shard_root).collect();
    let kinds: Vec<KindRef> = Collection::ALL
        .into_iter()
        .map(|c| KindRef {
            collection: c,
            root: if c == Collection::VexRaw {
                kroot
            } else {
                kind_root(c, &empty)
            },
            records: 0,
            subjects: 0,
        })
        .collect();
    MerkleVectors {
        objects: objects.iter().map(|(d, o)| (d.clone(), o.to_prefixed())).collect(),
        leaves: leaves
            .iter()
            .map(|l| {
                (
                    l.id.clone(),
                    l.object.to_prefixed(),
                    leaf_hash(&l.id, &l.object).to_prefixed(),
                )
            })
            .collect(),
        subject: subject.into(),
        subject_root: sroot.to_prefixed(),
        shard,
        shard_root: shroot.to_prefixed(),
        empty_shard_roots: (empty_shard_root(0).to_prefixed(), empty_shard_root(255).to_prefixed()),
        kind_root: kroot.to_prefixed(),
        tenant: "acme".into(),
        state_root: state_root("acme", &kinds).to_prefixed(),
    }
}

#[test]
fn merkle_vectors_hold() {
    let path = vectors().join("merkle.json");
    let computed = compute();
    if std::env::var_os("VECTORS_WRITE").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&computed).unwrap() + "\n").unwrap();
    }
    let recorded: MerkleVectors = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(computed, recorded);
}

/// `bundle.json`: what verifying `vector-full-full.tar.zst` must give.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleVector {
    bundle: String,
    public_key: String,
    state_root: String,
    kind_roots: std::collections::BTreeMap<String, String>,
    records: u64,
}

#[test]
fn the_vector_bundle_verifies_to_its_roots_without_a_database() {
    let v: BundleVector = serde_json::from_slice(&std::fs::read(vectors().join("bundle.json")).unwrap()).unwrap();
    let pem = std::fs::read_to_string(vectors().join(&v.public_key)).unwrap();
    let trust = vec![TrustedKey::from_pem(&pem).expect("public key")];
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("s");
    let staged = stage_archive(&vectors().join(&v.bundle), &staging, &Limits::default(), &mut |g| {
        gate(&trust, g)
    })
    .expect("stages");
    let mut verified = verify_staged(&staged, &trust).expect("signatures and listing");
    verify_records(&staged, &mut verified, &|_, b| Ok(b)).expect("records and roots");
    assert!(verified.data_checked);
    assert_eq!(verified.records_checked, v.records);
    assert_eq!(verified.manifest.state_root, v.state_root);
    assert_eq!(verified.manifest.kind_roots, v.kind_roots);
}
