//! `--trust` / `--trust-file`: the keys a command accepts bundles from.
use std::path::PathBuf;

use clap::Args;
use stellamirror_engine::bundle::signing::TrustedKey;
use stellamirror_engine::trust::keys::{load_trust_file, KeyRule};

use crate::failure::Failure;

#[derive(Args, Clone)]
pub struct TrustArgs {
    /// Trusted producer public key(s) (SPKI PEM), repeatable.
    #[arg(long, env = "STELLAMIRROR_TRUST")]
    pub trust: Vec<PathBuf>,
    /// JSON trust file: keys with optional validity windows (notBefore/notAfter, judged
    /// on the bundle's createdAt) and revocations (docs/operations.md, "Keys").
    #[arg(long, value_name = "FILE", env = "STELLAMIRROR_TRUST_FILE")]
    pub trust_file: Option<PathBuf>,
}

impl TrustArgs {
    /// The keys and their rules; at least one key must be given.
    pub fn load(&self) -> Result<(Vec<TrustedKey>, Vec<KeyRule>), Failure> {
        let mut keys: Vec<TrustedKey> = self
            .trust
            .iter()
            .map(|p| TrustedKey::load(p).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint())))
            .collect::<Result<_, _>>()?;
        let mut rules = Vec::new();
        if let Some(f) = &self.trust_file {
            let t = load_trust_file(f).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
            keys.extend(t.keys);
            rules = t.rules;
        }
        if keys.is_empty() {
            return Err(Failure::new(
                "ERR_USAGE",
                "no trusted key: pass --trust PUB.pem or --trust-file FILE",
                "pass the producer's public key",
            ));
        }
        Ok((keys, rules))
    }
}
