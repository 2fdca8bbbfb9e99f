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
    /// Writing into the store (its scratch folder or RocksDB's files) failed.
    #[error("store I/O failed at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file system holding the store is full, or has less room than the operation
    /// needs (`store::space`).
    #[error("no space left on the file system of {path} (needed: {needed}; {free})")]
    NoSpace {
        path: PathBuf,
        needed: String,
        free: String,
    },
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "ERR_STORE_OPEN",
            StoreError::Db(_) => "ERR_STORE_IO",
            StoreError::Corrupt(_) => "ERR_STORE_CORRUPT",
            StoreError::InvalidTenant(_) => "ERR_INPUT_INVALID",
            StoreError::Io { .. } => "ERR_STORE_IO",
            StoreError::NoSpace { .. } => "ERR_NO_SPACE",
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
            StoreError::Io { .. } => "check the store's file system and its permissions; the store was not changed".into(),
            StoreError::NoSpace { .. } => {
                "free space on the store's file system (or move the store to a larger one) and run the command again; the store was not changed".into()
            }
        }
    }
}

impl StoreError {
    /// A failed write below the store; `needed` says what it needed room for.
    pub fn io(path: &std::path::Path, e: std::io::Error, needed: &str) -> Self {
        if crate::bundle::error::is_no_space(&e) {
            return super::space::no_space(path, needed);
        }
        StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }

    /// A RocksDB failure while writing below `path`. RocksDB reports only a status code
    /// (its C API has no errno): an I/O error on a file system with no room left is a full
    /// disk, any other failure stays a store I/O error.
    pub fn rocks(path: &std::path::Path, e: rocksdb::Error, needed: &str) -> Self {
        if e.kind() == rocksdb::ErrorKind::IOError && super::space::is_full(path) {
            return super::space::no_space(path, needed);
        }
        StoreError::Db(format!("{}: {}", path.display(), e.into_string()))
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}
