//! Index files read as a stream: each subject entry is parsed, handed to a sink and
//! dropped, so an index of millions of records is never held in memory (the verifier keeps
//! a digest of it, `verify_data`). The rules are [`super::records::IndexFile::validate`]'s,
//! applied as the entries pass: a known `formatVersion`, known collection names, counts
//! within bounds, and the per-record `hash` each version requires.
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

use super::error::BundleError;
use super::format::{INDEX_FORMAT_VERSION, INDEX_FORMAT_VERSION_1};
use super::layout::{layout, FileLayout};
use super::records::IndexSubject;
use crate::model::Collection;

/// What the reader learnt of one collection besides its subjects.
#[derive(Debug, Default)]
pub struct CollectionHead {
    pub root: Option<String>,
    pub records: u64,
    /// Index records that carry a `hash`, and those that do not.
    pub hashed: u64,
    pub unhashed: u64,
    /// The first record without a hash (subject, id), for the refusal.
    first_unhashed: Option<(String, String)>,
}

/// An index file's version and collection heads, once its subjects have been streamed.
#[derive(Debug, Default)]
pub struct IndexHead {
    pub format_version: u32,
    pub collections: BTreeMap<Collection, CollectionHead>,
}

/// Receives each subject entry of the index, in file order.
pub type SubjectSink<'a> = &'a mut dyn FnMut(Collection, String, IndexSubject) -> Result<(), BundleError>;

/// Stream index file `path` from `reader`, handing each subject entry to `sink`. Memory is
/// one subject entry at a time plus the collection heads.
pub fn stream_index(path: &str, reader: impl Read, sink: SubjectSink<'_>) -> Result<IndexHead, BundleError> {
    let mut state = State {
        path,
        sink,
        failed: None,
        version: None,
        head: IndexHead::default(),
    };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    let parsed = FileSeed(&mut state).deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = state.failed.take() {
        return Err(e);
    }
    parsed.map_err(|e| malformed(path, format!("index does not parse: {e}")))?;
    let version = state
        .version
        .ok_or_else(|| malformed(path, "index does not parse: missing field `formatVersion`".into()))?;
    let mut head = state.head;
    head.format_version = version;
    check_hashes(path, &head)?;
    Ok(head)
}

fn malformed(path: &str, reason: String) -> BundleError {
    BundleError::Malformed {
        path: path.into(),
        reason,
    }
}

fn check_version(path: &str, v: u32) -> Result<(), BundleError> {
    if [INDEX_FORMAT_VERSION_1, INDEX_FORMAT_VERSION].contains(&v) {
        return Ok(());
    }
    Err(malformed(
        path,
        format!("unsupported formatVersion {v} (this stellamirror reads index formatVersion {INDEX_FORMAT_VERSION_1} and {INDEX_FORMAT_VERSION}); upgrade stellamirror"),
    ))
}

/// Every record carries the `hash` its version requires (index format 1: all; format 2:
/// one-file-per-subject collections).
fn check_hashes(path: &str, head: &IndexHead) -> Result<(), BundleError> {
    for (c, h) in &head.collections {
        let per_subject = matches!(layout(*c), FileLayout::PerSubject(..));
        if head.format_version != INDEX_FORMAT_VERSION_1 && !per_subject {
            continue;
        }
        if let Some((subject, id)) = &h.first_unhashed {
            return Err(malformed(
                path,
                format!(
                    "{} subject {subject:?} record {id:?} has no hash (formatVersion {})",
                    c.name(),
                    head.format_version
                ),
            ));
        }
    }
    Ok(())
}

struct State<'s, 'f> {
    path: &'s str,
    sink: SubjectSink<'f>,
    /// A refusal raised inside the parser (serde errors carry only text).
    failed: Option<BundleError>,
    version: Option<u32>,
    head: IndexHead,
}

impl State<'_, '_> {
    fn fail<E: serde::de::Error>(&mut self, e: BundleError) -> E {
        self.failed = Some(e);
        E::custom("refused")
    }
}

struct FileSeed<'a, 's, 'f>(&'a mut State<'s, 'f>);

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an index object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut collections = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "formatVersion" if self.0.version.is_some() => return Err(A::Error::duplicate_field("formatVersion")),
                "formatVersion" => {
                    let v: u32 = map.next_value()?;
                    if let Err(e) = check_version(self.0.path, v) {
                        return Err(self.0.fail(e));
                    }
                    self.0.version = Some(v);
                }
                "collections" if collections => return Err(A::Error::duplicate_field("collections")),
                "collections" => {
                    collections = true;
                    map.next_value_seed(CollectionsSeed(&mut *self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !collections {
            return Err(A::Error::missing_field("collections"));
        }
        Ok(())
    }
}

struct CollectionsSeed<'a, 's, 'f>(&'a mut State<'s, 'f>);

impl<'de> DeserializeSeed<'de> for CollectionsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of collections")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(name) = map.next_key::<String>()? {
            let c = match super::validate::index_collection(state.path, &name) {
                Ok(c) => c,
                Err(e) => return Err(state.fail(e)),
            };
            if state.head.collections.contains_key(&c) {
                let e = malformed(state.path, format!("collection {name} is listed twice"));
                return Err(state.fail(e));
            }
            let head = map.next_value_seed(CollectionSeed { state: &mut *state, c })?;
            state.head.collections.insert(c, head);
        }
        Ok(())
    }
}

struct CollectionSeed<'a, 's, 'f> {
    state: &'a mut State<'s, 'f>,
    c: Collection,
}

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_, '_, '_> {
    type Value = CollectionHead;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<CollectionHead, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_, '_, '_> {
    type Value = CollectionHead;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an index collection")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CollectionHead, A::Error> {
        let mut head = CollectionHead::default();
        let (mut root, mut records, mut subjects) = (false, false, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "root" if root => return Err(A::Error::duplicate_field("root")),
                "root" => {
                    root = true;
                    head.root = map.next_value()?;
                }
                "records" if records => return Err(A::Error::duplicate_field("records")),
                "records" => {
                    records = true;
                    head.records = map.next_value()?;
                    let checked = super::validate::index_records(self.state.path, self.c.name(), head.records);
                    if let Err(e) = checked {
                        return Err(self.state.fail(e));
                    }
                }
                "subjects" if subjects => return Err(A::Error::duplicate_field("subjects")),
                "subjects" => {
                    subjects = true;
                    map.next_value_seed(SubjectsSeed {
                        state: &mut *self.state,
                        c: self.c,
                        head: &mut head,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // `root` may be absent (it is optional in the whole-file parser too).
        for (seen, field) in [(records, "records"), (subjects, "subjects")] {
            if !seen {
                return Err(A::Error::missing_field(field));
            }
        }
        Ok(head)
    }
}

struct SubjectsSeed<'a, 's, 'f> {
    state: &'a mut State<'s, 'f>,
    c: Collection,
    head: &'a mut CollectionHead,
}

impl<'de> DeserializeSeed<'de> for SubjectsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SubjectsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of subjects")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(subject) = map.next_key::<String>()? {
            let entry: IndexSubject = map.next_value()?;
            for (id, r) in &entry.records {
                if r.hash.is_some() {
                    self.head.hashed += 1;
                } else {
                    self.head.unhashed += 1;
                    if self.head.first_unhashed.is_none() {
                        self.head.first_unhashed = Some((subject.clone(), id.clone()));
                    }
                }
            }
            if let Err(e) = (self.state.sink)(self.c, subject, entry) {
                return Err(self.state.fail(e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> Result<(IndexHead, Vec<(Collection, String)>), BundleError> {
        let mut seen = Vec::new();
        let head = stream_index("indexes/x.index.json", text.as_bytes(), &mut |c, s, _| {
            seen.push((c, s));
            Ok(())
        })?;
        Ok((head, seen))
    }

    const ENTRY: &str = r#"{"shard":"00","root":null,"file":"f","records":{"A":{"modified":null}}}"#;

    #[test]
    fn subjects_are_streamed_in_file_order_with_their_collection_heads() {
        let text = format!(
            r#"{{"formatVersion":2,"collections":{{"vex.raw":{{"root":"r","records":2,"shards":{{}},"subjects":{{"b":{ENTRY},"a":{ENTRY}}}}}}}}}"#
        );
        let (head, seen) = stream(&text).unwrap();
        assert_eq!(head.format_version, 2);
        let names: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let h = &head.collections[&Collection::VexRaw];
        assert_eq!(
            (h.root.as_deref(), h.records, h.hashed, h.unhashed),
            (Some("r"), 2, 0, 2)
        );
    }

    #[test]
    fn the_index_rules_are_those_of_the_whole_file_parser() {
        let bad_version = r#"{"formatVersion":99,"collections":{}}"#;
        assert!(stream(bad_version)
            .unwrap_err()
            .to_string()
            .contains("formatVersion 99"));
        let unknown = r#"{"formatVersion":2,"collections":{"nope":{"root":null,"records":0,"subjects":{}}}}"#;
        assert!(stream(unknown).unwrap_err().to_string().contains("is not a collection"));
        let twice = r#"{"formatVersion":2,"collections":{"vex.raw":{"root":null,"records":0,"subjects":{}},"vex.raw":{"root":null,"records":0,"subjects":{}}}}"#;
        assert!(stream(twice).unwrap_err().to_string().contains("listed twice"));
        let unhashed_v1 = format!(
            r#"{{"formatVersion":1,"collections":{{"vex.raw":{{"root":null,"records":1,"subjects":{{"s":{ENTRY}}}}}}}}}"#
        );
        assert!(stream(&unhashed_v1).unwrap_err().to_string().contains("has no hash"));
        assert!(stream(r#"{"collections":{}}"#)
            .unwrap_err()
            .to_string()
            .contains("formatVersion"));
        assert!(stream(r#"{"formatVersion":2,"collections":{}} x"#).is_err());
    }
}
