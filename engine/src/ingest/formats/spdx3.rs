//! SPDX 3.0 JSON-LD SBOMs (docs/formats.md#spdx-30-json-ld): the `@graph` elements read
//! as the SPDX 3 model names them, mapped to the same records as SPDX 2.x.
//!
//! Id: the `SpdxDocument`'s `spdxId` (else the document's name). Subject: `--subject`,
//! else the first root element (`rootElement`, else `describes` relationships of the
//! document) that is a `software_Package`: its `software_packageUrl`, else
//! `name@software_packageVersion`, else `name`; else the document `name`. Packages: every
//! `software_Package`'s purl (`software_packageUrl`, or an `externalIdentifier` of type
//! `packageUrl`). modified: the document's `CreationInfo.created`.
use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::{invalid, optional_time, DocError, ParseContext, ParsedDoc};
use crate::model::valid_key_text;

pub fn is_spdx3(v: &Value) -> bool {
    v.get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.contains("spdx.org/rdf/3"))
}

fn kind(e: &Value) -> &str {
    e.get("type")
        .or_else(|| e.get("@type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn element_id(e: &Value) -> Option<&str> {
    e.get("spdxId").or_else(|| e.get("@id")).and_then(Value::as_str)
}

/// Every element of the graph, with the ones nested as objects in `rootElement`,
/// `element` or relationship `to` lists (CMake writes them inline).
fn elements(graph: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = graph.iter().rev().collect();
    while let Some(e) = stack.pop() {
        out.push(e);
        for key in ["rootElement", "element", "to"] {
            for nested in e.get(key).and_then(Value::as_array).into_iter().flatten().rev() {
                if nested.is_object() {
                    stack.push(nested);
                }
            }
        }
    }
    out
}

fn purl(pkg: &Value) -> Option<&str> {
    pkg.get("software_packageUrl").and_then(Value::as_str).or_else(|| {
        pkg.get("externalIdentifier")
            .and_then(Value::as_array)?
            .iter()
            .find(|x| x.get("externalIdentifierType").and_then(Value::as_str) == Some("packageUrl"))?
            .get("identifier")?
            .as_str()
    })
}

fn package_subject(pkg: &Value) -> Option<String> {
    if let Some(p) = purl(pkg).filter(|p| valid_key_text(p)) {
        return Some(p.to_string());
    }
    let name = pkg.get("name")?.as_str()?;
    Some(match pkg.get("software_packageVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{name}@{v}"),
        _ => name.to_string(),
    })
}

/// The id of each root element of `doc`: its `rootElement` entries, then the targets
/// of `describes` relationships from it.
fn roots<'a>(doc: &'a Value, all: &[&'a Value]) -> Vec<&'a str> {
    let ref_of = |x: &'a Value| x.as_str().or_else(|| element_id(x));
    let mut out: Vec<&str> = doc
        .get("rootElement")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(ref_of)
        .collect();
    let doc_id = element_id(doc);
    for r in all.iter().filter(|e| kind(e) == "Relationship") {
        let from = r.get("from").and_then(Value::as_str);
        if from.is_some() && from == doc_id && r.get("relationshipType").and_then(Value::as_str) == Some("describes") {
            out.extend(
                r.get("to")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(ref_of),
            );
        }
    }
    out
}

pub fn parse(v: Value, ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    let graph = v
        .get("@graph")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("/@graph", "an SPDX 3 JSON-LD document needs an `@graph` array"))?;
    let all = elements(graph);
    let by_id: HashMap<&str, &Value> = all.iter().filter_map(|e| Some((element_id(e)?, *e))).collect();
    let doc = all.iter().copied().find(|e| kind(e) == "SpdxDocument");
    let id = super::spdx::document_id(doc.and_then(element_id), name, "/@graph")?;
    let info = doc
        .and_then(|d| d.get("creationInfo"))
        .and_then(|c| c.as_str().and_then(|r| by_id.get(r).copied()).or(Some(c)))
        .or_else(|| all.iter().copied().find(|e| kind(e) == "CreationInfo"));
    let modified = match info {
        Some(i) if i.is_object() => optional_time(i, "created", "/@graph (CreationInfo.created)")?,
        _ => None,
    };
    let packages: Vec<&Value> = all.iter().copied().filter(|e| kind(e) == "software_Package").collect();
    let subject = match &ctx.subject_override {
        Some(s) => Some(s.clone()),
        None => doc
            .and_then(|d| {
                roots(d, &all)
                    .into_iter()
                    .filter_map(|r| by_id.get(r).copied())
                    .filter(|e| kind(e) == "software_Package")
                    .find_map(package_subject)
            })
            .or_else(|| doc?.get("name")?.as_str().map(str::to_string)),
    };
    let subject = subject.filter(|s| valid_key_text(s)).ok_or_else(|| {
        invalid(
            "/@graph",
            "SBOM names no subject: needs a root package or a document name; pass --subject",
        )
    })?;
    let purls: BTreeSet<&str> = packages.iter().filter_map(|p| purl(p)).collect();
    let spec = info
        .and_then(|i| i.get("specVersion"))
        .and_then(Value::as_str)
        .unwrap_or("3.0");
    let normalized = json!({
        "schema": "stellamirror.sbom.v1",
        "format": "spdx",
        "subject": subject,
        "specVersion": format!("SPDX-{spec}"),
        "documentNamespace": id,
        "packages": purls,
    });
    Ok(super::cyclonedx::sbom_records(subject, id, &v, &normalized, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The element shapes of spdx/spdx-examples `software/example12/spdx3.0/hello-src.spdx.json`
    /// (ids shortened) and of CMake's SPDX 3 output (a root package inline).
    #[test]
    fn document_id_root_package_and_purls() {
        let v = json!({
            "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld",
            "@graph": [
                {"@id": "_:creationInfo_0", "type": "CreationInfo", "specVersion": "3.0.1", "created": "2022-11-04T11:11:52Z"},
                {"spdxId": "https://ex/doc/rel1", "type": "Relationship", "relationshipType": "describes",
                 "to": ["https://ex/doc/pkg"], "from": "https://ex/doc/document0", "creationInfo": "_:creationInfo_0"},
                {"spdxId": "https://ex/doc/document0", "type": "SpdxDocument", "name": "hello-src", "creationInfo": "_:creationInfo_0"},
                {"spdxId": "https://ex/doc/pkg", "type": "software_Package", "name": "hello", "software_packageVersion": "0.0.1",
                 "creationInfo": "_:creationInfo_0"},
                {"spdxId": "https://ex/doc/dep", "type": "software_Package", "name": "hyper", "software_packageUrl": "pkg:cargo/hyper@0.14"}
            ]
        });
        assert!(is_spdx3(&v));
        let d = parse(v, &ParseContext::default(), Some("hello-src.spdx.json")).expect("valid");
        assert_eq!(d.primary.id, "https://ex/doc/document0");
        assert_eq!(d.primary.subject, "hello@0.0.1");
        assert_eq!(d.primary.modified, crate::model::parse_time("2022-11-04T11:11:52Z"));
        let n: Value = serde_json::from_slice(&d.derived[0].bytes).unwrap();
        assert_eq!(n["packages"], json!(["pkg:cargo/hyper@0.14"]));
        assert_eq!(n["specVersion"], "SPDX-3.0.1");
        let inline = json!({"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": [
            {"type": "SpdxDocument", "spdxId": "urn:test_targets#SPDXDocument", "name": "test_targets",
             "rootElement": [{"spdxId": "urn:test#Package", "name": "test", "type": "software_Package"}]}]});
        let d = parse(inline, &ParseContext::default(), None).expect("valid");
        assert_eq!(
            (d.primary.id.as_str(), d.primary.subject.as_str()),
            ("urn:test_targets#SPDXDocument", "test")
        );
    }
}
