//! CycloneDX SBOMs: the raw SBOM, identified by its `serialNumber` and grouped under its
//! subject (the artifact: `--subject`, else `metadata.component.purl`, else
//! `name@version`), plus a normalized package list.
use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{compact, invalid, optional_time, DocError, NewRecord, ParseContext, ParsedDoc};
use crate::model::{valid_key_text, Collection};

fn collect_purls(components: Option<&Value>, out: &mut BTreeSet<String>) {
    if let Some(Value::Array(a)) = components {
        for c in a {
            if let Some(p) = c.get("purl").and_then(Value::as_str) {
                out.insert(p.to_string());
            }
            collect_purls(c.get("components"), out);
        }
    }
}

pub fn sbom_subject(v: &Value, ctx: &ParseContext) -> Result<String, DocError> {
    if let Some(s) = &ctx.subject_override {
        return Ok(s.clone());
    }
    let comp = v.get("metadata").and_then(|m| m.get("component"));
    let from_doc = comp
        .and_then(|c| c.get("purl"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let c = comp?;
            let name = c.get("name")?.as_str()?;
            Some(match c.get("version").and_then(Value::as_str) {
                Some(ver) => format!("{name}@{ver}"),
                None => name.to_string(),
            })
        });
    from_doc.filter(|s| valid_key_text(s)).ok_or_else(|| {
        invalid(
            "/metadata/component",
            "SBOM names no subject: needs metadata.component (purl or name); pass --subject",
        )
    })
}

/// A CycloneDX SBOM's identity: its `serialNumber` (kept across the BOM's versions,
/// which supersede each other by `version`), else the document's name.
fn sbom_id(v: &Value, name: Option<&str>) -> Result<String, DocError> {
    match (v.get("serialNumber").and_then(Value::as_str), name) {
        (Some(s), _) if valid_key_text(s) => Ok(s.to_string()),
        (_, Some(n)) if valid_key_text(n) => Ok(n.to_string()),
        _ => Err(invalid(
            "/serialNumber",
            "a CycloneDX SBOM from JSON Lines needs a serialNumber (its identity)",
        )),
    }
}

pub fn parse_sbom(v: Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    let subject = sbom_subject(&v, ctx)?;
    let id = sbom_id(&v, name)?;
    let modified = match v.get("metadata") {
        Some(m) => optional_time(m, "timestamp", "/metadata/timestamp")?,
        None => None,
    };
    let mut purls = BTreeSet::new();
    collect_purls(v.get("components"), &mut purls);
    let normalized = json!({
        "schema": "stellamirror.sbom.v1",
        "format": "cyclonedx",
        "subject": subject,
        "specVersion": v.get("specVersion"),
        "serialNumber": v.get("serialNumber"),
        "version": v.get("version"),
        "packages": purls,
    });
    Ok(sbom_records(subject, id, &v, &normalized, modified))
}

/// An SBOM's records (any format): the raw document and its normalized package list,
/// both keyed by the document's identity and grouped under the subject (the artifact),
/// so two SBOMs of one artifact are two records.
pub fn sbom_records(subject: String, id: String, raw: &Value, normalized: &Value, modified: Option<i64>) -> ParsedDoc {
    ParsedDoc {
        primary: NewRecord {
            collection: Collection::SbomsRaw,
            subject: subject.clone(),
            id: id.clone(),
            bytes: compact(raw),
            modified,
        },
        derived: vec![NewRecord {
            collection: Collection::SbomsNormalized,
            subject,
            id,
            bytes: compact(normalized),
            modified,
        }],
    }
}
