use std::path::PathBuf;

use crate::store::StoreError;

/// Where a bad document is: the file, the JSONL line and a JSON pointer into it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InputLocation {
    pub file: PathBuf,
    /// 1-based line number for JSON Lines input.
    pub line: Option<usize>,
    /// JSON pointer (RFC 6901) of the offending value, when known.
    pub pointer: Option<String>,
}

impl std::fmt::Display for InputLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(p) = &self.pointer {
            write!(f, " at {p}")?;
        }
        Ok(())
    }
}

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum BadInputKind {
    /// Not JSON, or a recognised format missing or mistyping a required field.
    Invalid,
    /// Valid JSON of no format stellamirror knows.
    Unrecognized,
    /// A second document with the id of one earlier in the same input, other content and
    /// the same own version: which one is current cannot be told (docs/formats.md).
    DuplicateId,
    /// A `.sha256`/`.sha512` beside the document does not match it.
    DigestMismatch,
    /// The `.asc` beside the document does not verify with any `--publisher-key`.
    SignatureInvalid,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadInput {
    pub kind: BadInputKind,
    pub at: InputLocation,
    pub reason: String,
}

impl BadInput {
    pub fn code(&self) -> &'static str {
        match self.kind {
            BadInputKind::Invalid => "ERR_INPUT_INVALID",
            BadInputKind::Unrecognized => "ERR_INPUT_UNRECOGNIZED",
            BadInputKind::DuplicateId => "ERR_INPUT_DUPLICATE_ID",
            BadInputKind::DigestMismatch => "ERR_INPUT_DIGEST_MISMATCH",
            BadInputKind::SignatureInvalid => "ERR_INPUT_SIGNATURE_INVALID",
        }
    }
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// Failures of `ingest` and `remove`. Nothing is committed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A document is malformed or of an unknown format (without `--keep-going`).
    #[error("{0}")]
    BadInput(BadInput),
    /// An input path cannot be read.
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// `--complete` needs `--source` to know which records the input replaces.
    #[error("--complete needs --source NAME")]
    CompleteWithoutSource,
    /// No document was found in the given paths.
    #[error("no documents found in the given paths")]
    NoInput,
    /// `--complete` would remove more of the source's records than allowed (an empty or
    /// truncated feed must not wipe a source).
    #[error(
        "--complete would remove {removing} of the {live} records of source {source_name:?} \
         ({:.1}%, more than the {limit_pct}% allowed); the input holds {documents} documents",
        percent(*removing, *live)
    )]
    MassRemoval {
        source_name: String,
        removing: u64,
        live: u64,
        documents: u64,
        limit_pct: f64,
    },
    /// An input lies outside the source root its names are relative to.
    #[error("{path} is outside the source root {root}")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    /// A `--publisher-key` file holds no OpenPGP public key.
    #[error("{path} is not an OpenPGP public key: {message}")]
    PublisherKey { path: PathBuf, message: String },
    /// An `--include`/`--exclude` glob does not parse.
    #[error("glob {glob:?} does not parse: {message}")]
    BadGlob { glob: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl IngestError {
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::BadInput(b) => b.code(),
            IngestError::Io { .. } => "ERR_INPUT_IO",
            IngestError::CompleteWithoutSource => "ERR_USAGE",
            IngestError::NoInput => "ERR_INPUT_UNRECOGNIZED",
            IngestError::MassRemoval { .. } => "ERR_MASS_REMOVAL",
            IngestError::OutsideRoot { .. } => "ERR_INPUT_OUTSIDE_ROOT",
            IngestError::BadGlob { .. } => "ERR_USAGE",
            IngestError::PublisherKey { .. } => "ERR_PUBLISHER_KEY_INVALID",
            IngestError::Store(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            IngestError::BadInput(b) => match b.kind {
                BadInputKind::Invalid => "fix or drop the document and rerun; `--keep-going` ingests the rest and lists every bad document (nothing from this run was stored)".into(),
                BadInputKind::Unrecognized => "supported: OSV, OpenVEX, CSAF 2.0/2.1, CycloneDX (SBOM and VEX), SPDX 2.x JSON and tag-value, SPDX 3.0 JSON-LD, policy snapshots/evaluations (--kind); nothing from this run was stored".into(),
                BadInputKind::DuplicateId => "the input holds two different documents with one id and one version: drop one (e.g. --exclude GLOB), or pass --keep-going to keep the first and list the other; nothing from this run was stored".into(),
                BadInputKind::DigestMismatch => "the document or its checksum file was altered or cut short: fetch both again from the publisher; nothing from this run was stored".into(),
                BadInputKind::SignatureInvalid => "the document or its signature was altered, or it is signed by a key not given: check the publisher's key (--publisher-key KEY.asc) and fetch both again; nothing from this run was stored".into(),
            },
            IngestError::Io { .. } => "check the path exists and is readable".into(),
            IngestError::CompleteWithoutSource => "name the source whose complete set this input is, e.g. --source osv-pypa".into(),
            IngestError::NoInput => "pass .json/.jsonl files or directories holding them".into(),
            IngestError::MassRemoval { .. } => "check that the input is the source's whole current set (not empty or truncated); if the removal is intended, pass --max-removal PCT or --allow-mass-removal; nothing was changed".into(),
            IngestError::OutsideRoot { .. } => "document names are relative to the source's recorded root; ingest from inside it, or declare a new root with --source-root DIR (names, and so OpenVEX and name-keyed ids, change with it); nothing was changed".into(),
            IngestError::PublisherKey { .. } => "pass the publisher's armored OpenPGP public key, e.g. --publisher-key cisa-csaf.asc (gpg --export --armor KEYID)".into(),
            IngestError::BadGlob { .. } => "globs use `*`, `**`, `?`, `[..]`, `{a,b}` and match the name relative to the source root, e.g. --exclude '**/manifest.json'".into(),
            IngestError::Store(e) => e.hint(),
        }
    }
}
