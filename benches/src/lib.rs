//! stellamirror benchmark support: a deterministic generator of realistic evidence at scale
//! (`smgen`) and the large-scale benchmark harness (`smscale`) that drives the stellamirror
//! binary and its peers (tar+zstd, b3sum/sha256sum, restic) over the same data.
//!
//! Neither links the engine: the harness measures the shipped binary as an operator runs it.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod churn;
pub mod evidence;
pub mod fsio;
pub mod generate;
pub mod osv;
pub mod rng;
pub mod scale;

use std::fmt;

/// An error with the context an operator needs (which file, which step).
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach what was being done to an error.
pub trait Context<T> {
    fn ctx<S: fmt::Display>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx<S: fmt::Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}
