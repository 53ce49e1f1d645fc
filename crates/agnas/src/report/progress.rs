//! One progress reporter for the whole library: a bar with ETA on a terminal, log lines otherwise.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on stderr when it is a terminal, else a log line every few seconds.
    Auto,
    /// Nothing (tests, benchmarks).
    Hidden,
}

/// Progress of one phase (an epoch, a held-out pass).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    last_log: Instant,
    log: bool,
}

impl Progress {
    pub fn start(mode: ProgressMode, label: impl Into<String>, total: u64) -> Self {
        let label = label.into();
        let terminal = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar
        });
        let now = Instant::now();
        Progress { bar, label, total, started: now, last_log: now, log: mode == ProgressMode::Auto && !terminal }
    }

    /// Moves to `pos` steps done; `msg` is shown beside the bar or in the log line.
    pub fn set(&mut self, pos: u64, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            bar.set_message(msg());
        } else if self.log && (self.last_log.elapsed() >= Duration::from_secs(10) || pos == self.total) {
            self.last_log = Instant::now();
            let elapsed = self.started.elapsed().as_secs_f64();
            let eta = if pos > 0 { elapsed / pos as f64 * (self.total - pos) as f64 } else { 0.0 };
            tracing::info!("{} {pos}/{} {} ({elapsed:.0}s, eta {eta:.0}s)", self.label, self.total, msg());
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
