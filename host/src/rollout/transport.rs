//! What rollout needs from a host: run a command, put a file, probe a port.
//!
//! The rollout logic in this module's parent is written once against this
//! trait; [`LocalTransport`](super::local::LocalTransport) runs it on this
//! machine and the SSH transport runs it on remote hosts. Commands are POSIX
//! `sh`, so the same steps work in both places.

use std::path::Path;
use std::time::Duration;

/// The result of one command.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The exit status; -1 when the command died of a signal or gave none.
    pub status: i32,
    /// What the command printed on stdout (lossy UTF-8, capped).
    pub stdout: String,
    /// What it printed on stderr (likewise), quoted by [`ExecOutput::check`].
    pub stderr: String,
}

impl ExecOutput {
    /// `Ok(self)` on exit status 0, otherwise an error quoting stderr.
    pub fn check(self, what: &str) -> anyhow::Result<Self> {
        if self.status == 0 {
            Ok(self)
        } else {
            anyhow::bail!(
                "{what} failed (exit {}): {}",
                self.status,
                self.stderr.trim()
            )
        }
    }
}

/// A host the rollout can act on.
pub trait Transport: Send + Sync {
    /// For messages: `local` or `ssh deploy@203.0.113.4:22`.
    fn describe(&self) -> String;

    /// Run `command` with `sh -c`, bounded by `timeout`.
    fn exec(
        &self,
        command: &str,
        timeout: Duration,
    ) -> impl Future<Output = anyhow::Result<ExecOutput>> + Send;

    /// Copy a local file to `remote` with `mode`; returns the bytes sent.
    fn put_file(
        &self,
        local: &Path,
        remote: &str,
        mode: u32,
    ) -> impl Future<Output = anyhow::Result<u64>> + Send;

    /// Write `bytes` to `remote` with `mode`, replacing it atomically.
    fn put_bytes(
        &self,
        bytes: &[u8],
        remote: &str,
        mode: u32,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// `GET http://127.0.0.1:{port}{path}` as seen from the host itself (so
    /// no firewall has to open): status and the start of the body.
    fn probe_http(
        &self,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> impl Future<Output = anyhow::Result<(u16, String)>> + Send;
}
