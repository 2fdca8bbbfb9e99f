//! aes-gcm mode: AES-256-GCM in fixed-size authenticated segments (STREAM construction).
//!
//! File layout (all integers big-endian; see docs/encryption.md for the full spec):
//!
//! ```text
//! header (52 bytes):
//!   0..8    magic  "SMENCGCM"
//!   8       version 0x01
//!   9..13   segment size (plaintext bytes per segment), u32, 65536
//!   13..45  file salt, 32 random bytes
//!   45..52  nonce prefix, 7 random bytes
//! segments: ciphertext(segment plaintext) || 16-byte tag, each but the last exactly
//!           segment size + 16 bytes; the last 16..=segment size + 16 bytes.
//! file key  = HKDF-SHA256(ikm = data key, salt = file salt, info = HKDF_INFO), 32 bytes
//! nonce(i)  = nonce prefix (7) || i as u32 (4) || last flag (1: 0x01 last, 0x00 otherwise)
//! AAD       = header (52 bytes) || bundle path (UTF-8)
//! ```

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::{DecryptError, EncryptError};

/// File magic.
pub const MAGIC: [u8; 8] = *b"SMENCGCM";
/// Format version written and read.
pub const VERSION: u8 = 1;
/// Plaintext bytes per segment written (64 KiB).
pub const SEGMENT_SIZE: u32 = 64 * 1024;
/// Largest segment size a reader accepts (bounds memory per segment).
pub const MAX_SEGMENT_SIZE: u32 = 16 * 1024 * 1024;
/// Header length in bytes.
pub const HEADER_LEN: usize = 52;
/// AES-GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Per-file salt length in bytes.
pub const SALT_LEN: usize = 32;
/// Nonce prefix length in bytes (12-byte GCM nonce minus 4-byte counter and 1-byte flag).
pub const NONCE_PREFIX_LEN: usize = 7;
/// HKDF-SHA256 `info` deriving the per-file key from the data key.
pub const HKDF_INFO: &[u8] = b"stellamirror aes-256-gcm segments v1 file key";
/// Bundle data key length in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;

const OFF_VERSION: usize = 8;
const OFF_SEGMENT_SIZE: usize = 9;
const OFF_SALT: usize = 13;
const OFF_PREFIX: usize = OFF_SALT + SALT_LEN;
const _: () = assert!(OFF_PREFIX + NONCE_PREFIX_LEN == HEADER_LEN);

/// The bundle's 256-bit data key. Zeroized on drop; not printable.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        OsRng.fill_bytes(&mut *key);
        Self(key)
    }

    /// Copies a key from exactly `DATA_KEY_LEN` bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != DATA_KEY_LEN {
            return None;
        }
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(bytes);
        Some(Self(key))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The per-file AES-256-GCM cipher: key = HKDF-SHA256(data key, salt, HKDF_INFO).
fn file_cipher(key: &DataKey, salt: &[u8]) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(salt), key.as_bytes());
    let mut file_key = Zeroizing::new([0u8; 32]);
    hk.expand(HKDF_INFO, &mut *file_key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(GenericArray::from_slice(&file_key[..]))
}

fn nonce(prefix: &[u8], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn aad(header: &[u8], bundle_path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + bundle_path.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(bundle_path.as_bytes());
    aad
}

/// Number of segments for a plaintext: one (empty, last) for empty input, otherwise
/// ceil(len / segment size) (a plaintext that is a multiple of the segment size ends with a
/// full last segment, never an extra empty one).
fn segment_count(plaintext_len: usize, segment_size: usize) -> usize {
    if plaintext_len == 0 {
        1
    } else {
        plaintext_len.div_ceil(segment_size)
    }
}

/// Seals one bundle file.
pub(crate) fn seal(key: &DataKey, bundle_path: &str, plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    seal_with_segment_size(key, bundle_path, plaintext, SEGMENT_SIZE)
}

pub(crate) fn seal_with_segment_size(
    key: &DataKey,
    bundle_path: &str,
    plaintext: &[u8],
    segment_size: u32,
) -> Result<Vec<u8>, EncryptError> {
    debug_assert!(segment_size > 0 && segment_size <= MAX_SEGMENT_SIZE);
    let seg = segment_size as usize;
    let n = segment_count(plaintext.len(), seg);
    if n as u64 > u64::from(u32::MAX) + 1 {
        return Err(EncryptError::TooLarge {
            bundle_path: bundle_path.to_string(),
            bytes: plaintext.len() as u64,
        });
    }

    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[OFF_VERSION] = VERSION;
    header[OFF_SEGMENT_SIZE..OFF_SALT].copy_from_slice(&segment_size.to_be_bytes());
    OsRng.fill_bytes(&mut header[OFF_SALT..HEADER_LEN]);

    let cipher = file_cipher(key, &header[OFF_SALT..OFF_PREFIX]);
    let prefix = &header[OFF_PREFIX..HEADER_LEN];
    let aad = aad(&header, bundle_path);

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + n * TAG_LEN);
    out.extend_from_slice(&header);
    for i in 0..n {
        let chunk = &plaintext[(i * seg).min(plaintext.len())..((i + 1) * seg).min(plaintext.len())];
        let counter = u32::try_from(i).expect("segment count checked above");
        let nonce = nonce(prefix, counter, i + 1 == n);
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = cipher
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &aad, &mut out[start..])
            .map_err(|_| EncryptError::SealFailed {
                bundle_path: bundle_path.to_string(),
                reason: format!("AES-GCM refused segment {i}"),
            })?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Opens one bundle file, checking every segment, the segment order, the final-segment
/// flag, the header and the bundle path.
pub(crate) fn open(key: &DataKey, bundle_path: &str, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let path = || bundle_path.to_string();
    let malformed = |reason: String| DecryptError::Malformed {
        bundle_path: path(),
        reason,
    };
    let truncated = |detail: &'static str| DecryptError::Truncated {
        bundle_path: path(),
        detail,
    };

    if ciphertext.is_empty() {
        return Err(truncated("file is empty"));
    }
    let magic_len = ciphertext.len().min(MAGIC.len());
    if ciphertext[..magic_len] != MAGIC[..magic_len] {
        return Err(malformed(
            "not an AES-GCM encrypted stellamirror file (bad magic)".to_string(),
        ));
    }
    if ciphertext.len() < HEADER_LEN {
        return Err(truncated("header incomplete"));
    }
    let (header, body) = ciphertext.split_at(HEADER_LEN);
    if header[OFF_VERSION] != VERSION {
        return Err(malformed(format!(
            "unsupported AES-GCM format version {} (this build reads version {VERSION})",
            header[OFF_VERSION]
        )));
    }
    let mut size_bytes = [0u8; 4];
    size_bytes.copy_from_slice(&header[OFF_SEGMENT_SIZE..OFF_SALT]);
    let segment_size = u32::from_be_bytes(size_bytes);
    if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
        return Err(malformed(format!(
            "invalid segment size {segment_size} (must be 1..={MAX_SEGMENT_SIZE})"
        )));
    }
    if body.is_empty() {
        return Err(truncated("no segment after the header"));
    }
    let seg = segment_size as usize;
    let enc_seg = seg + TAG_LEN;
    let n = body.len().div_ceil(enc_seg);
    let last_len = body.len() - (n - 1) * enc_seg;
    if last_len < TAG_LEN {
        return Err(truncated("final segment shorter than its tag"));
    }
    if n > 1 && last_len == TAG_LEN {
        return Err(malformed(
            "non-canonical empty final segment after a full segment".to_string(),
        ));
    }
    if n as u64 > u64::from(u32::MAX) + 1 {
        return Err(malformed("more than 2^32 segments".to_string()));
    }

    let cipher = file_cipher(key, &header[OFF_SALT..OFF_PREFIX]);
    let prefix = &header[OFF_PREFIX..HEADER_LEN];
    let aad = aad(header, bundle_path);

    let mut out = Vec::with_capacity(body.len() - n * TAG_LEN);
    for (i, seg_ct) in body.chunks(enc_seg).enumerate() {
        let last = i + 1 == n;
        let counter = u32::try_from(i).expect("segment count checked above");
        let (ct, tag) = seg_ct.split_at(seg_ct.len() - TAG_LEN);
        let start = out.len();
        out.extend_from_slice(ct);
        let ok = cipher
            .decrypt_in_place_detached(
                GenericArray::from_slice(&nonce(prefix, counter, last)),
                &aad,
                &mut out[start..],
                GenericArray::from_slice(tag),
            )
            .is_ok();
        if !ok {
            // Diagnose: a final segment that authenticates as a non-final one means the
            // real final segment(s) were cut off.
            let truncated_here = last && {
                let mut probe = ct.to_vec();
                cipher
                    .decrypt_in_place_detached(
                        GenericArray::from_slice(&nonce(prefix, counter, false)),
                        &aad,
                        &mut probe,
                        GenericArray::from_slice(tag),
                    )
                    .is_ok()
            };
            out.clear();
            return Err(if truncated_here {
                truncated("final segment missing")
            } else {
                DecryptError::SegmentAuthFailed {
                    bundle_path: path(),
                    segment: i as u64,
                }
            });
        }
    }
    Ok(out)
}

/// Ciphertext size for a plaintext size, with the default segment size.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    let seg = u64::from(SEGMENT_SIZE);
    let n = if plaintext_len == 0 {
        1
    } else {
        plaintext_len.div_ceil(seg)
    };
    HEADER_LEN as u64 + plaintext_len + n * TAG_LEN as u64
}
