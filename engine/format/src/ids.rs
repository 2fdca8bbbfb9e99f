//! Typed identifiers: one newtype per kind of hash, never a bare `[u8; 32]`.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Parse `prefix:<64 hex>` into 32 bytes.
fn parse_prefixed(prefix: &str, s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix(prefix)?.strip_prefix(':')?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

struct Bytes32Visitor;

impl<'de> serde::de::Visitor<'de> for Bytes32Visitor {
    type Value = [u8; 32];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("32 bytes")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
        <[u8; 32]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }
}

macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        // As bytes, not as a tuple of 32 numbers: node and record decoding is on every
        // hot path, and serde would otherwise visit the 32 elements one by one.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_bytes(Bytes32Visitor).map(Self)
            }
        }

        impl $name {
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(b).ok().map(Self)
            }
            /// `blake3:<hex>`, the form used in manifests, indexes and CLI output.
            pub fn to_prefixed(&self) -> String {
                format!("blake3:{}", hex::encode(self.0))
            }
            pub fn parse_prefixed(s: &str) -> Option<Self> {
                parse_prefixed("blake3", s).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..16])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_prefixed())
            }
        }
    };
}

blake3_id!(
    /// blake3 of an object's stored bytes; the object's key in the store.
    ObjectId
);
blake3_id!(
    /// A Merkle node hash (leaf, subject, shard, kind or state root); also the key of the
    /// node in the store, so a root identifies a whole immutable snapshot.
    NodeHash
);

/// Digest of one input document as received (SHA-256 of its parse context and bytes),
/// kept in the source index so that an unchanged document is recognised without parsing
/// it (`ingest::digest`). SHA-256 rather than blake3: documents are hashed one by one, and
/// a single small input gets none of blake3's SIMD parallelism, while SHA-256 runs on the
/// CPU's SHA extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct InputDigest(pub [u8; 32]);

impl InputDigest {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(Self)
    }
}

impl ObjectId {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

/// `sha256:<hex>` digest of a bundle file's exact bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileDigest(pub [u8; 32]);

impl FileDigest {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }
    pub fn to_prefixed(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }
    pub fn parse_prefixed(s: &str) -> Option<Self> {
        parse_prefixed("sha256", s).map(Self)
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prefixed())
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prefixed())
    }
}

impl Serialize for FileDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_prefixed())
    }
}

impl<'de> Deserialize<'de> for FileDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_prefixed(&s).ok_or_else(|| serde::de::Error::custom("expected sha256:<64 hex>"))
    }
}

/// Serde helper: a [`NodeHash`] written as `blake3:<hex>` in JSON/YAML documents.
pub mod prefixed_node_hash {
    use super::NodeHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &NodeHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_prefixed())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeHash, D::Error> {
        let s = String::deserialize(d)?;
        NodeHash::parse_prefixed(&s).ok_or_else(|| serde::de::Error::custom("expected blake3:<64 hex>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_as_32_bytes_and_round_trip() {
        let id = ObjectId::of(b"abc");
        let enc = postcard::to_stdvec(&id).unwrap();
        assert_eq!(enc.len(), 33, "length prefix + 32 bytes");
        assert_eq!(postcard::from_bytes::<ObjectId>(&enc).unwrap(), id);
    }

    #[test]
    fn prefixed_forms_round_trip() {
        let id = ObjectId::of(b"abc");
        assert_eq!(ObjectId::parse_prefixed(&id.to_prefixed()), Some(id));
        let d = FileDigest::of(b"abc");
        assert_eq!(
            d.to_prefixed(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(FileDigest::parse_prefixed(&d.to_prefixed()), Some(d));
        assert!(NodeHash::parse_prefixed("sha256:00").is_none());
    }
}
