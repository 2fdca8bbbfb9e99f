//! Trust on the mirror side beyond one signature: clocks and durations for freshness
//! checks, the operator's trust file of keys (validity windows, revocation), and key
//! rotation statements shipped in bundles. Everything but storing applied rotations lives
//! in `stellamirror_format::trust`.
pub use stellamirror_format::trust::{clock, keys};
pub mod rotation;
