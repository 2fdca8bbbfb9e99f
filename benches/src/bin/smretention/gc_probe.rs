//! `smretention --gc-probe setup|measure`: what collecting one pruned snapshot's garbage
//! costs, incremental against full mark and sweep (issue 20).
//!
//! `setup` (not timed; run it before taking the bench lock): a store of tenant `bench`
//! from the `--data` generation (the four ingests), a full export `f0`, the `--churned`
//! generation ingested and exported as delta `d1 --base f0`, the `--data` generation
//! ingested again and exported as `d2 --base f0`, then `prune --keep-full 1 --no-gc`,
//! which prunes `d1` only: its snapshot is pending collection, and its garbage is what the
//! churn brought in and the next ingest took out again.
//!
//! `again` (not timed): on a store a `measure` left, ingest `--churned` and `--data` once
//! more as the next two deltas on `f0`, and prune again: the earlier `d2` and the churned
//! delta become pending (another churn on the same store, without rebuilding it).
//!
//! `measure` (timed): `gc --full --dry-run` (the full collection's cost with that garbage
//! present), `gc` (the incremental collection of the pending snapshot), then `gc --full
//! --dry-run` again, which must find nothing left.
//!
//! ```text
//! smretention --gc-probe setup --work W --data DATA/gen0 --churned DATA/gen1-c0.01 --bin B
//! smretention --gc-probe measure --work W --bin B
//! ```
use std::path::PathBuf;

use super::{ingest, json, size, sm, Opts, T0};

fn store(o: &Opts) -> String {
    o.work.join("store").display().to_string()
}

fn export(o: &Opts, now: i64, args: &[&str]) -> Result<(), String> {
    let (st, out) = (store(o), o.work.join("out").display().to_string());
    let mut a = vec!["export"];
    a.extend_from_slice(args);
    a.extend(["--store", &st, "--tenant", "bench", "--out", &out]);
    sm(o, now, &a).map(|_| ())
}

fn with_store(o: &Opts, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend(["--store".to_string(), store(o), "--json".to_string()]);
    v
}

/// `setup` from scratch, or `again` on a store a `measure` left (ingests `--churned` and
/// `--data` once more, as the next two deltas on `f0`, and prunes all but the last).
fn setup(o: &Opts, again: bool) -> Result<(), String> {
    let need = |p: &Option<PathBuf>, flag: &str| p.clone().ok_or(format!("--gc-probe setup needs {flag}"));
    let (data, churned) = (need(&o.data, "--data")?, need(&o.churned, "--churned")?);
    let first = match again {
        true => {
            let (log, _) = sm(o, T0, &["log", "--store", &store(o), "--json"])?;
            json(&log)?["exports"].as_array().map_or(0, |a| a.len())
        }
        false => {
            let _ = std::fs::remove_dir_all(o.work.join("store"));
            let _ = std::fs::remove_dir_all(o.work.join("out"));
            std::fs::create_dir_all(&o.work).map_err(|e| e.to_string())?;
            // The ingests read `--store`/`--tenant` from this config.
            let config = "store = \"store\"\ntenants = [\"bench\"]\n";
            std::fs::write(o.work.join("stellamirror.toml"), config).map_err(|e| e.to_string())?;
            0
        }
    };
    // (generation, export arguments), one hour apart.
    let (d1, d2) = (format!("d{}", first.max(1)), format!("d{}", first.max(1) + 1));
    let mut steps: Vec<(&PathBuf, Vec<&str>)> = vec![
        (&churned, vec!["delta", "--base", "f0", "--run-id", &d1]),
        (&data, vec!["delta", "--base", "f0", "--run-id", &d2]),
    ];
    if !again {
        steps.insert(0, (&data, vec!["full", "--run-id", "f0"]));
    }
    let hour0 = if again { first } else { 0 };
    for (k, (gen, args)) in steps.iter().enumerate() {
        let now = T0 + (hour0 + k) as i64 * 3600 + 300;
        let secs = ingest(o, now, gen)?;
        let created = super::rfc3339(now);
        let mut a = args.clone();
        a.extend(["--created-at", &created]);
        export(o, now, &a)?;
        println!(
            "ingested {} in {secs:.1} s, exported {}",
            gen.display(),
            args[args.len() - 1]
        );
    }
    let now = T0 + (hour0 + steps.len() - 1) as i64 * 3600 + 600;
    let prune = with_store(o, &["prune", "--keep-full", "1", "--no-gc"]);
    let prune: Vec<&str> = prune.iter().map(String::as_str).collect();
    let (out, _) = sm(o, now, &prune)?;
    let pruned = &json(&out)?["plans"][0]["prune"];
    println!(
        "pruned {pruned}; store {:.1} MB",
        size(&o.work.join("store")) as f64 / 1e6
    );
    Ok(())
}

fn gc(o: &Opts, args: &[&str]) -> Result<(serde_json::Value, f64), String> {
    let a = with_store(o, args);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (out, wall) = sm(o, T0 + 100 * 3600, &a)?;
    Ok((json(&out)?, wall))
}

fn measure(o: &Opts) -> Result<(), String> {
    println!(
        "| collection | mode | pending | candidates | nodes removed | objects removed | MB freed | gc s | of which flush/compaction s | command s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, args) in [
        ("gc --full --dry-run", &["gc", "--full", "--dry-run"][..]),
        ("gc", &["gc"][..]),
        ("gc --full --dry-run (after)", &["gc", "--full", "--dry-run"][..]),
    ] {
        let (r, wall) = gc(o, args)?;
        println!(
            "| `{name}` | {} | {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {wall:.2} |",
            r["mode"].as_str().unwrap_or("?"),
            r["pendingRoots"],
            r["candidates"],
            r["nodesRemoved"],
            r["objectsRemoved"],
            r["bytesFreed"].as_f64().unwrap_or(0.0) / 1e6,
            r["seconds"].as_f64().unwrap_or(0.0),
            r["maintenanceSeconds"].as_f64().unwrap_or(0.0),
        );
    }
    println!("store {:.1} MB", size(&o.work.join("store")) as f64 / 1e6);
    Ok(())
}

pub(crate) fn probe(o: &Opts, phase: &str) -> Result<(), String> {
    match phase {
        "setup" => setup(o, false),
        "again" => setup(o, true),
        "measure" => measure(o),
        _ => Err(format!("--gc-probe {phase}: expected setup, again or measure")),
    }
}
