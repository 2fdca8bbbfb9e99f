//! SPDX 2.x JSON SBOMs (docs/formats.md#spdx): the raw SBOM, identified by its
//! `documentNamespace` and grouped under its subject, plus a normalized package list in
//! the `stellamirror.sbom.v1` schema CycloneDX SBOMs share.
//!
//! Subject: `--subject`, else the package the document describes (`documentDescribes`,
//! else a `DESCRIBES` relationship of `SPDXRef-DOCUMENT`): its purl, else
//! `name@versionInfo`, else `name`; else the document `name`.
use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{invalid, optional_time, DocError, ParseContext, ParsedDoc};
use crate::model::valid_key_text;

/// The purls of a package: `externalRefs` of category PACKAGE-MANAGER (SPDX 2.2/2.3 JSON
/// spell it with `-` or `_`) and type `purl`.
fn purls(pkg: &Value) -> impl Iterator<Item = &str> {
    pkg.get("externalRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| {
            let cat = r.get("referenceCategory").and_then(Value::as_str).unwrap_or_default();
            matches!(cat, "PACKAGE-MANAGER" | "PACKAGE_MANAGER")
                && r.get("referenceType").and_then(Value::as_str) == Some("purl")
        })
        .filter_map(|r| r.get("referenceLocator").and_then(Value::as_str))
}

fn package_subject(pkg: &Value) -> Option<String> {
    if let Some(p) = purls(pkg).find(|p| valid_key_text(p)) {
        return Some(p.to_string());
    }
    let name = pkg.get("name")?.as_str()?;
    Some(
        match pkg.get("versionInfo").and_then(Value::as_str).filter(|v| !v.is_empty()) {
            Some(ver) => format!("{name}@{ver}"),
            None => name.to_string(),
        },
    )
}

fn described(v: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = v
        .get("documentDescribes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for r in v.get("relationships").and_then(Value::as_array).into_iter().flatten() {
        let s = |k: &str| r.get(k).and_then(Value::as_str);
        if s("spdxElementId") == Some("SPDXRef-DOCUMENT") && s("relationshipType") == Some("DESCRIBES") {
            out.extend(s("relatedSpdxElement"));
        }
    }
    out
}

/// An SPDX document's identity: its `documentNamespace` (unique per document and per
/// version of it, SPDX 2.3 §6.5), else the document's name.
pub fn document_id(namespace: Option<&str>, name: Option<&str>, pointer: &str) -> Result<String, DocError> {
    match (namespace, name) {
        (Some(s), _) if valid_key_text(s) => Ok(s.to_string()),
        (_, Some(n)) if valid_key_text(n) => Ok(n.to_string()),
        _ => Err(invalid(
            pointer,
            "an SPDX document from JSON Lines needs a documentNamespace (its identity)",
        )),
    }
}

pub fn parse(v: Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    parse_fields(&v, &v, ctx, name)
}

/// An SPDX 2.x document's records from its fields in the JSON shape `v` (the document
/// itself, or the JSON form of a tag-value document), storing `raw` as received.
pub fn parse_fields(v: &Value, raw: &Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    let version = v.get("spdxVersion").and_then(Value::as_str).unwrap_or_default();
    if !version.starts_with("SPDX-2.") {
        return Err(invalid(
            "/spdxVersion",
            format!("unsupported spdxVersion {version:?} (SPDX-2.2 and 2.3 JSON are)"),
        ));
    }
    let packages = match v.get("packages") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(invalid("/packages", "`packages` must be an array")),
    };
    for (i, p) in packages.iter().enumerate() {
        if !p.is_object() {
            return Err(invalid(&format!("/packages/{i}"), "a package must be an object"));
        }
        if !matches!(p.get("externalRefs"), None | Some(Value::Null) | Some(Value::Array(_))) {
            return Err(invalid(
                &format!("/packages/{i}/externalRefs"),
                "`externalRefs` must be an array",
            ));
        }
    }
    let modified = match v.get("creationInfo") {
        Some(c) => optional_time(c, "created", "/creationInfo/created")?,
        None => None,
    };
    let subject = match &ctx.subject_override {
        Some(s) => Some(s.clone()),
        None => described(v)
            .into_iter()
            .find_map(|id| {
                let pkg = packages
                    .iter()
                    .find(|p| p.get("SPDXID").and_then(Value::as_str) == Some(id))?;
                package_subject(pkg)
            })
            .or_else(|| v.get("name").and_then(Value::as_str).map(str::to_string)),
    };
    let subject = subject.filter(|s| valid_key_text(s)).ok_or_else(|| {
        invalid(
            "/documentDescribes",
            "SBOM names no subject: needs a described package or a document name; pass --subject",
        )
    })?;
    let id = document_id(
        v.get("documentNamespace").and_then(Value::as_str),
        name,
        "/documentNamespace",
    )?;
    let all: BTreeSet<&str> = packages.iter().flat_map(purls).collect();
    let normalized = json!({
        "schema": "stellamirror.sbom.v1",
        "format": "spdx",
        "subject": subject,
        "specVersion": version,
        "documentNamespace": v.get("documentNamespace"),
        "packages": all,
    });
    Ok(super::cyclonedx::sbom_records(subject, id, raw, &normalized, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_the_described_package_and_purls_are_listed() {
        let v = json!({
            "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "doc",
            "creationInfo": {"created": "2023-05-12T18:30:22Z"},
            "packages": [
                {"SPDXID": "SPDXRef-a", "name": "a", "versionInfo": "1"},
                {"SPDXID": "SPDXRef-b", "name": "b", "externalRefs": [
                    {"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl", "referenceLocator": "pkg:npm/b@2"}]}
            ],
            "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-b"}]
        });
        let d = parse(v, &ParseContext::default(), Some("doc.spdx.json")).expect("valid");
        assert_eq!(
            (d.primary.subject.as_str(), d.primary.id.as_str()),
            ("pkg:npm/b@2", "doc.spdx.json")
        );
        let n: Value = serde_json::from_slice(&d.derived[0].bytes).expect("json");
        assert_eq!(n["packages"], json!(["pkg:npm/b@2"]));
    }
}
