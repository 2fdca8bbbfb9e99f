//! `import`: the far side of the air gap.
//!
//! Order of checks (nothing is written before all of them pass): the archive is staged
//! with unsafe entries refused → the manifest signature is verified before any other
//! entry is accepted → digests and the listing → tenant → already applied? → for a
//! delta, base = last applied export and store root = `baseStateRoot`. Then records are
//! read (objects written ahead, unreferenced), the new state is planned, and it is
//! committed in one batch only if its root equals the bundle's target root.
pub mod freshness;
pub mod publish;
pub mod rebuild;
pub mod reset;
pub mod verify_store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;
use serde_json::json;

use crate::apply::{self, ChangeCounts, Mutation};
use crate::audit::{AuditEvent, AuditSink};
use crate::bundle::archive::{scan_folder, stage_archive, Limits, Staged};
use crate::bundle::error::BundleError;
use crate::bundle::format::{RemovedLine, PROFILE_DELTA};
use crate::bundle::records::{for_each_record, read_index, read_plain, Opener};
use crate::bundle::signing::TrustedKey;
use crate::bundle::verify::{gate, verify_records, verify_staged, Verified};
use crate::encryption::{BundleOpener, EncryptionMode, Identities, WrappedKey};
use crate::ids::NodeHash;
use crate::model::{Collection, Tenant};
use crate::store::catalog::{applied_key, AppliedExport};
use crate::store::{ObjectKey, RecordEntry, Store, StoreError};

pub struct ImportSettings {
    pub trust: Vec<TrustedKey>,
    pub identities: Identities,
    pub limits: Limits,
    /// Refuse bundles of any other tenant.
    pub expect_tenant: Option<Tenant>,
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
    if check_records && verified.manifest.encryption.mode != "none" && identities.is_empty() {
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
    let mode = match v.manifest.encryption.mode.as_str() {
        "none" => return Ok(None),
        "age" => EncryptionMode::Age,
        "aes-gcm" => EncryptionMode::AesGcm,
        other => {
            return Err(BundleError::Malformed {
                path: "manifest.yaml".into(),
                reason: format!("unknown encryption mode {other:?}"),
            })
        }
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
            reason: "the bundle is encrypted and no --identity was given".into(),
        });
    }
    let wrapped: Vec<WrappedKey> = if mode == EncryptionMode::AesGcm {
        let raw = if v.manifest.encryption.strict {
            v.export.wrapped_keys.clone()
        } else {
            let p: serde_json::Value =
                serde_json::from_slice(&staged.read("provenance.json")?).map_err(|e| BundleError::Malformed {
                    path: "provenance.json".into(),
                    reason: e.to_string(),
                })?;
            crate::bundle::provenance::wrapped_keys(&p)
        };
        raw.into_iter().filter_map(|w| serde_json::from_value(w).ok()).collect()
    } else {
        Vec::new()
    };
    BundleOpener::new(mode, &wrapped, identities)
        .map(Some)
        .map_err(|e| BundleError::Decrypt {
            path: "data key".into(),
            reason: e.to_string(),
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
            o.open(path, &bytes).map_err(|e| BundleError::Decrypt {
                path: path.into(),
                reason: e.to_string(),
            })
        }
        _ => Ok(bytes),
    }
}

pub fn import(
    store: &Store,
    bundle: &Path,
    s: &ImportSettings,
    audit: &dyn AuditSink,
) -> Result<ImportReport, ImportError> {
    let staging = StagingArea::new(store)?;
    // Issue 16: keys rotated in by applied bundles, revoked keys, validity windows.
    let gate = crate::trust::rotation::Gate::new(Some(store), &s.trust, &s.key_rules)?;
    let (staged, v, opener) = stage_and_verify(bundle, &staging.0, &gate.keys, &s.identities, &s.limits, false)?;
    let rotation = gate.check(&staged, &v.manifest)?;
    let report = apply_verified(
        store,
        &staged,
        &v,
        &opener,
        s.expect_tenant.as_ref(),
        &s.freshness,
        audit,
    )?;
    if let Some(r) = rotation {
        crate::trust::rotation::record(store, &r, audit)?;
    }
    Ok(report)
}

/// Apply a bundle whose signatures and digests were verified.
pub fn apply_verified(
    store: &Store,
    staged: &Staged,
    v: &Verified,
    opener: &Option<BundleOpener>,
    expect_tenant: Option<&Tenant>,
    policy: &freshness::Policy,
    audit: &dyn AuditSink,
) -> Result<ImportReport, ImportError> {
    let m = &v.manifest;
    let tenant = Tenant::new(&m.tenant).map_err(|reason| BundleError::Malformed {
        path: "manifest.yaml".into(),
        reason,
    })?;
    if let Some(t) = expect_tenant {
        if *t != tenant {
            return Err(ImportError::TenantMismatch {
                bundle: tenant.to_string(),
                expected: t.to_string(),
            });
        }
    }
    let open = |p: &str, b: Vec<u8>| open_with(opener, &v.manifest.encryption.encrypted_paths, p, b);
    let open: Opener<'_> = &open;
    let is_delta = m.profile == PROFILE_DELTA;
    let diff = if is_delta {
        let b = read_plain(staged, "manifest.diff.json", open)?;
        Some(
            serde_json::from_slice::<crate::bundle::format::DiffManifest>(&b).map_err(|e| BundleError::Malformed {
                path: "manifest.diff.json".into(),
                reason: e.to_string(),
            })?,
        )
    } else {
        None
    };
    let mut history = store.import_history(&tenant)?;
    let current = store.state(&tenant)?.root();
    let report = |outcome: &str, root: String, counts| ImportReport {
        run_id: m.run_id.clone(),
        profile: m.profile.clone(),
        tenant: tenant.to_string(),
        outcome: outcome.into(),
        previous_root: current.to_prefixed(),
        state_root: root,
        counts,
    };
    // Issue 16, rollback and freeze protection: refuse a bundle older than the newest
    // applied one, or expired, before anything is written (import/freshness.rs).
    let accepted = freshness::check(&history, m, &v.manifest_digest, policy)?;
    let applied_before = history.applied.iter().find(|a| a.run_id == m.run_id);
    if let Some(a) = applied_before.filter(|_| !accepted.reapply) {
        if a.manifest_digest != v.manifest_digest {
            return Err(ImportError::Conflict {
                run_id: m.run_id.clone(),
                applied: a.manifest_digest.to_prefixed(),
                bundle: v.manifest_digest.to_prefixed(),
            });
        }
        return Ok(report("already-applied", current.to_prefixed(), BTreeMap::new()));
    }
    let reset = diff.as_ref().is_none_or(|d| d.reset_baseline);
    if let Some(d) = diff.as_ref().filter(|d| !d.reset_baseline) {
        let last = history.last();
        if last.is_none_or(|l| l.run_id != d.base_export_id || l.manifest_digest != d.base_manifest_digest) {
            return Err(ImportError::OutOfOrder {
                run_id: m.run_id.clone(),
                base: d.base_export_id.clone(),
                last: last.map_or_else(|| "none".to_string(), |l| l.run_id.clone()),
                tenant: tenant.to_string(),
            });
        }
        if current.to_prefixed() != d.base_state_root {
            return Err(ImportError::StateRootMismatch {
                what: "before applying".into(),
                expected: d.base_state_root.clone(),
                actual: current.to_prefixed(),
            });
        }
    }

    // Read the records; objects go in ahead of the commit (immutable, unreferenced).
    let prefix = if is_delta { "changed/" } else { "" };
    let source = format!("import:{}", m.run_id);
    let target = diff
        .as_ref()
        .map_or(m.state_root.clone(), |d| d.target_state_root.clone());
    let mismatch = |actual: &NodeHash| ImportError::StateRootMismatch {
        what: "after applying".into(),
        expected: target.clone(),
        actual: actual.to_prefixed(),
    };
    let mut entry = |root: NodeHash| {
        history.applied_export_ids.push(m.run_id.clone());
        history.applied.push(AppliedExport {
            run_id: m.run_id.clone(),
            profile: m.profile.clone(),
            manifest_digest: v.manifest_digest,
            state_root: root,
            base_export_id: diff.as_ref().map(|d| d.base_export_id.clone()),
            created_at: m.created_at.clone(),
            freshness: Some(accepted.applied()),
        });
        vec![(
            applied_key(tenant.as_str()),
            serde_json::to_vec(&history).expect("json"),
        )]
    };
    let (root, counts) = if reset {
        // The whole state is replaced: a new records generation, built in chunks.
        let mut w = reset::ResetWriter::new(store, &tenant, &source)?;
        read_records(staged, prefix, m, open, &mut |c, subject, leaf, doc| {
            w.add(c, subject, leaf, doc).map_err(store_io)
        })?;
        let root = w.root()?;
        if root.to_prefixed() != target || m.state_root != target {
            return Err(mismatch(&root));
        }
        let extra = entry(root);
        (root, w.commit(&extra)?)
    } else {
        let mut mutation = Mutation::default();
        let mut batch = WriteBatch::default();
        let mut pending = 0usize;
        read_records(staged, prefix, m, open, &mut |c, subject, leaf, doc| {
            store.put_object(&mut batch, &ObjectKey::new(c, subject, &leaf.object), doc);
            pending += doc.len();
            if pending > 64 << 20 {
                store.write_unreferenced(std::mem::take(&mut batch)).map_err(store_io)?;
                pending = 0;
            }
            let e = RecordEntry {
                subject: subject.to_string(),
                object: leaf.object,
                modified: leaf.modified,
                source: source.clone(),
                derived: Vec::new(),
            };
            mutation.upserts.insert((c, leaf.id), e);
            Ok(())
        })?;
        store.write_unreferenced(batch)?;
        for k in ["advisories", "vex", "sboms", "policy", "consensus"] {
            let path = format!("removed/{k}.jsonl");
            let body = read_plain(staged, &path, open)?;
            for (n, line) in body.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
                let r: RemovedLine = serde_json::from_slice(line).map_err(|e| BundleError::Malformed {
                    path: format!("{path}:{}", n + 1),
                    reason: e.to_string(),
                })?;
                let c = Collection::from_name(&r.kind).ok_or_else(|| BundleError::Malformed {
                    path: format!("{path}:{}", n + 1),
                    reason: format!("unknown kind {:?}", r.kind),
                })?;
                mutation.deletes.insert((c, r.id));
            }
        }
        let plan = apply::plan(store, &tenant, &mutation)?;
        if plan.root().to_prefixed() != target || m.state_root != target {
            return Err(mismatch(&plan.root()));
        }
        let extra = entry(plan.root());
        apply::commit(store, &plan, &mutation, &extra)?;
        (plan.root(), plan.counts.clone())
    };
    // A large commit's write-ahead log would be replayed into memory by the next open and
    // its compactions run by the next command: settle both here.
    store.settle()?;
    accepted.audit(m, audit);
    let event = if is_delta {
        "mirror.delta.applied"
    } else {
        "mirror.bundle.imported"
    };
    audit.record(&AuditEvent::new(
        event,
        json!({"runId": m.run_id, "profile": m.profile, "tenant": tenant.as_str(), "manifestDigest": v.manifest_digest, "stateRoot": root.to_prefixed(), "previousRoot": current.to_prefixed(), "resetBaseline": reset}),
    ));
    Ok(report("applied", root.to_prefixed(), counts))
}

fn store_io(e: StoreError) -> BundleError {
    BundleError::Io {
        path: "store".into(),
        message: e.to_string(),
    }
}

/// Receives each record of a bundle with its collection.
type CollectionVisitor<'a> = &'a mut dyn FnMut(Collection, &str, crate::model::Leaf, &[u8]) -> Result<(), BundleError>;

/// Every record of a bundle (`prefix` = `""` or `"changed/"`), collection by collection,
/// each data file in order.
fn read_records(
    staged: &Staged,
    prefix: &str,
    m: &crate::bundle::format::Manifest,
    open: Opener<'_>,
    f: CollectionVisitor<'_>,
) -> Result<(), BundleError> {
    use crate::bundle::layout::{index_of, layout, FileLayout, INDEX_FILES};
    for index_path in INDEX_FILES {
        // Only one-file-per-subject layouts take ids and times from the index; record
        // lines carry their own, so the (large) advisory and VEX indexes are not parsed.
        let needs_index = Collection::ALL
            .into_iter()
            .any(|c| index_of(c) == index_path && matches!(layout(c), FileLayout::PerSubject(..)));
        let index = if needs_index {
            let plain = !m.encryption.encrypted_paths.iter().any(|p| p == index_path);
            read_index(staged, index_path, open, plain)?
        } else {
            crate::bundle::records::IndexFile::default()
        };
        for c in Collection::ALL.into_iter().filter(|c| index_of(*c) == index_path) {
            for_each_record(
                staged,
                prefix,
                c,
                index.collections.get(c.name()),
                open,
                &mut |subject, leaf, doc| f(c, subject, leaf, doc),
            )?;
        }
    }
    Ok(())
}
