//! `rebuild`: the disaster-recovery procedure. From a folder of bundles, take the newest
//! full bundle, apply the deltas that chain from it in base order, then verify the store.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{staging_area, ImportError, ImportReport, ImportSettings};
use crate::audit::{AuditSink, Progress};
use crate::bundle::archive::{stage_archive, Limits};
use crate::bundle::error::BundleError;
use crate::bundle::format::{Manifest, PROFILE_FULL};
use crate::bundle::signing::TrustedKey;
use crate::bundle::verify::{gate, parse_manifest};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The folder holds no full bundle to start from.
    #[error("no mirror:full bundle in {0}")]
    NoFull(PathBuf),
    /// A delta needs a base that is neither the chain's last export nor in the folder.
    #[error("chain gap: {delta} needs base {base}, which is not in the folder (chain so far: {chain})")]
    Gap { delta: String, base: String, chain: String },
    /// Two deltas claim the same base: the chain is ambiguous.
    #[error("ambiguous chain: {a} and {b} both build on {base}")]
    Fork { a: String, b: String, base: String },
    #[error("{path}: {source}")]
    Bundle { path: PathBuf, source: BundleError },
    #[error("{path}: {source}")]
    Import { path: PathBuf, source: Box<ImportError> },
    #[error(transparent)]
    Verify(#[from] super::verify_store::StoreVerifyError),
}

impl RebuildError {
    pub fn code(&self) -> &'static str {
        match self {
            RebuildError::NoFull(_) => "ERR_REBUILD_NO_FULL",
            RebuildError::Gap { .. } => "ERR_REBUILD_CHAIN_GAP",
            RebuildError::Fork { .. } => "ERR_REBUILD_CHAIN_FORK",
            RebuildError::Bundle { source, .. } => source.code(),
            RebuildError::Import { source, .. } => source.code(),
            RebuildError::Verify(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            RebuildError::NoFull(_) => "copy the latest full bundle into the folder".into(),
            RebuildError::Gap { base, .. } => {
                format!("copy bundle {base} into the folder; the store holds the chain up to the gap")
            }
            RebuildError::Fork { .. } => "remove the bundle that does not belong to this mirror's chain".into(),
            RebuildError::Bundle { source, .. } => source.hint(),
            RebuildError::Import { source, .. } => source.hint(),
            RebuildError::Verify(e) => e.hint(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub chain: Vec<String>,
    pub applied: Vec<ImportReport>,
    /// Deltas in the folder that do not continue the chain (older than the full, or
    /// from another chain), named so the operator sees them.
    pub ignored: Vec<String>,
    pub state_root: String,
    pub store_verified: bool,
}

struct Head {
    path: PathBuf,
    manifest: Manifest,
    base: Option<String>,
}

/// Read just the signed manifest of a bundle (it comes first in the archive).
fn read_head(path: &Path, trust: &[TrustedKey], staging: &Path) -> Result<Head, BundleError> {
    let mut found: Option<Manifest> = None;
    let limits = Limits::default();
    let res = stage_archive(path, staging, &limits, &mut |g| {
        gate(trust, g)?;
        found = Some(parse_manifest(g.manifest)?);
        Err(BundleError::Malformed {
            path: "stop".into(),
            reason: "manifest read".into(),
        })
    });
    let manifest = match (found, res) {
        (Some(m), _) => m,
        (None, Err(e)) => return Err(e),
        (None, Ok(_)) => {
            return Err(BundleError::Malformed {
                path: path.display().to_string(),
                reason: "manifest.yaml and its signature must come first".into(),
            })
        }
    };
    let base = manifest
        .base
        .as_ref()
        .filter(|b| !b.reset_baseline)
        .map(|b| b.export_id.clone());
    Ok(Head {
        path: path.to_path_buf(),
        manifest,
        base,
    })
}

pub fn rebuild(
    store: &Store,
    dir: &Path,
    s: &ImportSettings,
    audit: &dyn AuditSink,
    progress: &dyn Progress,
) -> Result<RebuildReport, RebuildError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| RebuildError::Bundle {
            path: dir.to_path_buf(),
            source: crate::bundle::error::io_err(dir, e),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    paths.sort();
    let mut heads = Vec::new();
    for p in &paths {
        let staging = staging_area(store, "rebuild-head").map_err(|e| RebuildError::Import {
            path: p.clone(),
            source: Box::new(e.into()),
        })?;
        heads.push(read_head(p, &s.trust, &staging.0).map_err(|e| RebuildError::Bundle {
            path: p.clone(),
            source: e,
        })?);
    }
    // The newest full bundle, or a reset-baseline delta, starts the chain.
    let start = heads
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.manifest.profile == PROFILE_FULL || h.manifest.base.as_ref().is_some_and(|b| b.reset_baseline)
        })
        .max_by(|a, b| {
            (&a.1.manifest.created_at, &a.1.manifest.run_id).cmp(&(&b.1.manifest.created_at, &b.1.manifest.run_id))
        })
        .map(|(i, _)| i)
        .ok_or_else(|| RebuildError::NoFull(dir.to_path_buf()))?;
    let mut by_base: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in heads.iter().enumerate() {
        if let Some(b) = &h.base {
            if let Some(j) = by_base.insert(b.as_str(), i) {
                return Err(RebuildError::Fork {
                    a: heads[j].manifest.run_id.clone(),
                    b: h.manifest.run_id.clone(),
                    base: b.clone(),
                });
            }
        }
    }
    let mut chain = vec![start];
    while let Some(&next) = by_base.get(heads[*chain.last().expect("non-empty")].manifest.run_id.as_str()) {
        chain.push(next);
    }
    let in_chain: std::collections::BTreeSet<usize> = chain.iter().copied().collect();
    let names = |c: &[usize]| c.iter().map(|i| heads[*i].manifest.run_id.clone()).collect::<Vec<_>>();
    // A delta newer than the chain's end whose base is missing is a gap.
    let end_time = heads[*chain.last().expect("non-empty")].manifest.created_at.clone();
    let mut ignored = Vec::new();
    for (i, h) in heads.iter().enumerate() {
        if in_chain.contains(&i) {
            continue;
        }
        if h.base.is_some() && h.manifest.created_at > end_time {
            return Err(RebuildError::Gap {
                delta: h.manifest.run_id.clone(),
                base: h.base.clone().unwrap_or_default(),
                chain: names(&chain).join(" → "),
            });
        }
        ignored.push(h.manifest.run_id.clone());
    }
    let mut applied = Vec::new();
    let end = *chain.last().expect("non-empty");
    for i in &chain {
        // Only the chain's end is judged for expiry: the links before it are superseded.
        let mut policy = s.freshness;
        if *i != end {
            policy.expiry = super::freshness::Expiry::Ignore;
        }
        let path = &heads[*i].path;
        let r = super::import_with(store, path, s, &policy, audit, progress).map_err(|e| RebuildError::Import {
            path: path.clone(),
            source: Box::new(e),
        })?;
        applied.push(r);
    }
    // Objects were hashed as they were imported; the tree and records are re-read.
    super::verify_store::verify_store_with(store, super::verify_store::Checks::Tree)?;
    let state_root = applied.last().map(|r| r.state_root.clone()).unwrap_or_default();
    Ok(RebuildReport {
        chain: names(&chain),
        applied,
        ignored,
        state_root,
        store_verified: true,
    })
}
