//! How refusals reach the operator: a stable code, the message naming the file, record
//! or entry, a hint, and an exit code.
use serde_json::json;

pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_VERIFY_FAILED: i32 = 3;
pub const EXIT_PARTIAL: i32 = 4;
/// `status --max-age`: a tenant's data is too old, expired or missing.
pub const EXIT_STALE: i32 = 5;

#[derive(Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub hint: String,
    pub exit: i32,
    /// Extra structured detail for `--json` (e.g. the offending path).
    pub detail: serde_json::Value,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            hint: hint.into(),
            exit: EXIT_FAILURE,
            detail: serde_json::Value::Null,
        }
    }
    pub fn with_exit(mut self, exit: i32) -> Self {
        self.exit = exit;
        self
    }
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn report(&self, as_json: bool) {
        if as_json {
            let v = json!({"error": {"code": self.code, "message": self.message, "hint": self.hint, "detail": self.detail}});
            out!("{v}");
        } else {
            eprintln!("error[{}]: {}", self.code, self.message);
            eprintln!("  hint: {}", self.hint);
        }
    }
}

macro_rules! coded_error {
    ($t:ty) => {
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::new(e.code(), e.to_string(), e.hint())
            }
        }
    };
}

coded_error!(stellamirror_engine::ingest::IngestError);
coded_error!(stellamirror_engine::ingest::RemoveError);
coded_error!(stellamirror_engine::store::StoreError);
