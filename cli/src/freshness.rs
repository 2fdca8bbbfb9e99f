//! Flags and rendering for rollback and expiry checks (`import`, `rebuild`, `status`).
use clap::Args;
use stellamirror_engine::import::freshness::{Expiry, Policy};
use stellamirror_engine::trust::clock::{format_duration, parse_duration, Clock};

use crate::failure::Failure;

/// The clock override shared by every command that judges freshness.
#[derive(Args, Clone)]
pub struct ClockArgs {
    /// Judge expiry and age as of this RFC 3339 time instead of the system clock (for
    /// reproducible tests and "would this be accepted on date X"; audited on import).
    #[arg(long, env = "STELLAMIRROR_NOW", hide = true, value_name = "RFC3339")]
    pub now: Option<String>,
}

impl ClockArgs {
    pub fn clock(&self) -> Result<Clock, Failure> {
        match &self.now {
            None => Ok(Clock::system()),
            Some(t) => Clock::fixed(t).ok_or_else(|| {
                Failure::new(
                    "ERR_USAGE",
                    format!("--now / STELLAMIRROR_NOW {t:?} is not RFC 3339"),
                    "e.g. 2026-08-15T00:00:00Z",
                )
            }),
        }
    }
}

#[derive(Args, Clone)]
pub struct FreshnessArgs {
    /// Accept a bundle older than the newest one applied (restore an old state on
    /// purpose); recorded, shown by `status` and audited as mirror.rollback.accepted.
    #[arg(long, env = "STELLAMIRROR_ALLOW_ROLLBACK")]
    pub allow_rollback: bool,
    /// Accept a bundle past its expiresAt; audited as mirror.expired.accepted.
    #[arg(long, env = "STELLAMIRROR_ALLOW_EXPIRED")]
    pub allow_expired: bool,
    #[command(flatten)]
    pub clock: ClockArgs,
}

impl FreshnessArgs {
    pub fn policy(&self) -> Result<Policy, Failure> {
        Ok(Policy {
            clock: self.clock.clock()?,
            allow_rollback: self.allow_rollback,
            expiry: if self.allow_expired {
                Expiry::Accept
            } else {
                Expiry::Refuse
            },
        })
    }
}

/// `--expires-in` / `--max-age` values.
pub fn duration_arg(s: &str) -> Result<u64, String> {
    parse_duration(s)
}

/// `status` lines for a tenant's freshness report (`null`: nothing imported).
pub fn print_freshness(f: &serde_json::Value) {
    if f.is_null() {
        out!("  freshness: no bundle imported");
        return;
    }
    let age = f["ageSeconds"].as_i64().unwrap_or(0);
    let age_text = if age < 0 {
        format!(
            "created {} in the future (clock skew?)",
            format_duration(age.unsigned_abs())
        )
    } else {
        format!("{} old", format_duration(age as u64))
    };
    out!(
        "  freshness: {} (sequence {}, created {}) is {age_text}",
        f["runId"].as_str().unwrap_or_default(),
        f["sequence"].as_u64().map_or_else(|| "none".into(), |s| s.to_string()),
        f["createdAt"].as_str().unwrap_or_default(),
    );
    match f["expiresAt"].as_str() {
        None => out!("  expires: never (format-1 bundle)"),
        Some(e) if f["expired"] == true => out!("  expires: {e} — EXPIRED"),
        Some(e) => out!("  expires: {e}"),
    }
    if let Some(from) = f["rollbackFrom"].as_str() {
        out!("  ROLLBACK accepted (--allow-rollback): the newest bundle before it was {from}");
    }
    if f["expiredAccepted"] == true {
        out!("  applied although expired (--allow-expired)");
    }
}

/// Tenants (in `status` JSON form) whose data is older than `max_age`, expired, or
/// absent, with the reason.
pub fn stale_tenants(tenants: &[serde_json::Value], max_age: u64) -> Vec<String> {
    let mut out = Vec::new();
    for t in tenants {
        let name = t["tenant"].as_str().unwrap_or_default();
        let f = &t["freshness"];
        if f.is_null() {
            out.push(format!("{name}: no bundle imported"));
        } else if f["expired"] == true {
            out.push(format!(
                "{name}: expired at {}",
                f["expiresAt"].as_str().unwrap_or_default()
            ));
        } else if f["ageSeconds"].as_i64().unwrap_or(i64::MAX) > max_age as i64 {
            let age = f["ageSeconds"].as_i64().unwrap_or(0).max(0) as u64;
            out.push(format!(
                "{name}: data is {} old, more than {}",
                format_duration(age),
                format_duration(max_age)
            ));
        }
    }
    out
}

pub fn stale_failure(stale: &[String]) -> Failure {
    Failure::new(
        "ERR_MIRROR_STALE",
        format!("stale mirror data: {}", stale.join("; ")),
        "import a newer bundle from the producer (check the transfer path); see `status`",
    )
    .with_exit(crate::failure::EXIT_STALE)
}
