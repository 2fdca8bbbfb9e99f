//! Audit events and progress reporting. The engine never prints: it hands events to
//! these traits, which the CLI implements (JSON lines, progress bars).
use serde::Serialize;

/// One audit event, written as a JSON line: `{"event": name, "at": time, ...fields}`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub event: &'static str,
    pub at: String,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    pub fn new(event: &'static str, fields: serde_json::Value) -> Self {
        let fields = match fields {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        Self {
            event,
            at: now_rfc3339(),
            fields,
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where audit events go. The store's own log (`<store>/audit.jsonl`) is always written
/// by [`StoreAuditLog`]; the CLI may add a sink that also prints them.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AuditEvent);
}

/// Appends audit events to `<store>/audit.jsonl`. Best effort: an audit write failure
/// never undoes a committed operation.
pub struct StoreAuditLog {
    path: std::path::PathBuf,
}

impl StoreAuditLog {
    pub fn new(store_dir: &std::path::Path) -> Self {
        Self {
            path: store_dir.join("audit.jsonl"),
        }
    }
}

impl AuditSink for StoreAuditLog {
    fn record(&self, event: &AuditEvent) {
        use std::io::Write;
        if let Ok(line) = serde_json::to_string(event) {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

/// Progress of a long operation.
pub trait Progress: Send + Sync {
    /// A new phase with a known (or unknown: 0) amount of work.
    fn phase(&self, name: &str, total: u64);
    /// `n` more bytes of the phase's total done.
    fn advance(&self, n: u64);
    /// `n` more records processed (for a records/s rate beside the byte progress).
    fn records(&self, _n: u64) {}
    /// Documents so far: parsed, and skipped as unchanged (ingest).
    fn documents(&self, _parsed: u64, _unchanged: u64) {}
    fn finish(&self);
}

/// Progress that goes nowhere (tests, `--quiet`).
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
