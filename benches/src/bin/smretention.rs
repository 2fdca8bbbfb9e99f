//! smretention: the retention target of issue 20. Hourly cycles of (ingest 1% churn →
//! `run` → `prune --keep-full 1 --keep-within 24h`), then the producer store's size against
//! a fresh store holding the same kept snapshots (a mirror that imported the kept chain),
//! and each cycle's collection: garbage removed and seconds.
//!
//! ```text
//! smretention --n 100000 --cycles 48 --work /work/bench-20 [--bin target/release/stellamirror]
//! ```
//!
//! `--gc-probe setup|measure` (see `smretention/gc_probe.rs`): the cost of collecting one
//! pruned snapshot's garbage, incremental against full, on a store built from an existing
//! `smgen` dataset (`--data GEN0 --churned GEN1`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use stellamirror_benches::churn::{self, Params};
use stellamirror_benches::generate::{self, ADVISORIES, POLICY_FILE, SBOM_DIR, VEX_DIR};

pub(crate) const T0: i64 = 1_786_665_600; // 2026-08-14T00:00:00Z

#[path = "smretention/gc_probe.rs"]
mod gc_probe;

struct Opts {
    n: u64,
    cycles: u64,
    work: PathBuf,
    bin: PathBuf,
    probe: Option<String>,
    data: Option<PathBuf>,
    churned: Option<PathBuf>,
}

fn main() -> ExitCode {
    let run = |o: Opts| match o.probe.as_deref() {
        Some(phase) => gc_probe::probe(&o, phase),
        None => run(&o),
    };
    match parse(std::env::args().skip(1).collect()).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smretention: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<Opts, String> {
    let mut o = Opts {
        n: 100_000,
        cycles: 48,
        work: PathBuf::from("/tmp/smretention"),
        bin: PathBuf::from("target/release/stellamirror"),
        probe: None,
        data: None,
        churned: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag} {v}: {e}"))
        };
        match flag.as_str() {
            "--n" => o.n = num(&v)?,
            "--cycles" => o.cycles = num(&v)?,
            "--work" => o.work = PathBuf::from(v),
            "--bin" => o.bin = PathBuf::from(v),
            "--gc-probe" => o.probe = Some(v),
            "--data" => o.data = Some(PathBuf::from(v)),
            "--churned" => o.churned = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

pub(crate) fn rfc3339(secs: i64) -> String {
    let since = secs - T0;
    let days = since.div_euclid(86_400);
    let rem = since.rem_euclid(86_400);
    // 2026-08-14 is day 0 of the run; the run stays within August/September 2026.
    let (month, day) = if days < 18 { (8, 14 + days) } else { (9, days - 17) };
    format!("2026-{month:02}-{day:02}T{:02}:{:02}:00Z", rem / 3600, rem % 3600 / 60)
}

/// Run stellamirror; returns stdout and the wall time.
pub(crate) fn sm(o: &Opts, now: i64, args: &[&str]) -> Result<(String, f64), String> {
    let started = Instant::now();
    let out = Command::new(&o.bin)
        .arg("--quiet")
        .args(args)
        .env("STELLAMIRROR_NOW", rfc3339(now))
        .env("STELLAMIRROR_CONFIG", o.work.join("stellamirror.toml"))
        .output()
        .map_err(|e| format!("{}: {e}", o.bin.display()))?;
    if !out.status.success() {
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        return Err(format!("{args:?}: {o}{e}"));
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).to_string(),
        started.elapsed().as_secs_f64(),
    ))
}

pub(crate) fn ingest(o: &Opts, now: i64, data: &Path) -> Result<f64, String> {
    let p = |rel: &str| data.join(rel).display().to_string();
    let (adv, vex, sbom, pol) = (p(ADVISORIES), p(VEX_DIR), p(SBOM_DIR), p(POLICY_FILE));
    let mut secs = 0.0;
    for args in [
        vec!["ingest", "--source", "osv", "--complete", &adv],
        vec!["ingest", "--source", "openvex", "--complete", &vex],
        vec!["ingest", "--source", "cyclonedx", "--complete", &sbom],
        vec!["ingest", "--kind", "policy-evaluations", &pol],
    ] {
        secs += sm(o, now, &args)?.1;
    }
    Ok(secs)
}

/// Bytes of the files below `dir`, leaving out RocksDB's info logs.
pub(crate) fn size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                total += size(&path);
            } else if !name.starts_with("LOG") {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

pub(crate) fn json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s.trim()).map_err(|e| format!("not JSON ({e}): {s}"))
}

fn run(o: &Opts) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(&o.work);
    std::fs::create_dir_all(&o.work).map_err(|e| e.to_string())?;
    let config = "store = \"store\"\ntenants = [\"bench\"]\n\n[channels.hourly]\ntenant = \"bench\"\nchannel = \"default\"\nout = \"out\"\nfull_every = \"1d\"\ndelta_every = \"1h\"\nexpires_in = \"60d\"\n";
    std::fs::write(o.work.join("stellamirror.toml"), config).map_err(|e| e.to_string())?;
    let gen = |k: u64| o.work.join(format!("gen-{k}"));
    generate::generate(&gen(0), o.n, 1).map_err(|e| e.to_string())?;
    println!(
        "| cycle | action | ingest s | run s | prune+gc s | gc s | of which flush/compaction s | nodes removed | objects removed | MB freed | store MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut gc_rows = Vec::new();
    for k in 0..=o.cycles {
        if k > 0 {
            let p = Params {
                seed: Some(k),
                ..Params::default()
            };
            churn::churn(&gen(k - 1), &gen(k), &p).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(gen(k - 1));
        }
        let now = T0 + (k as i64) * 3600 + 300;
        let ingest_s = ingest(o, now, &gen(k))?;
        let (out, run_s) = sm(o, now, &["run", "hourly", "--no-prune", "--json"])?;
        let action = json(&out)?["action"].as_str().unwrap_or("?").to_string();
        let prune = [
            "prune",
            "--channel",
            "default",
            "--keep-full",
            "1",
            "--keep-within",
            "24h",
            "--json",
        ];
        let (out, prune_s) = sm(o, now, &prune)?;
        let gc = json(&out)?["gc"].clone();
        let store_mb = size(&o.work.join("store")) as f64 / 1e6;
        println!(
            "| {k} | {action} | {ingest_s:.2} | {run_s:.2} | {prune_s:.2} | {:.2} | {:.2} | {} | {} | {:.1} | {store_mb:.1} |",
            gc["seconds"].as_f64().unwrap_or(0.0),
            gc["maintenanceSeconds"].as_f64().unwrap_or(0.0),
            gc["nodesRemoved"],
            gc["objectsRemoved"],
            gc["bytesFreed"].as_f64().unwrap_or(0.0) / 1e6
        );
        gc_rows.push((prune_s, gc["bytesFreed"].as_f64().unwrap_or(0.0)));
    }
    // A fresh store holding the same kept snapshots: a mirror that imported the kept chain.
    let producer = size(&o.work.join("store"));
    let fresh = o.work.join("fresh");
    let started = Instant::now();
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(o.work.join("out"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    bundles.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let key = o.work.join("store/keys/export-signing.pub.pem").display().to_string();
    let last = T0 + (o.cycles as i64) * 3600 + 600;
    for b in &bundles {
        let b = b.display().to_string();
        sm(
            o,
            last,
            &["import", &b, "--store", &fresh.display().to_string(), "--trust", &key],
        )?;
    }
    let fresh_bytes = size(&fresh);
    println!(
        "\nproducer store {:.1} MB; fresh store of the {} kept bundles {:.1} MB (imported in {:.1} s); ratio {:.2}",
        producer as f64 / 1e6,
        bundles.len(),
        fresh_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        producer as f64 / fresh_bytes.max(1) as f64
    );
    Ok(())
}
