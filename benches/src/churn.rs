//! The churn step: generation g+1 of a dataset from generation g.
//!
//! `total` records of each kind are touched (a fraction of the kind's count, or for advisories
//! an absolute number); they split into changed / added / removed by the given shares, rounded
//! per share. The advisory churn fraction (total / advisories) is applied to VEX statements,
//! SBOMs and policy evaluations, so every kind moves at the same rate.
//!
//! Invariants:
//! * the output is a pure function of (previous dataset, churn seed, parameters);
//! * unchanged records are byte-identical to the previous generation (JSONL lines copied
//!   verbatim, files hard-linked), changed records always differ (their timestamp moves to
//!   this generation's hour, later than any earlier one);
//! * `churn.json` states the exact counts and ids that differ from the previous generation.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::evidence::{self, Evaluation, Sbom, VexDoc};
use crate::fsio::{self, FileSink};
use crate::generate::{self as g, Bytes, Counts, Manifest};
use crate::osv::{self, Advisory, IdOnly};
use crate::rng::{hash64, sample_distinct, stream, Rng};
use crate::{Context, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Fraction of the previous advisory count, e.g. 0.01.
    Fraction(f64),
    /// Absolute number of advisories touched (the scaling table's fixed churn).
    Records(u64),
}

#[derive(Clone, Debug)]
pub struct Params {
    pub amount: Amount,
    pub changed: f64,
    pub added: f64,
    pub removed: f64,
    /// Seed of the churn draws; the universe seed always comes from the previous dataset.
    pub seed: Option<u64>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            amount: Amount::Fraction(0.01),
            changed: 0.7,
            added: 0.2,
            removed: 0.1,
            seed: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KindChurn {
    pub before: u64,
    pub after: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub added_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub changed_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub removed_ids: Vec<String>,
}

/// `churn.json`. Ids: advisory ids; SBOM subject folder names; VEX document file names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub generation: u64,
    pub base_generation: u64,
    pub churn_seed: u64,
    pub total_advisories_touched: u64,
    pub fraction: f64,
    pub shares: [f64; 3],
    pub advisories: KindChurn,
    /// Statement counts; ids are the documents that differ.
    pub vex_statements: KindChurn,
    pub sboms: KindChurn,
    pub policy_evaluations: KindChurn,
}

/// Splits `total` by the shares (each rounded on its own), as (changed, added, removed).
pub fn split(total: u64, p: &Params) -> (u64, u64, u64) {
    let r = |share: f64| (total as f64 * share).round() as u64;
    (r(p.changed), r(p.added), r(p.removed))
}

/// Chooses which of `n` items change and which are removed: index -> true if changed.
fn choose(rng: &mut Rng, n: u64, changed: u64, removed: u64) -> Result<HashMap<u64, bool>> {
    if changed + removed > n {
        return Err(Error(format!(
            "cannot change {changed} and remove {removed} of {n} records"
        )));
    }
    let picks = sample_distinct(rng, n, changed + removed);
    Ok(picks
        .into_iter()
        .enumerate()
        .map(|(i, x)| (x, (i as u64) < changed))
        .collect())
}

/// The id of an advisory line without a full parse: lines written by `osv` start with the
/// fixed schema prefix; anything else falls back to serde.
fn line_id(line: &[u8]) -> Result<String> {
    const PREFIX: &[u8] = b"{\"schema_version\":\"1.6.0\",\"id\":\"";
    if let Some(rest) = line.strip_prefix(PREFIX) {
        if let Some(end) = rest.iter().position(|b| *b == b'"') {
            if let Ok(s) = std::str::from_utf8(&rest[..end]) {
                return Ok(s.to_string());
            }
        }
    }
    Ok(serde_json::from_slice::<IdOnly>(line)?.id)
}

/// Per VEX document: (product id, its subcomponent purls), for new policy evaluations.
type DocIndex = Vec<(String, Vec<String>)>;

/// A vulnerability that new VEX statements and evaluations can name: (name, aliases).
type Vuln = (String, Vec<String>);

fn vuln_of(adv: &Advisory) -> Vuln {
    match adv.aliases.iter().find(|a| a.starts_with("CVE-")) {
        Some(cve) => (cve.clone(), vec![adv.id.clone()]),
        None => (adv.id.clone(), Vec::new()),
    }
}

/// Runs one churn step from `prev` into `out`.
pub fn churn(prev: &Path, out: &Path, p: &Params) -> Result<(Manifest, Report)> {
    let base = Manifest::read(prev)?;
    let seed = base.seed;
    let cseed = p.seed.unwrap_or(seed);
    let gen = base.generation + 1;
    let n = base.counts.advisories;
    let total = match p.amount {
        Amount::Fraction(f) => (n as f64 * f).round() as u64,
        Amount::Records(k) => k,
    };
    let frac = if n == 0 { 0.0 } else { total as f64 / n as f64 };
    let (nc, na, nr) = split(total, p);
    let mut rng = Rng::new(cseed, stream::CHURN, gen);
    let role = choose(&mut rng, n, nc, nr)?;
    g::prepare_dir(out)?;
    let sink = FileSink::new();
    let t_gen = |off: u64| catalog::generation_time(gen, off);

    // ---- advisories: stream the previous JSONL, copying untouched lines verbatim.
    let mut adv = KindChurn {
        before: n,
        ..KindChurn::default()
    };
    let mut pool: Vec<Vuln> = Vec::new();
    let mut jsonl = BufWriter::with_capacity(1 << 20, fs::File::create(out.join(g::ADVISORIES))?);
    let src = prev.join(g::ADVISORIES);
    let mut reader = BufReader::with_capacity(
        1 << 20,
        fs::File::open(&src).ctx(|| format!("opening {}", src.display()))?,
    );
    let mut line = Vec::with_capacity(4096);
    let mut i = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        match role.get(&i) {
            Some(false) => adv.removed_ids.push(line_id(&line)?),
            Some(true) => {
                let mut a: Advisory =
                    serde_json::from_slice(&line).ctx(|| format!("{} line {}", src.display(), i + 1))?;
                osv::edit(cseed, gen, hash64(a.id.as_bytes()), &mut a);
                pool.push(vuln_of(&a));
                g::emit_advisory(&mut jsonl, &a)?;
                adv.changed_ids.push(a.id);
            }
            None => {
                jsonl.write_all(&line)?;
            }
        }
        i += 1;
    }
    if i != n {
        return Err(Error(format!("{} has {i} lines, gen.json says {n}", src.display())));
    }
    let mut space = base.package_space;
    let mut new_pool = Vec::new();
    for j in 0..na {
        let serial = base.next_serial + j;
        // 5% of new advisories are about a package never seen before.
        let pkg = if rng.chance(0.05) {
            space += 1;
            space - 1
        } else {
            catalog::assign_package(seed, serial, base.package_space)
        };
        let primary = catalog::package(seed, pkg);
        let second = g::second_package(seed, serial, base.package_space, pkg).map(|q| catalog::package(seed, q));
        let mut a = osv::generate(seed, serial, &primary, second.as_ref());
        let at = catalog::rfc3339(t_gen(rng.next_u64()));
        a.published = at.clone();
        a.modified = at.clone();
        if a.database_specific.nvd_published_at.is_some() {
            a.database_specific.nvd_published_at = Some(at);
        }
        new_pool.push(vuln_of(&a));
        g::emit_advisory(&mut jsonl, &a)?;
        adv.added_ids.push(a.id);
    }
    jsonl.flush()?;
    // New advisories are what new statements mostly talk about; revised ones come next.
    new_pool.extend(pool);
    let pool = new_pool;
    adv.added = na;
    adv.changed = nc;
    adv.removed = nr;
    adv.after = n - nr + na;

    let (vex, docs) = churn_vex(prev, out, &sink, &mut rng, frac, p, &pool, gen)?;
    let (sboms, components_delta, next_subject) = churn_sboms(prev, out, &sink, &mut rng, frac, p, &base, gen)?;
    let policy = churn_policy(prev, out, &mut rng, frac, p, &pool, &docs, gen)?;
    sink.finish()?;

    let mut report = Report {
        generation: gen,
        base_generation: base.generation,
        churn_seed: cseed,
        total_advisories_touched: total,
        fraction: frac,
        shares: [p.changed, p.added, p.removed],
        advisories: adv,
        vex_statements: vex,
        sboms,
        policy_evaluations: policy,
    };
    for k in [&mut report.advisories, &mut report.vex_statements, &mut report.sboms] {
        k.added_ids.sort();
        k.changed_ids.sort();
        k.removed_ids.sort();
    }
    fsio::write_atomic(&out.join(g::CHURN), &g::json_pretty(&report)?)?;
    let manifest = Manifest {
        generator: g::GENERATOR.into(),
        seed,
        generation: gen,
        counts: Counts {
            advisories: report.advisories.after,
            packages: None,
            vex_documents: base.counts.vex_documents,
            vex_statements: report.vex_statements.after,
            sboms: report.sboms.after,
            sbom_components: (base.counts.sbom_components as i64 + components_delta) as u64,
            policy_evaluations: report.policy_evaluations.after,
        },
        bytes: Bytes::measure(out)?,
        next_serial: base.next_serial + na,
        package_space: space,
        next_subject,
        complete: true,
    };
    manifest.write(out)?;
    Ok((manifest, report))
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// VEX: statements change status, disappear, or are added (about new/revised advisories) to
/// random documents; a touched document gets `version + 1` and this generation's timestamp.
/// Returns the counts and, per document, (product id, subcomponent purls) for policy churn.
#[allow(clippy::too_many_arguments)]
fn churn_vex(
    prev: &Path,
    out: &Path,
    sink: &FileSink,
    rng: &mut Rng,
    frac: f64,
    p: &Params,
    pool: &[Vuln],
    gen: u64,
) -> Result<(KindChurn, DocIndex)> {
    let paths = files_in(&prev.join(g::VEX_DIR))?;
    let mut docs: Vec<VexDoc> = Vec::with_capacity(paths.len());
    for path in &paths {
        let bytes = fs::read(path).ctx(|| format!("reading {}", path.display()))?;
        docs.push(serde_json::from_slice(&bytes).ctx(|| format!("parsing {}", path.display()))?);
    }
    let before: u64 = docs.iter().map(|d| d.statements.len() as u64).sum();
    let (nc, na, nr) = split((before as f64 * frac).round() as u64, p);
    let role = choose(rng, before, nc, nr)?;
    let mut touched = vec![false; docs.len()];
    let mut removed = 0;
    let mut gi = 0u64;
    for (di, doc) in docs.iter_mut().enumerate() {
        let mut keep = Vec::with_capacity(doc.statements.len());
        for mut st in std::mem::take(&mut doc.statements) {
            match role.get(&gi) {
                Some(false) => {
                    removed += 1;
                    touched[di] = true;
                }
                Some(true) => {
                    let mut status = st.status.clone();
                    while status == st.status {
                        status = evidence::random_status(rng).to_string();
                    }
                    evidence::set_status(rng, &mut st, &status);
                    st.timestamp = catalog::rfc3339(catalog::generation_time(gen, rng.next_u64()));
                    touched[di] = true;
                    keep.push(st);
                }
                None => keep.push(st),
            }
            gi += 1;
        }
        doc.statements = keep;
    }
    let mut added = 0;
    if !pool.is_empty() && !docs.is_empty() {
        for j in 0..na {
            let di = rng.below(docs.len() as u64) as usize;
            let (name, aliases) = &pool[j as usize % pool.len()];
            let doc = &mut docs[di];
            let product = doc.statements.first().map(|s| s.products[0].id.clone());
            let subs: Vec<String> = doc
                .statements
                .iter()
                .flat_map(|s| s.products[0].subcomponents.iter().map(|c| c.id.clone()))
                .collect();
            let (Some(product), false) = (product, subs.is_empty()) else {
                continue;
            };
            let sub = rng.pick(&subs).clone();
            let exists = doc
                .statements
                .iter()
                .any(|s| s.vulnerability.name == *name && s.products[0].subcomponents.iter().any(|c| c.id == sub));
            if exists {
                continue;
            }
            let ident = catalog::Identity {
                id: aliases.first().cloned().unwrap_or_else(|| name.clone()),
                cve: (!aliases.is_empty()).then(|| name.clone()),
                ghsa_alias: None,
                published: 0,
            };
            let at = catalog::generation_time(gen, rng.next_u64());
            doc.statements
                .push(evidence::statement(rng, &product, &sub, &ident, at));
            touched[di] = true;
            added += 1;
        }
    }
    let mut kc = KindChurn {
        before,
        changed: nc,
        removed,
        added,
        after: before - removed + added,
        ..KindChurn::default()
    };
    let mut index = Vec::with_capacity(docs.len());
    for ((path, doc), t) in paths.iter().zip(docs.iter_mut()).zip(&touched) {
        let target = out.join(g::VEX_DIR).join(path.file_name().unwrap_or_default());
        if *t {
            doc.version += 1;
            doc.timestamp = catalog::rfc3339(catalog::generation_time(gen, 0));
            sink.write(target, g::json_pretty(doc)?)?;
            kc.changed_ids.push(file_name(path));
        } else {
            sink.link(path.clone(), target)?;
        }
        let product = doc
            .statements
            .first()
            .map(|s| s.products[0].id.clone())
            .unwrap_or_default();
        let subs = doc
            .statements
            .iter()
            .flat_map(|s| s.products[0].subcomponents.iter().map(|c| c.id.clone()))
            .collect::<HashSet<_>>();
        let mut subs: Vec<String> = subs.into_iter().collect();
        subs.sort();
        index.push((product, subs));
    }
    Ok((kc, index))
}

/// SBOMs: changed subjects get component upgrades, one new and one dropped component, a new
/// serial number and `version + 1`; added subjects are new; removed subjects disappear.
#[allow(clippy::too_many_arguments)]
fn churn_sboms(
    prev: &Path,
    out: &Path,
    sink: &FileSink,
    rng: &mut Rng,
    frac: f64,
    p: &Params,
    base: &Manifest,
    gen: u64,
) -> Result<(KindChurn, i64, u64)> {
    let dirs = files_in(&prev.join(g::SBOM_DIR))?;
    let before = dirs.len() as u64;
    let (nc, na, nr) = split((before as f64 * frac).round() as u64, p);
    let role = choose(rng, before, nc, nr)?;
    let mut kc = KindChurn {
        before,
        changed: nc,
        added: na,
        removed: nr,
        after: before - nr + na,
        ..KindChurn::default()
    };
    let mut delta = 0i64;
    for (i, dir) in dirs.iter().enumerate() {
        let name = file_name(dir);
        let target = out.join(g::SBOM_DIR).join(&name);
        match role.get(&(i as u64)) {
            Some(false) => {
                kc.removed_ids.push(name);
                continue;
            }
            Some(true) => {
                let src = dir.join("sbom.json");
                let mut sbom: Sbom =
                    serde_json::from_slice(&fs::read(&src)?).ctx(|| format!("parsing {}", src.display()))?;
                let before_len = sbom.components.len() as i64;
                for _ in 0..rng.range(1, 5) {
                    let c = rng.below(sbom.components.len() as u64) as usize;
                    let comp = &mut sbom.components[c];
                    comp.version = bump_patch(&comp.version);
                    let base_purl = comp.purl.rsplit_once('@').map(|x| x.0.to_string()).unwrap_or_default();
                    comp.purl = format!("{base_purl}@{}", comp.version);
                    comp.bom_ref = comp.purl.clone();
                }
                if sbom.components.len() > 1 {
                    let c = rng.below(sbom.components.len() as u64) as usize;
                    sbom.components.remove(c);
                }
                let pkg = catalog::package(base.seed, catalog::skewed_package(rng, base.package_space));
                if !sbom.components.iter().any(|c| c.name == pkg.name) {
                    let v = rng.pick(&pkg.versions).clone();
                    sbom.components.push(evidence::component(rng, &pkg, &v));
                }
                delta += sbom.components.len() as i64 - before_len;
                sbom.version += 1;
                sbom.serial_number = evidence::uuid(rng);
                sbom.metadata.timestamp = catalog::rfc3339(catalog::generation_time(gen, rng.next_u64()));
                fs::create_dir_all(&target)?;
                sink.write(target.join("sbom.json"), g::json_pretty(&sbom)?)?;
                kc.changed_ids.push(name);
            }
            None => {
                fs::create_dir_all(&target)?;
                sink.link(dir.join("sbom.json"), target.join("sbom.json"))?;
            }
        }
    }
    for s in base.next_subject..base.next_subject + na {
        let subj = evidence::subject(base.seed, s);
        let (sbom, _) = evidence::sbom(base.seed, s, &subj, base.package_space);
        delta += sbom.components.len() as i64;
        let target = out.join(g::SBOM_DIR).join(&subj.dir);
        fs::create_dir_all(&target)?;
        sink.write(target.join("sbom.json"), g::json_pretty(&sbom)?)?;
        kc.added_ids.push(subj.dir);
    }
    Ok((kc, delta, base.next_subject + na))
}

fn bump_patch(v: &str) -> String {
    match v.rsplit_once('.') {
        Some((head, last)) => match last.parse::<u64>() {
            Ok(n) => format!("{head}.{}", n + 1),
            Err(_) => format!("{v}.1"),
        },
        None => format!("{v}.1"),
    }
}

/// Policy evaluations: re-evaluated lines get another verdict and this generation's time,
/// removed lines disappear, new lines evaluate new/revised advisories for existing subjects.
#[allow(clippy::too_many_arguments)]
fn churn_policy(
    prev: &Path,
    out: &Path,
    rng: &mut Rng,
    frac: f64,
    p: &Params,
    pool: &[Vuln],
    docs: &[(String, Vec<String>)],
    gen: u64,
) -> Result<KindChurn> {
    let src = prev.join(g::POLICY_FILE);
    let text = fs::read(&src).ctx(|| format!("reading {}", src.display()))?;
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let before = lines.len() as u64;
    let (nc, na, nr) = split((before as f64 * frac).round() as u64, p);
    let role = choose(rng, before, nc, nr)?;
    let mut w = BufWriter::new(fs::File::create(out.join(g::POLICY_FILE))?);
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        match role.get(&(i as u64)) {
            Some(false) => continue,
            Some(true) => {
                let mut ev: Evaluation =
                    serde_json::from_slice(line).ctx(|| format!("{} line {}", src.display(), i + 1))?;
                let old = ev.status.clone();
                while ev.status == old {
                    evidence::set_verdict(rng, &mut ev);
                }
                ev.evaluated_at = catalog::rfc3339(catalog::generation_time(gen, rng.next_u64()));
                seen.insert((ev.subject.clone(), ev.component_purl.clone(), ev.vulnerability.clone()));
                w.write_all(&g::json_line(&ev)?)?;
            }
            None => {
                // Every kept line is indexed so an added evaluation never repeats a key.
                let ev: Evaluation =
                    serde_json::from_slice(line).ctx(|| format!("{} line {}", src.display(), i + 1))?;
                seen.insert((ev.subject, ev.component_purl, ev.vulnerability));
                w.write_all(line)?
            }
        }
    }
    let mut added = 0;
    let usable: Vec<&(String, Vec<String>)> = docs.iter().filter(|d| !d.1.is_empty()).collect();
    if !pool.is_empty() && !usable.is_empty() {
        for j in 0..na {
            let (subject, subs) = usable[rng.below(usable.len() as u64) as usize];
            let comp = rng.pick(subs);
            let vuln = &pool[j as usize % pool.len()].0;
            if !seen.insert((subject.clone(), comp.clone(), vuln.clone())) {
                continue;
            }
            let at = catalog::generation_time(gen, rng.next_u64());
            w.write_all(&g::json_line(&evidence::evaluation(rng, subject, comp, vuln, at))?)?;
            added += 1;
        }
    }
    w.flush()?;
    Ok(KindChurn {
        before,
        changed: nc,
        added,
        removed: nr,
        after: before - nr + added,
        ..KindChurn::default()
    })
}
