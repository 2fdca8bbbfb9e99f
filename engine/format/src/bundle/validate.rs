//! What a reader checks of every field of the bundle documents before it uses any of them:
//! exactly the rules export writes by, and the bounds of docs/bundle-format.md ("Limits").
//! Each document type has one `validate`, called by its parser ([`parse_export`],
//! [`parse_diff`], `verify::parse_manifest`, the index readers); a refusal is
//! `ERR_BUNDLE_MALFORMED` naming the file and the field. A signature says who wrote a
//! document, not that its fields are sane: a trusted producer's bug or stolen key must not
//! make an importer allocate without bound or write outside the store.
use std::collections::BTreeMap;

use super::error::BundleError;
use super::format::{
    Artifact, DiffManifest, ExportDoc, Manifest, Stamp, FORMAT_VERSION, FORMAT_VERSION_1, FORMAT_VERSION_2,
    PROFILE_DELTA, PROFILE_FULL,
};
use crate::ids::NodeHash;
use crate::model::{parse_time, Collection, Tenant};

/// Run ids (`runId`, a base's `exportId`): 1–128 of `[A-Za-z0-9._-]`, not starting with `.`.
pub const MAX_RUN_ID: usize = 128;
/// Channels: 1–64 of the run id alphabet.
pub const MAX_CHANNEL: usize = 64;
/// Records per collection in `counts`, `added`/`changed`/`removed` and an index.
pub const MAX_RECORDS: u64 = 1 << 40;
/// Bytes of one listed file.
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Files listed in `manifest.yaml` (also the archive's entry bound).
pub const MAX_ARTIFACTS: usize = 1_000_000;
/// Bytes of a listed path.
pub const MAX_PATH: usize = 1024;
/// Bytes of a short text field (key ids, algorithms, cron, generator, a recipient, a glob).
pub const MAX_TEXT: usize = 512;
/// Entries of a list field (selector globs, recipients, wrapped keys).
pub const MAX_LIST: usize = 4096;

/// The run id rule export enforces on `--run-id` and readers on every run id they read.
pub fn valid_run_id(id: &str) -> bool {
    valid_name(id, MAX_RUN_ID)
}

fn valid_name(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The first part of a value, for a refusal (a hostile value can be megabytes long).
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("\"{}…\" ({} bytes)", cut.escape_debug(), s.len())
    } else {
        format!("\"{}\"", cut.escape_debug())
    }
}

/// Field checks of one file.
struct Fields<'a>(&'a str);

impl Fields<'_> {
    fn refuse(&self, field: &str, reason: String) -> BundleError {
        BundleError::Malformed {
            path: self.0.into(),
            reason: format!("field {field}: {reason}"),
        }
    }
    fn check(&self, field: &str, ok: bool, reason: impl FnOnce() -> String) -> Result<(), BundleError> {
        if ok {
            Ok(())
        } else {
            Err(self.refuse(field, reason()))
        }
    }
    fn run_id(&self, field: &str, v: &str) -> Result<(), BundleError> {
        self.check(field, valid_run_id(v), || {
            format!(
                "{} is not 1-{MAX_RUN_ID} characters of A-Z a-z 0-9 . _ - (not starting with '.')",
                shown(v)
            )
        })
    }
    fn time(&self, field: &str, v: &str) -> Result<(), BundleError> {
        self.check(field, v.len() <= 64 && parse_time(v).is_some(), || {
            format!("{} is not an RFC 3339 time", shown(v))
        })
    }
    fn root(&self, field: &str, v: &str) -> Result<(), BundleError> {
        self.check(field, NodeHash::parse_prefixed(v).is_some(), || {
            format!("{} is not blake3:<64 hex digits>", shown(v))
        })
    }
    fn text(&self, field: &str, v: &str) -> Result<(), BundleError> {
        self.check(field, v.len() <= MAX_TEXT && !v.chars().any(char::is_control), || {
            format!(
                "{} is longer than {MAX_TEXT} bytes or holds control characters",
                shown(v)
            )
        })
    }
    fn list<T>(&self, field: &str, v: &[T]) -> Result<(), BundleError> {
        self.check(field, v.len() <= MAX_LIST, || {
            format!("{} entries (at most {MAX_LIST})", v.len())
        })
    }
    fn version(&self, v: u32) -> Result<(), BundleError> {
        let known = [FORMAT_VERSION_1, FORMAT_VERSION_2, FORMAT_VERSION];
        self.check("formatVersion", known.contains(&v), || {
            format!("unsupported formatVersion {v} (this stellamirror reads {FORMAT_VERSION_1} to {FORMAT_VERSION}); upgrade stellamirror")
        })
    }
    fn profile(&self, v: &str) -> Result<(), BundleError> {
        self.check("profile", v == PROFILE_FULL || v == PROFILE_DELTA, || {
            format!("unknown profile {} ({PROFILE_FULL} or {PROFILE_DELTA})", shown(v))
        })
    }
    fn tenant(&self, v: &str) -> Result<(), BundleError> {
        Tenant::new(v).map(drop).map_err(|reason| self.refuse("tenant", reason))
    }
    fn channel(&self, v: Option<&str>) -> Result<(), BundleError> {
        let Some(c) = v else { return Ok(()) };
        self.check("channel", valid_name(c, MAX_CHANNEL), || {
            format!("{} is not 1-{MAX_CHANNEL} characters of A-Z a-z 0-9 . _ -", shown(c))
        })
    }
    fn sequence(&self, v: Option<u64>) -> Result<(), BundleError> {
        // JSON numbers above 2^53 do not survive every reader.
        self.check("sequence", v.is_none_or(|s| (1..=1 << 53).contains(&s)), || {
            format!("{} is not between 1 and 2^53", v.unwrap_or(0))
        })
    }
    /// Record counts per collection (`by_kind`: per kind, as a diff counts), of known
    /// names and at most [`MAX_RECORDS`] each.
    fn counts(&self, field: &str, v: &BTreeMap<String, u64>, by_kind: bool) -> Result<(), BundleError> {
        for (k, n) in v {
            let known = if by_kind {
                Collection::ALL.iter().any(|c| c.kind() == k)
            } else {
                Collection::from_name(k).is_some()
            };
            let what = if by_kind { "kind" } else { "collection" };
            self.check(&format!("{field}.{}", shown(k)), known, || {
                format!("is not a {what} this stellamirror knows")
            })?;
            self.check(&format!("{field}.{k}"), *n <= MAX_RECORDS, || {
                format!("{n} records (at most 2^40)")
            })?;
        }
        Ok(())
    }
    fn kind_roots(&self, v: &BTreeMap<String, String>) -> Result<(), BundleError> {
        for (k, r) in v {
            self.check(
                &format!("kindRoots.{}", shown(k)),
                Collection::from_name(k).is_some(),
                || "is not a collection this stellamirror knows".into(),
            )?;
            self.root(&format!("kindRoots.{k}"), r)?;
        }
        Ok(())
    }
    fn selectors(&self, s: &crate::selectors::Selectors) -> Result<(), BundleError> {
        self.list("selectors.products", &s.products)?;
        for g in &s.products {
            self.text("selectors.products", g)?;
        }
        for (f, t) in [("selectors.from", &s.from), ("selectors.to", &s.to)] {
            if let Some(t) = t {
                self.time(f, t)?;
            }
        }
        Ok(())
    }
    fn encryption(&self, e: &super::format::EncryptionInfo) -> Result<(), BundleError> {
        // `mode` is typed: serde refuses an unknown one.
        self.list("encryption.recipients", &e.recipients)?;
        for r in &e.recipients {
            self.text("encryption.recipients", r)?;
        }
        self.check(
            "encryption.encryptedPaths",
            e.encrypted_paths.len() <= MAX_ARTIFACTS,
            || format!("{} paths (at most {MAX_ARTIFACTS})", e.encrypted_paths.len()),
        )
    }
    fn run(&self, profile: &str, run_id: &str, tenant: &str) -> Result<(), BundleError> {
        self.profile(profile)?;
        self.run_id("runId", run_id)?;
        self.tenant(tenant)
    }
    /// Version and freshness fields (a format-1 manifest has no channel: empty here).
    fn stamp(&self, st: &Stamp) -> Result<(), BundleError> {
        self.version(st.format_version)?;
        self.time("createdAt", &st.created_at)?;
        self.channel(Some(st.channel.as_str()).filter(|c| !c.is_empty()))?;
        self.sequence(st.sequence)?;
        match &st.expires_at {
            Some(e) => self.time("expiresAt", e),
            None => Ok(()),
        }
    }
    fn state(
        &self,
        counts: &BTreeMap<String, u64>,
        state_root: &str,
        kind_roots: &BTreeMap<String, String>,
    ) -> Result<(), BundleError> {
        self.counts("counts", counts, false)?;
        self.root("stateRoot", state_root)?;
        self.kind_roots(kind_roots)
    }
    fn artifacts(&self, v: &[Artifact]) -> Result<(), BundleError> {
        self.check("artifacts", v.len() <= MAX_ARTIFACTS, || {
            format!("{} files (at most {MAX_ARTIFACTS})", v.len())
        })?;
        let mut total: u64 = 0;
        for a in v {
            let safe = (1..=MAX_PATH).contains(&a.path.len())
                && a.path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                && !a.path.contains(['\\', '\0']);
            self.check("artifacts.path", safe, || {
                format!("{} is not a relative path of at most {MAX_PATH} bytes", shown(&a.path))
            })?;
            self.check(
                &format!("artifacts[{}].bytes", a.path),
                a.bytes <= MAX_FILE_BYTES,
                || format!("{} (at most 2^40)", a.bytes),
            )?;
            total = total.saturating_add(a.bytes);
        }
        self.check("artifacts", total <= MAX_FILE_BYTES, || {
            format!("{total} bytes listed in all (at most 2^40)")
        })
    }
}

impl Manifest {
    /// Every field within the format's rules (the reader's half of what export writes).
    pub fn validate(&self) -> Result<(), BundleError> {
        let f = Fields(super::archive::MANIFEST);
        f.run(&self.profile, &self.run_id, &self.tenant)?;
        f.stamp(&self.stamp())?;
        f.selectors(&self.selectors)?;
        if let Some(s) = &self.schedule {
            f.text("schedule.cron", &s.cron)?;
        }
        f.state(&self.counts, &self.state_root, &self.kind_roots)?;
        f.check("compression.algorithm", self.compression.algorithm == "zstd", || {
            format!("{} is not zstd", shown(&self.compression.algorithm))
        })?;
        f.check("compression.level", (-7..=22).contains(&self.compression.level), || {
            format!("{} is not a zstd level (-7 to 22)", self.compression.level)
        })?;
        f.encryption(&self.encryption)?;
        f.check("signing.algorithm", self.signing.algorithm == "ed25519", || {
            format!("{} is not ed25519", shown(&self.signing.algorithm))
        })?;
        f.text("signing.keyId", &self.signing.key_id)?;
        if let Some(b) = &self.base {
            f.run_id("base.exportId", &b.export_id)?;
            f.root("base.stateRoot", &b.state_root)?;
        }
        f.artifacts(&self.artifacts)
    }
}

impl ExportDoc {
    /// Every field within the format's rules (its agreement with the manifest is checked
    /// by `verify::verify_listing`).
    pub fn validate(&self) -> Result<(), BundleError> {
        let f = Fields(super::archive::EXPORT);
        f.run(&self.profile, &self.run_id, &self.tenant)?;
        f.stamp(&Stamp {
            format_version: self.format_version,
            channel: self.channel.clone().unwrap_or_default(),
            sequence: self.sequence,
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
        })?;
        f.selectors(&self.selectors)?;
        f.state(&self.counts, &self.state_root, &self.kind_roots)?;
        if let Some(b) = &self.base_export_id {
            f.run_id("baseExportId", b)?;
        }
        if let Some(r) = &self.base_state_root {
            f.root("baseStateRoot", r)?;
        }
        f.text("signingKeyId", &self.signing_key_id)?;
        f.encryption(&self.encryption)?;
        f.list("wrappedKeys", &self.wrapped_keys)?;
        f.text("generator", &self.generator)
    }
}

impl DiffManifest {
    pub fn validate(&self) -> Result<(), BundleError> {
        let f = Fields(DIFF);
        f.run_id("baseExportId", &self.base_export_id)?;
        f.counts("added", &self.added, true)?;
        f.counts("changed", &self.changed, true)?;
        f.counts("removed", &self.removed, true)?;
        f.root("baseStateRoot", &self.base_state_root)?;
        f.root("targetStateRoot", &self.target_state_root)
    }
}

pub const DIFF: &str = "manifest.diff.json";

/// An index file's collections: known names, record counts within [`MAX_RECORDS`] (its
/// version and hashes are checked by `IndexFile::validate`, which calls this).
pub fn index_counts(
    path: &str,
    collections: &BTreeMap<String, super::records::IndexCollection>,
) -> Result<(), BundleError> {
    for (c, ic) in collections {
        index_collection(path, c)?;
        index_records(path, c, ic.records)?;
    }
    Ok(())
}

/// An index collection's name is one this stellamirror knows.
pub fn index_collection(path: &str, name: &str) -> Result<Collection, BundleError> {
    Collection::from_name(name).ok_or_else(|| {
        Fields(path).refuse(
            &format!("collections.{}", shown(name)),
            "is not a collection this stellamirror knows".into(),
        )
    })
}

/// An index collection's `records` count is within [`MAX_RECORDS`].
pub fn index_records(path: &str, name: &str, records: u64) -> Result<(), BundleError> {
    Fields(path).check(&format!("collections.{name}.records"), records <= MAX_RECORDS, || {
        format!("{records} records (at most 2^40)")
    })
}

/// Parse and validate `export.json`.
pub fn parse_export(bytes: &[u8]) -> Result<ExportDoc, BundleError> {
    let e: ExportDoc = serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed {
        path: super::archive::EXPORT.into(),
        reason: format!("does not parse: {e}"),
    })?;
    e.validate()?;
    Ok(e)
}

/// Parse and validate `manifest.diff.json`.
pub fn parse_diff(bytes: &[u8]) -> Result<DiffManifest, BundleError> {
    let d: DiffManifest = serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed {
        path: DIFF.into(),
        reason: format!("does not parse: {e}"),
    })?;
    d.validate()?;
    Ok(d)
}
