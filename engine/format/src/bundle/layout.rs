//! Where each collection's records live inside a bundle.
use super::format::FORMAT_VERSION_2;
use crate::model::Collection;

/// How a collection is laid out in `data/`.
pub enum FileLayout {
    /// `<dir>/<shard>.jsonl.zst`, one file per non-empty Merkle shard.
    Sharded(&'static str),
    /// One `.jsonl.zst` file for the whole collection.
    Single(&'static str),
    /// One file per record: `<dir>/<safe subject>/<name>` holding the record's bytes.
    PerSubject(&'static str, &'static str),
}

/// The layout this version writes (bundle format [`super::format::FORMAT_VERSION`]).
pub fn layout(c: Collection) -> FileLayout {
    match c {
        Collection::AdvisoriesRaw => FileLayout::Sharded("data/raw/advisories"),
        Collection::AdvisoriesNormalized => FileLayout::Sharded("data/normalized/advisories"),
        Collection::VexRaw => FileLayout::Sharded("data/raw/vex"),
        Collection::VexNormalized => FileLayout::Sharded("data/normalized/vex"),
        // Sharded like the other raw kinds: an artifact may have several SBOMs.
        Collection::SbomsRaw => FileLayout::Sharded("data/raw/sboms"),
        Collection::SbomsNormalized => FileLayout::Sharded("data/normalized/sboms"),
        Collection::PolicySnapshot => FileLayout::PerSubject("data/policy/snapshots", "snapshot.json"),
        Collection::PolicyEvaluations => FileLayout::Single("data/policy/evaluations.jsonl.zst"),
        Collection::Consensus => FileLayout::Single("data/consensus/vex_consensus.jsonl.zst"),
    }
}

/// The layouts a reader accepts in a bundle of format `bundle_format`, sharded first.
/// Up to format 2 an artifact had one SBOM, shipped as `data/raw/sboms/<subject>/sbom.json`;
/// raw SBOMs are now sharded like the other raw kinds (an artifact may have several), and
/// the two path shapes are told apart by the path alone.
pub fn layouts_in(c: Collection, bundle_format: u32) -> Vec<FileLayout> {
    let mut all = vec![layout(c)];
    if c == Collection::SbomsRaw && bundle_format <= FORMAT_VERSION_2 {
        all.push(FileLayout::PerSubject("data/raw/sboms", "sbom.json"));
    }
    all
}

/// The index file that describes a collection.
pub fn index_of(c: Collection) -> &'static str {
    match c.kind() {
        "advisories" => "indexes/advisories.index.json",
        "vex" => "indexes/vex.index.json",
        "sboms" => "indexes/sbom.index.json",
        _ => "indexes/findings.index.json",
    }
}

pub const INDEX_FILES: [&str; 4] = [
    "indexes/advisories.index.json",
    "indexes/vex.index.json",
    "indexes/sbom.index.json",
    "indexes/findings.index.json",
];

/// Reversible, filesystem-safe form of a subject: bytes outside `[A-Za-z0-9._-]` are
/// written `%XX`; a leading `.` is escaped too, so `.` and `..` cannot occur.
pub fn safe_name(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len() + 8);
    for (i, b) in subject.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn unsafe_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn shard_path(dir: &str, shard: u8) -> String {
    format!("{dir}/{shard:02x}.jsonl.zst")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_round_trip_and_never_traverse() {
        for s in ["pkg:npm/@a/b@1.0", "../etc/passwd", ".", "a b/ü", "juice-shop-v11.1.2"] {
            let n = safe_name(s);
            assert!(!n.contains('/') && n != "." && n != ".." && !n.starts_with('.'), "{n}");
            assert_eq!(unsafe_name(&n).as_deref(), Some(s));
        }
    }
}
