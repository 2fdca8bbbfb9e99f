//! The metadata files of a VEX repository laid out per aquasecurity/vex-repo-spec
//! (docs/formats.md, "VEX repositories"): the repository manifest `vex-repository.json`
//! (`name`, `versions`, `latest_version`), the package index `index.json` (`packages[]`
//! of `{id, location}`) and the per-package `manifest.json` files VEX Hubs add (`ID`,
//! `Sources[]` of `{Path, URL}`). They describe the documents, they are not documents:
//! recognised, reported, not stored.
use serde_json::Value;

/// What one metadata file says, for the run's report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RepoMetadata {
    /// `vex-repository.json`: the repository's name and latest version.
    Repository { name: String, latest_version: String },
    /// `index.json`: how many packages it lists.
    Index { packages: usize },
    /// A package `manifest.json`: the package (purl) and its source documents.
    PackageManifest { package: String, sources: usize },
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The metadata `v` is, if it is one (its shape, not its file name, decides).
pub fn detect(v: &Value) -> Option<RepoMetadata> {
    let o = v.as_object()?;
    if o.get("versions").is_some_and(Value::is_object) && o.contains_key("latest_version") {
        return Some(RepoMetadata::Repository {
            name: text(v, "name").unwrap_or_default(),
            latest_version: text(v, "latest_version").unwrap_or_default(),
        });
    }
    let listed = |key: &str, fields: [&str; 2]| -> Option<usize> {
        let a = o.get(key)?.as_array()?;
        a.iter()
            .all(|p| fields.iter().all(|f| p.get(*f).is_some_and(Value::is_string)))
            .then_some(a.len())
    };
    if !o.contains_key("id") {
        if let Some(n) = listed("packages", ["id", "location"]) {
            return Some(RepoMetadata::Index { packages: n });
        }
    }
    if let (Some(package), Some(n)) = (text(v, "ID"), listed("Sources", ["Path", "URL"])) {
        return Some(RepoMetadata::PackageManifest { package, sources: n });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_metadata_files_are_told_apart_from_documents() {
        let m = json!({"ID": "pkg:golang/github.com/k3s-io/kine",
            "Sources": [{"Path": "scan.openvex.json", "URL": "https://github.com/rancher/vexhub/blob/x/scan.openvex.json"}]});
        assert_eq!(
            detect(&m),
            Some(RepoMetadata::PackageManifest {
                package: "pkg:golang/github.com/k3s-io/kine".into(),
                sources: 1
            })
        );
        let i = json!({"updated_at": "2026-02-01T00:49:24Z", "packages": [{"id": "pkg:golang/e2e", "location": "pkg/golang/e2e/scan.openvex.json"}]});
        assert_eq!(detect(&i), Some(RepoMetadata::Index { packages: 1 }));
        let r = json!({"name": "VEX Hub", "versions": {"v0": {}}, "latest_version": "v0"});
        assert!(matches!(detect(&r), Some(RepoMetadata::Repository { .. })));
        // An OSV advisory (id + modified) with a `packages`-like field is not an index.
        assert_eq!(detect(&json!({"id": "GO-1", "modified": "x", "packages": []})), None);
        assert_eq!(detect(&json!({"@context": "https://openvex.dev/ns/v0.2.0"})), None);
    }
}
