//! The stellamirror mirror-bundle format, without a database: object and node ids,
//! domain-separated Merkle hashing, tenants and collections, the bundle files, the archive
//! reader with its hostile-entry rules, signatures (DSSE, Ed25519), encryption, key trust
//! and bundle verification. The engine writes and reads bundles through this crate.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod encryption;
pub mod ids;
pub mod merkle;
pub mod model;
pub mod selectors;
pub mod trust;
