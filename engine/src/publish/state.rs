//! `state.json`: what a published version holds, signed so a reader can check it came from
//! this mirror. The signature is a detached raw 64-byte Ed25519 signature over the exact
//! bytes of `state.json` (as for bundle manifests), made with the mirror's signing key;
//! `state.pub.pem` is its public key (SPKI PEM). A reader checks it with a key obtained
//! out of band: `openssl pkeyutl -verify -pubin -inkey KEY.pub.pem -rawin -in state.json
//! -sigfile state.json.sig`.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FileCounts, PublishError, PublishSettings};
use crate::merkle::StateNode;
use crate::store::catalog::ImportHistory;

pub const STATE_FILE: &str = "state.json";
pub const STATE_SIGNATURE: &str = "state.json.sig";
pub const STATE_PUBLIC_KEY: &str = "state.pub.pem";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedState {
    pub format_version: u32,
    pub tenant: String,
    pub state_root: String,
    pub kind_roots: BTreeMap<String, String>,
    pub counts: BTreeMap<String, u64>,
    /// Exports applied by `import`, oldest first (empty on a producer's own store).
    pub applied_export_ids: Vec<String>,
    /// `createdAt` of the last applied export: the age of the data.
    pub producer_created_at: Option<String>,
    /// The signed `expiresAt` of the last applied export (format-2 bundles): past it, the
    /// mirror is stale (issue 16's freeze protection, shown by `serve`'s `/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_expires_at: Option<String>,
    /// The time the scanner-facing indexes carry (`createdAt`, else the epoch).
    pub updated_at: String,
    /// Key id (sha256 of the SPKI DER) of the key that signed this file.
    pub signer: String,
    /// Advisories per OSV ecosystem (`osv/<Ecosystem>/all.zip` entries).
    pub osv_ecosystems: BTreeMap<String, u64>,
    pub vex_packages: usize,
    pub csaf_documents: usize,
}

impl PublishedState {
    pub fn new(
        state: &StateNode,
        history: &ImportHistory,
        updated_at: &str,
        signer: String,
        osv_ecosystems: BTreeMap<String, u64>,
        vex_packages: usize,
        csaf_documents: usize,
    ) -> Self {
        Self {
            format_version: 1,
            tenant: state.tenant.clone(),
            state_root: state.root().to_prefixed(),
            kind_roots: state
                .kinds
                .iter()
                .map(|k| (k.collection.name().to_string(), k.root.to_prefixed()))
                .collect(),
            counts: state
                .kinds
                .iter()
                .map(|k| (k.collection.name().to_string(), k.records))
                .collect(),
            applied_export_ids: history.applied_export_ids.clone(),
            producer_created_at: history.last().map(|a| a.created_at.clone()),
            producer_expires_at: history
                .last()
                .and_then(|a| a.freshness.as_ref())
                .and_then(|f| f.expires_at.clone()),
            updated_at: updated_at.to_string(),
            signer,
            osv_ecosystems,
            vex_packages,
            csaf_documents,
        }
    }

    /// A previous version's state, if it is one this version of stellamirror wrote.
    pub fn read(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice::<Self>(&bytes)
            .ok()
            .filter(|s| s.format_version == 1)
    }
}

/// Write `state.json`, its signature and the public key.
pub fn write(out: &Path, st: &PublishedState, s: &PublishSettings) -> Result<FileCounts, PublishError> {
    let mut bytes = serde_json::to_vec_pretty(st).expect("state serializes");
    bytes.push(b'\n');
    super::write_file(out, STATE_FILE, &bytes)?;
    super::write_file(out, STATE_SIGNATURE, &s.sign_key.sign(&bytes))?;
    let mut written = 2;
    if let Some(pem) = &s.public_pem {
        super::write_file(out, STATE_PUBLIC_KEY, pem)?;
        written += 1;
    }
    Ok(FileCounts { written, linked: 0 })
}
