//! Bundle verification: signatures first, then digests and the listing, then (when the
//! data is readable) every record hash and every Merkle root (`verify_data`, in bounded
//! memory).
use std::collections::BTreeMap;

use super::archive::{GateInput, Staged, EXPORT, EXPORT_SIG, MANIFEST, MANIFEST_SIG};
use super::dsse::ENVELOPE_PATH;
use super::error::BundleError;
use super::format::{
    Artifact, DiffManifest, ExportDoc, Manifest, FORMAT_VERSION, FORMAT_VERSION_1, FORMAT_VERSION_2, PROFILE_DELTA,
};
use super::records::Opener;
use super::signing::TrustedKey;
use crate::ids::FileDigest;
use crate::model::parse_time;

/// A verified bundle: its parsed documents.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_digest: FileDigest,
    pub export: ExportDoc,
    pub diff: Option<DiffManifest>,
    /// Whether records and Merkle roots were recomputed (false when the data is
    /// encrypted and no identity was given).
    pub data_checked: bool,
    pub records_checked: u64,
}

fn check_signature(
    trust: &[TrustedKey],
    bytes: &[u8],
    sig: &[u8],
    sig_path: &str,
    claimed_key: &dyn Fn() -> Option<String>,
) -> Result<(), BundleError> {
    if trust.iter().any(|k| k.verify(bytes, sig)) {
        return Ok(());
    }
    // Named only for the error: parsing the manifest for it costs a YAML parse.
    let trusted: Vec<String> = trust.iter().map(|k| k.key_id()).collect();
    match claimed_key() {
        Some(k) if !trusted.contains(&k) => Err(BundleError::SignatureUntrusted {
            key_id: k,
            trusted: trusted.join(", "),
        }),
        _ => Err(BundleError::SignatureInvalid { path: sig_path.into() }),
    }
}

/// The key that `manifest.yaml` claims signed it, for the error message after a signature
/// failed (nothing is trusted from it). The manifest is not authenticated yet, so it is not
/// parsed as YAML (aliases could expand it without bound): one pass over its lines finds
/// `keyId:` in the top-level `signing:` block, as export writes it.
fn claimed_key_id(manifest: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(manifest).ok()?;
    let mut in_signing = false;
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            in_signing = line.trim_end() == "signing:";
            continue;
        }
        if let Some(v) = line.trim_start().strip_prefix("keyId:").filter(|_| in_signing) {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            let plausible =
                (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b));
            return plausible.then(|| v.to_string());
        }
    }
    None
}

pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, BundleError> {
    let m: Manifest = serde_norway::from_slice(bytes).map_err(|e| BundleError::Malformed {
        path: MANIFEST.into(),
        reason: format!("does not parse: {e}"),
    })?;
    m.validate()?;
    check_format_version(&m)?;
    Ok(m)
}

/// Formats 1, 2 and 3 are read; 2 and 3 must carry their freshness fields.
fn check_format_version(m: &Manifest) -> Result<(), BundleError> {
    let malformed = |reason: String| BundleError::Malformed {
        path: MANIFEST.into(),
        reason,
    };
    match m.format_version {
        FORMAT_VERSION_1 => Ok(()),
        FORMAT_VERSION_2 | FORMAT_VERSION => {
            let valid_expiry = m.expires_at.as_deref().and_then(parse_time).is_some();
            if m.channel.is_none() || m.sequence.is_none() || !valid_expiry {
                return Err(malformed(format!(
                    "formatVersion {} needs channel, sequence and an RFC 3339 expiresAt",
                    m.format_version
                )));
            }
            Ok(())
        }
        v => Err(malformed(format!(
            "unsupported formatVersion {v} (this stellamirror reads {FORMAT_VERSION_1} to {FORMAT_VERSION}); upgrade stellamirror"
        ))),
    }
}

/// The archive reader's gate: verify the manifest signature, then parse the manifest.
pub fn gate(trust: &[TrustedKey], input: &GateInput<'_>) -> Result<Vec<Artifact>, BundleError> {
    check_signature(trust, input.manifest, input.manifest_sig, MANIFEST_SIG, &|| {
        claimed_key_id(input.manifest)
    })?;
    Ok(parse_manifest(input.manifest)?.artifacts)
}

/// Verify a staged bundle's signatures, listing and digests (no content is parsed but
/// `manifest.yaml` and `export.json`).
pub fn verify_staged(staged: &Staged, trust: &[TrustedKey]) -> Result<Verified, BundleError> {
    let docs = SignedDocs {
        manifest: staged.read(MANIFEST)?,
        manifest_sig: staged.read(MANIFEST_SIG)?,
        export: staged.read(EXPORT)?,
        export_sig: staged.read(EXPORT_SIG)?,
    };
    let v = verify_listing(&docs, &staged.files, trust)?;
    verify_attestation(&v.manifest, &|p| staged.read(p), trust)?;
    Ok(v)
}

pub const PROVENANCE: &str = super::provenance::PATH;

/// Format 2 (not strict-encrypted): the listed DSSE envelope carries exactly
/// `provenance.json` and a trusted key signed it. `read` gives a listed file's bytes
/// (whose digest the listing already checked).
pub fn verify_attestation(
    m: &Manifest,
    read: &dyn Fn(&str) -> Result<Vec<u8>, BundleError>,
    trust: &[TrustedKey],
) -> Result<(), BundleError> {
    if m.encryption.strict {
        return Ok(());
    }
    // Plaintext in every other mode: it must parse as an in-toto statement of ours.
    super::provenance::Statement::parse(&read(PROVENANCE)?)?;
    if m.format_version == FORMAT_VERSION_1 {
        return Ok(());
    }
    if !m.artifacts.iter().any(|a| a.path == ENVELOPE_PATH) {
        return Err(BundleError::MissingFile {
            path: ENVELOPE_PATH.into(),
        });
    }
    super::dsse::verify(&read(ENVELOPE_PATH)?, &read(PROVENANCE)?, trust)
}

/// The four signed documents of a bundle, as shipped.
pub struct SignedDocs {
    pub manifest: Vec<u8>,
    pub manifest_sig: Vec<u8>,
    pub export: Vec<u8>,
    pub export_sig: Vec<u8>,
}

/// Verify the signatures, then that `files` (path → digest and size) are exactly the
/// listed artifacts, then that `export.json` agrees with the manifest.
pub fn verify_listing(
    docs: &SignedDocs,
    files: &BTreeMap<String, super::archive::StagedFile>,
    trust: &[TrustedKey],
) -> Result<Verified, BundleError> {
    let (manifest_bytes, msig, export_bytes, esig) =
        (&docs.manifest, &docs.manifest_sig, &docs.export, &docs.export_sig);
    check_signature(trust, manifest_bytes, msig, MANIFEST_SIG, &|| {
        claimed_key_id(manifest_bytes)
    })?;
    let manifest = parse_manifest(manifest_bytes)?;
    check_signature(trust, export_bytes, esig, EXPORT_SIG, &|| {
        Some(manifest.signing.key_id.clone())
    })?;

    // Listing: every artifact present with its digest and size, nothing else.
    let mut listed: BTreeMap<&str, &Artifact> = BTreeMap::new();
    for a in &manifest.artifacts {
        // The DSSE envelope is listed (format 2): its digest is covered by manifest.sig.
        let unlistable = a.path == MANIFEST || (a.path.starts_with("signatures/") && a.path != ENVELOPE_PATH);
        if unlistable || listed.insert(&a.path, a).is_some() {
            return Err(BundleError::Malformed {
                path: MANIFEST.into(),
                reason: format!("artifact {} listed twice or not listable", a.path),
            });
        }
    }
    for (path, a) in &listed {
        let f = files
            .get(*path)
            .ok_or_else(|| BundleError::MissingFile { path: path.to_string() })?;
        if f.bytes != a.bytes {
            return Err(BundleError::DigestMismatch {
                path: path.to_string(),
                what: "size".into(),
                expected: a.bytes.to_string(),
                actual: f.bytes.to_string(),
            });
        }
        if f.digest != a.sha256 {
            return Err(BundleError::DigestMismatch {
                path: path.to_string(),
                what: "sha256".into(),
                expected: a.sha256.to_prefixed(),
                actual: f.digest.to_prefixed(),
            });
        }
    }
    for path in files.keys() {
        let meta = path == MANIFEST || path == MANIFEST_SIG || path == EXPORT_SIG;
        if !meta && !listed.contains_key(path.as_str()) {
            return Err(BundleError::UnlistedFile { path: path.clone() });
        }
    }

    let export = super::validate::parse_export(export_bytes)?;
    let same = export.run_id == manifest.run_id
        && export.tenant == manifest.tenant
        && export.profile == manifest.profile
        && export.state_root == manifest.state_root
        && export.signing_key_id == manifest.signing.key_id
        && export.format_version == manifest.format_version
        && export.channel == manifest.channel
        && export.sequence == manifest.sequence
        && export.expires_at == manifest.expires_at;
    if !same {
        return Err(BundleError::Malformed {
            path: EXPORT.into(),
            reason: "runId, tenant, profile, stateRoot, signing key or freshness fields differ from manifest.yaml"
                .into(),
        });
    }

    Ok(Verified {
        manifest_digest: FileDigest::of(manifest_bytes),
        manifest,
        export,
        diff: None,
        data_checked: false,
        records_checked: 0,
    })
}

/// Check a verified bundle's content: every record hash, index entry and (for full
/// bundles) Merkle root; `open` decrypts encrypted paths. Fills `diff` for deltas.
pub fn verify_records(staged: &Staged, v: &mut Verified, open: Opener<'_>) -> Result<(), BundleError> {
    if v.manifest.profile == PROFILE_DELTA {
        let b = super::records::read_plain(staged, "manifest.diff.json", open)?;
        v.diff = Some(super::validate::parse_diff(&b)?);
    }
    v.records_checked = super::verify_data::check_data(staged, &v.manifest, v.diff.as_ref(), open)?;
    v.data_checked = true;
    Ok(())
}
