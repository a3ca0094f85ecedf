//! Real OpenSSH `sshd` test hosts on loopback, each with its own host key and root.
//!
//! Every [`SshHost`] is one `sshd -D -e` on `127.0.0.1:<free port>`, running
//! as the current user with its own ed25519 host key, config and
//! `authorized_keys` in a temporary directory; [`SshHost::root`] is a
//! directory only that host's deploys use (the test's `remote_prefix`).
//! Several hosts are several sshd processes. Dropping a host stops it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The sshd binary (Debian's `openssh-server`).
pub const SSHD: &str = "/usr/sbin/sshd";

/// Where `tests/run` installs test peers (`target/test-peers/venv/bin`).
fn venv_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-peers/venv/bin")
}

/// The test hosts' `systemctl`: docker-systemctl-replacement's
/// `systemctl3.py` (`$SOAR_SYSTEMCTL_PY`, else the test venv's).
pub fn systemctl_py() -> PathBuf {
    std::env::var_os("SOAR_SYSTEMCTL_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_bin().join("systemctl3.py"))
}

/// The Python that runs `systemctl3.py`: the test venv's, else `python3`.
pub fn python() -> PathBuf {
    let venv = venv_bin().join("python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Fail with the install command when sshd or the systemctl replacement is
/// missing, rather than skipping silently.
pub fn require_peers() {
    assert!(
        available(),
        "SSH tests need OpenSSH's sshd: apt-get install -y openssh-server"
    );
    assert!(
        systemctl_py().exists(),
        "SSH tests need docker-systemctl-replacement: {}/pip install docker-systemctl-replacement (./tests/run installs it)",
        systemctl_py().parent().unwrap_or(Path::new(".")).display()
    );
}

/// Whether sshd and ssh-keygen are installed.
pub fn available() -> bool {
    Path::new(SSHD).exists()
        && Command::new("ssh-keygen")
            .arg("-?")
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok()
}

/// A client key pair for tests (ed25519, no passphrase).
pub struct ClientKey {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub public: String,
}

impl ClientKey {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("id_ed25519");
        keygen(&path)?;
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        Ok(Self {
            _dir: dir,
            path,
            public,
        })
    }
}

/// One running sshd.
pub struct SshHost {
    pub addr: String,
    pub port: u16,
    /// The client key it accepts.
    pub key_path: PathBuf,
    /// `SHA256:...` of its host key.
    pub host_key_fingerprint: String,
    /// Its host public key, `ssh-ed25519 AAAA...`.
    pub host_key: String,
    /// A directory for this host alone (the deploys' remote prefix).
    pub root: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "soar-test", "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen")?;
    anyhow::ensure!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A free TCP port on 127.0.0.1 (for sshd hosts and test services).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl SshHost {
    /// Start an sshd that accepts `client`.
    pub fn start(client: &ClientKey) -> anyhow::Result<Self> {
        std::fs::create_dir_all("/run/sshd").ok();
        let dir = tempfile::tempdir()?;
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key)?;
        std::fs::write(dir.path().join("authorized_keys"), &client.public)?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root)?;
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let host_key_line = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let fp = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(host_key.with_extension("pub"))
            .output()?;
        let fingerprint = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                     MaxSessions 200\nMaxStartups 200\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
                    hk = host_key.display(),
                    ak = dir.path().join("authorized_keys").display(),
                    pid = dir.path().join("sshd.pid").display(),
                ),
            )?;
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting sshd")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Ok(Self {
                    addr: "127.0.0.1".into(),
                    port,
                    key_path: client.path.clone(),
                    host_key_fingerprint: fingerprint,
                    host_key: host_key_line,
                    root,
                    dir,
                    child: Some(child),
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            last = Some(port);
        }
        anyhow::bail!("sshd did not start (last port tried {last:?})")
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for a known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}\n", self.addr, self.port, self.host_key)
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    /// The host's private directory holding its config and keys.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop sshd (connections already open stay up until they end).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop();
    }
}
