//! Key rotation shipped in a bundle: the last bundle signed by the old key carries
//! `keys/rotation.dsse.json`, a DSSE envelope signed by that old key naming the new one.
//! Importing it makes the store trust the new key and refuse the old one for bundles
//! created after the rotation (`ERR_SIGNATURE_REVOKED`). Storing applied rotations is the
//! engine's job (`stellamirror_engine::trust::rotation`); this module only checks them.
use serde::{Deserialize, Serialize};

use super::keys::{check_rules, signer, KeyRule, KeyTrustError, Revocation};
use crate::bundle::archive::{Staged, MANIFEST, MANIFEST_SIG};
use crate::bundle::dsse;
use crate::bundle::format::Manifest;
use crate::bundle::signing::{SignKey, TrustedKey};
use crate::model::parse_time;

/// The statement's path in a bundle (listed in the manifest; never encrypted: it holds
/// public keys only, and the importer needs it before any identity is used).
pub const ROTATION_PATH: &str = "keys/rotation.dsse.json";
pub const ROTATION_PAYLOAD_TYPE: &str = "application/vnd.stellamirror.key-rotation+json";
pub const ROTATION_TYPE: &str = "https://stellamirror.dev/key-rotation/v1";

/// The signed payload. It names the bundle it travels in, so it cannot be moved to
/// another one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatement {
    #[serde(rename = "_type")]
    pub kind: String,
    pub old_key_id: String,
    pub new_key_id: String,
    /// SPKI PEM of the new key.
    pub new_public_key: String,
    /// The bundle's `createdAt`: the old key signs nothing created after it.
    pub effective_at: String,
    pub tenant: String,
    pub run_id: String,
}

/// The envelope for a bundle `run_id` of `tenant` created at `created_at`, signed by the
/// bundle's (old) key.
pub fn statement(old: &SignKey, new: &TrustedKey, tenant: &str, run_id: &str, created_at: &str) -> Vec<u8> {
    let st = RotationStatement {
        kind: ROTATION_TYPE.into(),
        old_key_id: old.key_id(),
        new_key_id: new.key_id(),
        new_public_key: new.to_pem(),
        effective_at: created_at.into(),
        tenant: tenant.into(),
        run_id: run_id.into(),
    };
    dsse::sign_typed(
        old,
        ROTATION_PAYLOAD_TYPE,
        &serde_json::to_vec_pretty(&st).expect("json"),
    )
}

/// Keys introduced and retired by rotations this store applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTrust {
    pub rotations: Vec<RotationStatement>,
}

impl StoredTrust {
    /// New keys, trusted as if given with `--trust`.
    pub fn keys(&self) -> Vec<TrustedKey> {
        self.rotations
            .iter()
            .filter_map(|r| TrustedKey::from_pem(&r.new_public_key))
            .collect()
    }
    /// Old keys, revoked for bundles created after their rotation.
    pub fn rules(&self) -> Vec<KeyRule> {
        self.rotations
            .iter()
            .map(|r| KeyRule {
                key_id: r.old_key_id.clone(),
                revoked: Some(Revocation {
                    after: parse_time(&r.effective_at),
                    reason: format!(
                        "rotated out at {} by bundle {} (new key {})",
                        r.effective_at, r.run_id, r.new_key_id
                    ),
                }),
                ..KeyRule::default()
            })
            .collect()
    }
}

/// The trust an import works with: the operator's keys and rules plus the store's
/// applied rotations.
pub struct Gate {
    pub keys: Vec<TrustedKey>,
    pub rules: Vec<KeyRule>,
}

impl Gate {
    /// The operator's keys and rules (`--trust`, the trust file), nothing stored.
    pub fn new(keys: &[TrustedKey], rules: &[KeyRule]) -> Self {
        Self {
            keys: keys.to_vec(),
            rules: rules.to_vec(),
        }
    }

    /// Add the rotations a store applied.
    pub fn with_stored(mut self, stored: &StoredTrust) -> Self {
        self.keys.extend(stored.keys());
        self.rules.extend(stored.rules());
        self
    }

    /// Take a checked rotation into account for the bundles that follow (`verify` of a
    /// chain, where nothing is stored).
    pub fn accept(&mut self, st: &RotationStatement) {
        let stored = StoredTrust {
            rotations: vec![st.clone()],
        };
        self.keys.extend(stored.keys());
        self.rules.extend(stored.rules());
    }

    /// After signatures and digests verified (staged bundles, `verify`): the signer's
    /// rules, then the rotation statement, if any. Nothing is written.
    pub fn check(&self, staged: &Staged, m: &Manifest) -> Result<Option<RotationStatement>, KeyTrustError> {
        let (manifest, sig) = (staged.read(MANIFEST)?, staged.read(MANIFEST_SIG)?);
        self.check_signer(&manifest, &sig, m)?;
        let statement = match staged.files.contains_key(ROTATION_PATH) {
            true => Some(staged.read(ROTATION_PATH)?),
            false => None,
        };
        self.check_rotation(statement.as_deref(), &manifest, &sig, m)
    }

    /// The signer of `manifest` (its bytes, `sig` its signature) may sign a bundle created
    /// at `m.createdAt`: not revoked, inside its validity window.
    pub fn check_signer(&self, manifest: &[u8], sig: &[u8], m: &Manifest) -> Result<TrustedKey, KeyTrustError> {
        let signer = signer(manifest, sig, &self.keys)?;
        check_rules(m, &signer.key_id(), &self.rules)?;
        Ok(signer)
    }

    /// A rotation statement shipped in the bundle (`statement`: its bytes) is signed by
    /// the bundle's signer and names this bundle.
    pub fn check_rotation(
        &self,
        statement: Option<&[u8]>,
        manifest: &[u8],
        sig: &[u8],
        m: &Manifest,
    ) -> Result<Option<RotationStatement>, KeyTrustError> {
        let Some(statement) = statement else {
            return Ok(None);
        };
        let signer = signer(manifest, sig, &self.keys)?;
        let bad = |reason: String| KeyTrustError::Rotation {
            path: ROTATION_PATH.into(),
            reason,
        };
        let body = dsse::open(
            statement,
            ROTATION_PAYLOAD_TYPE,
            std::slice::from_ref(&signer),
            ROTATION_PATH,
        )
        .map_err(|e| bad(format!("not signed by the bundle's signing key: {e}")))?;
        let st: RotationStatement = serde_json::from_slice(&body).map_err(|e| bad(format!("does not parse: {e}")))?;
        let new_id = TrustedKey::from_pem(&st.new_public_key).map(|k| k.key_id());
        let binds = st.kind == ROTATION_TYPE
            && st.old_key_id == signer.key_id()
            && new_id.as_deref() == Some(st.new_key_id.as_str())
            && st.new_key_id != st.old_key_id
            && st.run_id == m.run_id
            && st.tenant == m.tenant
            && st.effective_at == m.created_at;
        if !binds {
            return Err(bad(
                "the statement must name this bundle (runId, tenant, createdAt), its signing key as oldKeyId, and a different new key".into(),
            ));
        }
        Ok(Some(st))
    }
}
