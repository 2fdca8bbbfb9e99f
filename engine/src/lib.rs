//! stellamirror engine: content-addressed store, ingest, Merkle state, mirror bundles.
//! The engine never prints or prompts; progress and audit go through [`audit`] traits.
#![forbid(unsafe_code)]

pub mod apply;
pub mod audit;
pub mod bundle;
pub mod consensus;
pub mod encryption;
pub mod export;
pub mod ids;
pub mod import;
pub mod ingest;
pub mod merkle;
pub mod model;
pub mod publish;
pub mod store;
pub mod trust;
