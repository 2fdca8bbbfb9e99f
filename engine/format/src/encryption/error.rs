//! Error types of bundle encryption.
//!
//! Every error names the bundle path or the key file it is about, carries a stable
//! code (`code()`) and an operator action (`hint()`), and never contains key material:
//! messages only ever quote file paths, line numbers, recipient strings (public keys) and
//! fixed reason texts — never the content of an identity file or a data key.

use std::path::PathBuf;

use thiserror::Error;

/// Stable code: a decryption failed (wrong or missing identity, tampered, truncated,
/// reordered or moved file, malformed encryption metadata).
pub const ERR_DECRYPT_FAILED: &str = "ERR_DECRYPT_FAILED";
/// Stable code: a recipient string or recipients file is invalid.
pub const ERR_ENCRYPTION_RECIPIENT_INVALID: &str = "ERR_ENCRYPTION_RECIPIENT_INVALID";
/// Stable code: an identity file is unreadable or invalid.
pub const ERR_IDENTITY_INVALID: &str = "ERR_IDENTITY_INVALID";
/// Stable code: encrypting a file or wrapping the data key failed (not an input problem).
pub const ERR_ENCRYPT_FAILED: &str = "ERR_ENCRYPT_FAILED";

/// Errors raised while preparing encryption or sealing bundle files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// A recipient given as a string (command line, configuration) is not an X25519
    /// `age1…` recipient. `position` is 1-based in the list given. The value itself is not
    /// echoed, because operators sometimes paste a secret key by mistake.
    #[error("recipient #{position} is not a valid age X25519 recipient: {reason}")]
    InvalidRecipient {
        /// 1-based position in the list of recipients given.
        position: usize,
        /// Why it was refused (fixed text).
        reason: &'static str,
    },
    /// A line of a recipients file is not an X25519 `age1…` recipient.
    #[error("recipients file {}: line {line} is not a valid age X25519 recipient: {reason}", path.display())]
    InvalidRecipientLine {
        /// The recipients file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it was refused (fixed text).
        reason: &'static str,
    },
    /// The recipients file could not be read (missing, permissions, not UTF-8).
    #[error("cannot read recipients file {}: {source}", path.display())]
    RecipientsFileUnreadable {
        /// The recipients file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The recipients file holds no recipient (only comments or blank lines).
    #[error("recipients file {} contains no recipients", path.display())]
    RecipientsFileEmpty {
        /// The recipients file.
        path: PathBuf,
    },
    /// Encryption was requested without any recipient.
    #[error("encryption requires at least one recipient, none was given")]
    NoRecipients,
    /// A file is too large for one AES-GCM segment stream (more than 2^32 segments).
    #[error("cannot encrypt {bundle_path}: file of {bytes} bytes exceeds the AES-GCM segment stream limit")]
    TooLarge {
        /// The bundle path of the file.
        bundle_path: String,
        /// The plaintext size in bytes.
        bytes: u64,
    },
    /// The encryption primitive failed while sealing a file (I/O into memory, age library
    /// error). This is not caused by operator input.
    #[error("cannot encrypt {bundle_path}: {reason}")]
    SealFailed {
        /// The bundle path of the file.
        bundle_path: String,
        /// Description of the failure (never contains key material).
        reason: String,
    },
    /// Wrapping the bundle data key for one recipient failed.
    #[error("cannot wrap the bundle data key for recipient {recipient}: {reason}")]
    KeyWrapFailed {
        /// The recipient (public key) the data key was being wrapped for.
        recipient: String,
        /// Description of the failure (never contains key material).
        reason: String,
    },
}

impl EncryptError {
    /// The stable error code shown to users.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRecipient { .. }
            | Self::InvalidRecipientLine { .. }
            | Self::RecipientsFileUnreadable { .. }
            | Self::RecipientsFileEmpty { .. }
            | Self::NoRecipients => ERR_ENCRYPTION_RECIPIENT_INVALID,
            Self::TooLarge { .. } | Self::SealFailed { .. } | Self::KeyWrapFailed { .. } => ERR_ENCRYPT_FAILED,
        }
    }

    /// What the operator should do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::InvalidRecipient { .. } => "pass the X25519 public key of each recipient \
                (a string starting with `age1`, as printed by `age-keygen` or `age-keygen -y \
                identity.txt`); SSH, plugin and post-quantum recipients are not supported"
                .to_string(),
            Self::InvalidRecipientLine { path, line, .. } => format!(
                "fix line {line} of {}: it must hold one `age1…` X25519 public key (or be blank \
                 or a `#` comment); get a public key with `age-keygen -y identity.txt`",
                path.display()
            ),
            Self::RecipientsFileUnreadable { path, .. } => format!(
                "check that {} exists, is readable by this user and is UTF-8 text",
                path.display()
            ),
            Self::RecipientsFileEmpty { path } => format!(
                "add at least one `age1…` public key to {}, one per line",
                path.display()
            ),
            Self::NoRecipients => "give at least one recipient (`age1…` public key or a \
                recipients file), or disable encryption"
                .to_string(),
            Self::TooLarge { bundle_path, .. } => format!(
                "{bundle_path} is too large to encrypt as one file; split the export (narrower \
                 selectors) or use age mode"
            ),
            Self::SealFailed { .. } => "this is an internal or resource failure (memory, \
                randomness source); retry, and report it if it persists"
                .to_string(),
            Self::KeyWrapFailed { recipient, .. } => {
                format!("check the recipient {recipient}; retry, and report it if it persists")
            }
        }
    }
}

/// Errors raised while loading identities or opening (decrypting) bundle files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// An identity file could not be read (missing, permissions, too large, not UTF-8).
    #[error("cannot read identity file {}: {reason}", path.display())]
    IdentityFileUnreadable {
        /// The identity file.
        path: PathBuf,
        /// Why (I/O error text or fixed text; never file content).
        reason: String,
    },
    /// A line of an identity file is not an X25519 `AGE-SECRET-KEY-1…` identity. The
    /// line itself is never echoed.
    #[error("identity file {}: line {line} is not a valid age X25519 identity: {reason}", path.display())]
    IdentityFileInvalid {
        /// The identity file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it was refused (fixed text).
        reason: &'static str,
    },
    /// An identity file holds no identity (only comments or blank lines).
    #[error("identity file {} contains no identity", path.display())]
    IdentityFileEmpty {
        /// The identity file.
        path: PathBuf,
    },
    /// An identity file is itself age-encrypted (passphrase-protected); not supported.
    #[error("identity file {} is itself encrypted (passphrase-protected), which is not supported", path.display())]
    IdentityFileEncrypted {
        /// The identity file.
        path: PathBuf,
    },
    /// Decryption was needed but no identity was given.
    #[error("the bundle is encrypted but no identity was given")]
    NoIdentities,
    /// AES-GCM mode: none of the given identities can unwrap the bundle data key, i.e.
    /// none of them belongs to one of the bundle's recipients.
    #[error("none of the given identities matches a recipient of this bundle (recipients: {})", recipients.join(", "))]
    NoMatchingIdentity {
        /// The bundle's recipients (public keys), from the wrapped keys.
        recipients: Vec<String>,
    },
    /// Age mode: none of the given identities matches a recipient of this file.
    #[error("cannot decrypt {bundle_path}: none of the given identities matches a recipient of this file")]
    FileNoMatchingIdentity {
        /// The bundle path of the file.
        bundle_path: String,
    },
    /// AES-GCM mode: the bundle lists no wrapped data key.
    #[error("the bundle is AES-GCM encrypted but lists no wrapped data key")]
    MissingWrappedKeys,
    /// Age mode: the bundle lists wrapped data keys, which only exist in AES-GCM mode.
    #[error("the bundle is age encrypted but lists wrapped data keys (mode and metadata disagree)")]
    UnexpectedWrappedKeys,
    /// A wrapped data key is malformed (bad base64, not an age file, wrong key length).
    #[error("the wrapped data key for recipient {recipient} is invalid: {reason}")]
    WrappedKeyInvalid {
        /// The recipient (public key) the wrapped key is listed for.
        recipient: String,
        /// Why (fixed or library text; never key material).
        reason: String,
    },
    /// The file is not in the expected encrypted format (bad magic, unsupported
    /// version, invalid segment size, non-canonical layout).
    #[error("cannot decrypt {bundle_path}: {reason}")]
    Malformed {
        /// The bundle path of the file.
        bundle_path: String,
        /// What is wrong (fixed or library text).
        reason: String,
    },
    /// The file ends early: header incomplete, final segment missing or cut.
    #[error("cannot decrypt {bundle_path}: file is truncated ({detail})")]
    Truncated {
        /// The bundle path of the file.
        bundle_path: String,
        /// Which part is missing (fixed text).
        detail: &'static str,
    },
    /// A segment (AES-GCM) or the payload (age) failed authentication: the bytes were
    /// modified, segments reordered, the file moved from another path or another bundle.
    #[error("cannot decrypt {bundle_path}: segment {segment} failed authentication (modified, reordered, moved from another path, or from another bundle)")]
    SegmentAuthFailed {
        /// The bundle path of the file.
        bundle_path: String,
        /// 0-based segment index.
        segment: u64,
    },
    /// Age mode: the age library refused the file (header, MAC or payload failure).
    #[error("cannot decrypt {bundle_path}: {reason}")]
    AgeFailed {
        /// The bundle path of the file.
        bundle_path: String,
        /// The age library's description (never key material).
        reason: String,
    },
}

impl DecryptError {
    /// The stable error code shown to users.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IdentityFileUnreadable { .. }
            | Self::IdentityFileInvalid { .. }
            | Self::IdentityFileEmpty { .. }
            | Self::IdentityFileEncrypted { .. } => ERR_IDENTITY_INVALID,
            Self::NoIdentities
            | Self::NoMatchingIdentity { .. }
            | Self::FileNoMatchingIdentity { .. }
            | Self::MissingWrappedKeys
            | Self::UnexpectedWrappedKeys
            | Self::WrappedKeyInvalid { .. }
            | Self::Malformed { .. }
            | Self::Truncated { .. }
            | Self::SegmentAuthFailed { .. }
            | Self::AgeFailed { .. } => ERR_DECRYPT_FAILED,
        }
    }

    /// What the operator should do about it.
    pub fn hint(&self) -> String {
        const TRANSFER: &str = "the bundle was damaged or altered after it was sealed: \
            verify its signatures and digests, and transfer it again from the source";
        match self {
            Self::IdentityFileUnreadable { path, .. } => format!(
                "check that {} exists, is readable by this user and is an age-keygen identity file",
                path.display()
            ),
            Self::IdentityFileInvalid { path, line, .. } => format!(
                "line {line} of {} must hold an `AGE-SECRET-KEY-1…` key (or be blank or a `#` \
                 comment); create identities with `age-keygen -o identity.txt`",
                path.display()
            ),
            Self::IdentityFileEmpty { path } => format!(
                "{} must contain an `AGE-SECRET-KEY-1…` line; check you passed the identity \
                 (private key) file and not the recipients file",
                path.display()
            ),
            Self::IdentityFileEncrypted { path } => format!(
                "decrypt it first (`age -d -o identity.txt {}`) and pass the plain identity \
                 file, kept on protected storage",
                path.display()
            ),
            Self::NoIdentities => {
                "pass the identity file (age private key) of one of the bundle's recipients".to_string()
            }
            Self::NoMatchingIdentity { .. } => "pass the identity file of one of the listed \
                recipients (`age-keygen -y identity.txt` prints an identity's public key)"
                .to_string(),
            Self::FileNoMatchingIdentity { .. } => "pass the identity file of one of the \
                bundle's recipients (listed in manifest.yaml `encryption.recipients`)"
                .to_string(),
            Self::MissingWrappedKeys
            | Self::UnexpectedWrappedKeys
            | Self::WrappedKeyInvalid { .. }
            | Self::Malformed { .. }
            | Self::Truncated { .. }
            | Self::SegmentAuthFailed { .. } => TRANSFER.to_string(),
            Self::AgeFailed { .. } => format!(
                "{TRANSFER}; if it persists, check you passed an identity of one of the \
                 bundle's recipients"
            ),
        }
    }
}
