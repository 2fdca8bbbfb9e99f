//! `import --publish DIR`: the tenant's current state as a plain mirror tree that
//! scanners read directly. Layout: `DIR/<tenant>/current` is a symlink to
//! `DIR/<tenant>/versions/<state root hex>/` holding `data/…` and `indexes/…` exactly as
//! in a full bundle, plus `state.json`. A new version is written beside the old one and
//! `current` is swapped with one atomic rename, so readers never see a half-written
//! tree. Files identical to the previous version's are hard links to them (reused, not
//! rewritten on disk).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::json;

use crate::export::select::Filter;
use crate::export::units::{build_indexes, finish_single, load_unit, run_unit, UnitContext, UnitOutput};
use crate::export::ExportError;
use crate::merkle::empty_shard_root;
use crate::model::{Collection, Tenant};
use crate::store::catalog::Selectors;
use crate::store::Store;

fn io(p: &Path, e: std::io::Error) -> ExportError {
    ExportError::io(p, e)
}

pub fn publish(store: &Store, tenant: &Tenant, dir: &Path) -> Result<PathBuf, ExportError> {
    let state = store.state(tenant)?;
    let base = dir.join(tenant.as_str());
    let versions = base.join("versions");
    let name = hex::encode(state.root().as_bytes());
    let target = versions.join(&name);
    let current = base.join("current");
    let previous = std::fs::read_link(&current).ok().map(|p| base.join(p));
    if previous.as_deref() == Some(target.as_path()) && target.join("state.json").exists() {
        return Ok(target);
    }
    let building = versions.join(format!(".{name}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).map_err(|e| io(&building, e))?;
    let identity = |_: &str, b: Vec<u8>| -> Result<Vec<u8>, ExportError> { Ok(b) };
    let ctx = UnitContext {
        store,
        staging: &building,
        prefix: "",
        zstd_level: 3,
        seal: &identity,
        in_memory: false,
    };
    let filter = Filter::new(&Selectors::default()).map_err(ExportError::Usage)?;
    let mut jobs = Vec::new();
    for c in Collection::ALL {
        let kind = store.kind_node(state.kind(c))?;
        for (i, r) in kind.shards.iter().enumerate() {
            if *r != empty_shard_root(i as u8) {
                jobs.push((c, i as u8, *r));
            }
        }
    }
    let mut outputs: Vec<UnitOutput> = jobs
        .par_iter()
        .map(|(c, s, r)| run_unit(&ctx, load_unit(store, *c, *s, r, &filter)?))
        .collect::<Result<_, _>>()?;
    for c in Collection::ALL {
        finish_single(&ctx, c, &outputs)?;
    }
    outputs.sort_by_key(|o| (o.collection, o.shard));
    let kind_roots: BTreeMap<Collection, _> = state.kinds.iter().map(|k| (k.collection, k.root)).collect();
    build_indexes(&outputs, &kind_roots, &building)?;
    let st = json!({
        "tenant": tenant.as_str(),
        "stateRoot": state.root().to_prefixed(),
        "kindRoots": state.kinds.iter().map(|k| (k.collection.name().to_string(), k.root.to_prefixed())).collect::<BTreeMap<_, _>>(),
        "counts": state.kinds.iter().map(|k| (k.collection.name().to_string(), k.records)).collect::<BTreeMap<_, _>>(),
    });
    std::fs::write(
        building.join("state.json"),
        serde_json::to_vec_pretty(&st).expect("json"),
    )
    .map_err(|e| io(&building, e))?;
    if let Some(prev) = &previous {
        reuse_identical(&building, prev)?;
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&building, &target).map_err(|e| io(&target, e))?;
    let link_tmp = base.join(format!(".current.{}", std::process::id()));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(Path::new("versions").join(&name), &link_tmp).map_err(|e| io(&link_tmp, e))?;
    std::fs::rename(&link_tmp, &current).map_err(|e| io(&current, e))?;
    // Keep the version readers may still be in; drop older ones.
    if let Ok(rd) = std::fs::read_dir(&versions) {
        for e in rd.flatten() {
            let p = e.path();
            let keep = p == target || previous.as_deref() == Some(p.as_path());
            if !keep && !e.file_name().to_string_lossy().starts_with('.') {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
    Ok(target)
}

/// Replace files equal to the previous version's with hard links to them.
fn reuse_identical(new: &Path, prev: &Path) -> Result<(), ExportError> {
    for e in walkdir::WalkDir::new(new).into_iter().flatten() {
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(new).expect("below new");
        let old = prev.join(rel);
        let same = match (std::fs::read(e.path()), std::fs::read(&old)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            std::fs::remove_file(e.path()).map_err(|err| io(e.path(), err))?;
            std::fs::hard_link(&old, e.path()).map_err(|err| io(e.path(), err))?;
        }
    }
    Ok(())
}
