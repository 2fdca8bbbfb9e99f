//! The OSV mirror: `osv/<Ecosystem>/all.zip` (one `<id>.json` per advisory, the raw bytes
//! as stored) and `osv/ecosystems.txt`, the layout of the public OSV bucket that
//! Dependency-Track's OSV mirror and `osv-scanner` download; the same zips are linked under
//! `osv-scanner/<Ecosystem>/all.zip` (the local database layout osv-scanner's offline mode
//! reads below `OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY`) and `osv-scalibr/<Ecosystem>/all.zip`
//! (the folder osv-scalibr's local matcher, used by newer osv-scanner releases, reads).
//! An advisory is in the zip of every ecosystem its `affected` packages name. Only the
//! zips of ecosystems a change touches are rewritten (merged from the previous zip), each
//! on its own thread once every change is known.
use std::collections::BTreeMap;

use rayon::prelude::*;
use zip::PreparedZipFile;

use super::docs::{Context, DocKind, Loaded};
use super::zipfile::MergeWriter;
use super::{link_prev, write_file, FileCounts, PublishError};
use crate::bundle::layout::{safe_name, unsafe_name};

/// Folders that hold the same `<Ecosystem>/all.zip` files as `osv/`.
pub const SCANNER_DIRS: [&str; 2] = ["osv-scanner", "osv-scalibr"];

/// The zip entry of an advisory: `<id>.json`, with unsafe bytes `%XX`-escaped.
pub fn entry_name(id: &str) -> String {
    format!("{}.json", safe_name(id))
}

fn entry_key(name: &str) -> Option<String> {
    unsafe_name(name.strip_suffix(".json")?)
}

pub fn zip_path(eco: &str) -> String {
    format!("osv/{eco}/all.zip")
}

/// One step of an ecosystem's merge, in key order.
enum Step {
    /// Drop the previous entry of this advisory id (copying the ones before it).
    Advance(String),
    Add(PreparedZipFile),
}

pub struct OsvWriter<'a> {
    ctx: &'a Context<'a>,
    steps: BTreeMap<String, Vec<Step>>,
}

impl<'a> OsvWriter<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Self {
        Self {
            ctx,
            steps: BTreeMap::new(),
        }
    }

    fn steps(&mut self, eco: &str) -> &mut Vec<Step> {
        self.steps.entry(eco.to_string()).or_default()
    }

    /// Apply one changed advisory (changes come in id order).
    pub fn apply(&mut self, l: &Loaded) -> Result<(), PublishError> {
        let mut touched: Vec<&str> = Vec::new();
        if let Some((_, DocKind::Osv(ecos))) = &l.old {
            touched.extend(ecos.iter().map(String::as_str));
        }
        if let Some((_, DocKind::Osv(ecos), _)) = &l.new {
            touched.extend(ecos.iter().map(String::as_str));
        }
        touched.sort();
        touched.dedup();
        for eco in touched {
            self.steps(eco).push(Step::Advance(l.id.clone()));
        }
        Ok(())
    }

    /// Add the compressed entries of a changed advisory (after [`apply`]).
    pub fn add(&mut self, l: &mut Loaded) -> Result<(), PublishError> {
        for (eco, entry) in std::mem::take(&mut l.osv_entries) {
            self.steps(&eco).push(Step::Add(entry));
        }
        Ok(())
    }

    /// Merge one ecosystem's zip with its steps; returns its entries.
    fn merge(ctx: &Context<'_>, eco: &str, steps: Vec<Step>) -> Result<u64, PublishError> {
        let rel = zip_path(eco);
        let prev = ctx.prev.map(|p| p.dir.join(&rel));
        let mut w = MergeWriter::create(&ctx.out.join(&rel), prev.as_deref(), entry_key)?;
        for step in steps {
            match step {
                Step::Advance(id) => w.advance(&id)?,
                Step::Add(entry) => w.add(entry)?,
            }
        }
        w.finish()
    }

    /// Close the rewritten zips, link the untouched ones, write `ecosystems.txt` and the
    /// scanner folders. Returns advisories per ecosystem.
    pub fn finish(self) -> Result<(BTreeMap<String, u64>, FileCounts), PublishError> {
        let ctx = self.ctx;
        let mut files = FileCounts::default();
        let mut counts = BTreeMap::new();
        let rewritten: Vec<String> = self.steps.keys().cloned().collect();
        let merged: Vec<(String, u64)> = self
            .steps
            .into_par_iter()
            .map(|(eco, steps)| Ok::<_, PublishError>((eco.clone(), Self::merge(ctx, &eco, steps)?)))
            .collect::<Result<_, _>>()?;
        for (eco, n) in merged {
            if n > 0 {
                counts.insert(eco, n);
                files.written += 1;
            }
        }
        if let Some(prev) = ctx.prev {
            for (eco, n) in &prev.published.osv_ecosystems {
                if !rewritten.contains(eco) && prev.dir.join(zip_path(eco)).exists() {
                    link_prev(&prev.dir, ctx.out, &zip_path(eco))?;
                    counts.insert(eco.clone(), *n);
                    files.linked += 1;
                }
            }
        }
        for eco in counts.keys() {
            for dir in SCANNER_DIRS {
                let rel = format!("{dir}/{eco}/all.zip");
                let to = ctx.out.join(&rel);
                std::fs::create_dir_all(to.parent().expect("has a parent")).map_err(|e| PublishError::io(&to, e))?;
                std::fs::hard_link(ctx.out.join(zip_path(eco)), &to).map_err(|e| PublishError::io(&to, e))?;
                files.linked += 1;
            }
        }
        let list: String = counts.keys().map(|e| format!("{e}\n")).collect();
        write_file(ctx.out, "osv/ecosystems.txt", list.as_bytes())?;
        files.written += 1;
        Ok((counts, files))
    }
}
