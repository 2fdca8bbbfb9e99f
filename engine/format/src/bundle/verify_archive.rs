//! Verifying a bundle archive in one pass, without staging its data: the manifest
//! signature first (the archive reader's gate, within the pre-authentication budget), then
//! each entry as it comes out of the archive — a shard is decoded, its records hashed and
//! summed as in `verify_data` and dropped; a single-file collection is decompressed as a
//! stream; an index file is parsed as a stream. Only the small documents (manifest,
//! signatures, `export.json`, provenance, the diff, removals) are written to the staging
//! folder, for the signature, listing and attestation checks that follow the read.
//!
//! Plaintext bundles of the formats in [`STREAMED_FORMATS`] are streamed; an encrypted bundle
//! (its key material comes after the data in the archive) or another format is left to the
//! staged path (`Ok(None)`). When a content check fails, the archive is staged and checked
//! again the staged way, so a refusal (and which one comes first) is the same either way.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use super::archive::{read_archive, stage_archive, ArchiveVisitor, GateInput, Limits, Staged, Target};
use super::error::{write_err, BundleError};
use super::format::{Artifact, EncryptionModeName, Manifest, PROFILE_DELTA};
use super::index_stream::stream_index;
use super::layout::{index_of, layouts_in, safe_name, FileLayout, INDEX_FILES};
use super::records::{classify, per_subject_leaf, DataFile, IndexCollection};
use super::signing::TrustedKey;
use super::verify::{gate, parse_manifest, verify_records, verify_staged, Verified};
use super::verify_data::{check_kind, check_state, decode_shard, group_lines, kind_ref, IndexSide, ShardSum};
use super::verify_single::{lines_of, Grouper};
use crate::ids::ObjectId;
use crate::model::{shard_of, Collection, Leaf};

/// Bundle formats whose every file decodes on its own, in archive order (a format whose
/// shards decode against another file must be added only if that file comes first).
pub const STREAMED_FORMATS: [u32; 1] = [3];

/// Verify `archive` (signatures, listing, digests, records, Merkle roots) in one pass.
/// Small documents are written below `staging`; `Ok(None)`: the bundle is not one this
/// path streams (see the module docs) and nothing but its manifest was read.
pub fn verify_archive(
    archive: &Path,
    staging: &Path,
    trust: &[TrustedKey],
    limits: &Limits,
) -> Result<Option<(Staged, Verified)>, BundleError> {
    let mut s = Streamer {
        trust,
        staging,
        m: None,
        listed: BTreeSet::new(),
        data: BTreeMap::new(),
        loose: BTreeMap::new(),
        sides: BTreeMap::new(),
        content_failed: false,
        abandoned: false,
    };
    let read = read_archive(archive, limits, &mut s);
    if s.abandoned || (read.is_ok() && s.m.is_none()) {
        return Ok(None);
    }
    let (top, files) = match read {
        Ok(r) => r,
        // A file whose digest differs is what the staged check refuses first too (the
        // entries before it passed both checks): no need to stage the bundle for it.
        Err(e @ BundleError::DigestMismatch { .. }) if file_digest(&e) => return Err(e),
        Err(_) if s.content_failed => return recheck(archive, staging, trust, limits),
        Err(e) => return Err(e),
    };
    let staged = Staged {
        root: staging.join(&top),
        top,
        files,
    };
    let mut v = verify_staged(&staged, trust)?;
    if v.manifest.profile == PROFILE_DELTA {
        v.diff = Some(super::validate::parse_diff(&staged.read(super::validate::DIFF)?)?);
    }
    match s.finish(&v.manifest) {
        Ok(records) => {
            v.records_checked = records;
            v.data_checked = true;
            Ok(Some((staged, v)))
        }
        Err(_) => recheck(archive, staging, trust, limits),
    }
}

/// A file's own size or sha256 differs from the listing (not a record's hash).
fn file_digest(e: &BundleError) -> bool {
    matches!(e, BundleError::DigestMismatch { what, .. } if what == "sha256" || what == "size")
}

/// The staged check of `archive`, whose refusal names what the streamed one found.
fn recheck(
    archive: &Path,
    staging: &Path,
    trust: &[TrustedKey],
    limits: &Limits,
) -> Result<Option<(Staged, Verified)>, BundleError> {
    let dir = staging.join("recheck");
    let staged = stage_archive(archive, &dir, limits, &mut |g| gate(trust, g))?;
    let mut v = verify_staged(&staged, trust)?;
    verify_records(&staged, &mut v, &|_, b| Ok(b))?;
    Ok(Some((staged, v)))
}

struct Streamer<'a> {
    trust: &'a [TrustedKey],
    staging: &'a Path,
    m: Option<Manifest>,
    listed: BTreeSet<String>,
    /// Per collection, the sum of each shard read (sharded files, the single file).
    data: BTreeMap<Collection, Vec<Option<ShardSum>>>,
    /// One-file-per-subject records: subject → (path, object id), until the index names
    /// their ids.
    loose: BTreeMap<Collection, BTreeMap<String, (String, ObjectId)>>,
    sides: BTreeMap<Collection, IndexSide>,
    /// A content check refused an entry (as opposed to the archive or its signature).
    content_failed: bool,
    /// The bundle is not one this path streams.
    abandoned: bool,
}

impl Streamer<'_> {
    fn manifest(&self) -> &Manifest {
        self.m.as_ref().expect("entries after the gate")
    }
    fn prefix(&self) -> &'static str {
        if self.manifest().profile == PROFILE_DELTA {
            "changed/"
        } else {
            ""
        }
    }
    fn full(&self) -> bool {
        self.manifest().profile != PROFILE_DELTA
    }

    fn shard_slot(&mut self, c: Collection, shard: u8) -> &mut Option<ShardSum> {
        let shards = self.data.entry(c).or_insert_with(|| (0..256).map(|_| None).collect());
        &mut shards[shard as usize]
    }

    fn consume_data(&mut self, rel: &str, file: DataFile, r: &mut dyn Read) -> Result<(), BundleError> {
        let full = self.full();
        match file {
            DataFile::Sharded(c, shard) => {
                let bytes = read_all(rel, r)?;
                let mut subjects = BTreeMap::new();
                group_lines(rel, c, Some(shard), &decode_shard(rel, &bytes)?, &mut subjects)?;
                *self.shard_slot(c, shard) = Some(ShardSum::of_subjects(shard, &subjects, full));
            }
            DataFile::Single(c) => {
                let mut g = Grouper::new(full);
                lines_of(rel, c, r, &mut |s, leaf| {
                    g.push(s, leaf);
                    Ok(())
                })?;
                for (shard, bucket) in (0..=255u8).zip(g.finish(rel)?) {
                    *self.shard_slot(c, shard) = Some(ShardSum::of(shard, bucket, full));
                }
            }
            DataFile::PerSubject(c, subject) => {
                let object = ObjectId::of(&read_all(rel, r)?);
                self.loose
                    .entry(c)
                    .or_default()
                    .insert(subject, (rel.to_string(), object));
            }
        }
        Ok(())
    }

    fn consume_index(&mut self, rel: &str, r: &mut dyn Read) -> Result<(), BundleError> {
        let (full, prefix, format) = (self.full(), self.prefix(), self.manifest().format_version);
        let listed = &self.listed;
        let mut sides: BTreeMap<Collection, IndexSide> = Collection::ALL
            .into_iter()
            .filter(|c| index_of(*c) == rel)
            .map(|c| (c, IndexSide::new()))
            .collect();
        let head = stream_index(rel, r, &mut |c, subject, entry| {
            let Some(side) = sides.get_mut(&c) else {
                return Ok(());
            };
            let keep = layouts_in(c, format).into_iter().any(|l| match l {
                FileLayout::PerSubject(dir, name) => {
                    listed.contains(&format!("{prefix}{dir}/{}/{name}", safe_name(&subject)))
                }
                _ => false,
            });
            side.add(rel, c, subject, entry, full, keep)
        })?;
        for (c, h) in head.collections {
            if let Some(side) = sides.get_mut(&c) {
                side.head = h;
            }
        }
        self.sides.extend(sides);
        Ok(())
    }

    /// After the read: every collection's shards against its index, kind and state roots.
    /// Returns the number of records.
    fn finish(&mut self, m: &Manifest) -> Result<u64, BundleError> {
        let full = m.profile != PROFILE_DELTA;
        let (mut kinds, mut total) = (Vec::new(), 0u64);
        for c in Collection::ALL {
            let index_path = index_of(c);
            let mut side = self.sides.remove(&c).unwrap_or_else(IndexSide::new);
            let hashed = side.hashed(c, index_path)?;
            let mut shards = self.data.remove(&c).unwrap_or_default();
            shards.resize_with(256, || None);
            let entries = std::mem::take(&mut side.per_subject);
            let mut loose = loose_leaves(self.loose.remove(&c).unwrap_or_default(), entries)?;
            let mut sums = Vec::with_capacity(256);
            for (shard, sum) in (0..=255u8).zip(shards) {
                let sum = match (sum, loose.remove(&shard)) {
                    (Some(_), Some(_)) => return Err(mixed(c, shard)),
                    (Some(s), None) => s,
                    (None, l) => ShardSum::of_subjects(shard, &l.unwrap_or_default(), full),
                };
                if !side.matches(shard, &sum, hashed) {
                    return Err(mixed(c, shard));
                }
                sums.push(sum);
            }
            let k = kind_ref(c, &sums, full);
            total += k.records;
            if full {
                check_kind(m, &k)?;
                kinds.push(k);
            }
        }
        if full {
            check_state(m, &kinds)?;
        }
        Ok(total)
    }
}

/// The refusal of a shard the streamed check cannot accept (the staged check names why).
fn mixed(c: Collection, shard: u8) -> BundleError {
    BundleError::Malformed {
        path: index_of(c).into(),
        reason: format!("{} shard {shard:02x}: the index entries differ from the data", c.name()),
    }
}

/// One-file-per-subject records with the ids and times the index gives them, by shard.
fn loose_leaves(
    loose: BTreeMap<String, (String, ObjectId)>,
    entries: BTreeMap<String, super::records::IndexSubject>,
) -> Result<BTreeMap<u8, BTreeMap<String, Vec<Leaf>>>, BundleError> {
    let index = IndexCollection {
        root: None,
        records: 0,
        subjects: entries,
    };
    let mut out: BTreeMap<u8, BTreeMap<String, Vec<Leaf>>> = BTreeMap::new();
    for (subject, (path, object)) in loose {
        let leaf = per_subject_leaf(&path, &subject, object, Some(&index))?;
        out.entry(shard_of(&subject)).or_default().insert(subject, vec![leaf]);
    }
    Ok(out)
}

fn read_all(rel: &str, r: &mut dyn Read) -> Result<Vec<u8>, BundleError> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|e| BundleError::Malformed {
        path: rel.into(),
        reason: format!("cannot be read: {e}"),
    })?;
    Ok(bytes)
}

impl ArchiveVisitor for Streamer<'_> {
    fn gate(&mut self, input: &GateInput<'_>) -> Result<Vec<Artifact>, BundleError> {
        let artifacts = gate(self.trust, input)?;
        let m = parse_manifest(input.manifest)?;
        let plain = m.encryption.mode == EncryptionModeName::None && m.encryption.encrypted_paths.is_empty();
        self.abandoned = !plain || !STREAMED_FORMATS.contains(&m.format_version);
        self.listed = artifacts.iter().map(|a| a.path.clone()).collect();
        self.m = Some(m);
        Ok(artifacts)
    }

    fn target(&mut self, top: &str, rel: &str, _: u64) -> Result<Target, BundleError> {
        if self.abandoned {
            // Stops the read: the caller stages the bundle instead.
            return Err(BundleError::Malformed {
                path: rel.into(),
                reason: "not streamed".into(),
            });
        }
        if self.m.is_some() {
            let format = self.manifest().format_version;
            let data = classify(self.prefix(), rel, format).inspect_err(|_| self.content_failed = true)?;
            if data.is_some() || INDEX_FILES.contains(&rel) {
                return Ok(Target::Stream);
            }
        }
        let dest = self.staging.join(top).join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| write_err(parent, err, "room for the bundle's documents".into()))?;
        }
        Ok(Target::File(dest))
    }

    fn complete(&mut self, _: &str, _: Vec<u8>) -> Result<(), BundleError> {
        Ok(())
    }

    fn consume(&mut self, rel: &str, r: &mut dyn Read) -> Result<(), BundleError> {
        let format = self.manifest().format_version;
        let result = match classify(self.prefix(), rel, format)? {
            Some(file) => self.consume_data(rel, file, r),
            None => self.consume_index(rel, r),
        };
        self.content_failed |= result.is_err();
        result
    }
}
