//! The one path from a command to the user: a [`Reporter`], modelled on
//! cargo's `Shell`.
//!
//! Every command writes through it instead of `println!`, so three choices
//! are made once, here, instead of at each call site:
//!
//! - the format: text for people, or `--json`, where stdout carries one
//!   [`Event`] per line (NDJSON) and nothing else, errors included;
//! - colour: `--color auto|always|never`; `auto` colours a terminal unless
//!   `NO_COLOR` is set (<https://no-color.org>);
//! - `--quiet`: progress lines and notes for people are dropped; the data a
//!   command was asked for, warnings and errors never are. `--json` output
//!   is the whole event stream either way (a program filters by `type`).
//!
//! Where each kind of output goes, by method:
//!
//! | method        | people (stream, dropped by `--quiet`?) | `--json`              |
//! |---------------|----------------------------------------|-----------------------|
//! | [`result`]    | stdout, never dropped                  | the event             |
//! | [`print`]     | stdout as given, never dropped         | nothing               |
//! | [`message`]   | stdout, dropped                        | nothing               |
//! | [`status`]    | stderr, dropped                        | the event             |
//! | [`note`]      | stderr, dropped                        | nothing               |
//! | [`emit`]      | nothing                                | the event             |
//! | [`warn`]      | stderr `warning: …`                    | a `warning` event     |
//! | [`error`]     | stderr `error: …`                      | an `error` event      |
//!
//! Text may quote a plugin, so every human line passes through
//! [`crate::terminal::text`] (callers escape single-line values with
//! [`crate::terminal::line`] first; escaping twice changes nothing), and
//! every event through [`crate::terminal::json`].
//!
//! [`result`]: Reporter::result
//! [`print`]: Reporter::print
//! [`message`]: Reporter::message
//! [`status`]: Reporter::status
//! [`note`]: Reporter::note
//! [`emit`]: Reporter::emit
//! [`warn`]: Reporter::warn
//! [`error`]: Reporter::error

mod event;
pub mod progress;

use std::ffi::OsStr;
use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Mutex, MutexGuard};

pub use event::Event;

/// `v` as the JSON value an [`Event`] field carries. The engine's types
/// (changes, records) are plain data — strings, numbers, maps keyed by
/// strings — whose serialization cannot fail; `null` if one ever did.
pub fn value<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// When to colour the output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always colour, even a pipe (and whatever `NO_COLOR` says).
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream, given whether it is a terminal and the
    /// value of `NO_COLOR` (set and non-empty: no colour).
    pub fn colors(self, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(OsStr::is_empty),
        }
    }

    /// [`Self::colors`] for this process's stderr.
    pub fn colors_stderr(self) -> bool {
        self.colors(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }
}

/// How a command's output is shown; from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// `--json`: events on stdout.
    pub json: bool,
    /// `--color`.
    pub color: ColorChoice,
    /// `--quiet`: no progress, no notes.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
}

type Sink = Mutex<Box<dyn Write + Send>>;

struct Inner {
    settings: Settings,
    /// Whether stderr (where `warning:` and `error:` go) is coloured.
    color: bool,
    /// Whether spinners and bars may draw on stderr.
    progress: bool,
    stdout: Sink,
    stderr: Sink,
}

/// Where a command's output goes; cheap to clone (one shared writer pair).
#[derive(Clone)]
pub struct Reporter(Arc<Inner>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

/// What a [`Reporter::buffered`] reporter wrote, for tests.
#[derive(Clone, Default)]
pub struct Captured {
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout)).into_owned()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A poisoned lock only means another thread panicked mid-line: keep going.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const RED_BOLD: &str = "\x1b[1;31m";
const YELLOW_BOLD: &str = "\x1b[1;33m";
const RESET: &str = "\x1b[0m";

impl Reporter {
    /// The process's stdout and stderr.
    pub fn stdio(settings: Settings) -> Self {
        let progress = !settings.json && !settings.quiet && std::io::stderr().is_terminal();
        crate::report::progress::set_enabled(progress);
        Self(Arc::new(Inner {
            settings,
            color: settings.color.colors_stderr(),
            progress,
            stdout: Mutex::new(Box::new(std::io::stdout())),
            stderr: Mutex::new(Box::new(std::io::stderr())),
        }))
    }

    /// Writing into buffers instead (for tests), never coloured unless
    /// `--color always`, never drawing progress.
    pub fn buffered(settings: Settings) -> (Self, Captured) {
        let captured = Captured::default();
        let reporter = Self(Arc::new(Inner {
            settings,
            color: settings.color == ColorChoice::Always,
            progress: false,
            stdout: Mutex::new(Box::new(SharedBuf(captured.stdout.clone()))),
            stderr: Mutex::new(Box::new(SharedBuf(captured.stderr.clone()))),
        }));
        (reporter, captured)
    }

    /// Whether stdout carries [`Event`]s (`--json`).
    pub fn is_json(&self) -> bool {
        self.0.settings.json
    }

    /// Whether progress and notes for people are dropped (`--quiet`).
    pub fn is_quiet(&self) -> bool {
        self.0.settings.quiet
    }

    /// The `-v` count.
    pub fn verbosity(&self) -> u8 {
        self.0.settings.verbose
    }

    /// Whether a spinner or progress bar may draw (people, not quiet, and
    /// stderr is a terminal).
    pub fn shows_progress(&self) -> bool {
        self.0.progress
    }

    /// The data the command was asked for: `event` in `--json`, else `text`
    /// and a line break on stdout.
    pub fn result(&self, event: &Event<'_>, text: impl FnOnce() -> String) {
        if self.is_json() {
            self.emit(event);
        } else {
            self.write_out(&format!("{}\n", text()));
        }
    }

    /// Text that is the command's data, printed exactly (no line break
    /// added) for people; `--json` prints the matching events instead.
    pub fn print(&self, text: &str) {
        if !self.is_json() {
            self.write_out(text);
        }
    }

    /// The user's own service's output (`soar logs`), shown exactly as the
    /// service wrote it — colours, tabs and all — as `journalctl` or `tail`
    /// would. Never for text a plugin supplied.
    pub fn print_raw(&self, text: &str) {
        if !self.is_json() {
            let mut out = lock(&self.0.stdout);
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    /// A sentence for people on stdout (what was written, what to do next);
    /// dropped by `--quiet` and in `--json`.
    pub fn message(&self, text: impl FnOnce() -> String) {
        if !self.is_json() && !self.is_quiet() {
            self.write_out(&format!("{}\n", text()));
        }
    }

    /// Progress: `text` on stderr for people (dropped by `--quiet`), `event`
    /// in `--json`.
    pub fn status(&self, event: &Event<'_>, text: impl FnOnce() -> String) {
        if self.is_json() {
            self.emit(event);
        } else {
            self.note(text);
        }
    }

    /// Progress for people only, on stderr; dropped by `--quiet` and in
    /// `--json` (where an event says the same).
    pub fn note(&self, text: impl FnOnce() -> String) {
        if !self.is_json() && !self.is_quiet() {
            self.write_err(&format!("{}\n", crate::terminal::text(&text())));
        }
    }

    /// `event` in `--json`; nothing for people (who were shown it another
    /// way, e.g. a plan drawn as text).
    pub fn emit(&self, event: &Event<'_>) {
        if self.is_json() {
            let line = crate::terminal::json(event);
            let mut out = lock(&self.0.stdout);
            // A closed stdout (`soar ... | head`) is not an error of the command.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// A problem the command goes on after: `warning: message` on stderr, a
    /// `warning` event in `--json`. Never dropped by `--quiet`.
    pub fn warn(&self, message: &str) {
        if self.is_json() {
            self.emit(&Event::Warning { message });
        } else {
            let prefix = self.paint(YELLOW_BOLD, "warning");
            self.write_err(&format!("{prefix}: {}\n", crate::terminal::text(message)));
        }
    }

    /// The error that ends the command: `error: ` and its chain on stderr,
    /// or an `error` event on stdout in `--json`.
    pub fn error(&self, e: &anyhow::Error) {
        self.failure(e, None);
    }

    /// [`Reporter::error`] with the caller's verdict on whether running the
    /// command again later may pass: the `error` event's `transient`.
    pub fn failure(&self, e: &anyhow::Error, transient: Option<&'static str>) {
        if self.is_json() {
            self.emit(&Event::failure(e, transient));
        } else {
            // The chain may quote a plugin (its error, its diagnostics, its
            // stderr): escape what would act on the terminal, keep the
            // host's own line breaks.
            let prefix = self.paint(RED_BOLD, "error");
            self.write_err(&format!(
                "{prefix}: {}\n",
                crate::terminal::text(&format!("{e:#}"))
            ));
        }
    }

    /// A question on the terminal, without a line break: on stdout for
    /// people, on stderr in `--json` (stdout holds only events).
    pub fn prompt(&self, question: &str) -> std::io::Result<()> {
        let text = crate::terminal::text(question);
        let sink = if self.is_json() {
            &self.0.stderr
        } else {
            &self.0.stdout
        };
        let mut w = lock(sink);
        write!(w, "{text}")?;
        w.flush()
    }

    /// Like [`Self::prompt`], always on stderr (a question that is not part
    /// of the command's output).
    pub fn prompt_stderr(&self, question: &str) -> std::io::Result<()> {
        let mut w = lock(&self.0.stderr);
        write!(w, "{}", crate::terminal::text(question))?;
        w.flush()
    }

    /// A line for people on stderr that `--quiet` does not drop and `--json`
    /// keeps off stdout (e.g. the lock file a command changed as a side
    /// effect).
    pub fn notice(&self, text: &str) {
        self.write_err(&format!("{}\n", crate::terminal::text(text)));
    }

    fn paint(&self, style: &str, word: &str) -> String {
        if self.0.color {
            format!("{style}{word}{RESET}")
        } else {
            word.to_string()
        }
    }

    fn write_out(&self, text: &str) {
        let text = crate::terminal::text(text);
        progress::suspend(|| {
            let mut out = lock(&self.0.stdout);
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        });
    }

    fn write_err(&self, text: &str) {
        progress::suspend(|| {
            let mut err = lock(&self.0.stderr);
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human() -> (Reporter, Captured) {
        Reporter::buffered(Settings::default())
    }

    fn json() -> (Reporter, Captured) {
        Reporter::buffered(Settings {
            json: true,
            ..Settings::default()
        })
    }

    fn quiet() -> (Reporter, Captured) {
        Reporter::buffered(Settings {
            quiet: true,
            ..Settings::default()
        })
    }

    const DESTROYED: Event<'static> = Event::Destroyed { env: "prod" };

    #[test]
    fn people_get_data_on_stdout_and_progress_on_stderr() {
        let (r, c) = human();
        r.status(&DESTROYED, || "working".into());
        r.result(&DESTROYED, || "done".into());
        r.message(|| "next: soar status".into());
        r.emit(&DESTROYED);
        assert_eq!(c.stdout(), "done\nnext: soar status\n");
        assert_eq!(c.stderr(), "working\n");
    }

    #[test]
    fn json_mode_prints_only_events_on_stdout() {
        let (r, c) = json();
        r.status(&DESTROYED, || "working".into());
        r.result(&DESTROYED, || "done".into());
        r.message(|| "next".into());
        r.print("plan text\n");
        r.warn("careful");
        r.error(&anyhow::anyhow!("bad").context("deploying"));
        let lines: Vec<serde_json::Value> = c
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["destroyed", "destroyed", "warning", "error"]);
        assert_eq!(lines[3]["message"], "deploying");
        assert_eq!(lines[3]["causes"][0], "bad");
        assert_eq!(c.stderr(), "");
    }

    #[test]
    fn quiet_drops_progress_and_notes_but_never_data_warnings_or_errors() {
        let (r, c) = quiet();
        r.status(&DESTROYED, || "working".into());
        r.message(|| "next".into());
        r.result(&DESTROYED, || "done".into());
        r.warn("careful");
        r.error(&anyhow::anyhow!("bad"));
        assert_eq!(c.stdout(), "done\n");
        assert_eq!(c.stderr(), "warning: careful\nerror: bad\n");

        // A program reading --json gets every event; it filters by type.
        let (r, c) = Reporter::buffered(Settings {
            json: true,
            quiet: true,
            ..Settings::default()
        });
        r.status(&DESTROYED, || "working".into());
        r.error(&anyhow::anyhow!("bad"));
        assert_eq!(c.stdout().lines().count(), 2, "{}", c.stdout());
    }

    #[test]
    fn plugin_text_cannot_drive_the_terminal_in_any_mode() {
        let (r, c) = human();
        r.status(&DESTROYED, || "a\x1b[2Kb\nc".into());
        r.warn("w\u{9b}31m");
        r.error(&anyhow::anyhow!("e\x1b]0;title\x07"));
        r.result(&DESTROYED, || "\u{202e}x".into());
        for s in [c.stdout(), c.stderr()] {
            assert!(
                !s.chars()
                    .any(|ch| crate::terminal::is_unsafe(ch) && ch != '\n'),
                "{s:?}"
            );
        }
        let (r, c) = json();
        r.warn("w\u{9b}\u{202e}");
        assert!(
            !c.stdout()
                .chars()
                .any(|ch| crate::terminal::is_unsafe(ch) && ch != '\n')
        );
    }

    #[test]
    fn colour_follows_the_choice_the_terminal_and_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(ColorChoice::Auto.colors(true, None));
        assert!(
            ColorChoice::Auto.colors(true, empty),
            "an empty NO_COLOR is unset"
        );
        assert!(!ColorChoice::Auto.colors(true, set));
        assert!(!ColorChoice::Auto.colors(false, None));
        assert!(ColorChoice::Always.colors(false, set));
        assert!(!ColorChoice::Never.colors(true, None));

        let (r, c) = Reporter::buffered(Settings {
            color: ColorChoice::Always,
            ..Settings::default()
        });
        r.error(&anyhow::anyhow!("bad \x1b[31m"));
        assert_eq!(c.stderr(), "\x1b[1;31merror\x1b[0m: bad \\x1b[31m\n");
    }
}
