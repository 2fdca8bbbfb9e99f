//! Ingest: real corpora, idempotence, order independence, tenants, crash safety, bad input.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stellamirror_tests::{data, ingest, p, shared, sm, state_root, status};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn records(store: &Path, tenant: &str, collection: &str) -> u64 {
    status(store, tenant)["kinds"][collection]["records"].as_u64().unwrap()
}

/// The advisory corpora: the full Go + PyPA databases when ../shared/data is present,
/// the committed excerpts otherwise.
fn advisory_inputs() -> Vec<PathBuf> {
    match (shared("advisories/go.jsonl"), shared("advisories/pypa.jsonl")) {
        (Some(go), Some(pypa)) => vec![go, pypa],
        _ => vec![data("osv/go-new.jsonl"), data("osv/pypa.jsonl")],
    }
}

#[test]
fn real_osv_corpora_ingest_one_record_per_advisory() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let inputs = advisory_inputs();
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let r = ingest(&store, "acme", &["--source", "osv"], &refs).ok().json();
    let expected: usize = inputs.iter().map(|f| lines(f)).sum();
    assert_eq!(r["documents"].as_u64().unwrap() as usize, expected);
    assert_eq!(records(&store, "acme", "advisories.raw") as usize, expected);
    assert_eq!(records(&store, "acme", "advisories.normalized") as usize, expected);
}

#[test]
fn real_openvex_and_cyclonedx_ingest() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let vex = shared("vex/openvex/rancher-vexhub").unwrap_or_else(|| data("vex/rancher-new"));
    let docs = std::fs::read_dir(&vex).unwrap().count() as u64;
    ingest(&store, "acme", &["--source", "rancher"], &[&vex]).ok();
    assert_eq!(
        records(&store, "acme", "vex.raw"),
        docs,
        "one raw record per VEX document file"
    );
    assert!(records(&store, "acme", "vex.normalized") >= docs);
    let sboms = shared("sboms").unwrap_or_else(|| data("sboms"));
    ingest(&store, "acme", &["--source", "sboms"], &[&sboms]).ok();
    assert!(records(&store, "acme", "sboms.raw") >= 1);
    assert_eq!(
        records(&store, "acme", "sboms.raw"),
        records(&store, "acme", "sboms.normalized")
    );
}

#[test]
fn reingesting_identical_content_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let f = data("osv/go-old.jsonl");
    ingest(&store, "acme", &[], &[&f]).ok();
    let before = state_root(&store, "acme");
    let r = ingest(&store, "acme", &[], &[&f]).ok().json();
    assert_eq!(r["committed"], false);
    assert_eq!(state_root(&store, "acme"), before);
}

#[test]
fn same_documents_in_two_orders_give_the_same_state_root() {
    let t = tempfile::tempdir().unwrap();
    let go = data("osv/go-new.jsonl");
    let vex = data("vex/rancher-new");
    // Store A: files in one order. Store B: the other order, and the JSONL reversed.
    let reversed = t.path().join("reversed.jsonl");
    let mut ls: Vec<String> = std::fs::read_to_string(&go)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    ls.reverse();
    std::fs::write(&reversed, ls.join("\n") + "\n").unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    ingest(&a, "acme", &[], &[&go]).ok();
    ingest(&a, "acme", &[], &[&vex]).ok();
    ingest(&b, "acme", &[], &[&vex, &reversed]).ok();
    assert_eq!(state_root(&a, "acme"), state_root(&b, "acme"));
}

#[test]
fn tenants_never_see_each_others_records() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ingest(&store, "red", &[], &[&data("osv/go-old.jsonl")]).ok();
    ingest(&store, "blue", &[], &[&data("osv/pypa.jsonl")]).ok();
    assert_eq!(
        records(&store, "red", "advisories.raw") as usize,
        lines(&data("osv/go-old.jsonl"))
    );
    assert_eq!(
        records(&store, "blue", "advisories.raw") as usize,
        lines(&data("osv/pypa.jsonl"))
    );
    // Removing a PyPA id in red finds nothing there.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(data("osv/pypa.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    sm([
        "remove",
        "--store",
        p(&store),
        "--tenant",
        "red",
        "--json",
        first["id"].as_str().unwrap(),
    ])
    .fails_with("ERR_RECORD_NOT_FOUND");
}

#[test]
fn complete_source_removes_records_absent_from_the_input() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("expected.json")).unwrap()).unwrap();
    let exp = &expected["osv/go-old.jsonl -> osv/go-new.jsonl"];
    ingest(
        &store,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-old.jsonl")],
    )
    .ok();
    let r = ingest(
        &store,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-new.jsonl")],
    )
    .ok()
    .json();
    let c = &r["counts"]["advisories.raw"];
    assert_eq!(c["added"], exp["added"]);
    assert_eq!(c["changed"], exp["changed"]);
    assert_eq!(c["removed"], exp["removed"]);
    assert_eq!(
        records(&store, "acme", "advisories.raw"),
        exp["new_count"].as_u64().unwrap()
    );
    // Records of another source are untouched by this source's --complete.
    ingest(&store, "acme", &["--source", "pypa"], &[&data("osv/pypa.jsonl")]).ok();
    ingest(
        &store,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-new.jsonl")],
    )
    .ok();
    assert_eq!(
        records(&store, "acme", "advisories.raw") as usize,
        lines(&data("osv/go-new.jsonl")) + lines(&data("osv/pypa.jsonl"))
    );
}

#[test]
fn remove_by_id_drops_the_record_and_its_normalized_form() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ingest(&store, "acme", &[], &[&data("osv/go-old.jsonl")]).ok();
    let n = records(&store, "acme", "advisories.raw");
    sm(["remove", "--store", p(&store), "--tenant", "acme", "GO-2020-0001"]).ok();
    assert_eq!(records(&store, "acme", "advisories.raw"), n - 1);
    assert_eq!(records(&store, "acme", "advisories.normalized"), n - 1);
    let before = state_root(&store, "acme");
    sm([
        "remove",
        "--store",
        p(&store),
        "--tenant",
        "acme",
        "--json",
        "GO-2020-0003",
        "NOPE-1",
    ])
    .fails_with("ERR_RECORD_NOT_FOUND");
    assert_eq!(state_root(&store, "acme"), before, "a refused remove removes nothing");
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    f
}

#[test]
fn malformed_jsonl_line_is_refused_naming_file_and_line_and_nothing_is_committed() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ingest(&store, "acme", &[], &[&data("osv/pypa.jsonl")]).ok();
    let before = state_root(&store, "acme");
    let good = std::fs::read_to_string(data("osv/go-old.jsonl")).unwrap();
    let mut ls: Vec<&str> = good.lines().collect();
    ls.insert(3, "{\"id\": \"GO-BAD\", \"modified\": ");
    let bad = write(t.path(), "bad.jsonl", &(ls.join("\n") + "\n"));
    let r = ingest(&store, "acme", &[], &[&bad]).fails_with("ERR_INPUT_INVALID");
    assert!(r.stdout.contains("bad.jsonl:4"), "names file and line: {}", r.stdout);
    assert_eq!(state_root(&store, "acme"), before);
}

#[test]
fn osv_without_modified_is_invalid_with_a_json_pointer() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let f = write(
        t.path(),
        "x.json",
        r#"{"id":"OSV-1","modified":"yesterday","affected":[]}"#,
    );
    let r = ingest(&store, "acme", &[], &[&f]).fails_with("ERR_INPUT_INVALID");
    assert!(
        r.stdout.contains("/modified") && r.stdout.contains("x.json"),
        "{}",
        r.stdout
    );
}

#[test]
fn unknown_json_is_unrecognized_and_nothing_is_committed() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ingest(&store, "acme", &[], &[&data("osv/pypa.jsonl")]).ok();
    let before = state_root(&store, "acme");
    let f = write(t.path(), "weird.json", r#"{"hello":"world"}"#);
    let r = ingest(&store, "acme", &[], &[&data("osv/go-old.jsonl"), &f]).fails_with("ERR_INPUT_UNRECOGNIZED");
    assert!(r.stdout.contains("weird.json"));
    assert_eq!(state_root(&store, "acme"), before);
}

#[test]
fn keep_going_ingests_the_good_documents_and_lists_every_bad_one() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let good = std::fs::read_to_string(data("osv/go-old.jsonl")).unwrap();
    let n = good.lines().count();
    let body = format!("{good}not json\n{{\"hello\":1}}\n");
    let f = write(t.path(), "mixed.jsonl", &body);
    let r = ingest(&store, "acme", &["--keep-going"], &[&f]);
    assert_eq!(r.code, 4, "partial success has its own exit code");
    let j = r.json();
    let skipped = j["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0]["at"]["line"], n + 1);
    assert_eq!(skipped[1]["at"]["line"], n + 2);
    assert_eq!(records(&store, "acme", "advisories.raw") as usize, n);
}

#[test]
fn keep_going_with_complete_never_removes_records_because_of_a_bad_document() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ingest(
        &store,
        "acme",
        &["--source", "go", "--complete"],
        &[&data("osv/go-old.jsonl")],
    )
    .ok();
    let n = records(&store, "acme", "advisories.raw");
    let f = write(t.path(), "bad.jsonl", "not json\n");
    let r = ingest(&store, "acme", &["--source", "go", "--complete", "--keep-going"], &[&f]);
    assert_eq!(r.code, 4);
    assert_eq!(r.json()["completeWithheld"].as_u64().unwrap(), n);
    assert_eq!(records(&store, "acme", "advisories.raw"), n);
}

/// A JSONL file of `n` real Go advisories, made distinct by suffixing their ids.
fn big_input(dir: &Path, copies: usize) -> PathBuf {
    let src = std::fs::read_to_string(data("osv/go-new.jsonl")).unwrap();
    let mut out = String::new();
    for i in 0..copies {
        for l in src.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = format!("{}-copy{i}", v["id"].as_str().unwrap());
            v["id"] = serde_json::Value::String(id);
            out.push_str(&serde_json::to_string(&v).unwrap());
            out.push('\n');
        }
    }
    write(dir, "big.jsonl", &out)
}

#[test]
fn sigkill_during_ingest_leaves_the_store_at_a_committed_state() {
    let t = tempfile::tempdir().unwrap();
    let big = big_input(t.path(), 300);
    let base = data("osv/pypa.jsonl");
    // Reference roots: before (pypa only) and after (pypa + big).
    let reference = t.path().join("ref");
    ingest(&reference, "acme", &[], &[&base]).ok();
    let before = state_root(&reference, "acme");
    ingest(&reference, "acme", &[], &[&big]).ok();
    let after = state_root(&reference, "acme");
    assert_ne!(before, after);
    let mut saw_before = false;
    for (i, delay_ms) in [5u64, 40, 120, 250, 400, 700].into_iter().enumerate() {
        let store = t.path().join(format!("s{i}"));
        ingest(&store, "acme", &[], &[&base]).ok();
        let mut child = Command::new(stellamirror_tests::bin())
            .args(["--quiet", "ingest", "--store", p(&store), "--tenant", "acme", p(&big)])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let root = state_root(&store, "acme");
        assert!(
            root == before || root == after,
            "killed after {delay_ms} ms: root {root} is neither before nor after"
        );
        saw_before |= root == before;
        // Rerunning completes the ingest.
        ingest(&store, "acme", &[], &[&big]).ok();
        assert_eq!(state_root(&store, "acme"), after);
        sm(["verify", "--store", p(&store)]).ok();
    }
    assert!(
        saw_before,
        "at least one kill must land before the commit for this test to mean anything"
    );
}

#[test]
fn chunked_ingest_of_a_large_input_reaches_the_same_state_as_one_batch() {
    let t = tempfile::tempdir().unwrap();
    let big = big_input(t.path(), 40); // ~5 MB: 18 chunks with --batch-mib 1
    let vex = data("vex/rancher-new");
    let roots: Vec<(String, serde_json::Value)> = ["512", "1"]
        .iter()
        .map(|mib| {
            let store = t.path().join(format!("s{mib}"));
            ingest(
                &store,
                "acme",
                &["--source", "go", "--complete"],
                &[&data("osv/go-old.jsonl")],
            )
            .ok();
            ingest(&store, "acme", &["--source", "vex"], &[&vex]).ok();
            let r = ingest(
                &store,
                "acme",
                // Every go-old id is absent from the big input: all of them go.
                &[
                    "--source",
                    "go",
                    "--complete",
                    "--allow-mass-removal",
                    "--batch-mib",
                    mib,
                ],
                &[&big],
            )
            .ok()
            .json();
            sm(["verify", "--store", p(&store)]).ok();
            (state_root(&store, "acme"), r["counts"]["advisories.raw"].clone())
        })
        .collect();
    assert_eq!(roots[0], roots[1]);
    assert_eq!(
        roots[0].1["removed"].as_u64().unwrap() as usize,
        lines(&data("osv/go-old.jsonl"))
    );
}

#[test]
fn record_bounded_batches_reach_the_same_state_as_one_batch() {
    let t = tempfile::tempdir().unwrap();
    let roots: Vec<String> = ["64000", "50"]
        .iter()
        .map(|n| {
            let store = t.path().join(format!("s{n}"));
            ingest(
                &store,
                "acme",
                &["--source", "go", "--complete"],
                &[&data("osv/go-old.jsonl")],
            )
            .ok();
            let args = ["--source", "vex", "--complete", "--batch-records", n];
            ingest(&store, "acme", &args, &[&data("vex/rancher-new")]).ok();
            let args = ["--source", "go", "--complete", "--batch-records", n];
            ingest(&store, "acme", &args, &[&data("osv/go-new.jsonl")]).ok();
            sm(["verify", "--store", p(&store)]).ok();
            state_root(&store, "acme")
        })
        .collect();
    assert_eq!(roots[0], roots[1]);
}

#[test]
fn finding_3_an_empty_or_truncated_feed_with_complete_is_refused_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let go = data("osv/go-new.jsonl");
    let args = ["--source", "go", "--complete"];
    ingest(&store, "acme", &args, &[&go]).ok();
    let root = state_root(&store, "acme");
    let n = lines(&go);
    let all: Vec<String> = std::fs::read_to_string(&go)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let empty = write(t.path(), "empty.jsonl", "");
    let half = write(t.path(), "half.jsonl", &(all[..n / 2].join("\n") + "\n"));
    for f in [&empty, &half] {
        let r = ingest(&store, "acme", &args, &[f]).fails_with("ERR_MASS_REMOVAL");
        let removing = n - if f == &empty { 0 } else { n / 2 };
        assert!(
            r.stdout.contains(&format!("remove {removing} of the {n} records")),
            "{}",
            r.stdout
        );
        assert_eq!(state_root(&store, "acme"), root, "nothing changed");
    }
    // Intended removals pass with an explicit allowance.
    let mut a = args.to_vec();
    a.extend(["--max-removal", "60"]);
    let r = ingest(&store, "acme", &a, &[&half]).ok().json();
    assert_eq!(
        r["counts"]["advisories.raw"]["removed"].as_u64().unwrap() as usize,
        n - n / 2
    );
    let mut a = args.to_vec();
    a.push("--allow-mass-removal");
    ingest(&store, "acme", &a, &[&empty]).ok();
    assert_eq!(records(&store, "acme", "advisories.raw"), 0);
}

#[test]
fn finding_7_symlinks_in_an_input_folder_are_not_followed_and_are_named_in_the_summary() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(data("osv/pypa.jsonl"), dir.join("a.jsonl")).unwrap();
    std::os::unix::fs::symlink(data("osv/go-new.jsonl"), dir.join("b.jsonl")).unwrap();
    let store = t.path().join("s");
    let r = ingest(&store, "acme", &[], &[&dir]).ok();
    let links = r.json()["skippedLinks"].clone();
    assert_eq!(links, serde_json::json!([p(&dir.join("b.jsonl"))]));
    assert_eq!(
        records(&store, "acme", "advisories.raw") as usize,
        lines(&data("osv/pypa.jsonl"))
    );
    let human = sm(["ingest", "--store", p(&store), "--tenant", "acme", p(&dir)]).ok();
    assert!(
        human.stderr.contains(&format!(
            "skipped symbolic link (not followed): {}",
            dir.join("b.jsonl").display()
        )),
        "{}",
        human.stderr
    );
}
