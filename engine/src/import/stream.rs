//! One pass over a bundle archive: every entry is decompressed, hashed for its manifest
//! digest and — when the import needs it — read into the store's bulk load as it streams
//! by, with no staging copy on disk and no second read.
//!
//! Three threads: this one decompresses the archive, checks each entry against the signed
//! listing and hashes it; a parser thread decompresses each data file, parses and hashes
//! its records; a loader thread sorts and writes them. A file
//! reaches the loader only once its sha256 matched the manifest, and the loader is started
//! only once the manifest's signature verified and [`precheck`] accepted the bundle.
//! Nothing the loader writes becomes visible before [`Loader::finish`] (after the
//! signatures and the complete listing verified) commits a root equal to `stateRoot`.
//!
//! Bundles this cannot read in one pass — encrypted (the wrapped keys come after the data)
//! or not starting with their manifest — are reported as [`Streamed::Unsuitable`], and the
//! caller stages them as before.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::bulk::BulkOptions;
use super::load::{precheck, Ctx, Interest, Loader, Parsed};
use super::{ImportError, ImportReport, ImportSettings};
use crate::audit::{AuditSink, Progress};
use crate::bundle::archive::{
    read_archive, ArchiveVisitor, GateInput, Target, EXPORT, EXPORT_SIG, MANIFEST, MANIFEST_SIG,
};
use crate::bundle::dsse::ENVELOPE_PATH;
use crate::bundle::error::BundleError;
use crate::bundle::format::{Artifact, EncryptionModeName};
use crate::bundle::verify::{gate, parse_manifest, verify_attestation, verify_listing, SignedDocs, PROVENANCE};
use crate::ids::FileDigest;
use crate::import::freshness::Policy;
use crate::store::Store;
use crate::trust::rotation::{Gate, ROTATION_PATH};

/// Issue 16's checks: trusted keys and their rules (rotations included), freshness.
pub struct Checks<'a> {
    pub gate: &'a Gate,
    pub freshness: &'a Policy,
}

/// Listed files kept in memory for the checks after the listing: the attestation and
/// its envelope, a key rotation statement.
const KEPT: [&str; 3] = [PROVENANCE, ENVELOPE_PATH, ROTATION_PATH];

pub enum Streamed {
    Applied(ImportReport),
    /// Encrypted, or the manifest did not come first: stage the bundle instead.
    Unsuitable,
}

/// Reader → parser.
enum Msg {
    Start(Box<Ctx>),
    Entry(String, Vec<u8>),
}

/// Parser → loader.
enum Work {
    Start(Box<Ctx>),
    Parsed(Parsed),
}

struct Visitor<'a> {
    store: &'a Store,
    s: &'a ImportSettings,
    checks: &'a Checks<'a>,
    progress: &'a dyn Progress,
    tx: Option<SyncSender<Msg>>,
    interest: Option<Interest>,
    meta: BTreeMap<&'static str, Vec<u8>>,
    unsuitable: bool,
    refused: Option<ImportError>,
}

/// Stops the archive reader; the real reason is in the visitor (or the loader thread).
fn stop() -> BundleError {
    BundleError::Malformed {
        path: "import".into(),
        reason: "stopped".into(),
    }
}

impl ArchiveVisitor for Visitor<'_> {
    fn gate(&mut self, input: &GateInput<'_>) -> Result<Vec<Artifact>, BundleError> {
        let artifacts = gate(&self.checks.gate.keys, input)?;
        let manifest = parse_manifest(input.manifest)?;
        if manifest.encryption.mode != EncryptionModeName::None {
            self.unsuitable = true;
            return Err(stop());
        }
        if let Err(e) = self
            .checks
            .gate
            .check_signer(input.manifest, input.manifest_sig, &manifest)
        {
            self.refused = Some(e.into());
            return Err(stop());
        }
        let total = artifacts.iter().map(|a| a.bytes).sum();
        match precheck(
            self.store,
            manifest,
            FileDigest::of(input.manifest),
            self.s,
            self.checks.freshness,
        ) {
            Err(e) => {
                self.refused = Some(e);
                return Err(stop());
            }
            Ok(ctx) => {
                self.interest = Some(ctx.interest());
                self.send(Msg::Start(Box::new(ctx)))?;
            }
        }
        self.progress.phase("import", total);
        Ok(artifacts)
    }

    fn target(&mut self, _: &str, rel: &str, size: u64) -> Result<Target, BundleError> {
        if rel == EXPORT {
            self.progress.advance(size);
        }
        if [MANIFEST, MANIFEST_SIG, EXPORT_SIG, EXPORT].contains(&rel) {
            return Ok(Target::Memory);
        }
        let Some(interest) = self.interest else {
            // Content before the signed manifest: this archive needs staging.
            self.unsuitable = true;
            return Err(stop());
        };
        self.progress.advance(size);
        Ok(if interest.wants(rel) || KEPT.contains(&rel) {
            Target::Memory
        } else {
            Target::Discard
        })
    }

    fn complete(&mut self, rel: &str, bytes: Vec<u8>) -> Result<(), BundleError> {
        if let Some(name) = [MANIFEST, MANIFEST_SIG, EXPORT_SIG, EXPORT]
            .into_iter()
            .chain(KEPT)
            .find(|m| *m == rel)
        {
            self.meta.insert(name, bytes);
            return Ok(());
        }
        self.send(Msg::Entry(rel.to_string(), bytes))
    }
}

impl Visitor<'_> {
    fn send(&mut self, m: Msg) -> Result<(), BundleError> {
        // A send fails only when the loader stopped on an error, which is reported instead.
        self.tx.as_ref().ok_or_else(stop)?.send(m).map_err(|_| stop())
    }
}

/// The parser thread: decompresses, parses and hashes each file (no store access).
fn run_parser(rx: Receiver<Msg>, tx: SyncSender<Work>) -> Result<(), ImportError> {
    let mut interest: Option<Interest> = None;
    for msg in rx {
        let work = match msg {
            Msg::Start(ctx) => {
                interest = Some(ctx.interest());
                Work::Start(ctx)
            }
            Msg::Entry(rel, bytes) => Work::Parsed(interest.ok_or_else(stop)?.parse(&rel, bytes)?),
        };
        if tx.send(work).is_err() {
            // The loader stopped on an error, which is reported instead.
            return Ok(());
        }
    }
    Ok(())
}

/// The loader thread: started by the manifest, then fed parsed files until the parser
/// closes the channel.
fn run_loader<'s, 'o>(
    rx: Receiver<Work>,
    store: &'s Store,
    opts: &'o BulkOptions,
    work: &Path,
    progress: &'s dyn Progress,
) -> Result<Option<Loader<'s, 'o>>, ImportError> {
    let mut loader = None;
    for w in rx {
        match w {
            Work::Start(ctx) => loader = Some(Loader::new(store, *ctx, opts, work, progress)?),
            Work::Parsed(p) => loader.as_mut().ok_or_else(stop)?.apply(p)?,
        }
    }
    Ok(loader)
}

/// A thread's panic goes on in the caller.
fn rethrow<T>(p: Box<dyn std::any::Any + Send>) -> T {
    std::panic::resume_unwind(p)
}

/// Import `bundle` (an archive) in one pass; `work` is an empty folder inside the store.
pub fn import_stream(
    store: &Store,
    bundle: &Path,
    s: &ImportSettings,
    checks: &Checks<'_>,
    audit: &dyn AuditSink,
    progress: &dyn Progress,
    work: &Path,
) -> Result<Streamed, ImportError> {
    let opts = BulkOptions::default();
    let (tx, rx) = sync_channel::<Msg>(4);
    let (work_tx, work_rx) = sync_channel::<Work>(2);
    let mut v = Visitor {
        store,
        s,
        checks,
        progress,
        tx: Some(tx),
        interest: None,
        meta: BTreeMap::new(),
        unsuitable: false,
        refused: None,
    };
    let (read, parsed, loaded) = std::thread::scope(|scope| {
        let parser = scope.spawn(|| run_parser(rx, work_tx));
        let loader = scope.spawn(|| run_loader(work_rx, store, &opts, work, progress));
        let read = read_archive(bundle, &s.limits, &mut v);
        v.tx = None;
        (read, parser.join(), loader.join())
    });
    let (parsed, loaded) = (parsed.unwrap_or_else(rethrow), loaded.unwrap_or_else(rethrow));
    if v.unsuitable {
        return Ok(Streamed::Unsuitable);
    }
    if let Some(e) = v.refused {
        return Err(e);
    }
    // A later stage's own refusal (a record that does not hash, a store failure) explains
    // a stopped earlier one; otherwise the reader's is the first problem in archive order.
    let (files, loader) = match (read, parsed.and(loaded)) {
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e.into()),
        (Ok(_), Ok(None)) => return Err(BundleError::MissingFile { path: MANIFEST.into() }.into()),
        (Ok((_, files)), Ok(Some(l))) => (files, l),
    };
    let mut take = |name: &str| {
        v.meta
            .remove(name)
            .ok_or_else(|| BundleError::MissingFile { path: name.into() })
    };
    let docs = SignedDocs {
        manifest: take(MANIFEST)?,
        manifest_sig: take(MANIFEST_SIG)?,
        export: take(EXPORT)?,
        export_sig: take(EXPORT_SIG)?,
    };
    let keys = &checks.gate.keys;
    let verified = verify_listing(&docs, &files, keys)?;
    let kept = |p: &str| {
        v.meta
            .get(p)
            .cloned()
            .ok_or_else(|| BundleError::MissingFile { path: p.into() })
    };
    verify_attestation(&verified.manifest, &kept, keys)?;
    let statement = v.meta.get(ROTATION_PATH).map(Vec::as_slice);
    let rotation = checks
        .gate
        .check_rotation(statement, &docs.manifest, &docs.manifest_sig, &verified.manifest)?;
    let report = loader.finish(&verified, audit)?;
    if let Some(r) = rotation {
        crate::trust::rotation::record(store, &r, audit)?;
    }
    Ok(Streamed::Applied(report))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::audit::{NoProgress, StoreAuditLog};
    use crate::bundle::archive::Limits;
    use crate::bundle::signing::{keygen, SignKey, TrustedKey};
    use crate::encryption::Identities;
    use crate::export::{export_full, ExportSettings};
    use crate::ingest::{ingest, IngestOptions};
    use crate::model::Tenant;
    use crate::store::catalog::Selectors;

    #[derive(Default)]
    struct Counting {
        total: AtomicU64,
        bytes: AtomicU64,
        records: AtomicU64,
    }

    impl Progress for Counting {
        fn phase(&self, _: &str, total: u64) {
            self.total.store(total, Ordering::Relaxed);
        }
        fn advance(&self, n: u64) {
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
        fn records(&self, n: u64) {
            self.records.fetch_add(n, Ordering::Relaxed);
        }
        fn finish(&self) {}
    }

    #[test]
    fn a_streamed_import_reports_every_byte_and_record_it_reads() {
        let t = tempfile::tempdir().unwrap();
        let tenant = Tenant::new("acme").unwrap();
        let producer = Store::open(&t.path().join("producer")).unwrap();
        let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/osv/go-old.jsonl");
        ingest(
            &producer,
            &[input],
            &IngestOptions::new(tenant.clone(), "go"),
            &NoProgress,
        )
        .unwrap();
        let (private, public, _) = keygen(&t.path().join("k")).unwrap();
        let settings = ExportSettings {
            tenant: tenant.clone(),
            out_dir: t.path().join("out"),
            run_id: Some("f1".into()),
            created_at: Some("2026-01-01T00:00:00Z".into()),
            selectors: Selectors::default(),
            selectors_given: false,
            schedule: None,
            zstd_level: 3,
            sign_key: SignKey::load(&private).unwrap(),
            encryption: None,
            expires_in: None,
            min_sequence: None,
            rotate_to: None,
            channel: Default::default(),
            detached: false,
            redefine: false,
            allow_empty: false,
        };
        let exported = export_full(&producer, &settings, &StoreAuditLog::new(t.path())).unwrap();
        let mirror = Store::open(&t.path().join("mirror")).unwrap();
        let clock = crate::trust::clock::Clock::fixed("2026-01-02T00:00:00Z").unwrap();
        let s = ImportSettings {
            trust: vec![TrustedKey::load(&public).unwrap()],
            identities: Identities::default(),
            limits: Limits::default(),
            expect_tenant: None,
            expect_channels: Vec::new(),
            freshness: Policy::strict(clock),
            key_rules: Vec::new(),
        };
        let gate = Gate::new(&s.trust, &s.key_rules);
        let checks = Checks {
            gate: &gate,
            freshness: &s.freshness,
        };
        let progress = Counting::default();
        let work = t.path().join("mirror/staging/test");
        let r = match import_stream(
            &mirror,
            &exported.bundle,
            &s,
            &checks,
            &StoreAuditLog::new(t.path()),
            &progress,
            &work,
        ) {
            Ok(Streamed::Applied(r)) => r,
            _ => panic!("an unencrypted archive is imported in one pass"),
        };
        assert_eq!(r.state_root, exported.state_root);
        assert_eq!(
            progress.records.load(Ordering::Relaxed),
            78 * 2,
            "raw and normalized records"
        );
        let total = progress.total.load(Ordering::Relaxed);
        assert!(total > 0);
        assert_eq!(progress.bytes.load(Ordering::Relaxed), total, "every listed byte");
    }
}
