//! Progress on a terminal: spinners for the long steps of a command
//! (building, planning) and bars for what plugins report through the
//! `progress` import (droplets becoming active, uploads). Quiet when stderr is
//! not a terminal — CI logs and pipes get the plain lines only — and under
//! `--json` or `--quiet` (see [`crate::report`]).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars may draw at all. One switch for the process, because the
/// terminal they draw on is one too: [`crate::report::Reporter::stdio`] sets
/// it from `--json` and `--quiet`, and the plugins' bars (made deep in a
/// session, far from any reporter) read it.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Allow (or forbid) spinners and bars from now on.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A spinner for one step; cleared when dropped.
pub struct Spinner(ProgressBar);

impl Spinner {
    /// Spin with `message` while the step runs (hidden unless `out` shows
    /// progress: a terminal, not `--json`, not `--quiet`).
    pub fn start(message: impl Into<String>, out: &crate::report::Reporter) -> Self {
        if !out.shows_progress() {
            return Self(ProgressBar::hidden());
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Bars for the tasks plugins report, one per (plugin, task).
pub struct PluginProgress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Default for PluginProgress {
    fn default() -> Self {
        let multi =
            enabled().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::default(),
        }
    }
}

impl PluginProgress {
    /// `done` of `total` units of `task` for `plugin`; finished bars clear.
    pub fn report(&self, plugin: &str, task: &str, done: u64, total: Option<u64>) {
        let Some(multi) = &self.multi else { return };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let key = (plugin.to_string(), task.to_string());
        let bar = bars.entry(key.clone()).or_insert_with(|| {
            let bar = multi.add(match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            });
            let template = if total.is_some() {
                "{msg} [{bar:30}] {pos}/{len} {elapsed}"
            } else {
                "{spinner} {msg} {pos} {elapsed}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{plugin}: {}", crate::terminal::line(task)));
            bar
        });
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
        if total.is_some_and(|t| done >= t) {
            bar.finish_and_clear();
            bars.remove(&key);
        }
    }
}
