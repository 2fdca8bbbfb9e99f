//! Document formats: detection and the mapping of each document to records.
//!
//! A parser turns one upstream document into a [`ParsedDoc`]: the primary record
//! (the document as received, compact JSON with key order and number text untouched)
//! and the records derived from it (normalized advisories, VEX statements, SBOM
//! package lists). Parsers are pure: no store access, no I/O.
pub mod cyclonedx;
pub mod openvex;
pub mod osv;
pub mod purl;

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
}

impl Default for ParseContext {
    fn default() -> Self {
        Self {
            kind: KindHint::Auto,
            subject_override: None,
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

/// Recognise the document's format and parse it. `name` is the document's file name
/// relative to the ingested directory (None for JSON Lines records).
pub fn parse_document(v: Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    if !v.is_object() {
        return Err(DocError::Unrecognized("top-level JSON value is not an object".into()));
    }
    match ctx.kind {
        KindHint::PolicySnapshot | KindHint::PolicyEvaluations => {
            return Err(DocError::Unrecognized("policy documents are not supported by this build".into()))
        }
        KindHint::Auto => {}
    }
    if str_at(&v, "bomFormat") == Some("CycloneDX") {
        return cyclonedx::parse_sbom(v, ctx);
    }
    if v.get("@context").and_then(Value::as_str).is_some_and(|c| c.contains("openvex")) {
        return openvex::parse(v, name);
    }
    if v.get("id").is_some() && v.get("modified").is_some() {
        return osv::parse(v);
    }
    Err(DocError::Unrecognized(
        "not OSV (id + modified), OpenVEX (@context openvex), or CycloneDX (bomFormat)".into(),
    ))
}
