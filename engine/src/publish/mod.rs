//! `publish`: the tenant's current state as a mirror tree in the layouts scanners read.
//!
//! `DIR/<tenant>/current` is a symlink to `DIR/<tenant>/versions/<state root hex>/`, which
//! holds (docs/operations.md, "Published tree"):
//! * `osv/<Ecosystem>/all.zip` + `osv/ecosystems.txt` (the OSV bucket's layout), the same
//!   zips under `osv-scanner/` and `osv-scalibr/` (osv-scanner's offline cache layouts);
//! * `.well-known/vex-repository.json` + `vex/vex-repository.zip` (VEX repository spec v0.1);
//! * `.well-known/csaf/` (CSAF 2.0 provider: `provider-metadata.json`, `<tlp>/<year>/…`);
//! * `bundle/`: the bundle layout as a chain, a full bundle's layout (`bundle/base/`) and the
//!   delta layouts of the publishes since (`bundle/deltas/NNNN/`), listed in `bundle/chain.json`;
//! * `state.json`, its detached Ed25519 signature `state.json.sig` and `state.pub.pem`.
//!
//! A new version is built in a hidden folder beside the others and renamed into place, then
//! `current` is swapped with one atomic rename: readers never see a half-written tree. The
//! build is incremental: the Merkle diff between the previous version's state root and the
//! current one names the records that changed, and only the files they touch are written
//! (the scanner layouts' affected zips and documents, one more bundle-layout delta); every
//! other file is a hard link to the previous version's (cost follows the churn).
mod bundle_tree;
mod chain;
mod csaf;
mod docs;
mod error;
mod frames;
mod osv;
mod state;
mod vex_repo;
mod zipfile;

use std::path::{Path, PathBuf};

pub use chain::{BundleReport, Chain, FoldPolicy, BASE_DIR, CHAIN_FILE};
pub use error::PublishError;
pub use state::{PublishedState, STATE_FILE, STATE_PUBLIC_KEY, STATE_SIGNATURE};

use crate::bundle::signing::SignKey;
use crate::export::diff::diff_keeping_shards;
use crate::merkle::StateNode;
use crate::model::Tenant;
use crate::store::{NodeTag, Store};

/// Hidden folder of a version with what the next publish needs to be incremental
/// (index parts of the bundle layout, the VEX and CSAF listings).
const SIDECAR: &str = ".publish";

pub struct PublishSettings {
    /// The https URL `DIR/<tenant>/current/` is served under (VEX manifest, CSAF metadata).
    pub base_url: String,
    /// Signs `state.json`.
    pub sign_key: SignKey,
    /// The signing key's public half (SPKI PEM), copied to `state.pub.pem` when given.
    pub public_pem: Option<Vec<u8>>,
    /// Write the bundle layout (`bundle/`) too.
    pub bundle_layout: bool,
    /// When the bundle layout's deltas are folded into a new base.
    pub fold: FoldPolicy,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    pub tenant: String,
    pub version: PathBuf,
    pub state_root: String,
    /// `written`, or `unchanged` when `current` already was this state.
    pub outcome: String,
    /// Built from the previous version (only what changed rewritten).
    pub incremental: bool,
    /// Records that differ from the previous version (all records for a first publish).
    pub changed_records: usize,
    pub files_written: u64,
    pub files_linked: u64,
    pub osv_ecosystems: usize,
    pub vex_packages: usize,
    pub csaf_documents: usize,
    /// What the bundle layout took of `files_written` / `files_linked` (absent with
    /// `--no-bundle-layout` or when nothing was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleReport>,
}

/// Counts of files written and hard-linked by the parts of a build.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct FileCounts {
    pub written: u64,
    pub linked: u64,
}

impl FileCounts {
    pub fn add(&mut self, o: FileCounts) {
        self.written += o.written;
        self.linked += o.linked;
    }
}

/// The version `current` points at, with the state it holds, when the store still has
/// that state's Merkle nodes (then only the difference has to be rebuilt).
pub(crate) struct Previous {
    pub dir: PathBuf,
    pub state: StateNode,
    pub published: PublishedState,
}

/// Removes a half-built version however the build ends, unless it was moved into place.
struct Building(PathBuf);

impl Drop for Building {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn check_base_url(url: &str) -> Result<String, PublishError> {
    let bad = |reason: &str| PublishError::BaseUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("must start with https://"))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(|c| c.is_whitespace() || c == '"') {
        return Err(bad("must name a host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

pub fn publish(store: &Store, tenant: &Tenant, dir: &Path, s: &PublishSettings) -> Result<PublishReport, PublishError> {
    let base_url = check_base_url(&s.base_url)?;
    let state = store.state(tenant)?;
    let base = dir.join(tenant.as_str());
    let versions = base.join("versions");
    let name = hex::encode(state.root().as_bytes());
    let target = versions.join(&name);
    let current = base.join("current");
    let previous_dir = std::fs::read_link(&current).ok().map(|p| base.join(p));
    let mut report = PublishReport {
        tenant: tenant.to_string(),
        version: target.clone(),
        state_root: state.root().to_prefixed(),
        outcome: "unchanged".into(),
        incremental: false,
        changed_records: 0,
        files_written: 0,
        files_linked: 0,
        osv_ecosystems: 0,
        vex_packages: 0,
        csaf_documents: 0,
        bundle: None,
    };
    if previous_dir.as_deref() == Some(target.as_path()) && target.join(STATE_FILE).exists() {
        return Ok(report);
    }
    let prev = previous_dir.as_deref().and_then(|d| previous(store, d));
    let building = Building(versions.join(format!(".{name}.building-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&building.0);
    std::fs::create_dir_all(&building.0).map_err(|e| PublishError::io(&building.0, e))?;
    let empty = StateNode::empty(tenant.as_str());
    let (changes, known) = diff_keeping_shards(store, prev.as_ref().map_or(&empty, |p| &p.state), &state)?;
    let history = store.import_history(tenant)?;
    let updated_at = history
        .last()
        .map_or_else(|| "1970-01-01T00:00:00Z".to_string(), |a| a.created_at.clone());
    let ctx = docs::Context {
        store,
        tenant,
        state: &state,
        prev: prev.as_ref(),
        out: &building.0,
        base_url: &base_url,
        updated_at: &updated_at,
    };
    let mut files = FileCounts::default();
    if s.bundle_layout {
        let b = chain::write(&ctx, &changes, &known, s.fold)?;
        files.add(FileCounts {
            written: b.files_written,
            linked: b.files_linked,
        });
        report.bundle = Some(b);
    }
    let (osv, vex, csaf, counts) = docs::write_documents(&ctx, &changes)?;
    files.add(counts);
    let published = PublishedState::new(&state, &history, &updated_at, s.sign_key.key_id(), osv, vex, csaf);
    files.add(state::write(&building.0, &published, s)?);
    report.outcome = "written".into();
    report.incremental = prev.is_some();
    report.changed_records = changes.len();
    report.files_written = files.written;
    report.files_linked = files.linked;
    report.osv_ecosystems = published.osv_ecosystems.len();
    report.vex_packages = published.vex_packages;
    report.csaf_documents = published.csaf_documents;
    switch(&base, &building, &target, &name, previous_dir.as_deref())?;
    Ok(report)
}

/// The previous version, if `current` points at a complete one whose state the store holds.
fn previous(store: &Store, dir: &Path) -> Option<Previous> {
    let published = PublishedState::read(&dir.join(STATE_FILE))?;
    if !dir.join(SIDECAR).is_dir() {
        return None;
    }
    let state = held_state(store, &published.state_root)?;
    Some(Previous {
        dir: dir.to_path_buf(),
        state,
        published,
    })
}

/// The state node of a `blake3:` state root, when the store still holds it.
pub(crate) fn held_state(store: &Store, root: &str) -> Option<StateNode> {
    let root = crate::ids::NodeHash::parse_prefixed(root)?;
    match store.node_opt(NodeTag::State, &root).ok()?? {
        crate::merkle::Node::State(s) => Some(s),
        _ => None,
    }
}

/// Move the built version into place, point `current` at it with one rename, and drop the
/// versions older than the previous one (readers may still be inside that one).
fn switch(
    base: &Path,
    building: &Building,
    target: &Path,
    name: &str,
    previous: Option<&Path>,
) -> Result<(), PublishError> {
    let _ = std::fs::remove_dir_all(target);
    std::fs::rename(&building.0, target).map_err(|e| PublishError::io(target, e))?;
    let link_tmp = base.join(format!(".current.{}", std::process::id()));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(Path::new("versions").join(name), &link_tmp)
        .map_err(|e| PublishError::io(&link_tmp, e))?;
    let current = base.join("current");
    std::fs::rename(&link_tmp, &current).map_err(|e| PublishError::io(&current, e))?;
    if let Ok(rd) = std::fs::read_dir(base.join("versions")) {
        for e in rd.flatten() {
            let p = e.path();
            let keep = p == target || previous == Some(p.as_path());
            if !keep && !e.file_name().to_string_lossy().starts_with('.') {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
    Ok(())
}

/// Hard-link `rel` of the previous version into the new one.
pub(crate) fn link_prev(prev: &Path, out: &Path, rel: &str) -> Result<(), PublishError> {
    let (from, to) = (prev.join(rel), out.join(rel));
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PublishError::io(parent, e))?;
    }
    std::fs::hard_link(&from, &to).map_err(|e| PublishError::io(&to, e))
}

/// Write `bytes` at `rel` below `out`, creating folders.
pub(crate) fn write_file(out: &Path, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
    let to = out.join(rel);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PublishError::io(parent, e))?;
    }
    std::fs::write(&to, bytes).map_err(|e| PublishError::io(&to, e))
}
