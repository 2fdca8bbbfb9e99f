//! Summaries of a run: the dataset description, the "vs floor" notes and the targets.

use std::path::Path;

use super::pipeline::{Data, Options};
use super::report::{scaling_growth, Job, Row, ScalePoint, Target};
use crate::generate::Manifest;

/// Wall-time ratio of two successful rows.
pub fn ratio(a: &Row, b: &Row) -> Option<f64> {
    (a.ok() && b.ok() && b.m.wall_s > 0.0).then(|| a.m.wall_s / b.m.wall_s)
}

/// Output-bytes ratio of two successful rows.
pub fn bytes_ratio(a: &Row, b: &Row) -> Option<f64> {
    match (a.out_bytes, b.out_bytes) {
        (Some(x), Some(y)) if y > 0 && a.ok() && b.ok() => Some(x as f64 / y as f64),
        _ => None,
    }
}

/// 1234567 -> "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let parts: Vec<&str> = s
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    parts.join(",")
}

pub fn describe(
    m0: &Manifest,
    m1: &Manifest,
    gen1: &Path,
    d: &Data,
    changed_bytes: Option<u64>,
    o: &Options,
) -> String {
    let c = &m0.counts;
    let mut s = format!(
        "Data (`smgen --n {} --seed {}`): {} advisories ({:.1} MB JSONL; {} affected packages), {} OpenVEX documents with {} statements ({:.1} MB), \
         {} CycloneDX SBOMs with {} components ({:.1} MB), {} policy evaluations ({:.1} MB); {:.1} MB in all.",
        o.n, o.seed, group(c.advisories), m0.bytes.advisories as f64 / 1e6, c.packages.map(group).unwrap_or_default(),
        group(c.vex_documents), group(c.vex_statements), m0.bytes.vex as f64 / 1e6, group(c.sboms), group(c.sbom_components),
        m0.bytes.sboms as f64 / 1e6, group(c.policy_evaluations), m0.bytes.policy as f64 / 1e6, m0.bytes.total() as f64 / 1e6
    );
    if let Ok(b) = std::fs::read(gen1.join(crate::generate::CHURN)) {
        if let Ok(r) = serde_json::from_slice::<crate::churn::Report>(&b) {
            let k = |x: &crate::churn::KindChurn| format!("{}/{}/{}", x.changed, x.added, x.removed);
            s.push_str(&format!(
                " Churn to generation 1 (`--churn {}`, changed/added/removed): advisories {}, VEX statements {}, SBOMs {}, evaluations {}; \
                 changed records alone {:.1} MB; {} input files new or changed, {} removed; {:.1} MB in all.",
                o.churn, k(&r.advisories), k(&r.vex_statements), k(&r.sboms), k(&r.policy_evaluations), changed_bytes.unwrap_or(0) as f64 / 1e6,
                group(d.changed.len() as u64), d.removed.len(), m1.bytes.total() as f64 / 1e6
            ));
        }
    }
    s
}

/// A ratio to a floor as a note fragment: "3.80× floor-input time".
fn frac(x: Option<f64>, what: &str) -> Option<String> {
    x.map(|x| format!("{x:.2}× {what}"))
}

/// The notes of one row: its ratios to the floors of the same run.
fn row_note(row: &Row, get: &dyn Fn(Job) -> Option<Row>) -> Vec<String> {
    let t = |job: Job, what: &str| get(job).and_then(|f| frac(ratio(row, &f), what));
    let b = |job: Job, what: &str| get(job).and_then(|f| frac(bytes_ratio(row, &f), what));
    let parts = match row.job {
        Job::FloorInput => vec![Some("floor-input".to_string())],
        Job::FloorBundle => vec![Some("floor-bundle".to_string())],
        Job::FloorDelta => vec![Some("floor-delta (bytes)".to_string())],
        Job::Ingest => vec![
            t(Job::ResticBackup, "restic backup"),
            t(Job::HashInputs, "b3sum of the inputs"),
        ],
        Job::ExportFull => vec![
            t(Job::FloorInput, "floor-input time"),
            b(Job::FloorInput, "floor-input bytes"),
            t(Job::FloorBundle, "floor-bundle time"),
        ],
        Job::Reingest | Job::HourlyCycle => vec![t(Job::HashInputs1, "b3sum of the inputs")],
        Job::ExportDelta => vec![
            b(Job::FloorDelta, "floor-delta bytes"),
            get(Job::ExportFull)
                .and_then(|f| ratio(row, &f))
                .map(|x| format!("{:.1}% of export full time", x * 100.0)),
        ],
        Job::VerifyFull => vec![
            t(Job::ExportFull, "export full"),
            t(Job::BundleB3, "b3sum of the bundle's content"),
        ],
        Job::VerifyDelta | Job::ImportDelta => vec![t(Job::ExportDelta, "export delta")],
        Job::ImportFull => vec![t(Job::ResticRestore, "restic restore"), t(Job::Extract, "extract")],
        Job::PublishFull => vec![t(Job::ImportFull, "import full")],
        Job::PublishDelta => vec![t(Job::ImportDelta, "import delta")],
        Job::Rebuild => vec![t(Job::ResticRestore, "restic restore")],
        _ => Vec::new(),
    };
    parts.into_iter().flatten().collect()
}

/// Fills the ratio notes of every row and evaluates the open issues' targets.
pub fn annotate(rows: &mut [Row], n: u64, scaling: &[ScalePoint]) -> Vec<Target> {
    let snapshot: Vec<Row> = rows.to_vec();
    let get = |job: Job| snapshot.iter().find(|r| r.job == job).cloned();
    for row in rows.iter_mut() {
        let mut parts = row_note(row, &get);
        if !row.note.is_empty() {
            parts.push(std::mem::take(&mut row.note));
        }
        row.note = parts.join("; ");
    }
    targets(&get, n, scaling)
}

/// One target: a figure and whether it is met (None: a row it needs did not run).
fn target(name: &str, fig: Option<(String, bool)>) -> Target {
    Target {
        name: name.into(),
        met: fig.as_ref().map(|f| f.1),
        figure: fig
            .map(|f| f.0)
            .unwrap_or_else(|| "pending: a step it needs did not run".into()),
    }
}

/// `job` against `floor` by wall time: "1.23× (4.56 s vs 3.70 s)", met when ≤ `bound`.
fn time_target(get: &dyn Fn(Job) -> Option<Row>, job: Job, floor: Job, bound: f64) -> Option<(String, bool)> {
    let (a, f) = (get(job)?, get(floor)?);
    let x = ratio(&a, &f)?;
    Some((
        format!("{x:.2}× ({:.2} s vs {:.2} s)", a.m.wall_s, f.m.wall_s),
        x <= bound,
    ))
}

fn bytes_target(get: &dyn Fn(Job) -> Option<Row>, job: Job, floor: Job, bound: f64) -> Option<(String, bool)> {
    let (a, f) = (get(job)?, get(floor)?);
    let x = bytes_ratio(&a, &f)?;
    let mb = |r: &Row| r.out_bytes.unwrap_or(0) as f64 / 1e6;
    Some((format!("{x:.2}× ({:.1} MB vs {:.1} MB)", mb(&a), mb(&f)), x <= bound))
}

fn rss_target(get: &dyn Fn(Job) -> Option<Row>, jobs: &[Job], mib: f64) -> Option<(String, bool)> {
    let peak = jobs
        .iter()
        .filter_map(|j| get(*j))
        .filter_map(|r| r.rss_mib().map(|m| (m, r.job)))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some((format!("{:.0} MiB ({})", peak.0, peak.1.label()), peak.0 <= mib))
}

/// The targets of the open performance issues (13: hourly cycle, 14: DR import/rebuild,
/// 15: bundle format v2), each against its floor of this run. They are set for 1M.
fn targets(get: &dyn Fn(Job) -> Option<Row>, n: u64, scaling: &[ScalePoint]) -> Vec<Target> {
    let abs = |job: Job, secs: f64| {
        get(job)
            .filter(Row::ok)
            .map(|r| (format!("{:.2} s", r.m.wall_s), r.m.wall_s <= secs))
    };
    let both = |a: Option<(String, bool)>, b: Option<(String, bool)>| match (a, b) {
        (Some(a), Some(b)) => Some((format!("{}; {}", a.0, b.0), a.1 && b.1)),
        _ => None,
    };
    let mut t = vec![
        target(
            "#13 hourly re-ingest ≤ 3× b3sum of the inputs and ≤ 10 s",
            both(
                time_target(get, Job::Reingest, Job::HashInputs1, 3.0),
                abs(Job::Reingest, 10.0),
            ),
        ),
        target(
            "#13 hourly cycle (re-ingest + export delta) ≤ 12 s",
            abs(Job::HourlyCycle, 12.0),
        ),
        target(
            "#13 initial ingest ≤ 1.0× restic backup",
            time_target(get, Job::Ingest, Job::ResticBackup, 1.0),
        ),
        target(
            "#13 peak RSS of any ingest ≤ 512 MiB",
            rss_target(get, &[Job::Ingest, Job::Reingest], 512.0),
        ),
        target(
            "#14 import full ≤ 1.5× restic restore",
            time_target(get, Job::ImportFull, Job::ResticRestore, 1.5),
        ),
        target(
            "#14 import delta ≤ 2× export delta",
            time_target(get, Job::ImportDelta, Job::ExportDelta, 2.0),
        ),
        target(
            "#19 publish after the delta ≤ 2× import delta",
            time_target(get, Job::PublishDelta, Job::ImportDelta, 2.0),
        ),
        target(
            "#14 rebuild ≤ 2.5× restic restore",
            time_target(get, Job::Rebuild, Job::ResticRestore, 2.5),
        ),
        target(
            "#14 peak RSS of import and rebuild ≤ 512 MiB",
            rss_target(get, &[Job::ImportFull, Job::ImportDelta, Job::Rebuild], 512.0),
        ),
        target(
            "#15 full bundle bytes ≤ 1.3× floor-input bytes",
            bytes_target(get, Job::ExportFull, Job::FloorInput, 1.3),
        ),
        target(
            "#15 export full ≤ 1.5× floor-input time",
            time_target(get, Job::ExportFull, Job::FloorInput, 1.5),
        ),
        target(
            "#15 verify full ≤ 1.0× export full, peak RSS ≤ 256 MiB",
            both(
                time_target(get, Job::VerifyFull, Job::ExportFull, 1.0),
                rss_target(get, &[Job::VerifyFull], 256.0),
            ),
        ),
        target(
            "#15 delta bundle bytes ≤ 1.0× floor-delta bytes",
            bytes_target(get, Job::ExportDelta, Job::FloorDelta, 1.0),
        ),
    ];
    t.push(target(
        "#13 100k → 1M at equal churn: re-ingest ≤ 10×, delta ≤ 2×",
        growth(scaling),
    ));
    if n != 1_000_000 {
        for x in &mut t {
            x.figure = format!("{} (measured at N = {}; the target is for 1M)", x.figure, group(n));
        }
    }
    t
}

fn growth(points: &[ScalePoint]) -> Option<(String, bool)> {
    let (a, b) = (points.first()?, points.last()?);
    let ok = |m: &super::run::Measured| m.outcome.is_ok() && m.wall_s > 0.0;
    if a.n == b.n || !ok(&a.ingest) || !ok(&b.ingest) || !ok(&a.delta) || !ok(&b.delta) {
        return None;
    }
    let (gi, gd) = (b.ingest.wall_s / a.ingest.wall_s, b.delta.wall_s / a.delta.wall_s);
    Some((scaling_growth(points)?, gi <= 10.0 && gd <= 2.0))
}
