//! OSV advisories: raw document + one normalized advisory per OSV id.
//! Subject: the first affected package's purl without version.
use serde_json::{json, Value};

use super::{compact, invalid, optional_time, purl, required_key_str, DocError, NewRecord, ParsedDoc};
use crate::model::{parse_time, Collection};

fn package_purl(p: &Value) -> Option<String> {
    if let Some(purl) = p.get("purl").and_then(Value::as_str) {
        return Some(purl::strip_version(purl));
    }
    let eco = p.get("ecosystem")?.as_str()?;
    let name = p.get("name")?.as_str()?;
    Some(purl::from_osv_package(eco, name))
}

pub fn parse(v: Value) -> Result<ParsedDoc, DocError> {
    let id = required_key_str(&v, "id", "/id")?.to_string();
    let modified_s = required_key_str(&v, "modified", "/modified")?;
    let modified = Some(parse_time(modified_s).ok_or_else(|| {
        invalid(
            "/modified",
            format!("`modified` is not an RFC 3339 time: {modified_s:?}"),
        )
    })?);
    optional_time(&v, "published", "/published")?;
    let affected = match v.get("affected") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("/affected", "`affected` must be an array")),
    };
    let mut packages = Vec::new();
    for (i, a) in affected.iter().enumerate() {
        let Some(pkg) = a.get("package") else { continue };
        let p = package_purl(pkg).ok_or_else(|| {
            invalid(
                &format!("/affected/{i}/package"),
                "package needs `ecosystem` and `name`, or `purl`",
            )
        })?;
        packages.push(json!({
            "purl": p,
            "ecosystem": pkg.get("ecosystem"),
            "name": pkg.get("name"),
            "ranges": a.get("ranges").cloned().unwrap_or(Value::Array(vec![])),
            "versions": a.get("versions").cloned().unwrap_or(Value::Array(vec![])),
        }));
    }
    let subject = packages
        .first()
        .and_then(|p| p["purl"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("advisory:{id}"));
    let normalized = json!({
        "schema": "stellamirror.advisory.v1",
        "format": "osv",
        "id": id,
        "aliases": v.get("aliases").cloned().unwrap_or(Value::Array(vec![])),
        "summary": v.get("summary"),
        "modified": modified_s,
        "published": v.get("published"),
        "withdrawn": v.get("withdrawn"),
        "severity": v.get("severity").cloned().unwrap_or(Value::Array(vec![])),
        "packages": packages,
    });
    Ok(ParsedDoc {
        primary: NewRecord {
            collection: Collection::AdvisoriesRaw,
            subject: subject.clone(),
            id: id.clone(),
            bytes: compact(&v),
            modified,
        },
        derived: vec![NewRecord {
            collection: Collection::AdvisoriesNormalized,
            subject,
            id,
            bytes: compact(&normalized),
            modified,
        }],
    })
}
