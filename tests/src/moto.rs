//! moto, the independent AWS fake, started on loopback for one test.
//!
//! moto verifies SigV4 signatures once authentication is switched on, which
//! makes it an independent check of the host's signing (not our own code
//! checking itself). It is installed into `target/test-peers/venv` by
//! `tests/run`; `SOAR_MOTO_SERVER` may point at another `moto_server`.

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running `moto_server`, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Moto {
    /// Start moto on a loopback port of its own choosing and wait until it
    /// listens.
    ///
    /// The port is the one moto reports having bound (`-p 0`), not one
    /// picked beforehand: a port found free and handed over can be taken by
    /// another test's server in between, and the readiness check would
    /// then succeed against that server while moto failed to start.
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
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("moto_server's stderr")?;
        let mut moto = Self {
            url: String::new(),
            child,
        };
        // moto says ` * Running on http://127.0.0.1:<port>` once it has bound
        // the port; the rest of its stderr (a line per request) is drained
        // so that it never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .split_once("Running on http://127.0.0.1:")
                    .and_then(|(_, rest)| rest.trim().parse::<u16>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => match moto.child.try_wait()? {
                Some(status) => bail!("moto_server exited early with {status}"),
                None => bail!("moto_server did not report a listening port within 30 s"),
            },
        };
        moto.url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait()? {
                bail!("moto_server exited early with {status}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("moto_server did not accept connections on port {port} within 30 s");
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
