//! The config file and `run CHANNEL` (issue 20): the export a channel is due for, once per
//! slot; flags from STELLAMIRROR_* variables and the config file.

use std::path::Path;
use std::process::Command;

use stellamirror_tests::{bin, ingest_sample, p, sm, sm_at};

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("stellamirror.toml");
    std::fs::write(
        &cfg,
        r#"
store = "store"
tenants = ["acme"]

[channels.hourly]
tenant = "acme"
channel = "default"
out = "out/hourly"
full_every = "1d"
delta_every = "1h"

[channels.hourly.retention]
keep_full = 1
keep_within = "3h"
"#,
    )
    .unwrap();
    cfg
}

fn run_at(cfg: &Path, now: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--config", p(cfg), "run", "hourly", "--json"];
    args.extend_from_slice(extra);
    sm_at(now, &args).ok().json()
}

fn bundles(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn run_exports_what_the_channel_is_due_for_once_per_slot() {
    let t = tempfile::tempdir().unwrap();
    let cfg = write_config(t.path());
    let store = t.path().join("store");
    ingest_sample(&store, "old");
    let out = t.path().join("out/hourly");
    let r = run_at(&cfg, "2026-08-14T00:05:00Z", &[]);
    assert_eq!(r["action"], "full", "{r}");
    assert_eq!(
        run_at(&cfg, "2026-08-14T00:55:00Z", &[])["action"],
        "none",
        "same slot: once"
    );
    assert_eq!(bundles(&out).len(), 1);
    let r = run_at(&cfg, "2026-08-14T01:05:00Z", &[]);
    assert_eq!(r["action"], "none");
    assert!(r["reason"].as_str().unwrap().contains("nothing changed"), "{r}");
    let r = run_at(&cfg, "2026-08-14T01:10:00Z", &["--always"]);
    assert_eq!(r["action"], "delta", "{r}");
    ingest_sample(&store, "new");
    let r = run_at(&cfg, "2026-08-14T02:00:00Z", &[]);
    assert_eq!(r["action"], "delta", "{r}");
    let first_delta = r["export"]["diff"]["baseExportId"].as_str().unwrap().to_string();
    assert!(first_delta.ends_with("-delta"), "based on the previous delta: {r}");
    assert_eq!(run_at(&cfg, "2026-08-14T02:30:00Z", &["--always"])["action"], "none");
    // The next day's slot gets a full bundle, and retention prunes the old chain.
    let r = run_at(&cfg, "2026-08-15T06:00:00Z", &[]);
    assert_eq!(r["action"], "full", "{r}");
    assert_eq!(r["retention"]["plans"][0]["prune"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(bundles(&out).len(), 1, "{:?}", bundles(&out));
}

#[test]
fn flags_come_from_the_environment_and_the_config_file() {
    let t = tempfile::tempdir().unwrap();
    let cfg = write_config(t.path());
    let store = t.path().join("store");
    ingest_sample(&store, "old");
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(args).env("STELLAMIRROR_NOW", "2026-08-14T00:00:00Z");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // The config file names the store and the one tenant.
    let o = run(&[("STELLAMIRROR_CONFIG", p(&cfg))], &["status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"tenant\":\"acme\""));
    // A variable names the store; a flag wins over both.
    let o = run(
        &[("STELLAMIRROR_STORE", p(&store)), ("STELLAMIRROR_JSON", "true")],
        &["status"],
    );
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with('{'));
    let o = run(
        &[("STELLAMIRROR_CONFIG", p(&cfg))],
        &["status", "--store", p(&t.path().join("elsewhere"))],
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("elsewhere"));
    // Every flag of every command shows its variable in --help.
    let help = sm(["export", "full", "--help"]).ok().stdout;
    for var in [
        "STELLAMIRROR_STORE",
        "STELLAMIRROR_TENANT",
        "STELLAMIRROR_CHANNEL",
        "STELLAMIRROR_OUT",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

#[test]
fn a_bad_config_or_unknown_channel_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let cfg = write_config(t.path());
    let r = sm(["--config", p(&cfg), "run", "nightly"]).fails_with("ERR_CONFIG");
    assert!(r.stderr.contains("channels: hourly"), "{}", r.stderr);
    let bad = t.path().join("bad.toml");
    std::fs::write(&bad, "stor = \"x\"\n").unwrap();
    sm(["--config", p(&bad), "status"]).fails_with("ERR_CONFIG");
    sm(["--config", p(&t.path().join("missing.toml")), "status"]).fails_with("ERR_CONFIG");
    sm(["run", "hourly"]).fails_with("ERR_CONFIG");
}
