//! Request paths → files, refusing anything that could leave the published version: the
//! path is percent-decoded first, then every segment is checked (no `.`/`..`, no hidden
//! names other than `.well-known`, no NUL or backslash), tenants use the engine's tenant
//! alphabet, and `current` must point at `versions/<64 hex>`. Files are opened only
//! after these checks and only if they are regular files (no symlinks are followed).
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Health,
    /// `/status` (every tenant, or the served one) or `/<tenant>/status`.
    Status(Option<String>),
    File {
        tenant: String,
        rel: String,
    },
    Refused,
}

fn decode(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn safe_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && (!s.starts_with('.') || s == ".well-known") && !s.contains(['\0', '\\'])
}

/// The engine's tenant alphabet (`Tenant::new`).
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && !t.starts_with('.')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn resolve(path: &str, served: Option<&str>) -> Target {
    let Some(decoded) = decode(path) else {
        return Target::Refused;
    };
    let segs: Vec<&str> = decoded.trim_start_matches('/').split('/').collect();
    if segs == ["healthz"] {
        return Target::Health;
    }
    if segs == ["status"] {
        return Target::Status(served.map(String::from));
    }
    if !segs.iter().all(|s| safe_segment(s)) {
        return Target::Refused;
    }
    let (tenant, rest) = match served {
        Some(t) => (t.to_string(), &segs[..]),
        None => match segs.split_first() {
            Some((t, rest)) if valid_tenant(t) && !rest.is_empty() => (t.to_string(), rest),
            _ => return Target::Refused,
        },
    };
    if served.is_none() && rest == ["status"] {
        return Target::Status(Some(tenant));
    }
    Target::File {
        tenant,
        rel: rest.join("/"),
    }
}

/// The version folder `<root>/<tenant>/current` points at now.
pub async fn current_version(root: &Path, tenant: &str) -> Option<PathBuf> {
    if !valid_tenant(tenant) {
        return None;
    }
    let base = root.join(tenant);
    let link = tokio::fs::read_link(base.join("current")).await.ok()?;
    let name = link.strip_prefix("versions").ok()?.to_str()?;
    let ok = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| base.join("versions").join(name))
}

/// A strong ETag: published files never change in place (a new version writes new files
/// and links unchanged ones), so inode, size and modification time identify the content,
/// and a file unchanged across versions keeps its ETag.
pub fn etag(m: &std::fs::Metadata) -> String {
    format!("\"{:x}-{:x}-{:x}.{:x}\"", m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

/// Content types tower-http's guess gets wrong or leaves generic.
pub fn content_type(rel: &str) -> Option<&'static str> {
    let ext = rel.rsplit('.').next()?;
    Some(match ext {
        "json" => "application/json",
        "zip" => "application/zip",
        "txt" | "sha256" | "sha512" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "pem" => "application/x-pem-file",
        "sig" => "application/octet-stream",
        "zst" => "application/zstd",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_hidden_paths_are_refused_after_decoding() {
        for p in [
            "/acme/../etc/passwd",
            "/acme/%2e%2e/x",
            "/acme/osv/%2E%2E%2F%2E%2E/x",
            "/acme/.publish/vex.json",
            "/acme/osv//all.zip",
            "/../acme/x",
            "/acme/x%00y",
            "/acme/a%5cb",
            "/acme/%zz",
        ] {
            assert_eq!(resolve(p, None), Target::Refused, "{p}");
        }
        assert_eq!(resolve("/osv/../state.json", Some("acme")), Target::Refused);
    }

    #[test]
    fn paths_map_to_tenant_and_file() {
        assert_eq!(
            resolve("/acme/.well-known/csaf/provider-metadata.json", None),
            Target::File {
                tenant: "acme".into(),
                rel: ".well-known/csaf/provider-metadata.json".into()
            }
        );
        assert_eq!(
            resolve("/osv/GitHub%20Actions/all.zip", Some("acme")),
            Target::File {
                tenant: "acme".into(),
                rel: "osv/GitHub Actions/all.zip".into()
            }
        );
        assert_eq!(resolve("/acme/status", None), Target::Status(Some("acme".into())));
        assert_eq!(resolve("/status", None), Target::Status(None));
        assert_eq!(resolve("/healthz", None), Target::Health);
    }
}
