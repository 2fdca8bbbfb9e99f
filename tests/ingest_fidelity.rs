//! Ingest fidelity (issue 18): every raw document kept under its own identity, identities
//! independent of the command line, upstream layouts read as published, upstream
//! integrity files checked. Real documents throughout (tests/data, ../shared/data when
//! present).
use std::path::{Path, PathBuf};

use serde_json::Value;
use stellamirror_tests::{data, ingest, ingest_text, p, shared, sm, state_root, status, tool};

fn records(store: &Path, collection: &str) -> u64 {
    status(store, "acme")["kinds"][collection]["records"]
        .as_u64()
        .unwrap_or(0)
}

fn read_json(f: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()
}

/// The committed Rancher VEX Hub documents (flat names, `/` written `__`) laid out as the
/// hub publishes them (vex-repo-spec): `pkg/<purl path>/scan.openvex.json`, with the
/// repository manifest, a package index and a VEX Hub package `manifest.json` beside them.
fn vex_hub(at: &Path) -> PathBuf {
    let hub = at.join("vexhub");
    let mut packages = Vec::new();
    let src = data("vex/rancher-new");
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let rel = format!("pkg/{}", name.replace("__", "/"));
        let dest = hub.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src.join(&name), &dest).unwrap();
        let dir = rel.trim_end_matches("/scan.openvex.json");
        let id = format!("pkg:{}", dir.trim_start_matches("pkg/"));
        packages.push(serde_json::json!({"id": id, "location": rel}));
    }
    let repo = data("vex-repo");
    std::fs::copy(repo.join("vex-repository.json"), hub.join("vex-repository.json")).unwrap();
    let kine = hub.join("pkg/golang/github.com/k3s-io/kine");
    std::fs::create_dir_all(&kine).unwrap();
    std::fs::copy(repo.join("kine-manifest.json"), kine.join("manifest.json")).unwrap();
    let index = serde_json::json!({"updated_at": "2026-08-22T00:00:00Z", "packages": packages});
    std::fs::write(hub.join("index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    std::fs::write(hub.join("README.md"), "# VEX Hub\n").unwrap();
    hub
}

#[test]
fn spdx_examples_give_one_record_per_document_namespace() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let dir = data("spdx");
    // examplemaven-0.0.1 and its enriched copy describe one artifact: two documents.
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    let namespaces: std::collections::BTreeSet<String> = files
        .iter()
        .map(|f| read_json(f)["documentNamespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(namespaces.len(), files.len());
    ingest(&store, "acme", &["--source", "spdx"], &[&dir]).ok();
    assert_eq!(records(&store, "sboms.raw") as usize, namespaces.len());
    assert_eq!(records(&store, "sboms.normalized") as usize, namespaces.len());
    // Both examplemaven documents survive a bundle round trip.
    let (key, trust) = stellamirror_tests::keypair(t.path(), "producer");
    let out = t.path().join("out");
    let bundle = stellamirror_tests::export_full(&store, &out, &key, "r1", "2026-12-01T00:00:00Z", &[]);
    let other = t.path().join("other");
    stellamirror_tests::import_bundle(&bundle, &other, &trust, &[]).ok();
    assert_eq!(state_root(&other, "acme"), state_root(&store, "acme"));
    assert_eq!(records(&other, "sboms.raw") as usize, namespaces.len());
}

#[test]
fn a_vex_folder_ingested_through_a_parent_or_child_path_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let parent = t.path().join("mirror");
    let hub = vex_hub(&parent);
    let args: &[&str] = &["--source", "hub"];
    let r = ingest(&store, "acme", args, &[&hub]).ok().json();
    let root = state_root(&store, "acme");
    assert_eq!(r["sourceRoot"], p(&std::fs::canonicalize(&hub).unwrap()));
    // A child folder, the parent folder, and a single file deep inside: same names.
    let child = hub.join("pkg/golang");
    let file = hub.join("pkg/golang/github.com/brancz/kube-rbac-proxy/scan.openvex.json");
    for path in [&child, &parent, &file] {
        let r = ingest(&store, "acme", args, &[path]).ok().json();
        assert_eq!(r["committed"], false, "{}: {r}", p(path));
        assert_eq!(r["parsed"], 0, "{}: every document is known by its digest", p(path));
        assert_eq!(state_root(&store, "acme"), root, "{}", p(path));
    }
    // --complete through the child folder holds every document too: nothing removed.
    let r = ingest(&store, "acme", &["--source", "hub", "--complete"], &[&child])
        .ok()
        .json();
    assert_eq!(r["committed"], false, "{r}");
    assert_eq!(state_root(&store, "acme"), root);
    // The statements name the documents by their path below the hub's root.
    let id = "pkg/golang/github.com/brancz/kube-rbac-proxy/scan.openvex.json";
    let docs = status(&store, "acme")["kinds"]["vex.raw"]["records"].as_u64().unwrap();
    assert_eq!(docs, 5);
    sm(["remove", "--store", p(&store), "--tenant", "acme", "--kind", "vex", id]).ok();
}

#[test]
fn a_vex_repo_spec_checkout_ingests_without_keep_going() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let hub = vex_hub(t.path());
    let run = ingest(&store, "acme", &["--source", "hub"], &[&hub]).ok();
    let r = run.json();
    assert_eq!(records(&store, "vex.raw"), 5);
    let meta = r["repositoryMetadata"].as_array().unwrap();
    let kinds: Vec<&str> = meta.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["index", "packageManifest", "repository"], "{meta:?}");
    assert_eq!(meta[0]["packages"], 5);
    assert_eq!(meta[2]["name"], "VEX Hub");
    // Nothing skipped silently: the README is named with its reason.
    let skipped = r["skippedFiles"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("README.md"));
    // The text summary says so too.
    let text = ingest_text(&store, "acme", &["--source", "hub"], &[&hub]).ok();
    assert!(text.stderr.contains("README.md"), "{}", text.stderr);
    assert!(text.stderr.contains("VEX repository metadata"), "{}", text.stderr);
    // --exclude leaves files out by their name below the root.
    let store2 = t.path().join("s2");
    let r = ingest(
        &store2,
        "acme",
        &["--source", "hub", "--exclude", "pkg/golang/github.com/**"],
        &[&hub],
    )
    .ok()
    .json();
    assert_eq!(records(&store2, "vex.raw"), 1, "{r}");
    assert_eq!(r["excluded"].as_array().unwrap().len(), 5);
}

#[test]
fn osv_all_zip_ingests_like_its_json_lines() {
    let t = tempfile::tempdir().unwrap();
    let go = shared("advisories/go.jsonl").unwrap_or_else(|| data("osv/go-new.jsonl"));
    // OSV's distribution: <Ecosystem>/all.zip with one `<id>.json` per advisory.
    let entries = t.path().join("entries");
    std::fs::create_dir_all(&entries).unwrap();
    let text = std::fs::read_to_string(&go).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for l in &lines {
        let id = read_json_str(l)["id"].as_str().unwrap().to_string();
        std::fs::write(entries.join(format!("{id}.json")), l).unwrap();
    }
    let zip = t.path().join("all.zip");
    let r = tool("sh", &["-c", &format!("zip -q -r '{}' .", p(&zip))], &entries);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let args: &[&str] = &["--source", "osv-go", "--complete"];
    let a = t.path().join("a");
    let r = ingest(&a, "acme", args, &[&zip]).ok().json();
    assert_eq!(r["documents"].as_u64().unwrap() as usize, lines.len());
    let b = t.path().join("b");
    ingest(&b, "acme", args, &[&go]).ok();
    assert_eq!(state_root(&a, "acme"), state_root(&b, "acme"));
    // Re-reading the archive finds every advisory unchanged.
    let r = ingest(&a, "acme", args, &[&zip]).ok().json();
    assert_eq!(r["parsed"], 0);
}

fn read_json_str(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn a_flipped_byte_in_a_csaf_file_with_a_sha512_is_refused_naming_both_files() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let dir = t.path().join("csaf");
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for e in std::fs::read_dir(data("csaf")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    // Checksums as CISA publishes them (`sha512sum` output beside each document).
    for n in &names {
        let r = tool("sh", &["-c", &format!("sha512sum '{n}' > '{n}.sha512'")], &dir);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = ingest(&store, "acme", &["--source", "csaf"], &[&dir]).ok().json();
    assert_eq!(r["integrity"]["digestsVerified"], 3);
    assert!(
        r["skippedFiles"].as_array().unwrap().is_empty(),
        "checksums are not skipped documents"
    );
    let before = state_root(&store, "acme");
    // One byte of the document's text changed: still valid JSON, no longer the document.
    let doc = dir.join("bsi-2022-0001.json");
    let mut bytes = std::fs::read(&doc).unwrap();
    let at = bytes.windows(3).position(|w| w == b"BSI").unwrap();
    bytes[at] = b'X';
    std::fs::write(&doc, &bytes).unwrap();
    let r = ingest(&store, "acme", &["--source", "csaf"], &[&dir])
        .fails_with("ERR_INPUT_DIGEST_MISMATCH")
        .json();
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(p(&doc)) && msg.contains("bsi-2022-0001.json.sha512"),
        "{msg}"
    );
    assert_eq!(state_root(&store, "acme"), before, "nothing changed");
}

/// gpg in a throw-away home: run `args` in `dir`, return stdout.
fn gpg(home: &Path, dir: &Path, args: &str) -> String {
    let cmd = format!(
        "gpg --homedir '{}' --batch --pinentry-mode loopback --passphrase '' {args}",
        p(home)
    );
    let r = tool("sh", &["-c", &cmd], dir);
    assert_eq!(r.code, 0, "gpg {args}: {}", r.stderr);
    r.stdout
}

/// A real CSAF advisory signed by a publisher key made for the test (no CSAF provider's
/// key and signatures are in ../shared/data), as CSAF providers publish: `X.json.asc`.
#[test]
fn csaf_signatures_are_counted_without_keys_and_verified_with_publisher_keys() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("csaf");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("rhsa-2021_5217.json");
    std::fs::copy(data("csaf/rhsa-2021_5217.json"), &doc).unwrap();
    let home = t.path().join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    for uid in ["Publisher <psirt@example.com>", "Other <other@example.com>"] {
        gpg(&home, &dir, &format!("--quick-gen-key '{uid}' ed25519 sign never"));
    }
    gpg(
        &home,
        &dir,
        "--local-user psirt@example.com --armor --detach-sign --output rhsa-2021_5217.json.asc rhsa-2021_5217.json",
    );
    let key = t.path().join("publisher.asc");
    std::fs::write(&key, gpg(&home, &dir, "--armor --export psirt@example.com")).unwrap();
    let other = t.path().join("other.asc");
    std::fs::write(&other, gpg(&home, &dir, "--armor --export other@example.com")).unwrap();
    let fpr = gpg(&home, &dir, "--with-colons --fingerprint psirt@example.com")
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_ascii_lowercase();
    // Without keys: counted, and the summary says they are unchecked.
    let r = ingest(&t.path().join("s"), "acme", &[], &[&dir]).ok().json();
    assert_eq!(r["integrity"]["signaturesPresent"], 1);
    assert_eq!(r["integrity"]["signaturesVerified"], 0);
    let text = ingest_text(&t.path().join("s2"), "acme", &[], &[&dir]).ok();
    assert!(
        text.stderr.contains("1 OpenPGP signatures (.asc) present, 1 unchecked"),
        "{}",
        text.stderr
    );
    // With the publisher's key: verified, and the records name the key.
    let store = t.path().join("s3");
    let r = ingest(
        &store,
        "acme",
        &["--publisher-key", p(&other), "--publisher-key", p(&key)],
        &[&dir],
    )
    .ok()
    .json();
    assert_eq!(r["integrity"]["signaturesVerified"], 1, "{r}");
    let (sign, _) = stellamirror_tests::keypair(t.path(), "producer");
    let bundle =
        stellamirror_tests::export_full(&store, &t.path().join("out"), &sign, "r1", "2026-12-01T00:00:00Z", &[]);
    let top = stellamirror_tests::extract(&bundle, &t.path().join("x"));
    let lines = tool("sh", &["-c", "zstd -dc data/normalized/advisories/*.jsonl.zst"], &top).stdout;
    assert!(lines.lines().count() > 0);
    for l in lines.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["doc"]["verifiedBy"], fpr.as_str(), "{l}");
    }
    // Only another key given: refused, naming the document and its signature.
    let store4 = t.path().join("s4");
    let r = ingest(&store4, "acme", &["--publisher-key", p(&other)], &[&dir])
        .fails_with("ERR_INPUT_SIGNATURE_INVALID")
        .json();
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(p(&doc)) && msg.contains("rhsa-2021_5217.json.asc"),
        "{msg}"
    );
    // A changed byte in the document breaks its signature.
    let mut bytes = std::fs::read(&doc).unwrap();
    let at = bytes.windows(4).position(|w| w == b"RHSA").unwrap();
    bytes[at] = b'X';
    std::fs::write(&doc, &bytes).unwrap();
    ingest(&store4, "acme", &["--publisher-key", p(&key)], &[&dir]).fails_with("ERR_INPUT_SIGNATURE_INVALID");
    // A file that is not a key is refused before anything is read.
    ingest(&store4, "acme", &["--publisher-key", p(&doc)], &[&dir]).fails_with("ERR_PUBLISHER_KEY_INVALID");
}

#[test]
fn an_older_csaf_revision_never_replaces_a_newer_one() {
    let t = tempfile::tempdir().unwrap();
    let newer = data("csaf/bsi-2022-0001.json");
    let mut v = read_json(&newer);
    let version = v["document"]["tracking"]["version"].as_str().unwrap().to_string();
    // The previous revision: one version lower, released a day earlier.
    let lower = version
        .split('.')
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        .saturating_sub(1)
        .to_string();
    v["document"]["tracking"]["version"] = lower.into();
    v["document"]["title"] = "previous revision".into();
    let older = t.path().join("old").join("bsi-2022-0001.json");
    std::fs::create_dir_all(older.parent().unwrap()).unwrap();
    std::fs::write(&older, serde_json::to_vec(&v).unwrap()).unwrap();
    let store = t.path().join("s");
    ingest(&store, "acme", &[], &[&newer]).ok();
    let root = state_root(&store, "acme");
    // Ingested later, the older revision is named as superseded and changes nothing.
    let r = ingest(&store, "acme", &[], &[&older]).ok().json();
    assert_eq!(r["superseded"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(state_root(&store, "acme"), root);
    // Both in one input, in either order: the newer stands.
    let (older, newer) = (older.as_path(), newer.as_path());
    for (i, order) in [[older, newer], [newer, older]].iter().enumerate() {
        let s = t.path().join(format!("o{i}"));
        let r = ingest(&s, "acme", &[], order).ok().json();
        assert_eq!(r["superseded"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(state_root(&s, "acme"), root, "order {i}");
    }
}

#[test]
fn spdx_tag_value_documents_ingest_with_their_text_kept() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let dir = data("spdx-tv");
    let file = dir.join("spdx-examples__software__example01__spdx2.2__example1.spdx");
    let r = ingest(&store, "acme", &["--source", "spdx"], &[&dir]).ok().json();
    assert_eq!(r["counts"]["sboms.raw"]["added"], 1, "{r}");
    assert!(r["skippedFiles"].as_array().unwrap().is_empty());
    let (key, _) = stellamirror_tests::keypair(t.path(), "producer");
    let bundle =
        stellamirror_tests::export_full(&store, &t.path().join("out"), &key, "r1", "2026-12-01T00:00:00Z", &[]);
    let top = stellamirror_tests::extract(&bundle, &t.path().join("x"));
    let r = tool("sh", &["-c", "zstd -dc data/raw/sboms/*.jsonl.zst"], &top);
    let line: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(line["id"], "https://swinslow.net/spdx-examples/example1/hello-v3");
    assert_eq!(line["subject"], "hello");
    // The document as received, byte for byte.
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(line["doc"]["spdxTagValue"], text);
}

/// A large input is staged in chunks whose objects wait for the commit; a later chunk's
/// newer (or older) version of a document staged earlier is still compared by its own
/// version, and the result equals an ingest in one chunk (it failed with
/// ERR_STORE_CORRUPT "object … is missing").
#[test]
fn versions_of_one_document_supersede_across_staged_chunks() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let sbom = |serial: &str, version: u32, lib: &str| {
        format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":"urn:uuid:{serial}","version":{version},"metadata":{{"component":{{"type":"application","name":"app","purl":"pkg:generic/app@1.0"}}}},"components":[{{"type":"library","name":"{lib}","purl":"pkg:npm/{lib}@1.0"}}]}}"#
        )
    };
    let serial = "3e671687-395b-41f5-a30f-a58921a69b79";
    // Read in name order: the two versions after the other documents, in two chunks.
    for (name, v) in [("v1", 1), ("v2", 2)] {
        std::fs::write(
            input.join(format!("{name}.cdx.json")),
            sbom(serial, v, &format!("lib{v}")),
        )
        .unwrap();
    }
    for i in 0..5 {
        let other = format!("3e671687-395b-41f5-a30f-a58921a69b7{i}");
        std::fs::write(input.join(format!("f{i}.cdx.json")), sbom(&other, 1, &format!("x{i}"))).unwrap();
    }
    let ingest = |store: &str, batch: &str| {
        let (store, input) = (t.path().join(store), input.clone());
        let args = ["ingest", "--store", p(&store), "--tenant", "acme", "--source", "s"];
        let mut args = args.to_vec();
        args.extend(["--batch-records", batch, p(&input)]);
        let out = sm(args).ok().stdout;
        (state_root(&store, "acme"), out)
    };
    let (chunked, out) = ingest("chunked", "1");
    let (whole, _) = ingest("whole", "100000");
    assert_eq!(chunked, whole, "{out}");
    // Version 2 stands: the same root as an input without the older version.
    std::fs::remove_file(input.join("v1.cdx.json")).unwrap();
    let (latest_only, _) = ingest("latest", "100000");
    assert_eq!(chunked, latest_only, "{out}");
}
