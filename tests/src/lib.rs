//! Helpers for the end-to-end tests: run the real binary, find test data, compare state.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `stellamirror` binary: `$STELLAMIRROR_BIN`, else next to the test executable
/// (`target/release/deps/<test>` → `target/release/stellamirror`).
pub fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("STELLAMIRROR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("stellamirror");
    assert!(
        p.exists(),
        "{} missing: run `make test` (it builds the binary first)",
        p.display()
    );
    p
}

/// The tests crate's folder in the checkout being tested. Cargo sets CARGO_MANIFEST_DIR
/// when it runs a test too; the runtime value wins because a cached test binary built from
/// another clone of the repository (cargo's fingerprints do not cover the compile-time
/// value) would otherwise read that clone's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The committed excerpts.
pub fn data(rel: &str) -> PathBuf {
    manifest_dir().join("data").join(rel)
}

/// The full corpora (`../shared/data`), when present.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let root = std::env::var("STELLAMIRROR_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest_dir().join("../../shared/data"));
    let p = root.join(rel);
    p.exists().then_some(p)
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    /// Assert a refusal with this stable code (in `--json` output or on stderr).
    #[track_caller]
    pub fn fails_with(self, code: &str) -> Self {
        assert_ne!(self.code, 0, "expected failure {code}\nstdout: {}", self.stdout);
        assert!(
            self.stdout.contains(code) || self.stderr.contains(code),
            "expected {code}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.contains("hint") || self.stderr.contains("hint"),
            "refusals carry a hint"
        );
        self
    }
}

fn from_output(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

/// The clock the tests' imports and `status` judge expiry and age by
/// (`STELLAMIRROR_NOW`, docs/operations.md): the earliest `--created-at` the tests use,
/// so no fixture bundle (fixed 2026 dates, 7- and 30-day default lifetimes) has expired
/// whenever the tests run. Tests of expiry and age set their own with [`sm_at`].
pub const TEST_NOW: &str = "2026-08-14T00:00:00Z";

/// Run `stellamirror ARGS` (always `--quiet`) with the clock at [`TEST_NOW`].
pub fn sm<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    sm_at(TEST_NOW, args)
}

/// Run `stellamirror ARGS` (always `--quiet`) with the freshness clock at `now` (RFC 3339).
pub fn sm_at<I, S>(now: &str, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let o = Command::new(bin())
        .arg("--quiet")
        .args(args)
        .env("STELLAMIRROR_NOW", now)
        .output()
        .expect("run stellamirror");
    from_output(o)
}

/// Run any command (a third-party tool).
pub fn tool(program: &str, args: &[&str], cwd: &Path) -> Run {
    let o = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test (make test installs it): {e}"));
    from_output(o)
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `status --json` of one tenant.
pub fn status(store: &Path, tenant: &str) -> Value {
    sm(["status", "--store", p(store), "--tenant", tenant, "--json"])
        .ok()
        .json()
}

pub fn state_root(store: &Path, tenant: &str) -> String {
    status(store, tenant)["stateRoot"]
        .as_str()
        .expect("stateRoot")
        .to_string()
}

pub fn ingest(store: &Path, tenant: &str, extra: &[&str], paths: &[&Path]) -> Run {
    run_ingest(store, tenant, &[&["--json"], extra].concat(), paths)
}

/// `ingest` as a person runs it (text summary, no `--json`); the run is returned unchecked.
pub fn ingest_text(store: &Path, tenant: &str, extra: &[&str], paths: &[&Path]) -> Run {
    run_ingest(store, tenant, extra, paths)
}

fn run_ingest(store: &Path, tenant: &str, extra: &[&str], paths: &[&Path]) -> Run {
    let mut args: Vec<String> = vec![
        "ingest".into(),
        "--store".into(),
        p(store).into(),
        "--tenant".into(),
        tenant.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(paths.iter().map(|x| p(x).to_string()));
    sm(args)
}

/// A fresh signing key pair in `dir`: (private, public).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let base = dir.join(name);
    sm(["keygen", "--out", p(&base)]).ok();
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.pub.pem")))
}

/// Every regular file below `dir`, relative, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).expect("below").to_string_lossy().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `export full` with a fixed run id and creation time; returns the bundle path.
pub fn export_full(store: &Path, out: &Path, key: &Path, run: &str, created: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "export",
        "full",
        "--store",
        p(store),
        "--tenant",
        "acme",
        "--out",
        p(out),
    ];
    args.extend(["--run-id", run, "--created-at", created, "--sign-key", p(key)]);
    args.extend_from_slice(extra);
    sm(args).ok();
    out.join(format!("{run}-full.tar.zst"))
}

/// `export delta` of tenant `acme` against `base`; the run is returned unchecked.
pub fn export_delta(store: &Path, out: &Path, key: &Path, base: &str, run: &str, created: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "export",
        "delta",
        "--store",
        p(store),
        "--tenant",
        "acme",
        "--out",
        p(out),
    ];
    args.extend([
        "--base",
        base,
        "--run-id",
        run,
        "--created-at",
        created,
        "--sign-key",
        p(key),
    ]);
    args.extend_from_slice(extra);
    sm(args)
}

/// `import BUNDLE --store STORE --trust TRUST [extra…]`; the run is returned unchecked.
pub fn import_bundle(bundle: &Path, store: &Path, trust: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["import", p(bundle), "--store", p(store), "--trust", p(trust)];
    args.extend_from_slice(extra);
    sm(args)
}

/// Extract a bundle with GNU tar and the zstd CLI; returns its top folder.
pub fn extract(bundle: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).expect("mkdir");
    let r = tool(
        "sh",
        &["-c", &format!("zstd -dc '{}' | tar -xf -", bundle.display())],
        into,
    );
    assert_eq!(r.code, 0, "GNU tar + zstd extract: {}", r.stderr);
    let top = if bundle.to_string_lossy().ends_with("-delta.tar.zst") {
        "delta"
    } else {
        "mirror"
    };
    into.join(top)
}

/// Ingest one generation (`"old"` or `"new"`) of the committed real sample into tenant
/// `acme`: Go advisories and Rancher VEX as complete sources; the old one adds an SBOM.
pub fn ingest_sample(store: &Path, generation: &str) {
    ingest_generation(store, generation, &[]);
}

/// [`ingest_sample`] with extra flags for the two `--complete` ingests (e.g.
/// `--allow-mass-removal` for a test that goes back from the new generation to the old one,
/// which removes a fifth of the Go advisories on purpose).
pub fn ingest_generation(store: &Path, generation: &str, extra: &[&str]) {
    let complete = |source: &str| -> Vec<String> {
        let mut a = vec!["--source".to_string(), source.to_string(), "--complete".to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = complete("go");
    let go: Vec<&str> = go.iter().map(String::as_str).collect();
    ingest(store, "acme", &go, &[&data(&format!("osv/go-{generation}.jsonl"))]).ok();
    let vex = complete("vex");
    let vex: Vec<&str> = vex.iter().map(String::as_str).collect();
    ingest(store, "acme", &vex, &[&data(&format!("vex/rancher-{generation}"))]).ok();
    if generation == "old" {
        ingest(store, "acme", &["--source", "sbom"], &[&data("sboms")]).ok();
    }
}

/// sha256 (hex) of a file, by coreutils' `sha256sum`.
pub fn sha256_hex(path: &Path) -> String {
    let r = tool("sha256sum", &[p(path)], Path::new("."));
    assert_eq!(r.code, 0, "sha256sum: {}", r.stderr);
    r.stdout.split_whitespace().next().expect("digest").to_string()
}

/// In an extracted bundle `top`, rewrite `manifest.yaml`'s entry for `rel` to the file's
/// current sha256 and size (the manifest must then be signed again).
pub fn relist(top: &Path, rel: &str) {
    let manifest = top.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest.yaml");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("- path: {rel}"))
        .unwrap_or_else(|| panic!("{rel} is not listed"));
    let file = top.join(rel);
    lines[at + 1] = format!("  sha256: sha256:{}", sha256_hex(&file));
    lines[at + 2] = format!("  bytes: {}", std::fs::metadata(&file).expect("listed file").len());
    std::fs::write(&manifest, lines.join("\n") + "\n").expect("write manifest.yaml");
}

/// Sign `top/<file>` with the Ed25519 PEM key `key` using openssl (raw signature, as
/// stellamirror writes `signatures/*.sig`).
pub fn openssl_sign(key: &Path, top: &Path, file: &str, sig: &str) {
    let r = tool(
        "openssl",
        &["pkeyutl", "-sign", "-inkey", p(key), "-rawin", "-in", file, "-out", sig],
        top,
    );
    assert_eq!(r.code, 0, "openssl pkeyutl -sign: {}", r.stderr);
}

/// `openssl pkeyutl -verify` of `top/<file>` against the raw signature `top/<sig>`.
pub fn openssl_verify(public: &Path, top: &Path, file: &str, sig: &str) -> Run {
    tool(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            p(public),
            "-rawin",
            "-in",
            file,
            "-sigfile",
            sig,
        ],
        top,
    )
}

/// Pack an extracted bundle folder `top` (`…/mirror` or `…/delta`) with GNU tar and zstd,
/// manifest and signatures first as stellamirror orders them.
pub fn pack(top: &Path, dest: &Path) {
    let name = top.file_name().and_then(|n| n.to_str()).expect("top folder");
    let first = ["manifest.yaml", "signatures/manifest.sig", "signatures/export.sig"].map(|f| format!("{name}/{f}"));
    let script = format!(
        "{{ printf '%s\\n' {first}; find {name} -type f | LC_ALL=C sort | grep -vxF -e {e0} -e {e1} -e {e2}; }} > list && tar --no-recursion -cf - -T list | zstd -q -c > '{dest}' && rm list",
        first = first.join(" "),
        e0 = first[0],
        e1 = first[1],
        e2 = first[2],
        dest = dest.display()
    );
    let r = tool("sh", &["-c", &script], top.parent().expect("parent"));
    assert_eq!(r.code, 0, "tar + zstd: {}", r.stderr);
}

/// Entries of a store folder that are neither RocksDB's files nor stellamirror's lasting
/// ones (`audit.jsonl`, `keys/`): what a killed or failed command left behind, which the
/// next command that opens the store must have removed.
pub fn store_debris(store: &Path) -> Vec<String> {
    let lasting = |n: &str| {
        let numbered = |ext: &str| {
            n.strip_suffix(ext)
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        ["CURRENT", "IDENTITY", "LOCK", "LOG", "audit.jsonl", "keys"].contains(&n)
            || n.starts_with("LOG.old.")
            || n.starts_with("MANIFEST-")
            || n.starts_with("OPTIONS-") && !n.ends_with(".dbtmp")
            || numbered(".sst")
            || numbered(".log")
            || numbered(".blob")
    };
    let mut left: Vec<String> = std::fs::read_dir(store)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !lasting(n))
                .collect()
        })
        .unwrap_or_default();
    left.sort();
    left
}

/// The committed Go advisories, `copies` times under distinct ids (`<id>-<tag><i>`).
pub fn big_osv(dir: &Path, tag: &str, copies: usize) -> PathBuf {
    let src = std::fs::read_to_string(data("osv/go-new.jsonl")).unwrap();
    let mut big = String::new();
    for i in 0..copies {
        for l in src.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"] = serde_json::Value::String(format!("{}-{tag}{i}", v["id"].as_str().unwrap()));
            big.push_str(&serde_json::to_string(&v).unwrap());
            big.push('\n');
        }
    }
    let path = dir.join(format!("big-{tag}.jsonl"));
    std::fs::write(&path, big).unwrap();
    path
}

/// xorshift64*: reproducible kill points from a printed seed.
pub struct KillClock(pub u64);

impl KillClock {
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// `stellamirror keygen --age`: identity (0600) and recipient.
pub fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let base = dir.join(name);
    let r = sm(["keygen", "--age", "--out", p(&base), "--json"]).ok().json();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&base).expect("identity").permissions().mode() & 0o777,
        0o600
    );
    (base, r["recipient"].as_str().expect("recipient").to_string())
}

/// One measured run of the binary: its result, peak RSS and bytes written.
pub struct Measured {
    pub run: Run,
    pub peak_rss_kib: u64,
    /// `wchar` of `/proc/PID/io`: every `write` of the process and its children.
    pub written: u64,
}

/// Run `stellamirror --quiet ARGS` under `/usr/bin/time -v` with TMPDIR at `tmp`.
pub fn measured(args: &[&str], tmp: &Path) -> Measured {
    std::fs::create_dir_all(tmp).unwrap();
    let (out, err) = (tmp.with_extension("stdout"), tmp.with_extension("stderr"));
    let mut child = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin())
        .arg("--quiet")
        .args(args)
        .env("STELLAMIRROR_NOW", TEST_NOW)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(std::process::Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("/usr/bin/time");
    // A zombie's /proc/PID/io still holds its totals, including its reaped children's.
    let proc = PathBuf::from(format!("/proc/{}", child.id()));
    let written = loop {
        let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next());
        if state == Some("Z") {
            let io = std::fs::read_to_string(proc.join("io")).unwrap();
            let wchar = io.lines().find_map(|l| l.strip_prefix("wchar: ")).unwrap();
            break wchar.trim().parse::<u64>().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    let peak_rss_kib = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .expect("time -v reports the peak RSS");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr,
    };
    Measured {
        run,
        peak_rss_kib,
        written,
    }
}
