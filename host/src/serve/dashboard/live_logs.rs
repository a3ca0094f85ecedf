//! An environment's logs as they are written, as Server-Sent Events: the
//! CLI's own `soar logs -f --json` run as a child of the server (so the
//! server follows exactly what the command follows: the local log file,
//! every SSH host's journal or log file, a container's `docker logs`), its
//! lines passed on one event each.
//!
//! Events:
//! - `start`, once, first: what follows begins with the backlog (the last
//!   lines), so a client that reconnects replaces what it shows rather
//!   than appending the backlog twice.
//! - `line`: `{"host": ..., "line": ...}`, one line of the service's
//!   output. The text is the service's, untrusted: it travels as a JSON
//!   string and the page sets it with `textContent`.
//! - `end`: `{"error": ...}` when the follow stopped by itself (the
//!   command failed; `error` is its last line of stderr, or null). A
//!   follow that reached [`MAX_FOLLOW`] ends without it, so an
//!   `EventSource` reconnects.
//!
//! A follow costs a process and, for SSH environments, a connection per
//! host, so at most [`MAX_FOLLOWERS`] run at once (the next gets 429).
//! When the client goes away its stream is dropped, and with it the child
//! (`kill_on_drop`); keep-alive comments every few seconds make a vanished
//! client noticed even while the service is quiet.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::serve::error::ApiError;

/// Most follows running at once on this server.
pub const MAX_FOLLOWERS: usize = 8;
/// How long one follow lasts before its stream ends (an `EventSource`
/// then reconnects), so a forgotten page does not hold a slot for ever.
pub const MAX_FOLLOW: Duration = Duration::from_secs(30 * 60);
/// Lines of backlog the dashboard asks for.
pub const BACKLOG: usize = 100;
/// Longest line passed on; the rest of a longer one is cut.
const MAX_LINE: usize = 16 * 1024;
/// How much of the command's stderr is kept for the `end` event.
const MAX_STDERR: usize = 8 * 1024;
/// How often a quiet stream sends a comment (to find a closed client).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

static FOLLOWERS: Semaphore = Semaphore::const_new(MAX_FOLLOWERS);

/// One running follow: the child, its output, and the slot it holds.
struct Tail {
    child: Child,
    out: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    until: Instant,
    started: bool,
    done: bool,
    _slot: SemaphorePermit<'static>,
}

/// Follow environment `env` of the project at `root` (already authorized
/// by the caller), starting with its last `backlog` lines: an event stream
/// as described in the module docs.
pub async fn stream(root: &Path, env: &str, backlog: usize) -> Result<Response, ApiError> {
    let slot = FOLLOWERS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_FOLLOWERS} log follows run on this server already"),
            "close another page that follows logs, or retry in a moment",
        )
    })?;
    let exe = std::env::current_exe().map_err(anyhow::Error::from)?;
    let backlog = backlog.to_string();
    let mut child = crate::serve::soar_child(&exe, root, true)
        .arg("-c")
        .arg(root.join("soar.toml"))
        .args(["logs", "-f", "--json", "-n", &backlog, "--env", env])
        .kill_on_drop(true)
        .spawn()
        .map_err(anyhow::Error::from)?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the log follower's output was not piped"
        )));
    };
    // Read stderr all along (a full pipe would stall the child), keeping
    // its end.
    let stderr = crate::serve::queue::keep_tail(err, MAX_STDERR);
    let tail = Tail {
        child,
        out: BufReader::new(out),
        stderr: Some(stderr),
        until: Instant::now() + MAX_FOLLOW,
        started: false,
        done: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        if t.done {
            return None;
        }
        if !t.started {
            t.started = true;
            return Some((
                Ok::<_, Infallible>(Event::default().event("start").data("{}")),
                t,
            ));
        }
        loop {
            let next = tokio::time::timeout_at(t.until, read_line(&mut t.out, MAX_LINE)).await;
            match next {
                Ok(Some(line)) => {
                    if let Some(data) = shown(&line) {
                        return Some((Ok(Event::default().event("line").data(data)), t));
                    }
                }
                // Time is up: end the stream without `end`, so the
                // client's `EventSource` reconnects (and gets a new slot).
                Err(_) => return None,
                // The follow ended by itself.
                Ok(None) => {
                    t.done = true;
                    // Its output has ended, so it is exiting; one that
                    // lingers is not waited for long.
                    let status =
                        match tokio::time::timeout(Duration::from_secs(5), t.child.wait()).await {
                            Ok(status) => status.ok(),
                            Err(_) => None,
                        };
                    let stderr = match t.stderr.take() {
                        Some(h) => {
                            String::from_utf8_lossy(&h.await.unwrap_or_default()).into_owned()
                        }
                        None => String::new(),
                    };
                    let error = (!status.is_some_and(|s| s.success()))
                        .then(|| last_line(&stderr))
                        .flatten();
                    let data = json!({ "error": error }).to_string();
                    return Some((Ok(Event::default().event("end").data(data)), t));
                }
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The next line of `r` without its newline, at most `max` bytes of it
/// (the rest is read and dropped); `None` at the end.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.ok()?;
        if buf.is_empty() {
            return (!line.is_empty()).then_some(line);
        }
        let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = found.unwrap_or(buf.len());
        r.consume(used);
        if found.is_some() {
            return Some(line);
        }
    }
}

/// A `log_line` event of `soar logs --json` as the `line` event's data;
/// `None` for anything else it prints (or a cut line that is not JSON
/// any more).
fn shown(raw: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(raw).ok()?;
    if v["type"] != "log_line" {
        return None;
    }
    Some(json!({ "host": v["host"], "line": v["line"] }).to_string())
}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_cut_at_the_limit_and_the_rest_dropped() {
        let text = b"short\nabcdefghij\nlast".to_vec();
        let mut r = BufReader::with_capacity(3, &text[..]);
        assert_eq!(read_line(&mut r, 4).await.as_deref(), Some(&b"shor"[..]));
        assert_eq!(read_line(&mut r, 4).await.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(read_line(&mut r, 4).await.as_deref(), Some(&b"last"[..]));
        assert_eq!(read_line(&mut r, 4).await, None);
    }

    #[test]
    fn only_log_lines_are_passed_on() {
        let line =
            br#"{"type":"log_line","host":"local","env":"dev","service":"web","line":"<b>hi</b>"}"#;
        let data: Value = serde_json::from_str(&shown(line).unwrap()).unwrap();
        assert_eq!(data, json!({ "host": "local", "line": "<b>hi</b>" }));
        assert!(shown(br#"{"type":"warning","message":"x"}"#).is_none());
        assert!(shown(b"{\"type\":\"log_line\",\"line\":\"cut").is_none());
        assert_eq!(last_line("a\nerror: b\n\n").as_deref(), Some("error: b"));
    }
}
