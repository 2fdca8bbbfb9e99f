//! `serve`: the read-only HTTP(S) gateway over a published tree (crate stellamirror-serve).
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use stellamirror_serve::{ServeConfig, ServeError};

use crate::failure::Failure;

#[derive(Args)]
pub struct ServeArgs {
    /// The folder given to `publish --out` / `import --publish`.
    #[arg(long, env = "STELLAMIRROR_PUBLISH")]
    publish: PathBuf,
    /// Address to listen on (port 0 picks a free one; the bound address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8080", env = "STELLAMIRROR_ADDR")]
    addr: SocketAddr,
    /// Serve only this tenant, at / (so /.well-known/… is at the domain root, as the VEX
    /// repository and CSAF specifications expect). Without it, each tenant is at /<tenant>/.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: Option<String>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key", env = "STELLAMIRROR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "STELLAMIRROR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Requests handled at once; further requests wait.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536), env = "STELLAMIRROR_MAX_CONCURRENCY")]
    max_concurrency: u32,
}

pub fn serve_cmd(a: ServeArgs) -> Result<i32, Failure> {
    if let Some(t) = &a.tenant {
        crate::tenant(t)?;
    }
    let cfg = ServeConfig {
        root: a.publish,
        tenant: a.tenant,
        addr: a.addr,
        tls: a.tls_cert.zip(a.tls_key),
        max_concurrency: a.max_concurrency as usize,
    };
    stellamirror_serve::run(cfg, |addr, tls| {
        eprintln!("listening on {}://{addr}", if tls { "https" } else { "http" });
    })
    .map_err(|e: ServeError| Failure::new(e.code(), e.to_string(), e.hint()))?;
    Ok(0)
}
