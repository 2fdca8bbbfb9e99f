//! OpenVEX documents: raw document + one normalized statement per vulnerability ×
//! product. Statement id: `<vulnerability>|<product>|<document id>`, so the statements
//! about one (vulnerability, product) pair are adjacent in the store (consensus reads
//! them by prefix). Subject: the product purl without version.
//!
//! Document id: the file's name relative to the ingested directory when it came from a
//! file, else `@id`. OpenVEX `@id`s are not stable identities in practice: the Rancher
//! VEX Hub reuses 120 `@id`s across its 972 documents and changes a document's `@id`
//! whenever its content changes, so keying by `@id` would merge distinct documents and
//! turn every update into remove + add.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{compact, invalid, optional_time, purl, required_key_str, DocError, NewRecord, ParsedDoc};
use crate::model::{valid_key_text, Collection};

pub const STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];

/// `{"@id": ...}` objects or bare strings (OpenVEX 0.0.x).
fn id_of(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(_) => v.get("@id").and_then(Value::as_str),
        _ => None,
    }
}

pub fn parse(v: Value, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    // `@id` is required by the spec even though it is not used as the identity here.
    let at_id = required_key_str(&v, "@id", "/@id")?;
    let doc_id = match name {
        Some(n) if valid_key_text(n) => n.to_string(),
        _ => at_id.to_string(),
    };
    let doc_time = optional_time(&v, "timestamp", "/timestamp")?;
    let author = v.get("author").cloned().unwrap_or(Value::Null);
    let statements = match v.get("statements") {
        Some(Value::Array(a)) => a,
        _ => return Err(invalid("/statements", "`statements` must be an array")),
    };
    let mut derived: BTreeMap<String, NewRecord> = BTreeMap::new();
    let mut doc_modified = doc_time;
    let mut first_subject = None;
    for (i, s) in statements.iter().enumerate() {
        let p = format!("/statements/{i}");
        let vuln = s
            .get("vulnerability")
            .and_then(|x| match x {
                Value::String(s) => Some(s.as_str()),
                Value::Object(_) => x.get("name").or_else(|| x.get("@id")).and_then(Value::as_str),
                _ => None,
            })
            .filter(|s| valid_key_text(s))
            .ok_or_else(|| invalid(&format!("{p}/vulnerability"), "statement needs a vulnerability name"))?;
        let status = s
            .get("status")
            .and_then(Value::as_str)
            .filter(|st| STATUSES.contains(st))
            .ok_or_else(|| invalid(&format!("{p}/status"), format!("status must be one of {STATUSES:?}")))?;
        let ts = optional_time(s, "timestamp", &format!("{p}/timestamp"))?.or(doc_time);
        if let Some(t) = ts {
            doc_modified = Some(doc_modified.map_or(t, |d: i64| d.max(t)));
        }
        let products = match s.get("products") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(invalid(
                    &format!("{p}/products"),
                    "statement needs a non-empty `products` array",
                ))
            }
        };
        let aliases = s
            .get("vulnerability")
            .and_then(|x| x.get("aliases"))
            .cloned()
            .unwrap_or(json!([]));
        for (j, prod) in products.iter().enumerate() {
            let pid = id_of(prod)
                .filter(|x| valid_key_text(x))
                .ok_or_else(|| invalid(&format!("{p}/products/{j}"), "product needs an `@id`"))?;
            let subject = purl::strip_version(pid);
            first_subject.get_or_insert_with(|| subject.clone());
            let subcomponents: Vec<&str> = prod
                .get("subcomponents")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(id_of).collect())
                .unwrap_or_default();
            let id = format!("{vuln}|{pid}|{doc_id}");
            let n = json!({
                "schema": "stellamirror.vex.v1",
                "format": "openvex",
                "document": doc_id,
                "author": author,
                "vulnerability": vuln,
                "aliases": aliases,
                "product": pid,
                "subcomponents": subcomponents,
                "status": status,
                "justification": s.get("justification"),
                "impactStatement": s.get("impact_statement"),
                "actionStatement": s.get("action_statement"),
                "timestamp": ts.map(crate::model::format_time),
            });
            // Statements about the same pair in one document: the newest timestamp wins
            // (real documents append out of order: Rancher's kube-rbac-proxy document
            // lists a 2026-07-27 statement before a 2026-07-25 one); on equal or missing
            // timestamps the later statement in the document wins.
            if let Some(prev) = derived.get(&id) {
                if prev.modified.zip(ts).is_some_and(|(p, t)| t < p) {
                    continue;
                }
            }
            derived.insert(
                id.clone(),
                NewRecord {
                    collection: Collection::VexNormalized,
                    subject,
                    id,
                    bytes: compact(&n),
                    modified: ts,
                },
            );
        }
    }
    let subject = first_subject.unwrap_or_else(|| format!("vex-document:{doc_id}"));
    Ok(ParsedDoc {
        primary: NewRecord {
            collection: Collection::VexRaw,
            subject,
            id: doc_id,
            bytes: compact(&v),
            modified: doc_modified,
        },
        derived: derived.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_statement_about_a_pair_wins_whatever_its_position() {
        let doc = serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a",
            "statements": [
                {"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:golang/p"}], "status": "fixed", "timestamp": "2026-07-27T00:00:00Z"},
                {"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:golang/p"}], "status": "affected", "timestamp": "2026-07-25T00:00:00Z"},
                {"vulnerability": {"name": "CVE-2"}, "products": [{"@id": "pkg:golang/p"}], "status": "affected"},
                {"vulnerability": {"name": "CVE-2"}, "products": [{"@id": "pkg:golang/p"}], "status": "not_affected", "justification": "component_not_present"}
            ]
        });
        let d = parse(doc, Some("doc.json")).unwrap();
        let status = |id: &str| {
            let r = d.derived.iter().find(|r| r.id == id).unwrap();
            serde_json::from_slice::<Value>(&r.bytes).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(status("CVE-1|pkg:golang/p|doc.json"), "fixed");
        assert_eq!(status("CVE-2|pkg:golang/p|doc.json"), "not_affected");
    }
}
