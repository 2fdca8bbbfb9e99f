use std::path::PathBuf;

/// Failures of the storage layer. Each variant has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB could not open the store (missing permissions, corruption, or another
    /// process holds the lock).
    #[error("cannot open store {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// A read or write failed inside RocksDB.
    #[error("store I/O failed: {0}")]
    Db(String),
    /// A key the store's invariants say exists is missing or undecodable.
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    /// A tenant name outside the allowed alphabet.
    #[error("{0}")]
    InvalidTenant(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "ERR_STORE_OPEN",
            StoreError::Db(_) => "ERR_STORE_IO",
            StoreError::Corrupt(_) => "ERR_STORE_CORRUPT",
            StoreError::InvalidTenant(_) => "ERR_INPUT_INVALID",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            StoreError::Open { message, .. } if message.contains("lock") => {
                "another stellamirror process is using this store; wait for it to finish".into()
            }
            StoreError::Open { message, .. } if message.contains("store format") => {
                "the store was written by another stellamirror version: use that version, or rebuild a new store from the bundles with `stellamirror rebuild --bundles DIR --store NEW --trust PUB.pem` (docs/architecture.md, version history)".into()
            }
            StoreError::Open { .. } => {
                "check the --store path and its permissions; run `stellamirror verify --store DIR`".into()
            }
            StoreError::Db(_) => "check free disk space and the store's file system".into(),
            StoreError::Corrupt(_) => {
                "run `stellamirror verify --store DIR`; rebuild the mirror from bundles with `stellamirror rebuild` if it fails".into()
            }
            StoreError::InvalidTenant(_) => "choose a tenant name of letters, digits, '.', '_' or '-'".into(),
        }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}
