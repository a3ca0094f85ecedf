//! Resource caps a plugin tries to sidestep: memories, tables, body sizes,
//! log bytes, compute between host calls (modes `caps-*`).
//!
//! Extra linear memories and tables cannot be declared from Rust source;
//! `host/tests/all/hostile_caps.rs` builds those cases as components of its own.
//! What Rust can do is here: floods of big log records, huge denied URLs and
//! SSH commands, busy loops that call the host now and then, and many
//! progress tasks.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Deserialize;
use soar_sdk::bindings::soar::plugin::ssh;
use soar_sdk::log::{Level, write};
use soar_sdk::prelude::*;

/// Settings of the `caps-*` modes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// How many records, requests or commands.
    count: u64,
    /// Bytes of each message, URL or command.
    bytes: u64,
    /// Fields of each log record.
    fields: u64,
    /// Where the denied requests and commands go (`https://...`, `host:port`).
    url: String,
    addr: String,
    /// Busy modes: call the host this often (milliseconds)...
    every_ms: u64,
    /// ...and sleep this long on the host each time (`caps-busy-for`).
    sleep_ms: u64,
}

/// Run the `caps` mode `mode`.
pub fn plan(mode: &str, ctx: &Context) -> Result<ChangePlan, PluginError> {
    let s: Settings = ctx.settings()?;
    match mode {
        // `count` records, each a `bytes`-long message with `fields` fields
        // of `bytes`-long keys and values.
        "caps-log-flood" => {
            let text = "y".repeat(s.bytes as usize);
            let fields: Vec<(String, String)> = (0..s.fields)
                .map(|i| (format!("{i}{text}"), text.clone()))
                .collect();
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for i in 0..s.count {
                write(Level::Info, &format!("big {i} {text}"), &fields);
            }
            Ok(notes(format!("logged {}", s.count)))
        }
        // `count` requests to `url` followed by `bytes` of path: the host
        // denies them (the host is not granted), and must not keep them.
        "caps-long-urls" => {
            let mut url = s.url.clone();
            url.push('/');
            url.push_str(&"u".repeat(s.bytes as usize));
            let mut denied = 0;
            for _ in 0..s.count {
                if Request::get(url.as_str()).send().is_err() {
                    denied += 1;
                }
            }
            Ok(notes(format!("denied {denied}")))
        }
        // `count` SSH commands of `bytes` to `addr`, which is not granted.
        "caps-long-ssh" => {
            let (address, port) = s.addr.rsplit_once(':').unwrap_or((&s.addr, "22"));
            let target = ssh::Target {
                address: address.into(),
                port: port.parse().unwrap_or(22),
                user: "root".into(),
            };
            let command = format!("echo {}", "c".repeat(s.bytes as usize));
            let mut denied = 0;
            for _ in 0..s.count {
                if ssh::exec(&target, &command, None).is_err() {
                    denied += 1;
                }
            }
            Ok(notes(format!("denied {denied}")))
        }
        // Compute forever, calling the host every `every_ms`: host calls
        // must not reset the compute budget.
        "caps-busy-logging" => {
            let every = Duration::from_millis(s.every_ms.max(1));
            let mut x: u64 = 0;
            let mut last = Instant::now();
            let mut calls = 0u64;
            loop {
                for _ in 0..10_000 {
                    x = black_box(x.wrapping_add(1));
                }
                if last.elapsed() >= every {
                    calls += 1;
                    write(Level::Info, &format!("still busy {calls}"), &[]);
                    soar_sdk::time::progress("busy", calls, None);
                    last = Instant::now();
                }
            }
        }
        // Compute for `count` ms in total, in `every_ms` slices with a
        // `sleep_ms` sleep on the host after each, then answer: time on the
        // host is not compute.
        "caps-busy-for" => {
            let slice = Duration::from_millis(s.every_ms.max(1));
            let total = Duration::from_millis(s.count);
            let mut spent = Duration::ZERO;
            let mut x: u64 = 0;
            while spent < total {
                let started = Instant::now();
                while started.elapsed() < slice {
                    x = black_box(x.wrapping_add(1));
                }
                spent += started.elapsed();
                soar_sdk::time::sleep(Duration::from_millis(s.sleep_ms));
            }
            Ok(notes(format!("computed {} ms", spent.as_millis())))
        }
        // `count` distinct progress tasks with `bytes`-long names.
        "caps-progress" => {
            let name = "p".repeat(s.bytes as usize);
            for i in 0..s.count {
                soar_sdk::time::progress(&format!("{i} {name}"), 1, Some(2));
            }
            Ok(notes(format!("reported {}", s.count)))
        }
        // `bytes` to stdout and stderr, `count` times.
        "caps-print" => {
            use std::io::Write as _;
            let chunk = vec![b'o'; s.bytes as usize];
            for _ in 0..s.count {
                let _ = std::io::stdout().write_all(&chunk);
                let _ = std::io::stderr().write_all(&chunk);
            }
            Ok(notes(format!("printed {}", s.count)))
        }
        other => Err(PluginError::Other(format!("unknown mode {other:?}"))),
    }
}

fn notes(note: String) -> ChangePlan {
    ChangePlan {
        changes: vec![],
        diagnostics: vec![],
        notes: vec![note],
    }
}
