//! Record selectors of an export, recorded in its manifest and provenance.
use serde::{Deserialize, Serialize};

/// Record selectors of an export, as given (sorted, deduplicated).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    /// Glob patterns on subjects (globset syntax); empty selects every subject.
    #[serde(default)]
    pub products: Vec<String>,
    /// Inclusive lower bound on a record's modification time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Exclusive upper bound on a record's modification time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Selectors {
    pub fn is_all(&self) -> bool {
        self.products.is_empty() && self.from.is_none() && self.to.is_none()
    }
}
