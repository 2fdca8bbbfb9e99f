//! CycloneDX SBOMs (one per subject), OpenVEX documents (one per subject) and policy
//! evaluations, all about the same subjects, components and advisories so that the evidence is
//! coherent: a VEX statement names a vulnerability of a component the subject's SBOM lists.
//!
//! As in `osv`, field order is fixed by structs, never by maps.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{self, Package};
use crate::rng::{stream, Rng};

const SERVICES: [&str; 10] = [
    "api",
    "web",
    "worker",
    "gateway",
    "auth",
    "billing",
    "search",
    "ingest",
    "console",
    "scheduler",
];
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";
const LICENSES: [&str; 6] = ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "MPL-2.0", "GPL-3.0-only"];

// ---- CycloneDX ------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Sbom {
    #[serde(rename = "bomFormat")]
    pub bom_format: String,
    #[serde(rename = "specVersion")]
    pub spec_version: String,
    #[serde(rename = "serialNumber")]
    pub serial_number: String,
    pub version: u64,
    pub metadata: Metadata,
    pub components: Vec<Component>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Metadata {
    pub timestamp: String,
    pub tools: Tools,
    pub component: Component,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tools {
    pub components: Vec<ToolComponent>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ToolComponent {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Component {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "bom-ref")]
    pub bom_ref: String,
    pub name: String,
    pub version: String,
    pub purl: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub licenses: Vec<LicenseChoice>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hashes: Vec<Hash>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LicenseChoice {
    pub license: License,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct License {
    pub id: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Hash {
    pub alg: String,
    pub content: String,
}

/// The deployable artifact an SBOM, a VEX document and policy evaluations are about.
#[derive(Clone, Debug)]
pub struct Subject {
    /// Directory name under `sboms/` (filesystem-safe by construction: [a-z0-9.-]).
    pub dir: String,
    pub name: String,
    pub version: String,
    /// `pkg:oci/...` purl: VEX product id and policy-evaluation subject.
    pub purl: String,
}

pub fn subject(seed: u64, s: u64) -> Subject {
    let mut rng = Rng::new(seed, stream::SUBJECT, s);
    let org = catalog::org_name(rng.next_u64());
    // Offset into the name space so subject names do not read like package names.
    let mut base = String::new();
    let mut x = s + 1_000_003;
    for _ in 0..3 {
        base.push(b"bdfgklmnprstvz"[(x % 14) as usize] as char);
        base.push(b"aeiou"[(x / 14 % 5) as usize] as char);
        x /= 70;
    }
    // `s` in base 36 keeps the name unique however many subjects there are.
    let name = format!("{org}-{base}{}-{}", to_base36(s), rng.pick(&SERVICES));
    let version = format!("{}.{}.{}", rng.range(1, 6), rng.below(30), rng.below(12));
    let digest = rng.hex(64);
    Subject {
        dir: format!("{name}-{version}"),
        purl: format!(
            "pkg:oci/{name}@sha256%3A{digest}?repository_url=registry.example.com%2F{org}%2F{name}&tag={version}"
        ),
        name,
        version,
    }
}

fn to_base36(mut x: u64) -> String {
    let mut d = Vec::new();
    loop {
        d.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(x % 36) as usize]);
        x /= 36;
        if x == 0 {
            break;
        }
    }
    d.reverse();
    String::from_utf8(d).unwrap_or_default()
}

/// A library component at one version of `pkg`.
pub fn component(rng: &mut Rng, pkg: &Package, version: &str) -> Component {
    let purl = pkg.purl_at(version);
    Component {
        kind: "library".into(),
        bom_ref: purl.clone(),
        name: pkg.name.clone(),
        version: version.into(),
        purl,
        licenses: vec![LicenseChoice {
            license: License {
                id: rng.pick(&LICENSES).to_string(),
            },
        }],
        hashes: vec![Hash {
            alg: "SHA-256".into(),
            content: rng.hex(64),
        }],
    }
}

pub fn uuid(rng: &mut Rng) -> String {
    let h = rng.hex(32);
    format!(
        "urn:uuid:{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The SBOM of subject `s`, plus the package index of each component (for VEX/policy).
pub fn sbom(seed: u64, s: u64, subj: &Subject, space: u64) -> (Sbom, Vec<u64>) {
    let mut rng = Rng::new(seed, stream::SUBJECT, s ^ (1 << 62));
    // 40..~640 components, skewed towards smaller images.
    let target = 40 + (600.0 * rng.unit() * rng.unit()) as usize;
    let mut seen = HashSet::new();
    let mut comps = Vec::with_capacity(target);
    let mut pkgs = Vec::with_capacity(target);
    for _ in 0..target * 2 {
        if comps.len() == target {
            break;
        }
        let p = catalog::skewed_package(&mut rng, space);
        if !seen.insert(p) {
            continue;
        }
        let pkg = catalog::package(seed, p);
        let v = rng.pick(&pkg.versions).clone();
        comps.push(component(&mut rng, &pkg, &v));
        pkgs.push(p);
    }
    let doc = Sbom {
        bom_format: "CycloneDX".into(),
        spec_version: "1.5".into(),
        serial_number: uuid(&mut rng),
        version: 1,
        metadata: Metadata {
            timestamp: catalog::rfc3339(catalog::GENERATION_EPOCH - 86_400 - rng.below(86_400 * 60) as i64),
            tools: Tools {
                components: vec![ToolComponent {
                    kind: "application".into(),
                    name: "smgen".into(),
                    version: "1".into(),
                }],
            },
            component: Component {
                kind: "container".into(),
                bom_ref: subj.purl.clone(),
                name: subj.name.clone(),
                version: subj.version.clone(),
                purl: subj.purl.clone(),
                licenses: Vec::new(),
                hashes: Vec::new(),
            },
        },
        components: comps,
    };
    (doc, pkgs)
}

// ---- OpenVEX --------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VexDoc {
    #[serde(rename = "@context")]
    pub context: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub author: String,
    pub timestamp: String,
    pub version: u64,
    pub statements: Vec<Statement>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Statement {
    pub vulnerability: Vulnerability,
    pub products: Vec<Product>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub justification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub impact_statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action_statement: Option<String>,
    pub timestamp: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Vulnerability {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub aliases: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Product {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub subcomponents: Vec<Sub>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Sub {
    #[serde(rename = "@id")]
    pub id: String,
}

const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// Sets `status` and the fields OpenVEX requires with it (justification or impact statement
/// for `not_affected`, action statement for `affected`).
pub fn set_status(rng: &mut Rng, st: &mut Statement, status: &str) {
    st.status = status.into();
    st.justification = None;
    st.impact_statement = None;
    st.action_statement = None;
    match status {
        "not_affected" => {
            st.justification = Some(rng.pick(&JUSTIFICATIONS).to_string());
            if rng.chance(0.6) {
                st.impact_statement =
                    Some("Static analysis determined that the vulnerable code is not called by this product".into());
            }
        }
        "affected" => {
            st.action_statement =
                Some("Upgrade the component to a fixed version in the next release of this product".into());
        }
        _ => {}
    }
}

pub fn random_status(rng: &mut Rng) -> &'static str {
    ["not_affected", "affected", "fixed", "under_investigation"][rng.weighted(&[55, 15, 20, 10])]
}

pub fn statement(rng: &mut Rng, product: &str, component_purl: &str, vuln: &catalog::Identity, at: i64) -> Statement {
    let mut st = Statement {
        vulnerability: Vulnerability {
            name: vuln.vuln_name().into(),
            aliases: if vuln.cve.is_some() {
                vec![vuln.id.clone()]
            } else {
                Vec::new()
            },
        },
        products: vec![Product {
            id: product.into(),
            subcomponents: vec![Sub {
                id: component_purl.into(),
            }],
        }],
        status: String::new(),
        justification: None,
        impact_statement: None,
        action_statement: None,
        timestamp: catalog::rfc3339(at),
    };
    let status = random_status(rng);
    set_status(rng, &mut st, status);
    st
}

pub fn vex_doc(rng: &mut Rng, statements: Vec<Statement>, at: i64) -> VexDoc {
    VexDoc {
        context: OPENVEX_CONTEXT.into(),
        id: format!("https://openvex.dev/docs/public/vex-{}", rng.hex(64)),
        author: "Example Corp Product Security".into(),
        timestamp: catalog::rfc3339(at),
        version: 1,
        statements,
    }
}

// ---- Policy evaluations ---------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub subject: String,
    #[serde(rename = "componentPurl")]
    pub component_purl: String,
    pub vulnerability: String,
    pub status: String,
    pub reasons: Vec<String>,
    #[serde(rename = "evaluatedAt")]
    pub evaluated_at: String,
}

/// Sets a policy verdict with reasons that fit it.
pub fn set_verdict(rng: &mut Rng, ev: &mut Evaluation) {
    let i = rng.weighted(&[25, 30, 35, 10]);
    ev.status = ["fail", "warn", "pass", "waived"][i].into();
    ev.reasons = match i {
        0 => vec![
            format!("severity:{}", ["HIGH", "CRITICAL"][rng.below(2) as usize]),
            "fix-available".into(),
            "policy:block-fixable-high".into(),
        ],
        1 => vec!["severity:MODERATE".into(), "no-fix-available".into()],
        2 => vec![
            "vex:not_affected".into(),
            format!("justification:{}", rng.pick(&JUSTIFICATIONS)),
        ],
        _ => vec![
            format!("exception:SEC-{}", rng.range(100, 9_999)),
            "expires:2026-06-30".into(),
        ],
    };
}

pub fn evaluation(rng: &mut Rng, subject: &str, component_purl: &str, vuln: &str, at: i64) -> Evaluation {
    let mut ev = Evaluation {
        subject: subject.into(),
        component_purl: component_purl.into(),
        vulnerability: vuln.into(),
        status: String::new(),
        reasons: Vec::new(),
        evaluated_at: catalog::rfc3339(at),
    };
    set_verdict(rng, &mut ev);
    ev
}
