//! age X25519 recipients (public keys) and identities (private keys).

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519;
use zeroize::Zeroizing;

use super::error::{DecryptError, EncryptError};

/// Identity files larger than this are refused (an age-keygen file is ~190 bytes).
const MAX_IDENTITY_FILE_BYTES: u64 = 1024 * 1024;
/// Recipients files larger than this are refused.
const MAX_RECIPIENTS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A set of age X25519 recipients (public keys), kept sorted by their `age1…` string and
/// deduplicated, so that manifests listing them are deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipients(Vec<x25519::Recipient>);

impl Recipients {
    /// Parses `age1…` recipient strings (surrounding whitespace ignored).
    ///
    /// An empty list gives an empty set (`BundleSealer::new` refuses it).
    pub fn parse(list: &[String]) -> Result<Self, EncryptError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, raw) in list.iter().enumerate() {
            let s = raw.trim();
            let recipient = x25519::Recipient::from_str(s).map_err(|_| EncryptError::InvalidRecipient {
                position: i + 1,
                reason: classify_bad_recipient(s),
            })?;
            out.push(recipient);
        }
        Ok(Self::normalized(out))
    }

    /// Reads an age recipients file: one `age1…` recipient per line, `#` comments and blank
    /// lines ignored. A file without any recipient is an error.
    pub fn from_file(path: &Path) -> Result<Self, EncryptError> {
        let unreadable = |source| EncryptError::RecipientsFileUnreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(unreadable)?;
        let mut text = String::new();
        file.take(MAX_RECIPIENTS_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        if text.len() as u64 > MAX_RECIPIENTS_FILE_BYTES {
            return Err(unreadable(std::io::Error::other(
                "file is larger than 16 MiB, not a recipients file",
            )));
        }
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let s = line.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let recipient = x25519::Recipient::from_str(s).map_err(|_| EncryptError::InvalidRecipientLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: classify_bad_recipient(s),
            })?;
            out.push(recipient);
        }
        if out.is_empty() {
            return Err(EncryptError::RecipientsFileEmpty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self::normalized(out))
    }

    /// The recipients as canonical `age1…` strings, sorted and deduplicated.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Number of distinct recipients.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there is no recipient.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the recipients of `other` (result stays sorted and deduplicated).
    pub fn merge(&mut self, other: &Recipients) {
        let mut all = std::mem::take(&mut self.0);
        all.extend(other.0.iter().cloned());
        *self = Self::normalized(all);
    }

    pub(crate) fn as_slice(&self) -> &[x25519::Recipient] {
        &self.0
    }

    fn normalized(list: Vec<x25519::Recipient>) -> Self {
        let mut keyed: Vec<(String, x25519::Recipient)> = list.into_iter().map(|r| (r.to_string(), r)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.dedup_by(|a, b| a.0 == b.0);
        Self(keyed.into_iter().map(|(_, r)| r).collect())
    }
}

/// Why a string is not an X25519 recipient. Fixed texts only: the value is never echoed.
fn classify_bad_recipient(s: &str) -> &'static str {
    let upper = s.to_ascii_uppercase();
    if s.is_empty() {
        "the value is empty"
    } else if upper.starts_with("AGE-SECRET-KEY-") {
        "this is an age secret key (identity), not a recipient; never share it — give its public key (`age-keygen -y`)"
    } else if upper.starts_with("AGE-PLUGIN-") {
        "this is a plugin identity, not a recipient"
    } else if s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-") {
        "SSH recipients are not supported; use an X25519 `age1…` recipient"
    } else if upper.starts_with("AGE1") {
        "not a valid X25519 recipient (bad checksum or length; plugin and post-quantum recipients are not supported)"
    } else {
        "expected an X25519 recipient starting with `age1`"
    }
}

/// A set of age X25519 identities (private keys). Not printable: `Debug` shows only the
/// matching public keys.
#[derive(Clone, Default)]
pub struct Identities(Vec<x25519::Identity>);

impl Identities {
    /// Reads age-keygen identity files: `AGE-SECRET-KEY-1…` lines, `#` comments and blank
    /// lines ignored. Every file must hold at least one identity. An empty `paths` gives an
    /// empty set.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self, DecryptError> {
        let mut out = Vec::new();
        for path in paths {
            out.extend(read_identity_file(path)?);
        }
        Ok(Self(out))
    }

    /// True if no identity was loaded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of identities loaded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The public keys (`age1…`) of the loaded identities, sorted and deduplicated.
    pub fn recipients(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.iter().map(|i| i.to_public().to_string()).collect();
        v.sort();
        v.dedup();
        v
    }

    pub(crate) fn as_slice(&self) -> &[x25519::Identity] {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn from_vec(v: Vec<x25519::Identity>) -> Self {
        Self(v)
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("public_keys", &self.recipients())
            .finish_non_exhaustive()
    }
}

fn read_identity_file(path: &Path) -> Result<Vec<x25519::Identity>, DecryptError> {
    let unreadable = |reason: String| DecryptError::IdentityFileUnreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let len_hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len_hint > MAX_IDENTITY_FILE_BYTES {
        return Err(unreadable(
            "file is larger than 1 MiB, not an identity file".to_string(),
        ));
    }
    // Pre-size the buffer so the secret bytes are never left behind by a reallocation.
    let capacity = usize::try_from(len_hint).unwrap_or(0) + 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_IDENTITY_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| unreadable(e.to_string()))?;
    if buf.len() as u64 > MAX_IDENTITY_FILE_BYTES {
        return Err(unreadable(
            "file is larger than 1 MiB, not an identity file".to_string(),
        ));
    }
    if buf.starts_with(b"age-encryption.org/") || buf.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(DecryptError::IdentityFileEncrypted {
            path: path.to_path_buf(),
        });
    }
    let text = std::str::from_utf8(&buf).map_err(|_| unreadable("file is not UTF-8 text".to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let s = line.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let identity = x25519::Identity::from_str(s).map_err(|_| DecryptError::IdentityFileInvalid {
            path: path.to_path_buf(),
            line: i + 1,
            reason: classify_bad_identity(s),
        })?;
        out.push(identity);
    }
    if out.is_empty() {
        return Err(DecryptError::IdentityFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Why a line is not an X25519 identity. Fixed texts only: the line is never echoed.
fn classify_bad_identity(s: &str) -> &'static str {
    let upper = s.to_ascii_uppercase();
    if upper.starts_with("AGE1") {
        "this is a recipient (public key), not an identity (private key)"
    } else if upper.starts_with("AGE-PLUGIN-") {
        "plugin identities are not supported"
    } else if s.starts_with("-----BEGIN") || s.starts_with("ssh-") {
        "SSH keys are not supported; use an age-keygen X25519 identity"
    } else if upper.starts_with("AGE-SECRET-KEY-") {
        "malformed AGE-SECRET-KEY-1… key (bad checksum or length; post-quantum keys are not supported)"
    } else {
        "expected an `AGE-SECRET-KEY-1…` line"
    }
}

/// A freshly generated age X25519 key pair.
pub struct GeneratedAgeKey {
    /// The identity file content, byte-compatible with `age-keygen` output:
    /// `# created: …\n# public key: age1…\nAGE-SECRET-KEY-1…\n`. Write it with mode 0600.
    pub identity_file_text: Zeroizing<String>,
    /// The public key (`age1…`) to give as a recipient.
    pub recipient: String,
}

impl fmt::Debug for GeneratedAgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedAgeKey")
            .field("recipient", &self.recipient)
            .field("identity_file_text", &"<redacted>")
            .finish()
    }
}

/// Generates a new age X25519 key pair. `created_at` is written verbatim into the
/// `# created:` comment (age-keygen uses RFC 3339 with seconds, e.g.
/// `2024-05-01T12:00:00Z`); line breaks in it are replaced by spaces.
pub fn generate_age_key(created_at: &str) -> GeneratedAgeKey {
    let identity = x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    let created: String = created_at
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let secret_str = secret.expose_secret();
    let capacity = "# created: \n# public key: \n\n".len() + created.len() + recipient.len() + secret_str.len();
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    text.push_str("# created: ");
    text.push_str(&created);
    text.push_str("\n# public key: ");
    text.push_str(&recipient);
    text.push('\n');
    text.push_str(secret_str);
    text.push('\n');
    debug_assert_eq!(text.len(), capacity);
    GeneratedAgeKey {
        identity_file_text: text,
        recipient,
    }
}
