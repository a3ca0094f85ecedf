//! A `soar` process that keeps running (`monitor`, `logs -f`, `top`)
//! whose stdout lines arrive on a channel as it prints them, so a test can
//! wait for a line, act, and wait for the next; SIGINT ends it as Ctrl-C
//! would, and dropping it kills it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running `soar` child and its stdout, line by line.
pub struct Running {
    /// The process (its pid for CPU and memory figures).
    pub child: Child,
    lines: Receiver<String>,
}

impl Running {
    /// Start `cmd` with stdout piped (stderr goes to the test's); each line
    /// is also echoed to stderr, tagged, for a failing test's output.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting soar");
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("running soar: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line satisfying `want` within `limit` (lines before it are
    /// skipped); `None` when none came.
    pub fn until(&self, limit: Duration, mut want: impl FnMut(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if want(&l) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Every line that arrives within `wait`.
    pub fn drain(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }

    /// SIGINT (the user's Ctrl-C), then the exit code; `None` when it is
    /// still running 20 s later.
    pub fn interrupt(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own live child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for soar") {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
