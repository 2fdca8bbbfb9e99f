//! OSV-like advisories: the record type, its generation from a serial, and churn edits.
//!
//! Field order is fixed by the struct (never by a map), so output bytes do not depend on
//! serde_json's `preserve_order` feature, which other workspace members switch on.

use serde::{Deserialize, Serialize};

use crate::catalog::{self, Identity, Package};
use crate::rng::{stream, Rng};

pub const SCHEMA_VERSION: &str = "1.6.0";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Advisory {
    pub schema_version: String,
    pub id: String,
    pub modified: String,
    pub published: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub details: String,
    pub affected: Vec<Affected>,
    pub references: Vec<Reference>,
    pub database_specific: DatabaseSpecific,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Affected {
    pub package: PackageRef,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PackageRef {
    pub ecosystem: String,
    pub name: String,
    pub purl: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    pub events: Vec<Event>,
}

/// One OSV range event; exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub introduced: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fixed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_affected: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DatabaseSpecific {
    pub severity: String,
    pub cwe_ids: Vec<String>,
    pub github_reviewed: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nvd_published_at: Option<String>,
}

/// Only the id, for cheap scans of a JSONL line (other fields are skipped by serde).
#[derive(Deserialize)]
pub struct IdOnly {
    pub id: String,
}

/// (name, CWE, what goes wrong, what an attacker gains).
const CLASSES: [(&str, &str, &str, &str); 16] = [
    (
        "Cross-site scripting",
        "CWE-79",
        "does not escape user-controlled input when rendering HTML",
        "inject arbitrary web script or HTML",
    ),
    (
        "SQL injection",
        "CWE-89",
        "builds SQL statements by concatenating untrusted parameters",
        "read or modify arbitrary database records",
    ),
    (
        "Path traversal",
        "CWE-22",
        "does not normalise archive entry names before joining them to the target directory",
        "write files outside of the intended directory",
    ),
    (
        "Denial of service",
        "CWE-400",
        "does not bound the amount of memory allocated for nested structures",
        "exhaust memory and crash the process",
    ),
    (
        "Regular expression denial of service",
        "CWE-1333",
        "uses a regular expression with catastrophic backtracking",
        "consume excessive CPU time",
    ),
    (
        "Server-side request forgery",
        "CWE-918",
        "follows redirects to internal addresses without validation",
        "reach services on the internal network",
    ),
    (
        "Improper certificate validation",
        "CWE-295",
        "skips hostname verification when a custom transport is configured",
        "intercept TLS connections",
    ),
    (
        "Prototype pollution",
        "CWE-1321",
        "merges untrusted objects into the global prototype chain",
        "alter application behaviour or escalate privileges",
    ),
    (
        "Deserialization of untrusted data",
        "CWE-502",
        "instantiates arbitrary classes named in the input stream",
        "execute arbitrary code",
    ),
    (
        "Open redirect",
        "CWE-601",
        "accepts absolute URLs in the redirect parameter",
        "redirect users to malicious sites",
    ),
    (
        "Authentication bypass",
        "CWE-287",
        "compares tokens in a way that accepts an empty value",
        "bypass authentication",
    ),
    (
        "Integer overflow",
        "CWE-190",
        "computes buffer lengths with unchecked arithmetic",
        "cause out-of-bounds memory access",
    ),
    (
        "XML external entity injection",
        "CWE-611",
        "resolves external entities by default",
        "read local files or perform network requests",
    ),
    (
        "Command injection",
        "CWE-78",
        "passes user input to a shell without quoting",
        "execute arbitrary commands",
    ),
    (
        "Information exposure",
        "CWE-200",
        "includes credentials in error messages and debug logs",
        "obtain sensitive information",
    ),
    (
        "HTTP request smuggling",
        "CWE-444",
        "accepts conflicting Content-Length and Transfer-Encoding headers",
        "smuggle requests past a front-end proxy",
    ),
];
const VERBS: [&str; 12] = [
    "parse", "decode", "read", "render", "load", "handle", "resolve", "validate", "merge", "extract", "format",
    "process",
];
const NOUNS: [&str; 12] = [
    "Header", "Request", "Path", "Template", "Archive", "Config", "Token", "Url", "Cookie", "Stream", "Message",
    "Query",
];
const ACTORS: [&str; 4] = [
    "remote attackers",
    "unauthenticated remote attackers",
    "local users",
    "attackers able to supply crafted input",
];
const SEVERITIES: [&str; 4] = ["LOW", "MODERATE", "HIGH", "CRITICAL"];

fn function_name(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(&VERBS), rng.pick(&NOUNS))
}

/// The range, affected-version list and fix of one package.
fn affected_for(rng: &mut Rng, pkg: &Package) -> (Affected, Option<String>) {
    let n = pkg.versions.len();
    let intro = if rng.chance(0.4) {
        0
    } else {
        rng.below(n as u64 / 2 + 1) as usize
    };
    let mut events = vec![Event {
        introduced: Some(if intro == 0 {
            "0".into()
        } else {
            pkg.versions[intro].clone()
        }),
        ..Event::default()
    }];
    let roll = rng.below(10);
    let (end, fixed) = if roll < 7 && intro + 1 < n {
        let f = intro + 1 + rng.below((n - intro - 1) as u64) as usize;
        events.push(Event {
            fixed: Some(pkg.versions[f].clone()),
            ..Event::default()
        });
        (f, Some(pkg.versions[f].clone()))
    } else if roll < 8 {
        let l = intro + rng.below((n - intro) as u64) as usize;
        events.push(Event {
            last_affected: Some(pkg.versions[l].clone()),
            ..Event::default()
        });
        (l + 1, None)
    } else {
        (n, None)
    };
    // Go and Maven entries in OSV carry ranges only; the others enumerate affected versions.
    let versions = match pkg.ecosystem {
        "Go" | "Maven" => Vec::new(),
        _ => pkg.versions[intro..end].to_vec(),
    };
    let affected = Affected {
        package: PackageRef {
            ecosystem: pkg.ecosystem.into(),
            name: pkg.name.clone(),
            purl: pkg.purl.clone(),
        },
        ranges: vec![Range {
            kind: "SEMVER".into(),
            events,
        }],
        versions,
    };
    (affected, fixed)
}

fn registry_url(pkg: &Package) -> String {
    match pkg.ecosystem {
        "npm" => format!("https://www.npmjs.com/package/{}", pkg.name),
        "PyPI" => format!("https://pypi.org/project/{}", pkg.name),
        "Go" => format!("https://pkg.go.dev/{}", pkg.name),
        "crates.io" => format!("https://crates.io/crates/{}", pkg.name),
        "NuGet" => format!("https://www.nuget.org/packages/{}", pkg.name),
        "RubyGems" => format!("https://rubygems.org/gems/{}", pkg.name),
        "Packagist" => format!("https://packagist.org/packages/{}", pkg.name),
        _ => format!("https://central.sonatype.com/artifact/{}", pkg.name.replace(':', "/")),
    }
}

/// Advisory text: GitHub-advisory style markdown sections or NVD-style prose. The fixed
/// phrases repeat across records the way real feeds do, so compression ratios stay realistic.
fn details(rng: &mut Rng, pkg: &Package, class: usize, fixed: Option<&str>) -> String {
    let (name, _, what, gain) = CLASSES[class];
    let func = function_name(rng);
    let actor = rng.pick(&ACTORS);
    let fix_sentence = match fixed {
        Some(f) => format!("This issue has been patched in version {f}. Users are advised to upgrade to {f} or later."),
        None => "No patched version is available at the time of publication.".to_string(),
    };
    let mut out = String::with_capacity(900);
    if rng.chance(0.55) {
        out.push_str(&format!(
            "### Impact\n{name} in {}: the `{func}` function {what}. This allows {actor} to {gain}. \
             Applications that pass untrusted data to `{func}` are affected.\n\n### Patches\n{fix_sentence}\n\n",
            pkg.name
        ));
        out.push_str(if rng.chance(0.5) {
            "### Workarounds\nThere are no known workarounds for this issue.\n\n"
        } else {
            "### Workarounds\nValidate and sanitise all input before passing it to the library, or restrict the feature to trusted users.\n\n"
        });
        out.push_str(&format!(
            "### References\n* https://github.com/{}/security/advisories\n* {}\n",
            pkg.repo,
            registry_url(pkg)
        ));
    } else {
        out.push_str(&format!(
            "{name} vulnerability in {} {}allows {actor} to {gain} via a crafted argument to `{func}`. \
             The vulnerable code {what}. {fix_sentence}",
            pkg.name,
            fixed.map(|f| format!("before {f} ")).unwrap_or_default(),
        ));
        if rng.chance(0.5) {
            out.push_str(" NOTE: this issue exists because of an incomplete fix for an earlier vulnerability in the same component.");
        }
    }
    out
}

/// Advisory number `serial` affecting package `primary` (index) under `seed`.
pub fn generate(seed: u64, serial: u64, primary: &Package, second: Option<&Package>) -> Advisory {
    let ident: Identity = catalog::identity(seed, serial, primary.ecosystem);
    let mut rng = Rng::new(seed, stream::ADVISORY, serial);
    let class = rng.below(CLASSES.len() as u64) as usize;
    let (first, fixed) = affected_for(&mut rng, primary);
    let mut affected = vec![first];
    if let Some(p2) = second {
        affected.push(affected_for(&mut rng, p2).0);
    }
    let modified = ident.published + rng.below(86_400 * 400) as i64;
    let modified = modified.min(catalog::GENERATION_EPOCH - 1);
    let mut aliases = Vec::new();
    if let Some(c) = &ident.cve {
        aliases.push(c.clone());
    }
    if let Some(g) = &ident.ghsa_alias {
        aliases.push(g.clone());
    }
    let mut references = Vec::new();
    if let Some(c) = &ident.cve {
        references.push(Reference {
            kind: "ADVISORY".into(),
            url: format!("https://nvd.nist.gov/vuln/detail/{c}"),
        });
    }
    if rng.chance(0.7) {
        references.push(Reference {
            kind: "FIX".into(),
            url: format!("https://github.com/{}/commit/{}", primary.repo, rng.hex(40)),
        });
    }
    if rng.chance(0.5) {
        references.push(Reference {
            kind: "REPORT".into(),
            url: format!("https://github.com/{}/issues/{}", primary.repo, rng.range(2, 9_000)),
        });
    }
    references.push(Reference {
        kind: "PACKAGE".into(),
        url: format!("https://github.com/{}", primary.repo),
    });
    let (class_name, cwe, ..) = CLASSES[class];
    Advisory {
        schema_version: SCHEMA_VERSION.into(),
        id: ident.id.clone(),
        modified: catalog::rfc3339(modified),
        published: catalog::rfc3339(ident.published),
        aliases,
        summary: format!("{class_name} in {}", primary.name),
        details: details(&mut rng, primary, class, fixed.as_deref()),
        affected,
        references,
        database_specific: DatabaseSpecific {
            severity: rng.pick(&SEVERITIES).to_string(),
            cwe_ids: vec![cwe.into()],
            github_reviewed: rng.chance(0.8),
            nvd_published_at: ident.cve.as_ref().map(|_| catalog::rfc3339(ident.published + 3600)),
        },
    }
}

/// A realistic revision of `adv` for churn generation `generation`: `modified` is bumped to the
/// generation's instant (strictly later than any earlier value, so the bytes always change)
/// plus one or two edits of the kinds feeds actually publish.
pub fn edit(seed: u64, generation: u64, serial_hint: u64, adv: &mut Advisory) {
    let mut rng = Rng::new(seed, stream::EDIT, serial_hint ^ (generation << 40));
    adv.modified = catalog::rfc3339(catalog::generation_time(generation, rng.next_u64()));
    let edits = 1 + rng.below(2);
    for _ in 0..edits {
        match rng.below(5) {
            0 => {
                // A fix lands: close the first open range at a new version.
                let a = &mut adv.affected[0];
                let open = a.ranges[0].events.iter().all(|e| e.fixed.is_none());
                if open {
                    let v = format!("{}.{}.{}", rng.range(1, 9), rng.below(20), rng.below(10));
                    a.ranges[0].events.push(Event {
                        fixed: Some(v),
                        ..Event::default()
                    });
                } else {
                    a.versions.push(format!(
                        "{}.{}.{}-rc.{}",
                        rng.range(1, 9),
                        rng.below(20),
                        rng.below(10),
                        generation
                    ));
                }
            }
            1 => adv.references.push(Reference {
                kind: "WEB".into(),
                url: format!("https://security.example.org/notices/{}/{}", generation, rng.hex(12)),
            }),
            2 => adv.details.push_str(&format!(
                "\n\nUpdate ({}): the advisory text was revised after further analysis of `{}`.",
                &adv.modified[..10],
                function_name(&mut rng)
            )),
            3 => adv.database_specific.severity = rng.pick(&SEVERITIES).to_string(),
            _ => {
                let cwe = CLASSES[rng.below(CLASSES.len() as u64) as usize].1.to_string();
                if !adv.database_specific.cwe_ids.contains(&cwe) {
                    adv.database_specific.cwe_ids.push(cwe);
                }
                adv.database_specific.github_reviewed = true;
            }
        }
    }
}
