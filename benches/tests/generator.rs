//! The generator's contract: same seed ⇒ identical bytes; churn is deterministic and its
//! report states exactly what differs from the previous generation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use stellamirror_benches::churn::{self, Amount, Params};
use stellamirror_benches::fsio::walk_files;
use stellamirror_benches::generate::{self, Manifest};
use stellamirror_benches::scale::report::update_doc;

/// A fresh scratch directory per test (removed at the start, left for inspection on failure).
/// tmpfs when there is one: the test creates thousands of small files.
fn scratch(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("smgen-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk_files(root)
        .unwrap()
        .into_iter()
        .map(|(p, _)| (p.strip_prefix(root).unwrap().to_path_buf(), fs::read(&p).unwrap()))
        .collect()
}

/// id -> JSONL line
fn lines(dir: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(dir.join(generate::ADVISORIES))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), l.to_string())
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_bytes() {
    let d = scratch("det");
    let a = generate::generate(&d.join("a"), 2000, 7).unwrap();
    let b = generate::generate(&d.join("b"), 2000, 7).unwrap();
    assert_eq!(a, b);
    let (ta, tb) = (tree(&d.join("a")), tree(&d.join("b")));
    assert_eq!(ta.len(), tb.len());
    assert!(ta == tb, "trees differ");
    let c = generate::generate(&d.join("c"), 2000, 8).unwrap();
    assert_ne!(
        fs::read(d.join("a/advisories.jsonl")).unwrap(),
        fs::read(d.join("c/advisories.jsonl")).unwrap()
    );
    // Ratios the docs promise: N advisories, N/1000 subjects, ~N/10 statements and evaluations.
    assert_eq!(a.counts.advisories, 2000);
    assert_eq!(a.counts.sboms, 2);
    assert!(
        (100..=300).contains(&a.counts.vex_statements),
        "{}",
        a.counts.vex_statements
    );
    assert!(
        (100..=300).contains(&a.counts.policy_evaluations),
        "{}",
        a.counts.policy_evaluations
    );
    let per_pkg = 2000.0 / a.counts.packages.unwrap() as f64;
    assert!((3.0..=5.0).contains(&per_pkg), "{per_pkg} advisories per package");
    // The dataset holds the ingest inputs and its manifest, nothing else (the floors archive
    // exactly the inputs); sizes are OSV-like.
    let mut top: Vec<String> = fs::read_dir(d.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut expected: Vec<String> = generate::INPUT_PATHS.iter().map(|p| p.to_string()).collect();
    expected.push(generate::MANIFEST.into());
    expected.sort();
    assert_eq!(top, expected);
    let avg = a.bytes.advisories as f64 / 2000.0;
    assert!((1000.0..=2000.0).contains(&avg), "{avg} bytes per advisory");
    drop(c);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn churn_is_deterministic_and_exact() {
    let d = scratch("churn");
    let v0 = d.join("v0");
    generate::generate(&v0, 2000, 11).unwrap();
    let p = Params {
        amount: Amount::Fraction(0.05),
        ..Params::default()
    };
    let (m1, r1) = churn::churn(&v0, &d.join("v1"), &p).unwrap();
    let (m1b, r1b) = churn::churn(&v0, &d.join("v1b"), &p).unwrap();
    assert_eq!((&m1, &r1), (&m1b, &r1b));
    assert!(
        tree(&d.join("v1")) == tree(&d.join("v1b")),
        "churn is not deterministic"
    );

    // 5% of 2000 = 100 touched: 70 changed, 20 added, 10 removed.
    let a = &r1.advisories;
    assert_eq!((a.changed, a.added, a.removed, a.after), (70, 20, 10, 2010));
    let (before, after) = (lines(&v0), lines(&d.join("v1")));
    let removed: BTreeSet<String> = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
    let added: BTreeSet<String> = after.keys().filter(|k| !before.contains_key(*k)).cloned().collect();
    let changed: BTreeSet<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(removed, a.removed_ids.iter().cloned().collect());
    assert_eq!(added, a.added_ids.iter().cloned().collect());
    assert_eq!(changed, a.changed_ids.iter().cloned().collect());
    assert_eq!(m1.counts.advisories, after.len() as u64);

    // Other kinds: counts in the report match the files.
    let evals = fs::read_to_string(d.join("v1").join(generate::POLICY_FILE))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(evals, r1.policy_evaluations.after);
    let statements: u64 = walk_files(&d.join("v1/vex"))
        .unwrap()
        .iter()
        .map(|(p, _)| {
            serde_json::from_slice::<serde_json::Value>(&fs::read(p).unwrap()).unwrap()["statements"]
                .as_array()
                .unwrap()
                .len() as u64
        })
        .sum();
    assert_eq!(statements, r1.vex_statements.after);
    assert_eq!(Manifest::read(&d.join("v1")).unwrap().generation, 1);

    // An absolute amount, and a second generation on top of the first.
    let p = Params {
        amount: Amount::Records(10),
        ..Params::default()
    };
    let (m2, r2) = churn::churn(&d.join("v1"), &d.join("v2"), &p).unwrap();
    assert_eq!(
        (r2.advisories.changed, r2.advisories.added, r2.advisories.removed),
        (7, 2, 1)
    );
    assert_eq!(m2.counts.advisories, 2011);
    assert_eq!(m2.next_serial, m1.next_serial + 2);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn doc_section_is_replaced_not_duplicated() {
    let d = scratch("doc");
    let doc = d.join("benchmarks.md");
    fs::write(&doc, "# Benchmarks\n\nhand-written method\n").unwrap();
    update_doc(&doc, 100, "## first").unwrap();
    update_doc(&doc, 200, "## other").unwrap();
    update_doc(&doc, 100, "## second").unwrap();
    let text = fs::read_to_string(&doc).unwrap();
    assert!(text.starts_with("# Benchmarks\n\nhand-written method\n"));
    assert!(text.contains("## second") && !text.contains("## first") && text.contains("## other"));
    assert_eq!(text.matches("smscale:begin n=100 ").count(), 1);
    fs::remove_dir_all(&d).unwrap();
}
