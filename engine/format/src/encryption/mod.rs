//! Bundle encryption (DESIGN.md §4 "Encryption"; format spec in docs/encryption.md).
//!
//! Two modes:
//! * [`EncryptionMode::Age`]: each encrypted file is a standard binary age v1 file encrypted
//!   to all X25519 recipients; the `age` command-line tool decrypts it.
//! * [`EncryptionMode::AesGcm`]: one random 256-bit data key per bundle; each file is sealed
//!   with AES-256-GCM in 64 KiB authenticated segments bound to its bundle path; the data
//!   key is wrapped (age-encrypted) separately for each recipient ([`WrappedKey`]).
//!
//! This module only transforms bytes; choosing which bundle files are encrypted (default:
//! `data/`; strict: everything but `manifest.yaml`, `export.json`, `signatures/`) and where
//! wrapped keys are recorded is the bundle writer's job (documented in docs/encryption.md).

mod aes_gcm_segments;
mod age_mode;
mod error;
mod keys;

#[cfg(test)]
mod tests;

use std::fmt;

pub use aes_gcm_segments::{
    sealed_len as aes_gcm_sealed_len, HEADER_LEN as AES_GCM_HEADER_LEN, MAGIC as AES_GCM_MAGIC,
    SEGMENT_SIZE as AES_GCM_SEGMENT_SIZE, TAG_LEN as AES_GCM_TAG_LEN,
};
pub use error::{
    DecryptError, EncryptError, ERR_DECRYPT_FAILED, ERR_ENCRYPTION_RECIPIENT_INVALID, ERR_ENCRYPT_FAILED,
    ERR_IDENTITY_INVALID,
};
pub use keys::{generate_age_key, GeneratedAgeKey, Identities, Recipients};

use aes_gcm_segments::DataKey;

/// Encryption mode of a bundle, written as `age` / `aes-gcm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionMode {
    /// Standard age files, one per encrypted bundle file.
    Age,
    /// AES-256-GCM segments under one per-bundle data key, wrapped per recipient.
    AesGcm,
}

impl EncryptionMode {
    /// The manifest spelling: `age` or `aes-gcm`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Age => "age",
            Self::AesGcm => "aes-gcm",
        }
    }
}

impl fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bundle data key wrapped for one recipient: `wrapped_key` is the standard (padded)
/// base64 of a binary age file that encrypts the 32-byte data key to `recipient` only.
/// Not secret (only the recipient's identity can open it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedKey {
    /// The recipient's `age1…` public key.
    pub recipient: String,
    /// base64 (standard alphabet, padded) of the age file holding the data key.
    #[serde(rename = "wrappedKey")]
    pub wrapped_key: String,
}

enum SealerKeys {
    Age,
    AesGcm { key: DataKey, wrapped: Vec<WrappedKey> },
}

/// Seals the files of one bundle. Create one per bundle (in aes-gcm mode it holds the
/// bundle's fresh data key); `seal` may be called concurrently from many threads.
pub struct BundleSealer {
    mode: EncryptionMode,
    recipients: Recipients,
    keys: SealerKeys,
}

impl fmt::Debug for BundleSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleSealer")
            .field("mode", &self.mode)
            .field("recipients", &self.recipients.to_strings())
            .finish_non_exhaustive()
    }
}

impl BundleSealer {
    /// Prepares sealing for `recipients`. In aes-gcm mode, generates the bundle's random
    /// 256-bit data key and wraps it for every recipient. Refuses an empty recipient set.
    pub fn new(mode: EncryptionMode, recipients: Recipients) -> Result<Self, EncryptError> {
        if recipients.is_empty() {
            return Err(EncryptError::NoRecipients);
        }
        let keys = match mode {
            EncryptionMode::Age => SealerKeys::Age,
            EncryptionMode::AesGcm => {
                let key = DataKey::generate();
                let wrapped = recipients
                    .as_slice()
                    .iter()
                    .map(|r| age_mode::wrap_data_key(r, &key))
                    .collect::<Result<Vec<_>, _>>()?;
                SealerKeys::AesGcm { key, wrapped }
            }
        };
        Ok(Self { mode, recipients, keys })
    }

    /// Encrypts one file. `bundle_path` is the file's path inside the bundle (e.g.
    /// `data/raw/vex/0a.jsonl.zst`); in aes-gcm mode it is authenticated, so the file only
    /// opens under the same path.
    pub fn seal(&self, bundle_path: &str, plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
        match &self.keys {
            SealerKeys::Age => age_mode::seal(self.recipients.as_slice(), bundle_path, plaintext),
            SealerKeys::AesGcm { key, .. } => aes_gcm_segments::seal(key, bundle_path, plaintext),
        }
    }

    /// aes-gcm: the data key wrapped for each recipient, sorted by recipient. age: empty.
    pub fn wrapped_keys(&self) -> Vec<WrappedKey> {
        match &self.keys {
            SealerKeys::Age => Vec::new(),
            SealerKeys::AesGcm { wrapped, .. } => wrapped.clone(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// The recipients (`age1…`), sorted and deduplicated.
    pub fn recipients(&self) -> Vec<String> {
        self.recipients.to_strings()
    }
}

enum OpenerKeys {
    Age(Identities),
    AesGcm(DataKey),
}

/// Opens the files of one bundle. `open` may be called concurrently from many threads.
pub struct BundleOpener {
    mode: EncryptionMode,
    keys: OpenerKeys,
}

impl fmt::Debug for BundleOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleOpener")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl BundleOpener {
    /// Prepares opening a bundle sealed in `mode`.
    ///
    /// * age: `wrapped_keys` must be empty; the identities are kept to open each file.
    /// * aes-gcm: unwraps the data key from the first wrapped key any identity fits;
    ///   [`DecryptError::NoMatchingIdentity`] if none fits.
    pub fn new(
        mode: EncryptionMode,
        wrapped_keys: &[WrappedKey],
        identities: &Identities,
    ) -> Result<Self, DecryptError> {
        if identities.is_empty() {
            return Err(DecryptError::NoIdentities);
        }
        let keys = match mode {
            EncryptionMode::Age => {
                if !wrapped_keys.is_empty() {
                    return Err(DecryptError::UnexpectedWrappedKeys);
                }
                OpenerKeys::Age(identities.clone())
            }
            EncryptionMode::AesGcm => {
                if wrapped_keys.is_empty() {
                    return Err(DecryptError::MissingWrappedKeys);
                }
                // A malformed entry for someone else's recipient must not stop us from using
                // ours, so remember the first error and report it only if nothing fits.
                let mut found = None;
                let mut first_error = None;
                for wrapped in wrapped_keys {
                    match age_mode::unwrap_data_key(wrapped, identities.as_slice()) {
                        Ok(Some(key)) => {
                            found = Some(key);
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match (found, first_error) {
                    (Some(key), _) => OpenerKeys::AesGcm(key),
                    (None, Some(e)) => return Err(e),
                    (None, None) => {
                        let mut recipients: Vec<String> = wrapped_keys.iter().map(|w| w.recipient.clone()).collect();
                        recipients.sort();
                        recipients.dedup();
                        return Err(DecryptError::NoMatchingIdentity { recipients });
                    }
                }
            }
        };
        Ok(Self { mode, keys })
    }

    /// Decrypts and authenticates one file sealed under `bundle_path`.
    pub fn open(&self, bundle_path: &str, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptError> {
        match &self.keys {
            OpenerKeys::Age(ids) => age_mode::open(ids.as_slice(), bundle_path, ciphertext),
            OpenerKeys::AesGcm(key) => aes_gcm_segments::open(key, bundle_path, ciphertext),
        }
    }

    /// The mode.
    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }
}
