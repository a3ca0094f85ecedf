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

/// Bytes of a fleet's uploads, per host and in all: what the upload bars
/// show, kept apart from drawing so the arithmetic is tested on its own.
///
/// A host's total grows as its files begin (the rollout may announce the
/// whole release up front with [`Tally::plan`], so the bar's length is right
/// from the start) and shrinks by the files the host already had. A fleet
/// is every upload from the first to begin while nothing was open until
/// the last one open ends; the next upload after that starts a new tally.
#[derive(Debug, Default)]
pub struct Tally {
    hosts: Vec<HostTally>,
}

/// One host's line of a [`Tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTally {
    /// The host as the transport names it (`ssh deploy@203.0.113.4:22`).
    pub host: String,
    /// Bytes written to the host's SSH channel so far.
    pub sent: u64,
    /// Bytes this host's uploads will send, as far as known.
    pub total: u64,
    /// Of `total`, bytes announced by a plan and not yet claimed by a file.
    planned: u64,
    /// Plans and files still open for this host.
    open: usize,
}

impl Tally {
    /// The host's index, a new line when the host has none; a tally with
    /// nothing open starts over first.
    fn line(&mut self, host: &str) -> usize {
        if self.hosts.iter().all(|h| h.open == 0) {
            self.hosts.clear();
        }
        match self.hosts.iter().position(|h| h.host == host) {
            Some(i) => i,
            None => {
                self.hosts.push(HostTally {
                    host: host.to_string(),
                    ..HostTally::default()
                });
                self.hosts.len() - 1
            }
        }
    }

    /// `bytes` will go to `host` in files that begin later (one release);
    /// open until [`Tally::end`].
    pub fn plan(&mut self, host: &str, bytes: u64) -> usize {
        let i = self.line(host);
        let h = &mut self.hosts[i];
        h.total += bytes;
        h.planned += bytes;
        h.open += 1;
        i
    }

    /// A file of `bytes` to `host` begins: it counts against the host's plan
    /// where there is one, else it adds to the total. Open until
    /// [`Tally::end`].
    pub fn begin(&mut self, host: &str, bytes: u64) -> usize {
        let i = self.line(host);
        let h = &mut self.hosts[i];
        let claimed = bytes.min(h.planned);
        h.planned -= claimed;
        h.total += bytes - claimed;
        h.open += 1;
        i
    }

    /// `n` more bytes were written to host `i`'s channel.
    pub fn sent(&mut self, i: usize, n: u64) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.sent += n;
        }
    }

    /// A file of `bytes` to host `i` was not sent: the host had it.
    pub fn skipped(&mut self, i: usize, bytes: u64) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.total = h.total.saturating_sub(bytes);
        }
    }

    /// A plan or a file of host `i` ended; whether the host has nothing
    /// open any more. A plan's unclaimed bytes leave the total then.
    pub fn end(&mut self, i: usize) -> bool {
        let Some(h) = self.hosts.get_mut(i) else {
            return true;
        };
        h.open = h.open.saturating_sub(1);
        if h.open == 0 {
            h.total = h.total.saturating_sub(h.planned).max(h.sent);
            h.planned = 0;
        }
        h.open == 0
    }

    /// Host `i`'s line.
    pub fn host(&self, i: usize) -> Option<&HostTally> {
        self.hosts.get(i)
    }

    /// `(sent, total)` over every host of the fleet.
    pub fn all(&self) -> (u64, u64) {
        self.hosts
            .iter()
            .fold((0, 0), |(s, t), h| (s + h.sent, t + h.total))
    }

    /// Hosts in the fleet.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Whether nothing is open (the fleet's uploads are over).
    pub fn idle(&self) -> bool {
        self.hosts.iter().all(|h| h.open == 0)
    }
}

/// The upload bars of this process: a bar per host (bytes sent of its
/// total, and the rate) and, once a second host uploads, one for the whole
/// fleet. Process-wide, like [`set_enabled`]: uploads happen deep in a
/// rollout's per-host tasks, and the terminal they draw on is one.
pub struct Uploads {
    state: Mutex<UploadState>,
}

#[derive(Default)]
struct UploadState {
    tally: Tally,
    /// Where this fleet's bars draw; `None` when bars are off.
    multi: Option<MultiProgress>,
    /// Per host line of the tally, its bar once it sent a byte.
    bars: HashMap<usize, ProgressBar>,
    total: Option<ProgressBar>,
}

/// The process's [`Uploads`].
pub fn uploads() -> &'static Uploads {
    static UPLOADS: std::sync::OnceLock<Uploads> = std::sync::OnceLock::new();
    UPLOADS.get_or_init(|| Uploads {
        state: Mutex::default(),
    })
}

/// Run `print` with the upload bars (when any draw) cleared, then draw them
/// again below what it printed: a host's "✓ healthy" line, written while
/// other hosts still upload, lands above the bars instead of inside them.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    // Cloned out so the tally's lock is not held while printing.
    let multi = uploads().lock().multi.clone();
    match multi {
        Some(m) => m.suspend(print),
        None => print(),
    }
}

/// One open plan or file of [`Uploads`]; ends when dropped.
pub struct Upload {
    uploads: &'static Uploads,
    line: usize,
}

fn byte_bar(len: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, UploadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new fleet decides once whether it draws.
    fn open(&'static self, open: impl FnOnce(&mut Tally) -> usize) -> Upload {
        let mut s = self.lock();
        if s.tally.idle() {
            s.bars.clear();
            s.total = None;
            s.multi =
                enabled().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        }
        let line = open(&mut s.tally);
        Upload {
            uploads: self,
            line,
        }
    }

    /// `bytes` of one release will go to `host` in files that begin while
    /// the returned plan is open (the rollout knows the release's size
    /// before its first file).
    pub fn plan(&'static self, host: &str, bytes: u64) -> Upload {
        self.open(|t| t.plan(host, bytes))
    }

    /// A file of `bytes` to `host` begins.
    pub fn begin(&'static self, host: &str, bytes: u64) -> Upload {
        self.open(|t| t.begin(host, bytes))
    }
}

impl UploadState {
    /// Bring host `line`'s bar and the fleet's up to date with the tally.
    fn draw(&mut self, line: usize) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        let Some(h) = self.tally.host(line).cloned() else {
            return;
        };
        if h.sent > 0 || self.bars.contains_key(&line) {
            let bar = self.bars.entry(line).or_insert_with(|| {
                multi.add(byte_bar(
                    h.total,
                    crate::terminal::line(&h.host).into_owned(),
                ))
            });
            bar.set_length(h.total.max(h.sent));
            bar.set_position(h.sent);
        }
        if self.bars.len() > 1 {
            let (sent, total) = self.tally.all();
            let hosts = self.tally.hosts();
            let bar = self.total.get_or_insert_with(|| {
                let bar = multi.add(byte_bar(total, String::new()));
                // The rate counts from here, not from the bytes before.
                bar.set_position(sent);
                bar.reset_eta();
                bar
            });
            bar.set_message(format!("all {hosts} hosts"));
            bar.set_length(total.max(sent));
            bar.set_position(sent);
        }
    }
}

impl Upload {
    /// `n` more bytes were written to the host's SSH channel.
    pub fn sent(&self, n: u64) {
        let mut s = self.uploads.lock();
        s.tally.sent(self.line, n);
        s.draw(self.line);
    }

    /// The file of `bytes` was not sent: the host already had it.
    pub fn skipped(&self, bytes: u64) {
        let mut s = self.uploads.lock();
        s.tally.skipped(self.line, bytes);
        s.draw(self.line);
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let mut s = self.uploads.lock();
        let host_done = s.tally.end(self.line);
        s.draw(self.line);
        if host_done && let Some(bar) = s.bars.get(&self.line) {
            bar.finish();
        }
        if s.tally.idle() {
            if let Some(bar) = &s.total {
                bar.finish();
            }
            // indicatif leaves the cursor after the last bar: the lines that
            // follow (each host's outcome) start on a line of their own.
            if s.multi.is_some() && !s.bars.is_empty() {
                eprintln!();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn a_host_counts_what_it_was_sent_against_its_plan() {
        let mut t = Tally::default();
        let plan = t.plan("ssh a", 300);
        let f1 = t.begin("ssh a", 100);
        t.sent(f1, 60);
        t.sent(f1, 40);
        assert!(!t.end(f1), "the plan is still open");
        let f2 = t.begin("ssh a", 200);
        t.sent(f2, 200);
        t.end(f2);
        let h = t.host(plan).unwrap();
        assert_eq!((h.sent, h.total), (300, 300));
        assert!(t.end(plan));
        assert!(t.idle());
    }

    #[test]
    fn files_beyond_a_plan_and_skipped_files_change_the_total() {
        let mut t = Tally::default();
        let plan = t.plan("ssh a", 100);
        // A file larger than what is left of the plan adds the rest.
        let f = t.begin("ssh a", 150);
        t.sent(f, 150);
        t.end(f);
        assert_eq!(t.host(plan).unwrap().total, 150);
        // A file the host already had leaves the total.
        let g = t.begin("ssh a", 50);
        t.skipped(g, 50);
        t.end(g);
        assert_eq!(t.host(plan).unwrap().total, 150);
        t.end(plan);
        // Ending a plan drops what was planned but never claimed, and the
        // total is never below what was sent.
        assert_eq!(t.all(), (150, 150));
    }

    #[test]
    fn a_fleet_sums_its_hosts_and_the_next_one_starts_over() {
        let mut t = Tally::default();
        let a = t.begin("ssh a", 1000);
        let b = t.begin("ssh b", 2000);
        t.sent(a, 1000);
        t.sent(b, 500);
        assert_eq!(t.all(), (1500, 3000));
        assert_eq!(t.hosts(), 2);
        assert!(t.end(a));
        assert!(!t.idle());
        t.sent(b, 1500);
        t.end(b);
        assert!(t.idle());
        assert_eq!(t.all(), (3000, 3000));
        // Everything ended: the next upload is a new fleet of one host.
        let c = t.begin("ssh c", 10);
        assert_eq!((t.hosts(), t.all()), (1, (0, 10)));
        t.end(c);
    }

    #[test]
    fn the_same_host_twice_in_a_fleet_is_one_line() {
        let mut t = Tally::default();
        let a = t.begin("ssh a", 10);
        let b = t.begin("ssh b", 10);
        let a2 = t.begin("ssh a", 5);
        assert_eq!(a, a2);
        t.sent(a, 10);
        t.sent(a2, 5);
        assert_eq!(t.host(a).unwrap().sent, 15);
        assert_eq!(t.host(a).unwrap().total, 15);
        for i in [a, b, a2] {
            t.end(i);
        }
    }
}
