//! Trust on the mirror side beyond one signature: clocks and durations for freshness
//! checks, and the operator's trust file of keys (validity windows, rotation, revocation).
pub mod clock;
