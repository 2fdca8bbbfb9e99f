//! age mode: every file is a standard binary age v1 file (X25519 recipients), readable by
//! the `age` command-line tool. Also used to wrap the AES-GCM bundle data key.

use std::io::{self, Read, Write};

use age::x25519;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::aes_gcm_segments::{DataKey, DATA_KEY_LEN};
use super::error::{DecryptError, EncryptError};
use super::WrappedKey;

/// age header size upper bound per recipient stanza, used only to pre-size buffers.
const STANZA_ESTIMATE: usize = 128;
/// age payload: 64 KiB chunks, 16-byte tag each.
const AGE_CHUNK: usize = 64 * 1024;

fn age_ciphertext_estimate(plaintext_len: usize, recipients: usize) -> usize {
    // version line + MAC line + stanzas + 16-byte nonce + payload with tags.
    let chunks = plaintext_len / AGE_CHUNK + 1;
    128 + recipients * STANZA_ESTIMATE + 16 + plaintext_len + chunks * 16
}

/// Encrypts `plaintext` to all `recipients` as one binary (not armored) age file.
fn encrypt_to(recipients: &[x25519::Recipient], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(age_ciphertext_estimate(plaintext.len(), recipients.len()));
    let mut writer = encryptor.wrap_output(&mut out).map_err(|e| e.to_string())?;
    writer.write_all(plaintext).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Seals one bundle file in age mode.
pub(crate) fn seal(
    recipients: &[x25519::Recipient],
    bundle_path: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if recipients.is_empty() {
        return Err(EncryptError::NoRecipients);
    }
    encrypt_to(recipients, plaintext).map_err(|reason| EncryptError::SealFailed {
        bundle_path: bundle_path.to_string(),
        reason,
    })
}

/// Opens one bundle file in age mode.
pub(crate) fn open(
    identities: &[x25519::Identity],
    bundle_path: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    if identities.is_empty() {
        return Err(DecryptError::NoIdentities);
    }
    let path = || bundle_path.to_string();
    if ciphertext.is_empty() {
        return Err(DecryptError::Truncated {
            bundle_path: path(),
            detail: "file is empty",
        });
    }
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| map_age_error(e, path()))?;
    if decryptor.is_scrypt() {
        return Err(DecryptError::Malformed {
            bundle_path: path(),
            reason: "passphrase-encrypted age file (stellamirror only writes X25519 recipients)".to_string(),
        });
    }
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| map_age_error(e, path()))?;
    let mut out = Vec::with_capacity(ciphertext.len());
    reader
        .read_to_end(&mut out)
        .map_err(|e| map_payload_error(&e, path()))?;
    Ok(out)
}

fn map_age_error(e: age::DecryptError, bundle_path: String) -> DecryptError {
    match e {
        age::DecryptError::NoMatchingKeys => DecryptError::FileNoMatchingIdentity { bundle_path },
        age::DecryptError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => DecryptError::Truncated {
            bundle_path,
            detail: "age header incomplete",
        },
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => DecryptError::Malformed {
            bundle_path,
            reason: format!("not a valid age file ({e})"),
        },
        other => DecryptError::AgeFailed {
            bundle_path,
            reason: other.to_string(),
        },
    }
}

fn map_payload_error(e: &io::Error, bundle_path: String) -> DecryptError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        DecryptError::Truncated {
            bundle_path,
            detail: "final age payload chunk missing",
        }
    } else {
        DecryptError::AgeFailed {
            bundle_path,
            reason: format!("age payload failed authentication ({e}): modified, truncated or corrupted"),
        }
    }
}

/// Wraps the data key for one recipient: base64 (standard, padded) of a binary age file
/// encrypting the 32 raw key bytes to that recipient only.
pub(crate) fn wrap_data_key(recipient: &x25519::Recipient, key: &DataKey) -> Result<WrappedKey, EncryptError> {
    let recipient_str = recipient.to_string();
    let age_file =
        encrypt_to(std::slice::from_ref(recipient), key.as_bytes()).map_err(|reason| EncryptError::KeyWrapFailed {
            recipient: recipient_str.clone(),
            reason,
        })?;
    Ok(WrappedKey {
        recipient: recipient_str,
        wrapped_key: BASE64.encode(age_file),
    })
}

/// Tries to unwrap one wrapped data key with the given identities.
///
/// `Ok(None)`: no identity fits this recipient. `Err`: the wrapped key is malformed, or it
/// decrypts but is not a 32-byte key.
pub(crate) fn unwrap_data_key(
    wrapped: &WrappedKey,
    identities: &[x25519::Identity],
) -> Result<Option<DataKey>, DecryptError> {
    let invalid = |reason: String| DecryptError::WrappedKeyInvalid {
        recipient: wrapped.recipient.clone(),
        reason,
    };
    let age_file = BASE64
        .decode(wrapped.wrapped_key.trim())
        .map_err(|e| invalid(format!("not standard base64: {e}")))?;
    let decryptor =
        age::Decryptor::new_buffered(age_file.as_slice()).map_err(|e| invalid(format!("not an age file: {e}")))?;
    if decryptor.is_scrypt() {
        return Err(invalid("passphrase-encrypted age file".to_string()));
    }
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(e) => return Err(invalid(e.to_string())),
    };
    // Room for one byte more than a key so an over-long payload is detected without the
    // buffer ever reallocating (which would leave key bytes behind).
    let mut buf = Zeroizing::new(Vec::with_capacity(DATA_KEY_LEN + 1));
    reader
        .by_ref()
        .take(DATA_KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| invalid(format!("payload failed to decrypt: {e}")))?;
    match DataKey::from_slice(&buf) {
        Some(key) => Ok(Some(key)),
        None => Err(invalid(format!("payload is not a {DATA_KEY_LEN}-byte key"))),
    }
}
