//! age key generation and publishing glue.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use stellamirror_engine::model::Tenant;
use stellamirror_engine::store::Store;

use crate::failure::Failure;

/// Write NAME (identity, mode 0600, age-keygen format) and NAME.pub (recipient).
pub fn age_keygen(out: &Path) -> Result<(PathBuf, String), Failure> {
    let identity = out.to_path_buf();
    let public = PathBuf::from(format!("{}.pub", out.display()));
    for p in [&identity, &public] {
        if p.exists() {
            return Err(Failure::new(
                "ERR_KEY_EXISTS",
                format!("{} already exists", p.display()),
                "choose another --out name",
            ));
        }
    }
    let key = stellamirror_engine::encryption::generate_age_key(&stellamirror_engine::audit::now_rfc3339());
    let io = |p: &Path, e: std::io::Error| {
        Failure::new(
            "ERR_KEY_IO",
            format!("{}: {e}", p.display()),
            "check the path and permissions",
        )
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&identity)
        .map_err(|e| io(&identity, e))?;
    f.write_all(key.identity_file_text.as_bytes())
        .map_err(|e| io(&identity, e))?;
    std::fs::write(&public, format!("{}\n", key.recipient)).map_err(|e| io(&public, e))?;
    Ok((identity, key.recipient))
}

/// `import --publish DIR` / `rebuild --publish DIR`: publish with the default URL and key.
pub fn publish(store: &Store, tenant: &Tenant, dir: &Path) -> Result<PathBuf, Failure> {
    Ok(crate::cmd_publish::run(store, tenant, dir, None, None, Some(Default::default()))?.version)
}
