//! smgen: deterministic generator of realistic evidence at scale (see `generate` for the layout).
//!
//! ```text
//! smgen --out DIR --n N [--seed S]
//! smgen --out DIR --churn-from PREV [--churn 0.01 | --churn-records K]
//!       [--changed 0.7 --added 0.2 --removed 0.1] [--seed S]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use stellamirror_benches::churn::{self, Amount, Params};
use stellamirror_benches::generate;

const USAGE: &str = "usage:
  smgen --out DIR --n N [--seed S]                       generation 0 with N advisories
  smgen --out DIR --churn-from PREV [--churn F | --churn-records K]
        [--changed 0.7 --added 0.2 --removed 0.1] [--seed S]   next generation of PREV
defaults: --seed 1, --churn 0.01; shares split the touched records into changed/added/removed";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smgen: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut out = None;
    let mut n = None;
    let mut seed = None;
    let mut prev = None;
    let mut p = Params::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag} {v}: {e}"))
        };
        let frac = |v: &str| match v.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(format!("{flag} {v}: expected a number in 0..=1")),
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value)),
            "--n" => n = Some(num(&value)?),
            "--seed" => seed = Some(num(&value)?),
            "--churn-from" => prev = Some(PathBuf::from(value)),
            "--churn" => p.amount = Amount::Fraction(frac(&value)?),
            "--churn-records" => p.amount = Amount::Records(num(&value)?),
            "--changed" => p.changed = frac(&value)?,
            "--added" => p.added = frac(&value)?,
            "--removed" => p.removed = frac(&value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let out = out.ok_or("--out is required")?;
    let started = Instant::now();
    let (manifest, report) = match (prev, n) {
        (Some(_), Some(_)) => return Err("--n and --churn-from exclude each other".into()),
        (Some(prev), None) => {
            p.seed = seed;
            let (m, r) = churn::churn(&prev, &out, &p).map_err(|e| e.to_string())?;
            (m, Some(r))
        }
        (None, Some(n)) => (
            generate::generate(&out, n, seed.unwrap_or(1)).map_err(|e| e.to_string())?,
            None,
        ),
        (None, None) => return Err("--n (or --churn-from) is required".into()),
    };
    let c = &manifest.counts;
    eprintln!(
        "smgen: {} generation {} in {:.1}s: {} advisories, {} VEX docs / {} statements, {} SBOMs, {} evaluations, {:.1} MB",
        out.display(),
        manifest.generation,
        started.elapsed().as_secs_f64(),
        c.advisories,
        c.vex_documents,
        c.vex_statements,
        c.sboms,
        c.policy_evaluations,
        manifest.bytes.total() as f64 / 1e6
    );
    if let Some(r) = report {
        let a = &r.advisories;
        eprintln!(
            "smgen: advisories changed {} added {} removed {}",
            a.changed, a.added, a.removed
        );
    }
    Ok(())
}
