//! The bundle layout of the published tree, as a chain: `bundle/base/` is a full bundle's
//! layout (`indexes/`, `data/`) at some earlier state, `bundle/deltas/NNNN/` are delta
//! bundles' layouts (`indexes/` of the affected subjects, `changed/data/`, `removed/`), one
//! per publish since, and `bundle/chain.json` lists them in order with the state roots they
//! go from and to. Reading the base and applying the deltas in order gives the current
//! state (tested), the way `import` applies a full bundle and its deltas.
//!
//! A publish after a delta links the previous version's `bundle/` and writes one delta
//! holding only the records that changed: its cost follows the churn, not the store (a 1%
//! delta touches nearly every Merkle shard, so rewriting the base's per-shard files and
//! whole-store indexes costs as much as a publish from scratch). When the deltas hold more
//! than `fold_percent`% of the base's records, or there are `max_deltas` of them, the next
//! publish folds them into a new base (unchanged units of the old base are linked or
//! copied frame by frame, see `bundle_tree`), so a reader never replays a long chain.
use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::docs::Context;
use super::{bundle_tree, write_file, Previous, PublishError};
use crate::export::delta_sets::{classify_changes, fix_delta_index, removed_files};
use crate::export::diff::{Change, SubjectRoots};
use crate::export::select::Filter;
use crate::export::units::{build_indexes, finish_single, run_unit, UnitContext, UnitOutput};
use crate::export::ExportError;
use crate::model::Collection;
use crate::store::catalog::Selectors;

pub const CHAIN_FILE: &str = "bundle/chain.json";
pub const BASE_DIR: &str = "bundle/base";
const DELTAS_DIR: &str = "bundle/deltas";

/// When the chain is folded into a new base.
#[derive(Clone, Copy, Debug)]
pub struct FoldPolicy {
    /// Fold once the chain holds this many deltas (0: every publish writes a base).
    pub max_deltas: usize,
    /// Fold once the deltas' records exceed this percentage of the base's records.
    pub fold_percent: u64,
}

impl Default for FoldPolicy {
    fn default() -> Self {
        FoldPolicy {
            max_deltas: 24,
            fold_percent: 25,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    pub format_version: u32,
    /// The state the base plus every delta reaches (the version's state root).
    pub state_root: String,
    pub base: BaseLayer,
    pub deltas: Vec<DeltaLayer>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseLayer {
    pub path: String,
    pub state_root: String,
    pub records: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaLayer {
    pub path: String,
    pub base_state_root: String,
    pub target_state_root: String,
    /// Records added, changed and removed, by collection (collections without any left out).
    pub by_collection: BTreeMap<String, Counts>,
}

impl DeltaLayer {
    fn records(&self) -> u64 {
        self.by_collection
            .values()
            .map(|c| c.added + c.changed + c.removed)
            .sum()
    }
}

/// What a publish did to the bundle layout.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleReport {
    /// A new base was written (first publish, or the chain was folded).
    pub base_written: bool,
    /// Deltas in the chain after this publish.
    pub deltas: usize,
    /// Records the delta written by this publish holds (0 when a base was written).
    pub delta_records: u64,
    pub files_written: u64,
    pub files_linked: u64,
}

pub fn read_chain(version: &Path) -> Option<Chain> {
    let bytes = std::fs::read(version.join(CHAIN_FILE)).ok()?;
    serde_json::from_slice::<Chain>(&bytes)
        .ok()
        .filter(|c| c.format_version == 1)
}

fn due(chain: &Chain, policy: FoldPolicy, changes: usize) -> bool {
    let held: u64 = chain.deltas.iter().map(DeltaLayer::records).sum::<u64>() + changes as u64;
    chain.deltas.len() >= policy.max_deltas || held * 100 > chain.base.records * policy.fold_percent
}

/// Write `bundle/` into the version being built: one more delta on the previous version's
/// chain, or a new base.
pub fn write(
    ctx: &Context<'_>,
    changes: &[Change],
    known: &SubjectRoots,
    policy: FoldPolicy,
) -> Result<BundleReport, PublishError> {
    let prev_chain = ctx.prev.and_then(|p| {
        read_chain(&p.dir)
            .filter(|c| c.state_root == p.published.state_root)
            .map(|c| (p, c))
    });
    let mut report = BundleReport::default();
    let chain = match prev_chain {
        Some((prev, mut chain)) if !due(&chain, policy, changes.len()) => {
            let mut linked = 0;
            for d in [BASE_DIR, DELTAS_DIR] {
                if prev.dir.join(d).is_dir() {
                    linked += link_tree(&prev.dir.join(d), &ctx.out.join(d))?;
                }
            }
            let rel = format!("{DELTAS_DIR}/{:04}", chain.deltas.len() + 1);
            let (files, layer) = write_delta(ctx, changes, known, &rel, &prev.published.state_root)?;
            report.files_written = files;
            report.files_linked = linked;
            report.delta_records = layer.records();
            chain.deltas.push(layer);
            chain.state_root = ctx.state.root().to_prefixed();
            chain
        }
        other => {
            // Fold: the old base's unchanged units are reused when its state is still held;
            // a version without a chain (written before chains, or without the bundle
            // layout) is tried as a base itself.
            let base_prev = match &other {
                Some((prev, chain)) => base_previous(ctx, prev, chain),
                None => ctx.prev.map(|p| Previous {
                    dir: p.dir.clone(),
                    state: p.state.clone(),
                    published: p.published.clone(),
                }),
            };
            let out = ctx.out.join(BASE_DIR);
            let base_ctx = Context {
                out: &out,
                prev: base_prev.as_ref(),
                ..*ctx
            };
            let files = bundle_tree::write(&base_ctx)?;
            report.base_written = true;
            report.files_written = files.written;
            report.files_linked = files.linked;
            Chain {
                format_version: 1,
                state_root: ctx.state.root().to_prefixed(),
                base: BaseLayer {
                    path: BASE_DIR.into(),
                    state_root: ctx.state.root().to_prefixed(),
                    records: ctx.state.kinds.iter().map(|k| k.records).sum(),
                },
                deltas: Vec::new(),
            }
        }
    };
    report.deltas = chain.deltas.len();
    let mut bytes = serde_json::to_vec_pretty(&chain).expect("chain serializes");
    bytes.push(b'\n');
    write_file(ctx.out, CHAIN_FILE, &bytes)?;
    report.files_written += 1;
    Ok(report)
}

/// The previous version's base, with its state when the store still holds it.
fn base_previous(ctx: &Context<'_>, prev: &Previous, chain: &Chain) -> Option<Previous> {
    Some(Previous {
        dir: prev.dir.join(&chain.base.path),
        state: super::held_state(ctx.store, &chain.base.state_root)?,
        published: prev.published.clone(),
    })
}

/// Hard-link every file below `from` to the same place below `to`; returns how many.
fn link_tree(from: &Path, to: &Path) -> Result<u64, PublishError> {
    std::fs::create_dir_all(to).map_err(|e| PublishError::io(to, e))?;
    let mut n = 0;
    for e in std::fs::read_dir(from).map_err(|e| PublishError::io(from, e))? {
        let e = e.map_err(|e| PublishError::io(from, e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().map_err(|e| PublishError::io(&src, e))?;
        if ty.is_dir() {
            n += link_tree(&src, &dst)?;
        } else {
            std::fs::hard_link(&src, &dst).map_err(|e| PublishError::io(&dst, e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Write one delta layout at `rel` (the changed records since `base_root`); returns the
/// files written and its chain entry.
fn write_delta(
    ctx: &Context<'_>,
    changes: &[Change],
    known: &SubjectRoots,
    rel: &str,
    base_root: &str,
) -> Result<(u64, DeltaLayer), PublishError> {
    let dir = ctx.out.join(rel);
    let filter = Filter::new(&Selectors::default()).map_err(ExportError::Usage)?;
    let (added, changed, removed, units, removed_lines) = classify_changes(changes, &filter);
    let identity = |_: &str, b: Vec<u8>| -> Result<Vec<u8>, ExportError> { Ok(b) };
    let uctx = UnitContext {
        store: ctx.store,
        staging: &dir,
        prefix: "changed/",
        zstd_level: bundle_tree::LEVEL,
        seal: &identity,
        in_memory: false,
        index_version: crate::bundle::format::INDEX_FORMAT_VERSION_1,
    };
    let mut outputs: Vec<UnitOutput> = units
        .into_par_iter()
        .map(|u| run_unit(&uctx, u))
        .collect::<Result<_, _>>()?;
    fix_delta_index(ctx.store, &filter, &mut outputs, known)?;
    let mut written: u64 = outputs.iter().map(|o| o.files.len() as u64).sum();
    for c in Collection::ALL {
        written += u64::from(finish_single(&uctx, c, &outputs)?.is_some());
    }
    outputs.sort_by_key(|o| (o.collection, o.shard));
    let kind_roots = ctx.state.kinds.iter().map(|k| (k.collection, k.root)).collect();
    written += build_indexes(&outputs, &kind_roots, &dir)?.len() as u64;
    for (path, body) in removed_files(&removed_lines) {
        write_file(&dir, &path, &body)?;
        written += 1;
    }
    let mut by_collection = BTreeMap::new();
    for c in Collection::ALL {
        let n = |m: &BTreeMap<Collection, u64>| m.get(&c).copied().unwrap_or(0);
        let counts = Counts {
            added: n(&added),
            changed: n(&changed),
            removed: n(&removed),
        };
        if counts != Counts::default() {
            by_collection.insert(c.name().to_string(), counts);
        }
    }
    let layer = DeltaLayer {
        path: rel.to_string(),
        base_state_root: base_root.to_string(),
        target_state_root: ctx.state.root().to_prefixed(),
        by_collection,
    };
    Ok((written, layer))
}
