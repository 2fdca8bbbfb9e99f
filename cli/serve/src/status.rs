//! `/status`: what each tenant's `current` version holds (from its `state.json`): state
//! root, applied export ids, the producer's `createdAt`, the data's age in seconds, and the
//! signed `expiresAt` of the last applied bundle with whether it has passed (`expired`).
use std::path::Path;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::paths::{current_version, valid_tenant};

async fn tenant_status(root: &Path, tenant: &str) -> Option<Value> {
    let version = current_version(root, tenant).await?;
    let bytes = tokio::fs::read(version.join("state.json")).await.ok()?;
    let st: Value = serde_json::from_slice(&bytes).ok()?;
    let created = st["producerCreatedAt"].as_str().map(String::from);
    let parse = |c: &str| time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok();
    let now = time::OffsetDateTime::now_utc();
    let age = created.as_deref().and_then(parse).map(|t| (now - t).whole_seconds());
    let expires = st["producerExpiresAt"].as_str().map(String::from);
    let expired = expires.as_deref().and_then(parse).map(|t| now > t);
    Some(json!({
        "tenant": tenant,
        "version": version.file_name().and_then(|n| n.to_str()),
        "stateRoot": st["stateRoot"],
        "appliedExportIds": st["appliedExportIds"],
        "producerCreatedAt": created,
        "dataAgeSeconds": age,
        "producerExpiresAt": expires,
        "expired": expired,
        "counts": st["counts"],
    }))
}

pub async fn response(root: &Path, tenant: Option<&str>) -> Response {
    match tenant {
        Some(t) => match tenant_status(root, t).await {
            Some(v) => Json(v).into_response(),
            None => (StatusCode::NOT_FOUND, "no published tree for this tenant\n").into_response(),
        },
        None => {
            let mut all = Vec::new();
            if let Ok(mut rd) = tokio::fs::read_dir(root).await {
                while let Ok(Some(e)) = rd.next_entry().await {
                    let name = e.file_name().to_string_lossy().to_string();
                    if valid_tenant(&name) {
                        if let Some(v) = tenant_status(root, &name).await {
                            all.push(v);
                        }
                    }
                }
            }
            all.sort_by(|a, b| a["tenant"].as_str().cmp(&b["tenant"].as_str()));
            Json(json!({"tenants": all})).into_response()
        }
    }
}
