//! `import`: the far side of the air gap.
//!
//! Order of checks (nothing becomes visible before all of them pass): the archive is read
//! with unsafe entries refused → the manifest signature is verified before any other
//! entry is accepted → tenant → freshness (no rollback, not expired: `freshness`) →
//! already applied? → for a delta, base = last applied export and store root =
//! `baseStateRoot` (all from the signed manifest, `load::precheck`; the signer's key
//! rules before it, `trust::rotation::Gate`) → each file's size and sha256 against the
//! listing, each record against its hash, as the files are read (once: `stream`) →
//! `export.json`'s signature, the complete listing, the DSSE attestation and a key
//! rotation statement. The new state is committed in one batch only if its root equals
//! the bundle's target root (`load::Loader::finish`).
pub mod bulk;
pub mod freshness;
pub mod load;
pub mod rebuild;
pub mod stream;
pub mod verify_store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::apply::ChangeCounts;
use crate::audit::{AuditSink, Progress};
use crate::bundle::archive::{scan_folder, stage_archive, Limits, Staged};
use crate::bundle::error::BundleError;
use crate::bundle::format::EncryptionModeName;
use crate::bundle::signing::TrustedKey;
use crate::bundle::verify::{gate, verify_records, verify_staged, Verified};
use crate::encryption::{BundleOpener, EncryptionMode, Identities, WrappedKey};
use crate::model::{Collection, Tenant};
use crate::store::{Store, StoreError};
use stream::Streamed;

pub struct ImportSettings {
    pub trust: Vec<TrustedKey>,
    pub identities: Identities,
    pub limits: Limits,
    /// Refuse bundles of any other tenant.
    pub expect_tenant: Option<Tenant>,
    /// Refuse bundles of any channel not listed (empty: every channel is accepted).
    pub expect_channels: Vec<String>,
    /// Rollback and expiry checks (`freshness`).
    pub freshness: freshness::Policy,
    /// Validity windows and revocations of keys (`--trust-file`, `trust::keys`).
    pub key_rules: Vec<crate::trust::keys::KeyRule>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub run_id: String,
    pub profile: String,
    pub tenant: String,
    /// `applied` or `already-applied`.
    pub outcome: String,
    pub previous_root: String,
    pub state_root: String,
    pub counts: BTreeMap<Collection, ChangeCounts>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The delta's base is not the last export applied for the tenant.
    #[error("delta {run_id} needs base {base}, but the last applied export of tenant {tenant} is {last}")]
    OutOfOrder {
        run_id: String,
        base: String,
        last: String,
        tenant: String,
    },
    /// The store's state root differs from the delta's base (or the result from the target).
    #[error("{what}: store state root {actual} differs from the bundle's {expected}")]
    StateRootMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The bundle's channel is not one `--channel` named.
    #[error("bundle {run_id} is on channel {channel}, not {expected}")]
    ChannelUnknown {
        run_id: String,
        channel: String,
        expected: String,
    },
    /// The bundle belongs to another tenant than `--tenant`.
    #[error("bundle is for tenant {bundle}, not {expected}")]
    TenantMismatch { bundle: String, expected: String },
    /// Same run id as an applied export, different content.
    #[error("run {run_id} was already applied with manifest {applied}, this bundle's is {bundle}")]
    Conflict {
        run_id: String,
        applied: String,
        bundle: String,
    },
    #[error(transparent)]
    Freshness(#[from] freshness::FreshnessError),
    #[error(transparent)]
    Key(#[from] crate::trust::keys::KeyTrustError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::OutOfOrder { .. } => "ERR_DELTA_OUT_OF_ORDER",
            ImportError::StateRootMismatch { .. } => "ERR_STATE_ROOT_MISMATCH",
            ImportError::TenantMismatch { .. } => "ERR_TENANT_MISMATCH",
            ImportError::ChannelUnknown { .. } => "ERR_CHANNEL_UNKNOWN",
            ImportError::Conflict { .. } => "ERR_BUNDLE_CONFLICT",
            ImportError::Freshness(e) => e.code(),
            ImportError::Key(e) => e.code(),
            ImportError::Bundle(e) => e.code(),
            ImportError::Store(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            ImportError::OutOfOrder { base, .. } => format!("import {base} first (or a newer full bundle); `stellamirror rebuild` orders a folder of bundles for you; nothing was applied"),
            ImportError::StateRootMismatch { .. } => "this mirror diverged from the producer (local changes or a different chain); import a full bundle or a --reset-baseline delta; nothing was applied".into(),
            ImportError::ChannelUnknown { .. } => "import only the channels this mirror follows, or add the bundle's channel with another --channel; nothing was applied".into(),
            ImportError::TenantMismatch { .. } => "import into the bundle's tenant, or obtain the bundle for this tenant; nothing was applied".into(),
            ImportError::Conflict { .. } => "two different bundles share a run id; check which producer made this one; nothing was applied".into(),
            ImportError::Freshness(e) => e.hint(),
            ImportError::Key(e) => e.hint(),
            ImportError::Bundle(e) => e.hint(),
            ImportError::Store(e) => e.hint(),
        }
    }
}

/// A staging directory inside the store folder, removed however the import ends.
pub struct StagingArea(pub PathBuf);

impl StagingArea {
    pub fn new(store: &Store) -> Result<Self, BundleError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = store
            .path()
            .join("staging")
            .join(format!("{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| crate::bundle::error::io_err(&dir, e))?;
        Ok(Self(dir))
    }
}

impl StagingArea {
    /// Remove what a killed import left in the staging folder. Only the process holding
    /// the store open (RocksDB's lock) uses it, so whatever is there now is a leftover;
    /// call it before this process creates its own staging areas.
    pub fn clear_leftovers(store: &Store) {
        if let Ok(rd) = std::fs::read_dir(store.path().join("staging")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

impl Drop for StagingArea {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stage an archive (or take an extracted folder) and check signatures and digests.
pub fn stage_and_verify(
    path: &Path,
    staging: &Path,
    trust: &[TrustedKey],
    identities: &Identities,
    limits: &Limits,
    check_records: bool,
) -> Result<(Staged, Verified, Option<BundleOpener>), BundleError> {
    let staged = if path.is_dir() {
        scan_folder(path)?
    } else {
        stage_archive(path, staging, limits, &mut |g| gate(trust, g))?
    };
    // Signatures and digests first, without reading any content.
    let mut verified = verify_staged(&staged, trust)?;
    if check_records && verified.manifest.encryption.mode != EncryptionModeName::None && identities.is_empty() {
        // Without an identity only signatures and digests can be checked.
        return Ok((staged, verified, None));
    }
    let opener = opener_for(&staged, &verified, identities)?;
    if check_records {
        let encrypted = verified.manifest.encryption.encrypted_paths.clone();
        let f = |p: &str, b: Vec<u8>| open_with(&opener, &encrypted, p, b);
        verify_records(&staged, &mut verified, &f)?;
    }
    Ok((staged, verified, opener))
}

/// Build the decryptor from the wrapped keys (provenance.json, or export.json in strict
/// mode) and the operator's identities.
fn opener_for(staged: &Staged, v: &Verified, identities: &Identities) -> Result<Option<BundleOpener>, BundleError> {
    let Some(mode) = v.manifest.encryption.mode.sealed() else {
        return Ok(None);
    };
    if identities.is_empty() {
        return Err(BundleError::Decrypt {
            path: v
                .manifest
                .encryption
                .encrypted_paths
                .first()
                .cloned()
                .unwrap_or_default(),
            source: crate::encryption::DecryptError::NoIdentities,
        });
    }
    let wrapped: Vec<WrappedKey> = if mode == EncryptionMode::AesGcm {
        if v.manifest.encryption.strict {
            v.export.wrapped_keys.clone()
        } else {
            let p = crate::bundle::provenance::Statement::parse(&staged.read(crate::bundle::provenance::PATH)?)?;
            p.encryption().recipients.wrapped_keys().to_vec()
        }
    } else {
        Vec::new()
    };
    BundleOpener::new(mode, &wrapped, identities)
        .map(Some)
        .map_err(|source| BundleError::Decrypt {
            path: "data key".into(),
            source,
        })
}

fn open_with(
    opener: &Option<BundleOpener>,
    encrypted_paths: &[String],
    path: &str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, BundleError> {
    match opener {
        Some(o) if encrypted_paths.iter().any(|p| p == path) => {
            o.open(path, &bytes).map_err(|source| BundleError::Decrypt {
                path: path.into(),
                source,
            })
        }
        _ => Ok(bytes),
    }
}

/// Import one bundle: an archive in one pass when it allows (`stream`), else staged.
pub fn import(
    store: &Store,
    bundle: &Path,
    s: &ImportSettings,
    audit: &dyn AuditSink,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    import_with(store, bundle, s, &s.freshness, audit, progress)
}

/// `import` with another freshness policy than the settings' (`rebuild`'s chain links).
pub fn import_with(
    store: &Store,
    bundle: &Path,
    s: &ImportSettings,
    freshness: &freshness::Policy,
    audit: &dyn AuditSink,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    StagingArea::clear_leftovers(store);
    let staging = StagingArea::new(store)?;
    // Issue 16: keys rotated in by applied bundles, revoked keys, validity windows.
    let gate = crate::trust::rotation::gate(Some(store), &s.trust, &s.key_rules)?;
    if !bundle.is_dir() {
        let work = staging.0.join("stream");
        let checks = stream::Checks { gate: &gate, freshness };
        if let Streamed::Applied(r) = stream::import_stream(store, bundle, s, &checks, audit, progress, &work)? {
            return Ok(r);
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    let (staged, v, opener) = stage_and_verify(bundle, &staging.0, &gate.keys, &s.identities, &s.limits, false)?;
    let rotation = gate.check(&staged, &v.manifest)?;
    let r = apply_verified(store, &staged, &v, &opener, s, freshness, audit, progress)?;
    if let Some(rot) = rotation {
        crate::trust::rotation::record(store, &rot, audit)?;
    }
    Ok(r)
}

/// Apply a staged bundle whose signatures and digests were verified, reading its files
/// in path order (the order of the archive) through the same loader as a stream.
#[allow(clippy::too_many_arguments)]
pub fn apply_verified(
    store: &Store,
    staged: &Staged,
    v: &Verified,
    opener: &Option<BundleOpener>,
    s: &ImportSettings,
    policy: &freshness::Policy,
    audit: &dyn AuditSink,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    let ctx = load::precheck(store, v.manifest.clone(), v.manifest_digest, s, policy)?;
    let work = StagingArea::new(store)?;
    let opts = bulk::BulkOptions::default();
    let mut loader = load::Loader::new(store, ctx, &opts, &work.0, progress)?;
    let interest = loader.interest();
    let encrypted = &v.manifest.encryption.encrypted_paths;
    progress.phase("import", staged.files.values().map(|f| f.bytes).sum());
    for (rel, f) in &staged.files {
        if interest.wants(rel) {
            loader.entry(rel, open_with(opener, encrypted, rel, staged.read(rel)?)?)?;
        }
        progress.advance(f.bytes);
    }
    loader.finish(v, audit)
}
