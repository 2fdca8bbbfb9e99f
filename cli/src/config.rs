//! `stellamirror.toml` (issue 20): the store, tenants and channels of an installation.
//!
//! Read before the command line is parsed (path from `--config` or `STELLAMIRROR_CONFIG`).
//! Its `store`, `sign_key`, `trust` and (when it declares exactly one) tenant become the
//! defaults of the matching flags by way of their `STELLAMIRROR_*` variables, so the order
//! of precedence is: flag, environment, config file. `run CHANNEL` reads the channel's
//! selectors, folder, encryption, cadence and retention from it. Relative paths are taken
//! from the config file's folder.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::failure::Failure;

pub const CONFIG_ENV: &str = "STELLAMIRROR_CONFIG";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: Option<PathBuf>,
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Ed25519 key exports are signed with (default: the store's own key).
    pub sign_key: Option<PathBuf>,
    /// Trusted producer key (import, rebuild, verify).
    pub trust: Option<PathBuf>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub tenant: String,
    /// The channel's name in the store's catalog and the bundles (default: the table's key).
    pub channel: Option<String>,
    pub out: PathBuf,
    #[serde(default)]
    pub products: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// A full export when none was made in the current slot of this length (e.g. `1d`).
    pub full_every: String,
    /// A delta when none was made in the current slot of this length (e.g. `1h`).
    pub delta_every: String,
    pub expires_in: Option<String>,
    /// `age` or `aes-gcm`.
    pub encrypt: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    pub recipients_file: Option<PathBuf>,
    #[serde(default)]
    pub strict: bool,
    pub zstd_level: Option<i32>,
    pub schedule: Option<String>,
    pub retention: Option<RetentionConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default = "one")]
    pub keep_full: usize,
    pub keep_within: Option<String>,
}

fn one() -> usize {
    1
}

static LOADED: OnceLock<(PathBuf, Config)> = OnceLock::new();

fn config_error(path: &Path, m: impl std::fmt::Display) -> Failure {
    Failure::new(
        "ERR_CONFIG",
        format!("{}: {m}", path.display()),
        "fix the config file (docs/operations.md, \"Config file\"), or point --config / STELLAMIRROR_CONFIG elsewhere",
    )
}

/// The `--config` value on the command line, else `STELLAMIRROR_CONFIG`.
fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().to_string();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

fn parse(path: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| config_error(path, e))?;
    let mut c: Config = toml::from_str(&text).map_err(|e| config_error(path, e))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for p in [&mut c.store, &mut c.sign_key, &mut c.trust].into_iter().flatten() {
        resolve(&base, p);
    }
    for (name, ch) in c.channels.iter_mut() {
        resolve(&base, &mut ch.out);
        if let Some(f) = ch.recipients_file.as_mut() {
            resolve(&base, f);
        }
        if !c.tenants.is_empty() && !c.tenants.contains(&ch.tenant) {
            return Err(config_error(
                path,
                format!("channel {name}: tenant {} is not in `tenants`", ch.tenant),
            ));
        }
    }
    Ok(c)
}

/// Load the config file, if one is named, and make its values the flags' defaults.
pub fn preload() -> Result<(), Failure> {
    let Some(path) = config_path() else {
        return Ok(());
    };
    let c = parse(&path)?;
    let mut defaults: Vec<(&str, PathBuf)> = Vec::new();
    defaults.extend(c.store.clone().map(|p| ("STELLAMIRROR_STORE", p)));
    defaults.extend(c.sign_key.clone().map(|p| ("STELLAMIRROR_SIGN_KEY", p)));
    defaults.extend(c.trust.clone().map(|p| ("STELLAMIRROR_TRUST", p)));
    if let [t] = c.tenants.as_slice() {
        defaults.push(("STELLAMIRROR_TENANT", PathBuf::from(t)));
    }
    for (var, value) in defaults {
        if std::env::var_os(var).is_none() {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::set_var(var, value);
        }
    }
    let _ = LOADED.set((path, c));
    Ok(())
}

/// The loaded config file (for `run`).
pub fn loaded() -> Result<&'static (PathBuf, Config), Failure> {
    LOADED.get().ok_or_else(|| {
        Failure::new(
            "ERR_CONFIG",
            "no config file: `run` reads its channels from one",
            "pass --config stellamirror.toml or set STELLAMIRROR_CONFIG",
        )
    })
}
