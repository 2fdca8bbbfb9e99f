//! Rollback and freeze protection on import (docs/bundle-format.md, "Threat model").
//!
//! Invariant: a bundle is applied only if it is newer than the newest bundle applied on
//! its (tenant, channel): a strictly greater `sequence` (when both carry one) and a
//! `createdAt` not before it; and only if it has not expired (`expiresAt` > the clock).
//! Both are signed in the manifest, and both are checked before anything is written.
//! `--allow-rollback` / `--allow-expired` accept such a bundle on purpose; the history
//! entry and the audit log say so.
use serde_json::json;

use crate::audit::{AuditEvent, AuditSink};
use crate::bundle::format::{Manifest, Stamp, DEFAULT_CHANNEL};
use crate::ids::FileDigest;
use crate::model::parse_time;
use crate::store::catalog::{AppliedExport, AppliedFreshness, ImportHistory};
use crate::trust::clock::Clock;

/// What to do with a bundle past its `expiresAt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Refuse,
    /// `--allow-expired`: accept it, recorded and audited.
    Accept,
    /// Not judged: a link inside a `rebuild` chain, superseded by the chain's end (which
    /// is judged).
    Ignore,
}

/// How strict the import is about freshness.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub clock: Clock,
    /// Accept a bundle older than the newest applied one (restoring an old state).
    pub allow_rollback: bool,
    pub expiry: Expiry,
}

impl Policy {
    /// Refuse rollbacks and expired bundles, judged at `clock`.
    pub fn strict(clock: Clock) -> Self {
        Self {
            clock,
            allow_rollback: false,
            expiry: Expiry::Refuse,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FreshnessError {
    /// The bundle is older than the newest one applied on its (tenant, channel).
    #[error("bundle {bundle} is older than {newest}, the newest applied on tenant {tenant} channel {channel}")]
    Rollback {
        bundle: Box<Dated>,
        newest: Box<Dated>,
        tenant: String,
        channel: String,
    },
    /// The bundle's `expiresAt` has passed.
    #[error("bundle {run_id} expired at {expires_at} (now {now})")]
    Expired {
        run_id: String,
        expires_at: String,
        now: String,
    },
}

/// A bundle as a rollback refusal names it.
#[derive(Debug)]
pub struct Dated {
    pub run_id: String,
    pub sequence: Option<u64>,
    pub created_at: String,
}

impl std::fmt::Display for Dated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = self.sequence.map_or_else(|| "none".into(), |s| s.to_string());
        write!(f, "{} (sequence {seq}, created {})", self.run_id, self.created_at)
    }
}

impl FreshnessError {
    pub fn code(&self) -> &'static str {
        match self {
            FreshnessError::Rollback { .. } => "ERR_BUNDLE_ROLLBACK",
            FreshnessError::Expired { .. } => "ERR_BUNDLE_EXPIRED",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            FreshnessError::Rollback { .. } => "someone may be replaying an old bundle to hide newer data; import the newest bundle instead. To restore an old state on purpose, pass --allow-rollback (audited); nothing was applied".into(),
            FreshnessError::Expired { .. } => "the producer's bundle is stale (possible freeze attack, or a transfer that took too long); obtain a newer bundle, or pass --allow-expired to accept it anyway (audited); nothing was applied".into(),
        }
    }
}

/// The outcome of the check, carried to the commit and the audit log.
#[derive(Clone, Debug)]
pub struct Accepted {
    stamp: Stamp,
    /// The bundle was applied before and is to be applied again (`--allow-rollback` of a
    /// superseded bundle); otherwise an applied bundle is left to the no-op path.
    pub reapply: bool,
    /// Run id of the newest applied bundle when a rollback was accepted.
    rollback_from: Option<String>,
    expired_accepted: bool,
    clock: Clock,
}

fn channel_of(a: &AppliedExport) -> &str {
    a.freshness.as_ref().map_or(DEFAULT_CHANNEL, |f| f.channel.as_str())
}

/// Whether `m` is older than `newest` (sequence not greater, or created before it).
fn is_older(stamp: &Stamp, newest: &AppliedExport) -> bool {
    let newest_seq = newest.freshness.as_ref().and_then(|f| f.sequence);
    let seq_back = matches!((stamp.sequence, newest_seq), (Some(s), Some(n)) if s <= n);
    let time_back = match (parse_time(&stamp.created_at), parse_time(&newest.created_at)) {
        (Some(b), Some(n)) => b < n,
        _ => false,
    };
    seq_back || time_back
}

/// Decide whether bundle `m` (manifest digest `digest`) may be applied to a tenant with
/// `history`. Called before anything is written.
pub fn check(
    history: &ImportHistory,
    m: &Manifest,
    digest: &FileDigest,
    policy: &Policy,
) -> Result<Accepted, FreshnessError> {
    let stamp = m.stamp();
    let mut accepted = Accepted {
        stamp: stamp.clone(),
        reapply: false,
        rollback_from: None,
        expired_accepted: false,
        clock: policy.clock,
    };
    let on_channel: Vec<&AppliedExport> = history
        .applied
        .iter()
        .filter(|a| channel_of(a) == stamp.channel)
        .collect();
    let newest = on_channel.last().copied();
    let older_than = newest.filter(|n| is_older(&stamp, n));
    if let Some(prev) = history.applied.iter().find(|a| a.run_id == m.run_id) {
        // A conflict (same run id, other bundle) is refused by the caller. The same
        // bundle again is a no-op (nothing is rolled back) when it is the newest, or older
        // than the newest without --allow-rollback; it is applied again when it is newer
        // than the newest (going forward after a rollback) or rolled back to on purpose.
        let is_newest = newest.is_some_and(|n| n.run_id == prev.run_id);
        if prev.manifest_digest != *digest || is_newest || (older_than.is_some() && !policy.allow_rollback) {
            return Ok(accepted);
        }
        accepted.reapply = true;
    }
    if let Some(n) = older_than {
        if !policy.allow_rollback {
            return Err(FreshnessError::Rollback {
                bundle: Box::new(Dated {
                    run_id: m.run_id.clone(),
                    sequence: stamp.sequence,
                    created_at: stamp.created_at.clone(),
                }),
                newest: Box::new(Dated {
                    run_id: n.run_id.clone(),
                    sequence: n.freshness.as_ref().and_then(|f| f.sequence),
                    created_at: n.created_at.clone(),
                }),
                tenant: m.tenant.clone(),
                channel: stamp.channel.clone(),
            });
        }
        accepted.rollback_from = Some(n.run_id.clone());
    }
    let expires = stamp.expires_at.as_deref().and_then(parse_time);
    if policy.expiry != Expiry::Ignore && expires.is_some_and(|e| policy.clock.now >= e) {
        if policy.expiry == Expiry::Refuse {
            return Err(FreshnessError::Expired {
                run_id: m.run_id.clone(),
                expires_at: stamp.expires_at.clone().unwrap_or_default(),
                now: policy.clock.rfc3339(),
            });
        }
        accepted.expired_accepted = true;
    }
    Ok(accepted)
}

impl Accepted {
    /// The freshness record stored with the history entry of the applied bundle.
    pub fn applied(&self) -> AppliedFreshness {
        AppliedFreshness {
            format_version: self.stamp.format_version,
            channel: self.stamp.channel.clone(),
            sequence: self.stamp.sequence,
            expires_at: self.stamp.expires_at.clone(),
            rollback_from: self.rollback_from.clone(),
            expired_accepted: self.expired_accepted,
        }
    }

    /// Audit what was accepted on purpose (after the commit).
    pub fn audit(&self, m: &Manifest, audit: &dyn AuditSink) {
        let base = json!({"runId": m.run_id, "tenant": m.tenant, "channel": self.stamp.channel, "sequence": self.stamp.sequence, "createdAt": self.stamp.created_at, "expiresAt": self.stamp.expires_at, "now": self.clock.rfc3339(), "clockOverridden": self.clock.overridden});
        if let Some(from) = &self.rollback_from {
            let mut f = base.clone();
            f["newestRunId"] = json!(from);
            audit.record(&AuditEvent::new("mirror.rollback.accepted", f));
        }
        if self.expired_accepted {
            audit.record(&AuditEvent::new("mirror.expired.accepted", base.clone()));
        }
        if self.clock.overridden && self.stamp.expires_at.is_some() {
            audit.record(&AuditEvent::new("mirror.clock.overridden", base));
        }
    }
}

/// The freshness of a tenant's data as `status` reports it: the newest applied bundle
/// (its age, expiry, and whether it was a rollback).
pub fn report(history: &ImportHistory, clock: &Clock) -> Option<serde_json::Value> {
    let last = history.last()?;
    let f = last.freshness.as_ref();
    let created = parse_time(&last.created_at);
    let age = created.map(|c| clock.now - c);
    let expires_at = f.and_then(|f| f.expires_at.clone());
    let expired = expires_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|e| clock.now >= e);
    Some(json!({
        "runId": last.run_id,
        "channel": channel_of(last),
        "sequence": f.and_then(|f| f.sequence),
        "createdAt": last.created_at,
        "expiresAt": expires_at,
        "ageSeconds": age,
        "expired": expired,
        "rollbackFrom": f.and_then(|f| f.rollback_from.clone()),
        "expiredAccepted": f.is_some_and(|f| f.expired_accepted),
        "now": clock.rfc3339(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(run: &str, channel: Option<&str>, seq: Option<u64>, created: &str) -> Manifest {
        serde_json::from_value(json!({
            "formatVersion": if seq.is_some() { 2 } else { 1 }, "profile": "mirror:full", "runId": run,
            "tenant": "acme", "createdAt": created, "channel": channel, "sequence": seq,
            "expiresAt": seq.map(|_| "2030-01-01T00:00:00Z"), "selectors": {}, "counts": {},
            "stateRoot": "blake3:00", "kindRoots": {}, "compression": {"algorithm": "zstd", "level": 3},
            "encryption": {"mode": "none"}, "signing": {"algorithm": "ed25519", "keyId": "k"}, "artifacts": [],
        }))
        .expect("manifest")
    }

    fn digest(run: &str) -> FileDigest {
        FileDigest::of(run.as_bytes())
    }

    fn applied(m: &Manifest, accepted: &Accepted) -> AppliedExport {
        serde_json::from_value(json!({
            "runId": m.run_id, "profile": m.profile, "manifestDigest": digest(&m.run_id),
            "stateRoot": format!("blake3:{}", "0".repeat(64)), "baseExportId": null, "createdAt": m.created_at,
            "freshness": accepted.applied(),
        }))
        .expect("applied export")
    }

    fn clock() -> Policy {
        Policy::strict(Clock::fixed("2026-08-20T00:00:00Z").expect("time"))
    }

    /// Apply `bundles` in order; the result of checking `next`.
    fn after(bundles: &[Manifest], next: &Manifest) -> Result<Accepted, FreshnessError> {
        let mut h = ImportHistory::default();
        for m in bundles {
            let a = check(&h, m, &digest(&m.run_id), &clock()).expect("in order");
            h.applied.push(applied(m, &a));
        }
        check(&h, next, &digest(&next.run_id), &clock())
    }

    #[test]
    fn sequence_and_created_at_must_both_move_forward() {
        let base = [manifest("a", Some("default"), Some(5), "2026-08-14T00:00:00Z")];
        let ok = |m: Manifest| after(&base, &m).is_ok();
        assert!(
            ok(manifest("b", Some("default"), Some(6), "2026-08-14T00:00:00Z")),
            "same time, next sequence"
        );
        assert!(
            !ok(manifest("b", Some("default"), Some(5), "2026-08-15T00:00:00Z")),
            "same sequence, other bundle"
        );
        assert!(
            !ok(manifest("b", Some("default"), Some(4), "2026-08-15T00:00:00Z")),
            "lower sequence"
        );
        assert!(
            !ok(manifest("b", Some("default"), Some(9), "2026-08-13T00:00:00Z")),
            "earlier createdAt"
        );
        // Format 1 (no sequence): createdAt alone, either way round.
        assert!(ok(manifest("b", None, None, "2026-08-15T00:00:00Z")));
        assert!(!ok(manifest("b", None, None, "2026-08-13T00:00:00Z")));
        let v1 = [manifest("a", None, None, "2026-08-14T00:00:00Z")];
        assert!(after(&v1, &manifest("b", Some("default"), Some(1), "2026-08-14T00:00:00Z")).is_ok());
    }

    #[test]
    fn channels_are_ordered_separately() {
        let base = [
            manifest("a", Some("default"), Some(5), "2026-08-14T00:00:00Z"),
            manifest("n", Some("nightly"), Some(90), "2026-08-16T00:00:00Z"),
        ];
        // Older than the nightly channel's newest, newer than the default channel's.
        assert!(after(&base, &manifest("b", Some("default"), Some(6), "2026-08-15T00:00:00Z")).is_ok());
        let err = after(&base, &manifest("m", Some("nightly"), Some(89), "2026-08-17T00:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("channel nightly"), "{err}");
        assert!(err.to_string().contains("n (sequence 90"), "{err}");
    }

    #[test]
    fn an_applied_bundle_again_is_left_to_the_no_op_path() {
        let a = manifest("a", Some("default"), Some(1), "2026-08-14T00:00:00Z");
        let b = manifest("b", Some("default"), Some(2), "2026-08-15T00:00:00Z");
        assert!(!after(&[a.clone(), b.clone()], &b).unwrap().reapply, "the newest again");
        assert!(
            !after(&[a.clone(), b.clone()], &a).unwrap().reapply,
            "an older one again: no-op"
        );
        let mut h = ImportHistory::default();
        for m in [&a, &b] {
            let acc = check(&h, m, &digest(&m.run_id), &clock()).unwrap();
            h.applied.push(applied(m, &acc));
        }
        let mut back = clock();
        back.allow_rollback = true;
        let acc = check(&h, &a, &digest("a"), &back).unwrap();
        assert!(
            acc.reapply && acc.rollback_from.as_deref() == Some("b"),
            "rolled back to on purpose"
        );
    }
}
