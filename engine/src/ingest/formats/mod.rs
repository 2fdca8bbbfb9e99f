//! Document formats: detection and the mapping of each document to records.
//!
//! A parser turns one upstream document into a [`ParsedDoc`]: the primary record
//! (the document as received, compact JSON with key order and number text untouched)
//! and the records derived from it (normalized advisories, VEX statements, SBOM
//! package lists). Parsers are pure: no store access, no I/O.
pub mod canonical;
pub mod csaf;
pub mod cyclonedx;
pub mod cyclonedx_vex;
pub mod openvex;
pub mod osv;
pub mod osv_typed;
pub mod policy;
pub mod purl;
pub mod spdx;
pub mod spdx3;
pub mod spdx_tv;
pub mod vex_repo;

use serde_json::Value;

use crate::model::{parse_time, valid_key_text, Collection};

/// A record to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecord {
    pub collection: Collection,
    pub subject: String,
    pub id: String,
    pub bytes: Vec<u8>,
    pub modified: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParsedDoc {
    pub primary: NewRecord,
    pub derived: Vec<NewRecord>,
}

/// Why a document was refused, relative to the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocError {
    Unrecognized(String),
    Invalid { pointer: String, reason: String },
}

pub fn invalid(pointer: &str, reason: impl Into<String>) -> DocError {
    DocError::Invalid {
        pointer: pointer.to_string(),
        reason: reason.into(),
    }
}

/// What the operator said the input is (`ingest --kind`), overriding detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindHint {
    Auto,
    PolicySnapshot,
    PolicyEvaluations,
}

#[derive(Clone, Debug)]
pub struct ParseContext {
    pub kind: KindHint,
    /// `--subject`: overrides the SBOM subject taken from the document.
    pub subject_override: Option<String>,
    /// The fingerprint of the `--publisher-key` that verified this document's `.asc`
    /// signature (per file; noted in CSAF normalized records as `verifiedBy`).
    pub verified_by: Option<String>,
}

impl Default for ParseContext {
    fn default() -> Self {
        Self {
            kind: KindHint::Auto,
            subject_override: None,
            verified_by: None,
        }
    }
}

/// Compact JSON bytes of a value, keys in document order, numbers as written.
pub fn compact(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serde_json values always serialize")
}

pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A required, non-empty string usable as a key.
pub fn required_key_str<'a>(v: &'a Value, key: &str, pointer: &str) -> Result<&'a str, DocError> {
    match v.get(key) {
        Some(Value::String(s)) if valid_key_text(s) => Ok(s),
        Some(Value::String(_)) => Err(invalid(pointer, format!("`{key}` is empty, too long or contains NUL"))),
        Some(_) => Err(invalid(pointer, format!("`{key}` must be a string"))),
        None => Err(invalid(pointer, format!("required field `{key}` is missing"))),
    }
}

/// Parse an optional RFC 3339 time field; a present but unparsable value is invalid.
pub fn optional_time(v: &Value, key: &str, pointer: &str) -> Result<Option<i64>, DocError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .ok_or_else(|| invalid(pointer, format!("`{key}` is not an RFC 3339 time: {s:?}"))),
        Some(_) => Err(invalid(pointer, format!("`{key}` must be a string"))),
    }
}

/// The typed fast path for the formats that have one (OSV): the same result as
/// [`parse_document`] on the parsed bytes, or `None` to take that path.
pub fn parse_fast(bytes: &[u8], ctx: &ParseContext) -> Option<ParsedDoc> {
    match ctx.kind {
        KindHint::Auto => osv_typed::parse_bytes(bytes),
        _ => None,
    }
}

/// Recognise the document's format and parse it. `name` is the document's file name
/// relative to the ingested directory (None for JSON Lines records).
///
/// Detection order matters where formats overlap: `--kind` wins over everything (a policy
/// snapshot may be any JSON); CycloneDX documents whose vulnerabilities carry an
/// `analysis` are VEX, other CycloneDX documents are SBOMs; OSV is last because its
/// marker (`id` + `modified`) is the weakest. See docs/formats.md.
pub fn parse_document(v: Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    match ctx.kind {
        KindHint::PolicySnapshot => return policy::parse_snapshot(v),
        KindHint::PolicyEvaluations => return policy::parse_evaluation(v),
        KindHint::Auto => {}
    }
    if !v.is_object() {
        return Err(DocError::Unrecognized("top-level JSON value is not an object".into()));
    }
    if str_at(&v, "bomFormat") == Some("CycloneDX") {
        if cyclonedx_vex::is_vex(&v) {
            return cyclonedx_vex::parse(v, name);
        }
        return cyclonedx::parse_sbom(v, ctx, name);
    }
    if v.get("document").and_then(|d| d.get("csaf_version")).is_some() {
        return csaf::parse(v, ctx.verified_by.as_deref());
    }
    if v.get("spdxVersion").is_some() {
        return spdx::parse(v, ctx, name);
    }
    if let Some(c) = v.get("@context").and_then(Value::as_str) {
        if c.contains("openvex") {
            return openvex::parse(v, name);
        }
        if spdx3::is_spdx3(&v) {
            return spdx3::parse(v, ctx, name);
        }
    }
    if v.get("id").is_some() && v.get("modified").is_some() {
        return osv::parse(v);
    }
    Err(DocError::Unrecognized(
        "not OSV (id + modified), OpenVEX (@context openvex), CSAF (document.csaf_version), \
         CycloneDX (bomFormat), SPDX 2.x (spdxVersion) or SPDX 3 (@context spdx.org/rdf/3); \
         policy documents need --kind"
            .into(),
    ))
}

/// The VEX statuses every normalized statement (`stellamirror.vex.v1`) uses.
pub const VEX_STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];

/// Insert a version into a product identifier: `pkg:t/n?q` + `1.2` → `pkg:t/n@1.2?q`;
/// any other identifier gets `@version` appended.
pub fn with_version(product: &str, version: &str) -> String {
    if product.starts_with("pkg:") {
        let end = product.find(['?', '#']).unwrap_or(product.len());
        format!("{}@{version}{}", &product[..end], &product[end..])
    } else {
        format!("{product}@{version}")
    }
}

/// Whether a purl names a version (an `@` after its last `/`, before qualifiers).
pub fn purl_has_version(p: &str) -> bool {
    let end = p.find(['?', '#']).unwrap_or(p.len());
    let base = &p[..end];
    let last_slash = base.rfind('/').map(|i| i + 1).unwrap_or(0);
    base[last_slash..].contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_go_before_qualifiers() {
        assert_eq!(
            with_version("pkg:maven/g/a?type=jar", "2.4"),
            "pkg:maven/g/a@2.4?type=jar"
        );
        assert_eq!(
            with_version("ABC", "vers:generic/>=2.9|<=4.1"),
            "ABC@vers:generic/>=2.9|<=4.1"
        );
        assert!(purl_has_version("pkg:maven/g/a@1?type=jar"));
        assert!(!purl_has_version("pkg:npm/%40scope/a?x=@1"));
    }

    #[test]
    fn policy_hints_override_detection() {
        let ctx = ParseContext {
            kind: KindHint::PolicySnapshot,
            ..ParseContext::default()
        };
        let d = parse_document(serde_json::json!([1, 2]), &ctx, Some("p.json")).expect("any JSON is a snapshot");
        assert_eq!(
            (d.primary.subject.as_str(), d.primary.id.as_str()),
            ("policy", "snapshot")
        );
    }
}
