//! SPDX 2.x tag-value documents (`.spdx`, docs/formats.md#spdx-tag-value): read into the
//! JSON shape of the same document (the fields [`super::spdx`] uses: version, name,
//! namespace, creation time, packages with their purls, DESCRIBES relationships) and
//! mapped like SPDX JSON. The raw record keeps the text exactly as received, as the one
//! string of `{"spdxTagValue": …}` (raw records are JSON).
use serde_json::{json, Map, Value};

use super::{invalid, DocError, ParseContext, ParsedDoc};

/// Whether `bytes` start like a tag-value document (`SPDXVersion:` on its first
/// non-comment line).
pub fn is_tag_value(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("SPDXVersion:"))
}

/// The `(tag, value)` pairs of a document; `<text>…</text>` values may span lines.
fn pairs(text: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((tag, value)) = t.split_once(':') else {
            continue;
        };
        let mut value = value.trim().to_string();
        if value.starts_with("<text>") && !value.contains("</text>") {
            for more in lines.by_ref() {
                value.push('\n');
                value.push_str(more);
                if more.contains("</text>") {
                    break;
                }
            }
        }
        out.push((tag.trim(), value));
    }
    out
}

/// The JSON shape of a tag-value document (only the fields the SBOM mapping reads).
fn json_shape(text: &str) -> Value {
    let mut doc = Map::new();
    let mut packages: Vec<Map<String, Value>> = Vec::new();
    let mut relationships = Vec::new();
    let mut describes = Vec::new();
    // SPDXID before any package names the document; after PackageName, the package.
    for (tag, value) in pairs(text) {
        let pkg = packages.last_mut();
        match (tag, pkg) {
            ("SPDXVersion", _) => {
                doc.insert("spdxVersion".into(), value.into());
            }
            ("DocumentName", _) => {
                doc.insert("name".into(), value.into());
            }
            ("DocumentNamespace", _) => {
                doc.insert("documentNamespace".into(), value.into());
            }
            ("Created", _) => {
                doc.insert("creationInfo".into(), json!({"created": value}));
            }
            ("DocumentDescribes", _) => describes.extend(value.split(',').map(|s| Value::from(s.trim()))),
            ("PackageName", _) => packages.push(Map::from_iter([("name".to_string(), Value::from(value))])),
            ("FileName" | "SnippetSPDXID", _) => packages.push(Map::new()),
            ("SPDXID", Some(p)) => {
                p.insert("SPDXID".into(), value.into());
            }
            ("PackageVersion", Some(p)) => {
                p.insert("versionInfo".into(), value.into());
            }
            ("ExternalRef", Some(p)) => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let [category, kind, locator, ..] = parts[..] {
                    let r = json!({"referenceCategory": category, "referenceType": kind, "referenceLocator": locator});
                    if let Some(a) = p.entry("externalRefs").or_insert_with(|| json!([])).as_array_mut() {
                        a.push(r);
                    }
                }
            }
            ("Relationship", _) => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let [from, kind, to, ..] = parts[..] {
                    relationships
                        .push(json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to}));
                }
            }
            _ => {}
        }
    }
    // Files and snippets were pushed as empty placeholders: they are not packages.
    let packages: Vec<Value> = packages
        .into_iter()
        .filter(|p| p.contains_key("name"))
        .map(Value::Object)
        .collect();
    doc.insert("packages".into(), packages.into());
    doc.insert("relationships".into(), relationships.into());
    doc.insert("documentDescribes".into(), describes.into());
    Value::Object(doc)
}

pub fn parse(bytes: &[u8], ctx: &ParseContext, name: Option<&str>) -> Result<ParsedDoc, DocError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| invalid("", format!("an SPDX tag-value document must be UTF-8: {e}")))?;
    let shape = json_shape(text);
    let raw = json!({ "spdxTagValue": text });
    super::spdx::parse_fields(&shape, &raw, ctx, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_purls_and_multiline_text_are_read() {
        let text = "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\nDocumentName: d\n\
            DocumentNamespace: https://example.com/d-1\nCreated: 2024-01-01T00:00:00Z\n\
            DocumentComment: <text>line one\nPackageName: not a tag inside text\n</text>\n\
            PackageName: p\nSPDXID: SPDXRef-p\nPackageVersion: 1.0\n\
            ExternalRef: PACKAGE-MANAGER purl pkg:npm/p@1.0\n\
            FileName: ./a\nSPDXID: SPDXRef-a\n\
            Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-p\n";
        assert!(is_tag_value(text.as_bytes()));
        let d = parse(text.as_bytes(), &ParseContext::default(), Some("d.spdx")).expect("valid");
        assert_eq!(d.primary.id, "https://example.com/d-1");
        assert_eq!(d.primary.subject, "pkg:npm/p@1.0");
        let raw: Value = serde_json::from_slice(&d.primary.bytes).unwrap();
        assert_eq!(raw["spdxTagValue"], text, "the text is kept exactly");
        let n: Value = serde_json::from_slice(&d.derived[0].bytes).unwrap();
        assert_eq!(n["packages"], json!(["pkg:npm/p@1.0"]));
    }
}
