//! `publish` (and the `--publish DIR` of `import` and `rebuild`): the scanner-facing mirror
//! tree, signed with the store's key.
use std::path::{Path, PathBuf};

use clap::Args;
use stellamirror_engine::bundle::signing::SignKey;
use stellamirror_engine::model::Tenant;
use stellamirror_engine::publish::{self, FoldPolicy, PublishReport, PublishSettings};
use stellamirror_engine::store::Store;

use crate::failure::Failure;

/// The environment variable that gives the public URL when `--base-url` is not given.
pub const BASE_URL_ENV: &str = "STELLAMIRROR_PUBLIC_URL";

#[derive(Args)]
pub struct PublishArgs {
    /// The store directory.
    #[arg(long, env = "STELLAMIRROR_STORE")]
    store: PathBuf,
    /// The tenant: a namespace of records in the store.
    #[arg(long, env = "STELLAMIRROR_TENANT")]
    tenant: String,
    /// Folder of published trees: writes OUT/<tenant>/versions/<root>/ and swaps OUT/<tenant>/current.
    #[arg(long, env = "STELLAMIRROR_OUT")]
    out: PathBuf,
    /// The https URL OUT/<tenant>/current/ is served under (written into the VEX repository
    /// manifest and the CSAF provider metadata). Default: https://localhost:8443/<tenant>,
    /// which is where `stellamirror serve --tls-cert … --addr 127.0.0.1:8443` serves it.
    #[arg(long, env = BASE_URL_ENV)]
    base_url: Option<String>,
    /// Ed25519 PKCS#8 PEM key that signs state.json (default: the store's own key).
    #[arg(long, env = "STELLAMIRROR_SIGN_KEY")]
    sign_key: Option<PathBuf>,
    /// Leave out the bundle layout (bundle/): only the scanner layouts and state.json.
    #[arg(long, env = "STELLAMIRROR_NO_BUNDLE_LAYOUT")]
    no_bundle_layout: bool,
    /// Fold the bundle layout's deltas into a new base once there are this many (0: write a
    /// new base now, e.g. from a nightly timer).
    #[arg(long, env = "STELLAMIRROR_MAX_DELTAS", default_value_t = FoldPolicy::default().max_deltas, value_name = "N")]
    max_deltas: usize,
    /// Fold them once they hold more than this percentage of the base's records.
    #[arg(long, env = "STELLAMIRROR_FOLD_PERCENT", default_value_t = FoldPolicy::default().fold_percent, value_name = "PERCENT")]
    fold_percent: u64,
}

pub fn publish_cmd(a: PublishArgs, json: bool) -> Result<i32, Failure> {
    let tenant = crate::tenant(&a.tenant)?;
    let store = Store::open_existing(&a.store)?;
    let r = run(
        &store,
        &tenant,
        &a.out,
        a.base_url,
        a.sign_key.as_deref(),
        (!a.no_bundle_layout).then_some(FoldPolicy {
            max_deltas: a.max_deltas,
            fold_percent: a.fold_percent,
        }),
    )?;
    render(&r, json);
    Ok(0)
}

/// Publish with the given or default URL and key; `bundle_layout` None leaves it out.
pub fn run(
    store: &Store,
    tenant: &Tenant,
    out: &Path,
    base_url: Option<String>,
    sign_key: Option<&Path>,
    bundle_layout: Option<FoldPolicy>,
) -> Result<PublishReport, Failure> {
    let key_path = match sign_key {
        Some(k) => k.to_path_buf(),
        None => crate::cmd_bundle::store_key(store.path())?,
    };
    let sign_key = SignKey::load(&key_path).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
    let public = key_path
        .to_str()
        .and_then(|p| p.strip_suffix(".pem"))
        .map(|stem| PathBuf::from(format!("{stem}.pub.pem")));
    let settings = PublishSettings {
        base_url: base_url
            .or_else(|| std::env::var(BASE_URL_ENV).ok())
            .unwrap_or_else(|| format!("https://localhost:8443/{tenant}")),
        sign_key,
        public_pem: public.and_then(|p| std::fs::read(p).ok()),
        bundle_layout: bundle_layout.is_some(),
        fold: bundle_layout.unwrap_or_default(),
    };
    publish::publish(store, tenant, out, &settings).map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))
}

pub fn render(r: &PublishReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    if r.outcome == "unchanged" {
        out!("published tree of {} is already at {}", r.tenant, r.state_root);
        return;
    }
    out!("published {} → {}", r.tenant, r.version.display());
    out!(
        "  {} OSV ecosystems, {} VEX packages, {} CSAF documents",
        r.osv_ecosystems,
        r.vex_packages,
        r.csaf_documents
    );
    out!(
        "  {} records changed; {} files written, {} linked{}",
        r.changed_records,
        r.files_written,
        r.files_linked,
        if r.incremental { " (incremental)" } else { "" }
    );
    if let Some(b) = &r.bundle {
        let what = if b.base_written {
            "new base".to_string()
        } else {
            format!("delta {} of {} records", b.deltas, b.delta_records)
        };
        out!(
            "  bundle layout: {what}; {} files written, {} linked",
            b.files_written,
            b.files_linked
        );
    }
}
