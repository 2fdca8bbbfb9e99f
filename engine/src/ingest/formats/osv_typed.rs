//! OSV without a `serde_json::Value`: the bulk of every advisory feed, parsed into a
//! typed view borrowing from the input, and written out with [`canonical::compact`].
//!
//! [`parse_bytes`] returns exactly what `osv::parse(serde_json::from_slice(bytes))` returns
//! for a valid OSV document, or `None` — for anything it does not handle the same way
//! (another format's marker, a field of an unexpected type, an invalid time, a duplicate
//! key, invalid JSON), so that the caller takes the `Value` path, which also produces the
//! precise error. Tested for equality on every advisory of the corpora.
use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::canonical;
use super::{purl, NewRecord, ParsedDoc};
use crate::model::{parse_time, valid_key_text, Collection};

/// A present field, `null` included (`Option` alone would read `null` as absent, and
/// the `Value` path tells them apart: `"aliases": null` stays null, a missing one is `[]`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Osv<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    modified: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    published: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    aliases: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    summary: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    withdrawn: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    severity: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    affected: Option<&'a RawValue>,
    // Markers of the formats detected before OSV (formats::parse_document).
    #[serde(rename = "bomFormat", default, borrow, deserialize_with = "present")]
    bom_format: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    document: Option<&'a RawValue>,
    #[serde(rename = "spdxVersion", default, borrow, deserialize_with = "present")]
    spdx_version: Option<&'a RawValue>,
    #[serde(rename = "@context", default, borrow, deserialize_with = "present")]
    context: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Affected<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    package: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    ranges: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    versions: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Package<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    purl: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    ecosystem: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    name: Option<&'a RawValue>,
}

fn is_object(r: &RawValue) -> bool {
    r.get().starts_with('{')
}

fn is_null(r: Option<&RawValue>) -> bool {
    r.is_none_or(|r| r.get() == "null")
}

/// The string a raw value holds, if it is one.
fn as_str<'a>(r: &'a RawValue) -> Option<Cow<'a, str>> {
    if !r.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'a, str>>(r.get()).ok()
}

/// A struct from a raw object (serde would also accept an array positionally).
fn object<'a, T: Deserialize<'a>>(r: &'a RawValue) -> Option<T> {
    is_object(r).then(|| serde_json::from_str(r.get()).ok()).flatten()
}

/// The compact form of an optional value, `default` when absent.
fn compact_or(r: Option<&RawValue>, default: &[u8]) -> Option<Vec<u8>> {
    match r {
        None => Some(default.to_vec()),
        Some(r) => canonical::compact(r.get().as_bytes()),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn put_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(b',');
    put_str(out, key);
    out.push(b':');
    out.extend_from_slice(value);
}

/// One normalized `packages[]` entry and its purl; None: take the `Value` path.
fn package(a: &Affected<'_>) -> Option<(String, Vec<u8>)> {
    let pkg: Package<'_> = object(a.package?)?;
    let purl = match pkg.purl.and_then(as_str) {
        Some(p) => purl::strip_version(&p),
        None => purl::from_osv_package(&as_str(pkg.ecosystem?)?, &as_str(pkg.name?)?),
    };
    let mut out = b"{\"purl\":".to_vec();
    put_str(&mut out, &purl);
    put_field(&mut out, "ecosystem", &compact_or(pkg.ecosystem, b"null")?);
    put_field(&mut out, "name", &compact_or(pkg.name, b"null")?);
    put_field(&mut out, "ranges", &compact_or(a.ranges, b"[]")?);
    put_field(&mut out, "versions", &compact_or(a.versions, b"[]")?);
    out.push(b'}');
    Some((purl, out))
}

/// See the module comment.
pub fn parse_bytes(bytes: &[u8]) -> Option<ParsedDoc> {
    // The typed scan first: it allocates nothing, so other formats fall back cheaply.
    let v: Osv<'_> = serde_json::from_slice(bytes).ok()?;
    if v.bom_format.is_some() || v.document.is_some() || v.spdx_version.is_some() || v.context.is_some() {
        return None;
    }
    let raw = canonical::compact(bytes)?;
    if raw.first() != Some(&b'{') {
        return None;
    }
    let id = as_str(v.id?)?;
    let modified_s = as_str(v.modified?)?;
    if !valid_key_text(&id) || !valid_key_text(&modified_s) {
        return None;
    }
    let modified = Some(parse_time(&modified_s)?);
    if !is_null(v.published) {
        parse_time(&as_str(v.published?)?)?;
    }
    let affected: Vec<&RawValue> = match v.affected {
        a if is_null(a) => Vec::new(),
        Some(a) if a.get().starts_with('[') => serde_json::from_str(a.get()).ok()?,
        _ => return None,
    };
    let mut subject = None;
    let mut packages = b"[".to_vec();
    for a in affected {
        // Entries that are not objects, or have no package, name no package.
        let Some(a) = object::<Affected<'_>>(a) else {
            if is_object(a) {
                return None;
            }
            continue;
        };
        if a.package.is_none() {
            continue;
        }
        let (purl, entry) = package(&a)?;
        if packages.len() > 1 {
            packages.push(b',');
        }
        packages.extend_from_slice(&entry);
        subject.get_or_insert(purl);
    }
    packages.push(b']');
    let subject = subject.unwrap_or_else(|| format!("advisory:{id}"));
    let mut n = br#"{"schema":"stellamirror.advisory.v1","format":"osv","id":"#.to_vec();
    put_str(&mut n, &id);
    put_field(&mut n, "aliases", &compact_or(v.aliases, b"[]")?);
    put_field(&mut n, "summary", &compact_or(v.summary, b"null")?);
    let mut m = Vec::new();
    put_str(&mut m, &modified_s);
    put_field(&mut n, "modified", &m);
    put_field(&mut n, "published", &compact_or(v.published, b"null")?);
    put_field(&mut n, "withdrawn", &compact_or(v.withdrawn, b"null")?);
    put_field(&mut n, "severity", &compact_or(v.severity, b"[]")?);
    put_field(&mut n, "packages", &packages);
    n.push(b'}');
    Some(ParsedDoc {
        primary: NewRecord {
            collection: Collection::AdvisoriesRaw,
            subject: subject.clone(),
            id: id.to_string(),
            bytes: raw,
            modified,
        },
        derived: vec![NewRecord {
            collection: Collection::AdvisoriesNormalized,
            subject,
            id: id.into_owned(),
            bytes: n,
            modified,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::{parse_document, ParseContext};

    fn corpora() -> Vec<std::path::PathBuf> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out: Vec<_> = [
            "tests/data/osv/go-new.jsonl",
            "tests/data/osv/go-old.jsonl",
            "tests/data/osv/pypa.jsonl",
        ]
        .iter()
        .map(|p| root.join(p))
        .collect();
        for shared in [
            "advisories/go.jsonl",
            "advisories/pypa.jsonl",
            "history/pypa-2022-01-14.jsonl",
        ] {
            let p = root.join("../shared/data").join(shared);
            if p.exists() {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn the_typed_path_gives_exactly_the_value_path_on_every_advisory_of_the_corpora() {
        let mut n = 0;
        for f in corpora() {
            for line in std::fs::read_to_string(&f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let slow = parse_document(v, &ParseContext::default(), None).unwrap();
                let fast = parse_bytes(line.as_bytes()).unwrap_or_else(|| panic!("{}: not taken: {line}", f.display()));
                assert_eq!(fast, slow, "{}", f.display());
                n += 1;
            }
        }
        assert!(n > 100);
    }

    #[test]
    fn edge_cases_match_the_value_path_or_fall_back_to_it() {
        let taken = [
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":null,"aliases":null,"summary":"s\/x"}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":[1,{"ranges":[]},{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},"versions":["1.0"]}]}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"purl":"pkg:npm/%40s/a@1","ecosystem":3}}]}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"purl":7,"ecosystem":"Go","name":"x"}}]}"#,
            r#" {"id":"\u0041-1", "modified":"2024-01-01T00:00:00Z", "published":null, "x":{"y":[1.50,-0]}} "#,
        ];
        for c in taken {
            let v: serde_json::Value = serde_json::from_str(c).unwrap();
            let slow = parse_document(v, &ParseContext::default(), None).unwrap();
            assert_eq!(parse_bytes(c.as_bytes()), Some(slow), "{c}");
        }
        let fallback = [
            r#"{"id":"A-1","modified":"not a time"}"#,
            r#"{"id":7,"modified":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","published":"bad"}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":{}}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":"x"}]}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":null}]}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","id":"A-2"}"#,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z","@context":"https://openvex.dev/ns"}"#,
            r#"["A-1","2024-01-01T00:00:00Z"]"#,
        ];
        for c in fallback {
            assert_eq!(parse_bytes(c.as_bytes()), None, "{c}");
        }
    }
}
