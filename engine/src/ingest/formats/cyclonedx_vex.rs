//! CycloneDX VEX: a CycloneDX document whose `vulnerabilities[]` carry an `analysis`
//! (docs/formats.md#cyclonedx-vex). Raw VEX document + one `stellamirror.vex.v1`
//! statement per vulnerability × product, id `<vulnerability>|<product>|<document id>`.
//!
//! Document id: `serialNumber` (CycloneDX keeps it across versions of one BOM), else the
//! file name (the CISA and CycloneDX examples have no serial number), as for OpenVEX.
//!
//! Products: each `affects[].ref` resolved to the component it names in this BOM (its
//! purl, else `name@version`); a BOM-Link (`urn:cdx:<serial>/<version>#<ref>`) to a
//! purl is that purl, any other BOM-Link stays as written. A vulnerability without
//! `affects` is about `metadata.component`; with neither it names no product and yields
//! no statement (the raw document keeps it). `affects[].versions` make one statement
//! per listed version or range (`<product>@<version>`), because CycloneDX states a
//! status per version: one vulnerability listed twice (exploitable for some versions,
//! not_affected for others, CISA use case 6) is then two sets of distinct products
//! instead of two statements fighting over one.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{compact, invalid, optional_time, purl, purl_has_version, with_version, DocError, NewRecord, ParsedDoc};
use crate::model::{valid_key_text, Collection};

/// `analysis.state` → VEX status.
const STATES: [(&str, &str); 6] = [
    ("resolved", "fixed"),
    ("resolved_with_pedigree", "fixed"),
    ("exploitable", "affected"),
    ("in_triage", "under_investigation"),
    ("false_positive", "not_affected"),
    ("not_affected", "not_affected"),
];

/// `analysis.justification` → the OpenVEX justification of the same meaning.
const JUSTIFICATIONS: [(&str, &str); 9] = [
    ("code_not_present", "vulnerable_code_not_present"),
    ("code_not_reachable", "vulnerable_code_not_in_execute_path"),
    (
        "requires_configuration",
        "vulnerable_code_cannot_be_controlled_by_adversary",
    ),
    ("requires_dependency", "component_not_present"),
    (
        "requires_environment",
        "vulnerable_code_cannot_be_controlled_by_adversary",
    ),
    ("protected_by_compiler", "inline_mitigations_already_exist"),
    ("protected_at_runtime", "inline_mitigations_already_exist"),
    ("protected_at_perimeter", "inline_mitigations_already_exist"),
    ("protected_by_mitigating_control", "inline_mitigations_already_exist"),
];

/// A CycloneDX document is VEX when some vulnerability carries an analysis.
pub fn is_vex(v: &Value) -> bool {
    v.get("vulnerabilities")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.get("analysis").is_some_and(Value::is_object)))
}

/// A product a statement can name: (product, subject, names a version).
#[derive(Clone)]
struct Target {
    product: String,
    subject: String,
    versioned: bool,
}

fn component_target(c: &Value) -> Option<Target> {
    if let Some(p) = c.get("purl").and_then(Value::as_str).filter(|p| valid_key_text(p)) {
        return Some(Target {
            product: p.to_string(),
            subject: purl::strip_version(p),
            versioned: purl_has_version(p),
        });
    }
    let name = c.get("name").and_then(Value::as_str).filter(|n| valid_key_text(n))?;
    Some(
        match c.get("version").and_then(Value::as_str).filter(|v| !v.is_empty()) {
            Some(ver) => Target {
                product: format!("{name}@{ver}"),
                subject: name.to_string(),
                versioned: true,
            },
            None => Target {
                product: name.to_string(),
                subject: name.to_string(),
                versioned: false,
            },
        },
    )
}

fn index_components<'a>(list: Option<&'a Value>, out: &mut BTreeMap<&'a str, &'a Value>) {
    for c in list.and_then(Value::as_array).into_iter().flatten() {
        if let Some(r) = c.get("bom-ref").and_then(Value::as_str) {
            out.entry(r).or_insert(c);
        }
        index_components(c.get("components"), out);
    }
}

fn resolve(r: &str, refs: &BTreeMap<&str, &Value>) -> Target {
    if let Some(t) = refs.get(r).and_then(|c| component_target(c)) {
        return t;
    }
    if let Some(rest) = r.strip_prefix("urn:cdx:") {
        if let Some((bom, frag)) = rest.split_once('#') {
            if frag.starts_with("pkg:") && valid_key_text(frag) {
                return Target {
                    product: frag.to_string(),
                    subject: purl::strip_version(frag),
                    versioned: purl_has_version(frag),
                };
            }
            // The BOM's version is not part of the product's identity.
            let serial = bom.split('/').next().unwrap_or(bom);
            return Target {
                product: r.to_string(),
                subject: format!("urn:cdx:{serial}#{frag}"),
                versioned: false,
            };
        }
    }
    Target {
        product: r.to_string(),
        subject: r.to_string(),
        versioned: false,
    }
}

fn author_of(v: &Value) -> Value {
    let m = v.get("metadata");
    let named = |k: &str| m.and_then(|m| m.get(k)).and_then(|x| x.get("name")).cloned();
    named("manufacture")
        .or_else(|| named("manufacturer"))
        .or_else(|| named("supplier"))
        .or_else(|| {
            let a = m?.get("authors")?.as_array()?.first()?;
            a.get("name").cloned()
        })
        .unwrap_or(Value::Null)
}

/// The document's own id: its `serialNumber`, else the name it was read under.
fn doc_id_of(v: &Value, name: Option<&str>) -> Result<String, DocError> {
    let serial = v
        .get("serialNumber")
        .and_then(Value::as_str)
        .filter(|s| valid_key_text(s));
    serial
        .or(name.filter(|n| valid_key_text(n)))
        .map(str::to_string)
        .ok_or_else(|| {
            invalid(
                "/serialNumber",
                "a CycloneDX VEX document read from JSON Lines needs a serialNumber",
            )
        })
}

/// The OpenVEX status of an analysis `state` (at JSON pointer `p` of its vulnerability).
fn status_of(state: &Value, p: &str) -> Result<&'static str, DocError> {
    state
        .as_str()
        .and_then(|s| STATES.iter().find(|(k, _)| *k == s))
        .map(|(_, st)| *st)
        .ok_or_else(|| {
            invalid(
                &format!("{p}/analysis/state"),
                format!("state must be one of {}", STATES.map(|s| s.0).join(", ")),
            )
        })
}

/// The (target, versions entry) pairs vulnerability `vuln` (at pointer `p`) is about; no
/// `affects` means the document's subject component.
fn targets_of<'v>(
    vuln: &'v Value,
    p: &str,
    refs: &BTreeMap<&str, &Value>,
    subject_component: &Option<Target>,
) -> Result<Vec<(Target, Option<&'v Value>)>, DocError> {
    let mut targets = Vec::new();
    match vuln.get("affects") {
        Some(Value::Array(a)) if !a.is_empty() => {
            for (j, af) in a.iter().enumerate() {
                let r = af
                    .get("ref")
                    .and_then(Value::as_str)
                    .filter(|s| valid_key_text(s))
                    .ok_or_else(|| invalid(&format!("{p}/affects/{j}/ref"), "`ref` must be a non-empty string"))?;
                let t = resolve(r, refs);
                let versions = af.get("versions").and_then(Value::as_array).filter(|vs| !vs.is_empty());
                match versions {
                    Some(vs) if !t.versioned => targets.extend(vs.iter().map(|x| (t.clone(), Some(x)))),
                    _ => targets.push((t, None)),
                }
            }
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            targets.extend(subject_component.clone().map(|t| (t, None)))
        }
        Some(_) => return Err(invalid(&format!("{p}/affects"), "`affects` must be an array")),
    }
    Ok(targets)
}

pub fn parse(v: Value, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    let doc_id = doc_id_of(&v, name)?;
    let doc_time = match v.get("metadata") {
        Some(m) => optional_time(m, "timestamp", "/metadata/timestamp")?,
        None => None,
    };
    let author = author_of(&v);
    let mut refs = BTreeMap::new();
    if let Some(c) = v.get("metadata").and_then(|m| m.get("component")) {
        if let Some(r) = c.get("bom-ref").and_then(Value::as_str) {
            refs.insert(r, c);
        }
    }
    index_components(v.get("components"), &mut refs);
    let subject_component = v
        .get("metadata")
        .and_then(|m| m.get("component"))
        .and_then(component_target);
    let vulns = match v.get("vulnerabilities") {
        Some(Value::Array(a)) => a,
        _ => return Err(invalid("/vulnerabilities", "`vulnerabilities` must be an array")),
    };
    let mut derived: BTreeMap<String, NewRecord> = BTreeMap::new();
    let mut modified = doc_time;
    for (i, vuln) in vulns.iter().enumerate() {
        let p = format!("/vulnerabilities/{i}");
        let Some(analysis) = vuln.get("analysis") else {
            continue;
        };
        // An analysis without a state states nothing about exploitability.
        let Some(state) = analysis.get("state") else {
            continue;
        };
        let status = status_of(state, &p)?;
        let vid = vuln
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| valid_key_text(s))
            .ok_or_else(|| invalid(&format!("{p}/id"), "a vulnerability needs an `id`"))?;
        let ap = format!("{p}/analysis");
        let ts = optional_time(analysis, "lastUpdated", &format!("{ap}/lastUpdated"))?
            .or(optional_time(analysis, "firstIssued", &format!("{ap}/firstIssued"))?)
            .or(optional_time(vuln, "updated", &format!("{p}/updated"))?)
            .or(optional_time(vuln, "published", &format!("{p}/published"))?)
            .or(doc_time);
        if let Some(t) = ts {
            modified = Some(modified.map_or(t, |m: i64| m.max(t)));
        }
        let raw_just = analysis.get("justification").and_then(Value::as_str);
        let justification = raw_just
            .and_then(|j| JUSTIFICATIONS.iter().find(|(k, _)| *k == j))
            .map(|(_, o)| *o);
        let detail = analysis.get("detail").cloned().unwrap_or(Value::Null);
        let na = status == "not_affected";
        let aliases: Vec<&str> = vuln
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("id").and_then(Value::as_str))
            .collect();
        for (t, ver) in targets_of(vuln, &p, &refs, &subject_component)? {
            let version = ver
                .and_then(|x| x.get("version").or_else(|| x.get("range")))
                .and_then(Value::as_str);
            let product = match version {
                Some(vv) if valid_key_text(vv) => with_version(&t.product, vv),
                _ => t.product.clone(),
            };
            let n = json!({
                "schema": "stellamirror.vex.v1",
                "format": "cyclonedx",
                "document": doc_id,
                "author": author,
                "vulnerability": vid,
                "aliases": aliases,
                "product": product,
                "status": status,
                "cyclonedxState": state,
                "versionStatus": ver.and_then(|x| x.get("status")),
                "justification": justification.filter(|_| na),
                "cyclonedxJustification": raw_just,
                "impactStatement": if na { detail.clone() } else { Value::Null },
                "actionStatement": if na { Value::Null } else { detail.clone() },
                "response": analysis.get("response"),
                "timestamp": ts.map(crate::model::format_time),
            });
            let id = format!("{vid}|{product}|{doc_id}");
            // The same pair twice in one document: the later entry supersedes.
            derived.insert(
                id.clone(),
                NewRecord {
                    collection: Collection::VexNormalized,
                    subject: t.subject.clone(),
                    id,
                    bytes: compact(&n),
                    modified: ts,
                },
            );
        }
    }
    let derived: Vec<NewRecord> = derived.into_values().collect();
    Ok(ParsedDoc {
        primary: NewRecord {
            collection: Collection::VexRaw,
            subject: derived
                .first()
                .map(|d| d.subject.clone())
                .unwrap_or_else(|| format!("vex-document:{doc_id}")),
            id: doc_id,
            bytes: compact(&v),
            modified,
        },
        derived,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_statements_and_bom_links_resolve() {
        let v = json!({
            "bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
            "metadata": {"timestamp": "2022-03-03T00:00:00Z", "component": {"name": "ABC", "bom-ref": "p"}},
            "vulnerabilities": [
                {"id": "CVE-1", "analysis": {"state": "exploitable"},
                 "affects": [{"ref": "p", "versions": [{"version": "2.4", "status": "affected"}]}]},
                {"id": "CVE-1", "analysis": {"state": "not_affected", "justification": "code_not_present"},
                 "affects": [{"ref": "p", "versions": [{"range": "vers:generic/>=1.0|<=2.3", "status": "unaffected"}]}]},
                {"id": "CVE-2", "analysis": {"state": "resolved"},
                 "affects": [{"ref": "urn:cdx:abc/1#pkg:maven/g/a@1.0?type=jar"}]}
            ]
        });
        let d = parse(v, Some("x.json")).expect("valid");
        let ids: Vec<&str> = d.derived.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "CVE-1|ABC@2.4|x.json",
                "CVE-1|ABC@vers:generic/>=1.0|<=2.3|x.json",
                "CVE-2|pkg:maven/g/a@1.0?type=jar|x.json"
            ]
        );
        assert_eq!(d.derived[1].subject, "ABC");
        assert_eq!(d.derived[2].subject, "pkg:maven/g/a");
        let na: Value = serde_json::from_slice(&d.derived[1].bytes).expect("json");
        assert_eq!(
            (na["status"].as_str(), na["justification"].as_str()),
            (Some("not_affected"), Some("vulnerable_code_not_present"))
        );
    }

    #[test]
    fn unknown_state_is_invalid_with_pointer() {
        let v = json!({"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "X", "analysis": {"state": "maybe"}}]});
        match parse(v, Some("x.json")) {
            Err(DocError::Invalid { pointer, .. }) => {
                assert_eq!(pointer, "/vulnerabilities/0/analysis/state")
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }
}
