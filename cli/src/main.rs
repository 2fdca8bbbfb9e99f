//! `stellamirror`: the command-line glue. Raw flags → validated settings → engine calls →
//! rendering and exit codes. No storage or format logic lives here.
#![forbid(unsafe_code)]
// A `Failure` is built at most once per process, on the way to `exit`; its size is irrelevant.
#![allow(clippy::result_large_err)]

#[macro_use]
mod output;
mod cmd_bundle;
mod cmd_docs;
mod cmd_keys;
mod cmd_publish;
mod cmd_retention;
mod cmd_run;
mod cmd_serve;
mod cmd_store;
mod config;
mod failure;
mod fresh;
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
pub struct Cli {
    /// Print machine-readable JSON on stdout (errors too).
    #[arg(long, global = true, env = "STELLAMIRROR_JSON")]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true, env = "STELLAMIRROR_QUIET")]
    quiet: bool,
    /// Config file (stellamirror.toml): store, tenants, channels; its values are the
    /// defaults of the matching flags (a flag or STELLAMIRROR_* variable wins).
    #[arg(long, global = true, env = "STELLAMIRROR_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest OSV, OpenVEX, CSAF, CycloneDX, SPDX and policy documents into the store.
    #[command(
        after_help = "Example:\n  stellamirror ingest --store S --tenant acme --source osv-go --complete go.jsonl\n  stellamirror ingest --store S --tenant acme --source vexhub --keep-going vex/"
    )]
    Ingest(cmd_store::IngestArgs),
    /// Remove records (and the records derived from them) by id.
    #[command(
        after_help = "Example:\n  stellamirror remove --store S --tenant acme --kind advisories GHSA-xxxx-yyyy-zzzz"
    )]
    Remove(cmd_store::RemoveArgs),
    /// Counts per kind, subjects, state root and kind roots; how fresh imported data is.
    #[command(
        after_help = "Example:\n  stellamirror status --store MIRROR --tenant acme --json | jq -r .stateRoot\n  \
stellamirror status --store MIRROR --max-age 2d   # monitoring: exit 5 when stale or expired"
    )]
    Status(cmd_store::StatusArgs),
    /// Create an Ed25519 signing key pair (or an age identity with --age).
    #[command(
        after_help = "Example:\n  stellamirror keygen --out producer          # producer.pem, producer.pub.pem\n  stellamirror keygen --age --out mirror.age  # mirror.age, mirror.age.pub"
    )]
    Keygen(cmd_bundle::KeygenArgs),
    /// Write a signed mirror bundle.
    #[command(subcommand)]
    Export(cmd_bundle::ExportCmd),
    /// Check bundles (signatures, digests, listing, records, Merkle roots) or a store.
    #[command(
        after_help = "Example:\n  stellamirror verify OUT/run-1-full.tar.zst OUT/run-2-delta.tar.zst --trust producer.pub.pem\n  stellamirror verify --store MIRROR\n\n\
A plaintext bundle archive is checked in one pass, in memory that does not grow with the bundle, writing only its small documents to TMPDIR; an encrypted bundle is staged in TMPDIR first (docs/bundle-format.md, \"How verify streams\")."
    )]
    Verify(cmd_bundle::VerifyArgs),
    /// Apply a bundle to a store (in order, atomically; never older than the newest applied).
    #[command(
        after_help = "Example:\n  stellamirror import full-1-full.tar.zst --store mirror --trust producer.pub.pem\n  \
stellamirror import full-1-full.tar.zst --store mirror --trust producer.pub.pem --allow-rollback\n\n\
An unencrypted archive is read in one pass (decompressed, checked and loaded as it streams);\n\
a full bundle is bulk-loaded. Progress (bytes/s, records/s, ETA) is drawn on stderr unless --quiet.\n\
Bundles older than the newest one applied (ERR_BUNDLE_ROLLBACK) and expired bundles\n\
(ERR_BUNDLE_EXPIRED) are refused before anything is written; see docs/operations.md."
    )]
    Import(cmd_bundle::ImportArgs),
    /// Disaster recovery: rebuild a store from a folder of bundles.
    #[command(
        after_help = "Example:\n  stellamirror rebuild --bundles received/ --store mirror-new --trust producer.pub.pem\n\nApplies the newest full bundle and the deltas that chain from it, then checks the store's\nMerkle tree and records (objects were hashed as they were imported)."
    )]
    Rebuild(cmd_bundle::RebuildArgs),
    /// Write the scanner-facing mirror tree (OSV zips, VEX repository, CSAF provider, bundle layout).
    #[command(
        after_help = "Example:\n  stellamirror publish --store MIRROR --tenant acme --out /srv/mirror --base-url https://mirror.example/acme\n  stellamirror serve --publish /srv/mirror --addr 127.0.0.1:8080\n  stellamirror publish --store MIRROR --tenant acme --out /srv/mirror --max-deltas 0   # fold the bundle layout's deltas now\n\nAfter a delta only what it touched is written; the rest is hard-linked to the previous version."
    )]
    Publish(cmd_publish::PublishArgs),
    /// Read-only HTTP(S) gateway over a published tree (ETag, Range, /healthz, /status).
    #[command(
        after_help = "Example:\n  stellamirror serve --publish /srv/mirror --addr 127.0.0.1:8080\n  curl http://127.0.0.1:8080/acme/osv/ecosystems.txt\n  stellamirror serve --publish /srv/mirror --tenant acme --addr 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem"
    )]
    Serve(cmd_serve::ServeArgs),
    /// Remove a channel's old exports (bundle files and catalog entries), then the store's garbage.
    #[command(
        after_help = "Example:\n  stellamirror prune --store S --channel default --keep-full 2 --keep-within 7d --dry-run\n  stellamirror prune --store S --channel default --keep-full 1 --keep-within 24h\n\n\
Never removes the channel's newest full export, its newest export, nor any export a kept\n\
delta is based on (so `rebuild` from the folder still reaches the newest state)."
    )]
    Prune(cmd_retention::PruneArgs),
    /// Delete objects and Merkle nodes no live state or kept export refers to.
    #[command(
        after_help = "Example:\n  stellamirror gc --store S --dry-run\n  stellamirror gc --store S --full --dry-run --json\n\n\
Collects what earlier prunes left pending (incremental: costs what they made unreferenced);\n\
with nothing pending, or with --full, marks and sweeps the whole store."
    )]
    Gc(cmd_retention::GcArgs),
    /// Export what a channel of the config file is due for: a full bundle, a delta, or nothing.
    #[command(
        after_help = "Example:\n  stellamirror --config /etc/stellamirror/stellamirror.toml run hourly\n  STELLAMIRROR_CONFIG=stellamirror.toml stellamirror run hourly --always\n\n\
A full export when none was made in the current slot of the channel's full_every, else a\n\
delta when none was made in the current slot of delta_every and something changed; then\n\
the channel's retention (prune and gc). Running it twice in one slot exports once."
    )]
    Run(cmd_run::RunArgs),
    /// Exports produced and imports applied.
    #[command(after_help = "Example:\n  stellamirror log --store S --json")]
    Log(cmd_bundle::LogArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  stellamirror completions bash > /etc/bash_completion.d/stellamirror")]
    Completions(cmd_docs::CompletionsArgs),
    /// Write the man pages (one per command) into a folder.
    #[command(after_help = "Example:\n  stellamirror man --out /usr/local/share/man/man1")]
    Man(cmd_docs::ManArgs),
}

fn main() {
    if let Err(f) = config::preload() {
        f.report(std::env::args().any(|a| a == "--json"));
        std::process::exit(f.exit);
    }
    let cli = Cli::parse();
    let json = cli.json;
    let result: Result<i32, Failure> = match cli.command {
        Command::Ingest(a) => fresh::FreshStore::before(&a.store).after(cmd_store::ingest(a, json, cli.quiet)),
        Command::Remove(a) => cmd_store::remove(a, json),
        Command::Status(a) => cmd_store::status(a, json),
        Command::Keygen(a) => cmd_bundle::keygen(a, json),
        Command::Export(c) => cmd_bundle::export(c, json),
        Command::Verify(a) => cmd_bundle::verify(a, json),
        Command::Import(a) => fresh::FreshStore::before(&a.store).after(cmd_bundle::import_cmd(a, json, cli.quiet)),
        Command::Rebuild(a) => fresh::FreshStore::before(&a.store).after(cmd_bundle::rebuild_cmd(a, json, cli.quiet)),
        Command::Publish(a) => cmd_publish::publish_cmd(a, json),
        Command::Serve(a) => cmd_serve::serve_cmd(a),
        Command::Log(a) => cmd_bundle::log(a, json),
        Command::Run(a) => cmd_run::run_cmd(a, json),
        Command::Prune(a) => cmd_retention::prune_cmd(a, json),
        Command::Gc(a) => cmd_retention::gc_cmd(a, json),
        Command::Completions(a) => cmd_docs::completions(a),
        Command::Man(a) => cmd_docs::man(a),
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

/// A tenant the store holds (for commands that read a tenant's state: status, export,
/// remove). A mistyped `--tenant` is refused, naming the tenants there are, instead of
/// reporting (or exporting) an empty one.
pub fn known_tenant(
    store: &stellamirror_engine::store::Store,
    name: &str,
) -> Result<stellamirror_engine::model::Tenant, Failure> {
    let t = tenant(name)?;
    let known = store.tenants()?;
    if known.contains(&t) {
        return Ok(t);
    }
    let list: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
    Err(Failure::new(
        "ERR_TENANT_UNKNOWN",
        format!(
            "tenant {name} is not in store {} (tenants: {})",
            store.path().display(),
            if list.is_empty() {
                "none yet".to_string()
            } else {
                list.join(", ")
            }
        ),
        "check --tenant (and --store); `stellamirror status --store DIR` lists the tenants",
    ))
}
