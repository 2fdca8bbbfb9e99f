//! Store commands: ingest, remove, status.
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use stellamirror_engine::import::freshness;
use stellamirror_engine::ingest::formats::{KindHint, ParseContext};
use stellamirror_engine::ingest::{self, IngestOptions};
use stellamirror_engine::model::Collection;
use stellamirror_engine::store::Store;

use crate::failure::{Failure, EXIT_PARTIAL};
use crate::progress::Bar;

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Detect the format of each document.
    Auto,
    /// A policy snapshot (any JSON document, stored as received).
    PolicySnapshot,
    /// Policy evaluations as JSON Lines.
    PolicyEvaluations,
}

#[derive(Args)]
#[command(after_help = "Examples:
  stellamirror ingest --store /srv/sm --tenant acme --source osv-go --complete go.jsonl
  stellamirror ingest --store /srv/sm --tenant acme --kind policy-evaluations evals.jsonl
  stellamirror ingest --store /srv/sm --tenant acme --source vexhub --exclude '**/manifest.json' vexhub/
  stellamirror ingest --store /srv/sm --tenant acme --source vexhub --source-root /data/vexhub /data/vexhub/pkg/golang
  stellamirror ingest --store /srv/sm --tenant acme --source cisa-csaf --publisher-key cisa.asc csaf_files/

Document names (the identity of OpenVEX documents and of SBOMs without a serial number
or namespace) are paths relative to the source's root: --source-root, else the root an
earlier run of the source recorded, else the first path. Pointing a later run at a
parent or child folder does not rename anything.

A .sha256/.sha512 beside a document must match it (ERR_INPUT_DIGEST_MISMATCH). With
--publisher-key, an .asc signature beside a document must verify with one of the keys
(ERR_INPUT_SIGNATURE_INVALID) and CSAF records note the key (verifiedBy); without, the
summary counts the signatures present and unchecked. Files that hold no document are
named in the summary with the reason.

--complete refuses to remove more than 10% of the source's records (an empty or
truncated feed) unless --max-removal PCT or --allow-mass-removal says so.

Re-ingesting a snapshot costs what changed: documents whose bytes are those their live
record came from are skipped unparsed (\"N unchanged (skipped), M parsed\"). Every ingest
is one atomic commit, whatever its size.")]
pub struct IngestArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    pub store: PathBuf,
    /// The tenant: a namespace of records in the store.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: String,
    /// Upstream source name recorded on each record (needed by --complete).
    #[arg(long, default_value = "", env = "STELLAMIRROR_SOURCE")]
    source: String,
    /// The input is the source's complete current set: remove its records not in it.
    #[arg(long, requires = "source", env = "STELLAMIRROR_COMPLETE")]
    complete: bool,
    /// --complete: refuse (before changing anything) a run that would remove more than
    /// this percentage of the source's records, e.g. an empty or truncated feed.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = parse_pct, env = "STELLAMIRROR_MAX_REMOVAL")]
    max_removal: f64,
    /// --complete: allow removing any share of the source's records.
    #[arg(long, conflicts_with = "max_removal", env = "STELLAMIRROR_ALLOW_MASS_REMOVAL")]
    allow_mass_removal: bool,
    /// Skip bad documents, ingest the rest and list every bad one (exit code 4).
    #[arg(long, env = "STELLAMIRROR_KEEP_GOING")]
    keep_going: bool,
    /// Parse and plan, but commit nothing.
    #[arg(long, env = "STELLAMIRROR_DRY_RUN")]
    dry_run: bool,
    /// What the input is (default: detect per document).
    #[arg(long, value_enum, default_value = "auto", env = "STELLAMIRROR_KIND")]
    kind: KindArg,
    /// SBOM subject (artifact) overriding metadata.component.
    #[arg(long, env = "STELLAMIRROR_SUBJECT")]
    subject: Option<String>,
    /// Most MiB of changed documents held in memory at once; a larger change is staged in
    /// chunks of this size and made live by one commit (atomic either way).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..), env = "STELLAMIRROR_BATCH_MIB")]
    batch_mib: u64,
    /// Most records (documents and the records derived from them) per chunk.
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u64).range(1..), env = "STELLAMIRROR_BATCH_RECORDS")]
    batch_records: u64,
    /// The directory document names are relative to, recorded for the source (default:
    /// the recorded root, else the first path), e.g. --source-root /data/vexhub.
    #[arg(long, value_name = "DIR", env = "STELLAMIRROR_SOURCE_ROOT")]
    source_root: Option<PathBuf>,
    /// Read only files of input directories whose name (relative to the source root)
    /// matches one of these globs (repeatable), e.g. --include 'pkg/**/*.openvex.json'.
    #[arg(long, value_name = "GLOB", env = "STELLAMIRROR_INCLUDE")]
    include: Vec<String>,
    /// Leave out files of input directories whose name matches one of these globs
    /// (repeatable), e.g. --exclude '**/manifest.json'.
    #[arg(long, value_name = "GLOB", env = "STELLAMIRROR_EXCLUDE")]
    exclude: Vec<String>,
    /// An OpenPGP public key (armored) of a publisher (repeatable): every `.asc` signature
    /// beside a document must verify with one of them, e.g. --publisher-key cisa-csaf.asc.
    #[arg(long, value_name = "KEY.asc", env = "STELLAMIRROR_PUBLISHER_KEY")]
    publisher_key: Vec<PathBuf>,
    /// Files (JSON, JSON Lines) and directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage between 0 and 100")),
    }
}

pub fn ingest(a: IngestArgs, json: bool, quiet: bool) -> Result<i32, Failure> {
    let tenant = crate::tenant(&a.tenant)?;
    let store = Store::open(&a.store)?;
    let opts = IngestOptions {
        tenant,
        source: a.source,
        complete: a.complete,
        keep_going: a.keep_going,
        dry_run: a.dry_run,
        ctx: ParseContext {
            kind: match a.kind {
                KindArg::Auto => KindHint::Auto,
                KindArg::PolicySnapshot => KindHint::PolicySnapshot,
                KindArg::PolicyEvaluations => KindHint::PolicyEvaluations,
            },
            subject_override: a.subject,
            verified_by: None,
        },
        batch_bytes: a.batch_mib << 20,
        batch_records: a.batch_records as usize,
        max_removal_pct: (!a.allow_mass_removal).then_some(a.max_removal),
        source_root: a.source_root,
        selection: ingest::input::Selection::new(&a.include, &a.exclude)?,
        publisher_keys: std::sync::Arc::new(ingest::openpgp::PublisherKeys::load(&a.publisher_key)?),
    };
    let bar = Bar::new(quiet || json);
    let report = ingest::ingest(&store, &a.paths, &opts, &bar)?;
    if json {
        out!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        out!(
            "ingested {} documents into tenant {}: {} unchanged (skipped), {} parsed{}",
            report.documents,
            report.tenant,
            report.unchanged,
            report.parsed,
            if report.committed {
                ""
            } else if opts.dry_run {
                " (dry run: nothing committed)"
            } else {
                " (no changes)"
            }
        );
        for (c, n) in &report.counts {
            out!("  {:<22} +{} ~{} -{}", c.name(), n.added, n.changed, n.removed);
        }
        out!("state root {}", report.state_root);
        print_skipped(&report);
        if report.complete_withheld > 0 {
            eprintln!(
                "warning: {} records absent from the input were NOT removed (--complete) because documents were skipped",
                report.complete_withheld
            );
        }
    }
    Ok(if report.skipped.is_empty() { 0 } else { EXIT_PARTIAL })
}

/// Everything the run passed over, each named with its reason (stderr), and what the
/// upstream integrity files said.
fn print_skipped(report: &ingest::IngestReport) {
    for link in &report.skipped_links {
        eprintln!("skipped symbolic link (not followed): {}", link.display());
    }
    for f in &report.skipped_files {
        eprintln!("skipped file ({}): {}", f.reason, f.file.display());
    }
    if !report.excluded.is_empty() {
        eprintln!("excluded by --include/--exclude: {} files", report.excluded.len());
    }
    for s in &report.superseded {
        eprintln!(
            "skipped[superseded]: {} ({} {:?}): {} stands",
            s.document,
            s.collection.name(),
            s.id,
            s.by
        );
    }
    for bad in &report.skipped {
        eprintln!("skipped[{}]: {bad}", bad.code());
    }
    if report.identical_duplicates > 0 {
        eprintln!(
            "{} documents repeated an earlier document of the input exactly (counted once)",
            report.identical_duplicates
        );
    }
    if !report.repository_metadata.is_empty() {
        eprintln!(
            "read {} VEX repository metadata files (vex-repository.json, index.json, manifest.json): described, not stored",
            report.repository_metadata.len()
        );
    }
    let i = &report.integrity;
    if i.digests_verified > 0 {
        eprintln!("{} documents matched their .sha256/.sha512", i.digests_verified);
    }
    if i.signatures_verified > 0 {
        eprintln!(
            "{} OpenPGP signatures (.asc) verified with a --publisher-key",
            i.signatures_verified
        );
    }
    if i.signatures_present > i.signatures_verified {
        eprintln!(
            "{} OpenPGP signatures (.asc) present, {} unchecked (pass --publisher-key KEY.asc to check them)",
            i.signatures_present,
            i.signatures_present - i.signatures_verified
        );
    }
}

#[derive(Args)]
pub struct RemoveArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
    /// The tenant: a namespace of records in the store.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: String,
    /// Only this kind (advisories, vex, sboms, policy, consensus); default: all.
    #[arg(long, env = "STELLAMIRROR_KIND")]
    kind: Option<String>,
    /// Record ids (OSV id, OpenVEX @id, SBOM subject, ...).
    #[arg(required = true)]
    ids: Vec<String>,
}

pub fn remove(a: RemoveArgs, json: bool) -> Result<i32, Failure> {
    let collections: Vec<Collection> = Collection::ALL
        .into_iter()
        .filter(|c| a.kind.as_deref().is_none_or(|k| c.kind() == k))
        .collect();
    if collections.is_empty() {
        return Err(Failure::new(
            "ERR_USAGE",
            format!("unknown kind {:?}", a.kind.unwrap_or_default()),
            "kinds: advisories, vex, sboms, policy, consensus",
        ));
    }
    let store = Store::open_existing(&a.store)?;
    let tenant = crate::known_tenant(&store, &a.tenant)?;
    let r = ingest::remove(&store, &tenant, &collections, &a.ids)?;
    if json {
        out!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        for (c, n) in &r.removed {
            out!("  {:<22} -{}", c.name(), n.removed);
        }
        out!("state root {}", r.state_root);
    }
    Ok(0)
}

#[derive(Args)]
pub struct StatusArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
    /// Only this tenant (default: every tenant in the store).
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: Option<String>,
    /// Monitoring: exit 5 (ERR_MIRROR_STALE) if a tenant's newest applied bundle is
    /// older than this, past its expiresAt, or missing. Units w, d, h, m, s.
    #[arg(long, value_name = "DURATION", value_parser = crate::freshness::duration_arg, env = "STELLAMIRROR_MAX_AGE")]
    max_age: Option<u64>,
    #[command(flatten)]
    clock: crate::freshness::ClockArgs,
}

pub fn status(a: StatusArgs, json: bool) -> Result<i32, Failure> {
    let store = Store::open_existing(&a.store)?;
    let tenants = match &a.tenant {
        Some(t) => vec![crate::known_tenant(&store, t)?],
        None => store.tenants()?,
    };
    let clock = a.clock.clock()?;
    let mut out = Vec::new();
    for t in &tenants {
        let s = store.state(t)?;
        let mut kinds = serde_json::Map::new();
        for k in &s.kinds {
            kinds.insert(
                k.collection.name().to_string(),
                json!({"records": k.records, "subjects": k.subjects, "root": k.root.to_prefixed()}),
            );
        }
        let history = store.import_history(t)?;
        out.push(json!({
            "tenant": t.as_str(),
            "stateRoot": s.root().to_prefixed(),
            "storeSequence": store.sequence(),
            "records": s.kinds.iter().map(|k| k.records).sum::<u64>(),
            "kinds": kinds,
            "appliedExportIds": history.applied_export_ids,
            "freshness": freshness::report(&history, &clock),
        }));
    }
    let stale = a.max_age.map(|max| crate::freshness::stale_tenants(&out, max));
    if json {
        let mut v = if a.tenant.is_some() {
            out.pop().unwrap_or_default()
        } else {
            json!({"tenants": out})
        };
        if let Some(s) = &stale {
            // One JSON document on stdout: the verdict goes into it, the exit code says it.
            v["stale"] = json!(s);
            out!("{v}");
            return Ok(if s.is_empty() { 0 } else { crate::failure::EXIT_STALE });
        }
        out!("{v}");
    } else {
        for t in out {
            out!("tenant {}", t["tenant"].as_str().unwrap_or_default());
            out!("  state root {}", t["stateRoot"].as_str().unwrap_or_default());
            if let Some(kinds) = t["kinds"].as_object() {
                for (name, k) in kinds {
                    out!(
                        "  {:<22} {:>9} records {:>7} subjects  {}",
                        name,
                        k["records"],
                        k["subjects"],
                        k["root"].as_str().unwrap_or_default()
                    );
                }
            }
            crate::freshness::print_freshness(&t["freshness"]);
        }
    }
    match stale {
        Some(s) if !s.is_empty() => Err(crate::freshness::stale_failure(&s)),
        _ => Ok(0),
    }
}
