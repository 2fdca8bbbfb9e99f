//! Room on the store's file system: checked before an import writes (against the sizes its
//! signed manifest lists), and asked after a write failed, to tell a full disk from other
//! I/O errors when the failure (RocksDB's) carries no OS error code.
use std::path::Path;

use super::StoreError;

/// Below this many free bytes a file system counts as full: RocksDB, the kernel's
/// reservations and our own buffers cannot work in less.
const FULL_BELOW: u64 = 1 << 20;

/// Bytes this process may still write on the file system holding `path` (or its nearest
/// existing ancestor); `None` when it cannot be asked.
pub fn available(path: &Path) -> Option<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let st = rustix::fs::statvfs(p).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether the file system holding `path` has (next to) no room left.
pub fn is_full(path: &Path) -> bool {
    available(path).is_some_and(|a| a < FULL_BELOW)
}

/// `N bytes free` on the file system holding `path`, for messages.
pub fn free_text(path: &Path) -> String {
    match available(path) {
        Some(a) => format!("{a} bytes free"),
        None => "free space unknown".into(),
    }
}

/// The refusal for a full file system at `path`.
pub fn no_space(path: &Path, needed: &str) -> StoreError {
    StoreError::NoSpace {
        path: path.to_path_buf(),
        needed: needed.to_string(),
        free: free_text(path),
    }
}

/// Refuse before writing when the file system holding `path` has fewer than `bytes` free;
/// `what` names what they are for. (A lower bound: the store needs more than the bytes
/// listed, so passing this does not promise the write fits; a write that then fails is
/// reported the same way.)
pub fn ensure(path: &Path, bytes: u64, what: &str) -> Result<(), StoreError> {
    match available(path) {
        Some(a) if a < bytes => Err(StoreError::NoSpace {
            path: path.to_path_buf(),
            needed: format!("{bytes} bytes for {what}, at least"),
            free: format!("{a} bytes free"),
        }),
        _ => Ok(()),
    }
}
