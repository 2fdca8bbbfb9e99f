//! Trust on the mirror side beyond one signature: clocks and durations for freshness
//! checks, the operator's trust file of keys (validity windows, revocation), and key
//! rotation statements shipped in bundles (checked here; stored by the engine).
pub mod clock;
pub mod keys;
pub mod rotation;
