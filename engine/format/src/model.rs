//! The data model: tenants, collections (kinds of records) and record addresses.
use serde::{Deserialize, Serialize};

use crate::ids::ObjectId;

/// A validated tenant name: 1–64 chars of `[A-Za-z0-9._-]`, not starting with `.`.
/// Tenants appear in file names and store keys, so the alphabet is deliberately small.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "invalid tenant name {name:?}: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with '.')"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tenant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(&s)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A collection of records with its own Merkle kind root. The DESIGN's kinds
/// (advisories, vex, sboms, policy, consensus) are split into raw and normalized
/// collections so that each has a root a consumer can check on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Collection {
    #[serde(rename = "advisories.raw")]
    AdvisoriesRaw,
    #[serde(rename = "advisories.normalized")]
    AdvisoriesNormalized,
    #[serde(rename = "vex.raw")]
    VexRaw,
    #[serde(rename = "vex.normalized")]
    VexNormalized,
    #[serde(rename = "sboms.raw")]
    SbomsRaw,
    #[serde(rename = "sboms.normalized")]
    SbomsNormalized,
    #[serde(rename = "policy.snapshot")]
    PolicySnapshot,
    #[serde(rename = "policy.evaluations")]
    PolicyEvaluations,
    #[serde(rename = "consensus")]
    Consensus,
}

impl Collection {
    /// Every collection, in the fixed order used by the state root.
    pub const ALL: [Collection; 9] = [
        Collection::AdvisoriesRaw,
        Collection::AdvisoriesNormalized,
        Collection::VexRaw,
        Collection::VexNormalized,
        Collection::SbomsRaw,
        Collection::SbomsNormalized,
        Collection::PolicySnapshot,
        Collection::PolicyEvaluations,
        Collection::Consensus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::AdvisoriesRaw => "advisories.raw",
            Collection::AdvisoriesNormalized => "advisories.normalized",
            Collection::VexRaw => "vex.raw",
            Collection::VexNormalized => "vex.normalized",
            Collection::SbomsRaw => "sboms.raw",
            Collection::SbomsNormalized => "sboms.normalized",
            Collection::PolicySnapshot => "policy.snapshot",
            Collection::PolicyEvaluations => "policy.evaluations",
            Collection::Consensus => "consensus",
        }
    }

    /// Stable one-byte code of the collection in store keys (store format 2). Never
    /// renumber: stored object keys carry it.
    pub fn code(self) -> u8 {
        match self {
            Collection::AdvisoriesRaw => 1,
            Collection::AdvisoriesNormalized => 2,
            Collection::VexRaw => 3,
            Collection::VexNormalized => 4,
            Collection::SbomsRaw => 5,
            Collection::SbomsNormalized => 6,
            Collection::PolicySnapshot => 7,
            Collection::PolicyEvaluations => 8,
            Collection::Consensus => 9,
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The DESIGN kind this collection belongs to (`advisories`, `vex`, `sboms`,
    /// `policy`, `consensus`): the unit of `added`/`changed`/`removed` counts and of
    /// `removed/<kind>.jsonl` files.
    pub fn kind(self) -> &'static str {
        match self {
            Collection::AdvisoriesRaw | Collection::AdvisoriesNormalized => "advisories",
            Collection::VexRaw | Collection::VexNormalized => "vex",
            Collection::SbomsRaw | Collection::SbomsNormalized => "sboms",
            Collection::PolicySnapshot | Collection::PolicyEvaluations => "policy",
            Collection::Consensus => "consensus",
        }
    }

    /// The collection whose records are counted for the DESIGN kind (raw documents for
    /// advisories, VEX and SBOMs; the collection itself otherwise).
    pub fn is_primary(self) -> bool {
        !matches!(
            self,
            Collection::AdvisoriesNormalized | Collection::VexNormalized | Collection::SbomsNormalized
        )
    }
}

/// One record as the tree sees it: id, content and the upstream modification time
/// (a function of the content, so it never makes two equal stores differ).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    pub id: String,
    pub object: ObjectId,
    /// Unix seconds of the record's own modification time (OSV `modified`, VEX
    /// `timestamp`, SBOM `metadata.timestamp`), when it has one.
    pub modified: Option<i64>,
}

/// Which Merkle shard a subject falls in: the first byte of blake3(subject).
pub fn shard_of(subject: &str) -> u8 {
    blake3::hash(subject.as_bytes()).as_bytes()[0]
}

/// Record ids and subjects are free text from upstream documents, but store keys use
/// NUL as a separator, so NUL is refused at ingest.
pub fn valid_key_text(s: &str) -> bool {
    !s.is_empty() && !s.contains('\0') && s.len() <= 4096
}

/// Parse RFC 3339 into unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

pub fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}
