//! Channels: named export lines of a tenant (issue 20).
//!
//! A channel is defined by its last attached export: its selectors, output folder and
//! encryption (mode, recipients, strict) are recorded in that export's catalog entry, and
//! the next export on the channel inherits them. `--base latest` is the channel's last
//! export. An export that would change the definition is refused unless it says so
//! (`redefine`), and a detached export (`--detached`, or any export on [`ADHOC`]) is
//! recorded in the catalog but never becomes a channel's last export — so a one-off export
//! neither changes what the next scheduled delta selects nor what it is based on.
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{EncryptSettings, ExportError, ExportSettings};
use crate::bundle::format::DEFAULT_CHANNEL;
use crate::model::Tenant;
use crate::store::catalog::{ExportRecord, Selectors};
use crate::store::{Store, StoreError};

/// The channel of one-off exports: every export on it is detached.
pub const ADHOC: &str = "adhoc";

/// A validated channel name (the characters of a tenant name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(String);

impl Channel {
    pub fn new(name: &str) -> Result<Self, String> {
        Tenant::new(name).map(|_| Self(name.to_string())).map_err(|_| {
            format!("invalid channel name {name:?}: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with '.')")
        })
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_adhoc(&self) -> bool {
        self.0 == ADHOC
    }
}

impl Default for Channel {
    fn default() -> Self {
        Self(DEFAULT_CHANNEL.into())
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The channel an export was made on (exports recorded before channels: `default`).
pub fn channel_of(rec: &ExportRecord) -> &str {
    rec.options["channel"].as_str().unwrap_or(DEFAULT_CHANNEL)
}

/// Whether an export stays out of its channel's line.
pub fn is_detached(rec: &ExportRecord) -> bool {
    rec.options["detached"] == json!(true) || channel_of(rec) == ADHOC
}

/// The channel's last export that is part of its line (not detached, not pruned). On
/// [`ADHOC`], where every export is detached, the last export on it.
pub fn head(store: &Store, tenant: &Tenant, channel: &Channel) -> Result<Option<ExportRecord>, StoreError> {
    Ok(store
        .export_records(tenant)?
        .into_iter()
        .filter(|r| channel_of(r) == channel.as_str() && r.pruned.is_none())
        .rfind(|r| channel.is_adhoc() || !is_detached(r)))
}

/// The encryption recorded with an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionDef {
    /// `age` or `aes-gcm`.
    pub mode: String,
    pub recipients: Vec<String>,
    pub strict: bool,
}

/// What a channel's next export inherits from its last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub selectors: Selectors,
    /// Absent for exports recorded before channels.
    pub out_dir: Option<PathBuf>,
    pub encryption: Option<EncryptionDef>,
}

pub fn definition(rec: &ExportRecord) -> Definition {
    let o = &rec.options;
    let encryption = (o["encrypted"] == json!(true)).then(|| EncryptionDef {
        mode: o["encryptMode"].as_str().unwrap_or_default().to_string(),
        recipients: o["recipients"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        strict: o["strict"] == json!(true),
    });
    Definition {
        selectors: rec.selectors.clone(),
        out_dir: o["outDir"].as_str().map(PathBuf::from),
        encryption,
    }
}

/// The encryption of an export's settings, as recorded.
pub fn encryption_def(e: Option<&EncryptSettings>) -> Option<EncryptionDef> {
    e.map(|e| {
        let mut recipients = e.sealer.recipients();
        recipients.sort();
        EncryptionDef {
            mode: match e.sealer.mode() {
                crate::encryption::EncryptionMode::Age => "age".into(),
                crate::encryption::EncryptionMode::AesGcm => "aes-gcm".into(),
            },
            recipients,
            strict: e.strict,
        }
    })
}

/// `dir` as an absolute path (the folder need not exist), for recording and comparing.
pub fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// Refuse an export on an existing channel whose selectors, folder or encryption differ
/// from the channel's definition, unless the export is detached or redefines the channel.
pub fn check(s: &ExportSettings, head: Option<&ExportRecord>, selectors: &Selectors) -> Result<(), ExportError> {
    let Some(head) = head.filter(|_| !s.detached && !s.redefine) else {
        return Ok(());
    };
    let def = definition(head);
    let mismatch = |what: &str, given: String, defined: String| ExportError::ChannelMismatch {
        channel: s.channel.to_string(),
        what: what.into(),
        given,
        defined,
        last: head.run_id.clone(),
    };
    if *selectors != def.selectors {
        return Err(mismatch(
            "selectors",
            serde_json::to_string(selectors).unwrap_or_default(),
            serde_json::to_string(&def.selectors).unwrap_or_default(),
        ));
    }
    if let Some(defined) = &def.out_dir {
        let given = absolute(&s.out_dir);
        if given != *defined {
            return Err(mismatch(
                "output folder",
                given.display().to_string(),
                defined.display().to_string(),
            ));
        }
    }
    let given = encryption_def(s.encryption.as_ref());
    // Exports recorded before channels carry no encryption details: only on/off compares.
    let comparable = def.encryption.as_ref().is_none_or(|d| !d.mode.is_empty());
    if comparable && given != def.encryption || given.is_some() != def.encryption.is_some() {
        let show = |e: &Option<EncryptionDef>| match e {
            None => "none".to_string(),
            Some(e) => format!(
                "{} to {}{}",
                e.mode,
                e.recipients.join(", "),
                if e.strict { " (strict)" } else { "" }
            ),
        };
        return Err(mismatch("encryption", show(&given), show(&def.encryption)));
    }
    Ok(())
}

/// The catalog options that record the channel and its definition with an export.
pub fn record_options(s: &ExportSettings, options: &mut serde_json::Value) {
    options["channel"] = json!(s.channel.as_str());
    options["detached"] = json!(s.detached || s.channel.is_adhoc());
    options["outDir"] = json!(absolute(&s.out_dir).display().to_string());
    if let Some(e) = encryption_def(s.encryption.as_ref()) {
        options["encryptMode"] = json!(e.mode);
        options["recipients"] = json!(e.recipients);
        options["strict"] = json!(e.strict);
    }
}
