//! The content check of a verified bundle, in memory bounded whatever the bundle's size.
//!
//! Each index file is streamed once (`index_stream`) and kept only as one digest chain per
//! (collection, Merkle shard): the chain of its subjects' digests, a subject's digest
//! covering its name, root, record ids and (where the index carries them) record hashes.
//! The data is then read shard by shard: one shard file is decompressed, its records hashed
//! and grouped by subject, its subject roots, shard root and digest chain computed, and the
//! shard dropped. Equal chains mean the index lists exactly the data's subjects and records;
//! only when a shard's chains differ is the index streamed again, keeping that one shard's
//! entries, to name the subject and what differs. What stays in memory is 256 shard roots
//! and chains per collection, one shard, and the few one-file-per-subject index entries
//! (bounded by the file count); a single-file collection keeps one summary per subject.
use std::collections::BTreeMap;

use super::archive::{Staged, MANIFEST};
use super::error::BundleError;
use super::format::{DiffManifest, Manifest};
use super::index_stream::{stream_index, CollectionHead};
use super::layout::{layouts_in, safe_name, shard_path, FileLayout, INDEX_FILES};
use super::records::{decompress, parse_lines, read_plain, IndexCollection, IndexSubject, Opener};
use super::verify_single::{single_subjects, single_summaries};
use crate::ids::{NodeHash, ObjectId};
use crate::merkle::{kind_root, shard_root, state_root, subject_root, KindRef, SubjectRef};
use crate::model::{shard_of, Collection, Leaf};

const CTX_DIGEST: &str = "stellamirror 2026-12 verify index-data digest v1";

/// A subject's digest: name, root (for full bundles), then each record's id and hash (when
/// the index carries hashes). The index side and the data side compute it alike.
fn subject_digest<'r>(
    subject: &str,
    root: Option<Option<&str>>,
    records: impl ExactSizeIterator<Item = (&'r str, Option<&'r ObjectId>)>,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CTX_DIGEST);
    let put = |h: &mut blake3::Hasher, s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(&mut h, subject);
    match root {
        None => {
            h.update(&[0]);
        }
        Some(None) => {
            h.update(&[1]);
        }
        Some(Some(r)) => {
            h.update(&[2]);
            put(&mut h, r);
        }
    }
    h.update(&(records.len() as u64).to_le_bytes());
    for (id, hash) in records {
        put(&mut h, id);
        match hash {
            Some(o) => h.update(&[1]).update(o.as_bytes()),
            None => h.update(&[0]),
        };
    }
    *h.finalize().as_bytes()
}

/// One link of a shard's chain.
fn chain(prev: &mut [u8; 32], digest: &[u8; 32]) {
    let mut h = blake3::Hasher::new();
    h.update(prev).update(digest);
    *prev = *h.finalize().as_bytes();
}

/// What the verifier keeps of one collection's index.
pub(super) struct IndexSide {
    pub head: CollectionHead,
    chains: Vec<[u8; 32]>,
    /// The last subject seen per shard (the index lists a shard's subjects in order).
    last: Vec<Option<String>>,
    /// Entries of one-file-per-subject records whose file the bundle holds.
    pub per_subject: BTreeMap<String, IndexSubject>,
}

impl IndexSide {
    pub fn new() -> Self {
        Self {
            head: CollectionHead::default(),
            chains: vec![[0; 32]; 256],
            last: vec![None; 256],
            per_subject: BTreeMap::new(),
        }
    }

    /// Add one entry of index file `path` to its shard's chain (entries without records
    /// are not data); `keep`: the bundle holds a one-file-per-subject file for it.
    pub fn add(
        &mut self,
        path: &str,
        c: Collection,
        subject: String,
        entry: IndexSubject,
        full: bool,
        keep: bool,
    ) -> Result<(), BundleError> {
        if entry.records.is_empty() {
            return Ok(());
        }
        let s = shard_of(&subject) as usize;
        if self.last[s].as_ref().is_some_and(|prev| *prev >= subject) {
            return Err(BundleError::Malformed {
                path: path.into(),
                reason: format!(
                    "{} subject {subject:?} is listed twice or out of order (the subjects of shard {s:02x} are listed in increasing order)",
                    c.name()
                ),
            });
        }
        let root = full.then_some(entry.root.as_deref());
        let recs = entry.records.iter().map(|(id, r)| (id.as_str(), r.hash.as_ref()));
        chain(&mut self.chains[s], &subject_digest(&subject, root, recs));
        if keep {
            self.per_subject.insert(subject.clone(), entry);
        }
        self.last[s] = Some(subject);
        Ok(())
    }

    /// Whether the data side digests record hashes: the index carries them all or none.
    pub fn hashed(&self, c: Collection, path: &str) -> Result<bool, BundleError> {
        if self.head.hashed > 0 && self.head.unhashed > 0 {
            return Err(BundleError::Malformed {
                path: path.into(),
                reason: format!(
                    "{}: {} index records carry a hash and {} do not (all or none)",
                    c.name(),
                    self.head.hashed,
                    self.head.unhashed
                ),
            });
        }
        Ok(self.head.hashed > 0)
    }

    /// Whether the data's shard `shard` (its sum `data`) is what the index lists.
    pub fn matches(&self, shard: u8, data: &ShardSum, hashed: bool) -> bool {
        data.chains[hashed as usize] == self.chains[shard as usize]
    }
}

/// A data subject as the shard checks need it: its digest without record hashes (`[0]`)
/// and with them (`[1]`), since which one the index carries is known only from the index.
pub(super) struct Summary {
    pub subject: String,
    pub root: NodeHash,
    pub records: u64,
    pub digests: [[u8; 32]; 2],
}

/// The data side of [`subject_digest`]: `leaves` sorted by id.
pub(super) fn summarise(subject: String, leaves: &[Leaf], full: bool) -> Summary {
    let root = if full {
        subject_root(&subject, leaves)
    } else {
        NodeHash([0; 32])
    };
    let shown = full.then(|| root.to_prefixed());
    let digest = |hashed: bool| {
        let recs = leaves.iter().map(|l| (l.id.as_str(), hashed.then_some(&l.object)));
        subject_digest(&subject, shown.as_deref().map(Some), recs)
    };
    let digests = [digest(false), digest(true)];
    Summary {
        subject,
        root,
        records: leaves.len() as u64,
        digests,
    }
}

/// One data shard, checked: its chains (without and with record hashes), root and counts.
pub(super) struct ShardSum {
    chains: [[u8; 32]; 2],
    root: NodeHash,
    pub records: u64,
    pub subjects: u64,
}

impl ShardSum {
    /// The sum of shard `shard` from its subjects' summaries, sorted by subject.
    pub fn of(shard: u8, summaries: Vec<Summary>, full: bool) -> Self {
        let mut chains = [[0u8; 32]; 2];
        for s in &summaries {
            chain(&mut chains[0], &s.digests[0]);
            chain(&mut chains[1], &s.digests[1]);
        }
        let records = summaries.iter().map(|s| s.records).sum();
        let subjects = summaries.len() as u64;
        let root = if full {
            let refs: Vec<SubjectRef> = summaries
                .into_iter()
                .map(|s| SubjectRef {
                    subject: s.subject,
                    root: s.root,
                    records: s.records,
                })
                .collect();
            shard_root(shard, &refs)
        } else {
            NodeHash([0; 32])
        };
        Self {
            chains,
            root,
            records,
            subjects,
        }
    }

    /// The sum of the subjects of `shard` (leaves sorted by id).
    pub fn of_subjects(shard: u8, subjects: &BTreeMap<String, Vec<Leaf>>, full: bool) -> Self {
        let sums = subjects.iter().map(|(s, l)| summarise(s.clone(), l, full)).collect();
        Self::of(shard, sums, full)
    }
}

/// Collection `c`'s kind node from its 256 shard sums.
pub(super) fn kind_ref(c: Collection, shards: &[ShardSum], full: bool) -> KindRef {
    let roots: Vec<NodeHash> = shards.iter().map(|s| s.root).collect();
    KindRef {
        collection: c,
        root: if full { kind_root(c, &roots) } else { NodeHash([0; 32]) },
        records: shards.iter().map(|s| s.records).sum(),
        subjects: shards.iter().map(|s| s.subjects).sum(),
    }
}

/// Decode one shard file's bytes to its record lines: the one place a shard's bytes become
/// text (staged and streamed verification both).
pub(super) fn decode_shard(path: &str, bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    decompress(path, bytes)
}

/// Group a decoded shard's (or single file's) record lines by subject, leaves sorted by id.
pub(super) fn group_lines(
    path: &str,
    c: Collection,
    shard: Option<u8>,
    data: &[u8],
    subjects: &mut BTreeMap<String, Vec<Leaf>>,
) -> Result<(), BundleError> {
    parse_lines(path, c, shard, data, &mut |s, leaf, _| {
        match subjects.get_mut(s) {
            Some(v) => v.push(leaf),
            None => {
                subjects.insert(s.to_string(), vec![leaf]);
            }
        }
        Ok(())
    })?;
    for leaves in subjects.values_mut() {
        leaves.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(())
}

/// A full bundle's kind root and count of `k` against the manifest.
pub(super) fn check_kind(m: &Manifest, k: &KindRef) -> Result<(), BundleError> {
    let name = k.collection.name();
    let recorded = m.kind_roots.get(name).map(String::as_str).unwrap_or("missing");
    if recorded != k.root.to_prefixed() {
        return Err(root_mismatch(
            format!("manifest.yaml kindRoots.{name}"),
            recorded,
            k.root,
        ));
    }
    let counted = m.counts.get(name).copied().unwrap_or(0);
    if counted != k.records {
        return Err(BundleError::DigestMismatch {
            path: MANIFEST.into(),
            what: format!("counts.{name}"),
            expected: counted.to_string(),
            actual: k.records.to_string(),
        });
    }
    Ok(())
}

/// A full bundle's state root from its kinds (in [`Collection::ALL`] order).
pub(super) fn check_state(m: &Manifest, kinds: &[KindRef]) -> Result<(), BundleError> {
    let sr = state_root(&m.tenant, kinds);
    if m.state_root != sr.to_prefixed() {
        return Err(root_mismatch("manifest.yaml stateRoot".into(), &m.state_root, sr));
    }
    Ok(())
}

/// The bundle being checked and how to read it.
pub(super) struct Checker<'a> {
    pub staged: &'a Staged,
    pub m: &'a Manifest,
    pub open: Opener<'a>,
    pub prefix: &'static str,
    pub full: bool,
}

/// Recompute record hashes, subject, shard, kind and state roots from the data files, and
/// check the index against them. Returns the number of records.
pub fn check_data(
    staged: &Staged,
    m: &Manifest,
    diff: Option<&DiffManifest>,
    open: Opener<'_>,
) -> Result<u64, BundleError> {
    let ck = Checker {
        staged,
        m,
        open,
        prefix: if diff.is_some() { "changed/" } else { "" },
        full: diff.is_none(),
    };
    let mut kinds = Vec::new();
    let mut total = 0u64;
    for index_path in INDEX_FILES {
        let mut sides = ck.index_sides(index_path)?;
        for c in Collection::ALL
            .into_iter()
            .filter(|c| super::layout::index_of(*c) == index_path)
        {
            let side = sides.remove(&c).unwrap_or_else(IndexSide::new);
            let k = ck.collection(c, index_path, side)?;
            total += k.records;
            if ck.full {
                check_kind(m, &k)?;
                kinds.push(k);
            }
        }
    }
    if ck.full {
        kinds.sort_by_key(|k| Collection::ALL.iter().position(|c| *c == k.collection));
        check_state(m, &kinds)?;
    }
    Ok(total)
}

fn root_mismatch(what: String, expected: &str, actual: NodeHash) -> BundleError {
    BundleError::RootMismatch {
        what,
        expected: expected.into(),
        actual: actual.to_prefixed(),
    }
}

impl Checker<'_> {
    pub(super) fn plain(&self, path: &str) -> bool {
        !self.m.encryption.encrypted_paths.iter().any(|p| p == path)
    }

    /// Stream index file `path` (decrypted whole first when it is encrypted), handing each
    /// subject entry to `sink`.
    fn stream(
        &self,
        path: &str,
        sink: super::index_stream::SubjectSink<'_>,
    ) -> Result<super::index_stream::IndexHead, BundleError> {
        if self.plain(path) {
            let p = self.staged.root.join(path);
            let f = std::fs::File::open(p).map_err(|_| BundleError::MissingFile { path: path.into() })?;
            stream_index(path, f, sink)
        } else {
            stream_index(path, read_plain(self.staged, path, self.open)?.as_slice(), sink)
        }
    }

    /// The index side of every collection that `path` describes.
    fn index_sides(&self, path: &str) -> Result<BTreeMap<Collection, IndexSide>, BundleError> {
        let mut sides: BTreeMap<Collection, IndexSide> = Collection::ALL
            .into_iter()
            .filter(|c| super::layout::index_of(*c) == path)
            .map(|c| (c, IndexSide::new()))
            .collect();
        let head = self.stream(path, &mut |c, subject, entry| {
            let Some(side) = sides.get_mut(&c) else {
                return Ok(());
            };
            let keep = self.has_per_subject_file(c, &subject);
            side.add(path, c, subject, entry, self.full, keep)
        })?;
        for (c, h) in head.collections {
            if let Some(side) = sides.get_mut(&c) {
                side.head = h;
            }
        }
        Ok(sides)
    }

    fn has_per_subject_file(&self, c: Collection, subject: &str) -> bool {
        layouts_in(c, self.m.format_version).into_iter().any(|l| match l {
            FileLayout::PerSubject(dir, name) => {
                let p = format!("{}{dir}/{}/{name}", self.prefix, safe_name(subject));
                self.staged.files.contains_key(&p)
            }
            _ => false,
        })
    }

    /// The shard file of `c`'s sharded layout for `shard`, when the bundle holds it.
    fn shard_file(&self, c: Collection, shard: u8) -> Option<String> {
        layouts_in(c, self.m.format_version).into_iter().find_map(|l| match l {
            FileLayout::Sharded(dir) => {
                Some(format!("{}{}", self.prefix, shard_path(dir, shard))).filter(|p| self.staged.files.contains_key(p))
            }
            _ => None,
        })
    }

    /// Every one-file-per-subject record of `c`, by shard and subject (bounded by the
    /// bundle's file count).
    fn per_subject_leaves(
        &self,
        c: Collection,
        entries: BTreeMap<String, IndexSubject>,
    ) -> Result<BTreeMap<u8, BTreeMap<String, Vec<Leaf>>>, BundleError> {
        let mut out: BTreeMap<u8, BTreeMap<String, Vec<Leaf>>> = BTreeMap::new();
        let index = IndexCollection {
            root: None,
            records: 0,
            subjects: entries,
        };
        for lay in layouts_in(c, self.m.format_version) {
            let FileLayout::PerSubject(dir, _) = lay else {
                continue;
            };
            let start = format!("{}{dir}/", self.prefix);
            for path in self.staged.files.range(start.clone()..).map(|(p, _)| p) {
                if !path.starts_with(&start) {
                    break;
                }
                let classified = super::records::classify(self.prefix, path, self.m.format_version)?;
                let Some(super::records::DataFile::PerSubject(_, subject)) = classified else {
                    continue;
                };
                let doc = read_plain(self.staged, path, self.open)?;
                let leaf = super::records::per_subject_leaf(path, &subject, ObjectId::of(&doc), Some(&index))?;
                let shard = shard_of(&subject);
                out.entry(shard).or_default().entry(subject).or_default().push(leaf);
            }
        }
        Ok(out)
    }

    /// The data subjects of one shard of `c` (sharded file and one-file-per-subject
    /// records), leaves sorted by id.
    fn shard_subjects(
        &self,
        c: Collection,
        shard: u8,
        loose: Option<BTreeMap<String, Vec<Leaf>>>,
    ) -> Result<BTreeMap<String, Vec<Leaf>>, BundleError> {
        let mut subjects = loose.unwrap_or_default();
        if let Some(path) = self.shard_file(c, shard) {
            let data = decode_shard(&path, &read_plain(self.staged, &path, self.open)?)?;
            group_lines(&path, c, Some(shard), &data, &mut subjects)?;
        }
        Ok(subjects)
    }

    /// Check collection `c` shard by shard against its index side; its kind node.
    fn collection(&self, c: Collection, index_path: &str, mut side: IndexSide) -> Result<KindRef, BundleError> {
        let hashed = side.hashed(c, index_path)?;
        let mut loose = self.per_subject_leaves(c, std::mem::take(&mut side.per_subject))?;
        let mut single = single_summaries(self, c)?;
        let mut shards = Vec::with_capacity(256);
        for shard in 0..=255u8 {
            let (sum, data) = match single.as_mut() {
                Some(b) => (
                    ShardSum::of(shard, std::mem::take(&mut b[shard as usize]), self.full),
                    None,
                ),
                None => {
                    let data = self.shard_subjects(c, shard, loose.remove(&shard))?;
                    (ShardSum::of_subjects(shard, &data, self.full), Some(data))
                }
            };
            if !side.matches(shard, &sum, hashed) {
                let data = match data {
                    Some(d) => d,
                    None => single_subjects(self, c, shard)?,
                };
                return Err(self.diagnose(c, index_path, shard, &data));
            }
            shards.push(sum);
        }
        Ok(kind_ref(c, &shards, self.full))
    }

    /// Name what differs in a shard whose chains differ: the index is streamed again and
    /// only this shard's entries of `c` are kept (`data`: the shard's data subjects).
    pub(super) fn diagnose(
        &self,
        c: Collection,
        index_path: &str,
        shard: u8,
        data: &BTreeMap<String, Vec<Leaf>>,
    ) -> BundleError {
        let mut entries: BTreeMap<String, IndexSubject> = BTreeMap::new();
        let streamed = self.stream(index_path, &mut |ic, subject, entry| {
            if ic == c && shard_of(&subject) == shard {
                entries.insert(subject, entry);
            }
            Ok(())
        });
        if let Err(e) = streamed {
            return e;
        }
        let malformed = |reason: String| BundleError::Malformed {
            path: index_path.into(),
            reason,
        };
        for (s, leaves) in data {
            let Some(entry) = entries.get(s) else {
                return malformed(format!("{} subject {s:?} is missing from the index", c.name()));
            };
            let differs = entry.records.len() != leaves.len()
                || leaves.iter().any(|l| {
                    entry
                        .records
                        .get(&l.id)
                        .is_none_or(|r| r.hash.is_some_and(|h| h != l.object))
                });
            if differs {
                return malformed(format!(
                    "{} subject {s:?}: index records differ from the data",
                    c.name()
                ));
            }
            let root = subject_root(s, leaves);
            if self.full && entry.root.as_deref() != Some(root.to_prefixed().as_str()) {
                let recorded = entry.root.as_deref().unwrap_or("null");
                return root_mismatch(format!("{index_path} {} subject {s:?}", c.name()), recorded, root);
            }
        }
        let extra = entries
            .iter()
            .find(|(s, e)| !e.records.is_empty() && !data.contains_key(*s));
        if let Some((s, _)) = extra {
            return malformed(format!(
                "{} subject {s:?} has records in the index but none in the data",
                c.name()
            ));
        }
        malformed(format!(
            "{} shard {shard:02x}: the index entries differ from the data",
            c.name()
        ))
    }
}
