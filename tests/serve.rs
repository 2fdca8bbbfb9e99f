//! `serve`, driven with curl and wrk on loopback: the server is started on a free port by
//! each test and stopped by it (by its process id) when the test ends.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stellamirror_tests::*;

/// A running `stellamirror serve`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(publish: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--publish", p(publish), "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve did not start: {line}"))
            .to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s -D - ARGS URL`: (status, headers lower-cased, body).
fn curl(args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let o = Command::new("curl")
        .args(["-s", "-D", "-", "--path-as-is"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is required (make test installs it)");
    let text = o.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    let head = String::from_utf8_lossy(&text[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, text[split..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

fn published(root: &Path) -> (PathBuf, PathBuf) {
    let store = root.join("store");
    ingest_sample(&store, "old");
    let out = root.join("pub");
    sm(["publish", "--store", p(&store), "--tenant", "acme", "--out", p(&out)]).ok();
    (store, out)
}

#[test]
fn etags_ranges_types_status_and_refused_paths() {
    let t = tempfile::tempdir().unwrap();
    let (store, out) = published(t.path());
    let s = Server::start(&out, &[]);
    let (code, _, body) = curl(&[], &format!("{}/healthz", s.url));
    assert_eq!((code, body.as_slice()), (200, &b"ok\n"[..]));
    // ETag round trip: the same file with If-None-Match is 304 without a body.
    let zip = format!("{}/acme/osv/Go/all.zip", s.url);
    let (code, head, body) = curl(&[], &zip);
    assert_eq!(code, 200);
    assert_eq!(header(&head, "content-type"), Some("application/zip"));
    let disk = std::fs::read(out.join("acme/current/osv/Go/all.zip")).unwrap();
    assert_eq!(body, disk);
    let etag = header(&head, "etag").expect("etag").to_string();
    let (code, head304, body) = curl(&["-H", &format!("If-None-Match: {etag}")], &zip);
    assert_eq!((code, body.len()), (304, 0));
    assert_eq!(header(&head304, "etag"), Some(etag.as_str()));
    let (code, _, _) = curl(&["-H", "If-None-Match: \"other\""], &zip);
    assert_eq!(code, 200);
    // Range: 206 with exactly the requested bytes.
    let (code, head, body) = curl(&["-H", "Range: bytes=10-109"], &zip);
    assert_eq!(code, 206);
    assert_eq!(body, disk[10..110].to_vec());
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 10-109/{}", disk.len()).as_str())
    );
    let (_, head, _) = curl(&[], &format!("{}/acme/.well-known/csaf/provider-metadata.json", s.url));
    assert!(head.contains("content-type: application/json"), "{head}");
    let (_, head, _) = curl(&[], &format!("{}/acme/osv/ecosystems.txt", s.url));
    assert!(head.contains("content-type: text/plain"), "{head}");
    // /status names the state the tree holds.
    let (code, _, body) = curl(&[], &format!("{}/acme/status", s.url));
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["stateRoot"].as_str().unwrap(), state_root(&store, "acme"));
    // Traversal and hidden paths are refused, raw or percent-encoded; nothing outside the
    // version is served even though these files exist.
    std::fs::write(t.path().join("secret.txt"), b"secret").unwrap();
    // A symlink inside the version is not followed either.
    let version = std::fs::canonicalize(out.join("acme/current")).unwrap();
    std::os::unix::fs::symlink(t.path().join("secret.txt"), version.join("osv/link.txt")).unwrap();
    for path in [
        "/acme/osv/link.txt",
        "/acme/../secret.txt",
        "/acme/../../secret.txt",
        "/acme/%2e%2e/%2e%2e/secret.txt",
        "/acme/osv/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/acme/.publish/vex.json",
        "/acme/versions/x",
        "/..%2fsecret.txt",
        "/acme/osv%5c..%5c..%5csecret.txt",
    ] {
        let (code, _, body) = curl(&[], &format!("{}{path}", s.url));
        assert!(code == 400 || code == 404, "{path}: {code}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{path}");
    }
    let (code, _, _) = curl(&["-X", "PUT"], &zip);
    assert_eq!(code, 405);
}

#[test]
fn a_publish_switches_atomically_for_readers() {
    let t = tempfile::tempdir().unwrap();
    let (store, out) = published(t.path());
    let first = state_root(&store, "acme");
    let s = Server::start(&out, &["--tenant", "acme"]);
    let url = format!("{}/state.json", s.url);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, url) = (stop.clone(), url.clone());
        std::thread::spawn(move || {
            let mut roots = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (code, _, body) = curl(&[], &url);
                assert_eq!(code, 200, "a read during a switch failed");
                let st: serde_json::Value = serde_json::from_slice(&body).expect("a whole state.json");
                roots.push(st["stateRoot"].as_str().unwrap().to_string());
            }
            roots
        })
    };
    let mut states = vec![first.clone()];
    for generation in ["new", "old", "new", "old"] {
        stellamirror_tests::ingest_generation(&store, generation, &["--allow-mass-removal"]);
        sm(["publish", "--store", p(&store), "--tenant", "acme", "--out", p(&out)]).ok();
        states.push(state_root(&store, "acme"));
    }
    stop.store(true, Ordering::Relaxed);
    let roots = reader.join().expect("reader saw only complete versions");
    assert!(
        roots.len() > 5,
        "the reader ran during the switches ({} reads)",
        roots.len()
    );
    assert!(roots.iter().all(|r| states.contains(r)), "{roots:?}");
    let (_, _, body) = curl(&[], &url);
    let last: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(last["stateRoot"].as_str(), states.last().map(String::as_str));
}

#[test]
fn tls_from_pem_files() {
    let t = tempfile::tempdir().unwrap();
    let (_, out) = published(t.path());
    let r = tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
        t.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    let s = Server::start(&out, &["--tls-cert", p(&cert), "--tls-key", p(&key)]);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let (code, _, body) = curl(&["--cacert", p(&cert)], &format!("{}/acme/osv/ecosystems.txt", s.url));
    assert_eq!((code, body.as_slice()), (200, &b"Go\n"[..]));
}

/// A bounded load run (3 s, loopback): requests/s and no errors, reported on stderr.
#[test]
fn a_short_wrk_run_has_no_errors() {
    let r = tool(
        "bash",
        &[
            stellamirror_tests::manifest_dir()
                .join("scripts/install-deps.sh")
                .to_str()
                .unwrap(),
            "wrk",
        ],
        Path::new("."),
    );
    assert_eq!(r.code, 0, "installing wrk: {}", r.stderr);
    let t = tempfile::tempdir().unwrap();
    let (_, out) = published(t.path());
    let s = Server::start(&out, &[]);
    for path in ["/acme/osv/ecosystems.txt", "/acme/osv/Go/all.zip"] {
        let url = format!("{}{path}", s.url);
        let r = tool("wrk", &["-t2", "-c16", "-d3s", "--latency", &url], t.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stdout.contains("Non-2xx"), "{}", r.stdout);
        assert!(!r.stdout.contains("Socket errors"), "{}", r.stdout);
        let rps = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .map(str::trim)
            .expect("wrk summary");
        eprintln!("wrk -t2 -c16 -d3s {path}: {rps} requests/s, 0 errors\n{}", r.stdout);
        assert!(rps.parse::<f64>().unwrap() > 0.0);
    }
}

/// `--max-concurrency` counts a request until its body is sent: while a slow download holds
/// the only place, another request waits (here: past curl's time limit), then is served.
#[test]
fn a_slow_download_holds_its_place_under_max_concurrency() {
    let t = tempfile::tempdir().unwrap();
    let (_, out) = published(t.path());
    // A file larger than loopback's socket buffers, so the server is still sending it.
    let version = std::fs::canonicalize(out.join("acme/current")).unwrap();
    std::fs::write(version.join("osv/big.zip"), vec![7u8; 32 << 20]).unwrap();
    let s = Server::start(&out, &["--tenant", "acme", "--max-concurrency", "1"]);
    let partial = t.path().join("big.part");
    let mut slow = Command::new("curl")
        .args(["-s", "--limit-rate", "8M", "-o"])
        .arg(&partial)
        .arg(format!("{}/osv/big.zip", s.url))
        .spawn()
        .expect("curl");
    // The download holds the place once its body flows (a fixed sleep raced a slow start).
    let started = std::time::Instant::now();
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let quick = |max: &str| {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", max])
            .arg(format!("{}/osv/ecosystems.txt", s.url))
            .output()
            .expect("curl");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    let (code, _) = quick("1");
    assert_eq!(
        code,
        Some(28),
        "the second request waited for the download's place (curl: timed out)"
    );
    assert!(slow.wait().unwrap().success());
    assert_eq!(quick("5"), (Some(0), "200".to_string()));
}

/// Issue 16's freeze protection on the far side: `/status` carries the signed `expiresAt`
/// of the last applied bundle and whether it has passed. The bundle is imported at the test
/// clock (inside its lifetime); `serve` reads the real clock, months later.
#[test]
fn status_shows_when_the_mirrored_data_expired() {
    let t = tempfile::tempdir().unwrap();
    let (key, public) = keypair(t.path(), "producer");
    let producer = t.path().join("producer");
    ingest_sample(&producer, "old");
    let out = t.path().join("bundles");
    let short = export_full(&producer, &out, &key, "f1", TEST_NOW, &["--expires-in", "2d"]);
    let mirror = t.path().join("mirror");
    let tree = t.path().join("pub");
    import_bundle(&short, &mirror, &public, &["--publish", p(&tree)]).ok();
    let s = Server::start(&tree, &[]);
    let (code, _, body) = curl(&[], &format!("{}/acme/status", s.url));
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["producerExpiresAt"], "2026-08-16T00:00:00Z", "{st}");
    assert_eq!(st["expired"], true, "{st}");
    assert!(st["dataAgeSeconds"].as_i64().unwrap() > 2 * 86_400, "{st}");
}
