//! Key rotations on the store side: the statement and its checks live in
//! `stellamirror_format::trust::rotation`; this module loads and records the rotations a
//! store applied.
use serde_json::json;

pub use stellamirror_format::trust::rotation::*;

use crate::audit::{AuditEvent, AuditSink};
use crate::bundle::signing::TrustedKey;
use crate::store::{Store, StoreError, CF_META};
use crate::trust::keys::KeyRule;

const STORED_KEY: &[u8] = b"trust\0keys";

/// The rotations `store` applied (none on a new store).
pub fn load_stored(store: &Store) -> Result<StoredTrust, StoreError> {
    match store.get(CF_META, STORED_KEY)? {
        None => Ok(StoredTrust::default()),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| StoreError::Corrupt(format!("stored key rotations do not decode: {e}"))),
    }
}

/// The trust an import works with: the operator's keys and rules plus, with a store, the
/// rotations it applied.
pub fn gate(store: Option<&Store>, keys: &[TrustedKey], rules: &[KeyRule]) -> Result<Gate, StoreError> {
    let g = Gate::new(keys, rules);
    Ok(match store {
        Some(s) => g.with_stored(&load_stored(s)?),
        None => g,
    })
}

/// Record an applied rotation (idempotent: a re-imported bundle records nothing new).
pub fn record(store: &Store, st: &RotationStatement, audit: &dyn AuditSink) -> Result<(), StoreError> {
    let mut stored = load_stored(store)?;
    if stored.rotations.contains(st) {
        return Ok(());
    }
    stored.rotations.push(st.clone());
    let mut b = store.new_batch();
    store.batch_put(&mut b, CF_META, STORED_KEY, &serde_json::to_vec(&stored).expect("json"));
    store.commit(b)?;
    audit.record(&AuditEvent::new(
        "mirror.key.rotated",
        json!({"oldKeyId": st.old_key_id, "newKeyId": st.new_key_id, "effectiveAt": st.effective_at, "runId": st.run_id, "tenant": st.tenant}),
    ));
    Ok(())
}
