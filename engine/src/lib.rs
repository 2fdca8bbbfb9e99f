//! stellamirror engine: content-addressed store, ingest, Merkle state, mirror bundles.
//! The engine never prints or prompts; progress and audit go through [`audit`] traits.
#![forbid(unsafe_code)]

pub use stellamirror_format::{bundle, encryption, ids, merkle, model};

pub mod apply;
pub mod audit;
pub mod consensus;
pub mod export;
pub mod import;
pub mod ingest;
pub mod publish;
pub mod store;
pub mod trust;
