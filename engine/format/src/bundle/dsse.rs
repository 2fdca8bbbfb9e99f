//! DSSE v1.0 envelopes (secure-systems-lab/dsse): the bundle's in-toto attestation
//! `provenance.json`, signed with the bundle's Ed25519 key over the Pre-Authentication
//! Encoding, so that any DSSE/in-toto verifier checks it offline.
//!
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, where LEN is
//! the ASCII decimal byte length without leading zeros.
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::BundleError;
use super::signing::{SignKey, TrustedKey};

/// The envelope's path in the bundle (listed in the manifest like any other file).
pub const ENVELOPE_PATH: &str = "signatures/provenance.dsse.json";
/// in-toto's payload type for a JSON Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Our key id (`sha256:` of the SPKI DER); a hint only, never trusted.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the raw 64-byte Ed25519 signature.
    pub sig: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the serialized body (the exact bytes of `provenance.json`).
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The in-toto envelope over `body`, as pretty JSON bytes (deterministic: Ed25519 is).
pub fn sign(key: &SignKey, body: &[u8]) -> Vec<u8> {
    sign_typed(key, PAYLOAD_TYPE, body)
}

/// An envelope of any payload type.
pub fn sign_typed(key: &SignKey, payload_type: &str, body: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let env = Envelope {
        payload: b64.encode(body),
        payload_type: payload_type.into(),
        signatures: vec![EnvelopeSignature {
            keyid: key.key_id(),
            sig: b64.encode(key.sign(&pae(payload_type, body))),
        }],
    };
    serde_json::to_vec_pretty(&env).expect("json")
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    // DSSE verifiers must accept standard and URL-safe base64.
    let e = &base64::engine::general_purpose::STANDARD;
    let u = &base64::engine::general_purpose::URL_SAFE;
    e.decode(s).or_else(|_| u.decode(s)).ok()
}

/// Check that the envelope carries exactly `expected_body` as an in-toto payload and
/// that one of its signatures verifies over the PAE with a trusted key.
pub fn verify(envelope: &[u8], expected_body: &[u8], trust: &[TrustedKey]) -> Result<(), BundleError> {
    let body = open(envelope, PAYLOAD_TYPE, trust, ENVELOPE_PATH)?;
    if body != expected_body {
        return Err(BundleError::Malformed {
            path: ENVELOPE_PATH.into(),
            reason: "payload differs from provenance.json".into(),
        });
    }
    Ok(())
}

/// The payload of the envelope at bundle path `path`, if its type is `payload_type` and
/// one of its signatures verifies over the PAE with one of `keys`.
pub fn open(envelope: &[u8], payload_type: &str, keys: &[TrustedKey], path: &str) -> Result<Vec<u8>, BundleError> {
    let malformed = |reason: String| BundleError::Malformed {
        path: path.into(),
        reason,
    };
    let env: Envelope = serde_json::from_slice(envelope).map_err(|e| malformed(format!("does not parse: {e}")))?;
    if env.payload_type != payload_type {
        return Err(malformed(format!(
            "payloadType {:?} is not {payload_type}",
            env.payload_type
        )));
    }
    let body = decode_b64(&env.payload).ok_or_else(|| malformed("payload is not base64".into()))?;
    let signed = pae(&env.payload_type, &body);
    let ok = env
        .signatures
        .iter()
        .any(|s| decode_b64(&s.sig).is_some_and(|sig| keys.iter().any(|k| k.verify(&signed, &sig))));
    if !ok {
        return Err(BundleError::SignatureInvalid { path: path.into() });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_test_vector() {
        // protocol.md, "Test Vectors".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }
}
