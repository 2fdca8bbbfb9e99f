//! The OSV mirror: `osv/<Ecosystem>/all.zip` (one `<id>.json` per advisory, the raw bytes
//! as stored) and `osv/ecosystems.txt`, the layout of the public OSV bucket that
//! Dependency-Track's OSV mirror and `osv-scanner` download; the same zips are linked under
//! `osv-scanner/<Ecosystem>/all.zip` (the local database layout osv-scanner's offline mode
//! reads below `OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY`) and `osv-scalibr/<Ecosystem>/all.zip`
//! (the folder osv-scalibr's local matcher, used by newer osv-scanner releases, reads).
//! An advisory is in the zip of every ecosystem its `affected` packages name. Only the
//! zips of ecosystems a change touches are rewritten (merged from the previous zip), one
//! thread per zip. The compressed entries of the changes wait in memory up to
//! [`PENDING_BUDGET`], so that a delta's zips are merged at the end a few at a time (an
//! open zip holds the index of its previous version and its own); past the budget (a
//! first publish), they are applied chunk by chunk to zips kept open, so memory stays
//! bounded either way.
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

/// Document bytes of pending changes past which they are applied to open zips.
const PENDING_BUDGET: usize = 64 << 20;

/// One step of an ecosystem's merge, in key order.
enum Step {
    /// Drop the previous entry of this advisory id (copying the ones before it).
    Advance(String),
    Add(PreparedZipFile),
}

pub struct OsvWriter<'a> {
    ctx: &'a Context<'a>,
    open: BTreeMap<String, MergeWriter>,
    /// Steps not applied yet, by ecosystem, and the document bytes they hold.
    steps: BTreeMap<String, Vec<Step>>,
    pending: usize,
    /// Zips closed by [`apply_pending`], with their entries.
    finished: Vec<(String, u64)>,
}

impl<'a> OsvWriter<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Self {
        Self {
            ctx,
            open: BTreeMap::new(),
            steps: BTreeMap::new(),
            pending: 0,
            finished: Vec::new(),
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
        let size = l.new.as_ref().map_or(0, |(_, _, b)| b.len());
        for (eco, entry) in std::mem::take(&mut l.osv_entries) {
            self.pending += size;
            self.steps(&eco).push(Step::Add(entry));
        }
        Ok(())
    }

    /// At the end of a chunk: apply the pending steps once they exceed the budget.
    pub fn chunk_done(&mut self) -> Result<(), PublishError> {
        if self.pending > PENDING_BUDGET {
            let work = self.apply_pending(false)?;
            self.open
                .extend(work.into_iter().map(|(eco, w)| (eco, w.expect("opened"))));
        }
        Ok(())
    }

    /// Apply the pending steps, each zip on its own thread (a zip is opened, merged from
    /// the previous version's, when first touched); with `close`, every zip is finished
    /// (its entries counted) and none stays open. Returns the zips with their writer, or
    /// with their entry count when closed.
    fn apply_pending(&mut self, close: bool) -> Result<Vec<(String, Option<MergeWriter>)>, PublishError> {
        let ctx = self.ctx;
        self.pending = 0;
        let mut ecos: Vec<String> = self.steps.keys().cloned().collect();
        if close {
            ecos.extend(self.open.keys().cloned());
            ecos.sort();
            ecos.dedup();
        }
        let work: Vec<(String, Option<MergeWriter>, Vec<Step>)> = ecos
            .into_iter()
            .map(|eco| {
                (
                    eco.clone(),
                    self.open.remove(&eco),
                    self.steps.remove(&eco).unwrap_or_default(),
                )
            })
            .collect();
        let done = work
            .into_par_iter()
            .map(|(eco, w, steps)| {
                let mut w = match w {
                    Some(w) => w,
                    None => {
                        let rel = zip_path(&eco);
                        let prev = ctx.prev.map(|p| p.dir.join(&rel));
                        MergeWriter::create(&ctx.out.join(&rel), prev.as_deref(), entry_key)?
                    }
                };
                for step in steps {
                    match step {
                        Step::Advance(id) => w.advance(&id)?,
                        Step::Add(entry) => w.add(entry)?,
                    }
                }
                if close {
                    let n = w.finish()?;
                    return Ok::<_, PublishError>((eco, None, n));
                }
                Ok((eco, Some(w), 0))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.finished
            .extend(done.iter().filter(|d| d.1.is_none()).map(|d| (d.0.clone(), d.2)));
        Ok(done.into_iter().filter(|d| d.1.is_some()).map(|d| (d.0, d.1)).collect())
    }

    /// Close the rewritten zips, link the untouched ones, write `ecosystems.txt` and the
    /// scanner folders. Returns advisories per ecosystem.
    pub fn finish(mut self) -> Result<(BTreeMap<String, u64>, FileCounts), PublishError> {
        self.apply_pending(true)?;
        let ctx = self.ctx;
        let mut files = FileCounts::default();
        let mut counts = BTreeMap::new();
        let rewritten: Vec<String> = self.finished.iter().map(|(e, _)| e.clone()).collect();
        for (eco, n) in std::mem::take(&mut self.finished) {
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
