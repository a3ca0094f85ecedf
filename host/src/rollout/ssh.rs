//! The SSH transport: rollout steps run on a remote host through the
//! host's SSH broker (one pooled connection per host, a channel per step).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::transport::{ExecOutput, Transport};
use crate::broker::ssh::{HostSpec, SshBroker};
use crate::shell::quote;

/// Who the journal names for the rollout's own commands.
pub const ACTOR: &str = "soar";

/// A remote host reached over SSH.
#[derive(Clone)]
pub struct SshTransport {
    /// The broker whose pooled connection, host-key check and journal every
    /// step goes through.
    pub broker: Arc<SshBroker>,
    /// The host and the user the steps run as.
    pub host: HostSpec,
}

impl SshTransport {
    /// Steps on `host` through `broker`.
    pub fn new(broker: Arc<SshBroker>, host: HostSpec) -> Self {
        Self { broker, host }
    }
}

impl Transport for SshTransport {
    fn describe(&self) -> String {
        format!("ssh {}", self.host.describe())
    }

    async fn exec(&self, command: &str, timeout: Duration) -> anyhow::Result<ExecOutput> {
        let out = self
            .broker
            .exec(ACTOR, &self.host, command, timeout)
            .await?;
        Ok(ExecOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Each piece the channel takes moves this host's upload bar (and the
    /// fleet's) on a terminal; see [`crate::report::progress::Uploads`].
    async fn put_file(&self, local: &Path, remote: &str, mode: u32) -> anyhow::Result<u64> {
        let size = tokio::fs::metadata(local)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let bar = crate::report::progress::uploads().begin(&self.describe(), size);
        let sent = self
            .broker
            .upload_metered(ACTOR, &self.host, local, remote, mode, &|n| bar.sent(n))
            .await?;
        if sent == 0 {
            bar.skipped(size);
        }
        Ok(sent)
    }

    async fn put_bytes(&self, bytes: &[u8], remote: &str, mode: u32) -> anyhow::Result<()> {
        Ok(self
            .broker
            .put_bytes(ACTOR, &self.host, bytes, remote, mode)
            .await?)
    }

    /// Probed from the host itself (curl, else python3), so the service
    /// port never has to be open to the outside.
    async fn probe_http(
        &self,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<(u16, String)> {
        let url = quote(&format!("http://127.0.0.1:{port}{path}"))?;
        let secs = timeout.as_secs().max(1);
        let cmd = format!(
            "if command -v curl >/dev/null 2>&1; then curl -sS -m {secs} -o - -w '\\n%{{http_code}}' {url}; \
             else python3 -c {py} {url} {secs}; fi",
            py = quote(PROBE_PY)?
        );
        let out = self.exec(&cmd, timeout + Duration::from_secs(10)).await?;
        if out.status != 0 {
            anyhow::bail!(
                "{}",
                out.stderr.trim().lines().last().unwrap_or("no answer")
            );
        }
        let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
        let code: u16 = code
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("no HTTP status in the probe's answer"))?;
        if code == 0 {
            anyhow::bail!("no answer");
        }
        Ok((code, body.chars().take(2000).collect()))
    }
}

const PROBE_PY: &str = r#"import sys, urllib.request as u
try:
    r = u.urlopen(sys.argv[1], timeout=float(sys.argv[2])); b = r.read(2000); c = r.status
except u.HTTPError as e:
    b = e.read(2000); c = e.code
sys.stdout.write(b.decode("utf-8", "replace") + "\n" + str(c))"#;
