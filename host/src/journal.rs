//! What plugins did during one command: every brokered request and every log
//! record, in order. The engine persists it into the audit trail; `-v` shows
//! it live through `tracing`. Scrubbed of secrets by the brokers before
//! anything is recorded, and bounded in bytes here, the one point every event
//! passes: each string an event carries (a URL, a command, a message, a
//! field) is clipped, and the whole journal keeps a byte and a count budget,
//! with a smaller share for log records so a log flood cannot crowd out the
//! record of requests. What was clipped or dropped is counted and reported
//! as the journal's last event.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

/// One thing a plugin did or said.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A log record the plugin wrote (or its captured stdout/stderr).
    Log {
        /// The plugin's name.
        plugin: String,
        /// `trace` to `error`; captured stdout is `info`, stderr `warn`.
        level: String,
        /// The message, clipped (stdout and stderr prefixed `[stdout] `,
        /// `[stderr] `).
        message: String,
        /// The record's key-value fields, in the plugin's order.
        fields: Vec<(String, String)>,
    },
    /// A brokered HTTP exchange.
    Http {
        /// The plugin's name.
        plugin: String,
        /// `GET`, `POST`, ...
        method: String,
        /// Scheme, host, port and path; the query is left out.
        url: String,
        /// The final response's status; `None` when no response came (denied,
        /// timed out, connection failed).
        status: Option<u16>,
        /// Tries made, retries included.
        attempts: u32,
        /// Wall-clock time of the whole exchange, retries included.
        millis: u64,
        /// Request body bytes sent.
        sent: u64,
        /// Response body bytes handed to the plugin.
        received: u64,
        /// `ok`, or why it failed or was denied.
        outcome: String,
    },
    /// A brokered SSH command or upload.
    Ssh {
        /// The plugin's name, or `soar` for the rollout's own steps.
        plugin: String,
        /// `user@address:port`.
        host: String,
        /// The command line or upload, clipped; a failure's reason follows in
        /// brackets.
        command: String,
        /// The remote exit status (0 for an upload); `None` when the call
        /// failed before one came.
        exit: Option<i32>,
        /// Wall-clock time of the call.
        millis: u64,
    },
}

/// What one command's journal keeps.
#[derive(Debug, Clone)]
pub struct JournalBounds {
    /// Events kept.
    pub events: usize,
    /// Bytes of events kept (their strings, plus [`EVENT_OVERHEAD`] each).
    pub bytes: usize,
    /// Of those, log events (records, stdout and stderr) kept...
    pub log_events: usize,
    /// ...and their bytes.
    pub log_bytes: usize,
    /// Bytes kept of each short string: URL, command, host, outcome, field.
    pub text_bytes: usize,
    /// Bytes kept of a log message (a call's captured stdout or stderr is
    /// one message of up to `Limits::stdio_bytes`).
    pub message_bytes: usize,
}

impl Default for JournalBounds {
    fn default() -> Self {
        Self {
            events: 100_000,
            bytes: 32 << 20,
            log_events: 50_000,
            log_bytes: 8 << 20,
            text_bytes: 8 << 10,
            message_bytes: 96 << 10,
        }
    }
}

/// Bytes an event is charged beyond its strings.
pub const EVENT_OVERHEAD: usize = 64;

/// The journal of one command.
#[derive(Debug)]
pub struct Journal {
    bounds: JournalBounds,
    kept: Mutex<Kept>,
    warned: AtomicBool,
}

#[derive(Debug, Default)]
struct Kept {
    events: Vec<Event>,
    bytes: usize,
    log_events: usize,
    log_bytes: usize,
    dropped: u64,
    dropped_bytes: u64,
    clipped: u64,
    clipped_bytes: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_bounds(JournalBounds::default())
    }
}

/// Clip `s` to `max` bytes in place; the bytes clipped.
fn clip_in_place(s: &mut String, max: usize) -> u64 {
    if s.len() <= max {
        return 0;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let clipped = s.len() - end;
    // A fresh, small string: the long one is freed, not kept as capacity.
    *s = format!("{}…[{clipped} more bytes clipped]", &s[..end]);
    clipped as u64
}

impl Event {
    /// Clip every string to the bounds; the bytes and strings clipped.
    fn clip(&mut self, b: &JournalBounds) -> (u64, u64) {
        let mut bytes = 0;
        let mut strings = 0;
        let mut one = |s: &mut String, max: usize| {
            let n = clip_in_place(s, max);
            bytes += n;
            strings += (n > 0) as u64;
        };
        match self {
            Event::Log {
                plugin,
                level,
                message,
                fields,
            } => {
                one(plugin, b.text_bytes);
                one(level, b.text_bytes);
                one(message, b.message_bytes);
                for (k, v) in fields {
                    one(k, b.text_bytes);
                    one(v, b.text_bytes);
                }
            }
            Event::Http {
                plugin,
                method,
                url,
                outcome,
                ..
            } => {
                one(plugin, b.text_bytes);
                one(method, b.text_bytes);
                one(url, b.text_bytes);
                one(outcome, b.text_bytes);
            }
            Event::Ssh {
                plugin,
                host,
                command,
                ..
            } => {
                one(plugin, b.text_bytes);
                one(host, b.text_bytes);
                one(command, b.text_bytes);
            }
        }
        (bytes, strings)
    }

    /// Bytes the journal charges for this event.
    fn size(&self) -> usize {
        EVENT_OVERHEAD
            + match self {
                Event::Log {
                    plugin,
                    level,
                    message,
                    fields,
                } => {
                    plugin.len()
                        + level.len()
                        + message.len()
                        + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                }
                Event::Http {
                    plugin,
                    method,
                    url,
                    outcome,
                    ..
                } => plugin.len() + method.len() + url.len() + outcome.len(),
                Event::Ssh {
                    plugin,
                    host,
                    command,
                    ..
                } => plugin.len() + host.len() + command.len(),
            }
    }
}

impl Journal {
    /// A journal that keeps at most `cap` events (and the default bytes).
    pub fn with_capacity(cap: usize) -> Self {
        Self::with_bounds(JournalBounds {
            events: cap,
            log_events: cap,
            ..JournalBounds::default()
        })
    }

    /// A journal that keeps what `bounds` allow.
    pub fn with_bounds(bounds: JournalBounds) -> Self {
        Self {
            bounds,
            kept: Mutex::default(),
            warned: AtomicBool::new(false),
        }
    }

    /// Record an event: its strings clipped to the bounds, and the event
    /// dropped (and counted) past the journal's budgets.
    pub fn record(&self, mut event: Event) {
        let (clipped_bytes, clipped) = event.clip(&self.bounds);
        match &event {
            Event::Log {
                plugin,
                level,
                message,
                fields,
            } => {
                // A plugin's own fields follow its message as `key=value`;
                // its info and louder records show at -v, the rest at -vv.
                let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
                if matches!(level.as_str(), "info" | "warn" | "error") {
                    tracing::info!(target: "soar::plugin", plugin = %plugin, level = %level, "{message}{fields}")
                } else {
                    tracing::debug!(target: "soar::plugin", plugin = %plugin, level = %level, "{message}{fields}")
                }
            }
            Event::Http {
                plugin,
                method,
                url,
                status,
                outcome,
                millis,
                ..
            } => {
                tracing::debug!(target: "soar::http", plugin = %plugin, status = ?status, millis, "{method} {url}: {outcome}")
            }
            Event::Ssh {
                plugin,
                host,
                command,
                exit,
                ..
            } => {
                tracing::debug!(target: "soar::ssh", plugin = %plugin, host = %host, exit = ?exit, "{command}")
            }
        }
        let size = event.size();
        let is_log = matches!(event, Event::Log { .. });
        let b = &self.bounds;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.clipped += clipped;
        kept.clipped_bytes += clipped_bytes;
        let fits = kept.events.len() < b.events
            && kept.bytes + size <= b.bytes
            && (!is_log
                || (kept.log_events < b.log_events && kept.log_bytes + size <= b.log_bytes));
        if fits {
            kept.bytes += size;
            if is_log {
                kept.log_events += 1;
                kept.log_bytes += size;
            }
            kept.events.push(event);
        } else {
            kept.dropped += 1;
            kept.dropped_bytes += size as u64;
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "soar::journal",
                    "the journal of this command is full ({} events, {} bytes): further plugin events are counted, not kept",
                    kept.events.len(),
                    kept.bytes
                );
            }
        }
    }

    /// A copy of everything recorded so far; when anything was clipped or
    /// dropped, a last event (from `soar`) says how much.
    pub fn events(&self) -> Vec<Event> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut events = kept.events.clone();
        if let Some(summary) = self.summary_of(&kept) {
            events.push(Event::Log {
                plugin: "soar".into(),
                level: "warn".into(),
                message: summary,
                fields: vec![],
            });
        }
        events
    }

    /// How many events were dropped past the budgets.
    pub fn dropped(&self) -> u64 {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).dropped
    }

    /// How many strings were clipped to their byte bound.
    pub fn clipped(&self) -> u64 {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clipped
    }

    /// Bytes the kept events are charged (bounded by `JournalBounds::bytes`).
    pub fn bytes(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// What was clipped or dropped, in words; `None` when nothing was.
    pub fn summary(&self) -> Option<String> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        self.summary_of(&kept)
    }

    fn summary_of(&self, kept: &Kept) -> Option<String> {
        if kept.dropped == 0 && kept.clipped == 0 {
            return None;
        }
        let b = &self.bounds;
        Some(format!(
            "journal bounded: {} events ({} bytes) dropped, {} strings clipped by {} bytes; a command keeps {} events and {} bytes ({} log events and {} bytes of them), strings of {} bytes and log messages of {}",
            kept.dropped,
            kept.dropped_bytes,
            kept.clipped,
            kept.clipped_bytes,
            b.events,
            b.bytes,
            b.log_events,
            b.log_bytes,
            b.text_bytes,
            b.message_bytes
        ))
    }
}

/// Milliseconds of a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: String) -> Event {
        Event::Http {
            plugin: "p".into(),
            method: "GET".into(),
            url,
            status: None,
            attempts: 0,
            millis: 0,
            sent: 0,
            received: 0,
            outcome: "denied".into(),
        }
    }

    fn log(message: String) -> Event {
        Event::Log {
            plugin: "p".into(),
            level: "info".into(),
            message,
            fields: vec![("k".into(), "é".repeat(10_000))],
        }
    }

    #[test]
    fn long_strings_are_clipped_and_counted() {
        let j = Journal::default();
        j.record(http(format!("https://x.example/{}", "a".repeat(32 << 20))));
        let events = j.events();
        let Event::Http { url, .. } = &events[0] else {
            panic!("{events:?}")
        };
        assert!(url.len() < 9 << 10, "{}", url.len());
        assert!(url.ends_with("more bytes clipped]"), "{url}");
        j.record(log("m".repeat(1 << 20)));
        let Event::Log {
            message, fields, ..
        } = &j.events()[1]
        else {
            panic!()
        };
        assert!(message.len() < 97 << 10);
        // Cut on a char boundary.
        assert!(fields[0].1.len() <= (8 << 10) + 40);
        assert_eq!(j.clipped(), 3);
        assert!(j.bytes() < 120 << 10, "{}", j.bytes());
        assert!(matches!(
            j.events().last(),
            Some(Event::Log { plugin, message, .. }) if plugin == "soar" && message.contains("3 strings clipped")
        ));
    }

    #[test]
    fn log_events_cannot_crowd_out_requests() {
        let j = Journal::with_bounds(JournalBounds {
            events: 100,
            bytes: 1 << 20,
            log_events: 10,
            log_bytes: 4 << 10,
            text_bytes: 1024,
            message_bytes: 1024,
        });
        for _ in 0..1000 {
            j.record(log("x".repeat(500)));
        }
        for i in 0..50 {
            j.record(http(format!("https://api.example/{i}")));
        }
        let events = j.events();
        let logs = events
            .iter()
            .filter(|e| matches!(e, Event::Log { plugin, .. } if plugin == "p"))
            .count();
        let https = events
            .iter()
            .filter(|e| matches!(e, Event::Http { .. }))
            .count();
        assert!(logs <= 4, "{logs} log events kept");
        assert_eq!(https, 50);
        assert_eq!(j.dropped(), 1000 - logs as u64);
        assert!(j.summary().unwrap().contains("events"));
    }

    #[test]
    fn the_byte_budget_holds() {
        let j = Journal::with_bounds(JournalBounds {
            bytes: 64 << 10,
            ..JournalBounds::default()
        });
        for _ in 0..100 {
            j.record(http("u".repeat(100 << 10)));
        }
        assert!(j.bytes() <= 64 << 10);
        assert!(j.dropped() > 80);
    }
}
