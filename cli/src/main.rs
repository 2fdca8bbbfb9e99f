//! `stellamirror`: the command-line glue. Raw flags → validated settings → engine calls →
//! rendering and exit codes. No storage or format logic lives here.
#![forbid(unsafe_code)]
// A `Failure` is built at most once per process, on the way to `exit`; its size is irrelevant.
#![allow(clippy::result_large_err)]

mod cmd_bundle;
mod cmd_keys;
mod cmd_store;
mod failure;
mod freshness;
mod progress;
mod trust_args;

use clap::{Parser, Subcommand};

use failure::Failure;

// Export and ingest allocate and free millions of short-lived buffers from two threads;
// glibc's allocator spent ~12% of a 1M-record export in malloc/free (perf, docs/benchmarks.md).
// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages, and zeroing a
// 2 MiB page on first touch was 15% of a short command such as a delta export.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stellamirror",
    version,
    about = "Signed, verifiable mirror bundles of vulnerability evidence for air-gapped networks"
)]
struct Cli {
    /// Print machine-readable JSON on stdout (errors too).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest OSV, OpenVEX, CSAF, CycloneDX, SPDX and policy documents into the store.
    Ingest(cmd_store::IngestArgs),
    /// Remove records (and the records derived from them) by id.
    Remove(cmd_store::RemoveArgs),
    /// Counts per kind, subjects, state root and kind roots; how fresh imported data is.
    #[command(
        after_help = "Examples:\n  stellamirror status --store /var/lib/sm --tenant acme\n  \
stellamirror status --store /var/lib/sm --max-age 2d   # monitoring: exit 5 when stale or expired"
    )]
    Status(cmd_store::StatusArgs),
    /// Create an Ed25519 signing key pair (or an age identity with --age).
    Keygen(cmd_bundle::KeygenArgs),
    /// Write a signed mirror bundle.
    #[command(subcommand)]
    Export(cmd_bundle::ExportCmd),
    /// Check bundles (signatures, digests, listing, records, Merkle roots) or a store.
    Verify(cmd_bundle::VerifyArgs),
    /// Apply a bundle to a store (in order, atomically; never older than the newest applied).
    #[command(
        after_help = "Examples:\n  stellamirror import acme-delta-7-delta.tar.zst --store /var/lib/sm --trust producer.pub.pem\n  \
stellamirror import acme-full-1-full.tar.zst --store /var/lib/sm --trust producer.pub.pem --allow-rollback\n\n\
Bundles older than the newest one applied (ERR_BUNDLE_ROLLBACK) and expired bundles\n\
(ERR_BUNDLE_EXPIRED) are refused before anything is written; see docs/operations.md."
    )]
    Import(cmd_bundle::ImportArgs),
    /// Disaster recovery: rebuild a store from a folder of bundles.
    Rebuild(cmd_bundle::RebuildArgs),
    /// Exports produced and imports applied.
    Log(cmd_bundle::LogArgs),
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let result: Result<i32, Failure> = match cli.command {
        Command::Ingest(a) => cmd_store::ingest(a, json, cli.quiet),
        Command::Remove(a) => cmd_store::remove(a, json),
        Command::Status(a) => cmd_store::status(a, json),
        Command::Keygen(a) => cmd_bundle::keygen(a, json),
        Command::Export(c) => cmd_bundle::export(c, json),
        Command::Verify(a) => cmd_bundle::verify(a, json),
        Command::Import(a) => cmd_bundle::import_cmd(a, json),
        Command::Rebuild(a) => cmd_bundle::rebuild_cmd(a, json),
        Command::Log(a) => cmd_bundle::log(a, json),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(f) => {
            f.report(json);
            std::process::exit(f.exit);
        }
    }
}

/// Parse a tenant flag into the engine's validated type.
pub fn tenant(name: &str) -> Result<stellamirror_engine::model::Tenant, Failure> {
    stellamirror_engine::model::Tenant::new(name)
        .map_err(|m| Failure::new("ERR_USAGE", m, "tenant names use letters, digits, '.', '_' and '-'"))
}
