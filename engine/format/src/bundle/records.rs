//! Reading records back out of a staged bundle (verify and import share this).
use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use super::archive::Staged;
use super::error::BundleError;
use super::format::{RecordLine, INDEX_FORMAT_VERSION, INDEX_FORMAT_VERSION_1};
use super::layout::{layout, layouts_in, shard_path, unsafe_name, FileLayout};
use crate::ids::ObjectId;
use crate::model::{shard_of, Collection, Leaf};

/// Upper bound on one data file's decompressed size.
pub const MAX_FILE_BYTES: u64 = 16 << 30;

#[derive(Debug, Deserialize)]
pub struct IndexRecord {
    /// Parsed from `blake3:<hex>` (32 bytes instead of a 71-byte string per record).
    /// Index format 2 has it only for one-file-per-subject collections ([`IndexFile::validate`]).
    #[serde(default, deserialize_with = "object_id")]
    pub hash: Option<ObjectId>,
    pub modified: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct IndexSubject {
    pub shard: String,
    pub root: Option<String>,
    pub file: String,
    pub records: BTreeMap<String, IndexRecord>,
}

#[derive(Debug, Deserialize)]
pub struct IndexCollection {
    pub root: Option<String>,
    pub records: u64,
    pub subjects: BTreeMap<String, IndexSubject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexFile {
    pub format_version: u32,
    pub collections: BTreeMap<String, IndexCollection>,
}

/// Receives each record: subject, leaf, and the document's bytes.
pub type RecordVisitor<'a> = &'a mut dyn FnMut(&str, Leaf, &[u8]) -> Result<(), BundleError>;

/// [`RecordVisitor`] whose documents borrow from the data file's text (`'d`).
pub type LineVisitor<'a, 'd> = &'a mut dyn FnMut(&str, Leaf, &'d [u8]) -> Result<(), BundleError>;

fn object_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ObjectId>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    ObjectId::parse_prefixed(&s)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected blake3:<64 hex>"))
}

/// Decrypts a shipped file when its path is encrypted (identity otherwise).
pub type Opener<'a> = &'a dyn Fn(&str, Vec<u8>) -> Result<Vec<u8>, BundleError>;

pub fn read_plain(staged: &Staged, path: &str, open: Opener<'_>) -> Result<Vec<u8>, BundleError> {
    open(path, staged.read(path)?)
}

/// Parse an index file. `plain` says the file is not encrypted: it is then parsed
/// straight from disk instead of being read into memory first (indexes of millions of
/// records are hundreds of megabytes).
pub fn read_index(staged: &Staged, path: &str, open: Opener<'_>, plain: bool) -> Result<IndexFile, BundleError> {
    let malformed = |e: serde_json::Error| BundleError::Malformed {
        path: path.into(),
        reason: format!("index does not parse: {e}"),
    };
    if !plain {
        return IndexFile::parse(path, &read_plain(staged, path, open)?);
    }
    let f = std::fs::File::open(staged.root.join(path)).map_err(|_| BundleError::MissingFile { path: path.into() })?;
    let index: IndexFile = serde_json::from_reader(std::io::BufReader::with_capacity(1 << 20, f)).map_err(malformed)?;
    index.validate(path)?;
    Ok(index)
}

impl IndexFile {
    /// Parse index file `path` from its bytes.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Self, BundleError> {
        let index: IndexFile = serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed {
            path: path.into(),
            reason: format!("index does not parse: {e}"),
        })?;
        index.validate(path)?;
        Ok(index)
    }

    /// The version is one this reader knows, and every record carries the `hash` its
    /// version requires (hook for field-level rules as well).
    pub fn validate(&self, path: &str) -> Result<(), BundleError> {
        let malformed = |reason: String| BundleError::Malformed {
            path: path.into(),
            reason,
        };
        if ![INDEX_FORMAT_VERSION_1, INDEX_FORMAT_VERSION].contains(&self.format_version) {
            return Err(malformed(format!(
                "unsupported formatVersion {} (this stellamirror reads index formatVersion {INDEX_FORMAT_VERSION_1} and {INDEX_FORMAT_VERSION}); upgrade stellamirror",
                self.format_version
            )));
        }
        super::validate::index_counts(path, &self.collections)?;
        for (name, ic) in &self.collections {
            let per_subject =
                Collection::from_name(name).is_some_and(|c| matches!(layout(c), FileLayout::PerSubject(..)));
            if self.format_version != INDEX_FORMAT_VERSION_1 && !per_subject {
                continue;
            }
            for (subject, s) in &ic.subjects {
                if let Some((id, _)) = s.records.iter().find(|(_, r)| r.hash.is_none()) {
                    return Err(malformed(format!(
                        "{name} subject {subject:?} record {id:?} has no hash (formatVersion {})",
                        self.format_version
                    )));
                }
            }
        }
        Ok(())
    }
}

thread_local! {
    /// One zstd decompression context per thread, kept across files: a delta holds
    /// hundreds of small shard files, and making a context per file was a visible share of
    /// reading them.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub fn decompress(path: &str, bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    // Frames written by the exporter carry their size (one frame per file): decompressed
    // into a buffer of that size, with a kept context. Anything else — no size, a size
    // beyond the bound, more frames, or a size that does not hold — takes the streamed,
    // bounded decoder, so what is accepted does not depend on the fast path.
    let known = zstd::zstd_safe::get_frame_content_size(bytes).ok().flatten();
    let Some(size) = known.filter(|n| *n <= BULK_MAX_BYTES) else {
        return decompress_streamed(path, bytes);
    };
    let fast = DECOMPRESSOR.with(|cell| -> std::io::Result<Vec<u8>> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        let d = slot.as_mut().expect("set above");
        let mut out = Vec::with_capacity(size as usize);
        d.decompress_to_buffer(bytes, &mut out)?;
        Ok(out)
    });
    fast.or_else(|_| decompress_streamed(path, bytes))
}

/// Largest declared size decompressed in one buffer (larger files are streamed).
const BULK_MAX_BYTES: u64 = 256 << 20;

fn decompress_streamed(path: &str, bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    let dec = zstd::stream::read::Decoder::new(bytes).map_err(|e| BundleError::Malformed {
        path: path.into(),
        reason: format!("not zstd: {e}"),
    })?;
    dec.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| BundleError::Malformed {
            path: path.into(),
            reason: format!("zstd stream is corrupt: {e}"),
        })?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("{path} decompressed size"),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(out)
}

fn mismatch(path: &str, what: &str, expected: impl ToString, actual: impl ToString) -> BundleError {
    BundleError::DigestMismatch {
        path: path.into(),
        what: what.into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// Visit every record of collection `c` stored under `prefix` (`""` or `"changed/"`),
/// checking that each document hashes to its recorded id and sits in the right file.
/// `index` supplies id/modified for one-file-per-subject layouts; `bundle_format` (the
/// manifest's `formatVersion`) decides the layout.
#[allow(clippy::too_many_arguments)]
pub fn for_each_record(
    staged: &Staged,
    prefix: &str,
    bundle_format: u32,
    c: Collection,
    index: Option<&IndexCollection>,
    open: Opener<'_>,
    f: RecordVisitor<'_>,
) -> Result<(), BundleError> {
    for lay in layouts_in(c, bundle_format) {
        let files: Vec<String> = match lay {
            FileLayout::Sharded(dir) => (0..=255u8)
                .map(|s| format!("{prefix}{}", shard_path(dir, s)))
                .filter(|p| staged.files.contains_key(p))
                .collect(),
            FileLayout::Single(p) => {
                let p = format!("{prefix}{p}");
                if staged.files.contains_key(&p) {
                    vec![p]
                } else {
                    vec![]
                }
            }
            FileLayout::PerSubject(dir, _) => {
                let start = format!("{prefix}{dir}/");
                for (path, _) in staged.files.range(start.clone()..) {
                    if !path.starts_with(&start) {
                        break;
                    }
                    let Some(DataFile::PerSubject(_, subject)) = classify(prefix, path, bundle_format)? else {
                        continue;
                    };
                    let doc = read_plain(staged, path, open)?;
                    let leaf = per_subject_leaf(path, &subject, ObjectId::of(&doc), index)?;
                    f(&subject, leaf, &doc)?;
                }
                continue;
            }
        };
        let sharded = matches!(lay, FileLayout::Sharded(_));
        for path in files {
            let data = decompress(&path, &read_plain(staged, &path, open)?)?;
            let shard = sharded
                .then(|| u8::from_str_radix(&path[path.len() - 12..path.len() - 10], 16).ok())
                .flatten();
            parse_lines(&path, c, shard, &data, &mut |s, l, d| f(s, l, d))?;
        }
    }
    Ok(())
}

/// The leaf of a one-file-per-subject record: its id and time come from the index, its
/// bytes (hashing to `object`) from the file at `path`.
pub fn per_subject_leaf(
    path: &str,
    subject: &str,
    object: ObjectId,
    index: Option<&IndexCollection>,
) -> Result<Leaf, BundleError> {
    let rec = index
        .and_then(|i| i.subjects.get(subject))
        .and_then(|s| s.records.iter().next())
        .ok_or_else(|| BundleError::Malformed {
            path: path.into(),
            reason: format!("subject {subject:?} is not in the index"),
        })?;
    // `IndexFile::validate` made sure one-file-per-subject records carry their hash.
    let expected = rec.1.hash.ok_or_else(|| BundleError::Malformed {
        path: path.into(),
        reason: format!("subject {subject:?} has no hash in the index"),
    })?;
    if object != expected {
        return Err(mismatch(
            path,
            "record hash",
            expected.to_prefixed(),
            object.to_prefixed(),
        ));
    }
    Ok(Leaf {
        id: rec.0.clone(),
        object,
        modified: rec.1.modified,
    })
}

/// Check and visit the record lines of one decompressed data file of collection `c`
/// (`shard`: the shard its path names, for sharded layouts): each line parses, names the
/// collection, sits in the right shard, and its document hashes to its recorded `hash`.
pub fn parse_lines<'d>(
    path: &str,
    c: Collection,
    shard: Option<u8>,
    data: &'d [u8],
    f: LineVisitor<'_, 'd>,
) -> Result<(), BundleError> {
    parse_lines_from(path, 1, c, shard, data, f)
}

/// [`parse_lines`] of a part of a file whose first line is line `first_line` (a file read
/// as a stream, a few lines at a time).
pub fn parse_lines_from<'d>(
    path: &str,
    first_line: usize,
    c: Collection,
    shard: Option<u8>,
    data: &'d [u8],
    f: LineVisitor<'_, 'd>,
) -> Result<(), BundleError> {
    for (n, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        // The line's name, built only for an error (this loop runs once per record).
        let at = || format!("{path}:{}", first_line + n);
        let rec: RecordLine<'_> = serde_json::from_slice(line).map_err(|e| BundleError::Malformed {
            path: at(),
            reason: format!("record line does not parse: {e}"),
        })?;
        if rec.kind != c.name() {
            return Err(mismatch(&at(), "record kind", c.name(), &rec.kind));
        }
        if let Some(s) = shard {
            if shard_of(&rec.subject) != s {
                return Err(mismatch(
                    &at(),
                    "shard",
                    format!("{s:02x}"),
                    format!("{:02x}", shard_of(&rec.subject)),
                ));
            }
        }
        let doc = rec.doc.get().as_bytes();
        let id = ObjectId::of(doc);
        if !is_prefixed_hex(&rec.hash, &id) {
            return Err(mismatch(&at(), "record hash", &rec.hash, id.to_prefixed()));
        }
        let leaf = Leaf {
            id: rec.id,
            object: id,
            modified: rec.modified,
        };
        f(&rec.subject, leaf, doc)?;
    }
    Ok(())
}

/// `text == id.to_prefixed()`, without allocating (checked once per record).
fn is_prefixed_hex(text: &str, id: &ObjectId) -> bool {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(id.as_bytes(), &mut hex).expect("64 hex digits");
    text.strip_prefix("blake3:").is_some_and(|h| h.as_bytes() == hex)
}

/// What a bundle path holds, for the readers that see files one at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataFile {
    Sharded(Collection, u8),
    Single(Collection),
    /// `<dir>/<safe subject>/<name>`; the subject decoded.
    PerSubject(Collection, String),
}

/// The data file `rel` is, below `prefix` (`""` or `"changed/"`); `None` for other paths.
/// A path inside a per-subject folder with another file name is refused, as
/// [`for_each_record`] does. `bundle_format` is the manifest's `formatVersion`.
pub fn classify(prefix: &str, rel: &str, bundle_format: u32) -> Result<Option<DataFile>, BundleError> {
    let Some(rest) = rel.strip_prefix(prefix) else {
        return Ok(None);
    };
    for c in Collection::ALL {
        for lay in layouts_in(c, bundle_format) {
            match lay {
                FileLayout::Sharded(dir) => {
                    let Some(file) = rest.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
                        continue;
                    };
                    let shard = file
                        .strip_suffix(".jsonl.zst")
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .filter(|s| shard_path(dir, *s) == rest);
                    if let Some(s) = shard {
                        return Ok(Some(DataFile::Sharded(c, s)));
                    }
                }
                FileLayout::Single(p) if rest == p => return Ok(Some(DataFile::Single(c))),
                FileLayout::Single(_) => {}
                FileLayout::PerSubject(dir, name) => {
                    let Some(inner) = rest.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
                        continue;
                    };
                    let (safe, file) = inner.split_once('/').unwrap_or((inner, ""));
                    if file != name {
                        return Err(BundleError::UnsafeEntry {
                            entry: rel.to_string(),
                            reason: format!("expected {prefix}{dir}/<subject>/{name}"),
                        });
                    }
                    let subject = unsafe_name(safe).ok_or_else(|| BundleError::Malformed {
                        path: rel.to_string(),
                        reason: "subject folder name does not decode".into(),
                    })?;
                    return Ok(Some(DataFile::PerSubject(c, subject)));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_an_unknown_format_version_is_malformed_naming_file_and_field() {
        let ok = format!("{{\"formatVersion\":{INDEX_FORMAT_VERSION},\"collections\":{{}}}}");
        assert!(IndexFile::parse("indexes/vex.index.json", ok.as_bytes()).is_ok());
        let bad = ok.replace(&format!(":{INDEX_FORMAT_VERSION},"), ":99,");
        let e = IndexFile::parse("indexes/vex.index.json", bad.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, BundleError::Malformed { path, reason } if path == "indexes/vex.index.json" && reason.contains("formatVersion 99")),
            "{e}"
        );
    }

    fn index(version: u32, collection: &str, record: &str) -> String {
        format!(
            "{{\"formatVersion\":{version},\"collections\":{{\"{collection}\":{{\"root\":null,\"records\":1,\"subjects\":{{\"s\":{{\"shard\":\"00\",\"root\":null,\"file\":\"f\",\"records\":{{\"A\":{record}}}}}}}}}}}}}"
        )
    }

    #[test]
    fn index_format_2_drops_record_hashes_but_where_the_file_is_the_record() {
        let hash = format!(
            "{{\"hash\":\"{}\",\"modified\":null}}",
            ObjectId::of(b"x").to_prefixed()
        );
        let bare = "{\"modified\":null}";
        let parse = |v, c, r: &str| IndexFile::parse("indexes/x.index.json", index(v, c, r).as_bytes());
        assert!(parse(INDEX_FORMAT_VERSION, "advisories.raw", bare).is_ok());
        assert!(parse(INDEX_FORMAT_VERSION, "policy.snapshot", &hash).is_ok());
        assert!(parse(INDEX_FORMAT_VERSION_1, "advisories.raw", &hash).is_ok());
        for (v, c) in [
            (INDEX_FORMAT_VERSION, "policy.snapshot"),
            (INDEX_FORMAT_VERSION_1, "advisories.raw"),
        ] {
            let e = parse(v, c, bare).unwrap_err();
            assert!(e.to_string().contains("has no hash"), "{v} {c}: {e}");
        }
    }
}
