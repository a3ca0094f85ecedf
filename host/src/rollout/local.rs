//! The local transport: rollout steps run on this machine.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncReadExt as _;

use super::transport::{ExecOutput, Transport};

/// Most of a command's stdout/stderr kept.
const OUTPUT_CAP: usize = 256 << 10;

/// Runs commands with the local `sh`.
#[derive(Debug, Default, Clone)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn describe(&self) -> String {
        "local".into()
    }

    async fn exec(&self, command: &str, timeout: Duration) -> anyhow::Result<ExecOutput> {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting sh")?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let run = async {
            let (o, e, status) =
                tokio::join!(read_capped(&mut out), read_capped(&mut err), child.wait());
            anyhow::Ok((status?, o?, e?))
        };
        let (status, o, e) = tokio::time::timeout(timeout, run).await.map_err(|_| {
            anyhow::anyhow!("`{command}` did not finish within {} s", timeout.as_secs())
        })??;
        Ok(ExecOutput {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o).into_owned(),
            stderr: String::from_utf8_lossy(&e).into_owned(),
        })
    }

    async fn put_file(&self, local: &Path, remote: &str, mode: u32) -> anyhow::Result<u64> {
        let bytes = tokio::fs::copy(local, remote)
            .await
            .with_context(|| format!("copying {} to {remote}", local.display()))?;
        set_mode(remote, mode).await?;
        Ok(bytes)
    }

    async fn put_bytes(&self, bytes: &[u8], remote: &str, mode: u32) -> anyhow::Result<()> {
        let tmp = format!("{remote}.soar-tmp");
        tokio::fs::write(&tmp, bytes)
            .await
            .with_context(|| format!("writing {tmp}"))?;
        set_mode(&tmp, mode).await?;
        tokio::fs::rename(&tmp, remote)
            .await
            .with_context(|| format!("moving {tmp} into place"))?;
        Ok(())
    }

    async fn probe_http(
        &self,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<(u16, String)> {
        let resp = probe_client()?
            .get(format!("http://127.0.0.1:{port}{path}"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| probe_error(port, e))?;
        let status = resp.status().as_u16();
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect();
        Ok((status, body))
    }
}

/// The client of every local health probe, built once per process: a
/// client loads the system's CA certificates when it is built, which made
/// each probe cost milliseconds of CPU (the bulk of `soar monitor`'s cost
/// watching 100 services). Nothing is pooled: a probe must open its own
/// connection, or one kept from before a restart would answer for a
/// service that is gone.
fn probe_client() -> anyhow::Result<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    crate::tls::install_crypto_provider();
    let built = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()?;
    Ok(CLIENT.get_or_init(|| built))
}

/// What a failed probe means, in words: reqwest's own message ("error
/// sending request for url") hides whether nothing listened or the service
/// hung, which is what the person reading a failed deploy needs to know.
fn probe_error(port: u16, e: reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow::anyhow!("nothing accepts connections on 127.0.0.1:{port} yet")
    } else if e.is_timeout() {
        anyhow::anyhow!("no answer from 127.0.0.1:{port} within the probe's timeout")
    } else {
        // Its sources are kept: the rollout prints the whole chain.
        anyhow::Error::new(e)
    }
}

/// Read a stream to its end, keeping the first [`OUTPUT_CAP`] bytes (the
/// rest is drained so the command never blocks on a full pipe).
async fn read_capped(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

async fn set_mode(path: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .with_context(|| format!("setting mode {mode:o} on {path}"))
}
