//! `provenance.json`: an in-toto Statement v1. Format 2 carries a SLSA Provenance v1
//! predicate (signed in a DSSE envelope, `dsse`); format 1 carried a predicate of our own.
use serde_json::{json, Value};

use super::format::Stamp;
use crate::selectors::Selectors;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Format 1's predicate type.
pub const LEGACY_PREDICATE: &str = "https://stellamirror.dev/provenance/v1";
/// What `buildType` names: the export of a mirror bundle, as docs/bundle-format.md
/// describes it.
pub const BUILD_TYPE: &str = "https://stellamirror.dev/buildtypes/mirror-bundle/v2";
pub const BUILDER_ID: &str = "https://stellamirror.dev/builder/stellamirror";

/// What the provenance says about one export.
pub struct ProvenanceInput<'a> {
    pub profile: &'a str,
    pub run_id: &'a str,
    pub tenant: &'a str,
    pub stamp: &'a Stamp,
    pub selectors: &'a Selectors,
    pub schedule: Option<&'a str>,
    /// (run id, manifest digest `sha256:…`, reset baseline) of a delta's base.
    pub base: Option<(&'a str, String, bool)>,
    /// `{"source": name}` per upstream source of the tenant.
    pub sources: &'a [Value],
    pub signing_key_id: &'a str,
    /// `{mode, strict, recipients}`; the recipients are the wrapped data keys in
    /// AES-GCM default mode (importers read them from here).
    pub encryption: Value,
}

/// `{"name": path, "digest": {"sha256": hex}}`.
pub fn subject(path: &str, sha256_hex: &str) -> Value {
    json!({"name": path, "digest": {"sha256": sha256_hex}})
}

/// The format-2 statement: SLSA Provenance v1 over `subjects`.
pub fn slsa_statement(p: &ProvenanceInput<'_>, subjects: Vec<Value>) -> Value {
    let mut deps: Vec<Value> = p
        .sources
        .iter()
        .filter_map(|s| s["source"].as_str())
        .map(|s| json!({"name": s, "uri": format!("urn:stellamirror:source:{}:{s}", p.tenant)}))
        .collect();
    if let Some((id, digest, _)) = &p.base {
        deps.push(json!({
            "name": id,
            "uri": format!("urn:stellamirror:export:{}:{id}", p.tenant),
            "digest": {"sha256": digest.strip_prefix("sha256:").unwrap_or(digest)},
        }));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "profile": p.profile,
                    "runId": p.run_id,
                    "tenant": p.tenant,
                    "channel": p.stamp.channel,
                    "selectors": p.selectors,
                    "schedule": p.schedule,
                    "base": p.base.as_ref().map(|(id, d, reset)| json!({"exportId": id, "manifestDigest": d, "resetBaseline": reset})),
                },
                "internalParameters": {
                    "formatVersion": p.stamp.format_version,
                    "sequence": p.stamp.sequence,
                    "createdAt": p.stamp.created_at,
                    "expiresAt": p.stamp.expires_at,
                    "signingKeyId": p.signing_key_id,
                    "encryption": p.encryption,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"stellamirror": env!("CARGO_PKG_VERSION")}},
                "metadata": {"invocationId": p.run_id, "startedOn": p.stamp.created_at, "finishedOn": p.stamp.created_at},
            },
        }
    })
}

/// The format-1 statement, byte for byte as format 1 wrote it (for `--rerun`).
pub fn legacy_statement(p: &ProvenanceInput<'_>, subjects: Vec<Value>) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": LEGACY_PREDICATE,
        "predicate": {
            "builder": {"id": format!("stellamirror/{}", env!("CARGO_PKG_VERSION"))},
            "buildType": p.profile,
            "runId": p.run_id,
            "tenant": p.tenant,
            "createdAt": p.stamp.created_at,
            "materials": p.sources,
            "signingKeyId": p.signing_key_id,
            "encryption": p.encryption,
        }
    })
}

/// The wrapped AES-GCM data keys recorded in a provenance statement of either format.
pub fn wrapped_keys(statement: &Value) -> Vec<Value> {
    let p = &statement["predicate"];
    let enc = if statement["predicateType"] == SLSA_PROVENANCE_V1 {
        &p["buildDefinition"]["internalParameters"]["encryption"]
    } else {
        &p["encryption"]
    };
    enc["recipients"].as_array().cloned().unwrap_or_default()
}
