//! Bundle commands: keygen, export, verify, import, rebuild, log.
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use stellamirror_engine::audit::{AuditSink, Progress, StoreAuditLog};
use stellamirror_engine::bundle::archive::Limits;
use stellamirror_engine::bundle::error::BundleError;
use stellamirror_engine::bundle::signing::{self, SignKey, TrustedKey};
use stellamirror_engine::bundle::verify_archive::verify_archive;
use stellamirror_engine::encryption::{BundleSealer, EncryptionMode, Identities, Recipients};
use stellamirror_engine::export::channel::{self, Channel};
use stellamirror_engine::export::{self, BaseSpec, EncryptSettings, ExportSettings};
use stellamirror_engine::import::{self, rebuild, verify_store, ImportSettings};
use stellamirror_engine::store::catalog::Selectors;
use stellamirror_engine::store::Store;

use crate::failure::{Failure, EXIT_VERIFY_FAILED};
use crate::freshness::FreshnessArgs;
use crate::progress::Bar;
use crate::trust_args::TrustArgs;
use stellamirror_engine::trust::rotation::Gate;

pub fn bundle_failure(e: BundleError) -> Failure {
    let detail = json!({"path": e.subject()});
    Failure::new(e.code(), e.to_string(), e.hint()).with_detail(detail)
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Output name: writes NAME.pem (private key, PKCS#8, 0600) and NAME.pub.pem (public key,
    /// SPKI); with --age, NAME (identity, 0600, age-keygen format) and NAME.pub (recipient).
    #[arg(long, env = "STELLAMIRROR_OUT")]
    out: PathBuf,
    /// Generate an age X25519 identity instead of an Ed25519 signing key.
    #[arg(long, env = "STELLAMIRROR_AGE")]
    age: bool,
}

pub fn keygen(a: KeygenArgs, json: bool) -> Result<i32, Failure> {
    if a.age {
        let (identity, recipient) = crate::cmd_keys::age_keygen(&a.out)?;
        if json {
            out!("{}", json!({"identity": identity, "recipient": recipient}));
        } else {
            out!("identity  {}", identity.display());
            out!("recipient {recipient}");
        }
        return Ok(0);
    }
    let (private, public, key_id) =
        signing::keygen(&a.out).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
    if json {
        out!("{}", json!({"private": private, "public": public, "keyId": key_id}));
    } else {
        out!("private key {}", private.display());
        out!("public key  {}", public.display());
        out!("key id      {key_id}");
    }
    Ok(0)
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EncryptArg {
    Age,
    AesGcm,
}

#[derive(Args)]
pub struct CommonExport {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    pub(crate) store: PathBuf,
    /// The tenant: a namespace of records in the store.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    pub(crate) tenant: String,
    /// Folder the bundle is written to (default: the channel's folder, that of its last export).
    #[arg(long, env = "STELLAMIRROR_OUT")]
    pub(crate) out: Option<PathBuf>,
    /// The export line (channel) this export belongs to: its selectors, folder and
    /// encryption are inherited from the channel's last export, and `--base latest` is
    /// that export. `adhoc` is for one-off exports (never a channel's last export).
    #[arg(long, default_value = "default", value_name = "NAME", env = "STELLAMIRROR_CHANNEL")]
    pub(crate) channel: String,
    /// A one-off export: recorded, but the channel's next export neither inherits from it
    /// nor is based on it.
    #[arg(long, env = "STELLAMIRROR_DETACHED")]
    pub(crate) detached: bool,
    /// Make this export's selectors, folder and encryption the channel's new definition
    /// (otherwise an export that differs from its channel is refused: ERR_CHANNEL_MISMATCH).
    #[arg(long, env = "STELLAMIRROR_REDEFINE")]
    pub(crate) redefine: bool,
    /// Write the bundle even when it holds no record (a tenant with nothing in it, or
    /// selectors that match nothing, is otherwise refused: ERR_EXPORT_EMPTY).
    #[arg(long, env = "STELLAMIRROR_ALLOW_EMPTY")]
    pub(crate) allow_empty: bool,
    /// Run id of the export (default: TENANT-TIME-full or -delta).
    #[arg(long, env = "STELLAMIRROR_RUN_ID")]
    pub(crate) run_id: Option<String>,
    /// RFC 3339 creation time (fixes the bundle bytes; default now).
    #[arg(long, env = "STELLAMIRROR_CREATED_AT")]
    pub(crate) created_at: Option<String>,
    /// Subject glob selecting products/packages/artifacts (repeatable).
    #[arg(long = "product", env = "STELLAMIRROR_PRODUCT")]
    pub(crate) products: Vec<String>,
    /// Records modified at or after this RFC 3339 time.
    #[arg(long, env = "STELLAMIRROR_FROM")]
    pub(crate) from: Option<String>,
    /// Records modified before this RFC 3339 time.
    #[arg(long, env = "STELLAMIRROR_TO")]
    pub(crate) to: Option<String>,
    /// Cron expression recorded in the manifest (schedule.cron).
    #[arg(long, env = "STELLAMIRROR_SCHEDULE")]
    pub(crate) schedule: Option<String>,
    /// Ed25519 PKCS#8 PEM key (default: the store's own key, created on first use).
    #[arg(long, env = "STELLAMIRROR_SIGN_KEY")]
    pub(crate) sign_key: Option<PathBuf>,
    /// zstd compression level of the bundle files (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19), env = "STELLAMIRROR_ZSTD_LEVEL")]
    pub(crate) zstd_level: i32,
    /// Encrypt the bundle.
    #[arg(long, value_enum, env = "STELLAMIRROR_ENCRYPT")]
    pub(crate) encrypt: Option<EncryptArg>,
    /// age recipient (age1…), repeatable.
    #[arg(long = "recipient", env = "STELLAMIRROR_RECIPIENT")]
    pub(crate) recipients: Vec<String>,
    /// File of age recipients, one per line.
    #[arg(long, env = "STELLAMIRROR_RECIPIENTS_FILE")]
    pub(crate) recipients_file: Option<PathBuf>,
    /// Encrypt everything except manifest.yaml, export.json and signatures/.
    #[arg(long, requires = "encrypt", env = "STELLAMIRROR_STRICT")]
    pub(crate) strict: bool,
    /// Rotate keys: ship a statement, signed by --sign-key (the old key), that names
    /// this new public key; importers then trust it and refuse the old key for bundles
    /// created later. Export the next bundles with the new key.
    #[arg(long, value_name = "NEW.pub.pem", env = "STELLAMIRROR_ROTATE_TO")]
    pub(crate) rotate_to: Option<PathBuf>,
    /// Lifetime after --created-at, signed as expiresAt: importers refuse the bundle
    /// afterwards (default 30d for full bundles, 7d for deltas). Units w, d, h, m, s.
    #[arg(long, value_name = "DURATION", value_parser = crate::freshness::duration_arg, env = "STELLAMIRROR_EXPIRES_IN")]
    pub(crate) expires_in: Option<u64>,
    /// Sequence number of at least N (signed in the manifest). For a producer store
    /// rebuilt from scratch: continue above the last sequence its mirrors applied, or
    /// they refuse its bundles as rollbacks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), env = "STELLAMIRROR_MIN_SEQUENCE")]
    pub(crate) min_sequence: Option<u64>,
}

#[derive(Subcommand)]
pub enum ExportCmd {
    /// A complete snapshot (mirror:full).
    #[command(
        after_help = "Example:\n  stellamirror export full --store S --tenant acme --out OUT --sign-key producer.pem"
    )]
    Full {
        #[command(flatten)]
        common: CommonExport,
        /// Regenerate a past export from its retained snapshot.
        #[arg(long, env = "STELLAMIRROR_RERUN")]
        rerun: Option<String>,
    },
    /// Only what changed since a base export (mirror:delta).
    #[command(
        after_help = "Example:\n  stellamirror export delta --store S --tenant acme --out OUT --base latest --sign-key producer.pem\n  \
stellamirror export delta --store S --tenant acme --out OUT --base latest --expires-in 2d   # importers refuse it after two days"
    )]
    Delta {
        #[command(flatten)]
        common: CommonExport,
        /// Base export run id, or `latest`.
        #[arg(long, env = "STELLAMIRROR_BASE")]
        base: String,
        /// Carry the complete state and tell importers to drop theirs first.
        #[arg(long, env = "STELLAMIRROR_RESET_BASELINE")]
        reset_baseline: bool,
    },
}

pub(crate) fn store_key(store: &Path) -> Result<PathBuf, Failure> {
    let dir = store.join("keys");
    let base = dir.join("export-signing");
    let private = PathBuf::from(format!("{}.pem", base.display()));
    if !private.exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::new("ERR_IO", format!("{}: {e}", dir.display()), "check permissions"))?;
        signing::keygen(&base).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
        eprintln!(
            "note: created the store's signing key {} (public key {}.pub.pem)",
            private.display(),
            base.display()
        );
    }
    Ok(private)
}

pub(crate) fn settings(mut c: CommonExport) -> Result<(Store, ExportSettings), Failure> {
    let store = Store::open_existing(&c.store)?;
    let tenant = crate::known_tenant(&store, &c.tenant)?;
    let channel =
        Channel::new(&c.channel).map_err(|m| Failure::new("ERR_USAGE", m, "see `stellamirror export --help`"))?;
    let detached = c.detached || channel.is_adhoc();
    let def = match channel.is_adhoc() {
        true => None,
        false => channel::head(&store, &tenant, &channel)?.map(|h| channel::definition(&h)),
    };
    let out_dir = match (c.out.take(), def.as_ref().and_then(|d| d.out_dir.clone())) {
        (Some(o), _) => o,
        (None, Some(o)) => o,
        (None, None) => {
            return Err(Failure::new(
                "ERR_USAGE",
                format!("channel {channel} of tenant {tenant} has no output folder yet"),
                "give --out DIR (the channel's next exports then default to it)",
            ))
        }
    };
    let redefine = c.redefine;
    inherit_encryption(&mut c, def.as_ref().and_then(|d| d.encryption.as_ref()), redefine);
    let encryption = encryption(&c)?;
    let key_path = match c.sign_key {
        Some(k) => k,
        None => store_key(&c.store)?,
    };
    let sign_key = SignKey::load(&key_path).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
    let selectors_given = !c.products.is_empty() || c.from.is_some() || c.to.is_some();
    Ok((
        store,
        ExportSettings {
            tenant,
            out_dir,
            run_id: c.run_id,
            created_at: c.created_at,
            selectors: Selectors {
                products: c.products,
                from: c.from,
                to: c.to,
            },
            selectors_given,
            schedule: c.schedule,
            zstd_level: c.zstd_level,
            sign_key,
            encryption,
            expires_in: c.expires_in,
            min_sequence: c.min_sequence,
            rotate_to: c
                .rotate_to
                .as_deref()
                .map(TrustedKey::load)
                .transpose()
                .map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?,
            channel,
            detached,
            redefine: c.redefine,
            allow_empty: c.allow_empty,
        },
    ))
}

/// Without --encrypt, an export on a channel encrypts as the channel's last export did
/// (unless this export redefines the channel).
fn inherit_encryption(c: &mut CommonExport, def: Option<&channel::EncryptionDef>, own: bool) {
    let Some(d) = def.filter(|_| c.encrypt.is_none() && !own) else {
        return;
    };
    c.encrypt = Some(if d.mode == "aes-gcm" {
        EncryptArg::AesGcm
    } else {
        EncryptArg::Age
    });
    if c.recipients.is_empty() && c.recipients_file.is_none() {
        c.recipients = d.recipients.clone();
    }
    c.strict = c.strict || d.strict;
}

fn encryption(c: &CommonExport) -> Result<Option<EncryptSettings>, Failure> {
    Ok(match c.encrypt {
        None => {
            if !c.recipients.is_empty() || c.recipients_file.is_some() {
                return Err(Failure::new(
                    "ERR_USAGE",
                    "--recipient needs --encrypt age|aes-gcm",
                    "add --encrypt",
                ));
            }
            None
        }
        Some(mode) => {
            let mut r =
                Recipients::parse(&c.recipients).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
            if let Some(f) = &c.recipients_file {
                r.merge(&Recipients::from_file(f).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?);
            }
            let mode = if mode == EncryptArg::Age {
                EncryptionMode::Age
            } else {
                EncryptionMode::AesGcm
            };
            let sealer = BundleSealer::new(mode, r).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
            Some(EncryptSettings {
                sealer,
                strict: c.strict,
            })
        }
    })
}

pub fn export(cmd: ExportCmd, json: bool) -> Result<i32, Failure> {
    let c = match &cmd {
        ExportCmd::Full { common, .. } | ExportCmd::Delta { common, .. } => common,
    };
    // A failed export leaves no output folder and no store key it created.
    let keys = c.store.join("keys");
    let mut created = vec![
        keys.join("export-signing.pem"),
        keys.join("export-signing.pub.pem"),
        keys,
    ];
    created.extend(c.out.clone());
    crate::fresh::FreshStore::before_all(&created).after(export_run(cmd, json))
}

fn export_run(cmd: ExportCmd, json: bool) -> Result<i32, Failure> {
    let ex = |e: export::ExportError| Failure::new(e.code(), e.to_string(), e.hint());
    let report = match cmd {
        ExportCmd::Full { common, rerun } => {
            let (store, s) = settings(common)?;
            let audit = StoreAuditLog::new(store.path());
            match rerun {
                Some(id) => export::rerun(&store, &s, &id).map_err(ex)?,
                None => export::export_full(&store, &s, &audit).map_err(ex)?,
            }
        }
        ExportCmd::Delta {
            common,
            base,
            reset_baseline,
        } => {
            let (store, s) = settings(common)?;
            let audit = StoreAuditLog::new(store.path());
            let base = if base == "latest" {
                BaseSpec::Latest
            } else {
                BaseSpec::RunId(base)
            };
            export::export_delta(&store, &s, &base, reset_baseline, &audit).map_err(ex)?
        }
    };
    print_export(&report, json);
    Ok(match report.identical_to_original {
        Some(false) => EXIT_VERIFY_FAILED,
        _ => 0,
    })
}

/// The report of one export, as `export` prints it.
pub(crate) fn print_export(report: &export::ExportReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        out!("{} {} → {}", report.profile, report.run_id, report.bundle.display());
        out!("  {} bytes, manifest {}", report.bytes, report.manifest_digest);
        out!("  state root {}", report.state_root);
        if let Some(d) = &report.diff {
            out!(
                "  base {}: added {:?} changed {:?} removed {:?}",
                d.base_export_id,
                d.added,
                d.changed,
                d.removed
            );
        }
        if let Some(same) = report.identical_to_original {
            out!("  identical to the original: {same}");
        }
    }
}

fn load_identities(paths: &[PathBuf]) -> Result<Identities, Failure> {
    Identities::from_files(paths).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Bundle archives (or extracted folders); several are checked as a chain.
    bundles: Vec<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// age identity to check the data of encrypted bundles.
    #[arg(long, env = "STELLAMIRROR_IDENTITY")]
    identity: Vec<PathBuf>,
    /// Verify a store instead of bundles.
    #[arg(long, conflicts_with = "bundles", env = "STELLAMIRROR_STORE")]
    store: Option<PathBuf>,
}

pub fn verify(a: VerifyArgs, json: bool) -> Result<i32, Failure> {
    if let Some(dir) = &a.store {
        let store = Store::open_existing(dir)?;
        let r = verify_store::verify_store(&store)
            .map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()).with_exit(EXIT_VERIFY_FAILED))?;
        StoreAuditLog::new(dir).record(&stellamirror_engine::audit::AuditEvent::new(
            "mirror.store.verified",
            serde_json::to_value(&r).unwrap_or_default(),
        ));
        if json {
            out!("{}", serde_json::to_string(&r).unwrap_or_default());
        } else {
            out!("store OK: {} objects", r.objects);
            for (t, c) in &r.tenants {
                out!("  tenant {t}: {} records, state root {}", c.records, c.state_root);
            }
        }
        return Ok(0);
    }
    if a.bundles.is_empty() {
        return Err(Failure::new(
            "ERR_USAGE",
            "name a bundle or --store DIR",
            "stellamirror verify BUNDLE --trust KEY.pub.pem",
        ));
    }
    let (trust, rules) = a.trust.load()?;
    let mut gate = Gate::new(&trust, &rules);
    let identities = load_identities(&a.identity)?;
    let tmp = tempfile::tempdir().map_err(|e| Failure::new("ERR_IO", e.to_string(), "check TMPDIR"))?;
    let mut results = Vec::new();
    let mut prev: Option<(String, String)> = None;
    for (i, b) in a.bundles.iter().enumerate() {
        let staging = tmp.path().join(i.to_string());
        std::fs::create_dir_all(&staging).ok();
        let vf = |e: BundleError| {
            let mut f = bundle_failure(e).with_exit(EXIT_VERIFY_FAILED);
            f.message = format!("{}: {}", b.display(), f.message);
            f
        };
        // A plaintext archive is checked in one pass without staging its data; any other
        // bundle (or folder) is staged first.
        let streamed = match b.is_file() {
            true => verify_archive(b, &staging, &gate.keys, &Limits::default()).map_err(vf)?,
            false => None,
        };
        let (staged, v) = match streamed {
            Some(done) => done,
            None => {
                let (staged, v, _) =
                    import::stage_and_verify(b, &staging, &gate.keys, &identities, &Limits::default(), true)
                        .map_err(vf)?;
                (staged, v)
            }
        };
        // Revoked keys, validity windows and rotation statements (without a store:
        // rotations this mirror applied are not known here).
        let rotation = gate.check(&staged, &v.manifest).map_err(|e| {
            Failure::new(e.code(), format!("{}: {e}", b.display()), e.hint()).with_exit(EXIT_VERIFY_FAILED)
        })?;
        if let Some(r) = &rotation {
            gate.accept(r);
        }
        if let (Some((pid, proot)), Some(d)) = (&prev, &v.diff) {
            if !d.reset_baseline && (&d.base_export_id != pid || &d.base_state_root != proot) {
                return Err(Failure::new(
                    "ERR_DELTA_OUT_OF_ORDER",
                    format!("{}: base {} does not follow {pid}", b.display(), d.base_export_id),
                    "give the bundles in chain order: full, delta1, delta2, …",
                )
                .with_exit(EXIT_VERIFY_FAILED));
            }
        }
        let target = v
            .diff
            .as_ref()
            .map_or(v.manifest.state_root.clone(), |d| d.target_state_root.clone());
        prev = Some((v.manifest.run_id.clone(), target));
        results.push(json!({"bundle": b, "runId": v.manifest.run_id, "profile": v.manifest.profile, "manifestDigest": v.manifest_digest, "stateRoot": v.manifest.state_root, "dataChecked": v.data_checked, "recordsChecked": v.records_checked, "channel": v.manifest.channel, "sequence": v.manifest.sequence, "createdAt": v.manifest.created_at, "expiresAt": v.manifest.expires_at, "ok": true}));
    }
    if json {
        out!("{}", json!({"ok": true, "bundles": results}));
    } else {
        for r in &results {
            out!(
                "OK {} ({} {}, sequence {}, expires {}): signatures, digests{}",
                r["bundle"].as_str().unwrap_or_default(),
                r["profile"].as_str().unwrap_or_default(),
                r["runId"].as_str().unwrap_or_default(),
                r["sequence"].as_u64().map_or_else(|| "none".into(), |s| s.to_string()),
                r["expiresAt"].as_str().unwrap_or("never"),
                if r["dataChecked"] == json!(true) {
                    format!(", {} records and Merkle roots", r["recordsChecked"])
                } else {
                    " (data encrypted: pass --identity to check records)".into()
                }
            );
        }
    }
    Ok(0)
}

#[derive(Args)]
pub struct ImportArgs {
    /// The bundle archive (.tar.zst) or an extracted bundle folder.
    bundle: PathBuf,
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    pub store: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// age identity file(s) for encrypted bundles.
    #[arg(long, env = "STELLAMIRROR_IDENTITY")]
    identity: Vec<PathBuf>,
    /// Refuse bundles of any other tenant.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: Option<String>,
    /// Refuse bundles of any other channel (repeatable; default: every channel).
    #[arg(long = "channel", value_name = "NAME", env = "STELLAMIRROR_CHANNEL")]
    channels: Vec<String>,
    /// Rewrite the tenant's published mirror tree here after applying.
    #[arg(long, env = "STELLAMIRROR_PUBLISH")]
    publish: Option<PathBuf>,
    #[command(flatten)]
    freshness: FreshnessArgs,
}

fn import_settings(
    trust: &TrustArgs,
    identity: &[PathBuf],
    tenant: Option<&str>,
    freshness: &FreshnessArgs,
) -> Result<ImportSettings, Failure> {
    let (keys, key_rules) = trust.load()?;
    Ok(ImportSettings {
        trust: keys,
        key_rules,
        identities: load_identities(identity)?,
        limits: Limits::default(),
        expect_tenant: tenant.map(crate::tenant).transpose()?,
        expect_channels: Vec::new(),
        freshness: freshness.policy()?,
    })
}

pub fn import_cmd(a: ImportArgs, json: bool, quiet: bool) -> Result<i32, Failure> {
    let mut s = import_settings(&a.trust, &a.identity, a.tenant.as_deref(), &a.freshness)?;
    for c in &a.channels {
        s.expect_channels.push(
            Channel::new(c)
                .map_err(|m| Failure::new("ERR_USAGE", m, "see `stellamirror import --help`"))?
                .as_str()
                .to_string(),
        );
    }
    let store = Store::open(&a.store)?;
    let audit = StoreAuditLog::new(&a.store);
    let bar = Bar::new(quiet || json);
    let r = import::import(&store, &a.bundle, &s, &audit, &bar);
    bar.finish();
    let r = r.map_err(|e| {
        let f = Failure::new(e.code(), format!("{}: {e}", a.bundle.display()), e.hint());
        match e {
            import::ImportError::Bundle(b) => f.with_detail(json!({"path": b.subject()})),
            _ => f,
        }
    })?;
    if let Some(dir) = &a.publish {
        let t = crate::tenant(&r.tenant)?;
        crate::cmd_keys::publish(&store, &t, dir)?;
    }
    if json {
        out!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else if r.outcome == "already-applied" {
        out!("{} {} was already applied; nothing to do", r.profile, r.run_id);
    } else {
        out!("applied {} {} to tenant {}", r.profile, r.run_id, r.tenant);
        for (c, n) in &r.counts {
            out!("  {:<22} +{} ~{} -{}", c.name(), n.added, n.changed, n.removed);
        }
        out!("state root {}", r.state_root);
    }
    Ok(0)
}

#[derive(Args)]
pub struct RebuildArgs {
    /// Folder of bundles to rebuild from.
    #[arg(long, env = "STELLAMIRROR_BUNDLES")]
    bundles: PathBuf,
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    pub store: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// age identity file(s) for encrypted bundles.
    #[arg(long, env = "STELLAMIRROR_IDENTITY")]
    identity: Vec<PathBuf>,
    /// Publish the rebuilt tenants' mirror trees here afterwards (as `publish --out`).
    #[arg(long, env = "STELLAMIRROR_PUBLISH")]
    publish: Option<PathBuf>,
    #[command(flatten)]
    freshness: FreshnessArgs,
}

pub fn rebuild_cmd(a: RebuildArgs, json: bool, quiet: bool) -> Result<i32, Failure> {
    let s = import_settings(&a.trust, &a.identity, None, &a.freshness)?;
    let store = Store::open(&a.store)?;
    let audit = StoreAuditLog::new(&a.store);
    let bar = Bar::new(quiet || json);
    let r = rebuild::rebuild(&store, &a.bundles, &s, &audit, &bar);
    bar.finish();
    let r = r.map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
    if let Some(dir) = &a.publish {
        for t in store.tenants()? {
            crate::cmd_keys::publish(&store, &t, dir)?;
        }
    }
    if json {
        out!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        out!("rebuilt from {}", r.chain.join(" → "));
        for i in &r.ignored {
            out!("  ignored {i} (not part of the chain from the newest full bundle)");
        }
        out!("state root {}; store verified", r.state_root);
    }
    Ok(0)
}

#[derive(Args)]
pub struct LogArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
}

pub fn log(a: LogArgs, json: bool) -> Result<i32, Failure> {
    let store = Store::open_existing(&a.store)?;
    let exports = store.all_export_records()?;
    let mut imports = Vec::new();
    for t in store.tenants()? {
        let h = store.import_history(&t)?;
        for a in h.applied {
            imports.push(json!({"tenant": t.as_str(), "runId": a.run_id, "profile": a.profile, "createdAt": a.created_at, "stateRoot": a.state_root.to_prefixed(), "base": a.base_export_id, "freshness": a.freshness}));
        }
    }
    if json {
        out!("{}", json!({"exports": exports, "imports": imports}));
    } else {
        for e in &exports {
            out!(
                "export {} {} {} {} {} ({} bytes){}",
                e.tenant,
                e.seq,
                e.run_id,
                e.profile,
                e.created_at,
                e.bytes,
                e.pruned.as_ref().map_or(String::new(), |at| format!(", pruned {at}"))
            );
        }
        for i in &imports {
            out!(
                "import {} {} {} {}",
                i["tenant"].as_str().unwrap_or_default(),
                i["runId"].as_str().unwrap_or_default(),
                i["profile"].as_str().unwrap_or_default(),
                i["createdAt"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(0)
}
