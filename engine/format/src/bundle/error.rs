//! Refusals of bundle reading and verification. Every variant names the entry or file.

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A tar entry that is absolute, contains `..`, is a link/device/directory, or
    /// repeats a path.
    #[error("unsafe archive entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// A file present in the bundle that `manifest.yaml` does not list.
    #[error("file {path} is not listed in manifest.yaml")]
    UnlistedFile { path: String },
    /// A file `manifest.yaml` lists that the bundle lacks.
    #[error("file {path} listed in manifest.yaml is missing")]
    MissingFile { path: String },
    /// A file's sha256 or size differs from `manifest.yaml`, or a record's hash differs
    /// from its bytes.
    #[error("{path}: {what} mismatch (expected {expected}, found {actual})")]
    DigestMismatch {
        path: String,
        what: String,
        expected: String,
        actual: String,
    },
    /// A signature does not verify with the trusted key.
    #[error("signature {path} does not verify against the trusted key")]
    SignatureInvalid { path: String },
    /// The bundle was signed by a key that is not trusted.
    #[error("bundle is signed by key {key_id}, which is not among the trusted keys ({trusted})")]
    SignatureUntrusted { key_id: String, trusted: String },
    /// A Merkle root recomputed from the data differs from the one recorded.
    #[error("{what}: Merkle root mismatch (recorded {expected}, recomputed {actual})")]
    RootMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// Not a readable bundle: corrupt or truncated compression/tar, bad YAML/JSON.
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    /// An entry before the manifest signature verified is larger than the
    /// pre-authentication budget allows (`archive::Limits`).
    #[error("{entry} is {size} bytes, beyond the pre-authentication budget of {budget} bytes (before the manifest signature is verified only manifest.yaml, at most 16 MiB, and its signatures, at most 4 KiB each, are read)")]
    PreAuthBudget { entry: String, size: u64, budget: u64 },
    /// An entry other than the manifest and its signatures comes before them: it is refused
    /// unread, since nothing else is read before the signature verifies.
    #[error("{entry} comes before manifest.yaml and its signature; nothing else is read before they verify (pre-authentication budget: manifest.yaml of at most 16 MiB and signatures of at most 4 KiB each)")]
    BeforeManifest { entry: String },
    /// Decompressed size or entry count beyond the limits.
    #[error("bundle exceeds the {what} limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    /// An encrypted file cannot be decrypted; the cause says why (no identity, not a
    /// recipient, a segment that fails authentication) and gives the matching hint.
    #[error("cannot decrypt {path}: {source}")]
    Decrypt {
        path: String,
        #[source]
        source: crate::encryption::DecryptError,
    },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// Writing `path` failed (not for lack of space): the staging copy of an archive, or
    /// the archive an export writes.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file system holding `path` is full (recognised by the error's kind or OS code).
    #[error("no space left on the file system writing {path} (needed: {needed})")]
    NoSpace {
        path: String,
        needed: String,
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::UnsafeEntry { .. } => "ERR_BUNDLE_UNSAFE_ENTRY",
            BundleError::UnlistedFile { .. } => "ERR_BUNDLE_UNLISTED_FILE",
            BundleError::MissingFile { .. } => "ERR_BUNDLE_MISSING_FILE",
            BundleError::DigestMismatch { .. } => "ERR_DIGEST_MISMATCH",
            BundleError::SignatureInvalid { .. } => "ERR_SIGNATURE_INVALID",
            BundleError::SignatureUntrusted { .. } => "ERR_SIGNATURE_UNTRUSTED",
            BundleError::RootMismatch { .. } => "ERR_STATE_ROOT_MISMATCH",
            BundleError::Malformed { .. } => "ERR_BUNDLE_MALFORMED",
            BundleError::TooLarge { .. } | BundleError::PreAuthBudget { .. } => "ERR_BUNDLE_TOO_LARGE",
            BundleError::BeforeManifest { .. } => "ERR_BUNDLE_MALFORMED",
            BundleError::Decrypt { .. } => "ERR_DECRYPT_FAILED",
            BundleError::Io { .. } | BundleError::Write { .. } => "ERR_IO",
            BundleError::NoSpace { .. } => "ERR_NO_SPACE",
        }
    }

    pub fn hint(&self) -> String {
        match self {
            BundleError::UnsafeEntry { .. } | BundleError::UnlistedFile { .. } => {
                "the archive was not produced by stellamirror or was altered; do not extract it by hand; obtain the bundle again from its producer".into()
            }
            BundleError::MissingFile { .. } | BundleError::DigestMismatch { .. } | BundleError::Malformed { .. } => {
                "the bundle is damaged or was tampered with in transit; copy it again and compare its sha256 with the producer's".into()
            }
            BundleError::SignatureInvalid { .. } => {
                "the signed file was altered, or --trust names the wrong key; obtain the bundle and the producer's public key again".into()
            }
            BundleError::SignatureUntrusted { .. } => {
                "pass the producer's public key with --trust (check its key id out of band)".into()
            }
            BundleError::RootMismatch { .. } => {
                "the data does not match its signed Merkle roots; do not import it; report it to the producer".into()
            }
            BundleError::PreAuthBudget { .. } | BundleError::BeforeManifest { .. } => {
                "this is not an archive stellamirror wrote (it writes the signed manifest first, then its signatures); do not import it; obtain the bundle again from its producer".into()
            }
            BundleError::TooLarge { .. } => {
                "the archive decompresses beyond its declared sizes (possible decompression bomb); obtain it again".into()
            }
            BundleError::Decrypt { source, .. } => source.hint(),
            BundleError::Io { .. } | BundleError::Write { .. } => "check the path, free space and permissions".into(),
            BundleError::NoSpace { path, .. } => {
                format!("free space on the file system of {path} (or point the command at a larger one) and run it again")
            }
        }
    }

    /// The offending path or entry, for `--json` output.
    pub fn subject(&self) -> Option<&str> {
        match self {
            BundleError::UnsafeEntry { entry, .. }
            | BundleError::PreAuthBudget { entry, .. }
            | BundleError::BeforeManifest { entry } => Some(entry),
            BundleError::UnlistedFile { path }
            | BundleError::MissingFile { path }
            | BundleError::DigestMismatch { path, .. }
            | BundleError::SignatureInvalid { path }
            | BundleError::Malformed { path, .. }
            | BundleError::Decrypt { path, .. }
            | BundleError::Io { path, .. }
            | BundleError::Write { path, .. }
            | BundleError::NoSpace { path, .. } => Some(path),
            BundleError::RootMismatch { what, .. } => Some(what),
            _ => None,
        }
    }
}

/// Whether `e` means the file system (or the user's quota on it) is full: by its kind or
/// its OS code, never by its text.
pub fn is_no_space(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// A failed read or open of `path` (a full file system is named as such).
pub fn io_err(path: &std::path::Path, e: std::io::Error) -> BundleError {
    if is_no_space(&e) {
        return write_err(path, e, "room to write it".into());
    }
    BundleError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A failed write of `path`; `needed` says what it needed room for.
pub fn write_err(path: &std::path::Path, e: std::io::Error, needed: String) -> BundleError {
    let path = path.display().to_string();
    if is_no_space(&e) {
        BundleError::NoSpace {
            path,
            needed,
            source: e,
        }
    } else {
        BundleError::Write { path, source: e }
    }
}

#[cfg(test)]
mod tests {
    use super::BundleError;
    use crate::encryption::DecryptError;

    /// The hint of a decryption failure is the cause's own: an AES-GCM segment that fails
    /// authentication is a damaged or altered bundle, not a missing identity.
    #[test]
    fn finding_5_decrypt_hints_match_the_cause() {
        let auth = BundleError::Decrypt {
            path: "data/raw/advisories/00.jsonl.zst".into(),
            source: DecryptError::SegmentAuthFailed {
                bundle_path: "data/raw/advisories/00.jsonl.zst".into(),
                segment: 3,
            },
        };
        assert!(auth.hint().contains("transfer it again"), "{}", auth.hint());
        assert!(!auth.hint().contains("identity"), "{}", auth.hint());
        assert!(std::error::Error::source(&auth).is_some(), "the cause is kept");
        let none = BundleError::Decrypt {
            path: "data key".into(),
            source: DecryptError::NoIdentities,
        };
        assert!(none.hint().contains("identity"), "{}", none.hint());
    }
}
