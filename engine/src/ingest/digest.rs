//! Change detection before parsing: input digests.
//!
//! A record's source-index entry (`sources` value, store format 3) holds the digest of
//! the input document it was ingested from: SHA-256 of [`CONTEXT`] (length-prefixed), the
//! parse context that shapes the records (the `--kind` hint, the `--subject`
//! override, and for whole-file documents their name, which is the identity of OpenVEX
//! and serial-less CycloneDX VEX documents) followed by the document's bytes exactly as
//! read (a JSON Lines line without its line break). Stored raw documents are
//! re-serialised compactly, so their object id is not a digest of the input; hence a
//! digest of its own.
//!
//! Invariant: a digest stored for (collection, id) under source S means "parsing these
//! bytes in this context yields exactly the live record (collection, id) and its derived
//! records". It is written only with the records parsed from those bytes, and any other
//! change of the record rewrites the entry (empty when unknown). So an input document
//! whose digest is among S's entries is unchanged: ingest skips parsing, normalizing and
//! writing it. [`CONTEXT`] names the parser generation: change it whenever a parser maps
//! the same bytes to different records, so that every document is parsed again once.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

use super::formats::{KindHint, ParseContext};
use super::input::{FileShape, InputFile};
use crate::ids::InputDigest;
use crate::model::Collection;

/// Domain of input digests; includes the parser generation.
pub const CONTEXT: &str = "stellamirror 2026-12-01 ingest input digest, parsers v2";

fn put_field(h: &mut Sha256, field: Option<&str>) {
    match field {
        None => h.update([0]),
        Some(s) => {
            h.update([1]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// The digest state of one input file: its context absorbed, cloned per document.
#[derive(Clone)]
pub struct FileDigester(Sha256);

impl FileDigester {
    pub fn new(ctx: &ParseContext, file: &InputFile) -> Self {
        let mut h = Sha256::new();
        put_field(&mut h, Some(CONTEXT));
        let kind = match ctx.kind {
            KindHint::Auto => 0u8,
            KindHint::PolicySnapshot => 1,
            KindHint::PolicyEvaluations => 2,
        };
        h.update([kind]);
        put_field(&mut h, ctx.subject_override.as_deref());
        // The verifying publisher key shapes the records too (their `verifiedBy`).
        put_field(&mut h, ctx.verified_by.as_deref());
        let name = (file.shape == FileShape::Json).then_some(file.name.as_str());
        put_field(&mut h, name);
        Self(h)
    }

    pub fn digest(&self, bytes: &[u8]) -> InputDigest {
        let mut h = self.0.clone();
        h.update(bytes);
        InputDigest(h.finalize().into())
    }
}

/// Position of a document in the run (walk order), for "the later document wins".
pub type Position = u64;

/// Hashes a digest by its first eight bytes: they are uniformly distributed already, and
/// SipHash over a million 32-byte keys was a visible part of a re-ingest.
#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
}

/// Where each parsed primary record was in the input. Keyed by a 128-bit hash of
/// (collection, id) under random keys rather than by the id itself: a million ids held
/// as strings were a sizeable part of a bulk ingest's memory, and with random keys an
/// input cannot be crafted to collide (chance for a million ids: about 2^-88).
pub struct ParsedKeys {
    keys: (std::hash::RandomState, std::hash::RandomState),
    at: HashMap<u128, Seen, BuildHasherDefault<PrefixHasher>>,
}

/// A primary record parsed in this run: where, which version of its document, and the
/// first bytes of its content hash (same content = an identical duplicate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub at: Position,
    pub version: super::identity::DocVersion,
    pub content: u64,
}

impl ParsedKeys {
    pub fn new() -> Self {
        Self {
            keys: (std::hash::RandomState::new(), std::hash::RandomState::new()),
            at: HashMap::default(),
        }
    }

    fn key(&self, c: Collection, id: &str) -> u128 {
        use std::hash::BuildHasher;
        let hi = self.keys.0.hash_one((c.code(), id));
        let lo = self.keys.1.hash_one((c.code(), id));
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// Note the record parsed (the one that stands replaces an earlier one).
    pub fn insert(&mut self, c: Collection, id: &str, seen: Seen) {
        let k = self.key(c, id);
        self.at.insert(k, seen);
    }

    pub fn get(&self, c: Collection, id: &str) -> Option<Position> {
        self.seen(c, id).map(|s| s.at)
    }

    pub fn seen(&self, c: Collection, id: &str) -> Option<Seen> {
        self.at.get(&self.key(c, id)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

impl Default for ParsedKeys {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(name: &str, shape: FileShape) -> InputFile {
        InputFile {
            path: PathBuf::from(name),
            shape,
            name: name.to_string(),
        }
    }

    #[test]
    fn digests_cover_the_bytes_and_the_context_that_shapes_records() {
        let auto = ParseContext::default();
        let lines = FileDigester::new(&auto, &file("a.jsonl", FileShape::JsonLines));
        let other_lines = FileDigester::new(&auto, &file("b.jsonl", FileShape::JsonLines));
        // JSON Lines records do not depend on the file name.
        assert_eq!(lines.digest(b"{}"), other_lines.digest(b"{}"));
        assert_ne!(lines.digest(b"{}"), lines.digest(b"{ }"));
        // Whole-file documents do (OpenVEX ids are names).
        let a = FileDigester::new(&auto, &file("a.json", FileShape::Json));
        let b = FileDigester::new(&auto, &file("b.json", FileShape::Json));
        assert_ne!(a.digest(b"{}"), b.digest(b"{}"));
        let subject = ParseContext {
            kind: KindHint::Auto,
            subject_override: Some("img".into()),
            verified_by: None,
        };
        let a2 = FileDigester::new(&subject, &file("a.json", FileShape::Json));
        assert_ne!(a.digest(b"{}"), a2.digest(b"{}"));
        let policy = ParseContext {
            kind: KindHint::PolicyEvaluations,
            subject_override: None,
            verified_by: None,
        };
        let p = FileDigester::new(&policy, &file("a.jsonl", FileShape::JsonLines));
        assert_ne!(lines.digest(b"{}"), p.digest(b"{}"));
    }
}
