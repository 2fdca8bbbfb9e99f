//! Findings 1, 2 and 5 (YAML bomb) of issue 17: hostile bundles against the real binary,
//! each run measured — peak RSS (`/usr/bin/time -v`) and bytes written by the process and
//! its children (`wchar` of `/proc/PID/io`, read while the process is a zombie: every
//! `write` to the store, TMPDIR, stdout and stderr) — and the bound asserted. The bound is
//! the documented pre-authentication budget (docs/bundle-format.md, "Limits"): 16 MiB of
//! manifest, 4 KiB per signature, a zstd window of at most 16 MiB.
use std::path::{Path, PathBuf};

use stellamirror_tests::{export_full, extract, ingest_sample, keypair, measured, openssl_sign, p, pack, sm, tool};

/// Peak RSS allowed for a refused hostile bundle: the binary's own (about 20-30 MiB with
/// RocksDB open) plus the 16 MiB manifest budget and the 16 MiB zstd window, with room.
const MAX_RSS_KIB: u64 = 96 << 10;
/// Bytes written allowed: the store's own files at creation (RocksDB's LOG and OPTIONS),
/// messages, and for `verify` the manifest's copy in TMPDIR; never the bundle's content.
const MAX_WRITTEN: u64 = 2 << 20;

/// `import` and `verify` of `bundle` both refused with `code`, within the bounds; the
/// figures are printed for the record.
fn refused_within_bounds(case: &str, bundle: &Path, public: &Path, dir: &Path, code: &str, says: &str) {
    let safe: String = case
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let store = dir.join(format!("store-{safe}"));
    let tmp = dir.join(format!("tmp-{safe}"));
    for (cmd, args) in [
        (
            "import",
            vec!["import", p(bundle), "--store", p(&store), "--trust", p(public)],
        ),
        ("verify", vec!["verify", p(bundle), "--trust", p(public)]),
    ] {
        let m = measured(&args, &tmp);
        eprintln!(
            "{case} ({cmd}): exit {}, peak RSS {} KiB, {} bytes written",
            m.run.code, m.peak_rss_kib, m.written
        );
        let r = m.run.fails_with(code);
        assert!(r.stderr.contains(says), "{case} ({cmd}): {}", r.stderr);
        assert!(
            m.peak_rss_kib <= MAX_RSS_KIB,
            "{case} ({cmd}): peak RSS {} KiB",
            m.peak_rss_kib
        );
        assert!(m.written <= MAX_WRITTEN, "{case} ({cmd}): {} bytes written", m.written);
        assert!(!store.exists(), "{case}: a refused import leaves no store");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "{case}: TMPDIR left as it was"
        );
    }
}

struct Producer {
    dir: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
    bundle: PathBuf,
}

fn producer() -> Producer {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "producer");
    let store = dir.path().join("producer-store");
    ingest_sample(&store, "old");
    let bundle = export_full(
        &store,
        &dir.path().join("out"),
        &key,
        "full-1",
        "2026-09-01T00:00:00Z",
        &[],
    );
    Producer {
        dir,
        key,
        public,
        bundle,
    }
}

/// The producer's bundle with `edit` applied to its manifest text, signed again by `key`
/// (GNU tar + zstd, manifest and signatures first).
fn resigned(pr: &Producer, name: &str, key: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let x = pr.dir.path().join(format!("x-{name}"));
    let top = extract(&pr.bundle, &x);
    let m = top.join("manifest.yaml");
    std::fs::write(&m, edit(std::fs::read_to_string(&m).unwrap())).unwrap();
    openssl_sign(key, &top, "manifest.yaml", "signatures/manifest.sig");
    let out = pr.dir.path().join(format!("{name}.tar.zst"));
    pack(&top, &out);
    std::fs::remove_dir_all(&x).unwrap();
    out
}

/// Replace the manifest's line `field: …` (top level) with `field: value`.
fn set_field(text: String, field: &str, value: &str) -> String {
    let prefix = format!("{field}:");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) && !found {
                found = true;
                format!("{field}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "manifest has no {field}");
    lines.join("\n") + "\n"
}

#[test]
fn finding_1_import_refuses_a_signed_manifest_with_a_huge_run_id() {
    let pr = producer();
    let dir = pr.dir.path().to_path_buf();
    let huge = "a".repeat(1_000_000);
    let b = resigned(&pr, "huge-run-id", &pr.key, |t| set_field(t, "runId", &huge));
    refused_within_bounds(
        "huge runId",
        &b,
        &pr.public,
        &dir,
        "ERR_BUNDLE_MALFORMED",
        "manifest.yaml: field runId",
    );
}

#[test]
fn finding_1_import_refuses_every_field_export_would_not_write() {
    let pr = producer();
    let dir = pr.dir.path().to_path_buf();
    let cases: [(&str, &str, &str); 7] = [
        ("runId", "../../../tmp/evilrun", "field runId"),
        ("createdAt", "not-a-date", "field createdAt"),
        ("formatVersion", "4", "field formatVersion"),
        ("tenant", "../evil", "field tenant"),
        ("stateRoot", "blake3:zz", "field stateRoot"),
        ("channel", "a/b", "field channel"),
        ("sequence", "0", "field sequence"),
    ];
    for (i, (field, value, says)) in cases.into_iter().enumerate() {
        let b = resigned(&pr, &format!("bad-{i}"), &pr.key, |t| set_field(t, field, value));
        refused_within_bounds(
            &format!("{field} {value}"),
            &b,
            &pr.public,
            &dir,
            "ERR_BUNDLE_MALFORMED",
            says,
        );
    }
    // Counts of 2^64-1 records.
    let b = resigned(&pr, "counts", &pr.key, |t| {
        t.replacen(
            "  advisories.raw: ",
            "  advisories.raw: 18446744073709551615\n  x-was: ",
            1,
        )
    });
    refused_within_bounds(
        "counts 2^64-1",
        &b,
        &pr.public,
        &dir,
        "ERR_BUNDLE_MALFORMED",
        "field counts",
    );
    assert!(!Path::new("/tmp/evilrun").exists());
}

/// 4 × 256 MiB of zeros as entries before the manifest (a 1 GiB archive body that packs
/// into a few MB): refused at the first entry, unread.
#[test]
fn finding_2_zeros_before_the_manifest_are_refused_within_the_pre_authentication_budget() {
    let pr = producer();
    let dir = pr.dir.path().to_path_buf();
    let x = dir.join("x-zeros");
    let top = extract(&pr.bundle, &x);
    let out = dir.join("zeros.tar.zst");
    let script = r#"
import os, sys, tarfile
class Zeros:
    def read(self, n=-1):
        return bytes(n if n >= 0 else 1 << 20)
first = ["manifest.yaml", "signatures/manifest.sig", "signatures/export.sig"]
rest = sorted(os.path.relpath(os.path.join(d, f), "mirror") for d, _, fs in os.walk("mirror") for f in fs)
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT) as t:
    for i in range(4):
        info = tarfile.TarInfo(f"mirror/zeros-{i}")
        info.size = 256 << 20
        t.addfile(info, Zeros())
    for rel in first + [r for r in rest if r not in first]:
        t.add(os.path.join("mirror", rel), recursive=False)
"#;
    let cmd = format!("python3 -c '{script}' | zstd -q -1 -T2 -o '{}'", out.display());
    let r = tool("sh", &["-c", &cmd], top.parent().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let packed = std::fs::metadata(&out).unwrap().len();
    eprintln!("zeros before the manifest: {packed} bytes packed, 1 GiB of zeros inside");
    refused_within_bounds(
        "zeros before the manifest",
        &out,
        &pr.public,
        &dir,
        "ERR_BUNDLE_MALFORMED",
        "zeros-0 comes before manifest.yaml",
    );
    // And a manifest beyond the budget is refused before it is read.
    let big = resigned(&pr, "big-manifest", &pr.key, |t| {
        t + &format!("# {}\n", "x".repeat(17 << 20))
    });
    refused_within_bounds(
        "17 MiB manifest",
        &big,
        &pr.public,
        &dir,
        "ERR_BUNDLE_TOO_LARGE",
        "pre-authentication budget of 16777216 bytes",
    );
}

/// A billion-laughs manifest signed by a key that is not trusted: named as untrusted (the
/// claimed key is found without expanding the YAML), within the memory bound.
#[test]
fn finding_5_an_untrusted_yaml_bomb_is_err_signature_untrusted_with_bounded_memory() {
    let pr = producer();
    let dir = pr.dir.path().to_path_buf();
    let stranger = sm(["keygen", "--out", p(&dir.join("stranger")), "--json"]).ok().json();
    let key_id = stranger["keyId"].as_str().unwrap().to_string();
    let b = resigned(&pr, "yaml-bomb", &dir.join("stranger.pem"), |t| {
        let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let signing = format!("signing:\n  algorithm: ed25519\n  keyId: {key_id}\n");
        let kept: String = t
            .split_inclusive('\n')
            .filter(|l| {
                !l.starts_with("signing:") && !l.starts_with("  algorithm: ed25519") && !l.starts_with("  keyId:")
            })
            .collect();
        bomb + &kept + &signing
    });
    refused_within_bounds(
        "untrusted YAML bomb",
        &b,
        &pr.public,
        &dir,
        "ERR_SIGNATURE_UNTRUSTED",
        &key_id,
    );
}
