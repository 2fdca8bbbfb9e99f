//! Driving the stellamirror binary. Every command line the harness runs is built here, in one
//! place, so a CLI change is one edit. A subcommand the binary does not offer (yet) yields a
//! "not available" step instead of a failure, so the peers can be measured without it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::run::{Measured, Outcome, Runner};
use crate::generate::{ADVISORIES, POLICY_FILE, SBOM_DIR, VEX_DIR};

pub const FULL_RUN_ID: &str = "full-1";
pub const DELTA_RUN_ID: &str = "delta-1";
pub const FULL_CREATED_AT: &str = "2026-01-01T00:00:00Z";
pub const DELTA_CREATED_AT: &str = "2026-01-01T01:00:00Z";
/// The bundles carry fixed creation times (so their bytes are reproducible); their signed
/// lifetime must outlast the run, or the importer refuses them as expired.
pub const EXPIRES_IN: &str = "5200w";

pub struct Stellamirror {
    pub bin: PathBuf,
    pub tenant: String,
    /// Key stem: `<stem>.pem` (private) and `<stem>.pub.pem`.
    pub key: PathBuf,
    available: HashMap<String, Option<String>>,
}

fn s(x: &Path) -> String {
    x.to_string_lossy().into_owned()
}

impl Stellamirror {
    pub fn new(bin: &Path, tenant: &str, key: &Path) -> Stellamirror {
        Stellamirror {
            bin: bin.to_path_buf(),
            tenant: tenant.into(),
            key: key.to_path_buf(),
            available: HashMap::new(),
        }
    }

    pub fn private_key(&self) -> PathBuf {
        self.key.with_extension("pem")
    }

    pub fn public_key(&self) -> PathBuf {
        self.key.with_extension("pub.pem")
    }

    pub fn full_bundle(out: &Path) -> PathBuf {
        out.join(format!("{FULL_RUN_ID}-full.tar.zst"))
    }

    pub fn delta_bundle(out: &Path) -> PathBuf {
        out.join(format!("{DELTA_RUN_ID}-delta.tar.zst"))
    }

    /// None if `bin SUB... --help` succeeds, else why the step is not available.
    pub fn unavailable(&mut self, sub: &[&str]) -> Option<String> {
        let key = sub.join(" ");
        if let Some(v) = self.available.get(&key) {
            return v.clone();
        }
        let verdict = if !self.bin.is_file() {
            Some(format!("no binary at {}", self.bin.display()))
        } else {
            match Command::new(&self.bin)
                .args(sub)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
            {
                Ok(st) if st.success() => None,
                Ok(_) => Some(format!("`stellamirror {key}` not implemented")),
                Err(e) => Some(format!("cannot run {}: {e}", self.bin.display())),
            }
        };
        self.available.insert(key, verdict.clone());
        verdict
    }

    fn cmd(&mut self, r: &mut Runner, label: &str, sub: &[&str], args: Vec<String>) -> Measured {
        if let Some(why) = self.unavailable(sub) {
            return Measured::not_run(Outcome::NotAvailable(why));
        }
        let mut all: Vec<String> = sub.iter().map(|x| x.to_string()).collect();
        all.extend(args);
        let bin = self.bin.clone();
        r.run(label, &bin, &all, None)
    }

    pub fn keygen(&mut self, r: &mut Runner) -> Measured {
        self.cmd(r, "sm-keygen", &["keygen"], vec!["--out".into(), s(&self.key)])
    }

    fn store_args(&self, store: &Path) -> Vec<String> {
        vec!["--store".into(), s(store), "--tenant".into(), self.tenant.clone()]
    }

    /// All four kinds of one dataset generation, as one job. Advisories must succeed; a later
    /// kind that fails (e.g. not supported by this build yet) does not stop the run: it is
    /// returned by name with its outcome so the row can say what the timing leaves out.
    pub fn ingest_all(&mut self, r: &mut Runner, label: &str, store: &Path, data: &Path) -> (Measured, Vec<String>) {
        let sources: [(&str, Vec<String>); 4] = [
            (
                "advisories",
                vec![
                    "--source".into(),
                    "osv".into(),
                    "--complete".into(),
                    s(&data.join(ADVISORIES)),
                ],
            ),
            (
                "vex",
                vec![
                    "--source".into(),
                    "openvex".into(),
                    "--complete".into(),
                    s(&data.join(VEX_DIR)),
                ],
            ),
            (
                "sboms",
                vec![
                    "--source".into(),
                    "cyclonedx".into(),
                    "--complete".into(),
                    s(&data.join(SBOM_DIR)),
                ],
            ),
            (
                "policy",
                vec!["--kind".into(), "policy-evaluations".into(), s(&data.join(POLICY_FILE))],
            ),
        ];
        let mut parts = Vec::new();
        let mut left_out = Vec::new();
        for (name, extra) in sources {
            let mut args = self.store_args(store);
            args.extend(extra);
            let m = self.cmd(r, &format!("sm-{label}-{name}"), &["ingest"], args);
            if m.outcome.is_ok() {
                parts.push(m);
            } else if parts.is_empty() {
                return (m, Vec::new());
            } else {
                left_out.push(format!("{name} {}", m.outcome.label()));
            }
        }
        (Measured::combine(&parts), left_out)
    }

    pub fn export_full(&mut self, r: &mut Runner, store: &Path, out: &Path) -> Measured {
        let mut args = self.store_args(store);
        args.extend(["--out".into(), s(out), "--run-id".into(), FULL_RUN_ID.into()]);
        args.extend([
            "--created-at".into(),
            FULL_CREATED_AT.into(),
            "--expires-in".into(),
            EXPIRES_IN.into(),
            "--sign-key".into(),
            s(&self.private_key()),
        ]);
        self.cmd(r, "sm-export-full", &["export", "full"], args)
    }

    pub fn export_delta(&mut self, r: &mut Runner, store: &Path, out: &Path) -> Measured {
        let mut args = self.store_args(store);
        args.extend(["--base".into(), FULL_RUN_ID.into(), "--out".into(), s(out)]);
        args.extend([
            "--run-id".into(),
            DELTA_RUN_ID.into(),
            "--created-at".into(),
            DELTA_CREATED_AT.into(),
            "--expires-in".into(),
            EXPIRES_IN.into(),
        ]);
        args.extend(["--sign-key".into(), s(&self.private_key())]);
        self.cmd(r, "sm-export-delta", &["export", "delta"], args)
    }

    pub fn verify(&mut self, r: &mut Runner, label: &str, bundle: &Path) -> Measured {
        let args = vec![s(bundle), "--trust".into(), s(&self.public_key())];
        self.cmd(r, label, &["verify"], args)
    }

    pub fn import(&mut self, r: &mut Runner, label: &str, bundle: &Path, store: &Path) -> Measured {
        let args = vec![
            s(bundle),
            "--store".into(),
            s(store),
            "--trust".into(),
            s(&self.public_key()),
        ];
        self.cmd(r, label, &["import"], args)
    }

    /// `publish --json` of `store` into `out` (the tree's files written and linked are in
    /// the report it prints).
    pub fn publish(&mut self, r: &mut Runner, label: &str, store: &Path, out: &Path) -> Measured {
        let mut args = self.store_args(store);
        args.extend(["--out".into(), s(out), "--sign-key".into(), s(&self.private_key())]);
        self.cmd(r, label, &["--json", "publish"], args)
    }

    pub fn rebuild(&mut self, r: &mut Runner, bundles: &Path, store: &Path) -> Measured {
        let args = vec![
            "--bundles".into(),
            s(bundles),
            "--store".into(),
            s(store),
            "--trust".into(),
            s(&self.public_key()),
        ];
        self.cmd(r, "sm-rebuild", &["rebuild"], args)
    }

    /// `status --json`; returns the step and the `stateRoot` it printed (searched at any depth).
    pub fn state_root(&mut self, r: &mut Runner, label: &str, store: &Path) -> (Measured, Option<String>) {
        let mut args = self.store_args(store);
        args.push("--json".into());
        let m = self.cmd(r, label, &["status"], args);
        let root = serde_json::from_str::<serde_json::Value>(&m.stdout)
            .ok()
            .and_then(|v| find_key(&v, "stateRoot"));
        (m, root)
    }
}

fn find_key(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return Some(s.clone());
            }
            map.values().find_map(|x| find_key(x, key))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}
