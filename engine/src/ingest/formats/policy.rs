//! Policy documents, recognised only by `ingest --kind` (docs/formats.md#policy):
//! nothing in a policy document says what it is.
//!
//! * Snapshot: any JSON document, stored as received (compact) as the tenant's one live
//!   snapshot: collection `policy.snapshot`, subject `policy`, id `snapshot`. Its
//!   version is its content hash; it has no modification time of its own.
//! * Evaluations (JSON Lines): one record per line, stored as received, subject = the
//!   evaluated artifact. Id `<subject>|<vulnerability>|<componentPurl>`: records are
//!   keyed by (collection, id) in the store, so the subject must be part of the id or
//!   the evaluations of one finding in two artifacts would overwrite each other.
//!   `modified` = `evaluatedAt`. camelCase and snake_case field names are accepted.
use serde_json::Value;

use super::{compact, invalid, DocError, NewRecord, ParsedDoc};
use crate::model::{parse_time, valid_key_text, Collection};

pub const SNAPSHOT_SUBJECT: &str = "policy";
pub const SNAPSHOT_ID: &str = "snapshot";

pub fn parse_snapshot(v: Value) -> Result<ParsedDoc, DocError> {
    Ok(ParsedDoc {
        primary: NewRecord {
            collection: Collection::PolicySnapshot,
            subject: SNAPSHOT_SUBJECT.to_string(),
            id: SNAPSHOT_ID.to_string(),
            bytes: compact(&v),
            modified: None,
        },
        derived: Vec::new(),
    })
}

/// A required string field under either of its spellings; the pointer names the
/// camelCase one when both are absent.
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Result<&'a str, DocError> {
    let (key, x) = match (v.get(camel), v.get(snake)) {
        (Some(x), _) => (camel, x),
        (None, Some(x)) => (snake, x),
        (None, None) => {
            return Err(invalid(
                &format!("/{camel}"),
                format!("required field `{camel}` (or `{snake}`) is missing"),
            ))
        }
    };
    x.as_str()
        .filter(|s| valid_key_text(s))
        .ok_or_else(|| invalid(&format!("/{key}"), format!("`{key}` must be a non-empty string")))
}

pub fn parse_evaluation(v: Value) -> Result<ParsedDoc, DocError> {
    if !v.is_object() {
        return Err(invalid("", "a policy evaluation must be a JSON object"));
    }
    let subject = field(&v, "subject", "subject")?;
    let component = field(&v, "componentPurl", "component_purl")?;
    let vuln = field(&v, "vulnerability", "vulnerability")?;
    field(&v, "status", "status")?;
    let at = field(&v, "evaluatedAt", "evaluated_at")?;
    let modified = parse_time(at).ok_or_else(|| {
        let key = if v.get("evaluatedAt").is_some() {
            "evaluatedAt"
        } else {
            "evaluated_at"
        };
        invalid(&format!("/{key}"), format!("not an RFC 3339 time: {at:?}"))
    })?;
    if !matches!(v.get("reasons"), None | Some(Value::Null) | Some(Value::Array(_))) {
        return Err(invalid("/reasons", "`reasons` must be an array"));
    }
    Ok(ParsedDoc {
        primary: NewRecord {
            collection: Collection::PolicyEvaluations,
            subject: subject.to_string(),
            id: format!("{subject}|{vuln}|{component}"),
            bytes: compact(&v),
            modified: Some(modified),
        },
        derived: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluations_accept_both_spellings() {
        let a = json!({"subject": "img", "componentPurl": "pkg:npm/a@1", "vulnerability": "CVE-1",
            "status": "fail", "reasons": ["r"], "evaluatedAt": "2026-01-01T00:00:00Z"});
        let b = json!({"subject": "img", "component_purl": "pkg:npm/a@1", "vulnerability": "CVE-1",
            "status": "fail", "evaluated_at": "2026-01-01T00:00:00Z"});
        let (a, b) = (parse_evaluation(a).expect("camel"), parse_evaluation(b).expect("snake"));
        assert_eq!(a.primary.id, "img|CVE-1|pkg:npm/a@1");
        assert_eq!(a.primary.id, b.primary.id);
        assert_eq!(a.primary.modified, b.primary.modified);
    }

    #[test]
    fn missing_time_names_its_pointer() {
        let v = json!({"subject": "img", "componentPurl": "p", "vulnerability": "V", "status": "pass"});
        assert_eq!(
            parse_evaluation(v),
            Err(invalid(
                "/evaluatedAt",
                "required field `evaluatedAt` (or `evaluated_at`) is missing"
            ))
        );
    }
}
