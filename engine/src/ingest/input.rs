//! Enumerating input paths into documents: whole JSON files and JSON Lines lines.
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::IngestError;

/// How a file's bytes split into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileShape {
    Json,
    JsonLines,
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
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") || force_lines {
        Some(FileShape::JsonLines)
    } else if name.ends_with(".json") {
        Some(FileShape::Json)
    } else {
        None
    }
}

/// The documents' files, and the symbolic links found in directories (not followed: a
/// link could lead out of the input or loop; they are named in the report).
pub struct Inputs {
    pub files: Vec<InputFile>,
    pub skipped_links: Vec<PathBuf>,
}

/// Files named directly are taken whatever their extension (JSON unless `.jsonl`);
/// directories are walked in sorted order for `.json`, `.jsonl` and `.ndjson` files.
pub fn enumerate(paths: &[PathBuf], force_lines: bool) -> Result<Inputs, IngestError> {
    let mut out = Vec::new();
    let mut skipped_links = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| IngestError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            let walker = walkdir::WalkDir::new(p).sort_by_file_name().follow_links(false);
            for entry in walker {
                let entry = entry.map_err(|e| IngestError::Io {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                if entry.path_is_symlink() {
                    skipped_links.push(entry.path().to_path_buf());
                } else if entry.file_type().is_file() {
                    if let Some(shape) = shape_of(entry.path(), force_lines) {
                        let name = entry
                            .path()
                            .strip_prefix(p)
                            .unwrap_or(entry.path())
                            .to_string_lossy()
                            .to_string();
                        out.push(InputFile {
                            path: entry.path().to_path_buf(),
                            shape,
                            name,
                        });
                    }
                }
            }
        } else {
            let shape = shape_of(p, force_lines).unwrap_or(FileShape::Json);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push(InputFile {
                path: p.clone(),
                shape,
                name,
            });
        }
    }
    Ok(Inputs {
        files: out,
        skipped_links,
    })
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
}

impl Block {
    pub fn bytes(&self, d: &RawDoc) -> &[u8] {
        &self.data[d.range.clone()]
    }
}

/// Split `data` (whole lines, the last one possibly without its line break) into
/// documents: line breaks and a trailing `\r` stripped, blank lines skipped. `first` is
/// the number of the first line.
fn split_lines(data: Vec<u8>, first: usize) -> (Block, usize) {
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
    (Block { data, docs }, line)
}

/// Read a file's documents in blocks of about `block_bytes`, so that huge JSONL files
/// are digested and parsed in parallel without being held whole in memory. The next
/// block is read (on another thread) while `f` works on the current one.
pub fn for_each_block(
    file: &InputFile,
    block_bytes: usize,
    mut f: impl FnMut(Block) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let io = |e: std::io::Error| IngestError::Io {
        path: file.path.clone(),
        message: e.to_string(),
    };
    if file.shape == FileShape::Json {
        let data = std::fs::read(&file.path).map_err(io)?;
        let range = 0..data.len();
        return f(Block {
            data,
            docs: vec![RawDoc { line: None, range }],
        });
    }
    let mut reader = std::fs::File::open(&file.path).map_err(io)?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Block>>(1);
        scope.spawn(move || {
            let mut carry: Vec<u8> = Vec::new();
            let mut line = 1;
            loop {
                let mut data = std::mem::take(&mut carry);
                let eof = match read_lines(&mut reader, &mut data, block_bytes) {
                    Ok(eof) => eof,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // Whole lines only; the partial last one starts the next block.
                if !eof {
                    let cut = memchr::memrchr(b'\n', &data).expect("read_lines stops after a line break");
                    carry = data.split_off(cut + 1);
                }
                let (block, next) = split_lines(data, line);
                line = next;
                if tx.send(Ok(block)).is_err() || (eof && carry.is_empty()) {
                    return;
                }
            }
        });
        for block in rx {
            f(block.map_err(io)?)?;
        }
        Ok(())
    })
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
fn read_some(r: &mut impl Read, data: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let start = data.len();
    data.resize(start.max(want), 0);
    let mut filled = start;
    while filled < data.len() {
        match r.read(&mut data[filled..]) {
            Ok(0) => {
                data.truncate(filled);
                return Ok(true);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
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
