//! The export catalog (what this store produced) and the import history (what it applied).
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, CF_META};
use crate::ids::{FileDigest, NodeHash};
use crate::model::Tenant;
pub use stellamirror_format::selectors::Selectors;

/// One export this store produced; enough to diff against it and to regenerate it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub run_id: String,
    pub profile: String,
    pub tenant: Tenant,
    pub created_at: String,
    pub selectors: Selectors,
    /// The tenant's whole state when the export ran (what later deltas diff against).
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub source_root: NodeHash,
    /// The root of the exported record set (equal to `source_root` without selectors).
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub state_root: NodeHash,
    pub manifest_digest: FileDigest,
    pub base_export_id: Option<String>,
    pub bundle_file: String,
    pub bytes: u64,
    /// The arguments needed to regenerate the bundle byte for byte (`--rerun`).
    pub options: serde_json::Value,
    /// Position in this tenant's export sequence (1-based).
    pub seq: u64,
    /// When `prune` removed this export (RFC 3339): its bundle file is deleted and its
    /// snapshot no longer kept; the entry stays so that the sequence continues and a
    /// `--rerun` of it is refused as pruned rather than unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<String>,
}

/// An export applied by `import` on this store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedExport {
    pub run_id: String,
    pub profile: String,
    pub manifest_digest: FileDigest,
    #[serde(with = "crate::ids::prefixed_node_hash")]
    pub state_root: NodeHash,
    pub base_export_id: Option<String>,
    pub created_at: String,
    /// The bundle's signed freshness data and how it was accepted (absent in histories
    /// written before format 2; such entries count as channel `default`, no sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<AppliedFreshness>,
}

/// What `import/freshness.rs` compares the next bundle with, and what `status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedFreshness {
    pub format_version: u32,
    pub channel: String,
    pub sequence: Option<u64>,
    pub expires_at: Option<String>,
    /// Set when the bundle was older than the newest applied one and `--allow-rollback`
    /// accepted it: that newest one's run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
    /// Set when the bundle had expired and `--allow-expired` accepted it.
    #[serde(default)]
    pub expired_accepted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportHistory {
    pub applied_export_ids: Vec<String>,
    pub applied: Vec<AppliedExport>,
}

impl ImportHistory {
    pub fn last(&self) -> Option<&AppliedExport> {
        self.applied.last()
    }
}

pub fn export_key(tenant: &str, run_id: &str) -> Vec<u8> {
    format!("export\0{tenant}\0{run_id}").into_bytes()
}

pub fn applied_key(tenant: &str) -> Vec<u8> {
    format!("applied\0{tenant}").into_bytes()
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(format!("{what} does not decode: {e}")))
}

impl Store {
    pub fn export_record(&self, tenant: &Tenant, run_id: &str) -> Result<Option<ExportRecord>, StoreError> {
        self.get(CF_META, &export_key(tenant.as_str(), run_id))?
            .map(|b| decode(&format!("export {run_id}"), &b))
            .transpose()
    }

    /// This tenant's exports, oldest first.
    pub fn export_records(&self, tenant: &Tenant) -> Result<Vec<ExportRecord>, StoreError> {
        let prefix = format!("export\0{}\0", tenant.as_str()).into_bytes();
        let mut out: Vec<ExportRecord> = Vec::new();
        for kv in self.scan_prefix(CF_META, &prefix) {
            let (_, v) = kv?;
            out.push(decode("export record", &v)?);
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// Every tenant's exports (for `log`).
    pub fn all_export_records(&self) -> Result<Vec<ExportRecord>, StoreError> {
        let mut out: Vec<ExportRecord> = Vec::new();
        for kv in self.scan_prefix(CF_META, b"export\0") {
            let (_, v) = kv?;
            out.push(decode("export record", &v)?);
        }
        out.sort_by(|a, b| (a.tenant.as_str(), a.seq).cmp(&(b.tenant.as_str(), b.seq)));
        Ok(out)
    }

    pub fn import_history(&self, tenant: &Tenant) -> Result<ImportHistory, StoreError> {
        Ok(self
            .get(CF_META, &applied_key(tenant.as_str()))?
            .map(|b| decode("import history", &b))
            .transpose()?
            .unwrap_or_default())
    }
}
