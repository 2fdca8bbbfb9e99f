//! smscale: the large-scale benchmark. For N advisories and 1% churn it measures, in one run,
//! stellamirror (ingest, full export, hourly re-ingest + delta export, verify, import,
//! rebuild) and the floors of exactly the bytes each job handles (floor-input, floor-bundle,
//! extract, floor-delta, b3sum/sha256sum, restic backup/restore of the same input files),
//! prints one table with ratios to the floors and the open issues' targets, and writes a
//! dated section of the doc.
//!
//! ```text
//! smscale --n N [--seed 1] [--churn 0.01] [--work target/smscale] [--bin target/release/stellamirror]
//!         [--docs docs/benchmarks.md] [--scaling 100000,1000000 | none] [--scaling-records 10000]
//!         [--tenant bench] [--keep]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use stellamirror_benches::scale::pipeline::{self, Options};
use stellamirror_benches::scale::report;

const USAGE: &str = "usage: smscale --n N [--seed 1] [--churn 0.01] [--work DIR] [--bin PATH] [--docs FILE]
               [--scaling N1,N2|none] [--scaling-records 10000] [--tenant bench] [--keep]
  --work   data and scratch (default target/smscale); datasets are kept and reused
  --bin    stellamirror binary (default target/release/stellamirror)
  --docs   markdown file whose section for this N is replaced (default: print only)
  --scaling  N of the fixed-churn scaling table (default: 100000,1000000 up to --n)
  RESTIC_PASSWORD must be set for the restic rows";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smscale: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut n = None;
    let mut o = Options {
        n: 0,
        seed: 1,
        churn: 0.01,
        work: PathBuf::from("target/smscale"),
        bin: PathBuf::from("target/release/stellamirror"),
        smgen: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("smgen"),
        docs: None,
        scaling: Vec::new(),
        scaling_records: 10_000,
        keep: false,
        tenant: "bench".into(),
    };
    let mut scaling: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--keep" => {
                o.keep = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag} {v}: {e}"))
        };
        match flag.as_str() {
            "--n" => n = Some(num(&v)?),
            "--seed" => o.seed = num(&v)?,
            "--churn" => o.churn = v.parse().map_err(|e| format!("--churn {v}: {e}"))?,
            "--work" => o.work = PathBuf::from(v),
            "--bin" => o.bin = PathBuf::from(v),
            "--docs" => o.docs = Some(PathBuf::from(v)),
            "--scaling" => scaling = Some(v),
            "--scaling-records" => o.scaling_records = num(&v)?,
            "--tenant" => o.tenant = v,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    o.n = n.ok_or_else(|| format!("--n is required\n{USAGE}"))?;
    o.scaling = match scaling.as_deref() {
        Some("none") | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|x| {
                x.trim()
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|e| format!("--scaling {x}: {e}"))
            })
            .collect::<Result<_, _>>()?,
        None => [100_000, 1_000_000].into_iter().filter(|x| *x <= o.n).collect(),
    };
    if !o.smgen.is_file() {
        return Err(format!(
            "smgen not found beside smscale ({}); build with cargo build --release -p stellamirror-benches",
            o.smgen.display()
        ));
    }
    // Absolute paths: steps run with other working directories.
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    o.work = abs(&o.work);
    o.bin = abs(&o.bin);
    std::fs::create_dir_all(&o.work).map_err(|e| format!("{}: {e}", o.work.display()))?;

    let rep = pipeline::run(&o).map_err(|e| e.to_string())?;
    println!("\n{}\n", rep.title);
    print!("{}", report::text_table(&rep.rows));
    println!();
    for t in &rep.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "pending",
        };
        println!("target: {:<42} {:<8} {}", t.name, verdict, t.figure);
    }
    for p in &rep.scaling {
        println!(
            "scaling: N={:>9} touched={} re-ingest {:.2} s (b3sum {:.2} s), export delta: {} ({})",
            p.n,
            p.churned,
            p.ingest.wall_s,
            p.hash.wall_s,
            if p.delta.outcome.is_ok() {
                format!("{:.2} s", p.delta.wall_s)
            } else {
                p.delta.outcome.label()
            },
            p.delta_bytes
                .map(|b| format!("{:.1} MB", b as f64 / 1e6))
                .unwrap_or_else(|| "–".into()),
        );
    }
    if let Some(doc) = &o.docs {
        report::update_doc(doc, o.n, &report::markdown(&rep)).map_err(|e| format!("{}: {e}", doc.display()))?;
        println!("\nwrote the N={} section of {}", o.n, doc.display());
    }
    Ok(())
}
