//! `stellamirror serve`: a read-only HTTP(S) gateway over a published mirror tree.
//!
//! Every request resolves `<tenant>/current` once, then serves only from the version it
//! points at: a publish that swaps `current` is atomic for clients (a request sees the old
//! or the new version, never a mix), and the previous version stays on disk for requests
//! still inside it. Files are served by tower-http's `ServeFile` (Range, HEAD,
//! Last-Modified, content types); this crate adds strong ETags (published files are
//! immutable: a changed file is a new file), `If-None-Match`, `/healthz`, `/status`, a
//! bound on concurrent requests (held until a response's body is sent or dropped, so slow
//! downloads count), and path checks before any file-system access.
#![forbid(unsafe_code)]

mod body;
mod paths;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::accept::NoDelayAcceptor;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::services::ServeFile;

pub use paths::{resolve, Target};

pub struct ServeConfig {
    /// The `--out` folder of `publish`: `<root>/<tenant>/current`.
    pub root: PathBuf,
    /// Serve this tenant at `/` (else each tenant at `/<tenant>/`).
    pub tenant: Option<String>,
    pub addr: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Requests handled at once, their bodies' sending included; more wait.
    pub max_concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: not a published tree folder ({source})")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate {cert} / key {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Root { .. } => "ERR_SERVE_ROOT",
            ServeError::Tls { .. } => "ERR_SERVE_TLS",
            ServeError::Serve { .. } => "ERR_SERVE_BIND",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            ServeError::Root { .. } => "pass the folder given to `publish --out` / `import --publish`".into(),
            ServeError::Tls { .. } => {
                "give a PEM certificate chain (--tls-cert) and its PEM private key (--tls-key)".into()
            }
            ServeError::Serve { .. } => "choose a free --addr (another process may hold the port)".into(),
        }
    }
}

struct App {
    root: PathBuf,
    tenant: Option<String>,
    permits: Arc<Semaphore>,
}

/// Serve until SIGINT/SIGTERM. `on_listen` gets the bound address (port 0 picks one).
pub fn run(cfg: ServeConfig, on_listen: impl FnOnce(SocketAddr, bool) + Send + 'static) -> Result<(), ServeError> {
    std::fs::read_dir(&cfg.root).map_err(|source| ServeError::Root {
        path: cfg.root.clone(),
        source,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| ServeError::Serve { addr: cfg.addr, source })?;
    rt.block_on(serve(cfg, on_listen))
}

async fn serve(cfg: ServeConfig, on_listen: impl FnOnce(SocketAddr, bool) + Send + 'static) -> Result<(), ServeError> {
    let app = Arc::new(App {
        root: cfg.root.clone(),
        tenant: cfg.tenant.clone(),
        permits: Arc::new(Semaphore::new(cfg.max_concurrency.max(1))),
    });
    let router = Router::new().fallback(handle).with_state(app);
    let handle = axum_server::Handle::new();
    let tls = cfg.tls.is_some();
    let watcher = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = watcher.listening().await {
            on_listen(addr, tls);
        }
    });
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let addr = cfg.addr;
    // Small responses would otherwise wait for the peer's delayed ACK (Nagle's algorithm).
    let err = |source| ServeError::Serve { addr, source };
    match cfg.tls {
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|source| ServeError::Tls { cert, key, source })?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
            axum_server::bind(addr)
                .acceptor(acceptor)
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .map_err(err)
        }
        None => axum_server::bind(addr)
            .acceptor(NoDelayAcceptor::new())
            .handle(handle)
            .serve(router.into_make_service())
            .await
            .map_err(err),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let permit = app
        .permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let r = match resolve(req.uri().path(), app.tenant.as_deref()) {
        Target::Health => plain(StatusCode::OK, "ok\n"),
        Target::Refused => plain(StatusCode::BAD_REQUEST, "refused path\n"),
        Target::Status(tenant) => status::response(&app.root, tenant.as_deref()).await,
        Target::File { tenant, rel } => file(&app, &tenant, &rel, req).await,
    };
    r.map(|b| Body::new(body::Permitted::new(b, permit)))
}

/// Serve `rel` from the version `<tenant>/current` points at now.
async fn file(app: &App, tenant: &str, rel: &str, req: Request) -> Response {
    let Some(version) = paths::current_version(&app.root, tenant).await else {
        return plain(StatusCode::NOT_FOUND, "no such tenant\n");
    };
    let path = version.join(rel);
    let meta = match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_file() => m,
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let etag = paths::etag(&meta);
    let etag_value = HeaderValue::from_str(&etag).expect("hex and quotes");
    if if_none_match(req.headers(), &etag) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, etag_value);
        return r;
    }
    let mut r = match ServeFile::new(&path).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "read failed\n"),
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag_value);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(ct) = paths::content_type(rel) {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

fn if_none_match(h: &HeaderMap, etag: &str) -> bool {
    h.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
            })
            .unwrap_or(false)
    })
}
