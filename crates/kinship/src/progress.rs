//! Progress bars on a terminal, plain lines otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    /// When not on a terminal: the last time a line was printed, to print one every few seconds.
    last_line: Mutex<Instant>,
}

impl Progress {
    /// `bytes` picks the unit shown: bytes read, or items.
    pub fn new(label: &str, bytes: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = if bytes {
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{prefix:>12} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}"
            };
            let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, label: label.to_string(), last_line: Mutex::new(Instant::now()) }
    }

    pub fn update(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None => {
                let mut last = self.last_line.lock().expect("not poisoned");
                if last.elapsed() > Duration::from_secs(5) && total > 0 {
                    eprintln!("{}: {:.0}%", self.label, done as f64 * 100.0 / total as f64);
                    *last = Instant::now();
                }
            }
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
