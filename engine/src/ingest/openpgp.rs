//! `ingest --publisher-key KEY.asc`: the OpenPGP keys a publisher signs its documents
//! with (CSAF providers publish `X.asc` beside each `X`). Each signature beside a document
//! must verify with one of them, else the document is refused; the fingerprint of the key
//! that verified it is noted in the document's normalized records (`verifiedBy`). Pure
//! Rust (`pgp`, rpgp), no C code.
use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use super::error::{BadInput, BadInputKind, IngestError, InputLocation};

/// The configured publisher keys (possibly none).
#[derive(Default)]
pub struct PublisherKeys {
    keys: Vec<SignedPublicKey>,
}

impl std::fmt::Debug for PublisherKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(fingerprint)).finish()
    }
}

fn fingerprint(k: &SignedPublicKey) -> String {
    format!("{:x}", k.primary_key.fingerprint())
}

impl PublisherKeys {
    /// Read armored (or binary) OpenPGP public keys; a file that holds none is refused.
    pub fn load(paths: &[PathBuf]) -> Result<Self, IngestError> {
        let mut keys = Vec::new();
        for p in paths {
            let bytes = std::fs::read(p).map_err(|e| IngestError::Io {
                path: p.clone(),
                message: e.to_string(),
            })?;
            let key = SignedPublicKey::from_armor_single(bytes.as_slice())
                .map(|(k, _)| k)
                .or_else(|_| SignedPublicKey::from_bytes(bytes.as_slice()))
                .map_err(|e| IngestError::PublisherKey {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
            keys.push(key);
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verify the detached signature `sig` over the document `doc`: the fingerprint of the
    /// (primary) key whose primary key or a subkey made it, or a refusal naming both files.
    pub fn verify(&self, doc: &Path, sig: &Path) -> Result<String, BadInput> {
        let bad = |reason: String| BadInput {
            kind: BadInputKind::SignatureInvalid,
            at: InputLocation {
                file: doc.to_path_buf(),
                line: None,
                pointer: None,
            },
            reason,
        };
        let content = std::fs::read(doc).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let raw = std::fs::read(sig).map_err(|e| bad(format!("cannot read {}: {e}", sig.display())))?;
        let signature = DetachedSignature::from_armor_single(raw.as_slice())
            .map(|(s, _)| s)
            .or_else(|_| DetachedSignature::from_bytes(raw.as_slice()))
            .map_err(|e| bad(format!("{} is not an OpenPGP signature: {e}", sig.display())))?;
        for key in &self.keys {
            let by_primary = signature.verify(key, &content).is_ok();
            if by_primary
                || key
                    .public_subkeys
                    .iter()
                    .any(|s| signature.verify(&s.key, &content).is_ok())
            {
                return Ok(fingerprint(key));
            }
        }
        Err(bad(format!(
            "its signature {} does not verify with any --publisher-key ({})",
            sig.display(),
            self.keys.iter().map(fingerprint).collect::<Vec<_>>().join(", ")
        )))
    }
}
