//! Turning materialised files into a signed bundle: README, provenance, export.json,
//! manifest.yaml, signatures, and the deterministic archive.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::archive::{write_archive, Entry, EntrySource, Segment, EXPORT, EXPORT_SIG, MANIFEST, MANIFEST_SIG};
use crate::bundle::dsse;
use crate::bundle::format::{
    Artifact, BaseRef, Compression, EncryptionInfo, EncryptionModeName, ExportDoc, Manifest, Schedule, Signing, Stamp,
    FORMAT_VERSION_1,
};
use crate::bundle::provenance::{self, ProvenanceInput};
use crate::bundle::signing::{SignKey, TrustedKey};
use crate::encryption::WrappedKey;
use crate::ids::FileDigest;
use crate::store::catalog::Selectors;
use crate::trust::rotation;

use super::units::digest_segments;
use super::ExportError;

/// Everything about the run that goes into the documents.
pub struct RunInfo<'a> {
    pub profile: &'a str,
    pub top: &'a str,
    pub run_id: &'a str,
    pub tenant: &'a str,
    pub created_at: &'a str,
    pub mtime: u64,
    pub selectors: &'a Selectors,
    pub schedule: Option<&'a str>,
    pub counts: BTreeMap<String, u64>,
    pub state_root: String,
    pub kind_roots: BTreeMap<String, String>,
    pub zstd_level: i32,
    pub base: Option<BaseRef>,
    pub base_state_root: Option<String>,
    pub sources: Vec<serde_json::Value>,
    /// Format version, channel, sequence and expiry (signed into the manifest).
    pub stamp: &'a Stamp,
    /// The new key a rotation statement in this bundle names.
    pub rotate_to: Option<&'a TrustedKey>,
}

/// Encryption of the shipped files, as seen by the assembler.
pub struct Sealing<'a> {
    pub info: EncryptionInfo,
    pub wrapped_keys: Vec<WrappedKey>,
    pub seal: super::units::Sealer<'a>,
}

/// A file to ship: bundle path and where its (plaintext for docs, already sealed for
/// data) bytes are.
pub enum Shipped {
    /// Already sealed where needed (data files written by units), with the digest and size
    /// of the bytes written.
    Staged(PathBuf, FileDigest, u64),
    /// Index files, streamed from their segments (never encrypted: strict encryption seals
    /// them into `Sealed` first).
    Parts(Vec<Segment>),
    /// Already sealed where needed, kept in memory (delta data files).
    Sealed(Vec<u8>),
    /// A document produced here; sealed by the assembler when its path is encrypted.
    Doc(Vec<u8>),
}

impl From<super::units::Body> for Shipped {
    fn from(b: super::units::Body) -> Self {
        match b {
            super::units::Body::File(p, d, n) => Shipped::Staged(p, d, n),
            super::units::Body::Sealed(bytes) => Shipped::Sealed(bytes),
        }
    }
}

pub fn is_encrypted_path(path: &str, strict: bool) -> bool {
    if strict {
        // Key rotation statements hold public keys only; they stay readable.
        !(path == MANIFEST || path == EXPORT || path.starts_with("signatures/") || path.starts_with("keys/"))
    } else {
        path.starts_with("data/") || path.starts_with("changed/") || path.starts_with("removed/")
    }
}

fn readme(info: &RunInfo<'_>, enc: &EncryptionInfo, key_id: &str) -> Vec<u8> {
    let kind = if info.profile == crate::bundle::format::PROFILE_DELTA {
        "delta"
    } else {
        "full"
    };
    let base = info
        .base
        .as_ref()
        .map(|b| format!("\nBase export: `{}` (manifest {}). Import it only on a mirror whose last applied export is that base.\n", b.export_id, b.manifest_digest))
        .unwrap_or_default();
    format!(
        "# stellamirror {kind} bundle `{run}`\n\n\
Tenant `{tenant}`, created {created}, profile `{profile}`.\n\
State root after applying: `{root}`.\n{base}\n\
Encryption: `{mode}`{strict}.\n\n\
## Verify\n\n\
```\nstellamirror verify {run}-{kind}.tar.zst --trust producer.pub.pem\n```\n\n\
or by hand, after `zstd -d < {run}-{kind}.tar.zst | tar -x`:\n\n\
```\nopenssl pkeyutl -verify -pubin -inkey producer.pub.pem -rawin -in {top}/manifest.yaml -sigfile {top}/signatures/manifest.sig\n\
openssl pkeyutl -verify -pubin -inkey producer.pub.pem -rawin -in {top}/export.json -sigfile {top}/signatures/export.sig\n```\n\n\
then compare each file's sha256 with `artifacts` in manifest.yaml. Signing key id: `{key_id}`.\n\n\
{attest}\
## Import\n\n\
```\nstellamirror import {run}-{kind}.tar.zst --store /var/lib/stellamirror --trust producer.pub.pem\n```\n\n\
Deltas apply in order; see `manifest.diff.json` for the base they need.\n",
        run = info.run_id,
        tenant = info.tenant,
        created = info.created_at,
        profile = info.profile,
        root = info.state_root,
        top = info.top,
        mode = enc.mode,
        strict = if enc.strict { " (strict)" } else { "" },
        attest = if info.stamp.format_version > FORMAT_VERSION_1 && !enc.strict {
            "`provenance.json` (in-toto Statement, SLSA provenance) is signed in the DSSE envelope \
`signatures/provenance.dsse.json` with the same key: any DSSE verifier checks it.\n\n"
        } else {
            ""
        },
    )
    .into_bytes()
}

/// Write the bundle for `files` (bundle path → shipped bytes) and return
/// (archive path, archive size, manifest digest).
pub fn assemble(
    out_dir: &Path,
    staging: &Path,
    info: &RunInfo<'_>,
    mut files: BTreeMap<String, Shipped>,
    key: &SignKey,
    sealing: &Sealing<'_>,
) -> Result<(PathBuf, u64, FileDigest), ExportError> {
    let key_id = key.key_id();
    let mut enc = sealing.info.clone();
    let strict = enc.strict;
    let encrypting = enc.mode != EncryptionModeName::None;
    files.insert("README.md".into(), Shipped::Doc(readme(info, &enc, &key_id)));
    if let Some(new) = info.rotate_to {
        let st = rotation::statement(key, new, info.tenant, info.run_id, info.created_at);
        files.insert(rotation::ROTATION_PATH.into(), Shipped::Doc(st));
    }

    // Provenance: an in-toto Statement over the shipped files (format 1: data and
    // indexes only).
    let legacy = info.stamp.format_version == FORMAT_VERSION_1;
    let mut subjects = Vec::new();
    let mut shipped: BTreeMap<String, (FileDigest, u64, EntrySource)> = BTreeMap::new();
    let ship = |path: &str, s: Shipped| -> Result<(FileDigest, u64, EntrySource), ExportError> {
        Ok(match s {
            Shipped::Staged(p, d, n) => (d, n, EntrySource::File(p)),
            Shipped::Parts(segs) => {
                let (d, n) = digest_segments(&segs)?;
                (d, n, EntrySource::Parts(segs))
            }
            Shipped::Sealed(bytes) => (FileDigest::of(&bytes), bytes.len() as u64, EntrySource::Bytes(bytes)),
            Shipped::Doc(bytes) => {
                let bytes = if encrypting && is_encrypted_path(path, strict) {
                    (sealing.seal)(path, bytes)?
                } else {
                    bytes
                };
                (FileDigest::of(&bytes), bytes.len() as u64, EntrySource::Bytes(bytes))
            }
        })
    };
    for (path, s) in std::mem::take(&mut files) {
        let (d, n, src) = ship(&path, s)?;
        if !legacy || path.starts_with("data/") || path.starts_with("changed/") || path.starts_with("indexes/") {
            subjects.push(provenance::subject(&path, &hex::encode(d.0)));
        }
        shipped.insert(path, (d, n, src));
    }
    let statement = provenance_statement(info, &enc, sealing, &key_id, subjects);
    let statement_bytes = statement.encode();
    // Strict encryption seals provenance.json; an envelope would carry it in the clear.
    if !legacy && !strict {
        let envelope = dsse::sign(key, &statement_bytes);
        shipped.insert(
            dsse::ENVELOPE_PATH.into(),
            (
                FileDigest::of(&envelope),
                envelope.len() as u64,
                EntrySource::Bytes(envelope),
            ),
        );
    }
    let prov = ship("provenance.json", Shipped::Doc(statement_bytes))?;
    shipped.insert("provenance.json".into(), prov);
    if encrypting {
        enc.encrypted_paths = shipped
            .keys()
            .filter(|p| is_encrypted_path(p, strict))
            .cloned()
            .collect();
    }

    let export_doc = export_doc(info, &enc, &key_id, sealing);
    let export_bytes = serde_json::to_vec_pretty(&export_doc).expect("json");
    shipped.insert(
        EXPORT.into(),
        (
            FileDigest::of(&export_bytes),
            export_bytes.len() as u64,
            EntrySource::Bytes(export_bytes.clone()),
        ),
    );

    let manifest = manifest_doc(info, &enc, &key_id, &shipped);
    let manifest_bytes = serde_norway::to_string(&manifest)
        .map_err(|e| ExportError::Layout(format!("manifest.yaml: {e}")))?
        .into_bytes();
    let digest = FileDigest::of(&manifest_bytes);
    let mut entries: Vec<Entry> = shipped
        .into_iter()
        .map(|(path, (_, _, source))| Entry { path, source })
        .collect();
    entries.push(Entry {
        path: MANIFEST_SIG.into(),
        source: EntrySource::Bytes(key.sign(&manifest_bytes).to_vec()),
    });
    entries.push(Entry {
        path: EXPORT_SIG.into(),
        source: EntrySource::Bytes(key.sign(&export_bytes).to_vec()),
    });
    entries.push(Entry {
        path: MANIFEST.into(),
        source: EntrySource::Bytes(manifest_bytes),
    });
    let kind = if info.top == "delta" { "delta" } else { "full" };
    let dest = out_dir.join(format!("{}-{kind}.tar.zst", info.run_id));
    let _ = staging;
    let size = write_archive(&dest, info.top, entries, info.mtime).map_err(ExportError::Bundle)?;
    Ok((dest, size, digest))
}

/// `export.json`: the run as the export record describes it (signed on its own).
fn export_doc(info: &RunInfo<'_>, enc: &EncryptionInfo, key_id: &str, sealing: &Sealing<'_>) -> ExportDoc {
    let legacy = info.stamp.format_version == FORMAT_VERSION_1;
    ExportDoc {
        format_version: info.stamp.format_version,
        profile: info.profile.into(),
        run_id: info.run_id.into(),
        tenant: info.tenant.into(),
        created_at: info.created_at.into(),
        channel: (!legacy).then(|| info.stamp.channel.clone()),
        sequence: info.stamp.sequence,
        expires_at: info.stamp.expires_at.clone(),
        selectors: info.selectors.clone(),
        schedule: info.schedule.map(|c| Schedule { cron: c.into() }),
        counts: info.counts.clone(),
        state_root: info.state_root.clone(),
        kind_roots: info.kind_roots.clone(),
        base_export_id: info.base.as_ref().map(|b| b.export_id.clone()),
        base_state_root: info.base_state_root.clone(),
        signing_key_id: key_id.to_string(),
        encryption: enc.clone(),
        wrapped_keys: if enc.strict {
            sealing.wrapped_keys.clone()
        } else {
            Vec::new()
        },
        generator: format!("stellamirror {}", env!("CARGO_PKG_VERSION")),
    }
}

/// `manifest.yaml`: the signed table of contents over every shipped file.
fn manifest_doc(
    info: &RunInfo<'_>,
    enc: &EncryptionInfo,
    key_id: &str,
    shipped: &BTreeMap<String, (FileDigest, u64, EntrySource)>,
) -> Manifest {
    let legacy = info.stamp.format_version == FORMAT_VERSION_1;
    Manifest {
        format_version: info.stamp.format_version,
        profile: info.profile.into(),
        run_id: info.run_id.into(),
        tenant: info.tenant.into(),
        created_at: info.created_at.into(),
        channel: (!legacy).then(|| info.stamp.channel.clone()),
        sequence: info.stamp.sequence,
        expires_at: info.stamp.expires_at.clone(),
        selectors: info.selectors.clone(),
        schedule: info.schedule.map(|c| Schedule { cron: c.into() }),
        counts: info.counts.clone(),
        state_root: info.state_root.clone(),
        kind_roots: info.kind_roots.clone(),
        compression: Compression {
            algorithm: "zstd".into(),
            level: info.zstd_level,
        },
        encryption: enc.clone(),
        signing: Signing {
            algorithm: "ed25519".into(),
            key_id: key_id.to_string(),
        },
        base: info.base.clone(),
        artifacts: shipped
            .iter()
            .map(|(p, (d, n, _))| Artifact {
                path: p.clone(),
                sha256: *d,
                bytes: *n,
            })
            .collect(),
    }
}

/// `provenance.json`: an in-toto Statement over `subjects` (SLSA v1; format 1 bundles keep
/// their original predicate).
fn provenance_statement(
    info: &RunInfo<'_>,
    enc: &EncryptionInfo,
    sealing: &Sealing<'_>,
    key_id: &str,
    subjects: Vec<provenance::Subject>,
) -> provenance::Statement {
    let recipients = if !enc.strict && !sealing.wrapped_keys.is_empty() {
        provenance::Recipients::Wrapped(sealing.wrapped_keys.clone())
    } else {
        provenance::Recipients::Public(enc.recipients.clone())
    };
    let encryption = provenance::ProvenanceEncryption {
        mode: enc.mode,
        strict: enc.strict,
        recipients,
    };
    let input = ProvenanceInput {
        profile: info.profile,
        run_id: info.run_id,
        tenant: info.tenant,
        stamp: info.stamp,
        selectors: info.selectors,
        schedule: info.schedule,
        base: info
            .base
            .as_ref()
            .map(|b| (b.export_id.as_str(), b.manifest_digest.to_prefixed(), b.reset_baseline)),
        sources: &info.sources,
        signing_key_id: key_id,
        encryption,
    };
    if info.stamp.format_version == FORMAT_VERSION_1 {
        provenance::legacy_statement(&input, subjects)
    } else {
        provenance::slsa_statement(&input, subjects)
    }
}
