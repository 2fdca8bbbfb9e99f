//! Enumerating input paths into documents: whole JSON files and JSON Lines lines.
use std::io::{BufRead, BufReader};
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

/// Files named directly are taken whatever their extension (JSON unless `.jsonl`);
/// directories are walked in sorted order for `.json`, `.jsonl` and `.ndjson` files.
pub fn enumerate(paths: &[PathBuf], force_lines: bool) -> Result<Vec<InputFile>, IngestError> {
    let mut out = Vec::new();
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
                if entry.file_type().is_file() {
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
    Ok(out)
}

/// One document's bytes and where it came from.
pub struct RawDoc {
    pub line: Option<usize>,
    pub bytes: Vec<u8>,
}

/// Read a file's documents in blocks of about `block_bytes`, so that huge JSONL files
/// are parsed in parallel without being held whole in memory.
pub fn for_each_block(
    file: &InputFile,
    block_bytes: usize,
    mut f: impl FnMut(Vec<RawDoc>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let io = |e: std::io::Error| IngestError::Io {
        path: file.path.clone(),
        message: e.to_string(),
    };
    match file.shape {
        FileShape::Json => {
            let bytes = std::fs::read(&file.path).map_err(io)?;
            f(vec![RawDoc { line: None, bytes }])
        }
        FileShape::JsonLines => {
            let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&file.path).map_err(io)?);
            let mut block = Vec::new();
            let mut size = 0usize;
            for (i, line) in reader.split(b'\n').enumerate() {
                let mut line = line.map_err(io)?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                size += line.len();
                block.push(RawDoc {
                    line: Some(i + 1),
                    bytes: line,
                });
                if size >= block_bytes {
                    f(std::mem::take(&mut block))?;
                    size = 0;
                }
            }
            if !block.is_empty() {
                f(block)?;
            }
            Ok(())
        }
    }
}
