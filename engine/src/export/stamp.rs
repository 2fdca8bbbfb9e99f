//! The freshness stamp an export signs into its manifest: channel, sequence, createdAt
//! and expiresAt (docs/bundle-format.md, "Freshness"). Importers refuse bundles older
//! than the newest they applied, and expired ones.
use serde_json::json;

use super::ExportError;
use crate::bundle::format::{Stamp, DEFAULT_CHANNEL, FORMAT_VERSION, FORMAT_VERSION_1, PROFILE_DELTA};
use crate::model::{format_time, Tenant};
use crate::store::catalog::ExportRecord;
use crate::store::Store;

/// Default lifetime of a full bundle: a mirror fed nothing newer for a month is stale.
pub const DEFAULT_FULL_EXPIRY_SECS: u64 = 30 * 86_400;
/// Default lifetime of a delta: deltas are expected daily or hourly.
pub const DEFAULT_DELTA_EXPIRY_SECS: u64 = 7 * 86_400;

/// The stamp of a new export. The sequence continues this store's per-tenant export
/// sequence (the catalog's `seq`, shared by its channels, so it grows on each of them),
/// or jumps to `min_sequence`.
#[allow(clippy::too_many_arguments)]
pub fn new_stamp(
    store: &Store,
    tenant: &Tenant,
    channel: &super::channel::Channel,
    profile: &str,
    created_at: &str,
    created_secs: i64,
    expires_in: Option<u64>,
    min_sequence: Option<u64>,
) -> Result<Stamp, ExportError> {
    let next = store.export_records(tenant)?.last().map_or(1, |r| r.seq + 1);
    let sequence = next.max(min_sequence.unwrap_or(0));
    let lifetime = expires_in.unwrap_or(if profile == PROFILE_DELTA {
        DEFAULT_DELTA_EXPIRY_SECS
    } else {
        DEFAULT_FULL_EXPIRY_SECS
    });
    Ok(Stamp {
        format_version: FORMAT_VERSION,
        channel: channel.as_str().into(),
        sequence: Some(sequence),
        created_at: created_at.into(),
        expires_at: Some(format_time(created_secs.saturating_add(lifetime as i64))),
    })
}

/// The stamp a past export was written with (for `--rerun`). Exports recorded before
/// format 2 carry no `formatVersion` option and are regenerated as format 1.
pub fn recorded_stamp(rec: &ExportRecord) -> Stamp {
    let version = rec.options["formatVersion"]
        .as_u64()
        .map_or(FORMAT_VERSION_1, |v| v as u32);
    if version == FORMAT_VERSION_1 {
        return Stamp {
            format_version: FORMAT_VERSION_1,
            channel: DEFAULT_CHANNEL.into(),
            sequence: None,
            created_at: rec.created_at.clone(),
            expires_at: None,
        };
    }
    Stamp {
        format_version: version,
        channel: rec.options["channel"].as_str().unwrap_or(DEFAULT_CHANNEL).to_string(),
        sequence: Some(rec.seq),
        created_at: rec.created_at.clone(),
        expires_at: rec.options["expiresAt"].as_str().map(str::to_string),
    }
}

/// The catalog options that let `recorded_stamp` reproduce `stamp`.
pub fn stamp_options(stamp: &Stamp, options: &mut serde_json::Value) {
    options["formatVersion"] = json!(stamp.format_version);
    options["channel"] = json!(stamp.channel);
    options["expiresAt"] = json!(stamp.expires_at);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(options: serde_json::Value) -> ExportRecord {
        let root = format!("blake3:{}", "0".repeat(64));
        serde_json::from_value(json!({
            "runId": "r", "profile": "mirror:full", "tenant": "acme", "createdAt": "2026-08-14T00:00:00Z",
            "selectors": {}, "sourceRoot": root, "stateRoot": root, "manifestDigest": format!("sha256:{}", "0".repeat(64)),
            "baseExportId": null, "bundleFile": "r-full.tar.zst", "bytes": 1, "options": options, "seq": 3,
        }))
        .expect("export record")
    }

    #[test]
    fn reruns_reproduce_the_recorded_stamp_and_format_1_exports_stay_format_1() {
        let legacy = recorded_stamp(&record(json!({"zstdLevel": 3})));
        assert_eq!(legacy.format_version, FORMAT_VERSION_1);
        assert_eq!((legacy.sequence, legacy.expires_at), (None, None));
        let stamp = Stamp {
            format_version: FORMAT_VERSION,
            channel: DEFAULT_CHANNEL.into(),
            sequence: Some(3),
            created_at: "2026-08-14T00:00:00Z".into(),
            expires_at: Some("2026-09-13T00:00:00Z".into()),
        };
        let mut options = json!({"zstdLevel": 3});
        stamp_options(&stamp, &mut options);
        assert_eq!(recorded_stamp(&record(options)), stamp);
    }
}
