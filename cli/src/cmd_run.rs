//! `run CHANNEL`: what a timer calls every hour. A full export when the channel's full
//! cadence is due, else a delta (nothing when nothing changed, unless `--always`), then
//! the channel's retention. Idempotent: time is cut into slots of the cadence's length
//! (aligned on the Unix epoch), and a slot that already has its export gets no other.
use clap::Args;
use serde_json::json;
use stellamirror_engine::audit::StoreAuditLog;
use stellamirror_engine::bundle::format::PROFILE_FULL;
use stellamirror_engine::export::channel::{self, channel_of, is_detached, Channel};
use stellamirror_engine::export::prune::Retention;
use stellamirror_engine::export::{self, BaseSpec};
use stellamirror_engine::model::{format_time, parse_time};
use stellamirror_engine::store::catalog::ExportRecord;
use stellamirror_engine::store::Store;
use stellamirror_engine::trust::clock::parse_duration;

use crate::cmd_bundle::{CommonExport, EncryptArg};
use crate::config::{ChannelConfig, Config};
use crate::failure::Failure;
use crate::freshness::ClockArgs;

#[derive(Args)]
pub struct RunArgs {
    /// The channel, as named by a `[channels.NAME]` table of the config file.
    channel: String,
    /// Export a delta even when nothing changed since the channel's last export.
    #[arg(long, env = "STELLAMIRROR_ALWAYS")]
    always: bool,
    /// Do not apply the channel's retention (prune and gc) after exporting.
    #[arg(long, env = "STELLAMIRROR_NO_PRUNE")]
    no_prune: bool,
    #[command(flatten)]
    clock: ClockArgs,
}

fn config_failure(m: String) -> Failure {
    Failure::new(
        "ERR_CONFIG",
        m,
        "fix the config file (docs/operations.md, \"Config file\")",
    )
}

fn duration(name: &str, what: &str, v: &str) -> Result<u64, Failure> {
    match parse_duration(v) {
        Ok(0) => Err(config_failure(format!("channel {name}: {what} must be longer than 0"))),
        Ok(d) => Ok(d),
        Err(e) => Err(config_failure(format!("channel {name}: {what} {v:?}: {e}"))),
    }
}

/// The start of the slot of length `every` that `now` falls in.
fn slot_start(now: i64, every: u64) -> i64 {
    now - now.rem_euclid(every as i64)
}

fn created(r: &ExportRecord) -> i64 {
    parse_time(&r.created_at).unwrap_or(i64::MIN)
}

/// The export flags a channel table stands for.
fn common(c: &Config, ch: &ChannelConfig, channel: &Channel, now: i64) -> Result<CommonExport, Failure> {
    let store = c
        .store
        .clone()
        .or_else(|| std::env::var_os("STELLAMIRROR_STORE").map(Into::into))
        .ok_or_else(|| config_failure("the config file names no `store`".into()))?;
    let encrypt = match ch.encrypt.as_deref() {
        None => None,
        Some("age") => Some(EncryptArg::Age),
        Some("aes-gcm") => Some(EncryptArg::AesGcm),
        Some(other) => {
            return Err(config_failure(format!(
                "encrypt = {other:?}: use \"age\" or \"aes-gcm\""
            )))
        }
    };
    let expires_in = ch
        .expires_in
        .as_deref()
        .map(|v| duration(channel.as_str(), "expires_in", v))
        .transpose()?;
    Ok(CommonExport {
        store,
        tenant: ch.tenant.clone(),
        out: Some(ch.out.clone()),
        channel: channel.to_string(),
        detached: false,
        redefine: false,
        allow_empty: false,
        run_id: None,
        created_at: Some(format_time(now)),
        products: ch.products.clone(),
        from: ch.from.clone(),
        to: ch.to.clone(),
        schedule: ch.schedule.clone(),
        sign_key: c.sign_key.clone(),
        zstd_level: ch.zstd_level.unwrap_or(3),
        encrypt,
        recipients: ch.recipients.clone(),
        recipients_file: ch.recipients_file.clone(),
        strict: ch.strict,
        rotate_to: None,
        expires_in,
        min_sequence: None,
    })
}

pub fn run_cmd(a: RunArgs, json: bool) -> Result<i32, Failure> {
    let (path, config) = crate::config::loaded()?;
    let ch = config.channels.get(&a.channel).ok_or_else(|| {
        let known: Vec<&str> = config.channels.keys().map(String::as_str).collect();
        config_failure(format!(
            "{}: no channel {} (channels: {})",
            path.display(),
            a.channel,
            known.join(", ")
        ))
    })?;
    let channel = Channel::new(ch.channel.as_deref().unwrap_or(&a.channel))
        .map_err(|m| config_failure(format!("channel {}: {m}", a.channel)))?;
    let full_every = duration(&a.channel, "full_every", &ch.full_every)?;
    let delta_every = duration(&a.channel, "delta_every", &ch.delta_every)?;
    let now = a.clock.clock()?.now;
    let c = common(config, ch, &channel, now)?;
    let (store, s) = crate::cmd_bundle::settings(c)?;
    let line: Vec<ExportRecord> = store
        .export_records(&s.tenant)?
        .into_iter()
        .filter(|r| channel_of(r) == channel.as_str() && !is_detached(r))
        .collect();
    let last_full = line.iter().rev().find(|r| r.profile == PROFILE_FULL);
    let head = channel::head(&store, &s.tenant, &channel)?;
    let full_due = last_full.is_none_or(|f| created(f) < slot_start(now, full_every));
    let slot_done = line.last().is_some_and(|r| created(r) >= slot_start(now, delta_every));
    let unchanged = head
        .as_ref()
        .is_some_and(|h| store.head(&s.tenant).ok().flatten() == Some(h.source_root));
    let skip = if full_due {
        None
    } else if slot_done {
        Some("this slot's export was made already")
    } else if unchanged && !a.always {
        Some("nothing changed since the channel's last export")
    } else {
        None
    };
    let audit = StoreAuditLog::new(store.path());
    let ex = |e: export::ExportError| Failure::new(e.code(), e.to_string(), e.hint());
    let report = match skip {
        Some(_) => None,
        None if full_due => Some(export::export_full(&store, &s, &audit).map_err(ex)?),
        None => Some(export::export_delta(&store, &s, &BaseSpec::Latest, false, &audit).map_err(ex)?),
    };
    let pruning = match (&ch.retention, &report) {
        (Some(r), Some(_)) if !a.no_prune => Some(retain(&store, &s.tenant, &channel, r, now)?),
        _ => None,
    };
    if json {
        let action = report
            .as_ref()
            .map_or("none", |r| if r.profile == PROFILE_FULL { "full" } else { "delta" });
        let pruning = pruning.map(|(p, r, g)| json!({"plans": p, "pruned": r, "gc": g}));
        out!(
            "{}",
            json!({"channel": a.channel, "action": action, "reason": skip, "export": report, "retention": pruning})
        );
        return Ok(0);
    }
    match (&report, skip) {
        (Some(r), _) => crate::cmd_bundle::print_export(r, false),
        (None, reason) => out!(
            "channel {}: nothing to export ({})",
            a.channel,
            reason.unwrap_or_default()
        ),
    }
    if let Some((plans, reports, gc)) = pruning {
        for (p, r) in plans.iter().zip(&reports) {
            out!(
                "pruned {} exports ({} bundle files, {} bytes)",
                p.prune.len(),
                r.files_removed,
                r.bytes_freed
            );
        }
        if let Some(g) = gc {
            crate::cmd_retention::print_gc(&g);
        }
    }
    Ok(0)
}

fn retain(
    store: &Store,
    tenant: &stellamirror_engine::model::Tenant,
    channel: &Channel,
    r: &crate::config::RetentionConfig,
    now: i64,
) -> Result<crate::cmd_retention::Pruning, Failure> {
    let keep_within = r
        .keep_within
        .as_deref()
        .map(|v| duration(channel.as_str(), "keep_within", v))
        .transpose()?;
    let ret = Retention {
        keep_full: r.keep_full,
        keep_within,
        now,
    };
    crate::cmd_retention::prune_tenants(store, std::slice::from_ref(tenant), channel, &ret, false, false)
}
