//! Evidence coverage (issue 3): CSAF 2.0/2.1, CycloneDX VEX, SPDX, policy snapshots and
//! evaluations, and VEX consensus, on real public documents: the full corpora in
//! ../shared/data when present, else the committed excerpts in tests/data (copies of the
//! same files), so every test asserts something real either way.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use stellamirror_tests::{data, ingest, p, shared, sm, state_root, status, tool};

fn records(store: &Path, tenant: &str, collection: &str) -> u64 {
    status(store, tenant)["kinds"][collection]["records"]
        .as_u64()
        .unwrap_or(0)
}

fn read_json(f: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
}

/// `.json` files below `dir` in the order ingest walks them (siblings sorted by name).
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort_by_key(|e| e.file_name().unwrap().to_owned());
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            out.extend(json_files(&e));
        } else if e.extension().is_some_and(|x| x == "json") {
            out.push(e);
        }
    }
    out
}

/// Every JSONL record of a tenant, read back from a full export bundle: lines
/// `{kind, subject, id, hash, modified, doc}`.
fn exported(store: &Path, tenant: &str, run: &str, work: &Path) -> Vec<Value> {
    let out = work.join(run);
    let r = sm([
        "export",
        "full",
        "--store",
        p(store),
        "--tenant",
        tenant,
        "--out",
        p(&out),
        "--run-id",
        run,
        "--created-at",
        "2026-09-01T00:00:00Z",
        // A snapshot for inspection, not part of a channel (issue 20).
        "--detached",
        "--json",
    ])
    .ok()
    .json();
    let bundle = PathBuf::from(r["bundle"].as_str().expect("bundle path"));
    let bundle = if bundle.is_absolute() {
        bundle
    } else {
        std::env::current_dir().unwrap().join(bundle)
    };
    let x = out.join("x");
    std::fs::create_dir_all(&x).unwrap();
    assert_eq!(
        tool(
            "sh",
            &["-c", &format!("zstd -dc '{}' | tar -xf -", bundle.display())],
            &x
        )
        .code,
        0
    );
    let lines = tool(
        "sh",
        &["-c", "find mirror/data -name '*.jsonl.zst' | sort | xargs -r zstd -dc"],
        &x,
    );
    lines.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn of_kind<'a>(recs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["kind"] == kind).collect()
}

fn by_id<'a>(recs: &'a [Value], kind: &str, id: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["kind"] == kind && r["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} record {id:?}"))
}

#[test]
fn every_oasis_csaf_example_ingests() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let dirs: Vec<PathBuf> = match shared("csaf") {
        Some(root) => ["oasis-csaf_2.0", "oasis-csaf_2.1", "openvex-go-vex"]
            .iter()
            .map(|d| root.join(d))
            .collect(),
        None => vec![data("csaf")],
    };
    // One tenant per directory: the 2.0 and 2.1 examples share tracking ids (a newer
    // revision replaces an older one), so a combined run would hide half of them.
    for (n, dir) in dirs.iter().enumerate() {
        let tenant = format!("csaf{n}");
        let files = json_files(dir);
        let r = ingest(&store, &tenant, &[], &[dir]).ok().json();
        assert_eq!(
            r["documents"].as_u64().unwrap() as usize,
            files.len(),
            "{}",
            dir.display()
        );
        // Expected counts from the documents themselves: advisories get one normalized
        // record per vulnerability (key: CVE, else first id, else position); csaf_vex one
        // statement per vulnerability × product. In these corpora no two product ids of
        // one vulnerability resolve to the same product (checked with an independent
        // Python resolver), so product ids count products.
        let mut adv: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut vex: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for f in &files {
            let v = read_json(f);
            let tid = v["document"]["tracking"]["id"].as_str().unwrap().to_string();
            let vulns = v["vulnerabilities"].as_array().cloned().unwrap_or_default();
            let key = |i: usize, x: &Value| {
                x["cve"]
                    .as_str()
                    .or(x["ids"][0]["text"].as_str())
                    .map(str::to_string)
                    .unwrap_or(format!("#{i}"))
            };
            if v["document"]["category"] == "csaf_vex" {
                let mut pairs = BTreeSet::new();
                for (i, x) in vulns.iter().enumerate() {
                    for ids in x["product_status"].as_object().into_iter().flat_map(|m| m.values()) {
                        for pid in ids.as_array().unwrap() {
                            pairs.insert((key(i, x), pid.as_str().unwrap().to_string()));
                        }
                    }
                }
                vex.insert(tid, pairs);
            } else {
                adv.insert(tid, vulns.iter().enumerate().map(|(i, x)| key(i, x)).collect());
            }
        }
        let s = status(&store, &tenant);
        let count = |c: &str| s["kinds"][c]["records"].as_u64().unwrap_or(0) as usize;
        assert_eq!(count("advisories.raw"), adv.len(), "{}", dir.display());
        assert_eq!(
            count("advisories.normalized"),
            adv.values().map(BTreeSet::len).sum::<usize>()
        );
        assert_eq!(count("vex.raw"), vex.len());
        assert_eq!(count("vex.normalized"), vex.values().map(BTreeSet::len).sum::<usize>());
        assert_eq!(count("consensus") > 0, !vex.is_empty(), "statements get a consensus");
    }
    // The 1.2 MB Red Hat document (1,473 products) is among them when the corpus is here.
    if let Some(rh) = shared("csaf/openvex-go-vex/rhsa-2020_1358.json") {
        let r = ingest(&store, "rh", &[], &[&rh]).ok().json();
        assert_eq!(
            r["counts"]["vex.normalized"]["added"],
            2 * 737,
            "737 fixed products × 2 CVEs"
        );
    }
}

#[test]
fn bad_csaf_is_refused_with_file_and_pointer_and_nothing_changes() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ingest(&store, "acme", &[], &[&data("csaf")]).ok();
    let before = state_root(&store, "acme");
    // A real document with its tracking id removed, next to a valid document that would
    // otherwise be added: the run is refused whole.
    let bad_dir = t.path().join("in");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let mut v = read_json(&data("csaf/bsi-2022-0001.json"));
    v["document"]["tracking"].as_object_mut().unwrap().remove("id");
    let bad = bad_dir.join("bsi-2022-0001-no-tracking-id.json");
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    let good = data("cyclonedx-vex");
    let r = ingest(&store, "acme", &[], &[&good, &bad_dir])
        .fails_with("ERR_INPUT_INVALID")
        .json();
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains(p(&bad)), "names the file: {msg}");
    assert!(msg.contains("/document/tracking/id"), "names the JSON pointer: {msg}");
    assert_eq!(state_root(&store, "acme"), before, "nothing committed");
    assert_eq!(
        records(&store, "acme", "vex.raw"),
        1,
        "only the earlier CSAF VEX document"
    );
}

#[test]
fn cyclonedx_vex_examples_ingest_into_vex_normalized() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let dir = shared("vex/cyclonedx").unwrap_or_else(|| data("cyclonedx-vex"));
    let files = json_files(&dir);
    let r = ingest(&store, "acme", &[], &[&dir]).ok().json();
    assert_eq!(r["documents"].as_u64().unwrap() as usize, files.len());
    // VEX documents (an analysed vulnerability) are keyed by file name (none of these has
    // a serialNumber); plain BOMs become SBOMs under metadata.component.
    let mut vex_docs = BTreeMap::new();
    let mut sbom_subjects = BTreeSet::new();
    for f in &files {
        let v = read_json(f);
        let name = f.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
        let analysed = v["vulnerabilities"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["analysis"].is_object()));
        if analysed {
            assert!(v["serialNumber"].is_null());
            let has_product = v["metadata"]["component"].is_object()
                || v["vulnerabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["affects"].as_array().is_some_and(|a| !a.is_empty()));
            vex_docs.insert(name, has_product);
        } else {
            let c = &v["metadata"]["component"];
            let subject = match (c["purl"].as_str(), c["version"].as_str()) {
                (Some(p), _) => p.to_string(),
                (None, Some(ver)) => format!("{}@{ver}", c["name"].as_str().unwrap()),
                (None, None) => c["name"].as_str().unwrap().to_string(),
            };
            sbom_subjects.insert(subject);
        }
    }
    assert_eq!(records(&store, "acme", "vex.raw") as usize, vex_docs.len());
    assert_eq!(records(&store, "acme", "sboms.raw") as usize, sbom_subjects.len());
    let recs = exported(&store, "acme", "e1", t.path());
    let statements = of_kind(&recs, "vex.normalized");
    let documents: BTreeSet<&str> = statements
        .iter()
        .map(|s| s["doc"]["document"].as_str().unwrap())
        .collect();
    for (name, has_product) in &vex_docs {
        // A vulnerability with neither `affects` nor metadata.component names no product.
        assert_eq!(documents.contains(name.as_str()), *has_product, "{name}");
    }
    // CISA use case 1, hand-checked: product DEF 1.0 is exploitable by Log4Shell.
    let id = |f: &str| {
        if shared("vex/cyclonedx").is_some() {
            format!("bom-examples/{f}")
        } else {
            f.to_string()
        }
    };
    let def = id("CISA-Use-Cases__Case-1__vex-affected.json");
    let s = by_id(&recs, "vex.normalized", &format!("CVE-2021-44228|DEF@1.0|{def}"));
    assert_eq!(
        (s["subject"].as_str(), s["doc"]["status"].as_str()),
        (Some("DEF"), Some("affected"))
    );
    assert_eq!(s["doc"]["cyclonedxState"], "exploitable");
    assert_eq!(
        by_id(&recs, "consensus", "CVE-2021-44228|DEF@1.0")["doc"]["status"],
        "affected"
    );
    if shared("vex/cyclonedx").is_some() {
        // CISA use case 6: one CVE stated twice, per version: exploitable for 2.4 …,
        // not affected (code not present) for >=1.0|<=2.3 …
        let f = id("CISA-Use-Cases__Case-6__vex.json");
        let a = by_id(&recs, "vex.normalized", &format!("CVE-2021-44228|ABC@2.4|{f}"));
        assert_eq!(
            (a["doc"]["status"].as_str(), a["doc"]["versionStatus"].as_str()),
            (Some("affected"), Some("affected"))
        );
        let na = by_id(
            &recs,
            "vex.normalized",
            &format!("CVE-2021-44228|ABC@vers:generic/>=1.0|<=2.3|{f}"),
        );
        assert_eq!(na["doc"]["status"], "not_affected");
        assert_eq!(na["doc"]["justification"], "vulnerable_code_not_present");
        assert_eq!(na["doc"]["cyclonedxJustification"], "code_not_present");
    }
}

#[test]
fn spdx_sboms_ingest_as_raw_and_normalized() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let dir = data("spdx");
    ingest(&store, "acme", &[], &[&dir]).ok();
    assert_eq!(records(&store, "acme", "sboms.raw"), 3);
    assert_eq!(records(&store, "acme", "sboms.normalized"), 3);
    let recs = exported(&store, "acme", "e1", t.path());
    let ids: BTreeSet<&str> = of_kind(&recs, "sboms.normalized")
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // Subjects: the described package's purl (2.3 documentDescribes; 2.3 DESCRIBES
    // relationship), else its name (2.2, first of three described Go modules).
    let want: BTreeSet<&str> = [
        "pkg:deb/debian/libselinux1-dev@3.1-3?arch=s390x",
        "pkg:github/spdx/tools-java@2235d5d7f7fe46ce1e0d54b7831c5681633b25cc",
        "golang.org/x/text",
    ]
    .into();
    assert_eq!(ids, want);
    // The package list holds every PACKAGE-MANAGER purl of the document.
    let n = by_id(
        &recs,
        "sboms.normalized",
        "pkg:deb/debian/libselinux1-dev@3.1-3?arch=s390x",
    );
    let raw = read_json(&dir.join("spdx-examples__software__example11__spdx2.3__sbom.spdx.json"));
    let mut purls: Vec<&str> = raw["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().unwrap())
        .filter(|r| r["referenceType"] == "purl")
        .map(|r| r["referenceLocator"].as_str().unwrap())
        .collect();
    purls.sort();
    assert_eq!(n["doc"]["packages"], serde_json::json!(purls));
    assert_eq!(
        (n["doc"]["format"].as_str(), n["doc"]["specVersion"].as_str()),
        (Some("spdx"), Some("SPDX-2.3"))
    );
}

#[test]
fn policy_snapshot_and_evaluations_ingest() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let snap = data("policy/snapshot.json");
    let r = ingest(&store, "acme", &["--kind", "policy-snapshot"], &[&snap])
        .ok()
        .json();
    assert_eq!(r["counts"]["policy.snapshot"]["added"], 1);
    let evals = data("policy/evaluations.jsonl");
    let r = ingest(&store, "acme", &["--kind", "policy-evaluations"], &[&evals])
        .ok()
        .json();
    assert_eq!(
        r["counts"]["policy.evaluations"]["added"], 4,
        "camelCase and snake_case lines alike"
    );
    let s = status(&store, "acme");
    assert_eq!(s["kinds"]["policy.evaluations"]["subjects"], 2);
    let recs = exported(&store, "acme", "e1", t.path());
    let e = by_id(
        &recs,
        "policy.evaluations",
        "pkg:golang/github.com/brancz/kube-rbac-proxy|CVE-2025-22870|pkg:golang/golang.org/x/net@v0.33.0",
    );
    assert_eq!(
        e["modified"], 1787365816,
        "modified = evaluated_at 2026-08-22T02:30:16Z"
    );
    assert_eq!(e["doc"]["status"], "warn");
    // One live snapshot per tenant, versioned by content: a new one replaces it.
    let mut v = read_json(&snap);
    v["version"] = 8.into();
    let snap2 = t.path().join("snapshot-v8.json");
    std::fs::write(&snap2, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = ingest(&store, "acme", &["--kind", "policy-snapshot"], &[&snap2])
        .ok()
        .json();
    assert_eq!(r["counts"]["policy.snapshot"]["changed"], 1);
    assert_eq!(records(&store, "acme", "policy.snapshot"), 1);
    // An evaluation without its time is refused, naming line and pointer.
    let bad = t.path().join("bad.jsonl");
    let first = std::fs::read_to_string(&evals)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .replace("evaluatedAt", "when");
    std::fs::write(&bad, format!("\n{first}\n")).unwrap();
    let r = ingest(&store, "acme", &["--kind", "policy-evaluations"], &[&bad])
        .fails_with("ERR_INPUT_INVALID")
        .json();
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("bad.jsonl:2") && msg.contains("/evaluatedAt"), "{msg}");
}

const KRP: &str = "golang__github.com__brancz__kube-rbac-proxy__scan.openvex.json";

/// Real Rancher VEX Hub statements that disagree. Checked by hand with
/// `jq -c '.statements[] | select(.vulnerability.name=="CVE-2026-39883")' FILE` on the
/// 2026-07-22 and 2026-08-22 versions of kube-rbac-proxy's document:
/// * 2026-07-22 (newest statement for the pair): not_affected, vulnerable_code_not_present,
///   "This CVE only affects macOS/Darwin systems", 2026-06-19T00:00:00Z;
/// * 2026-08-22 (newest statement for the pair; the document lists a 2026-07-27 and
///   then a 2026-07-25 statement, and the newest timestamp wins): not_affected,
///   vulnerable_code_not_in_execute_path, "Govulncheck determined that the vulnerable
///   code isn't called", 2026-07-27T03:13:01Z.
///
/// No pair conflicts across the hub's current documents (each product has one
/// document) and statuses never change between versions, so the two versions are
/// ingested as two documents. Both are by "Rancher Security team", one source: the
/// rule is latest-statement-per-source, the newer justification wins and the older
/// statement is kept in the record as superseded.
#[test]
fn consensus_on_conflicting_rancher_statements() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let old = data(&format!("consensus/rancher-2026-07-22/{KRP}"));
    let new = data(&format!("vex/rancher-new/{KRP}"));
    if let (Some(so), Some(sn)) = (
        shared(&format!("history/rancher-vexhub-2026-07-22/{KRP}")),
        shared(&format!("vex/openvex/rancher-vexhub/{KRP}")),
    ) {
        assert_eq!(
            std::fs::read(&old).unwrap(),
            std::fs::read(so).unwrap(),
            "excerpt is the 2026-07-22 document"
        );
        assert_eq!(
            std::fs::read(&new).unwrap(),
            std::fs::read(sn).unwrap(),
            "excerpt is the 2026-08-22 document"
        );
    }
    let dir = t.path().join("in");
    for (d, f) in [("2026-07-22", &old), ("2026-08-22", &new)] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
        std::fs::copy(f, dir.join(d).join(KRP)).unwrap();
    }
    ingest(&store, "acme", &[], &[&dir]).ok();
    let recs = exported(&store, "acme", "e1", t.path());
    let c = &by_id(
        &recs,
        "consensus",
        "CVE-2026-39883|pkg:golang/github.com/brancz/kube-rbac-proxy",
    )["doc"];
    assert_eq!(c["status"], "not_affected");
    assert_eq!(c["rule"], "latest-per-source");
    assert_eq!(c["justification"], "vulnerable_code_not_in_execute_path");
    assert_eq!(
        c["impactStatement"],
        "Govulncheck determined that the vulnerable code isn't called"
    );
    assert_eq!(c["sources"], 1);
    assert_eq!(c["modified"], "2026-07-27T03:13:01Z");
    let st = c["statements"].as_array().unwrap();
    assert_eq!(st.len(), 2);
    let stmt = |date: &str| {
        by_id(
            &recs,
            "vex.normalized",
            &format!("CVE-2026-39883|pkg:golang/github.com/brancz/kube-rbac-proxy|{date}/{KRP}"),
        )
    };
    let (old_s, new_s) = (stmt("2026-07-22"), stmt("2026-08-22"));
    assert_eq!(old_s["doc"]["justification"], "vulnerable_code_not_present");
    assert_eq!(
        c["decidedBy"], new_s["hash"],
        "rests on the statement record's content hash"
    );
    for s in st {
        let superseded = s["object"] == old_s["hash"];
        assert!(superseded || s["object"] == new_s["hash"]);
        assert_eq!(s["superseded"], superseded);
        assert_eq!(s["source"], "Rancher Security team");
    }
    // The version-qualified product appears only in the newer document.
    let v = &by_id(
        &recs,
        "consensus",
        "CVE-2026-39883|pkg:golang/github.com/brancz/kube-rbac-proxy@v0.18.2",
    )["doc"];
    assert_eq!(
        (v["rule"].as_str(), v["status"].as_str()),
        (Some("single-statement"), Some("not_affected"))
    );
}

#[test]
fn consensus_is_recomputed_only_for_touched_pairs_and_follows_removal() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let dir = data("vex/rancher-new");
    ingest(&store, "acme", &[], &[&dir]).ok();
    let before = exported(&store, "acme", "e1", t.path());
    let kinds_before = status(&store, "acme")["kinds"].clone();
    // Change one real statement: the first one whose pair occurs once in its document.
    let name = "golang__github.com__Altinity__clickhouse-backup__v2__scan.openvex.json";
    let mut doc = read_json(&dir.join(name));
    let key = |s: &Value| {
        (
            s["vulnerability"]["name"].as_str().unwrap().to_string(),
            s["products"][0]["@id"].as_str().unwrap().to_string(),
        )
    };
    let sts = doc["statements"].as_array().unwrap();
    let k = (0..sts.len())
        .find(|&i| {
            sts.iter().filter(|s| key(s) == key(&sts[i])).count() == 1
                && sts[i]["products"].as_array().unwrap().len() == 1
        })
        .unwrap();
    let (vuln, product) = key(&sts[k]);
    assert_eq!(sts[k]["status"], "not_affected");
    doc["statements"][k]["status"] = "affected".into();
    doc["statements"][k].as_object_mut().unwrap().remove("justification");
    let changed = t.path().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    std::fs::write(changed.join(name), serde_json::to_vec(&doc).unwrap()).unwrap();
    let r = ingest(&store, "acme", &[], &[&changed.join(name)]).ok().json();
    for (c, n) in [("vex.raw", 1), ("vex.normalized", 1), ("consensus", 1)] {
        assert_eq!(
            r["counts"][c],
            serde_json::json!({"added": 0, "changed": n, "removed": 0}),
            "{c}"
        );
    }
    let kinds_after = status(&store, "acme")["kinds"].clone();
    for k in ["advisories.raw", "sboms.raw", "policy.snapshot"] {
        assert_eq!(kinds_before[k], kinds_after[k]);
    }
    let after = exported(&store, "acme", "e2", t.path());
    let hashes = |recs: &[Value]| -> BTreeMap<String, Value> {
        of_kind(recs, "consensus")
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r["hash"].clone()))
            .collect()
    };
    let (hb, ha) = (hashes(&before), hashes(&after));
    let differ: Vec<&String> = ha.keys().filter(|id| hb.get(*id) != ha.get(*id)).collect();
    assert_eq!(
        differ,
        [&format!("{vuln}|{product}")],
        "only the touched pair's consensus changed"
    );
    assert_eq!(
        by_id(&after, "consensus", &format!("{vuln}|{product}"))["doc"]["status"],
        "affected"
    );
    // Removing the document removes the consensus of the pairs only it spoke about.
    let mut pairs = BTreeSet::new();
    for s in doc["statements"].as_array().unwrap() {
        for prod in s["products"].as_array().unwrap() {
            pairs.insert((s["vulnerability"]["name"].to_string(), prod["@id"].to_string()));
        }
    }
    let r = sm(["remove", "--store", p(&store), "--tenant", "acme", "--json", name])
        .ok()
        .json();
    assert_eq!(
        r["removed"]["consensus"]["removed"].as_u64().unwrap() as usize,
        pairs.len()
    );
    assert_eq!(records(&store, "acme", "consensus") as usize, hb.len() - pairs.len());
}
