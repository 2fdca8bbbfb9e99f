//! The operator's trust file (`--trust-file`, JSON) and the rules it sets on keys:
//! validity windows and revocation, judged on the bundle's signed `createdAt`.
//!
//! ```json
//! {"version": 1, "keys": [
//!   {"name": "producer-2026", "publicKey": "producer.pub.pem",
//!    "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2027-01-01T00:00:00Z"},
//!   {"name": "lost laptop", "pem": "-----BEGIN PUBLIC KEY-----\n…", "revoked": true,
//!    "reason": "key lost 2026-10-02"}]}
//! ```
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bundle::archive::MANIFEST_SIG;
use crate::bundle::error::BundleError;
use crate::bundle::format::Manifest;
use crate::bundle::signing::TrustedKey;
use crate::model::parse_time;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrustFileDoc {
    version: u32,
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyEntry {
    #[serde(default)]
    name: Option<String>,
    /// Path of an SPKI PEM file, relative to the trust file.
    #[serde(default)]
    public_key: Option<PathBuf>,
    /// The SPKI PEM inline.
    #[serde(default)]
    pem: Option<String>,
    /// If given, must equal the key's id (a typo check against the wrong file).
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Why a key may no longer sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Bundles created after this time (Unix seconds) are refused; `None`: all bundles.
    pub after: Option<i64>,
    pub reason: String,
}

/// What the operator (or an applied rotation) says about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRule {
    pub key_id: String,
    pub name: Option<String>,
    /// The key signs only bundles created in [not_before, not_after).
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub revoked: Option<Revocation>,
}

/// A loaded trust file: the keys (revoked ones included, so that their signatures are
/// recognised and refused by name) and their rules.
#[derive(Clone, Default)]
pub struct TrustFile {
    pub keys: Vec<TrustedKey>,
    pub rules: Vec<KeyRule>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    #[error("trust file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl TrustFileError {
    pub fn code(&self) -> &'static str {
        "ERR_TRUST_FILE_INVALID"
    }
    pub fn hint(&self) -> String {
        "see docs/operations.md, \"Keys\", for the trust file format".into()
    }
}

fn time_field(path: &Path, what: &str, v: &Option<String>) -> Result<Option<i64>, TrustFileError> {
    v.as_deref()
        .map(|t| {
            parse_time(t).ok_or_else(|| TrustFileError::Invalid {
                path: path.to_path_buf(),
                reason: format!("{what} {t:?} is not RFC 3339"),
            })
        })
        .transpose()
}

/// Read a trust file; every key entry must name exactly one of `publicKey` and `pem`.
pub fn load_trust_file(path: &Path) -> Result<TrustFile, TrustFileError> {
    let invalid = |reason: String| TrustFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let doc: TrustFileDoc = serde_json::from_str(&text).map_err(|e| invalid(format!("does not parse: {e}")))?;
    if doc.version != 1 {
        return Err(invalid(format!("version {} (this stellamirror reads 1)", doc.version)));
    }
    let mut out = TrustFile::default();
    for (i, e) in doc.keys.into_iter().enumerate() {
        let label = e.name.clone().unwrap_or_else(|| format!("keys[{i}]"));
        let pem = match (&e.public_key, &e.pem) {
            (Some(p), None) => {
                let full = path.parent().unwrap_or(Path::new(".")).join(p);
                std::fs::read_to_string(&full).map_err(|err| invalid(format!("{label}: {}: {err}", full.display())))?
            }
            (None, Some(pem)) => pem.clone(),
            _ => return Err(invalid(format!("{label}: give exactly one of publicKey and pem"))),
        };
        let key = TrustedKey::from_pem(&pem).ok_or_else(|| invalid(format!("{label}: not an Ed25519 SPKI PEM key")))?;
        if e.key_id.as_ref().is_some_and(|k| *k != key.key_id()) {
            return Err(invalid(format!(
                "{label}: keyId does not match the key ({})",
                key.key_id()
            )));
        }
        out.rules.push(KeyRule {
            key_id: key.key_id(),
            name: e.name.clone(),
            not_before: time_field(path, "notBefore", &e.not_before)?,
            not_after: time_field(path, "notAfter", &e.not_after)?,
            revoked: e.revoked.then(|| Revocation {
                after: None,
                reason: e.reason.clone().unwrap_or_else(|| "revoked in the trust file".into()),
            }),
        });
        out.keys.push(key);
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyTrustError {
    /// The bundle's signing key was revoked (trust file) or rotated out before the
    /// bundle was created.
    #[error("bundle {run_id} is signed by revoked key {key_id}: {reason}")]
    Revoked {
        run_id: String,
        key_id: String,
        reason: String,
    },
    /// The bundle was created outside the signing key's validity window.
    #[error("bundle {run_id} was created {created_at}, outside the validity window of key {key_id} ({window})")]
    OutsideWindow {
        run_id: String,
        key_id: String,
        created_at: String,
        window: String,
    },
    /// A key rotation statement shipped in the bundle is not valid.
    #[error("{path}: {reason}")]
    Rotation { path: String, reason: String },
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl KeyTrustError {
    pub fn code(&self) -> &'static str {
        match self {
            KeyTrustError::Revoked { .. } => "ERR_SIGNATURE_REVOKED",
            KeyTrustError::OutsideWindow { .. } => "ERR_SIGNATURE_UNTRUSTED",
            KeyTrustError::Rotation { .. } => "ERR_KEY_ROTATION_INVALID",
            KeyTrustError::Bundle(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            KeyTrustError::Revoked { .. } => "the key may be compromised: do not import bundles it signs; obtain a bundle signed by the producer's current key; nothing was applied".into(),
            KeyTrustError::OutsideWindow { .. } => "the trust file limits when this key may sign; check the key's notBefore/notAfter with the producer; nothing was applied".into(),
            KeyTrustError::Rotation { .. } => "the bundle's key rotation statement does not match the bundle or its signer; obtain the bundle again from the producer; nothing was applied".into(),
            KeyTrustError::Bundle(e) => e.hint(),
        }
    }
}

/// The key among `keys` whose signature `sig` over `manifest.yaml`'s bytes verifies.
pub fn signer(manifest: &[u8], sig: &[u8], keys: &[TrustedKey]) -> Result<TrustedKey, BundleError> {
    keys.iter()
        .find(|k| k.verify(manifest, sig))
        .cloned()
        .ok_or_else(|| BundleError::SignatureInvalid {
            path: MANIFEST_SIG.into(),
        })
}

/// Refuse a bundle whose signer is revoked for its `createdAt`, or signed outside the
/// signer's validity window.
pub fn check_rules(m: &Manifest, signer_id: &str, rules: &[KeyRule]) -> Result<(), KeyTrustError> {
    let created = parse_time(&m.created_at).unwrap_or(i64::MIN);
    for r in rules.iter().filter(|r| r.key_id == signer_id) {
        if let Some(rev) = r.revoked.as_ref().filter(|v| v.after.is_none_or(|t| created > t)) {
            return Err(KeyTrustError::Revoked {
                run_id: m.run_id.clone(),
                key_id: signer_id.into(),
                reason: rev.reason.clone(),
            });
        }
        let early = r.not_before.is_some_and(|t| created < t);
        let late = r.not_after.is_some_and(|t| created >= t);
        if early || late {
            let show = |t: Option<i64>| t.map_or_else(|| "any".into(), crate::model::format_time);
            return Err(KeyTrustError::OutsideWindow {
                run_id: m.run_id.clone(),
                key_id: signer_id.into(),
                created_at: m.created_at.clone(),
                window: format!("notBefore {}, notAfter {}", show(r.not_before), show(r.not_after)),
            });
        }
    }
    Ok(())
}
