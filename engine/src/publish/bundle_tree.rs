//! The base of the bundle-layout chain (`bundle/base/`: `data/…`, `indexes/…`, as in a full
//! bundle; see `chain`), built
//! unit by unit (collection × Merkle shard): a unit whose shard root equals the previous
//! version's is hard-linked, files and index entries alike; only changed units are read
//! from the store and written. Single-file collections (policy evaluations, consensus) are
//! rewritten whole when any of their shards changed.
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::docs::Context;
use super::frames;
use super::{link_prev, FileCounts, Previous, PublishError, SIDECAR};
use crate::bundle::layout::{layout, safe_name, shard_path, FileLayout};
use crate::export::select::Filter;
use crate::export::units::{build_indexes, finish_single, load_unit, run_unit, spill_index, UnitContext, UnitOutput};
use crate::export::ExportError;
use crate::ids::NodeHash;
use crate::merkle::empty_shard_root;
use crate::model::Collection;
use crate::store::catalog::Selectors;

type Unit = (Collection, u8, NodeHash);

/// zstd level of the published tree's data files: it is rewritten after every delta and
/// never signed, so the fastest level.
pub(super) const LEVEL: i32 = 1;

pub fn write(ctx: &Context<'_>) -> Result<FileCounts, PublishError> {
    let store = ctx.store;
    let parts = ctx.out.join(SIDECAR).join("index");
    let identity = |_: &str, b: Vec<u8>| -> Result<Vec<u8>, ExportError> { Ok(b) };
    let uctx = UnitContext {
        store,
        staging: ctx.out,
        prefix: "",
        zstd_level: LEVEL,
        seal: &identity,
        in_memory: false,
        index_version: crate::bundle::format::INDEX_FORMAT_VERSION_1,
    };
    let filter = Filter::new(&Selectors::default()).map_err(ExportError::Usage)?;
    let mut counts = FileCounts::default();
    // A previous version published without the bundle layout has nothing to link.
    let prev = ctx.prev.filter(|p| p.dir.join(SIDECAR).join("index").is_dir());
    let (dirty, clean, dirty_single) = plan(ctx, prev)?;
    let mut outputs: Vec<UnitOutput> = dirty
        .par_iter()
        .map(|(c, s, r)| -> Result<UnitOutput, PublishError> {
            if matches!(layout(*c), FileLayout::Sharded(_)) {
                return frames::write_unit(ctx, *c, *s, r, LEVEL);
            }
            let mut o = run_unit(&uctx, load_unit(store, *c, *s, r, &filter)?)?;
            spill_index(&mut o, &parts)?;
            Ok(o)
        })
        .collect::<Result<_, _>>()?;
    counts.written += outputs
        .iter()
        .map(|o| if o.files.is_empty() { 1 } else { o.files.len() as u64 })
        .sum::<u64>();
    for c in Collection::ALL {
        match (layout(c), dirty_single.contains(&c), prev) {
            (FileLayout::Single(_), true, _) => {
                counts.written += u64::from(finish_single(&uctx, c, &outputs)?.is_some());
            }
            (FileLayout::Single(p), false, Some(prev)) if prev.dir.join(p).exists() => {
                link_prev(&prev.dir, ctx.out, p)?;
                counts.linked += 1;
            }
            _ => {}
        }
    }
    if let Some(prev) = prev {
        let stubs: Vec<(UnitOutput, u64)> = clean
            .par_iter()
            .map(|u| clean_unit(ctx, prev, u))
            .collect::<Result<_, _>>()?;
        for (o, linked) in stubs {
            counts.linked += linked;
            outputs.push(o);
        }
    }
    outputs.sort_by_key(|o| (o.collection, o.shard));
    let kind_roots: BTreeMap<Collection, NodeHash> = ctx.state.kinds.iter().map(|k| (k.collection, k.root)).collect();
    counts.written += build_indexes(&outputs, &kind_roots, ctx.out)?.len() as u64;
    Ok(counts)
}

/// Units to write, units to link, single-file collections to rewrite.
type Plan = (Vec<Unit>, Vec<Unit>, Vec<Collection>);

fn plan(ctx: &Context<'_>, prev: Option<&Previous>) -> Result<Plan, PublishError> {
    let (mut dirty, mut clean, mut dirty_single) = (Vec::new(), Vec::new(), Vec::new());
    for c in Collection::ALL {
        let kind = ctx.store.kind_node(ctx.state.kind(c))?;
        let prev_kind = match prev {
            Some(p) => Some(ctx.store.kind_node(p.state.kind(c))?),
            None => None,
        };
        let single = matches!(layout(c), FileLayout::Single(_));
        let changed = prev_kind.as_ref().is_none_or(|pk| pk.shards != kind.shards);
        if single && changed {
            dirty_single.push(c);
        }
        for (i, r) in kind.shards.iter().enumerate() {
            if *r == empty_shard_root(i as u8) {
                continue;
            }
            let same = prev_kind.as_ref().is_some_and(|pk| pk.shards[i] == *r) && !(single && changed);
            if same {
                clean.push((c, i as u8, *r));
            } else {
                dirty.push((c, i as u8, *r));
            }
        }
    }
    Ok((dirty, clean, dirty_single))
}

/// Link an unchanged unit's files and index part from the previous version; its output
/// carries the subjects (for the index's shard roots and counts) read from the shard node.
fn clean_unit(ctx: &Context<'_>, prev: &Previous, (c, shard, root): &Unit) -> Result<(UnitOutput, u64), PublishError> {
    let node = ctx.store.shard_node(*shard, root)?;
    let mut linked = 0u64;
    match layout(*c) {
        FileLayout::Sharded(dir) => {
            link_prev(&prev.dir, ctx.out, &shard_path(dir, *shard))?;
            link_prev(&prev.dir, ctx.out, &frames::frames_rel(*c, *shard))?;
            linked += 2;
        }
        FileLayout::PerSubject(dir, name) => {
            for s in &node.subjects {
                link_prev(&prev.dir, ctx.out, &format!("{dir}/{}/{name}", safe_name(&s.subject)))?;
                linked += 1;
            }
        }
        FileLayout::Single(_) => {}
    }
    let part = frames::part_rel(*c, *shard);
    link_prev(&prev.dir, ctx.out, &part)?;
    let records = node.subjects.iter().map(|s| s.records).sum();
    let out = UnitOutput {
        collection: *c,
        shard: *shard,
        files: Vec::new(),
        lines: Vec::new(),
        subjects: node.subjects,
        index: Vec::new(),
        index_part: Some(ctx.out.join(part)),
        records,
    };
    Ok((out, linked + 1))
}
