//! Writes a complete evidence dataset (generation 0) for `n` advisories.
//!
//! Layout of a dataset directory (the same for churned generations):
//!
//! ```text
//! advisories.jsonl                 OSV, one advisory per line, in serial order
//! vex/<subject>.openvex.json       OpenVEX v0.2.0, one document per subject
//! sboms/<subject>/sbom.json        CycloneDX 1.5, one per subject
//! policy/evaluations.jsonl         policy evaluations, one per line
//! plain/advisories/<xx>/<id>.json  each advisory as its own file (line + "\n"), for the peers
//! gen.json                         counts, bytes, seed, generation; written last
//! churn.json                       (churned generations only) exact added/changed/removed
//! ```
//!
//! Ratios, per `n` advisories: subjects (SBOMs, VEX documents) = max(1, n/1000); VEX statements
//! and policy evaluations ≈ n/10 each (per subject uniform in 0.5–1.5 × the mean, capped by the
//! advisories its components actually have); affected packages ≈ n/4.
//!
//! Invariant: the bytes of every file are a pure function of `(n, seed)`; a peer file holds
//! exactly the bytes of its JSONL line, so the peers and stellamirror process the same bytes.

use std::collections::HashSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{self, Identity};
use crate::evidence;
use crate::fsio::{self, FileSink};
use crate::osv;
use crate::rng::{hash64, stream, Rng};
use crate::{Context, Error, Result};

pub const ADVISORIES: &str = "advisories.jsonl";
pub const VEX_DIR: &str = "vex";
pub const SBOM_DIR: &str = "sboms";
pub const POLICY_FILE: &str = "policy/evaluations.jsonl";
pub const PLAIN_DIR: &str = "plain";
pub const MANIFEST: &str = "gen.json";
pub const CHURN: &str = "churn.json";
/// What the peers archive/hash: the per-record advisory files plus the other evidence as is.
pub const PEER_PATHS: [&str; 4] = [PLAIN_DIR, VEX_DIR, SBOM_DIR, "policy"];
pub const GENERATOR: &str = "smgen/1";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub advisories: u64,
    /// Distinct packages named as first `affected` entry (generation 0 only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub packages: Option<u64>,
    pub vex_documents: u64,
    pub vex_statements: u64,
    pub sboms: u64,
    pub sbom_components: u64,
    pub policy_evaluations: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Bytes {
    pub advisories: u64,
    pub vex: u64,
    pub sboms: u64,
    pub policy: u64,
}

impl Bytes {
    pub fn total(&self) -> u64 {
        self.advisories + self.vex + self.sboms + self.policy
    }

    pub fn measure(dir: &Path) -> Result<Bytes> {
        Ok(Bytes {
            advisories: fsio::tree_bytes(&dir.join(ADVISORIES))?,
            vex: fsio::tree_bytes(&dir.join(VEX_DIR))?,
            sboms: fsio::tree_bytes(&dir.join(SBOM_DIR))?,
            policy: fsio::tree_bytes(&dir.join(POLICY_FILE))?,
        })
    }
}

/// `gen.json`: what a dataset directory holds and what the next churn step continues from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub generator: String,
    /// Seed of the universe (packages, identities, subjects); kept across generations.
    pub seed: u64,
    pub generation: u64,
    pub counts: Counts,
    pub bytes: Bytes,
    /// First advisory serial not used yet (serials are never reused, so ids never repeat).
    pub next_serial: u64,
    pub package_space: u64,
    pub next_subject: u64,
    pub complete: bool,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest> {
        let p = dir.join(MANIFEST);
        let bytes = fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
        let m: Manifest =
            serde_json::from_slice(&bytes).ctx(|| format!("parsing {}", p.display()))?;
        if !m.complete {
            return Err(Error(format!(
                "{} is not a complete dataset",
                dir.display()
            )));
        }
        Ok(m)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        fsio::write_atomic(&dir.join(MANIFEST), &bytes)
    }
}

/// Where an advisory's own file lives: 256 shard folders keep directories small at 5M files.
pub fn plain_path(dir: &Path, id: &str) -> PathBuf {
    let shard = format!("{:02x}", hash64(id.as_bytes()) & 0xff);
    dir.join(PLAIN_DIR)
        .join("advisories")
        .join(shard)
        .join(format!("{id}.json"))
}

/// Creates the folder skeleton; refuses a non-empty target so stale files never mix in.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        return Err(Error(format!("{} exists and is not empty", dir.display())));
    }
    for sub in [VEX_DIR, SBOM_DIR, "policy"] {
        fs::create_dir_all(dir.join(sub)).ctx(|| format!("creating {}", dir.display()))?;
    }
    for shard in 0..256 {
        fs::create_dir_all(
            dir.join(PLAIN_DIR)
                .join("advisories")
                .join(format!("{shard:02x}")),
        )?;
    }
    Ok(())
}

pub fn json_line<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    Ok(line)
}

pub fn json_pretty<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(v)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Optional second affected package (10% of advisories), never equal to the first.
pub fn second_package(seed: u64, serial: u64, space: u64, primary: u64) -> Option<u64> {
    let mut rng = Rng::new(seed, stream::ASSIGN, serial | (1 << 63));
    if !rng.chance(0.1) {
        return None;
    }
    let p = catalog::skewed_package(&mut rng, space);
    (p != primary).then_some(p)
}

/// Writes one advisory line to the JSONL and its own file.
pub fn emit_advisory(
    dir: &Path,
    jsonl: &mut impl Write,
    sink: &FileSink,
    adv: &osv::Advisory,
) -> Result<()> {
    let line = json_line(adv)?;
    jsonl.write_all(&line)?;
    sink.write(plain_path(dir, &adv.id), line)
}

/// Picks up to `target` (component index, advisory serial) findings for one subject: visit the
/// components in random order, take 1–3 advisories of each component's package.
fn findings(
    rng: &mut Rng,
    comp_pkgs: &[u64],
    pkg_advs: &[Vec<u32>],
    target: usize,
) -> Vec<(usize, u64)> {
    let mut order: Vec<usize> = (0..comp_pkgs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut out = Vec::with_capacity(target);
    let mut seen = HashSet::new();
    // Up to three passes: small images may not reach the target in one.
    for _ in 0..3 {
        for &ci in &order {
            let advs = &pkg_advs[comp_pkgs[ci] as usize];
            if advs.is_empty() {
                continue;
            }
            for _ in 0..(1 + rng.below(3) as usize).min(advs.len()) {
                let k = u64::from(*rng.pick(advs));
                if out.len() < target && seen.insert((ci, k)) {
                    out.push((ci, k));
                }
            }
            if out.len() >= target {
                return out;
            }
        }
    }
    out
}

/// Generates generation 0 of a dataset with `n` advisories into `out`.
pub fn generate(out: &Path, n: u64, seed: u64) -> Result<Manifest> {
    if n == 0 || n > u64::from(u32::MAX) {
        return Err(Error(format!("--n must be in 1..={}", u32::MAX)));
    }
    prepare_dir(out)?;
    let space = catalog::package_space(n);
    // Assign every advisory to its package first: VEX and policy need package -> advisories.
    let pkg_of: Vec<u64> = (0..n)
        .map(|k| catalog::assign_package(seed, k, space))
        .collect();
    let mut pkg_advs: Vec<Vec<u32>> = vec![Vec::new(); space as usize];
    for (k, p) in pkg_of.iter().enumerate() {
        pkg_advs[*p as usize].push(k as u32);
    }
    let packages = pkg_advs.iter().filter(|v| !v.is_empty()).count() as u64;

    let sink = FileSink::new();
    let mut jsonl = BufWriter::with_capacity(1 << 20, fs::File::create(out.join(ADVISORIES))?);
    for (k, p) in pkg_of.iter().enumerate() {
        let k = k as u64;
        let primary = catalog::package(seed, *p);
        let second = second_package(seed, k, space, *p).map(|q| catalog::package(seed, q));
        let adv = osv::generate(seed, k, &primary, second.as_ref());
        emit_advisory(out, &mut jsonl, &sink, &adv)?;
    }
    jsonl.flush()?;

    let subjects = (n / 1000).max(1);
    let mean = (n / 10) as f64 / subjects as f64;
    let mut counts = Counts {
        advisories: n,
        packages: Some(packages),
        vex_documents: subjects,
        sboms: subjects,
        ..Counts::default()
    };
    let mut policy = BufWriter::new(fs::File::create(out.join(POLICY_FILE))?);
    for s in 0..subjects {
        let subj = evidence::subject(seed, s);
        let (sbom, comp_pkgs) = evidence::sbom(seed, s, &subj, space);
        counts.sbom_components += sbom.components.len() as u64;
        let sdir = out.join(SBOM_DIR).join(&subj.dir);
        fs::create_dir_all(&sdir)?;
        sink.write(sdir.join("sbom.json"), json_pretty(&sbom)?)?;
        let ident = |k: u64| -> Identity {
            catalog::identity(
                seed,
                k,
                catalog::package(seed, pkg_of[k as usize]).ecosystem,
            )
        };

        let mut vrng = Rng::new(seed, stream::VEX, s);
        let target = (mean * (0.5 + vrng.unit())).round() as usize;
        let mut statements = Vec::new();
        for (ci, k) in findings(&mut vrng, &comp_pkgs, &pkg_advs, target) {
            let at = catalog::GENERATION_EPOCH - 86_400 - vrng.below(86_400 * 90) as i64;
            let purl = &sbom.components[ci].purl;
            statements.push(evidence::statement(
                &mut vrng,
                &subj.purl,
                purl,
                &ident(k),
                at,
            ));
        }
        counts.vex_statements += statements.len() as u64;
        let doc_at = catalog::GENERATION_EPOCH - 86_400;
        let doc = evidence::vex_doc(&mut vrng, statements, doc_at);
        sink.write(
            out.join(VEX_DIR).join(format!("{}.openvex.json", subj.dir)),
            json_pretty(&doc)?,
        )?;

        let mut prng = Rng::new(seed, stream::POLICY, s);
        let target = (mean * (0.5 + prng.unit())).round() as usize;
        for (ci, k) in findings(&mut prng, &comp_pkgs, &pkg_advs, target) {
            let at = catalog::GENERATION_EPOCH - prng.below(86_400) as i64;
            let id = ident(k);
            let ev = evidence::evaluation(
                &mut prng,
                &subj.purl,
                &sbom.components[ci].purl,
                id.vuln_name(),
                at,
            );
            policy.write_all(&json_line(&ev)?)?;
            counts.policy_evaluations += 1;
        }
    }
    policy.flush()?;
    sink.finish()?;

    let manifest = Manifest {
        generator: GENERATOR.into(),
        seed,
        generation: 0,
        counts,
        bytes: Bytes::measure(out)?,
        next_serial: n,
        package_space: space,
        next_subject: subjects,
        complete: true,
    };
    manifest.write(out)?;
    Ok(manifest)
}
