//! Ingest costs what changed: unchanged documents are recognised by their input digest
//! and skipped (not parsed, nothing written), changed ones are parsed and applied, and
//! the result is always the state a full parse of the same input gives.
use std::path::{Path, PathBuf};

use stellamirror_tests::{data, ingest, p, sm, state_root, status};

fn sequence(store: &Path) -> u64 {
    status(store, "acme")["storeSequence"].as_u64().expect("storeSequence")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    f
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// `line` with its `summary` replaced (a changed advisory with the same id).
fn edited(line: &str, summary: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["summary"] = serde_json::Value::String(summary.into());
    serde_json::to_string(&v).unwrap()
}

/// The four kinds of the committed sample, each as a complete source.
fn ingest_all(store: &Path) -> Vec<serde_json::Value> {
    let runs: [(&[&str], PathBuf); 4] = [
        (&["--source", "go", "--complete"], data("osv/go-new.jsonl")),
        (&["--source", "vex", "--complete"], data("vex/rancher-new")),
        (&["--source", "sbom", "--complete"], data("sboms")),
        (
            &["--source", "policy", "--complete", "--kind", "policy-evaluations"],
            data("policy/evaluations.jsonl"),
        ),
    ];
    runs.iter()
        .map(|(args, path)| ingest(store, "acme", args, &[path]).ok().json())
        .collect()
}

/// The state root a fresh store reaches from the same inputs (every document parsed).
fn fresh_root(dir: &Path, name: &str, runs: &[(&[&str], &Path)]) -> String {
    let store = dir.join(name);
    for (args, path) in runs {
        ingest(&store, "acme", args, &[path]).ok();
    }
    state_root(&store, "acme")
}

#[test]
fn reingesting_an_unchanged_snapshot_skips_every_document_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let first = ingest_all(&store);
    assert!(first.iter().all(|r| r["unchanged"] == 0));
    let root = state_root(&store, "acme");
    let before = sequence(&store);
    for r in ingest_all(&store) {
        assert_eq!(r["parsed"], 0, "{r}");
        assert_eq!(r["unchanged"], r["documents"], "{r}");
        assert!(r["documents"].as_u64().unwrap() > 0);
        assert_eq!(r["committed"], false);
    }
    // RocksDB's sequence number counts every key written, in any column family (records
    // included): the re-ingest wrote nothing at all.
    assert_eq!(sequence(&store), before);
    assert_eq!(state_root(&store, "acme"), root);
}

#[test]
fn a_changed_line_is_parsed_and_applied_and_the_others_are_skipped() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let go = data("osv/go-new.jsonl");
    ingest(&store, "acme", &["--source", "go", "--complete"], &[&go]).ok();
    let before = sequence(&store);
    let mut ls = lines_of(&go);
    ls[7] = edited(&ls[7], "changed upstream");
    let changed = write(t.path(), "go.jsonl", &(ls.join("\n") + "\n"));
    let r = ingest(&store, "acme", &["--source", "go", "--complete"], &[&changed])
        .ok()
        .json();
    assert_eq!(r["parsed"], 1);
    assert_eq!(r["unchanged"].as_u64().unwrap() as usize, ls.len() - 1);
    assert_eq!(r["counts"]["advisories.raw"]["changed"], 1);
    assert_eq!(r["counts"]["advisories.normalized"]["changed"], 1);
    assert_eq!(r["counts"]["advisories.raw"]["removed"], 0);
    assert!(sequence(&store) > before);
    let args: &[&str] = &["--source", "go", "--complete"];
    assert_eq!(
        state_root(&store, "acme"),
        fresh_root(t.path(), "fresh", &[(args, &changed)])
    );
}

#[test]
fn complete_removes_the_absent_records_while_skipping_the_unchanged_ones() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let go = data("osv/go-new.jsonl");
    let args: &[&str] = &["--source", "go", "--complete"];
    ingest(&store, "acme", args, &[&go]).ok();
    let mut ls = lines_of(&go);
    let n = ls.len();
    ls.drain(10..13);
    let smaller = write(t.path(), "go.jsonl", &(ls.join("\n") + "\n"));
    let r = ingest(&store, "acme", args, &[&smaller]).ok().json();
    assert_eq!(r["parsed"], 0);
    assert_eq!(r["unchanged"].as_u64().unwrap() as usize, n - 3);
    assert_eq!(r["counts"]["advisories.raw"]["removed"], 3);
    assert_eq!(r["counts"]["advisories.normalized"]["removed"], 3);
    assert_eq!(
        status(&store, "acme")["kinds"]["advisories.raw"]["records"]
            .as_u64()
            .unwrap() as usize,
        n - 3
    );
    assert_eq!(
        state_root(&store, "acme"),
        fresh_root(t.path(), "fresh", &[(args, &smaller)])
    );
}

/// Issue 17, finding 7: two copies of one advisory with different content and the same
/// `modified` in one input used to resolve "last wins" without a word. Now they are
/// refused naming both lines, whether the store's copy is the one skipped unparsed or
/// not; with --keep-going the first stands and the other is listed.
#[test]
fn duplicate_ids_with_different_content_in_one_input_are_refused_naming_both_lines() {
    let t = tempfile::tempdir().unwrap();
    let go = data("osv/go-new.jsonl");
    let args: &[&str] = &["--source", "go"];
    let ls = lines_of(&go);
    let n = ls.len();
    let changed = edited(&ls[3], "changed upstream");
    // The live version after a changed one, and the reverse; (lines named, first copy).
    let orders = [
        ([vec![changed.clone()], ls.clone()].concat(), (1, 5)),
        ([ls.clone(), vec![changed.clone()]].concat(), (4, n + 1)),
    ];
    for (i, (order, (a, b))) in orders.iter().enumerate() {
        let input = write(t.path(), &format!("in{i}.jsonl"), &(order.join("\n") + "\n"));
        let store = t.path().join(format!("s{i}"));
        ingest(&store, "acme", args, &[&go]).ok();
        let before = state_root(&store, "acme");
        let r = ingest(&store, "acme", args, &[&input])
            .fails_with("ERR_INPUT_DUPLICATE_ID")
            .json();
        let msg = r["error"]["message"].as_str().unwrap();
        let name = format!("in{i}.jsonl");
        assert!(
            msg.contains(&format!("{name}:{a}")) && msg.contains(&format!("{name}:{b}")),
            "{msg}"
        );
        assert_eq!(state_root(&store, "acme"), before, "order {i}: nothing changed");
        let kept = ingest(&store, "acme", &["--source", "go", "--keep-going"], &[&input]);
        assert_eq!(kept.code, 4, "order {i}: {}", kept.stderr);
        assert_eq!(kept.json()["skipped"][0]["kind"], "DuplicateId", "{}", kept.stdout);
        // The first copy stands: the state of an input holding it alone.
        let mut first = order.clone();
        first.remove(if i == 0 { 4 } else { n });
        let alone = write(t.path(), &format!("alone{i}.jsonl"), &(first.join("\n") + "\n"));
        let expected = fresh_root(t.path(), &format!("fresh{i}"), &[(args, &alone)]);
        assert_eq!(state_root(&store, "acme"), expected, "order {i}");
    }
    // Identical copies are one document, counted.
    let twice = write(t.path(), "twice.jsonl", &(ls.join("\n") + "\n" + &ls[3] + "\n"));
    let r = ingest(&t.path().join("s2"), "acme", args, &[&twice]).ok().json();
    assert_eq!(r["identicalDuplicates"], 1);
}

#[test]
fn the_same_bytes_under_another_context_are_parsed_again() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let sbom = data("sboms");
    ingest(&store, "acme", &["--source", "sbom"], &[&sbom]).ok();
    // A different --subject makes different records from the same bytes.
    let file = std::fs::read_dir(&sbom).unwrap().flatten().next().unwrap().path();
    let r = ingest(
        &store,
        "acme",
        &["--source", "sbom", "--subject", "pkg:oci/other"],
        &[&file],
    )
    .ok()
    .json();
    assert_eq!(r["parsed"], 1);
    // The same document (serial number) under another subject: the record moves.
    assert_eq!(r["counts"]["sboms.raw"]["changed"], 1);
    sm(["verify", "--store", p(&store)]).ok();
}
