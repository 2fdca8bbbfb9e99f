//! Enumerating input paths into documents: whole JSON files and JSON Lines lines.
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::IngestError;
use super::identity::Roots;

/// How a file's bytes split into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileShape {
    Json,
    JsonLines,
    /// A zip archive of `.json` documents (OSV's `<Ecosystem>/all.zip`): each entry is one
    /// document, read like a JSON Lines line (its "line" is the entry's number).
    Zip,
}

#[derive(Clone, Debug)]
pub struct InputFile {
    pub path: PathBuf,
    pub shape: FileShape,
    /// The document's name: its path relative to the directory argument it was found
    /// in (or its file name). Used as the identity of formats whose own ids are not
    /// stable (OpenVEX), see docs/formats.md.
    pub name: String,
}

fn shape_of(path: &Path, force_lines: bool) -> Option<FileShape> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".zip") {
        Some(FileShape::Zip)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || force_lines {
        Some(FileShape::JsonLines)
    } else if name.ends_with(".json") || name.ends_with(".spdx") {
        // `.spdx`: an SPDX tag-value document, one per file like JSON.
        Some(FileShape::Json)
    } else {
        None
    }
}

/// The documents' files, and what the walk passed over: symbolic links (not followed: a
/// link could lead out of the input or loop), files of no input type and files the
/// `--include`/`--exclude` globs leave out. All are named in the report.
pub struct Inputs {
    pub files: Vec<InputFile>,
    pub skipped_links: Vec<PathBuf>,
    pub skipped_files: Vec<SkippedFile>,
    pub excluded: Vec<PathBuf>,
}

/// A file in an input directory that holds no document, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFile {
    pub file: PathBuf,
    pub reason: String,
}

/// Which files of the input directories are read: `--include` globs (any; default all)
/// and `--exclude` globs (none), matched against the name relative to the source root.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub include: Option<globset::GlobSet>,
    pub exclude: Option<globset::GlobSet>,
}

impl Selection {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, IngestError> {
        let set = |globs: &[String]| -> Result<Option<globset::GlobSet>, IngestError> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                let glob = globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| IngestError::BadGlob {
                        glob: g.clone(),
                        message: e.kind().to_string(),
                    })?;
                b.add(glob);
            }
            b.build().map(Some).map_err(|e| IngestError::BadGlob {
                glob: globs.join(" "),
                message: e.kind().to_string(),
            })
        };
        Ok(Self {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    fn selects(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(name))
            && self.exclude.as_ref().is_none_or(|s| !s.is_match(name))
    }
}

/// Why a file of an input directory holds no document, or None when it does.
fn not_a_document(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    for (suffix, reason) in super::sidecar::SUFFIXES {
        if lower.ends_with(suffix) {
            return Some(reason);
        }
    }
    None
}

/// The name of `file` (canonical) relative to `root`, else to `dir` (a parent of the
/// root named as input), with `/` separators.
fn name_of(file: &Path, root: &Path, dir: &Path) -> String {
    let rel = file
        .strip_prefix(root)
        .or_else(|_| file.strip_prefix(dir))
        .unwrap_or(file);
    rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IngestError + '_ {
    move |e| IngestError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Files named directly are taken whatever their extension (JSON unless `.jsonl`);
/// directories are walked in sorted order for `.json`, `.jsonl`, `.ndjson`, `.zip` and
/// `.spdx` files. Names are relative to the source root ([`Roots`]).
pub fn enumerate(
    paths: &[PathBuf],
    force_lines: bool,
    roots: &mut Roots,
    sel: &Selection,
) -> Result<Inputs, IngestError> {
    let mut inputs = Inputs {
        files: Vec::new(),
        skipped_links: Vec::new(),
        skipped_files: Vec::new(),
        excluded: Vec::new(),
    };
    for p in paths {
        let canon = std::fs::canonicalize(p).map_err(io(p))?;
        if canon.is_dir() {
            let root = roots.root_for(&canon)?;
            walk(p, &canon, force_lines, &root, sel, &mut inputs)?;
        } else {
            let dir = canon.parent().map(Path::to_path_buf).unwrap_or_else(|| canon.clone());
            let root = roots.root_for(&dir)?;
            inputs.files.push(InputFile {
                path: p.clone(),
                shape: shape_of(p, force_lines).unwrap_or(FileShape::Json),
                name: name_of(&canon, &root, &dir),
            });
        }
    }
    Ok(inputs)
}

fn walk(
    dir: &Path,
    canon: &Path,
    force_lines: bool,
    root: &Path,
    sel: &Selection,
    inputs: &mut Inputs,
) -> Result<(), IngestError> {
    let mut walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .follow_links(false)
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(|e| IngestError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        if entry.path_is_symlink() {
            inputs.skipped_links.push(entry.path().to_path_buf());
            continue;
        }
        let hidden = entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_dir() && hidden {
            // `.git` and the like: named once, not walked.
            inputs.skipped_files.push(SkippedFile {
                file: entry.path().to_path_buf(),
                reason: "hidden directory, not walked".into(),
            });
            walker.skip_current_dir();
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let name = name_of(&canon.join(rel), root, canon);
        if !sel.selects(&name) {
            inputs.excluded.push(entry.path().to_path_buf());
            continue;
        }
        match shape_of(entry.path(), force_lines) {
            Some(shape) => inputs.files.push(InputFile {
                path: entry.path().to_path_buf(),
                shape,
                name,
            }),
            None => {
                if let Some(reason) = not_a_document(&name) {
                    // Integrity files are read with the document they describe.
                    if reason.is_empty() {
                        continue;
                    }
                    inputs.skipped_files.push(SkippedFile {
                        file: entry.path().to_path_buf(),
                        reason: reason.to_string(),
                    });
                } else {
                    inputs.skipped_files.push(SkippedFile {
                        file: entry.path().to_path_buf(),
                        reason: "not an input type (.json, .jsonl, .ndjson, .zip, .spdx)".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// One document of a block: where it came from and its bytes' range in the block.
pub struct RawDoc {
    pub line: Option<usize>,
    pub range: std::ops::Range<usize>,
}

/// A run of whole documents read together: one buffer, no allocation per document.
pub struct Block {
    pub data: Vec<u8>,
    pub docs: Vec<RawDoc>,
    /// Where `data` starts in the file (JSON Lines; 0 otherwise).
    pub offset: u64,
}

impl Block {
    pub fn bytes(&self, d: &RawDoc) -> &[u8] {
        &self.data[d.range.clone()]
    }
}

/// Split `data` (whole lines, the last one possibly without its line break) into
/// documents: line breaks and a trailing `\r` stripped, blank lines skipped. `first` is
/// the number of the first line.
fn split_lines(data: Vec<u8>, first: usize, offset: u64) -> (Block, usize) {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut line = first;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut stop = end;
        if stop > start && data[stop - 1] == b'\r' {
            stop -= 1;
        }
        if !data[start..stop].iter().all(|b| b.is_ascii_whitespace()) {
            docs.push(RawDoc {
                line: Some(line),
                range: start..stop,
            });
        }
        line += 1;
        start = end + 1;
    }
    (Block { data, docs, offset }, line)
}

/// Read a file's documents in blocks of about `block_bytes`, so that huge JSONL files
/// are digested and parsed in parallel without being held whole in memory. The next
/// block is read (on another thread) while `f` works on the current one; buffers go back
/// to the reader, so a large file reuses a few of them instead of faulting in fresh pages.
pub fn for_each_block(
    file: &InputFile,
    block_bytes: usize,
    mut f: impl FnMut(&Block) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let io = |e: std::io::Error| IngestError::Io {
        path: file.path.clone(),
        message: e.to_string(),
    };
    if file.shape == FileShape::Zip {
        return for_each_zip_entry(file, block_bytes, f);
    }
    if file.shape == FileShape::Json {
        let data = std::fs::read(&file.path).map_err(io)?;
        let range = 0..data.len();
        return f(&Block {
            data,
            docs: vec![RawDoc { line: None, range }],
            offset: 0,
        });
    }
    let reader = std::fs::File::open(&file.path).map_err(io)?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Block>>(1);
        let (back, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || read_blocks(reader, block_bytes, &tx, &recycled));
        for block in rx {
            let block = block.map_err(io)?;
            f(&block)?;
            let _ = back.send(block.data);
        }
        Ok(())
    })
}

/// Most bytes one zip entry may expand to: an entry is one document, and a larger one is
/// refused rather than allocated (a zip bomb).
pub const ZIP_ENTRY_LIMIT: u64 = 256 << 20;

/// The `.json` entries of a zip archive in archive order, in blocks of about
/// `block_bytes`: entries are decompressed one at a time, so memory is bounded by the
/// block, not by the archive. Other entries (directories, a `README`) are passed over.
fn for_each_zip_entry(
    file: &InputFile,
    block_bytes: usize,
    mut f: impl FnMut(&Block) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let bad = |message: String| IngestError::Io {
        path: file.path.clone(),
        message,
    };
    let reader = std::io::BufReader::new(std::fs::File::open(&file.path).map_err(|e| bad(e.to_string()))?);
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    let mut block = Block {
        data: Vec::new(),
        docs: Vec::new(),
        offset: 0,
    };
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("zip entry {}: {e}", i + 1)))?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        if !entry.is_file() || !name.to_ascii_lowercase().ends_with(".json") {
            continue;
        }
        if entry.size() > ZIP_ENTRY_LIMIT {
            return Err(bad(format!(
                "zip entry {} ({}) expands to {} bytes, more than the {ZIP_ENTRY_LIMIT} allowed for one document",
                i + 1,
                name,
                entry.size()
            )));
        }
        let start = block.data.len();
        (&mut entry)
            .take(ZIP_ENTRY_LIMIT + 1)
            .read_to_end(&mut block.data)
            .map_err(|e| bad(format!("zip entry {} ({name}): {e}", i + 1)))?;
        block.docs.push(RawDoc {
            line: Some(i + 1),
            range: start..block.data.len(),
        });
        if block.data.len() >= block_bytes {
            f(&block)?;
            block.data.clear();
            block.docs.clear();
        }
    }
    if !block.docs.is_empty() {
        f(&block)?;
    }
    Ok(())
}

/// The reader thread of [`for_each_block`]: whole lines per block, the partial last line
/// carried into the next one.
fn read_blocks(
    mut reader: std::fs::File,
    block_bytes: usize,
    tx: &std::sync::mpsc::SyncSender<std::io::Result<Block>>,
    recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1;
    let mut offset = 0u64;
    loop {
        let mut data = recycled.try_recv().unwrap_or_default();
        data.clear();
        data.extend_from_slice(&carry);
        let eof = match read_lines(&mut reader, &mut data, block_bytes) {
            Ok(eof) => eof,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        carry.clear();
        if !eof {
            let cut = memchr::memrchr(b'\n', &data).expect("read_lines stops after a line break");
            carry.extend_from_slice(&data[cut + 1..]);
            data.truncate(cut + 1);
        }
        let len = data.len() as u64;
        let (block, next) = split_lines(data, line, offset);
        line = next;
        offset += len;
        if tx.send(Ok(block)).is_err() || eof {
            return;
        }
    }
}

/// Append to `data` at least `want` bytes and up to a line break, or to the end of the
/// file (returns whether it ended). A line longer than `want` grows the block.
fn read_lines(r: &mut impl Read, data: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let mut want = want;
    loop {
        if read_some(r, data, want)? {
            return Ok(true);
        }
        if memchr::memrchr(b'\n', data).is_some() {
            return Ok(false);
        }
        want = data.len() * 2;
    }
}

/// Append to `data` until it holds `want` bytes or the file ends (returns whether it did).
/// Reads into the buffer's spare capacity, without zeroing it first.
fn read_some(r: &mut impl Read, data: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let need = want.saturating_sub(data.len());
    if need == 0 {
        return Ok(false);
    }
    data.reserve(need);
    let n = r.by_ref().take(need as u64).read_to_end(data)?;
    Ok(n < need)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_of(body: &[u8], block_bytes: usize) -> Vec<(Option<usize>, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, body).unwrap();
        let file = InputFile {
            path,
            shape: FileShape::JsonLines,
            name: "in.jsonl".into(),
        };
        let mut out = Vec::new();
        for_each_block(&file, block_bytes, |b| {
            for d in &b.docs {
                // Offsets are the documents' places in the file.
                let at = b.offset as usize + d.range.start;
                assert_eq!(&body[at..at + d.range.len()], b.bytes(d));
            }
            out.extend(b.docs.iter().map(|d| (d.line, b.bytes(d).to_vec())));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_split_across_blocks_keep_their_numbers_and_bytes() {
        let long = "x".repeat(50);
        let body = format!("a\r\n\n  \n{long}\nb\r\nlast");
        let expected: Vec<(Option<usize>, Vec<u8>)> = vec![
            (Some(1), b"a".to_vec()),
            (Some(4), long.clone().into_bytes()),
            (Some(5), b"b".to_vec()),
            (Some(6), b"last".to_vec()),
        ];
        // Blocks smaller than a line, of a few lines, and larger than the file.
        for block in [3, 8, 1 << 20] {
            assert_eq!(docs_of(body.as_bytes(), block), expected, "block {block}");
        }
        assert!(docs_of(b"", 8).is_empty());
    }
}
