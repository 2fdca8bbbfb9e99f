//! Mirror bundles: format types, layout, the archive container, signing, verification.
pub mod archive;
pub mod dsse;
pub mod error;
pub mod format;
pub mod index_stream;
pub mod layout;
pub mod provenance;
pub mod records;
pub mod signing;
pub mod validate;
pub mod verify;
pub mod verify_archive;
mod verify_data;
mod verify_single;
