//! Single-file collections (one `.jsonl.zst` for the whole collection, its lines sorted by
//! subject) as the verifier reads them: decompressed as a stream and parsed line by line,
//! each subject's lines summarised as soon as the next subject starts. What stays is one
//! [`Summary`] per subject, bucketed by Merkle shard, never the file or its records.
use std::io::{BufRead, Read};

use super::error::BundleError;
use super::layout::{layouts_in, FileLayout};
use super::records::{parse_lines_from, read_plain, MAX_FILE_BYTES};
use super::verify_data::{summarise, Checker, Summary};
use crate::model::{shard_of, Collection, Leaf};
use std::collections::BTreeMap;

/// The single file of `c` when `c` has that layout (`Some(path)`, whether or not the
/// bundle holds it).
fn single_path(ck: &Checker<'_>, c: Collection) -> Option<String> {
    layouts_in(c, ck.m.format_version).into_iter().find_map(|l| match l {
        FileLayout::Single(p) => Some(format!("{}{p}", ck.prefix)),
        _ => None,
    })
}

/// Visit every record line of single file `path` of the bundle being checked.
fn for_each_line(
    ck: &Checker<'_>,
    c: Collection,
    path: &str,
    f: &mut dyn FnMut(&str, Leaf) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let mut source: Box<dyn Read> = if ck.plain(path) {
        let p = ck.staged.root.join(path);
        Box::new(std::fs::File::open(p).map_err(|_| BundleError::MissingFile { path: path.into() })?)
    } else {
        Box::new(std::io::Cursor::new(read_plain(ck.staged, path, ck.open)?))
    };
    lines_of(path, c, &mut source, f)
}

/// Visit every record line of single file `path`, read from `source` and decompressed
/// once, as a stream.
pub(super) fn lines_of(
    path: &str,
    c: Collection,
    source: &mut dyn Read,
    f: &mut dyn FnMut(&str, Leaf) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let malformed = |reason: String| BundleError::Malformed {
        path: path.into(),
        reason,
    };
    let dec = zstd::stream::read::Decoder::new(source).map_err(|e| malformed(format!("not zstd: {e}")))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, dec.take(MAX_FILE_BYTES + 1));
    let (mut line, mut n, mut total) = (Vec::new(), 0usize, 0u64);
    loop {
        line.clear();
        let got = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| malformed(format!("zstd stream is corrupt: {e}")))?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        total += got as u64;
        if total > MAX_FILE_BYTES {
            return Err(BundleError::TooLarge {
                what: format!("{path} decompressed size"),
                limit: MAX_FILE_BYTES,
            });
        }
        parse_lines_from(path, n, c, None, &line, &mut |s, leaf, _| f(s, leaf))?;
    }
}

/// Groups consecutive lines of one subject into a summary in its shard's bucket.
pub(super) struct Grouper {
    current: Option<(String, Vec<Leaf>)>,
    buckets: Vec<Vec<Summary>>,
    full: bool,
}

impl Grouper {
    pub fn new(full: bool) -> Self {
        Self {
            current: None,
            buckets: (0..256).map(|_| Vec::new()).collect(),
            full,
        }
    }
    pub fn push(&mut self, subject: &str, leaf: Leaf) {
        match &mut self.current {
            Some((s, leaves)) if s == subject => leaves.push(leaf),
            _ => {
                self.flush();
                self.current = Some((subject.to_string(), vec![leaf]));
            }
        }
    }
    fn flush(&mut self) {
        if let Some((s, mut leaves)) = self.current.take() {
            leaves.sort_by(|a, b| a.id.cmp(&b.id));
            let shard = shard_of(&s) as usize;
            self.buckets[shard].push(summarise(s, &leaves, self.full));
        }
    }
    /// The summaries of file `path` by shard, each shard's sorted by subject. A subject
    /// whose lines are not together (the writer sorts the file) is refused.
    pub fn finish(mut self, path: &str) -> Result<Vec<Vec<Summary>>, BundleError> {
        self.flush();
        for bucket in &mut self.buckets {
            bucket.sort_by(|a, b| a.subject.cmp(&b.subject));
            if let Some(w) = bucket.windows(2).find(|w| w[0].subject == w[1].subject) {
                return Err(BundleError::Malformed {
                    path: path.into(),
                    reason: format!(
                        "the lines of subject {:?} are not together (the file is sorted by subject)",
                        w[0].subject
                    ),
                });
            }
        }
        Ok(self.buckets)
    }
}

/// For a single-file collection, its subjects' summaries by shard ([`Grouper::finish`]);
/// `None` for collections of another layout.
pub(super) fn single_summaries(ck: &Checker<'_>, c: Collection) -> Result<Option<Vec<Vec<Summary>>>, BundleError> {
    let Some(path) = single_path(ck, c) else {
        return Ok(None);
    };
    let mut g = Grouper::new(ck.full);
    if ck.staged.files.contains_key(&path) {
        for_each_line(ck, c, &path, &mut |s, leaf| {
            g.push(s, leaf);
            Ok(())
        })?;
    }
    g.finish(&path).map(Some)
}

/// The records of one shard of a single-file collection, by subject (leaves sorted by id),
/// read again to name what differs from the index.
pub(super) fn single_subjects(
    ck: &Checker<'_>,
    c: Collection,
    shard: u8,
) -> Result<BTreeMap<String, Vec<Leaf>>, BundleError> {
    let mut out: BTreeMap<String, Vec<Leaf>> = BTreeMap::new();
    if let Some(path) = single_path(ck, c).filter(|p| ck.staged.files.contains_key(p)) {
        for_each_line(ck, c, &path, &mut |s, leaf| {
            if shard_of(s) == shard {
                out.entry(s.to_string()).or_default().push(leaf);
            }
            Ok(())
        })?;
    }
    for leaves in out.values_mut() {
        leaves.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(out)
}
