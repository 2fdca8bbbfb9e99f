//! `provenance.json`: an in-toto Statement v1. Format 2 carries a SLSA Provenance v1
//! predicate (signed in a DSSE envelope, `dsse`); format 1 carried a predicate of our own.
//! Both are typed: the writer serializes these structs (field order is the byte order of
//! the file, so `--rerun` reproduces it) and readers parse them with [`parse`].
use serde::{Deserialize, Serialize};

use super::error::BundleError;
use super::format::{EncryptionModeName, Stamp};
use crate::encryption::WrappedKey;
use crate::selectors::Selectors;

pub const PATH: &str = "provenance.json";
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
    /// `{"source": name}` per upstream source of the tenant (recorded with the export, so
    /// a rerun reproduces them).
    pub sources: &'a [serde_json::Value],
    pub signing_key_id: &'a str,
    pub encryption: ProvenanceEncryption,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256Digest {
    /// Lowercase hex.
    pub sha256: String,
}

/// One attested file: `{"name": path, "digest": {"sha256": hex}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: Sha256Digest,
}

pub fn subject(path: &str, sha256_hex: &str) -> Subject {
    Subject {
        name: path.into(),
        digest: Sha256Digest {
            sha256: sha256_hex.into(),
        },
    }
}

/// `{mode, strict, recipients}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceEncryption {
    pub mode: EncryptionModeName,
    pub strict: bool,
    pub recipients: Recipients,
}

/// The public `age1…` recipients, or, in AES-GCM default mode, the wrapped data keys
/// (importers read them from here). A list mixing both, or holding an entry that is
/// neither, does not parse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    Public(Vec<String>),
    Wrapped(Vec<WrappedKey>),
}

impl Recipients {
    pub fn wrapped_keys(&self) -> &[WrappedKey] {
        match self {
            Recipients::Wrapped(w) => w,
            Recipients::Public(_) => &[],
        }
    }
}

/// The format-2 statement (SLSA Provenance v1 predicate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlsaStatement {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: SlsaPredicate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlsaPredicate {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub internal_parameters: InternalParameters,
    pub resolved_dependencies: Vec<Dependency>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    pub profile: String,
    pub run_id: String,
    pub tenant: String,
    pub channel: String,
    pub selectors: Selectors,
    pub schedule: Option<String>,
    pub base: Option<BaseParameter>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseParameter {
    pub export_id: String,
    pub manifest_digest: String,
    pub reset_baseline: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    pub format_version: u32,
    pub sequence: Option<u64>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub signing_key_id: String,
    pub encryption: ProvenanceEncryption,
}

/// A source (`urn:stellamirror:source:…`) or a delta's base export (with its manifest
/// digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Sha256Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: RunMetadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    pub version: BuilderVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderVersion {
    pub stellamirror: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMetadata {
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
}

/// The format-1 statement, field for field as format 1 wrote it (for `--rerun`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegacyStatement {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: LegacyPredicate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyPredicate {
    pub builder: LegacyBuilder,
    pub build_type: String,
    pub run_id: String,
    pub tenant: String,
    pub created_at: String,
    pub materials: Vec<serde_json::Value>,
    pub signing_key_id: String,
    pub encryption: ProvenanceEncryption,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyBuilder {
    pub id: String,
}

/// `provenance.json` of either format.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    Slsa(Box<SlsaStatement>),
    Legacy(Box<LegacyStatement>),
}

impl Statement {
    pub fn encryption(&self) -> &ProvenanceEncryption {
        match self {
            Statement::Slsa(s) => &s.predicate.build_definition.internal_parameters.encryption,
            Statement::Legacy(s) => &s.predicate.encryption,
        }
    }

    /// The file's bytes (pretty JSON, as every format wrote them).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Statement::Slsa(s) => serde_json::to_vec_pretty(s),
            Statement::Legacy(s) => serde_json::to_vec_pretty(s),
        }
        .expect("statements always encode")
    }

    /// Parse `provenance.json`: the predicate type picks the predicate; anything that
    /// does not fit it (a malformed wrapped key included) is `ERR_BUNDLE_MALFORMED`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "_type")]
            kind: String,
            #[serde(rename = "predicateType")]
            predicate_type: String,
        }
        let malformed = |reason: String| BundleError::Malformed {
            path: PATH.into(),
            reason,
        };
        let parse_err = |e: serde_json::Error| malformed(format!("does not parse: {e}"));
        let head: Head = serde_json::from_slice(bytes).map_err(parse_err)?;
        if head.kind != STATEMENT_TYPE {
            return Err(malformed(format!(
                "_type is {:?}, expected {STATEMENT_TYPE:?}",
                head.kind
            )));
        }
        let st = match head.predicate_type.as_str() {
            SLSA_PROVENANCE_V1 => Statement::Slsa(Box::new(serde_json::from_slice(bytes).map_err(parse_err)?)),
            LEGACY_PREDICATE => Statement::Legacy(Box::new(serde_json::from_slice(bytes).map_err(parse_err)?)),
            other => return Err(malformed(format!("unknown predicateType {other:?}"))),
        };
        st.validate()?;
        Ok(st)
    }

    /// Field-level checks beyond the types (hook for value rules: charsets, lengths).
    pub fn validate(&self) -> Result<(), BundleError> {
        Ok(())
    }
}

/// The format-2 statement: SLSA Provenance v1 over `subjects`.
pub fn slsa_statement(p: &ProvenanceInput<'_>, subjects: Vec<Subject>) -> Statement {
    let mut deps: Vec<Dependency> = p
        .sources
        .iter()
        .filter_map(|s| s["source"].as_str())
        .map(|s| Dependency {
            name: s.into(),
            uri: format!("urn:stellamirror:source:{}:{s}", p.tenant),
            digest: None,
        })
        .collect();
    if let Some((id, digest, _)) = &p.base {
        deps.push(Dependency {
            name: id.to_string(),
            uri: format!("urn:stellamirror:export:{}:{id}", p.tenant),
            digest: Some(Sha256Digest {
                sha256: digest.strip_prefix("sha256:").unwrap_or(digest).into(),
            }),
        });
    }
    let external = ExternalParameters {
        profile: p.profile.into(),
        run_id: p.run_id.into(),
        tenant: p.tenant.into(),
        channel: p.stamp.channel.clone(),
        selectors: p.selectors.clone(),
        schedule: p.schedule.map(str::to_string),
        base: p.base.as_ref().map(|(id, d, reset)| BaseParameter {
            export_id: id.to_string(),
            manifest_digest: d.clone(),
            reset_baseline: *reset,
        }),
    };
    let internal = InternalParameters {
        format_version: p.stamp.format_version,
        sequence: p.stamp.sequence,
        created_at: p.stamp.created_at.clone(),
        expires_at: p.stamp.expires_at.clone(),
        signing_key_id: p.signing_key_id.into(),
        encryption: p.encryption.clone(),
    };
    Statement::Slsa(Box::new(SlsaStatement {
        kind: STATEMENT_TYPE.into(),
        subject: subjects,
        predicate_type: SLSA_PROVENANCE_V1.into(),
        predicate: SlsaPredicate {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.into(),
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: BUILDER_ID.into(),
                    version: BuilderVersion {
                        stellamirror: env!("CARGO_PKG_VERSION").into(),
                    },
                },
                metadata: RunMetadata {
                    invocation_id: p.run_id.into(),
                    started_on: p.stamp.created_at.clone(),
                    finished_on: p.stamp.created_at.clone(),
                },
            },
        },
    }))
}

/// The format-1 statement, byte for byte as format 1 wrote it (for `--rerun`).
pub fn legacy_statement(p: &ProvenanceInput<'_>, subjects: Vec<Subject>) -> Statement {
    Statement::Legacy(Box::new(LegacyStatement {
        kind: STATEMENT_TYPE.into(),
        subject: subjects,
        predicate_type: LEGACY_PREDICATE.into(),
        predicate: LegacyPredicate {
            builder: LegacyBuilder {
                id: format!("stellamirror/{}", env!("CARGO_PKG_VERSION")),
            },
            build_type: p.profile.into(),
            run_id: p.run_id.into(),
            tenant: p.tenant.into(),
            created_at: p.stamp.created_at.clone(),
            materials: p.sources.to_vec(),
            signing_key_id: p.signing_key_id.into(),
            encryption: p.encryption.clone(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(encryption: ProvenanceEncryption, stamp: &Stamp) -> ProvenanceInput<'_> {
        ProvenanceInput {
            profile: "mirror:full",
            run_id: "r1",
            tenant: "acme",
            stamp,
            selectors: &SELECTORS,
            schedule: None,
            base: Some(("r0", format!("sha256:{}", "ab".repeat(32)), false)),
            sources: &[],
            signing_key_id: "sha256:00",
            encryption,
        }
    }
    static SELECTORS: Selectors = Selectors {
        products: Vec::new(),
        from: None,
        to: None,
    };

    fn stamp() -> Stamp {
        Stamp {
            format_version: 2,
            channel: "default".into(),
            sequence: Some(4),
            created_at: "2026-08-14T00:00:00Z".into(),
            expires_at: Some("2026-09-13T00:00:00Z".into()),
        }
    }

    fn wrapped() -> ProvenanceEncryption {
        ProvenanceEncryption {
            mode: EncryptionModeName::AesGcm,
            strict: false,
            recipients: Recipients::Wrapped(vec![WrappedKey {
                recipient: "age1x".into(),
                wrapped_key: "AAAA".into(),
            }]),
        }
    }

    #[test]
    fn statements_round_trip_through_their_one_parser() {
        let st = stamp();
        for s in [
            slsa_statement(&input(wrapped(), &st), vec![subject("data/a", "00")]),
            legacy_statement(&input(wrapped(), &st), vec![]),
        ] {
            let back = Statement::parse(&s.encode()).unwrap();
            assert_eq!(back, s);
            assert_eq!(back.encryption().recipients.wrapped_keys().len(), 1);
        }
    }

    #[test]
    fn a_malformed_wrapped_key_is_an_error_not_dropped() {
        let st = stamp();
        let text = String::from_utf8(slsa_statement(&input(wrapped(), &st), vec![]).encode()).unwrap();
        for bad in [
            text.replace("\"wrappedKey\"", "\"wrappedKeyX\""),
            text.replace("\"wrappedKey\": \"AAAA\"", "\"wrappedKey\": 7"),
        ] {
            let e = Statement::parse(bad.as_bytes()).unwrap_err();
            assert!(matches!(&e, BundleError::Malformed { path, .. } if path == PATH), "{e}");
        }
    }

    #[test]
    fn an_unknown_predicate_type_is_malformed() {
        let st = stamp();
        let text = String::from_utf8(slsa_statement(&input(wrapped(), &st), vec![]).encode()).unwrap();
        let bad = text.replace(SLSA_PROVENANCE_V1, "https://slsa.dev/provenance/v9");
        let e = Statement::parse(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("predicateType"), "{e}");
    }
}
