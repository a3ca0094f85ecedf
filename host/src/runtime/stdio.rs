//! Guest stdout/stderr, captured into a bounded buffer.
//!
//! A plugin's prints are diagnostics, not output: each line goes to the
//! plugin's log as it is written (a long call's progress shows while it
//! runs, not as one block after it), and stderr's tail goes into the error
//! message when the plugin traps. The buffer keeps the first bytes up to its
//! cap and counts the rest, so a print loop can neither fill the host's
//! memory nor make the guest fail on a closed stream.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
    /// How much of `bytes` has gone to the line sink, in how many lines.
    emitted: usize,
    lines: usize,
}

/// Receives each line a guest writes (without its line end), as it is
/// written. Called outside the pipe's lock.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A bounded in-memory sink for one guest stream.
#[derive(Clone)]
pub struct CappedPipe {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
    lines: Option<(LineSink, usize)>,
}

impl std::fmt::Debug for CappedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedPipe")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl CappedPipe {
    /// A pipe that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Arc::default(),
            lines: None,
        }
    }

    /// The same pipe, also handing the first `max_lines` complete lines to
    /// `sink` as they are written, and the rest of the kept bytes as one
    /// text at [`CappedPipe::finish_lines`]: the byte cap and the line count
    /// bound what a print loop can send to the log.
    pub fn with_lines(mut self, sink: LineSink, max_lines: usize) -> Self {
        self.lines = Some((sink, max_lines));
        self
    }

    fn push(&self, data: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(c.bytes.len());
        let keep = room.min(data.len());
        c.bytes.extend_from_slice(&data[..keep]);
        c.dropped += (data.len() - keep) as u64;
        let Some((sink, max_lines)) = &self.lines else {
            return;
        };
        let mut lines = Vec::new();
        while c.lines < *max_lines {
            let Some(n) = c.bytes[c.emitted..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let end = c.emitted + n;
            lines.push(line_text(&c.bytes[c.emitted..end]));
            c.emitted = end + 1;
            c.lines += 1;
        }
        drop(c);
        for line in lines {
            sink(&line);
        }
    }

    /// Hand the sink what is left at the end of a call, as one text: the
    /// last line without its line end (or every line past `max_lines`), and
    /// a note of the bytes dropped past the cap.
    pub fn finish_lines(&self) {
        let Some((sink, _)) = &self.lines else { return };
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = line_text(&c.bytes[c.emitted..]);
        c.emitted = c.bytes.len();
        let dropped = std::mem::take(&mut c.dropped);
        drop(c);
        if dropped > 0 {
            if !rest.is_empty() {
                rest.push('\n');
            }
            rest.push_str(&format!(
                "[{dropped} more bytes dropped: output is capped at {} bytes]",
                self.cap
            ));
        }
        if !rest.is_empty() {
            sink(&rest);
        }
    }

    /// What was kept, lossily decoded, with a note of what was dropped.
    pub fn contents(&self) -> String {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&c.bytes).into_owned();
        if c.dropped > 0 {
            text.push_str(&format!(
                "\n[{} more bytes dropped: output is capped at {} bytes]",
                c.dropped, self.cap
            ));
        }
        text
    }
}

/// A line's text: lossily decoded, without a `\r` before its `\n`.
fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let p = CappedPipe::new(4);
        p.push(b"abc");
        p.push(b"defgh");
        assert_eq!(
            p.contents(),
            "abcd\n[4 more bytes dropped: output is capped at 4 bytes]"
        );
    }

    #[test]
    fn lines_go_to_the_sink_as_they_are_written() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink: LineSink = {
            let seen = seen.clone();
            Arc::new(move |l: &str| seen.lock().unwrap().push(l.to_string()))
        };
        let p = CappedPipe::new(20).with_lines(sink, 2);
        p.push(b"one\r\ntw");
        assert_eq!(*seen.lock().unwrap(), ["one"], "a whole line, at once");
        p.push(b"o\nthree\nfour and more");
        assert_eq!(*seen.lock().unwrap(), ["one", "two"], "two lines at most");
        p.finish_lines();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "one",
                "two",
                "three\nfour \n[8 more bytes dropped: output is capped at 20 bytes]"
            ],
            "the rest of what was kept, then what was dropped, as one text"
        );
        p.finish_lines();
        assert_eq!(seen.lock().unwrap().len(), 3, "nothing twice");
    }
}
