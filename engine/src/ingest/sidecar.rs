//! Upstream integrity files beside a document (docs/formats.md, "Upstream integrity"):
//! `X.sha256` / `X.sha512` hold the digest of `X` and must match it; `X.asc` is an
//! OpenPGP signature of `X`, counted (and reported unchecked) when no publisher key is
//! configured.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha512};

use super::error::{BadInput, BadInputKind, InputLocation};

/// Suffixes of files an input directory may hold beside its documents, and why they hold
/// no document of their own: an empty reason means "read with the document it
/// describes", not reported as skipped.
pub const SUFFIXES: [(&str, &str); 6] = [
    (".sha256", ""),
    (".sha512", ""),
    (".asc", ""),
    (".md", "documentation, not a document"),
    (".txt", "text, not a document"),
    (".sig", "detached signature of an unsupported kind"),
];

/// What the integrity files beside one document said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// A `.sha256` or `.sha512` matched.
    pub digest_verified: bool,
    /// An `.asc` signature sits beside the document.
    pub signature_present: bool,
}

/// The OpenPGP signature file beside `doc`.
pub fn signature_of(doc: &Path) -> PathBuf {
    sidecar(doc, ".asc")
}

fn sidecar(doc: &Path, suffix: &str) -> PathBuf {
    let mut s = doc.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The hex digest a checksum file states: its first whitespace-separated word
/// (`sha512sum` writes `<hex>  <name>`; CISA's files hold the hex alone).
fn stated(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase()
}

/// The hex SHA-256 or SHA-512 of a file, read in blocks.
fn file_digest(doc: &Path, sha512: bool) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(doc)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut a, mut b) = (Sha256::new(), Sha512::new());
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if sha512 {
            b.update(&buf[..n]);
        } else {
            a.update(&buf[..n]);
        }
    }
    Ok(if sha512 {
        hex::encode(b.finalize())
    } else {
        hex::encode(a.finalize())
    })
}

/// Check the checksum files beside `doc`. A mismatch names both files: the document or
/// its checksum was altered or cut short.
pub fn check(doc: &Path) -> Result<Checked, BadInput> {
    let mut out = Checked {
        signature_present: sidecar(doc, ".asc").is_file(),
        ..Checked::default()
    };
    for suffix in [".sha256", ".sha512"] {
        let path = sidecar(doc, suffix);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let expected = stated(&text);
        let at = InputLocation {
            file: doc.to_path_buf(),
            line: None,
            pointer: None,
        };
        let actual = file_digest(doc, suffix == ".sha512").map_err(|e| BadInput {
            kind: BadInputKind::Invalid,
            at: at.clone(),
            reason: format!("cannot read it to check {}: {e}", path.display()),
        })?;
        if expected != actual {
            return Err(BadInput {
                kind: BadInputKind::DigestMismatch,
                at,
                reason: format!(
                    "its {} is {actual}, but {} states {expected:?}",
                    &suffix[1..],
                    path.display()
                ),
            });
        }
        out.digest_verified = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_beside_a_document_must_match_it() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("a.json");
        std::fs::write(&doc, b"{}").unwrap();
        assert_eq!(check(&doc).unwrap(), Checked::default());
        let good = hex::encode(Sha512::digest(b"{}"));
        std::fs::write(sidecar(&doc, ".sha512"), format!("{good}  a.json\n")).unwrap();
        assert!(check(&doc).unwrap().digest_verified);
        std::fs::write(&doc, b"{ }").unwrap();
        let e = check(&doc).unwrap_err();
        assert_eq!(e.code(), "ERR_INPUT_DIGEST_MISMATCH");
        assert!(e.reason.contains("a.json.sha512"), "{}", e.reason);
    }
}
