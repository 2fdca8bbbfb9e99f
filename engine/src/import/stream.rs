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
use crate::bundle::error::BundleError;
use crate::bundle::format::Artifact;
use crate::bundle::verify::{gate, parse_manifest, verify_listing, SignedDocs};
use crate::ids::FileDigest;
use crate::store::Store;

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
        let artifacts = gate(&self.s.trust, input)?;
        let manifest = parse_manifest(input.manifest)?;
        if manifest.encryption.mode != "none" {
            self.unsuitable = true;
            return Err(stop());
        }
        let total = artifacts.iter().map(|a| a.bytes).sum();
        match precheck(
            self.store,
            manifest,
            FileDigest::of(input.manifest),
            self.s.expect_tenant.as_ref(),
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
        if [MANIFEST, MANIFEST_SIG, EXPORT_SIG, EXPORT].contains(&rel) {
            return Ok(Target::Memory);
        }
        let Some(interest) = self.interest else {
            // Content before the signed manifest: this archive needs staging.
            self.unsuitable = true;
            return Err(stop());
        };
        self.progress.advance(size);
        Ok(if interest.wants(rel) {
            Target::Memory
        } else {
            Target::Discard
        })
    }

    fn complete(&mut self, rel: &str, bytes: Vec<u8>) -> Result<(), BundleError> {
        if let Some(name) = [MANIFEST, MANIFEST_SIG, EXPORT_SIG, EXPORT]
            .into_iter()
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
    let verified = verify_listing(&docs, &files, &s.trust)?;
    Ok(Streamed::Applied(loader.finish(&verified, audit)?))
}
