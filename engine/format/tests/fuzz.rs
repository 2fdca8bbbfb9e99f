//! Mutation fuzzing of the bundle parsers on stable Rust: real bundles (the format-2
//! fixture in tests/data/bundles/format-2) are mutated at random (byte flips, byte
//! insertions and deletions, truncation, spliced runs) and every parser must return
//! `Ok` or an error — never panic, never hang. Seeded and deterministic: a failure
//! prints the seed and case.
//!
//! `make test` runs a short pass (`FUZZ_CASES`, default 200 per target). A longer run:
//! `FUZZ_CASES=200000 FUZZ_SEED=7 cargo test --release -p stellamirror-format --test fuzz`
//! (docs/bundle-format.md, "Fuzzing", reports how long it ran).
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stellamirror_format::bundle::archive::{stage_archive, Limits};
use stellamirror_format::bundle::format::DiffManifest;
use stellamirror_format::bundle::index_stream::stream_index;
use stellamirror_format::bundle::provenance::Statement;
use stellamirror_format::bundle::records::{decompress, parse_lines, IndexFile};
use stellamirror_format::bundle::verify::parse_manifest;
use stellamirror_format::encryption::{BundleOpener, EncryptionMode, Identities};
use stellamirror_format::model::Collection;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/bundles/format-2")
}

/// Every file of a bundle (path below the top folder → bytes).
fn files_of(bundle: &str) -> BTreeMap<String, Vec<u8>> {
    let f = std::fs::File::open(fixture_dir().join(bundle)).expect("fixture");
    let mut tar = tar::Archive::new(zstd::Decoder::new(f).expect("zstd"));
    let mut out = BTreeMap::new();
    for e in tar.entries().expect("tar") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().to_string();
        let rel = path.split_once('/').map(|(_, r)| r.to_string()).unwrap_or(path);
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("read");
        out.insert(rel, b);
    }
    out
}

fn cases() -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One random mutation of `input` (1–8 edits).
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.gen_range(1..=8) {
        let at = if b.is_empty() { 0 } else { rng.gen_range(0..b.len()) };
        match rng.gen_range(0..6) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.gen_range(0..8),
            1 if !b.is_empty() => b[at] = rng.gen(),
            2 => b.insert(at, *b"{}[]\",:0\\\n".get(rng.gen_range(0..10)).expect("in range")),
            3 if !b.is_empty() => {
                b.remove(at);
            }
            4 => b.truncate(at),
            _ if b.len() > 2 => {
                // Copy a run from elsewhere in the input over this place.
                let from = rng.gen_range(0..b.len());
                let n = rng.gen_range(1..=16.min(b.len() - from));
                let run = b[from..from + n].to_vec();
                let end = (at + n).min(b.len());
                b.splice(at..end, run);
            }
            _ => {}
        }
    }
    b
}

/// Run `target` on `cases()` mutations of `input`; a panic names the seed and case.
fn fuzz(name: &str, input: &[u8], target: &mut dyn FnMut(&[u8])) {
    target(input);
    let base = seed();
    for case in 0..cases() {
        let mut rng = StdRng::seed_from_u64(base.wrapping_mul(1_000_003).wrapping_add(case));
        let m = mutate(&mut rng, input);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&m)));
        assert!(r.is_ok(), "{name}: panicked on FUZZ_SEED={base} case {case}");
    }
}

#[test]
fn manifest_parser_never_panics() {
    let f = files_of("v2-full-full.tar.zst");
    fuzz("manifest.yaml", &f["manifest.yaml"], &mut |b| {
        let _ = parse_manifest(b);
    });
}

#[test]
fn diff_parser_never_panics() {
    let f = files_of("v2-delta-delta.tar.zst");
    fuzz("manifest.diff.json", &f["manifest.diff.json"], &mut |b| {
        let _ = serde_json::from_slice::<DiffManifest>(b);
    });
}

#[test]
fn index_parser_never_panics() {
    let f = files_of("v2-full-full.tar.zst");
    for p in [
        "indexes/vex.index.json",
        "indexes/sbom.index.json",
        "indexes/advisories.index.json",
    ] {
        fuzz(p, &f[p], &mut |b| {
            let _ = IndexFile::parse(p, b);
            // The verifier's streaming reader of the same files.
            let _ = stream_index(p, b, &mut |_, _, _| Ok(()));
        });
    }
}

#[test]
fn provenance_parser_never_panics() {
    for bundle in ["v2-full-full.tar.zst", "v2-aes-full.tar.zst"] {
        let f = files_of(bundle);
        fuzz("provenance.json", &f["provenance.json"], &mut |b| {
            let _ = Statement::parse(b);
        });
    }
}

#[test]
fn record_line_reader_never_panics() {
    let f = files_of("v2-full-full.tar.zst");
    let (path, zst) = f
        .iter()
        .find(|(p, _)| p.starts_with("data/raw/vex/"))
        .expect("a VEX shard");
    let shard = u8::from_str_radix(&path["data/raw/vex/".len()..][..2], 16).expect("shard");
    let plain = decompress(path, zst).expect("fixture decompresses");
    fuzz("record lines", &plain, &mut |b| {
        let _ = parse_lines(path, Collection::VexRaw, Some(shard), b, &mut |_, _, _| Ok(()));
    });
    fuzz("zstd data file", zst, &mut |b| {
        if let Ok(d) = decompress(path, b) {
            let _ = parse_lines(path, Collection::VexRaw, Some(shard), &d, &mut |_, _, _| Ok(()));
        }
    });
}

#[test]
fn aes_gcm_segment_reader_never_panics_and_refuses_any_change() {
    let f = files_of("v2-aes-full.tar.zst");
    let statement = Statement::parse(&f["provenance.json"]).expect("fixture provenance");
    let identities = Identities::from_files(&[fixture_dir().join("mirror.age")]).expect("identity");
    let opener = BundleOpener::new(
        EncryptionMode::AesGcm,
        statement.encryption().recipients.wrapped_keys(),
        &identities,
    )
    .expect("the fixture identity opens the data key");
    let (path, sealed) = f.iter().find(|(p, _)| p.starts_with("data/")).expect("a sealed file");
    opener.open(path, sealed).expect("fixture opens");
    fuzz("aes-gcm segments", sealed, &mut |b| {
        let r = opener.open(path, b);
        // Authenticated: anything but the original bytes is refused.
        assert!(b != sealed.as_slice() || r.is_ok());
        assert!(b == sealed.as_slice() || r.is_err(), "a changed file opened");
    });
}

/// Stage `archive_bytes` (written to a file in `dir`) with a gate that accepts whatever
/// manifest parses: no signature check, so the reader's own entry rules are exercised.
fn stage(dir: &Path, n: u64, archive_bytes: &[u8]) {
    let archive = dir.join("a.tar.zst");
    std::fs::write(&archive, archive_bytes).expect("write");
    let staging = dir.join(format!("s{n}"));
    let _ = stage_archive(&archive, &staging, &Limits::default(), &mut |g| {
        parse_manifest(g.manifest).map(|m| m.artifacts)
    });
    let _ = std::fs::remove_dir_all(&staging);
}

#[test]
fn archive_reader_never_panics() {
    let bundle = std::fs::read(fixture_dir().join("v2-delta-delta.tar.zst")).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0u64;
    fuzz("archive (compressed bytes)", &bundle, &mut |b| {
        n += 1;
        stage(dir.path(), n, b);
    });
    // The tar stream itself, mutated and compressed again (a mutated frame mostly stops
    // at the zstd checksum).
    let tar = zstd::decode_all(bundle.as_slice()).expect("fixture");
    fuzz("archive (tar stream)", &tar, &mut |b| {
        n += 1;
        stage(dir.path(), n, &zstd::encode_all(b, 1).expect("zstd"));
    });
}

/// The verifier's content check (streamed index files, shard-by-shard data) on a staged
/// genuine bundle whose index or single-file data is mutated after staging.
#[test]
fn content_check_never_panics() {
    use stellamirror_format::bundle::signing::TrustedKey;
    use stellamirror_format::bundle::verify::{gate, verify_records, verify_staged};
    let pem = std::fs::read_to_string(fixture_dir().join("producer.pub.pem")).expect("key");
    let trust = vec![TrustedKey::from_pem(&pem).expect("key")];
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = fixture_dir().join("v2-full-full.tar.zst");
    let staged = stage_archive(&bundle, &dir.path().join("s"), &Limits::default(), &mut |g| {
        gate(&trust, g)
    })
    .expect("fixture stages");
    verify_staged(&staged, &trust).expect("fixture verifies");
    for rel in ["indexes/vex.index.json", "data/consensus/vex_consensus.jsonl.zst"] {
        let path = staged.root.join(rel);
        let original = std::fs::read(&path).expect("staged file");
        // The single file is mutated as text and compressed again (else zstd refuses it).
        let input = if rel.ends_with(".zst") {
            zstd::decode_all(original.as_slice()).expect("zstd")
        } else {
            original.clone()
        };
        fuzz(rel, &input, &mut |b| {
            let bytes = if rel.ends_with(".zst") {
                zstd::encode_all(b, 1).expect("zstd")
            } else {
                b.to_vec()
            };
            std::fs::write(&path, bytes).expect("write");
            // The listing was checked at staging; the staged file is not hashed again.
            let mut v = verify_staged(&staged, &trust).expect("listing");
            let _ = verify_records(&staged, &mut v, &|_, b| Ok(b));
        });
        std::fs::write(&path, original).expect("restore");
    }
}
