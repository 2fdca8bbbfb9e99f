//! Unit tests of bundle encryption. The interop tests drive the real `age` / `age-keygen`
//! binaries (Debian package `age`) and fail, not skip, when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use age::x25519;

use super::aes_gcm_segments::{self, DataKey, HEADER_LEN, SEGMENT_SIZE, TAG_LEN};
use super::*;

mod keys;

const SEG: usize = SEGMENT_SIZE as usize;
const ENC_SEG: usize = SEG + TAG_LEN;
const PATH: &str = "data/raw/advisories/0a.jsonl.zst";

fn keypair() -> (x25519::Identity, String) {
    let id = x25519::Identity::generate();
    let r = id.to_public().to_string();
    (id, r)
}

fn identities(v: &[&x25519::Identity]) -> Identities {
    Identities::from_vec(v.iter().map(|i| (*i).clone()).collect())
}

fn recipients(v: &[&str]) -> Recipients {
    Recipients::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

/// Deterministic pseudo-random bytes (incompressible, no repeated segments).
fn sample(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"stellamirror encryption test")
        .finalize_xof()
        .fill(&mut buf);
    buf
}

fn sealer(mode: EncryptionMode, rs: &[&str]) -> BundleSealer {
    BundleSealer::new(mode, recipients(rs)).unwrap()
}

fn opener(sealer: &BundleSealer, ids: &[&x25519::Identity]) -> BundleOpener {
    BundleOpener::new(sealer.mode(), &sealer.wrapped_keys(), &identities(ids)).unwrap()
}

/// The opener of a 1-recipient aes-gcm bundle plus a sealed ~200 KiB file (4 segments).
fn aes_fixture() -> (BundleOpener, Vec<u8>, Vec<u8>) {
    let (id, r) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r]);
    let pt = sample(200 * 1024);
    let ct = s.seal(PATH, &pt).unwrap();
    assert_eq!(ct.len(), HEADER_LEN + pt.len() + 4 * TAG_LEN);
    (opener(&s, &[&id]), pt, ct)
}

fn assert_decrypt_failed_naming_path(err: &DecryptError, path: &str) {
    assert_eq!(err.code(), ERR_DECRYPT_FAILED, "{err}");
    assert!(err.to_string().contains(path), "error does not name {path}: {err}");
    assert!(!err.hint().is_empty());
}

fn require_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the `{name}` command-line tool is required by this interop test but was not found in \
         /usr/bin, /usr/local/bin or /bin; install the Debian package `age` (apt-get install age)"
    );
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------- round trips

#[test]
fn roundtrip_age_one_recipient() {
    let (id, r) = keypair();
    let s = sealer(EncryptionMode::Age, &[&r]);
    let o = opener(&s, &[&id]);
    for len in [0, 1, 1000, SEG, SEG + 1, 200 * 1024] {
        let pt = sample(len);
        let ct = s.seal(PATH, &pt).unwrap();
        assert!(ct.starts_with(b"age-encryption.org/v1\n"), "binary age header expected");
        if len > 0 {
            let tail = len.min(64);
            assert_ne!(
                &ct[ct.len() - 16 - tail..ct.len() - 16],
                &pt[len - tail..],
                "not encrypted"
            );
        }
        assert_eq!(o.open(PATH, &ct).unwrap(), pt, "len {len}");
    }
}

#[test]
fn roundtrip_age_two_recipients_each_identity_alone_opens() {
    let (id1, r1) = keypair();
    let (id2, r2) = keypair();
    let s = sealer(EncryptionMode::Age, &[&r1, &r2]);
    let pt = sample(150_000);
    let ct = s.seal(PATH, &pt).unwrap();
    for id in [&id1, &id2] {
        assert_eq!(opener(&s, &[id]).open(PATH, &ct).unwrap(), pt);
    }
}

#[test]
fn roundtrip_aes_gcm_one_recipient_all_boundary_sizes() {
    let (id, r) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r]);
    let o = opener(&s, &[&id]);
    for len in [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 200 * 1024] {
        let pt = sample(len);
        let ct = s.seal(PATH, &pt).unwrap();
        assert_eq!(ct.len() as u64, aes_gcm_sealed_len(len as u64), "len {len}");
        assert_eq!(o.open(PATH, &ct).unwrap(), pt, "len {len}");
    }
}

#[test]
fn roundtrip_aes_gcm_two_recipients_each_identity_alone_opens() {
    let (id1, r1) = keypair();
    let (id2, r2) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r1, &r2]);
    let pt = sample(200 * 1024);
    let ct = s.seal(PATH, &pt).unwrap();
    for id in [&id1, &id2] {
        assert_eq!(opener(&s, &[id]).open(PATH, &ct).unwrap(), pt);
    }
}

#[test]
fn empty_plaintext_roundtrips_in_both_modes() {
    let (id, r) = keypair();
    for mode in [EncryptionMode::Age, EncryptionMode::AesGcm] {
        let s = sealer(mode, &[&r]);
        let ct = s.seal(PATH, b"").unwrap();
        if mode == EncryptionMode::AesGcm {
            assert_eq!(ct.len(), HEADER_LEN + TAG_LEN, "one empty last segment");
        }
        assert_eq!(opener(&s, &[&id]).open(PATH, &ct).unwrap(), b"");
    }
}

#[test]
fn seal_is_sync_and_parallel_seals_roundtrip() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BundleSealer>();
    assert_send_sync::<BundleOpener>();
    use rayon::prelude::*;
    let (id, r) = keypair();
    for mode in [EncryptionMode::Age, EncryptionMode::AesGcm] {
        let s = sealer(mode, &[&r]);
        let o = opener(&s, &[&id]);
        let files: Vec<(String, Vec<u8>)> = (0..32).map(|i| (format!("data/f{i}.bin"), sample(i * 7919))).collect();
        let sealed: Vec<Vec<u8>> = files.par_iter().map(|(p, pt)| s.seal(p, pt).unwrap()).collect();
        for ((p, pt), ct) in files.iter().zip(&sealed) {
            assert_eq!(&o.open(p, ct).unwrap(), pt);
        }
    }
}

// ---------------------------------------------------------------- wrong keys

#[test]
fn wrong_identity_age_fails_with_decrypt_failed() {
    let (_, r) = keypair();
    let (other, _) = keypair();
    let s = sealer(EncryptionMode::Age, &[&r]);
    let ct = s.seal(PATH, b"secret").unwrap();
    let err = opener(&s, &[&other]).open(PATH, &ct).unwrap_err();
    assert!(matches!(err, DecryptError::FileNoMatchingIdentity { .. }), "{err:?}");
    assert_decrypt_failed_naming_path(&err, PATH);
}

#[test]
fn wrong_identity_aes_gcm_fails_with_no_matching_identity() {
    let (_, r) = keypair();
    let (other, _) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r]);
    let err = BundleOpener::new(EncryptionMode::AesGcm, &s.wrapped_keys(), &identities(&[&other])).unwrap_err();
    assert!(matches!(err, DecryptError::NoMatchingIdentity { .. }), "{err:?}");
    assert_eq!(err.code(), ERR_DECRYPT_FAILED);
    assert!(err.to_string().contains(&r), "lists the bundle's recipients: {err}");
}

#[test]
fn file_from_another_aes_gcm_bundle_fails() {
    let (id, r) = keypair();
    let a = sealer(EncryptionMode::AesGcm, &[&r]);
    let b = sealer(EncryptionMode::AesGcm, &[&r]);
    let ct_b = b.seal(PATH, &sample(1000)).unwrap();
    let err = opener(&a, &[&id]).open(PATH, &ct_b).unwrap_err();
    assert!(
        matches!(err, DecryptError::SegmentAuthFailed { segment: 0, .. }),
        "{err:?}"
    );
    assert_decrypt_failed_naming_path(&err, PATH);
}

#[test]
fn missing_or_mismatched_key_metadata_is_refused() {
    let (id, r) = keypair();
    let ids = identities(&[&id]);
    let aes = sealer(EncryptionMode::AesGcm, &[&r]);
    let e = BundleOpener::new(EncryptionMode::AesGcm, &[], &ids).unwrap_err();
    assert!(matches!(e, DecryptError::MissingWrappedKeys));
    let e = BundleOpener::new(EncryptionMode::Age, &aes.wrapped_keys(), &ids).unwrap_err();
    assert!(matches!(e, DecryptError::UnexpectedWrappedKeys));
    let e = BundleOpener::new(EncryptionMode::AesGcm, &aes.wrapped_keys(), &Identities::default()).unwrap_err();
    assert!(matches!(e, DecryptError::NoIdentities));
    let mut bad = aes.wrapped_keys();
    bad[0].wrapped_key = "!!not base64!!".to_string();
    let e = BundleOpener::new(EncryptionMode::AesGcm, &bad, &ids).unwrap_err();
    assert!(matches!(e, DecryptError::WrappedKeyInvalid { .. }), "{e:?}");
    for e in [
        BundleOpener::new(EncryptionMode::AesGcm, &[], &ids).unwrap_err(),
        BundleOpener::new(EncryptionMode::AesGcm, &bad, &ids).unwrap_err(),
    ] {
        assert_eq!(e.code(), ERR_DECRYPT_FAILED);
    }
}

#[test]
fn malformed_wrapped_key_of_another_recipient_does_not_block_ours() {
    let (id, r) = keypair();
    let (_, r2) = keypair();
    let s = sealer(EncryptionMode::AesGcm, &[&r, &r2]);
    let mut wrapped = s.wrapped_keys();
    for w in &mut wrapped {
        if w.recipient == r2 {
            w.wrapped_key = "AAAA".to_string();
        }
    }
    let ct = s.seal(PATH, b"x").unwrap();
    let o = BundleOpener::new(EncryptionMode::AesGcm, &wrapped, &identities(&[&id])).unwrap();
    assert_eq!(o.open(PATH, &ct).unwrap(), b"x");
}

// ---------------------------------------------------------------- tampering (aes-gcm)

#[test]
fn aes_gcm_flipped_byte_anywhere_fails() {
    let (o, _, ct) = aes_fixture();
    // magic, version, segment size, salt, prefix, segment 0 body, tag of segment 1, last byte.
    for pos in [
        0,
        8,
        12,
        20,
        50,
        HEADER_LEN + 5,
        HEADER_LEN + 2 * ENC_SEG - 1,
        ct.len() - 1,
    ] {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        let err = o.open(PATH, &bad).unwrap_err();
        assert_decrypt_failed_naming_path(&err, PATH);
    }
}

#[test]
fn aes_gcm_truncated_file_drop_last_segment_fails() {
    let (o, _, ct) = aes_fixture();
    let without_last = &ct[..HEADER_LEN + 3 * ENC_SEG];
    let err = o.open(PATH, without_last).unwrap_err();
    assert!(
        matches!(
            err,
            DecryptError::Truncated {
                detail: "final segment missing",
                ..
            }
        ),
        "{err:?}"
    );
    assert_decrypt_failed_naming_path(&err, PATH);
    // Cut in the middle of the last segment, and just after the header.
    for cut in [ct.len() - 1, ct.len() - 100, HEADER_LEN + 1] {
        let err = o.open(PATH, &ct[..cut]).unwrap_err();
        assert_decrypt_failed_naming_path(&err, PATH);
    }
}

#[test]
fn aes_gcm_swapped_segments_fail() {
    let (o, _, ct) = aes_fixture();
    let seg = |i: usize| HEADER_LEN + i * ENC_SEG..HEADER_LEN + (i + 1) * ENC_SEG;
    let mut swapped = ct.clone();
    swapped[seg(0)].copy_from_slice(&ct[seg(1)]);
    swapped[seg(1)].copy_from_slice(&ct[seg(0)]);
    let err = o.open(PATH, &swapped).unwrap_err();
    assert!(
        matches!(err, DecryptError::SegmentAuthFailed { segment: 0, .. }),
        "{err:?}"
    );
    assert_decrypt_failed_naming_path(&err, PATH);
    // A full segment duplicated over the next one also fails.
    let mut dup = ct.clone();
    dup[seg(2)].copy_from_slice(&ct[seg(1)]);
    let err = o.open(PATH, &dup).unwrap_err();
    assert!(
        matches!(err, DecryptError::SegmentAuthFailed { segment: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn aes_gcm_file_swapped_to_another_path_fails() {
    let (o, pt, ct) = aes_fixture();
    let other = "data/raw/advisories/0b.jsonl.zst";
    let err = o.open(other, &ct).unwrap_err();
    assert!(
        matches!(err, DecryptError::SegmentAuthFailed { segment: 0, .. }),
        "{err:?}"
    );
    assert_decrypt_failed_naming_path(&err, other);
    assert_eq!(o.open(PATH, &ct).unwrap(), pt, "still opens under its own path");
}

#[test]
fn aes_gcm_empty_and_short_files_fail() {
    let (o, _, ct) = aes_fixture();
    let cases: [&[u8]; 6] = [
        b"",
        b"S",
        b"SMENCGCM",
        &ct[..HEADER_LEN - 1],
        &ct[..HEADER_LEN],
        &ct[..HEADER_LEN + TAG_LEN - 1],
    ];
    for (i, bad) in cases.iter().enumerate() {
        let err = o.open(PATH, bad).unwrap_err();
        assert!(matches!(err, DecryptError::Truncated { .. }), "case {i}: {err:?}");
        assert_decrypt_failed_naming_path(&err, PATH);
    }
    let err = o
        .open(PATH, b"plain text, not encrypted at all......................")
        .unwrap_err();
    assert!(matches!(err, DecryptError::Malformed { .. }), "{err:?}");
    assert_decrypt_failed_naming_path(&err, PATH);
}

#[test]
fn aes_gcm_unsupported_version_and_segment_size_are_malformed() {
    let (o, _, ct) = aes_fixture();
    let mut v2 = ct.clone();
    v2[8] = 2;
    let err = o.open(PATH, &v2).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let mut zero = ct.clone();
    zero[9..13].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        o.open(PATH, &zero).unwrap_err(),
        DecryptError::Malformed { .. }
    ));
}

#[test]
fn aes_gcm_empty_final_segment_after_full_one_is_refused() {
    // Sealed with the real key and a 16-byte segment size, then an extra empty last
    // segment appended by hand: authentic bytes, but non-canonical, so refused.
    let key = DataKey::generate();
    let ct = aes_gcm_segments::seal_with_segment_size(&key, PATH, &sample(32), 16).unwrap();
    assert_eq!(aes_gcm_segments::open(&key, PATH, &ct).unwrap(), sample(32));
    let mut longer = ct.clone();
    longer.extend_from_slice(&[0u8; TAG_LEN]);
    let err = aes_gcm_segments::open(&key, PATH, &longer).unwrap_err();
    assert!(matches!(err, DecryptError::Malformed { .. }), "{err:?}");
}

/// Decodes a sealed file with nothing but the spec in docs/encryption.md (literal
/// constants, raw HKDF and AES-GCM), to keep the document and the code in step.
#[test]
fn aes_gcm_format_matches_the_documented_spec() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let key = DataKey::generate();
    let pt = sample(2 * 65536 + 10);
    let ct = aes_gcm_segments::seal(&key, PATH, &pt).unwrap();
    assert_eq!(&ct[0..8], b"SMENCGCM");
    assert_eq!(ct[8], 1);
    assert_eq!(&ct[9..13], &[0x00, 0x01, 0x00, 0x00]);
    let (salt, prefix) = (&ct[13..45], &ct[45..52]);
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), key.as_bytes());
    let mut file_key = [0u8; 32];
    hk.expand(b"stellamirror aes-256-gcm segments v1 file key", &mut file_key)
        .unwrap();
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&file_key).unwrap();
    let mut aad = ct[..52].to_vec();
    aad.extend_from_slice(PATH.as_bytes());
    let body = &ct[52..];
    let segments: Vec<&[u8]> = body.chunks(65536 + 16).collect();
    assert_eq!(segments.len(), 3);
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(prefix);
        nonce[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[11] = u8::from(i == segments.len() - 1);
        let plain = cipher
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), Payload { msg: seg, aad: &aad })
            .expect("segment decrypts per spec");
        out.extend_from_slice(&plain);
    }
    assert_eq!(out, pt);
}

// ---------------------------------------------------------------- tampering (age)

#[test]
fn age_flipped_byte_truncated_empty_and_moved_files() {
    let (id, r) = keypair();
    let s = sealer(EncryptionMode::Age, &[&r]);
    let o = opener(&s, &[&id]);
    let pt = sample(200 * 1024);
    let ct = s.seal(PATH, &pt).unwrap();
    for pos in [10, ct.len() / 2, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        assert_decrypt_failed_naming_path(&o.open(PATH, &bad).unwrap_err(), PATH);
    }
    // 200 KiB = three full 64 KiB age chunks + an 8 KiB last chunk (+16-byte tags).
    let without_last = ct.len() - (pt.len() - 3 * 64 * 1024 + 16);
    let err = o.open(PATH, &ct[..without_last]).unwrap_err();
    assert!(matches!(err, DecryptError::Truncated { .. }), "{err:?}");
    for cut in [ct.len() - 1, without_last, 40, 0] {
        let err = o.open(PATH, &ct[..cut]).unwrap_err();
        assert_decrypt_failed_naming_path(&err, PATH);
    }
    // age has no associated data: integrity of the path is given by the signed manifest
    // digests (documented), so a moved file still opens — assert the documented behaviour.
    assert_eq!(o.open("data/other", &ct).unwrap(), pt);
}
