//! Summaries of a run: the dataset description, the "vs floor" notes and the targets.

use std::path::Path;

use super::pipeline::Options;
use super::report::{Row, Target};
use crate::generate::Manifest;

/// Wall-time ratio of two successful rows.
pub fn ratio(a: &Row, b: &Row) -> Option<f64> {
    (a.ok() && b.ok() && b.m.wall_s > 0.0).then(|| a.m.wall_s / b.m.wall_s)
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
    files: usize,
    removed: usize,
    bytes: u64,
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
                 {} files new or changed ({:.1} MB), {} removed; {:.1} MB in all.",
                o.churn, k(&r.advisories), k(&r.vex_statements), k(&r.sboms), k(&r.policy_evaluations), group(files as u64), bytes as f64 / 1e6,
                removed, m1.bytes.total() as f64 / 1e6
            ));
        }
    }
    s
}

/// Fills the "vs floor" notes of the stellamirror rows and evaluates the targets.
pub fn annotate(rows: &mut [Row], first_sm: usize, n: u64) -> Vec<Target> {
    let find = |rows: &[Row], job: &str| rows.iter().find(|r| r.job == job).cloned();
    let (Some(tarz), Some(extract), Some(b3), Some(restic0)) = (
        find(rows, "archive + compress (full)"),
        find(rows, "decompress + extract (full)"),
        rows.iter().find(|r| r.tool == "b3sum").cloned(),
        find(rows, "backup gen 0"),
    ) else {
        return Vec::new();
    };
    let dfloor = find(rows, "archive + compress changed files");
    let full = find(rows, "export full");
    let decompress = find(rows, "decompress only (full)");
    let snapshot: Vec<Row> = rows.to_vec();
    let rows_snapshot = snapshot.as_slice();
    let mut targets = Vec::new();
    for row in rows[first_sm..].iter_mut() {
        let note = match row.job.as_str() {
            "export full" => ratio(row, &tarz).map(|x| format!("{x:.2}× compression floor")),
            "import full (fresh store)" | "rebuild (full + delta)" => ratio(row, &extract).map(|x| {
                let strict = decompress.as_ref().and_then(|d| ratio(row, d));
                let strict = strict
                    .map(|y| format!("; {y:.1}× decompress floor"))
                    .unwrap_or_default();
                format!("{x:.2}× extract floor{strict}")
            }),
            "export delta" => full
                .as_ref()
                .and_then(|f| ratio(row, f))
                .map(|x| format!("{:.1}% of full export", x * 100.0)),
            "verify full bundle" => ratio(row, &b3).map(|x| format!("{x:.2}× b3sum floor")),
            "import delta" => find(rows_snapshot, "import full (fresh store)")
                .and_then(|f| ratio(row, &f))
                .map(|x| format!("{:.1}% of full import", x * 100.0)),
            "ingest gen 0 (4 kinds)" => match (row.mb_per_s(), restic0.mb_per_s()) {
                (Some(a), Some(b)) => Some(format!("{:.2}× restic backup throughput", a / b)),
                _ => None,
            },
            _ => None,
        };
        row.note = note.unwrap_or_default();
    }
    if let Some(df) = &dfloor {
        if let Some(d) = find(rows, "export delta") {
            if let Some(x) = ratio(&d, df) {
                let row = rows.iter_mut().find(|r| r.job == "export delta");
                if let Some(row) = row {
                    row.note = format!("{}; {x:.2}× delta floor", row.note);
                }
            }
        }
    }
    let get = |job: &str| find(rows, job);
    let t = |name: &str, fig: Option<(String, bool)>| Target {
        name: name.into(),
        met: fig.as_ref().map(|f| f.1),
        figure: fig
            .map(|f| f.0)
            .unwrap_or_else(|| "pending: stellamirror step not available".into()),
    };
    let scope = if n == 1_000_000 {
        String::new()
    } else {
        format!(" (measured at N = {}; the target is for 1M)", group(n))
    };
    targets.push(t(
        "full export ≤ 1.25× compression floor",
        get("export full").and_then(|f| ratio(&f, &tarz)).map(|x| {
            (
                format!("{x:.2}× ({:.2} s vs {:.2} s)", x * tarz.m.wall_s, tarz.m.wall_s),
                x <= 1.25,
            )
        }),
    ));
    targets.push(t(
        "delta (1% churn) ≤ 5% of full export",
        match (get("export delta"), &full) {
            (Some(d), Some(f)) => ratio(&d, f).map(|x| {
                let size = match (d.out_bytes, f.out_bytes) {
                    (Some(a), Some(b)) if b > 0 => {
                        format!("; size {:.1}%", a as f64 * 100.0 / b as f64)
                    }
                    _ => String::new(),
                };
                (format!("{:.1}% of full export time{size}{scope}", x * 100.0), x <= 0.05)
            }),
            _ => None,
        },
    ));
    targets.push(t(
        "full import ≤ 2× extract floor",
        get("import full (fresh store)")
            .and_then(|i| ratio(&i, &extract))
            .map(|x| {
                (
                    format!("{x:.2}× ({:.2} s vs {:.2} s)", x * extract.m.wall_s, extract.m.wall_s),
                    x <= 2.0,
                )
            }),
    ));
    targets.push(t(
        "ingest ≥ restic backup throughput",
        get("ingest gen 0 (4 kinds)").and_then(|i| match (i.mb_per_s(), restic0.mb_per_s()) {
            (Some(a), Some(b)) => Some((format!("{a:.1} MB/s vs restic {b:.1} MB/s"), a >= b)),
            _ => None,
        }),
    ));
    let peak = rows[first_sm..]
        .iter()
        .filter(|r| r.ok())
        .filter_map(|r| r.m.rss_kib.map(|k| (k, r.job.clone())))
        .max();
    targets.push(t(
        "peak RSS ≤ 1 GiB at 1M",
        peak.map(|(k, job)| (format!("{:.0} MiB ({job}){scope}", k as f64 / 1024.0), k <= 1024 * 1024)),
    ));
    targets
}
