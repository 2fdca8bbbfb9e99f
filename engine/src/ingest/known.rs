//! The live index entries of one source, read in one sorted pass at the start of a run.
//!
//! They serve both ends of the run: while the input is read, "is this input digest a live
//! record's" (change detection, `digest`); after it, "which live records did the input
//! not hold" (`--complete` removals) and "which did it hold twice" (`Run::resolve`). Keeping
//! the entries (collection, id, digest) compactly in memory answers the second question
//! without a second pass over the index.
//!
//! Lookups go through an open-addressing table built once after the scan: slots hold an
//! entry's index and 32 bits of its digest, and a match is confirmed against the whole 32
//! bytes, so a crafted input that matches part of a live digest is parsed like any new
//! document, never taken as unchanged. (A table of 8-byte slots is a quarter of a
//! `HashMap` keyed by the digests, and a lookup touches one slot and one digest.)
use super::digest::Position;
use super::IngestError;
use crate::ids::InputDigest;
use crate::model::{Collection, Tenant};
use crate::store::{Store, StoreError, CF_SOURCES};

/// Not seen in this run's input.
const NOT_SEEN: Position = Position::MAX;

/// The index of one entry in [`KnownDigests`], in key order.
pub type EntryIndex = u32;

/// One live entry of the source, borrowed from [`KnownDigests`].
pub struct SourceEntry<'a> {
    pub collection: Collection,
    pub id: &'a str,
    pub digest: Option<InputDigest>,
    /// Where this run's input held the document with this entry's digest, if it did.
    pub seen_at: Option<Position>,
    /// Whether the input held a document with this entry's id that was parsed.
    pub parsed: bool,
}

/// The input digests of one source's live records, from one sorted pass over its index,
/// and where in this run's input each was seen again.
#[derive(Default)]
pub struct KnownDigests {
    /// Open addressing, linear probing, a power of two at least twice the entries with a
    /// digest: 0 = empty, else (tag << 32) | (entry index + 1).
    slots: Vec<u64>,
    collections: Vec<Collection>,
    /// Entry i's id is `ids[id_ends[i - 1]..id_ends[i]]`.
    ids: String,
    id_ends: Vec<u32>,
    /// All zero with `has_digest[i]` false: the entry's digest is unknown (imports).
    digests: Vec<InputDigest>,
    has_digest: Vec<bool>,
    /// The entry the table finds for entry i's digest (i itself, but for identical bytes).
    same_as: Vec<EntryIndex>,
    at: Vec<Position>,
    /// [`SourceEntry::parsed`], set by [`KnownDigests::note_parsed`].
    parsed: Vec<bool>,
}

/// Where a digest's probe starts (its first eight bytes, uniform for SHA-256) and the tag
/// its slots carry (the next four).
fn home_and_tag(d: &InputDigest) -> (u64, u64) {
    let home = u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"));
    let tag = u32::from_le_bytes(d.0[8..12].try_into().expect("4 bytes"));
    (home, u64::from(tag))
}

/// Whether `source` has any live entry (without reading them).
pub fn source_has_entries(store: &Store, tenant: &Tenant, source: &str) -> Result<bool, IngestError> {
    let prefix = store.keyspace(tenant)?.source_prefix(source);
    Ok(store
        .first_key_from(CF_SOURCES, &prefix)?
        .is_some_and(|k| k.starts_with(&prefix)))
}

impl KnownDigests {
    pub fn load(store: &Store, tenant: &Tenant, source: &str) -> Result<Self, IngestError> {
        let mut known = Self::default();
        let prefix = store.keyspace(tenant)?.source_prefix(source);
        let mut last: Option<(Vec<u8>, Collection)> = None;
        store.for_each_in_prefix(CF_SOURCES, &prefix, |k, v| {
            let rest = &k[prefix.len()..];
            let corrupt = || {
                StoreError::Corrupt(format!(
                    "source index key {:?} is malformed",
                    String::from_utf8_lossy(rest)
                ))
            };
            let nul = memchr::memchr(0, rest).ok_or_else(corrupt)?;
            let (cname, id) = (&rest[..nul], &rest[nul + 1..]);
            // Keys come sorted, so the collection name changes rarely: look it up once per run.
            let collection = match &last {
                Some((name, c)) if name.as_slice() == cname => *c,
                _ => {
                    let c = std::str::from_utf8(cname)
                        .ok()
                        .and_then(Collection::from_name)
                        .ok_or_else(corrupt)?;
                    last = Some((cname.to_vec(), c));
                    c
                }
            };
            let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
            known
                .push(collection, id, InputDigest::from_slice(v))
                .ok_or_else(corrupt)?;
            Ok::<(), IngestError>(())
        })?;
        known.build_table();
        Ok(known)
    }

    /// Fill the lookup table; the first of entries with equal digests is the one found.
    fn build_table(&mut self) {
        let with_digest = self.has_digest.iter().filter(|h| **h).count();
        if with_digest == 0 {
            self.slots = Vec::new();
            return;
        }
        let size = (with_digest * 2).next_power_of_two();
        self.slots = vec![0; size];
        self.same_as = (0..self.digests.len() as EntryIndex).collect();
        let mask = size as u64 - 1;
        for i in 0..self.digests.len() {
            if !self.has_digest[i] {
                continue;
            }
            if let Some(j) = self.find(&self.digests[i]) {
                self.same_as[i] = j;
                continue;
            }
            let (home, tag) = home_and_tag(&self.digests[i]);
            let mut at = home & mask;
            while self.slots[at as usize] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at as usize] = (tag << 32) | (i as u64 + 1);
        }
    }

    /// Add the next entry (in key order); None when the index outgrows 32-bit offsets.
    fn push(&mut self, collection: Collection, id: &str, digest: Option<InputDigest>) -> Option<()> {
        // Slots hold index + 1 in 32 bits.
        EntryIndex::try_from(self.collections.len() + 1).ok()?;
        self.ids.push_str(id);
        self.id_ends.push(u32::try_from(self.ids.len()).ok()?);
        self.collections.push(collection);
        self.digests.push(digest.unwrap_or(InputDigest([0; 32])));
        self.has_digest.push(digest.is_some());
        self.at.push(NOT_SEEN);
        self.parsed.push(false);
        Some(())
    }

    /// Whether there is no live digest at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The live entry whose digest is exactly `d`, if there is one.
    pub fn find(&self, d: &InputDigest) -> Option<EntryIndex> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() as u64 - 1;
        let (home, tag) = home_and_tag(d);
        let mut at = home & mask;
        loop {
            let slot = self.slots[at as usize];
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag {
                let i = (slot & 0xffff_ffff) - 1;
                if self.digests[i as usize] == *d {
                    return Some(i as EntryIndex);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Note that the document at `at` is the known entry `i`. The same bytes twice keep
    /// the later position.
    pub fn mark(&mut self, i: EntryIndex, at: Position) {
        self.at[i as usize] = at;
    }

    fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.id_ends[i - 1] as usize };
        &self.ids[start..self.id_ends[i] as usize]
    }

    /// Note that the input held a parsed document with this id (found by binary search:
    /// entries are in key order, collection name then id).
    pub fn note_parsed(&mut self, c: Collection, id: &str) {
        let want = (c.name().as_bytes(), id.as_bytes());
        let (mut lo, mut hi) = (0, self.collections.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match (self.collections[mid].name().as_bytes(), self.id(mid).as_bytes()).cmp(&want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    self.parsed[mid] = true;
                    return;
                }
            }
        }
    }

    /// Every live entry in key order, with where the input held its document.
    pub fn entries(&self) -> impl Iterator<Item = SourceEntry<'_>> + '_ {
        (0..self.collections.len()).map(move |i| {
            let digest = self.has_digest[i].then_some(self.digests[i]);
            // Entries with equal digests share the position of the one in the table.
            let seen_at = digest
                .map(|_| self.at[self.same_as[i] as usize])
                .filter(|p| *p != NOT_SEEN);
            SourceEntry {
                collection: self.collections[i],
                id: self.id(i),
                digest,
                seen_at,
                parsed: self.parsed[i],
            }
        })
    }

    /// How many live entries the source has.
    pub fn len(&self) -> usize {
        self.collections.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(first: u8, last: u8) -> InputDigest {
        let mut d = [0u8; 32];
        d[0] = first;
        d[31] = last;
        InputDigest(d)
    }

    #[test]
    fn a_digest_matching_only_part_of_a_live_one_is_not_known() {
        let mut k = KnownDigests::default();
        k.push(Collection::AdvisoriesRaw, "A", Some(digest(1, 1))).unwrap();
        k.push(Collection::AdvisoriesRaw, "B", Some(digest(1, 2))).unwrap();
        k.push(Collection::AdvisoriesRaw, "C", None).unwrap();
        k.push(Collection::AdvisoriesRaw, "D", Some(digest(1, 1))).unwrap();
        k.build_table();
        assert_eq!(k.find(&digest(1, 1)), Some(0));
        // Same first twelve bytes (same home slot and tag), other content: parsed, never
        // skipped as unchanged.
        assert_eq!(k.find(&digest(1, 9)), None);
        // A live entry whose digest shares its home and tag with another is still found.
        assert_eq!(k.find(&digest(1, 2)), Some(1));
        k.mark(0, 7);
        k.note_parsed(Collection::AdvisoriesRaw, "C");
        k.note_parsed(Collection::AdvisoriesRaw, "E");
        let parsed: Vec<bool> = k.entries().map(|e| e.parsed).collect();
        assert_eq!(parsed, vec![false, false, true, false]);
        let seen: Vec<_> = k.entries().map(|e| (e.id.to_string(), e.seen_at)).collect();
        // D holds A's bytes: seen where A's were.
        assert_eq!(
            seen,
            vec![
                ("A".into(), Some(7)),
                ("B".into(), None),
                ("C".into(), None),
                ("D".into(), Some(7))
            ]
        );
        assert_eq!(k.len(), 4);
    }
}
