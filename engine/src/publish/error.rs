//! Why a publish was refused. A refused publish leaves the published tree as it was: the
//! new version is built beside it and only swapped in once complete.
use std::path::{Path, PathBuf};

use crate::export::ExportError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file of the published tree could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A zip archive of the tree (OSV `all.zip`, the VEX repository) could not be read or written.
    #[error("{path}: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// A stored raw document is not the JSON its collection promises (store corruption).
    #[error("{collection} record {id:?} is not valid JSON: {source}")]
    Document {
        collection: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// `--base-url` is not an https URL.
    #[error("--base-url {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    /// Writing the bundle-layout part of the tree failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PublishError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn zip(path: &Path, source: zip::result::ZipError) -> Self {
        PublishError::Zip {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Io { .. } | PublishError::Zip { .. } => "ERR_PUBLISH_IO",
            PublishError::Document { .. } => "ERR_STORE_CORRUPT",
            PublishError::BaseUrl { .. } => "ERR_USAGE",
            PublishError::Export(e) => e.code(),
            PublishError::Store(e) => e.code(),
        }
    }
    pub fn hint(&self) -> String {
        match self {
            PublishError::Io { .. } | PublishError::Zip { .. } => {
                "check the --out folder's free space and permissions; the published tree was left as it was".into()
            }
            PublishError::Document { .. } => {
                "run `stellamirror verify --store DIR`; rebuild from bundles if it fails".into()
            }
            PublishError::BaseUrl { .. } => {
                "give the https URL the tree is served under, e.g. --base-url https://mirror.example/acme".into()
            }
            PublishError::Export(e) => e.hint(),
            PublishError::Store(e) => e.hint(),
        }
    }
}
