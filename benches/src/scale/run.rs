//! Running one measured child process: wall time from the parent's monotonic clock, peak RSS
//! and CPU time from GNU time's `%M %U %S` (the child's `wait4` rusage, which includes the
//! children it waited for: for a `bash -c` pipeline, peak RSS is its largest single process,
//! CPU time the sum of all of them). CPU time is the figure that a busy machine distorts least.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok,
    /// Ran and failed: exit status and where the log is.
    Failed(String),
    /// The tool or subcommand does not exist (yet): nothing was run.
    NotAvailable(String),
    /// Not run because an earlier step it depends on did not succeed.
    Skipped(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }

    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed(s) => format!("failed: {s}"),
            Outcome::NotAvailable(s) => format!("not available: {s}"),
            Outcome::Skipped(s) => format!("skipped: {s}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Measured {
    pub wall_s: f64,
    pub rss_kib: Option<u64>,
    /// User + system CPU seconds.
    pub cpu_s: Option<f64>,
    pub outcome: Outcome,
    pub stdout: String,
}

impl Measured {
    pub fn not_run(outcome: Outcome) -> Measured {
        Measured {
            wall_s: 0.0,
            rss_kib: None,
            cpu_s: None,
            outcome,
            stdout: String::new(),
        }
    }

    /// Several commands as one job: walls add up, the peak is the largest peak, the first
    /// failure wins.
    pub fn combine(parts: &[Measured]) -> Measured {
        let outcome = parts
            .iter()
            .map(|m| m.outcome.clone())
            .find(|o| !o.is_ok())
            .unwrap_or(Outcome::Ok);
        Measured {
            wall_s: parts.iter().map(|m| m.wall_s).sum(),
            rss_kib: parts.iter().filter_map(|m| m.rss_kib).max(),
            cpu_s: parts.iter().map(|m| m.cpu_s).sum(),
            outcome,
            stdout: parts.iter().map(|m| m.stdout.as_str()).collect(),
        }
    }
}

/// `name` resolved on PATH (or as given, if it contains a slash and exists).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Single-quotes a string for bash.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn sh_path(p: &Path) -> String {
    sh_quote(&p.to_string_lossy())
}

pub struct Runner {
    /// GNU time, when installed; without it peak RSS is reported as unknown.
    time_bin: Option<PathBuf>,
    log_dir: PathBuf,
    env: Vec<(String, String)>,
    seq: usize,
}

impl Runner {
    pub fn new(log_dir: &Path) -> std::io::Result<Runner> {
        fs::create_dir_all(log_dir)?;
        let time_bin = Some(PathBuf::from("/usr/bin/time")).filter(|p| {
            Command::new(p)
                .args(["-f", "%M", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        Ok(Runner {
            time_bin,
            log_dir: log_dir.to_path_buf(),
            env: Vec::new(),
            seq: 0,
        })
    }

    pub fn has_time(&self) -> bool {
        self.time_bin.is_some()
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Runs `program args` in `cwd`; stdout is kept (for `status --json`), stderr goes to the
    /// step's log file.
    pub fn run(&mut self, label: &str, program: &Path, args: &[String], cwd: Option<&Path>) -> Measured {
        self.seq += 1;
        let stem: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let base = self.log_dir.join(format!("{:03}-{stem}", self.seq));
        let (err_path, out_path, rss_path) = (
            base.with_extension("log"),
            base.with_extension("out"),
            base.with_extension("rss"),
        );
        let mut cmd = match &self.time_bin {
            Some(t) => {
                let mut c = Command::new(t);
                c.arg("-o").arg(&rss_path).args(["-f", "%M %U %S"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let files = fs::File::create(&out_path).and_then(|o| Ok((o, fs::File::create(&err_path)?)));
        let (out_f, err_f) = match files {
            Ok(f) => f,
            Err(e) => {
                return Measured::not_run(Outcome::Failed(format!(
                    "cannot create log {}: {e}",
                    err_path.display()
                )))
            }
        };
        let _ = fs::write(
            base.with_extension("cmd"),
            format!("{} {}\n", program.display(), args.join(" ")),
        );
        let started = Instant::now();
        let status = cmd.stdout(out_f).stderr(err_f).status();
        let wall_s = started.elapsed().as_secs_f64();
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        // GNU time prefixes "Command exited with non-zero status N" when N != 0: take the last line.
        let rusage = fs::read_to_string(&rss_path).unwrap_or_default();
        let fields: Vec<&str> = rusage.lines().last().unwrap_or("").split_whitespace().collect();
        let rss_kib = fields.first().and_then(|f| f.parse().ok());
        let cpu_s = match (
            fields.get(1).and_then(|f| f.parse::<f64>().ok()),
            fields.get(2).and_then(|f| f.parse::<f64>().ok()),
        ) {
            (Some(u), Some(s)) => Some(u + s),
            _ => None,
        };
        let outcome = match status {
            Ok(s) if s.success() => Outcome::Ok,
            Ok(s) => Outcome::Failed(format!("{s}; log {}", err_path.display())),
            Err(e) => Outcome::Failed(format!("cannot start {}: {e}", program.display())),
        };
        Measured {
            wall_s,
            rss_kib,
            cpu_s,
            outcome,
            stdout,
        }
    }

    /// Runs a bash script with `pipefail`, so a failing stage of a pipeline fails the step.
    pub fn shell(&mut self, label: &str, script: &str, cwd: Option<&Path>) -> Measured {
        let args = vec!["-o".into(), "pipefail".into(), "-c".into(), script.into()];
        self.run(label, Path::new("/bin/bash"), &args, cwd)
    }
}
