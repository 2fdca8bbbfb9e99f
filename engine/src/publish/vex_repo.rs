//! The VEX repository (aquasecurity/vex-repo-spec v0.1), which `trivy --vex repo` reads:
//! `.well-known/vex-repository.json` (the manifest) names `vex/vex-repository.zip`, whose
//! `index.json` maps each package (purl without version) to `pkg/<purl path>/vex.json`.
//! A package's document is the raw OpenVEX document whose subject it is; when several
//! documents share a subject, their statements are combined into one OpenVEX document
//! (each statement keeping its own or its document's timestamp). Subjects that are not
//! plain purls (`vex-document:…`, qualifiers) are not in the repository, nor are OpenVEX
//! 0.0.x documents; CSAF VEX is in the CSAF provider tree instead. Only the packages a change touches are rewritten.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::docs::{classify, Context, DocKind, Loaded};
use super::zipfile::{prepare, MergeWriter};
use super::{link_prev, write_file, FileCounts, PublishError};
use crate::model::{shard_of, Collection};
use crate::store::ObjectKey;

pub const MANIFEST: &str = ".well-known/vex-repository.json";
pub const ARCHIVE: &str = "vex/vex-repository.zip";
const LISTING: &str = ".publish/vex.json";

/// The repository's package id for a subject: the subject itself when it is a purl
/// without version, qualifiers or subpath.
fn package_id(subject: &str) -> Option<&str> {
    let ok = subject.starts_with("pkg:") && !subject.contains(['@', '?', '#']) && subject[4..].contains('/');
    ok.then_some(subject)
}

/// `pkg/<type>/<namespace…>/<name>/vex.json`; bytes outside `[A-Za-z0-9._-]` become `_`,
/// and a location that needed replacing gets a hash of the purl so it stays unique.
fn location(purl: &str) -> String {
    let mut replaced = false;
    let segs: Vec<String> = purl[4..]
        .split('/')
        .map(|s| {
            let clean: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if clean != s || clean.chars().all(|c| c == '.') {
                replaced = true;
                clean.replace('.', "_")
            } else {
                clean
            }
        })
        .collect();
    let mut path = segs.join("/");
    if replaced {
        path.push_str(&format!("-{}", &blake3::hash(purl.as_bytes()).to_hex()[..12]));
    }
    format!("pkg/{path}/vex.json")
}

fn entry_key(name: &str) -> Option<String> {
    Some(name.to_string())
}

pub struct VexRepo<'a> {
    ctx: &'a Context<'a>,
    /// Package id → location, as published.
    packages: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
}

impl<'a> VexRepo<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Self {
        let packages = ctx
            .prev
            .and_then(|p| std::fs::read(p.dir.join(LISTING)).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            ctx,
            packages,
            dirty: BTreeSet::new(),
        }
    }

    pub fn touch(&mut self, l: &Loaded) {
        if l.collection != Collection::VexRaw {
            return;
        }
        if let Some((subject, DocKind::OpenVex)) = &l.old {
            self.dirty.extend(package_id(subject).map(String::from));
        }
        if let Some((subject, DocKind::OpenVex, _)) = &l.new {
            self.dirty.extend(package_id(subject).map(String::from));
        }
    }

    /// The current OpenVEX documents of a subject, in id order.
    fn documents(&self, subject: &str) -> Result<Vec<Vec<u8>>, PublishError> {
        let store = self.ctx.store;
        let c = Collection::VexRaw;
        let shard = shard_of(subject);
        let kind = store.kind_node(self.ctx.state.kind(c))?;
        let node = store.shard_node(shard, &kind.shards[shard as usize])?;
        let Some(s) = node.subjects.iter().find(|s| s.subject == subject) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for leaf in store.subject_node(&s.root)?.leaves {
            let bytes = store.object_required(&ObjectKey::new(c, subject, &leaf.object))?;
            if matches!(classify(c, &leaf.id, &bytes)?, DocKind::OpenVex) {
                out.push(bytes);
            }
        }
        Ok(out)
    }

    /// Rewrite the archive (merged from the previous one) and the manifest. Returns the
    /// number of packages.
    pub fn finish(mut self) -> Result<(usize, FileCounts), PublishError> {
        let ctx = self.ctx;
        let mut files = FileCounts::default();
        let prev_archive = ctx.prev.map(|p| p.dir.join(ARCHIVE)).filter(|p| p.exists());
        if self.dirty.is_empty() && prev_archive.is_some() {
            let prev = ctx.prev.expect("an archive implies a previous version");
            for rel in [ARCHIVE, MANIFEST, LISTING] {
                link_prev(&prev.dir, ctx.out, rel)?;
            }
            files.linked += 3;
            return Ok((self.packages.len(), files));
        }
        let mut replace: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for purl in std::mem::take(&mut self.dirty) {
            let docs = self.documents(&purl)?;
            let loc = location(&purl);
            if docs.is_empty() {
                self.packages.remove(&purl);
                replace.insert(loc, None);
            } else {
                replace.insert(loc.clone(), Some(combine(&purl, docs)?));
                self.packages.insert(purl, loc);
            }
        }
        write_file(ctx.out, LISTING, &serde_json::to_vec(&self.packages).expect("json"))?;
        files.written += 1;
        if self.packages.is_empty() {
            return Ok((0, files));
        }
        replace.insert("index.json".into(), Some(index(ctx.updated_at, &self.packages)));
        let out = ctx.out.join(ARCHIVE);
        let mut w = MergeWriter::create(&out, prev_archive.as_deref(), entry_key)?;
        for (name, bytes) in &replace {
            w.advance(name)?;
            if let Some(b) = bytes {
                w.add(prepare(name, b, &out)?)?;
            }
        }
        w.finish()?;
        write_file(ctx.out, MANIFEST, &manifest(ctx))?;
        files.written += 2;
        Ok((self.packages.len(), files))
    }
}

fn index(updated_at: &str, packages: &BTreeMap<String, String>) -> Vec<u8> {
    let list: Vec<Value> = packages
        .iter()
        .map(|(id, loc)| json!({"id": id, "location": loc, "format": "openvex"}))
        .collect();
    let mut b = serde_json::to_vec_pretty(&json!({"updated_at": updated_at, "packages": list})).expect("json");
    b.push(b'\n');
    b
}

fn manifest(ctx: &Context<'_>) -> Vec<u8> {
    let m = json!({
        "name": format!("stellamirror {}", ctx.tenant),
        "description": format!("VEX documents mirrored by stellamirror for tenant {}", ctx.tenant),
        "versions": {"v0": {
            "spec_version": "v0.1",
            "locations": [{"url": format!("{}/{ARCHIVE}", ctx.base_url)}],
            "update_interval": "1h",
        }},
        "latest_version": "v0",
    });
    let mut b = serde_json::to_vec_pretty(&m).expect("json");
    b.push(b'\n');
    b
}

/// One document as received, or the statements of several in one OpenVEX document.
fn combine(purl: &str, mut docs: Vec<Vec<u8>>) -> Result<Vec<u8>, PublishError> {
    if docs.len() == 1 {
        return Ok(docs.pop().expect("one"));
    }
    let bad = |source| PublishError::Document {
        collection: Collection::VexRaw.name(),
        id: purl.to_string(),
        source,
    };
    let mut statements = Vec::new();
    let (mut authors, mut latest, mut context) = (Vec::<String>::new(), String::new(), Value::Null);
    for d in &docs {
        let v: Value = serde_json::from_slice(d).map_err(bad)?;
        let ts = v["timestamp"].as_str().unwrap_or_default().to_string();
        if context.is_null() {
            context = v["@context"].clone();
        }
        if let Some(a) = v["author"].as_str().filter(|a| !authors.iter().any(|x| x == a)) {
            authors.push(a.to_string());
        }
        for mut st in v["statements"].as_array().cloned().unwrap_or_default() {
            if st.get("timestamp").is_none() && !ts.is_empty() {
                st["timestamp"] = Value::String(ts.clone());
            }
            // Documents that repeat a statement would make the combined one invalid
            // (`statements` items are unique).
            if !statements.contains(&st) {
                statements.push(st);
            }
        }
        latest = latest.max(ts);
    }
    let doc = json!({
        "@context": context,
        "@id": format!("urn:stellamirror:vex:{purl}"),
        "author": authors.join(", "),
        "timestamp": latest,
        "version": 1,
        "statements": statements,
    });
    Ok(serde_json::to_vec(&doc).expect("json"))
}
