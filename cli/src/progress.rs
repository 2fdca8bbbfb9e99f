//! The engine's progress trait rendered with indicatif on stderr (hidden when stderr
//! is not a terminal or `--quiet` is given).
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stellamirror_engine::audit::Progress;

pub struct Bar {
    bar: ProgressBar,
    phase: std::sync::Mutex<String>,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::hidden();
        if !quiet {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        Self {
            bar,
            phase: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {bytes}/{total_bytes} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar.set_message(name.to_string());
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
    }
    fn documents(&self, parsed: u64, unchanged: u64) {
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        let rate = (parsed + unchanged) as f64 / secs;
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        self.bar.set_message(format!(
            "{phase}: {parsed} parsed, {unchanged} unchanged (skipped), {rate:.0} docs/s"
        ));
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
