//! Package URL helpers for subjects.

/// A purl without its version, qualifiers and subpath: the subject of advisories and VEX.
pub fn strip_version(purl: &str) -> String {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let base = &purl[..end];
    // The version is after the last '@' that follows the last '/': scoped npm names
    // (`pkg:npm/%40scope/name` or `pkg:npm/@scope/name`) keep their leading '@'.
    let last_slash = base.rfind('/').map(|i| i + 1).unwrap_or(0);
    match base[last_slash..].find('@') {
        Some(at) => base[..last_slash + at].to_string(),
        None => base.to_string(),
    }
}

/// The purl (without version) of an OSV package `{ecosystem, name}`.
pub fn from_osv_package(ecosystem: &str, name: &str) -> String {
    let eco = ecosystem.split(':').next().unwrap_or(ecosystem);
    match eco {
        "Go" => format!("pkg:golang/{name}"),
        "PyPI" => format!("pkg:pypi/{}", name.to_ascii_lowercase().replace('_', "-")),
        "npm" => format!("pkg:npm/{name}"),
        "crates.io" => format!("pkg:cargo/{name}"),
        "Maven" => format!("pkg:maven/{}", name.replacen(':', "/", 1)),
        "RubyGems" => format!("pkg:gem/{name}"),
        "NuGet" => format!("pkg:nuget/{name}"),
        "Packagist" => format!("pkg:composer/{name}"),
        "Hex" => format!("pkg:hex/{name}"),
        "Pub" => format!("pkg:pub/{name}"),
        "Hackage" => format!("pkg:hackage/{name}"),
        "SwiftURL" => format!("pkg:swift/{name}"),
        _ => format!("pkg:generic/{}/{name}", eco.to_ascii_lowercase().replace(' ', "-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_version_qualifiers_and_subpath_but_keeps_scopes() {
        assert_eq!(strip_version("pkg:golang/stdlib@v1.22.7"), "pkg:golang/stdlib");
        assert_eq!(
            strip_version("pkg:npm/@angular/core@1.0?x=1#a"),
            "pkg:npm/@angular/core"
        );
        assert_eq!(strip_version("pkg:oci/rancher"), "pkg:oci/rancher");
    }

    #[test]
    fn maps_osv_ecosystems() {
        assert_eq!(from_osv_package("PyPI", "Django_Foo"), "pkg:pypi/django-foo");
        assert_eq!(from_osv_package("Maven", "org.a:b"), "pkg:maven/org.a/b");
        assert_eq!(from_osv_package("Debian:11", "zlib"), "pkg:generic/debian/zlib");
    }
}
