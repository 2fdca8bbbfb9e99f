//! The on-disk bundle documents as pure serde types (no behaviour).
//! Specification: docs/bundle-format.md. Field names are part of the format.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::encryption::{EncryptionMode, WrappedKey};
use crate::ids::FileDigest;
use crate::model::Collection;
use crate::selectors::Selectors;

/// Written by this version. 3 dropped the per-record hashes of sharded and single-file
/// collections from the index files (index format 2); 2 added `channel`, `sequence`,
/// `expiresAt` (signed freshness data) and the DSSE envelope
/// `signatures/provenance.dsse.json`. 1 and 2 are still read (and written by `--rerun` of
/// an export made by them).
pub const FORMAT_VERSION: u32 = 3;
pub const FORMAT_VERSION_2: u32 = 2;
/// The first version.
pub const FORMAT_VERSION_1: u32 = 1;
/// `formatVersion` of the index files of bundle format 3: per-record `hash` only for
/// one-file-per-subject collections (elsewhere the record line carries it).
pub const INDEX_FORMAT_VERSION: u32 = 2;
/// Index files of bundle formats 1 and 2 (and of published mirrors): every record with
/// its `hash`.
pub const INDEX_FORMAT_VERSION_1: u32 = 1;

/// The index format a bundle of format `bundle_version` carries.
pub fn index_format_version(bundle_version: u32) -> u32 {
    if bundle_version >= FORMAT_VERSION {
        INDEX_FORMAT_VERSION
    } else {
        INDEX_FORMAT_VERSION_1
    }
}
/// Bundles are tagged with a channel; until channels exist every bundle is on this one.
pub const DEFAULT_CHANNEL: &str = "default";
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

/// `encryption.mode` of a bundle: `none`, `age` or `aes-gcm` (anything else does not
/// parse).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionModeName {
    #[default]
    None,
    Age,
    AesGcm,
}

impl EncryptionModeName {
    /// The sealing mode, `None` for a plaintext bundle.
    pub fn sealed(self) -> Option<EncryptionMode> {
        match self {
            Self::None => None,
            Self::Age => Some(EncryptionMode::Age),
            Self::AesGcm => Some(EncryptionMode::AesGcm),
        }
    }

    pub fn of(mode: Option<EncryptionMode>) -> Self {
        match mode {
            None => Self::None,
            Some(EncryptionMode::Age) => Self::Age,
            Some(EncryptionMode::AesGcm) => Self::AesGcm,
        }
    }

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Age => "age",
            Self::AesGcm => "aes-gcm",
        }
    }
}

impl std::fmt::Display for EncryptionModeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInfo {
    pub mode: EncryptionModeName,
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
    /// Format 2: the (tenant, channel) stream this bundle belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Format 2: position in the producer's (tenant, channel) export sequence (1-based,
    /// strictly increasing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Format 2: RFC 3339 time after which importers refuse the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
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

impl Manifest {
    /// The signed freshness data of this bundle (format 1: created time only).
    pub fn stamp(&self) -> Stamp {
        Stamp {
            format_version: self.format_version,
            channel: self.channel.clone().unwrap_or_else(|| DEFAULT_CHANNEL.to_string()),
            sequence: self.sequence,
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
        }
    }
}

/// What orders and dates a bundle: written by export, compared by import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    pub format_version: u32,
    pub channel: String,
    /// `None` only in format-1 bundles.
    pub sequence: Option<u64>,
    pub created_at: String,
    /// `None` only in format-1 bundles (they never expire).
    pub expires_at: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
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
    pub wrapped_keys: Vec<WrappedKey>,
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
    /// The three counts for every collection (written by every format; optional on read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_collection: Option<Box<ByCollection>>,
}

/// Added, changed and removed records of one collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

/// `byCollection` of `manifest.diff.json`: one entry per collection, in the fixed order of
/// `Collection::ALL` (the order the file lists them in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByCollection {
    #[serde(rename = "advisories.raw")]
    pub advisories_raw: ChangeCounts,
    #[serde(rename = "advisories.normalized")]
    pub advisories_normalized: ChangeCounts,
    #[serde(rename = "vex.raw")]
    pub vex_raw: ChangeCounts,
    #[serde(rename = "vex.normalized")]
    pub vex_normalized: ChangeCounts,
    #[serde(rename = "sboms.raw")]
    pub sboms_raw: ChangeCounts,
    #[serde(rename = "sboms.normalized")]
    pub sboms_normalized: ChangeCounts,
    #[serde(rename = "policy.snapshot")]
    pub policy_snapshot: ChangeCounts,
    #[serde(rename = "policy.evaluations")]
    pub policy_evaluations: ChangeCounts,
    pub consensus: ChangeCounts,
}

impl ByCollection {
    pub fn get_mut(&mut self, c: Collection) -> &mut ChangeCounts {
        match c {
            Collection::AdvisoriesRaw => &mut self.advisories_raw,
            Collection::AdvisoriesNormalized => &mut self.advisories_normalized,
            Collection::VexRaw => &mut self.vex_raw,
            Collection::VexNormalized => &mut self.vex_normalized,
            Collection::SbomsRaw => &mut self.sboms_raw,
            Collection::SbomsNormalized => &mut self.sboms_normalized,
            Collection::PolicySnapshot => &mut self.policy_snapshot,
            Collection::PolicyEvaluations => &mut self.policy_evaluations,
            Collection::Consensus => &mut self.consensus,
        }
    }
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
