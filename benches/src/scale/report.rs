//! The result table, the targets, the scaling table, and the dated section of
//! `docs/benchmarks.md` they are written into.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::run::{Measured, Outcome};

/// Every job the harness measures: the data steps, the floors, and stellamirror's jobs. Rows
/// are found by this key, never by their display text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Generate,
    Churn,
    /// `b3sum` of the gen-0 inputs.
    HashInputs,
    ShaInputs,
    /// `b3sum` of the gen-1 inputs (what an hourly re-ingest must at least read and hash).
    HashInputs1,
    /// floor-input: `tar --sort=name INPUTS | zstd -T0 -3`.
    FloorInput,
    ResticBackup,
    ResticBackup1,
    ResticRestore,
    /// floor-delta: the changed records alone at `zstd -3`.
    FloorDelta,
    Ingest,
    ExportFull,
    Reingest,
    ExportDelta,
    /// Re-ingest + export delta, as one job: what an operator runs every hour.
    HourlyCycle,
    VerifyFull,
    VerifyDelta,
    ImportFull,
    ImportDelta,
    /// `publish` of the imported store after the full import (first version of the tree).
    PublishFull,
    /// `publish` after the delta import (incremental from the first version).
    PublishDelta,
    Rebuild,
    /// `zstd -d` of the full bundle to one stream.
    BundleDecompress,
    /// floor-bundle: `zstd -T0 -3` of that stream.
    FloorBundle,
    BundleB3,
    BundleSha,
    /// `zstd -d | tar -x` of the full bundle.
    Extract,
}

impl Job {
    pub fn label(self) -> &'static str {
        match self {
            Job::Generate => "generate gen 0",
            Job::Churn => "churn to gen 1",
            Job::HashInputs => "hash the inputs (gen 0)",
            Job::ShaInputs => "hash the inputs (gen 0)",
            Job::HashInputs1 => "hash the inputs (gen 1)",
            Job::FloorInput => "floor-input: archive + compress the inputs",
            Job::ResticBackup => "backup the inputs (gen 0)",
            Job::ResticBackup1 => "backup the inputs (gen 1, incremental)",
            Job::ResticRestore => "restore the inputs (latest)",
            Job::FloorDelta => "floor-delta: compress the changed records alone",
            Job::Ingest => "initial ingest (4 commands)",
            Job::ExportFull => "export full",
            Job::Reingest => "hourly re-ingest, 1% churn (4 commands)",
            Job::ExportDelta => "export delta",
            Job::HourlyCycle => "hourly cycle (re-ingest + export delta)",
            Job::VerifyFull => "verify full bundle",
            Job::VerifyDelta => "verify delta bundle",
            Job::ImportFull => "import full (empty store)",
            Job::ImportDelta => "import delta",
            Job::PublishFull => "publish after the full import",
            Job::PublishDelta => "publish after the delta import (incremental)",
            Job::Rebuild => "rebuild (full + delta, with its verification)",
            Job::BundleDecompress => "decompress the full bundle to one stream",
            Job::FloorBundle => "floor-bundle: compress the bundle's content",
            Job::BundleB3 => "hash the bundle's content",
            Job::BundleSha => "hash the bundle's content",
            Job::Extract => "extract the full bundle",
        }
    }

    pub fn tool(self) -> &'static str {
        match self {
            Job::Generate | Job::Churn => "smgen",
            Job::HashInputs | Job::HashInputs1 | Job::BundleB3 => "b3sum",
            Job::ShaInputs | Job::BundleSha => "sha256sum",
            Job::FloorInput => "tar --sort=name | zstd -T0 -3",
            Job::ResticBackup | Job::ResticBackup1 => "restic backup",
            Job::ResticRestore => "restic restore",
            Job::FloorDelta => "comm -13 + zstd -3",
            Job::Ingest | Job::Reingest => "stellamirror ingest",
            Job::ExportFull => "stellamirror export full",
            Job::ExportDelta => "stellamirror export delta",
            Job::HourlyCycle => "stellamirror ingest + export delta",
            Job::VerifyFull | Job::VerifyDelta => "stellamirror verify",
            Job::ImportFull | Job::ImportDelta => "stellamirror import",
            Job::PublishFull | Job::PublishDelta => "stellamirror publish",
            Job::Rebuild => "stellamirror rebuild",
            Job::BundleDecompress => "zstd -d",
            Job::FloorBundle => "zstd -T0 -3",
            Job::Extract => "zstd -d | tar -x",
        }
    }
}

/// One line of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    pub job: Job,
    /// Logical evidence bytes the job handles (MB/s is computed from these).
    pub in_bytes: Option<u64>,
    pub m: Measured,
    pub out_bytes: Option<u64>,
    /// Ratios to the floors of the same run (filled in once all rows exist), or what the row is.
    pub note: String,
}

impl Row {
    pub fn new(job: Job, in_bytes: Option<u64>, m: Measured, out_bytes: Option<u64>) -> Row {
        let out_bytes = if m.outcome.is_ok() { out_bytes } else { None };
        Row {
            job,
            in_bytes,
            m,
            out_bytes,
            note: String::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.m.outcome.is_ok()
    }

    pub fn mb_per_s(&self) -> Option<f64> {
        match (self.ok(), self.in_bytes) {
            (true, Some(b)) if self.m.wall_s > 0.0 => Some(b as f64 / 1e6 / self.m.wall_s),
            _ => None,
        }
    }

    pub fn rss_mib(&self) -> Option<f64> {
        self.m.rss_kib.filter(|_| self.ok()).map(|k| k as f64 / 1024.0)
    }
}

#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub figure: String,
    /// None: could not be evaluated (a step is missing).
    pub met: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct ScalePoint {
    pub n: u64,
    pub churned: u64,
    pub delta: Measured,
    pub delta_bytes: Option<u64>,
    pub ingest: Measured,
    /// `b3sum` of the churned generation's inputs: the floor of its re-ingest.
    pub hash: Measured,
    /// The changed records alone at `zstd -3` (floor-delta bytes).
    pub floor_bytes: Option<u64>,
}

pub struct Report {
    pub date: String,
    pub n: u64,
    pub title: String,
    pub machine: String,
    pub dataset: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub scaling: Vec<ScalePoint>,
    pub notes: Vec<String>,
}

fn mb(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}", b as f64 / 1e6))
        .unwrap_or_else(|| "–".into())
}

fn secs(m: &Measured) -> String {
    if m.outcome.is_ok() {
        format!("{:.2}", m.wall_s)
    } else {
        "–".into()
    }
}

fn rss(m: &Measured) -> String {
    match (&m.outcome, m.rss_kib) {
        (Outcome::Ok, Some(k)) => format!("{:.0}", k as f64 / 1024.0),
        _ => "–".into(),
    }
}

fn row_cells(r: &Row) -> Vec<String> {
    let note = if r.ok() { r.note.clone() } else { r.m.outcome.label() };
    vec![
        r.job.label().to_string(),
        r.job.tool().to_string(),
        mb(r.in_bytes),
        secs(&r.m),
        match (&r.m.outcome, r.m.cpu_s) {
            (Outcome::Ok, Some(c)) => format!("{c:.2}"),
            _ => "–".into(),
        },
        r.mb_per_s().map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into()),
        mb(r.out_bytes),
        rss(&r.m),
        note,
    ]
}

const HEADER: [&str; 9] = [
    "job",
    "tool",
    "in MB",
    "wall s",
    "CPU s",
    "MB/s",
    "out MB",
    "peak RSS MiB",
    "vs floor / note",
];

fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header
            .iter()
            .map(|h| h.replace('|', "\\|"))
            .collect::<Vec<_>>()
            .join(" | "),
        " --- |".repeat(header.len())
    );
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

/// Plain aligned table for the terminal.
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(row_cells).collect();
    let mut width: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate().take(HEADER.len() - 1) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            if i < HEADER.len() - 1 {
                let pad = width[i].saturating_sub(c.chars().count());
                if i >= 2 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
                s.push_str("  ");
            } else {
                s.push_str(c);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for r in &cells {
        out.push_str(&line(r));
    }
    out
}

fn met_label(t: &Target) -> &'static str {
    match t.met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "pending",
    }
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## {} — {}\n", r.title, r.date);
    let _ = writeln!(s, "{}\n", r.machine.trim_end());
    let _ = writeln!(s, "{}\n", r.dataset.trim_end());
    s.push_str(&md_table(&HEADER, &r.rows.iter().map(row_cells).collect::<Vec<_>>()));
    s.push_str("\nTargets:\n\n");
    let trows: Vec<Vec<String>> = r
        .targets
        .iter()
        .map(|t| vec![t.name.clone(), t.figure.clone(), met_label(t).into()])
        .collect();
    s.push_str(&md_table(&["target", "figure", "result"], &trows));
    if !r.scaling.is_empty() {
        s.push_str("\nScaling at a fixed absolute churn (same shares as above):\n\n");
        let srows: Vec<Vec<String>> = r
            .scaling
            .iter()
            .map(|p| {
                vec![
                    crate::scale::summary::group(p.n),
                    crate::scale::summary::group(p.churned),
                    secs(&p.ingest),
                    secs(&p.hash),
                    if p.delta.outcome.is_ok() {
                        secs(&p.delta)
                    } else {
                        p.delta.outcome.label()
                    },
                    mb(p.delta_bytes),
                    mb(p.floor_bytes),
                ]
            })
            .collect();
        s.push_str(&md_table(
            &[
                "N",
                "records touched",
                "re-ingest s (4 commands)",
                "b3sum of the inputs s",
                "export delta s",
                "delta MB",
                "floor-delta MB",
            ],
            &srows,
        ));
        if let Some(g) = scaling_growth(&r.scaling) {
            let _ = writeln!(s, "\n{g}");
        }
    }
    if !r.notes.is_empty() {
        s.push('\n');
        for n in &r.notes {
            let _ = writeln!(s, "* {n}");
        }
    }
    s
}

/// "100k → 1M: re-ingest grows a×, delta b×" for the smallest and largest point.
pub fn scaling_growth(points: &[ScalePoint]) -> Option<String> {
    let (a, b) = (points.first()?, points.last()?);
    if a.n == b.n {
        return None;
    }
    let grow = |x: &Measured, y: &Measured| {
        (x.outcome.is_ok() && y.outcome.is_ok() && x.wall_s > 0.0).then(|| y.wall_s / x.wall_s)
    };
    let f = |g: Option<f64>| g.map(|g| format!("{g:.2}×")).unwrap_or_else(|| "–".into());
    Some(format!(
        "From N = {} to N = {} at equal absolute churn: re-ingest grows {}, export delta {}.",
        crate::scale::summary::group(a.n),
        crate::scale::summary::group(b.n),
        f(grow(&a.ingest, &b.ingest)),
        f(grow(&a.delta, &b.delta))
    ))
}

/// Replaces this N's section of the doc (between markers) or appends it; everything outside the
/// markers (the hand-written method text, other N) is kept as is.
pub fn update_doc(path: &Path, n: u64, section: &str) -> std::io::Result<()> {
    let begin = format!("<!-- smscale:begin n={n} -->");
    let end = format!("<!-- smscale:end n={n} -->");
    let block = format!("{begin}\n{}\n{end}\n", section.trim_end());
    let old = fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            let after = old[e + end.len()..].trim_start_matches('\n');
            format!(
                "{}{block}{}{after}",
                &old[..b],
                if after.is_empty() { "" } else { "\n" }
            )
        }
        _ => format!("{}\n\n{block}", old.trim_end()),
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, new)
}

/// First line of a command's output (stdout, else stderr), or "not installed".
pub fn capture(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(_) => "not installed".into(),
    }
}

fn capture_all(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
        .unwrap_or_else(|_| "unavailable".into())
}

/// Machine description: CPU, cores, memory, kernel, the work file system, `nproc`, `free -g`.
pub fn machine(work: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let df = capture_all("df", &["-hT", &work.to_string_lossy()]);
    format!(
        "Machine: {model}, {cores} cores (`nproc` = {}), {mem_gib:.1} GiB memory, {}; work dir file system: `{}`.\n\n```\n$ free -g\n{}\n```",
        capture("nproc", &[]),
        capture("uname", &["-srm"]),
        df.lines().last().unwrap_or("?").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        capture_all("free", &["-g"]),
    )
}

/// Versions of every tool in the table.
pub fn tool_versions(stellamirror: &Path) -> String {
    let sm = capture(&stellamirror.to_string_lossy(), &["--version"]);
    [
        format!("stellamirror: `{}`", if sm.is_empty() { "unknown".into() } else { sm }),
        format!("smgen: `{}`", crate::generate::GENERATOR),
        format!(
            "workspace commit: `{}`{}",
            capture("git", &["rev-parse", "--short", "HEAD"]),
            if capture("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
                ""
            } else {
                " (with uncommitted changes)"
            }
        ),
        format!("tar: `{}`", capture("tar", &["--version"])),
        format!("zstd: `{}`", capture("zstd", &["--version"])),
        format!("b3sum: `{}`", capture("b3sum", &["--version"])),
        format!("sha256sum: `{}`", capture("sha256sum", &["--version"])),
        format!("restic: `{}`", capture("restic", &["version"])),
    ]
    .join("; ")
}
