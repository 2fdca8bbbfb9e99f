//! Ed25519 signing keys as openssl-compatible PEM files (PKCS#8 private, SPKI public).
//! Signatures are raw 64-byte Ed25519 over the exact file bytes.
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read or written.
    #[error("key file {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The file is not an Ed25519 PKCS#8 / SPKI PEM key.
    #[error("key file {path} is not an Ed25519 {expected} PEM key")]
    Format { path: PathBuf, expected: &'static str },
    /// `keygen` would overwrite an existing key.
    #[error("{path} already exists")]
    Exists { path: PathBuf },
}

impl KeyError {
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Io { .. } => "ERR_KEY_IO",
            KeyError::Format { .. } => "ERR_KEY_INVALID",
            KeyError::Exists { .. } => "ERR_KEY_EXISTS",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            KeyError::Io { .. } => "check the key path and its permissions".into(),
            KeyError::Format { .. } => {
                "use keys from `stellamirror keygen` or `openssl genpkey -algorithm ed25519`".into()
            }
            KeyError::Exists { .. } => "choose another --out name or move the old key away".into(),
        }
    }
}

/// A private signing key; the secret is zeroized on drop by ed25519-dalek.
#[derive(Clone)]
pub struct SignKey {
    key: SigningKey,
}

/// sha256 of the public key's SPKI DER, hex.
pub fn key_id(vk: &VerifyingKey) -> String {
    let der = vk.to_public_key_der().expect("ed25519 public keys always encode");
    crate::ids::FileDigest::of(der.as_bytes()).to_prefixed()
}

fn io(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl SignKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(path, e))?);
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
            expected: "PKCS#8 private",
        })?;
        Ok(Self { key })
    }
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }
    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }
    pub fn public(&self) -> TrustedKey {
        TrustedKey {
            key: self.key.verifying_key(),
        }
    }
}

/// A public key the operator trusts.
#[derive(Clone)]
pub struct TrustedKey {
    key: VerifyingKey,
}

impl TrustedKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        let key = VerifyingKey::from_public_key_pem(&pem).map_err(|_| KeyError::Format {
            path: path.to_path_buf(),
            expected: "SPKI public",
        })?;
        Ok(Self { key })
    }
    /// An SPKI PEM given inline (trust files, rotation statements).
    pub fn from_pem(pem: &str) -> Option<Self> {
        VerifyingKey::from_public_key_pem(pem).ok().map(|key| Self { key })
    }
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("ed25519 keys always encode")
    }
    pub fn key_id(&self) -> String {
        key_id(&self.key)
    }
    pub fn verify(&self, bytes: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key.verify(bytes, &Signature::from_bytes(&sig)).is_ok()
    }
}

/// Write `<out>.pem` (PKCS#8, mode 0600) and `<out>.pub.pem` (SPKI). Refuses to overwrite.
pub fn keygen(out: &Path) -> Result<(PathBuf, PathBuf, String), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let private = PathBuf::from(format!("{}.pem", out.display()));
    let public = PathBuf::from(format!("{}.pub.pem", out.display()));
    for p in [&private, &public] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    // PKCS#8 v1 (RFC 8410: the private key alone). ed25519-dalek writes v2 (RFC 5958, with the
    // public key) by default, which OpenSSL 3.0 cannot read; both versions are read back.
    let keypair = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = keypair
        .to_pkcs8_pem(LineEnding::LF)
        .expect("ed25519 keys always encode");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .map_err(|e| io(&private, e))?;
    f.write_all(pem.as_bytes()).map_err(|e| io(&private, e))?;
    f.sync_all().map_err(|e| io(&private, e))?;
    let vk = key.verifying_key();
    let pub_pem = vk
        .to_public_key_pem(LineEnding::LF)
        .expect("ed25519 keys always encode");
    std::fs::write(&public, pub_pem).map_err(|e| io(&public, e))?;
    Ok((private, public, key_id(&vk)))
}
