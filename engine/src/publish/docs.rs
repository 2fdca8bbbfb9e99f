//! The scanner-facing layouts (OSV, VEX repository, CSAF provider) from the raw documents
//! that changed since the previous version. Changes are read in chunks, in (collection, id)
//! order: documents are fetched, classified and compressed in parallel, then applied in
//! order, so memory stays bounded by a chunk whatever the store's size.
use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use super::csaf::{CsafHead, CsafWriter};
use super::osv::OsvWriter;
use super::vex_repo::VexRepo;
use super::{FileCounts, Previous, PublishError};
use crate::export::diff::Change;
use crate::merkle::StateNode;
use crate::model::{Collection, Leaf, Tenant};
use crate::store::{ObjectKey, Store};

const CHUNK: usize = 4096;

/// What every part of a build reads.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub store: &'a Store,
    pub tenant: &'a Tenant,
    pub state: &'a StateNode,
    pub prev: Option<&'a Previous>,
    /// The version being built.
    pub out: &'a Path,
    pub base_url: &'a str,
    /// The time written into scanner-facing indexes (the producer's `createdAt`).
    pub updated_at: &'a str,
}

/// What a raw document is, as far as publishing cares.
pub enum DocKind {
    /// OSV, with the base ecosystems (`Debian:11` → `Debian`) of its affected packages.
    Osv(Vec<String>),
    Csaf(CsafHead),
    OpenVex,
    Other,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    modified: Option<serde_json::Value>,
    #[serde(default)]
    affected: Option<Vec<Affected>>,
    #[serde(default)]
    document: Option<CsafHead>,
    #[serde(rename = "@context", default)]
    context: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    ecosystem: Option<String>,
}

/// The folder name of an ecosystem: the part before `:`, when it is a safe path segment.
fn base_ecosystem(e: &str) -> Option<String> {
    let base = e.split(':').next().unwrap_or_default().trim();
    let ok = !base.is_empty() && base.len() <= 100 && !base.starts_with('.') && !base.contains(['/', '\\', '\0']);
    ok.then(|| base.to_string())
}

pub fn classify(c: Collection, id: &str, bytes: &[u8]) -> Result<DocKind, PublishError> {
    let h: Head = serde_json::from_slice(bytes).map_err(|source| PublishError::Document {
        collection: c.name(),
        id: id.to_string(),
        source,
    })?;
    if let Some(d) = h.document.filter(|d| d.csaf_version.is_some()) {
        return Ok(DocKind::Csaf(d));
    }
    if let Some(ctx) = h
        .context
        .as_ref()
        .and_then(|v| v.as_str())
        .filter(|s| s.contains("openvex"))
    {
        // The VEX repository carries OpenVEX 0.2.0 and later (the versions the official
        // schema describes); 0.0.x documents stay in the bundle layout only.
        let current = ctx.contains("openvex.dev/ns/v") && !ctx.contains("/ns/v0.0.");
        return Ok(if current { DocKind::OpenVex } else { DocKind::Other });
    }
    if c == Collection::AdvisoriesRaw && h.id.is_some() && h.modified.is_some() {
        let mut ecos: Vec<String> = h
            .affected
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.package.as_ref()?.ecosystem.as_deref())
            .filter_map(base_ecosystem)
            .collect();
        ecos.sort();
        ecos.dedup();
        return Ok(DocKind::Osv(ecos));
    }
    Ok(DocKind::Other)
}

/// One changed record with its documents read and classified.
pub struct Loaded {
    pub collection: Collection,
    pub id: String,
    pub old: Option<(String, DocKind)>,
    /// Subject, kind and bytes of the current document.
    pub new: Option<(String, DocKind, Vec<u8>)>,
    /// The new OSV document compressed once per ecosystem it names.
    pub osv_entries: Vec<(String, zip::PreparedZipFile)>,
}

fn fetch(store: &Store, c: Collection, subject: &str, leaf: &Leaf) -> Result<Vec<u8>, PublishError> {
    Ok(store.object_required(&ObjectKey::new(c, subject, &leaf.object))?)
}

fn load(ctx: &Context<'_>, ch: &Change) -> Result<Loaded, PublishError> {
    let c = ch.collection;
    let old = match &ch.old {
        Some((subject, leaf)) => Some((
            subject.clone(),
            classify(c, &ch.id, &fetch(ctx.store, c, subject, leaf)?)?,
        )),
        None => None,
    };
    let new = match &ch.new {
        Some((subject, leaf)) => {
            let bytes = fetch(ctx.store, c, subject, leaf)?;
            Some((subject.clone(), classify(c, &ch.id, &bytes)?, bytes))
        }
        None => None,
    };
    let mut osv_entries = Vec::new();
    if let Some((_, DocKind::Osv(ecos), bytes)) = &new {
        let name = super::osv::entry_name(&ch.id);
        for e in ecos {
            osv_entries.push((e.clone(), super::zipfile::prepare(&name, bytes, ctx.out)?));
        }
    }
    Ok(Loaded {
        collection: c,
        id: ch.id.clone(),
        old,
        new,
        osv_entries,
    })
}

/// Write the OSV mirror, the VEX repository and the CSAF provider. Returns advisories per
/// ecosystem, VEX packages, CSAF documents and the files written and linked.
pub fn write_documents(
    ctx: &Context<'_>,
    changes: &[Change],
) -> Result<(BTreeMap<String, u64>, usize, usize, FileCounts), PublishError> {
    let mut osv = OsvWriter::new(ctx);
    let mut csaf = CsafWriter::new(ctx);
    let mut vex = VexRepo::new(ctx);
    let relevant: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c.collection, Collection::AdvisoriesRaw | Collection::VexRaw))
        .collect();
    for chunk in relevant.chunks(CHUNK) {
        let loaded: Vec<Loaded> = chunk.par_iter().map(|ch| load(ctx, ch)).collect::<Result<_, _>>()?;
        for mut l in loaded {
            if l.collection == Collection::AdvisoriesRaw {
                osv.apply(&l)?;
                osv.add(&mut l)?;
            }
            csaf.apply(&l)?;
            vex.touch(&l);
        }
    }
    let mut files = FileCounts::default();
    let (ecosystems, f) = osv.finish()?;
    files.add(f);
    let (documents, f) = csaf.finish()?;
    files.add(f);
    let (packages, f) = vex.finish()?;
    files.add(f);
    Ok((ecosystems, packages, documents, files))
}
