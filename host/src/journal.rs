//! What plugins did during one command: every brokered request and every log
//! record, in order. The engine persists it into the audit trail; `-v` shows
//! it live through `tracing`. Bounded, and scrubbed of secrets by the brokers
//! before anything is recorded.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// One thing a plugin did or said.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A log record the plugin wrote (or its captured stdout/stderr).
    Log {
        plugin: String,
        level: String,
        message: String,
        fields: Vec<(String, String)>,
    },
    /// A brokered HTTP exchange.
    Http {
        plugin: String,
        method: String,
        /// Scheme, host, port and path; the query is left out.
        url: String,
        status: Option<u16>,
        attempts: u32,
        millis: u64,
        sent: u64,
        received: u64,
        /// `ok`, or why it failed or was denied.
        outcome: String,
    },
    /// A brokered SSH command or upload.
    Ssh {
        plugin: String,
        host: String,
        command: String,
        exit: Option<i32>,
        millis: u64,
    },
}

/// The journal of one command.
#[derive(Debug)]
pub struct Journal {
    events: Mutex<Vec<Event>>,
    cap: usize,
    dropped: Mutex<u64>,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl Journal {
    /// A journal that keeps at most `cap` events.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            events: Mutex::default(),
            cap,
            dropped: Mutex::default(),
        }
    }

    /// Record an event (dropped, and counted, past the cap).
    pub fn record(&self, event: Event) {
        match &event {
            Event::Log {
                plugin,
                level,
                message,
                ..
            } => {
                tracing::debug!(target: "soar::plugin", plugin = %plugin, level = %level, "{message}")
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
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() < self.cap {
            events.push(event);
        } else {
            *self.dropped.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
    }

    /// A copy of everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many events were dropped past the cap.
    pub fn dropped(&self) -> u64 {
        *self.dropped.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds of a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
