//! The engine's progress trait rendered with indicatif on stderr (hidden when stderr
//! is not a terminal or `--quiet` is given): bytes done of the total, bytes/s and ETA, and
//! — for phases that report records (import, rebuild) — records and records/s.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stellamirror_engine::audit::Progress;

pub struct Bar {
    bar: ProgressBar,
    phase: Mutex<(String, Instant)>,
    records: AtomicU64,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::hidden();
        if !quiet {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        Self {
            bar,
            phase: Mutex::new((String::new(), Instant::now())),
            records: AtomicU64::new(0),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar.set_message(name.to_string());
        self.records.store(0, Ordering::Relaxed);
        if let Ok(mut p) = self.phase.lock() {
            *p = (name.to_string(), Instant::now());
        }
    }
    fn documents(&self, parsed: u64, unchanged: u64) {
        if let Ok(p) = self.phase.lock() {
            let secs = p.1.elapsed().as_secs_f64().max(1e-3);
            let rate = (parsed + unchanged) as f64 / secs;
            self.bar.set_message(format!(
                "{}: {parsed} parsed, {unchanged} unchanged (skipped), {rate:.0} docs/s",
                p.0
            ));
        }
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn records(&self, n: u64) {
        let done = self.records.fetch_add(n, Ordering::Relaxed) + n;
        if let Ok(p) = self.phase.lock() {
            let secs = p.1.elapsed().as_secs_f64().max(1e-3);
            self.bar
                .set_message(format!("{} {done} records ({:.0}/s)", p.0, done as f64 / secs));
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
