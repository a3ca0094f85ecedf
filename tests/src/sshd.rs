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

/// The end of a Python test service that several test hosts on this
/// machine run at once: they share its port, so it binds with
/// `SO_REUSEPORT`. Write the imports (`os, socket, http.server`) and a
/// handler class `H` before it; it serves `H` on `$PORT`.
pub const SHARED_PORT_SERVER: &str = r#"class S(http.server.HTTPServer):
    allow_reuse_address = True
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

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
    /// The private key file, for `ssh -i` or a project's `identity`; deleted
    /// with the key.
    pub path: PathBuf,
    /// The `.pub` line (`ssh-ed25519 AAAA... soar-test`), for an
    /// `authorized_keys` file.
    pub public: String,
}

impl ClientKey {
    /// Make a fresh pair with `ssh-keygen` in a temporary directory that
    /// lives as long as the key.
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
    /// The address sshd listens on: always `127.0.0.1`.
    pub addr: String,
    /// Its port, picked free at start.
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

/// Ports handed out by [`free_port`]: below Linux's ephemeral range
/// (32768-60999 by default), which the kernel draws from for every bind to
/// port 0 and every outgoing connection.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port on 127.0.0.1 (for sshd hosts and test services), for a
/// server the test starts later.
///
/// Between this check and that server's bind the port is nobody's, so a
/// port from the kernel's ephemeral range (`bind :0`) could be handed to
/// any other test's `:0` server or client meanwhile — seen in CI as a
/// blue/green colour that could not start. Ports come from
/// [`PICKED_PORTS`] instead, outside that range, each at most once per
/// process (an atomic cursor from a per-process start), so only another
/// process picking the same way could take one.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PICKED_PORTS.end - PICKED_PORTS.start);
    // A different start per process: two test binaries at once rarely meet.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PICKED_PORTS.start + n as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in {PICKED_PORTS:?} on 127.0.0.1")
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
            // `SetEnv SHLVL=1`: bash run by sshd for a command reads
            // ~/.bashrc unless SHLVL says it is nested; on this machine that
            // rc runs `pyenv init` (~90 ms of CPU per command), which is not
            // what a deploy target's shell costs.
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                     MaxSessions 200\nMaxStartups 200\nLogLevel ERROR\nSubsystem sftp internal-sftp\n\
                     SetEnv SHLVL=1\n",
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

    /// soar.toml's `[env.<env>.ssh]` table reaching this host alone: its
    /// key, `known_hosts` beside soar.toml (write [`Self::known_hosts_line`]
    /// there) and the host's root as the remote prefix.
    pub fn ssh_table(&self, env: &str) -> String {
        format!(
            "[env.{env}.ssh]\nhosts = [\"{}\"]\nuser = \"{}\"\nidentity_file = \"{}\"\n\
             known_hosts = \"known_hosts\"\nremote_prefix = \"{}\"\nconnect_timeout = \"5s\"\n",
            self.endpoint(),
            user(),
            self.key_path.display(),
            self.root.display()
        )
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

/// One process on this machine, as `/proc` describes it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent process id, to find a service's children.
    pub ppid: u32,
    /// The executable's short name (`/proc/<pid>/comm`).
    pub comm: String,
    /// The command line, arguments joined by spaces.
    pub cmdline: String,
}

/// Every process visible in `/proc`.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_string();
        let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        Some(Proc {
            pid,
            ppid,
            comm,
            cmdline,
        })
    })
    .collect()
}

/// Every descendant of `root` (children first-level first), not `root` itself.
pub fn descendants(root: u32) -> Vec<Proc> {
    let all = processes();
    let mut out: Vec<Proc> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            out.push(p.clone());
        }
    }
    out
}

/// Send `signal` (`KILL`, `STOP`, `CONT`, ...) to `pid`; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SshHost {
    /// The listening sshd's pid (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything running under this host's listener: sshd's per-connection
    /// processes and the commands clients run through them.
    pub fn session_processes(&self) -> Vec<Proc> {
        self.pid().map(descendants).unwrap_or_default()
    }

    /// Drop every open connection the hard way, as a network failure or an
    /// OOM kill would: SIGKILL sshd's per-connection processes while the
    /// listener keeps accepting new connections. With `and_commands`, the
    /// commands those connections run die with them (a host crash): sshd is
    /// frozen first so that it cannot tell the client how they ended, and
    /// none of them sees its stdin end and cleans up after itself. Without,
    /// the commands live on and see end-of-file on stdin. Returns how many
    /// processes were killed.
    pub fn kill_sessions(&self, and_commands: bool) -> usize {
        let procs = self.session_processes();
        let (sshd, commands): (Vec<&Proc>, Vec<&Proc>) =
            procs.iter().partition(|p| p.comm == "sshd");
        let mut killed = 0;
        if and_commands {
            for p in &sshd {
                signal(p.pid, "STOP");
            }
            killed += commands.iter().filter(|p| signal(p.pid, "KILL")).count();
        }
        killed += sshd.iter().filter(|p| signal(p.pid, "KILL")).count();
        killed
    }
}

/// A Soar project that deploys to loopback [`SshHost`]s through the built
/// `soar` binary: `soar.toml` with an `[env.prod.ssh]` section naming the
/// hosts, a `known_hosts` file holding their keys, and every host's own
/// remote prefix (`<tmp>/<ssh port>-root`, a symlink to [`SshHost::root`]).
/// The remote service manager is [`systemctl_py`]. Dropping it stops the
/// service on every host.
pub struct SshProject {
    /// The project directory, holding `soar.toml`, `known_hosts` and the
    /// artifact files; removed on drop.
    pub dir: tempfile::TempDir,
    /// The service's port (`[deploy] port`).
    pub port: u16,
    /// The app (and so the service) name.
    pub name: String,
    soar: PathBuf,
    /// Per host: its ssh port and prefix symlink.
    hosts: Vec<(u16, PathBuf)>,
}

impl SshProject {
    /// A project for app `name` deploying to `hosts` with the built `soar`
    /// at `soar`; `artifact` is the body of the `[artifact]` table (its
    /// files are the caller's to write into [`Self::dir`]).
    pub fn new(
        soar: &Path,
        name: &str,
        hosts: &[&SshHost],
        artifact: &str,
    ) -> anyhow::Result<Self> {
        Self::with_deploy(soar, name, hosts, artifact, "")
    }

    /// [`Self::new`] with more lines for the `[deploy]` table (secrets, a
    /// rollout batch...).
    pub fn with_deploy(
        soar: &Path,
        name: &str,
        hosts: &[&SshHost],
        artifact: &str,
        deploy: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let known: String = hosts.iter().map(|h| h.known_hosts_line()).collect();
        std::fs::write(dir.path().join("known_hosts"), known)?;
        let base = std::env::temp_dir();
        let mut links = Vec::new();
        for h in hosts {
            let link = base.join(format!("{}-root", h.port));
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&h.root, &link)
                .with_context(|| format!("linking {}", link.display()))?;
            links.push((h.port, link));
        }
        let list: Vec<String> = hosts
            .iter()
            .map(|h| format!("\"{}\"", h.endpoint()))
            .collect();
        let key = hosts
            .first()
            .context("a project needs at least one host")?
            .key_path
            .display()
            .to_string();
        std::fs::write(
            dir.path().join("soar.toml"),
            format!(
                r#"[app]
name = "{name}"

[artifact]
{artifact}

[deploy]
port = {port}
health = {{ path = "/health", timeout = "10s", interval = "200ms", retries = 50 }}
{deploy}

[env.prod]
provider = "local"

[env.prod.ssh]
hosts = [{hosts}]
user = "{user}"
identity_file = "{key}"
known_hosts = "known_hosts"
remote_prefix = "{prefix}"
systemctl = "{py} {sysctl} --root={{prefix}}"
service_user = ""
connect_timeout = "5s"
"#,
                hosts = list.join(", "),
                user = user(),
                prefix = base.join("{port}-root").display(),
                py = python().display(),
                sysctl = systemctl_py().display(),
            ),
        )?;
        Ok(Self {
            dir,
            port,
            name: name.to_string(),
            soar: soar.to_path_buf(),
            hosts: links,
        })
    }

    /// `soar -c <project>/soar.toml <args>`, not yet started (no agent).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.soar);
        c.arg("-c")
            .arg(self.dir.path().join("soar.toml"))
            .args(args)
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    /// Run `soar <args>` to completion; its output is echoed to stderr.
    pub fn soar(&self, args: &[&str]) -> std::process::Output {
        let out = self
            .command(args)
            .output()
            .expect("running the soar binary");
        eprintln!(
            "$ soar {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The path the deploys use as `host`'s prefix.
    pub fn prefix(&self, host: &SshHost) -> PathBuf {
        std::env::temp_dir().join(format!("{}-root", host.port))
    }

    /// The service's root on `host` (`<prefix>/opt/<name>`).
    pub fn service_root(&self, host: &SshHost) -> PathBuf {
        host.root.join("opt").join(&self.name)
    }

    /// The test hosts' `systemctl <args>` for `host`, run directly.
    pub fn systemctl(&self, host: &SshHost, args: &[&str]) -> std::process::Output {
        Command::new(python())
            .arg(systemctl_py())
            .arg(format!("--root={}", self.prefix(host).display()))
            .args(args)
            .output()
            .expect("running systemctl3.py")
    }

    /// `GET http://127.0.0.1:<port><path>` body, when it answers 2xx.
    pub fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "3"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for SshProject {
    fn drop(&mut self) {
        for (_, link) in &self.hosts {
            let _ = Command::new(python())
                .arg(systemctl_py())
                .arg(format!("--root={}", link.display()))
                .args(["stop", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file(link);
        }
    }
}

/// The current user's name (the SSH user of the test hosts).
pub fn user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "root".into())
}
