//! The on-disk bundle documents as pure serde types (no behaviour).
//! Specification: docs/bundle-format.md. Field names are part of the format.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::FileDigest;
use crate::store::catalog::Selectors;

pub const FORMAT_VERSION: u32 = 1;
pub const PROFILE_FULL: &str = "mirror:full";
pub const PROFILE_DELTA: &str = "mirror:delta";

/// One file of the bundle as shipped (after encryption, if any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub path: String,
    pub sha256: FileDigest,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInfo {
    /// `none`, `age` or `aes-gcm`.
    pub mode: String,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub encrypted_paths: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signing {
    pub algorithm: String,
    pub key_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub cron: String,
}

/// The delta's base, as recorded in `manifest.yaml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseRef {
    pub export_id: String,
    pub manifest_digest: FileDigest,
    pub state_root: String,
    pub reset_baseline: bool,
}

/// `manifest.yaml`: the signed table of contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub profile: String,
    pub run_id: String,
    pub tenant: String,
    pub created_at: String,
    pub selectors: Selectors,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Records per collection in the target state (full) or in this bundle (delta).
    pub counts: BTreeMap<String, u64>,
    pub state_root: String,
    pub kind_roots: BTreeMap<String, String>,
    pub compression: Compression,
    pub encryption: EncryptionInfo,
    pub signing: Signing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    pub artifacts: Vec<Artifact>,
}

/// `export.json`: the run in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDoc {
    pub format_version: u32,
    pub profile: String,
    pub run_id: String,
    pub tenant: String,
    pub created_at: String,
    pub selectors: Selectors,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub counts: BTreeMap<String, u64>,
    pub state_root: String,
    pub kind_roots: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_export_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_state_root: Option<String>,
    pub signing_key_id: String,
    pub encryption: EncryptionInfo,
    /// Wrapped data keys, here only in strict aes-gcm mode (provenance is encrypted then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wrapped_keys: Vec<serde_json::Value>,
    pub generator: String,
}

/// `manifest.diff.json` of a delta bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffManifest {
    pub base_export_id: String,
    pub base_manifest_digest: FileDigest,
    pub reset_baseline: bool,
    pub added: BTreeMap<String, u64>,
    pub changed: BTreeMap<String, u64>,
    pub removed: BTreeMap<String, u64>,
    pub base_state_root: String,
    pub target_state_root: String,
}

/// One record line of a `.jsonl.zst` data file. `doc` is the record's stored bytes,
/// verbatim; `hash` is blake3 of exactly those bytes. (Text fields borrow from the line
/// when they hold no escapes: the importer parses millions of lines.)
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordLine<'a> {
    #[serde(borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub subject: std::borrow::Cow<'a, str>,
    pub id: String,
    #[serde(borrow)]
    pub hash: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub modified: Option<i64>,
    #[serde(borrow)]
    pub doc: &'a serde_json::value::RawValue,
}

/// One line of `removed/<kind>.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct RemovedLine {
    pub kind: String,
    pub subject: String,
    pub id: String,
}
