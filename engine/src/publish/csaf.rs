//! The CSAF 2.0 provider layout (CSAF 2.0 §7.1: requirements 7–14) for the CSAF documents
//! the store holds (advisories and VEX), as received:
//! `.well-known/csaf/provider-metadata.json`, and per TLP label
//! `.well-known/csaf/<tlp>/<year>/<file>.json` with `.sha256` and `.sha512`, `index.txt`
//! and `changes.csv` (newest first). `<tlp>` is the lower-cased
//! `document.distribution.tlp.label` (`unlabeled` without one), `<year>` the year of
//! `tracking.initial_release_date`, `<file>` the tracking id lower-cased with every byte
//! outside `[+-a-z0-9]` replaced by `_` (§5.1). Documents are mirrored whatever their TLP
//! label: the operator decides who may reach the gateway.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256, Sha512};

use super::docs::{Context, DocKind, Loaded};
use super::{link_prev, write_file, FileCounts, PublishError, SIDECAR};

const ROOT: &str = ".well-known/csaf";
const LISTING: &str = ".publish/csaf.json";

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CsafHead {
    #[serde(default)]
    pub csaf_version: Option<String>,
    #[serde(default)]
    pub tracking: Option<Tracking>,
    #[serde(default)]
    pub distribution: Option<Distribution>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Tracking {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub initial_release_date: Option<String>,
    #[serde(default)]
    pub current_release_date: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Distribution {
    #[serde(default)]
    pub tlp: Option<Tlp>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Tlp {
    #[serde(default)]
    pub label: Option<String>,
}

/// One published document: `<tlp>/<year>/<file>` below [`ROOT`] and its release time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub tlp: String,
    pub path: String,
    pub released: String,
}

impl Entry {
    fn of(h: &CsafHead, record_id: &str) -> Self {
        let t = h.tracking.clone().unwrap_or_default();
        let tlp = h
            .distribution
            .as_ref()
            .and_then(|d| d.tlp.as_ref()?.label.clone())
            .map(|l| l.to_ascii_lowercase())
            .filter(|l| l.bytes().all(|b| b.is_ascii_lowercase()) && !l.is_empty())
            .unwrap_or_else(|| "unlabeled".into());
        let year: String = t
            .initial_release_date
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(4)
            .collect();
        let year = if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) {
            year
        } else {
            "0000".into()
        };
        let id = t.id.as_deref().unwrap_or(record_id);
        let file: String = id
            .to_ascii_lowercase()
            .bytes()
            .map(|b| {
                if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-' {
                    b as char
                } else {
                    '_'
                }
            })
            .collect();
        Entry {
            path: format!("{year}/{file}.json"),
            tlp,
            released: t.current_release_date.unwrap_or_default(),
        }
    }
    fn rel(&self, suffix: &str) -> String {
        format!("{ROOT}/{}/{}{suffix}", self.tlp, self.path)
    }
}

pub struct CsafWriter<'a> {
    ctx: &'a Context<'a>,
    /// `<collection>/<record id>` → entry.
    entries: BTreeMap<String, Entry>,
    touched: BTreeSet<String>,
    files: FileCounts,
}

impl<'a> CsafWriter<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Self {
        let entries = ctx
            .prev
            .and_then(|p| std::fs::read(p.dir.join(LISTING)).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            ctx,
            entries,
            touched: BTreeSet::new(),
            files: FileCounts::default(),
        }
    }

    pub fn apply(&mut self, l: &Loaded) -> Result<(), PublishError> {
        let was = matches!(l.old, Some((_, DocKind::Csaf(_))));
        let is = matches!(l.new, Some((_, DocKind::Csaf(_), _)));
        if !was && !is {
            return Ok(());
        }
        let key = format!("{}/{}", l.collection.name(), l.id);
        self.entries.remove(&key);
        self.touched.insert(key.clone());
        if let Some((_, DocKind::Csaf(h), bytes)) = &l.new {
            let e = Entry::of(h, &l.id);
            write_file(self.ctx.out, &e.rel(""), bytes)?;
            let name = e.path.rsplit('/').next().unwrap_or_default().to_string();
            let sha256 = format!("{}  {name}\n", hex::encode(Sha256::digest(bytes)));
            let sha512 = format!("{}  {name}\n", hex::encode(Sha512::digest(bytes)));
            write_file(self.ctx.out, &e.rel(".sha256"), sha256.as_bytes())?;
            write_file(self.ctx.out, &e.rel(".sha512"), sha512.as_bytes())?;
            self.files.written += 3;
            self.entries.insert(key, e);
        }
        Ok(())
    }

    /// Link the untouched documents, write the listings and the provider metadata.
    pub fn finish(mut self) -> Result<(usize, FileCounts), PublishError> {
        let ctx = self.ctx;
        if let Some(prev) = ctx.prev {
            for (key, e) in &self.entries {
                if !self.touched.contains(key) {
                    for suffix in ["", ".sha256", ".sha512"] {
                        link_prev(&prev.dir, ctx.out, &e.rel(suffix))?;
                        self.files.linked += 1;
                    }
                }
            }
        }
        let mut listings = Vec::new();
        let mut by_tlp: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in self.entries.values() {
            by_tlp.entry(e.tlp.as_str()).or_default().push(e);
        }
        for (tlp, list) in &mut by_tlp {
            list.sort_by(|a, b| a.path.cmp(&b.path));
            let index: String = list.iter().map(|e| format!("{}\n", e.path)).collect();
            list.sort_by(|a, b| b.released.cmp(&a.released).then(a.path.cmp(&b.path)));
            let changes: String = list
                .iter()
                .map(|e| format!("\"{}\",\"{}\"\n", e.path, e.released))
                .collect();
            listings.push((format!("{ROOT}/{tlp}/index.txt"), index));
            listings.push((format!("{ROOT}/{tlp}/changes.csv"), changes));
        }
        let tlps: Vec<String> = by_tlp.keys().map(|t| t.to_string()).collect();
        for (rel, body) in listings {
            self.write_or_link(&rel, body.as_bytes())?;
        }
        write_file(
            ctx.out,
            &format!("{ROOT}/provider-metadata.json"),
            &provider_metadata(ctx, &tlps),
        )?;
        self.files.written += 1;
        let listing = serde_json::to_vec(&self.entries).expect("entries serialize");
        debug_assert!(LISTING.starts_with(SIDECAR));
        self.write_or_link(LISTING, &listing)?;
        Ok((self.entries.len(), self.files))
    }

    /// Listings are functions of the entries alone: when no document changed, the
    /// previous version's are linked.
    fn write_or_link(&mut self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        match self
            .ctx
            .prev
            .filter(|p| self.touched.is_empty() && p.dir.join(rel).is_file())
        {
            Some(prev) => {
                link_prev(&prev.dir, self.ctx.out, rel)?;
                self.files.linked += 1;
            }
            None => {
                write_file(self.ctx.out, rel, bytes)?;
                self.files.written += 1;
            }
        }
        Ok(())
    }
}

fn provider_metadata(ctx: &Context<'_>, tlps: &[String]) -> Vec<u8> {
    let base = ctx.base_url;
    let mut m = json!({
        "canonical_url": format!("{base}/{ROOT}/provider-metadata.json"),
        "last_updated": ctx.updated_at,
        "list_on_CSAF_aggregators": false,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": false,
        "publisher": {
            "category": "other",
            "name": format!("stellamirror mirror of tenant {}", ctx.tenant),
            "namespace": base,
        },
        "role": "csaf_provider",
    });
    if !tlps.is_empty() {
        m["distributions"] = tlps
            .iter()
            .map(|t| json!({"directory_url": format!("{base}/{ROOT}/{t}")}))
            .collect();
    }
    let mut b = serde_json::to_vec_pretty(&m).expect("json");
    b.push(b'\n');
    b
}
