//! moto, the independent AWS fake, started on loopback for one test.
//!
//! moto verifies SigV4 signatures once authentication is switched on, which
//! makes it an independent check of the host's signing (not our own code
//! checking itself). It is installed into `target/test-peers/venv` by
//! `tests/run`; `SOAR_MOTO_SERVER` may point at another `moto_server`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running `moto_server`, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Moto {
    /// Start moto on a free loopback port and wait until it listens.
    pub fn start() -> anyhow::Result<Self> {
        let bin = std::env::var_os("SOAR_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/test-peers/venv/bin/moto_server")
            });
        if !bin.exists() {
            bail!(
                "moto_server not found at {}: run ./tests/run once (it installs the test peers), or set SOAR_MOTO_SERVER",
                bin.display()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut moto = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait()? {
                bail!("moto_server exited early with {status}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("moto_server did not listen on port {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
