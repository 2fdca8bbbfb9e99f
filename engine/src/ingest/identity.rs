//! Document identity across runs (docs/formats.md, "Identity and versions"): a
//! document's own version fields, where each document sits in the run's input, and the
//! source root its name is relative to.
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::digest::Position;
use super::error::{IngestError, InputLocation};
use super::input::InputFile;
use crate::model::Tenant;
use crate::store::{Store, StoreError, CF_META};

/// How one version of a document orders against another of the same id: the document's
/// own version number (CSAF `tracking.version`, CycloneDX and OpenVEX `version`; 0 for
/// formats without one), then its own time (the record's `modified`). Never ingest order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct DocVersion {
    pub version: u64,
    /// The record's `modified` (unix seconds), `i64::MIN` when it has none.
    pub time: i64,
}

/// A version string or number as one comparable integer: up to three dot-separated
/// numeric parts of 21 bits each (`2` = `2.0.0` < `2.1` < `10`); a part that is not a
/// number ends the parse (`1.0.0-rc1` → `1.0.0`).
pub fn pack_version(v: &Value) -> u64 {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return 0,
    };
    let mut packed = 0u64;
    let mut parts = text.split('.');
    for shift in [42u32, 21, 0] {
        let Some(p) = parts.next() else { break };
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u64>() else { break };
        packed |= n.min((1 << 21) - 1) << shift;
        if digits.len() != p.len() {
            break;
        }
    }
    packed
}

/// The document's own version number (see [`DocVersion`]), from the parsed JSON: the
/// packed version plus one, so that a version `0` still orders (and is told apart from
/// a format without versions, 0).
pub fn own_version(v: &Value) -> u64 {
    let of = |field: Option<&Value>| field.map_or(0, |f| pack_version(f) + 1);
    if let Some(t) = v.get("document").and_then(|d| d.get("tracking")) {
        return of(t.get("version"));
    }
    let is_cyclonedx = v.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX");
    let is_openvex = v
        .get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.contains("openvex"));
    if is_cyclonedx || is_openvex {
        return of(v.get("version"));
    }
    0
}

/// The own version number of a stored raw record (0 when it has none or does not parse).
pub fn own_version_of_bytes(bytes: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(bytes)
        .map(|v| own_version(&v))
        .unwrap_or(0)
}

/// Where a document is in the run's input ([`Position`]): the file's index in walk order
/// in the high 24 bits, the JSON Lines line (0 for a whole file) in the low 40, so
/// positions compare in input order and name their document.
pub fn position(file_index: usize, line: Option<usize>) -> Position {
    ((file_index as u64) << 40) | (line.unwrap_or(0) as u64 & ((1 << 40) - 1))
}

pub fn location_of(files: &[InputFile], p: Position) -> InputLocation {
    let file = files
        .get((p >> 40) as usize)
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let line = (p & ((1 << 40) - 1)) as usize;
    InputLocation {
        file,
        line: (line > 0).then_some(line),
        pointer: None,
    }
}

fn root_key(tenant: &Tenant, source: &str) -> Vec<u8> {
    format!("sourceroot\0{tenant}\0{source}").into_bytes()
}

/// The roots document names are relative to, for one run (docs/formats.md, "Source
/// root"): `--source-root` if declared; else, for a named source, the root an earlier run
/// recorded; a run pointed at a folder inside it, or at a parent of it, names documents
/// relative to it, so names never depend on the level of the argument. A folder apart
/// from it (a new copy of the source, e.g. the next snapshot) becomes the root. Runs
/// without `--source` (ad-hoc input) record nothing: each path is its own root.
pub struct Roots {
    declared: Option<PathBuf>,
    recording: bool,
    recorded: Option<PathBuf>,
    current: Option<PathBuf>,
    key: Vec<u8>,
}

fn canonical(p: &Path) -> Result<PathBuf, IngestError> {
    std::fs::canonicalize(p).map_err(|e| IngestError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    })
}

impl Roots {
    pub fn load(store: &Store, tenant: &Tenant, source: &str, declared: Option<&Path>) -> Result<Self, IngestError> {
        let key = root_key(tenant, source);
        let recorded = store
            .get(CF_META, &key)?
            .map(|v| String::from_utf8(v).map(PathBuf::from))
            .transpose()
            .map_err(|_| StoreError::Corrupt(format!("source root of {source:?} is not UTF-8")))?;
        Ok(Self {
            declared: declared.map(canonical).transpose()?,
            recording: !source.is_empty() || declared.is_some(),
            current: recorded.clone(),
            recorded,
            key,
        })
    }

    /// The root for the input directory `dir` (canonical: a directory argument, or the
    /// directory of a file argument).
    pub fn root_for(&mut self, dir: &Path) -> Result<PathBuf, IngestError> {
        if let Some(d) = &self.declared {
            if dir.starts_with(d) || d.starts_with(dir) {
                return Ok(d.clone());
            }
            return Err(IngestError::OutsideRoot {
                path: dir.to_path_buf(),
                root: d.clone(),
            });
        }
        if !self.recording {
            return Ok(dir.to_path_buf());
        }
        match &self.current {
            Some(r) if dir.starts_with(r) || r.starts_with(dir) => Ok(r.clone()),
            _ => {
                self.current = Some(dir.to_path_buf());
                Ok(dir.to_path_buf())
            }
        }
    }

    /// The root the run settled on (None: each path its own).
    pub fn root(&self) -> Option<&Path> {
        self.declared
            .as_deref()
            .or(self.current.as_deref().filter(|_| self.recording))
    }

    /// The meta entry recording the root, when this run changes it.
    pub fn record(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let root = self.root().filter(|_| self.recording)?;
        (self.recorded.as_deref() != Some(root))
            .then(|| (self.key.clone(), root.to_string_lossy().into_owned().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_by_their_numeric_parts() {
        assert!(pack_version(&json!("2")) > pack_version(&json!("1.9.9")));
        assert!(pack_version(&json!("1.10")) > pack_version(&json!("1.9")));
        assert_eq!(pack_version(&json!(3)), pack_version(&json!("3.0.0")));
        assert_eq!(pack_version(&json!("1.0.0-rc1")), pack_version(&json!("1.0.0")));
        assert_eq!(pack_version(&json!(null)), 0);
        let p = position(3, Some(17));
        assert!(p > position(2, Some(1 << 30)) && p > position(3, Some(16)));
    }
}
