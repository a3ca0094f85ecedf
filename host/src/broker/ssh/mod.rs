//! The SSH broker: every command Soar or a plugin runs on a host, and every
//! file it puts there, goes through here.
//!
//! Library: [`russh`] — a pure-Rust SSH client on tokio, maintained
//! (warp-tech, used by Warpgate), with key files (Ed25519, ECDSA, RSA),
//! ssh-agent support and many channels per connection. The alternatives
//! were `ssh2`/`libssh2` (C library, blocking, needs a thread per session)
//! and shelling out to `ssh`/`scp` (no control over host key policy, error
//! text to scrape, a process per command). russh is built with its `ring`
//! backend instead of the default `aws-lc-rs`: the host already links ring
//! for rustls, and aws-lc needs a C/cmake build that costs minutes on CI.
//!
//! What the broker guarantees:
//! - host keys verified against `~/.ssh/known_hosts` and Soar's own file;
//!   unknown hosts are accepted only when the engine says Soar created them
//!   in this deploy; a changed key is always refused with both fingerprints
//!   ([`known_hosts`]);
//! - one connection per host for a whole command, each command a channel
//!   ([`pool`]), with a connect timeout and a timeout per command;
//! - exit code, stdout and stderr returned, each bounded;
//! - uploads stream the file from disk (never whole into memory), are
//!   checked with `sha256sum` on the host before being moved into place, and
//!   are skipped when the remote file already has the same digest;
//! - every command and upload is recorded in the journal
//!   ([`Event::Ssh`]); file contents (an env file with secrets) travel on
//!   stdin and never appear in a command line.

pub mod auth;
pub mod known_hosts;
mod pool;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

pub use self::auth::AuthConfig;
pub use self::known_hosts::{KnownHosts, fingerprint};
use crate::journal::{Event, Journal, millis};

/// Most of a command's stdout (and, separately, stderr) kept.
pub const OUTPUT_CAP: usize = 256 << 10;

/// Broker-wide settings (from `[env.<name>.ssh]`).
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub known_hosts: KnownHosts,
    pub auth: AuthConfig,
    pub connect_timeout: Duration,
    /// For plugin commands that name no timeout.
    pub command_timeout: Duration,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            known_hosts: KnownHosts::standard(PathBuf::from(".soar/known_hosts")),
            auth: AuthConfig {
                identity_file: None,
                use_agent: true,
            },
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(300),
        }
    }
}

/// One host to talk to: where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// Address actually connected to (after any `address_map`).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Trust an unknown host key (only for hosts created in this deploy).
    pub accept_new: bool,
    /// Run commands through `sudo -n`.
    pub sudo: bool,
}

impl HostSpec {
    /// `user@address:port`.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    fn key(&self) -> String {
        self.describe()
    }
}

/// Why a brokered SSH call failed (mirrors the WIT `ssh.error`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    HostKey(String),
    #[error("{0}")]
    Failed(String),
}

/// A command's result.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What a command reads on stdin.
enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// The SSH broker of one command.
pub struct SshBroker {
    settings: RwLock<SshSettings>,
    pool: pool::Pool,
    /// Hosts plugins may reach: (address as the provider named it, port)
    /// -> where to connect.
    allowed: RwLock<HashMap<(String, u16), HostSpec>>,
    /// Whether the plugin declared the `ssh` capability.
    plugin_declared: bool,
    journal: Arc<Journal>,
}

impl SshBroker {
    pub fn new(settings: SshSettings, journal: Arc<Journal>) -> Self {
        Self {
            settings: RwLock::new(settings),
            pool: pool::Pool::default(),
            allowed: RwLock::default(),
            plugin_declared: false,
            journal,
        }
    }

    /// Record whether the plugin declared the `ssh` capability (without it,
    /// every plugin SSH call is denied).
    pub fn with_plugin_declared(mut self, declared: bool) -> Self {
        self.plugin_declared = declared;
        self
    }

    /// Replace the settings (before the first connection).
    pub fn configure(&self, settings: SshSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> SshSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Let plugins reach `address:port` (a host the provider created or the
    /// config lists), connecting as `spec`.
    pub fn allow(&self, address: &str, port: u16, spec: HostSpec) {
        self.allowed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((address.to_string(), port), spec);
    }

    /// The connection spec for a plugin's target, or why it is denied.
    pub fn check_plugin_target(
        &self,
        plugin: &str,
        address: &str,
        port: u16,
        user: &str,
    ) -> Result<HostSpec, SshError> {
        if !self.plugin_declared {
            return Err(SshError::Denied(format!(
                "plugin '{plugin}' did not declare the `ssh` capability, so it may not reach {address}:{port}"
            )));
        }
        let allowed = self.allowed.read().unwrap_or_else(|e| e.into_inner());
        match allowed.get(&(address.to_string(), port)) {
            Some(spec) => Ok(HostSpec {
                user: if user.is_empty() {
                    spec.user.clone()
                } else {
                    user.to_string()
                },
                sudo: false,
                ..spec.clone()
            }),
            None => {
                let mut known: Vec<String> =
                    allowed.keys().map(|(a, p)| format!("{a}:{p}")).collect();
                known.sort();
                Err(SshError::Denied(format!(
                    "plugin '{plugin}' may not reach {address}:{port} over SSH: only hosts the provider created \
                     in this environment or listed in `[env.<name>.ssh] hosts` are reachable ({})",
                    if known.is_empty() {
                        "none in this command".to_string()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
    }

    /// Run `command` (a `sh` line) on `host`, within `timeout`.
    pub async fn exec(
        &self,
        who: &str,
        host: &HostSpec,
        command: &str,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let started = Instant::now();
        let r = self.run(host, command, Input::None, timeout).await;
        self.record(who, host, command, &r, started);
        r
    }

    /// Write `bytes` to `remote` with `mode`, atomically (temp file + mv).
    /// The bytes travel on stdin, never in the command line.
    pub async fn put_bytes(
        &self,
        who: &str,
        host: &HostSpec,
        bytes: &[u8],
        remote: &str,
        mode: u32,
    ) -> Result<(), SshError> {
        let tmp = format!("{remote}.soar-tmp");
        let cmd = format!(
            "umask 077 && cat > {t} && chmod {mode:o} {t} && mv -f {t} {r}",
            t = quote(&tmp),
            r = quote(remote)
        );
        let started = Instant::now();
        let r = self
            .run(host, &cmd, Input::Bytes(bytes), Duration::from_secs(120))
            .await
            .and_then(|o| check(o, "writing", remote));
        self.record(
            who,
            host,
            &format!("put {} bytes -> {remote} (mode {mode:o})", bytes.len()),
            &r,
            started,
        );
        r.map(|_| ())
    }

    /// Stream `local` to `remote` with `mode`; verified with `sha256sum` on
    /// the host, moved into place only when it matches. Returns the bytes
    /// sent: 0 when `remote` already had the same content.
    pub async fn upload(
        &self,
        who: &str,
        host: &HostSpec,
        local: &Path,
        remote: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        let started = Instant::now();
        let r = self.upload_inner(host, local, remote, mode).await;
        let what = match &r {
            Ok(0) => format!("upload {} -> {remote}: already there", local.display()),
            Ok(n) => format!(
                "upload {} -> {remote}: {n} bytes, sha256 verified",
                local.display()
            ),
            Err(_) => format!("upload {} -> {remote}", local.display()),
        };
        self.record(who, host, &what, &r, started);
        r
    }

    async fn upload_inner(
        &self,
        host: &HostSpec,
        local: &Path,
        remote: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        let (digest, size) = sha256_file(local)
            .await
            .map_err(|e| SshError::Failed(format!("reading {}: {e}", local.display())))?;
        let have = self
            .run(
                host,
                &format!("sha256sum -- {} 2>/dev/null || true", quote(remote)),
                Input::None,
                Duration::from_secs(120),
            )
            .await?;
        if String::from_utf8_lossy(&have.stdout)
            .split_whitespace()
            .next()
            == Some(&digest)
        {
            self.run(
                host,
                &format!("chmod {mode:o} {}", quote(remote)),
                Input::None,
                Duration::from_secs(60),
            )
            .await
            .and_then(|o| check(o, "setting the mode of", remote))?;
            return Ok(0);
        }
        let tmp = format!("{remote}.soar-part");
        let cmd = format!(
            "cat > {t} && chmod {mode:o} {t} && s=$(sha256sum -- {t} | cut -d' ' -f1) && \
             if [ \"$s\" = {d} ]; then mv -f {t} {r}; else rm -f {t}; echo \"sha256 on the host is $s, expected {d}\" >&2; exit 97; fi",
            t = quote(&tmp),
            r = quote(remote),
            d = digest
        );
        // Generous: a slow link moves at least ~64 KiB/s.
        let timeout = Duration::from_secs(120 + size / (64 << 10));
        self.run(host, &cmd, Input::File(local), timeout)
            .await
            .and_then(|o| check(o, "uploading", remote))?;
        Ok(size)
    }

    /// Close every connection (end of a command).
    pub async fn close(&self) {
        self.pool.close_all().await;
    }

    async fn run(
        &self,
        host: &HostSpec,
        command: &str,
        input: Input<'_>,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let s = self.settings();
        let conn = self
            .pool
            .get(host, &s.known_hosts, &s.auth, s.connect_timeout)
            .await?;
        let line = if host.sudo {
            format!("sudo -n sh -c {}", quote(command))
        } else {
            command.to_string()
        };
        let fail = |e: russh::Error| SshError::Failed(format!("on {}: {e}", host.describe()));
        let work = async {
            let channel = conn.channel_open_session().await.map_err(fail)?;
            channel.exec(true, line.as_bytes()).await.map_err(fail)?;
            let (mut read, write) = channel.split();
            let send = async {
                match input {
                    Input::None => {}
                    Input::Bytes(b) => write.data(b).await.map_err(fail)?,
                    Input::File(p) => {
                        let f = tokio::fs::File::open(p).await.map_err(|e| {
                            SshError::Failed(format!("reading {}: {e}", p.display()))
                        })?;
                        write
                            .data(tokio::io::BufReader::with_capacity(256 << 10, f))
                            .await
                            .map_err(fail)?;
                    }
                }
                write.eof().await.map_err(fail)?;
                Ok::<_, SshError>(())
            };
            let receive = async {
                let mut out = Output {
                    status: -1,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                };
                while let Some(msg) = read.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => push_capped(&mut out.stdout, &data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            push_capped(&mut out.stderr, &data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => out.status = exit_status as i32,
                        ChannelMsg::ExitSignal { signal_name, .. } => {
                            out.status = 128;
                            push_capped(
                                &mut out.stderr,
                                format!("killed by signal {signal_name:?}").as_bytes(),
                            );
                        }
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                out
            };
            let (sent, out) = tokio::join!(send, receive);
            // A command that exits without reading all of stdin is fine.
            if let Err(e) = sent
                && out.status != 0
            {
                return Err(e);
            }
            Ok(out)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            SshError::Timeout(format!(
                "`{}` on {} did not finish within {} s",
                clip(command, 200),
                host.describe(),
                timeout.as_secs()
            ))
        })?
    }

    fn record(
        &self,
        who: &str,
        host: &HostSpec,
        command: &str,
        r: &Result<impl Exit, SshError>,
        started: Instant,
    ) {
        self.journal.record(Event::Ssh {
            plugin: who.to_string(),
            host: host.describe(),
            command: match r {
                Ok(_) => clip(command, 1000),
                Err(e) => format!("{} [{}]", clip(command, 1000), clip(&e.to_string(), 500)),
            },
            exit: r.as_ref().ok().and_then(|o| o.exit()),
            millis: millis(started.elapsed()),
        });
    }
}

trait Exit {
    fn exit(&self) -> Option<i32>;
}
impl Exit for Output {
    fn exit(&self) -> Option<i32> {
        Some(self.status)
    }
}
impl Exit for () {
    fn exit(&self) -> Option<i32> {
        Some(0)
    }
}
impl Exit for u64 {
    fn exit(&self) -> Option<i32> {
        Some(0)
    }
}

fn check(o: Output, what: &str, path: &str) -> Result<Output, SshError> {
    if o.status == 0 {
        Ok(o)
    } else {
        Err(SshError::Failed(format!(
            "{what} {path} failed (exit {}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}

fn push_capped(buf: &mut Vec<u8>, data: &[u8]) {
    let room = OUTPUT_CAP.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Quote for the remote `sh`.
pub fn quote(s: &str) -> String {
    crate::rollout::transport::quote(s)
}

/// sha256 (hex) and size of a local file, read in chunks.
pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}
