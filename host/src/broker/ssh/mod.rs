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
//! - hosts behind bastions (`ProxyJump` in the SSH client config, or
//!   `[env.<name>.ssh] bastion`) are reached through `direct-tcpip` channels
//!   of the bastion's own pooled session, each hop's host key verified as
//!   any host's ([`route`], [`client_config`]); only the user's
//!   configuration names a bastion, never a plugin;
//! - exit code, stdout and stderr returned, each bounded;
//! - uploads stream the file from disk (never whole into memory, a few MiB
//!   read ahead), are checked with sha256 on the host (`openssl dgst` for
//!   large files when the host has it, else `sha256sum`) before being moved
//!   into place, and are skipped when the remote file already has the same
//!   digest — all in one command: the remote digest check, the local hash
//!   and the transfer share one channel ([`SshBroker::upload`]);
//! - a connection that drops fails the command at once (a send waiting for
//!   window space is abandoned when the channel goes away);
//! - a host reaches the allowed set only with provenance ([`SshBroker::admit`]):
//!   the user's config names it, or the provider's credential-bound API
//!   named it in an answer during this command ([`SeenAddresses`]) and it is
//!   not a private, loopback or link-local address; a plugin's word alone
//!   admits nothing, and the config's user wins over the plugin's;
//! - every command and upload is recorded in the journal
//!   ([`Event::Ssh`]); file contents (an env file with secrets) travel on
//!   stdin and never appear in a command line.

pub mod auth;
pub mod client_config;
pub mod known_hosts;
mod pool;
pub mod route;
mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sha2::Digest as _;

pub use self::auth::AuthConfig;
pub use self::known_hosts::{KnownHosts, fingerprint};
pub use self::route::{Given, Hop, Reach, Route, Router};
pub use self::stream::{Exit as StreamExit, Pty, Stream};
use crate::broker::addresses::SeenAddresses;
use crate::broker::addresses::is_public;
use crate::journal::{Event, Journal, millis};
use crate::shell::quote;

/// Most of a command's stdout (and, separately, stderr) kept.
pub const OUTPUT_CAP: usize = 256 << 10;

/// Broker-wide settings (from `[env.<name>.ssh]`).
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The host keys trusted, and the file new ones are recorded in.
    pub known_hosts: KnownHosts,
    /// How Soar logs in: an identity file, the ssh-agent, or both.
    pub auth: AuthConfig,
    /// How long connecting and authenticating to a host may take.
    pub connect_timeout: Duration,
    /// For plugin commands that name no timeout.
    pub command_timeout: Duration,
    /// Addresses the user's config names (`hosts`, `address_map` keys):
    /// these may be private or loopback, and need no API answer.
    pub named_hosts: std::collections::HashSet<String>,
    /// Where the config's rules live, for messages (`[env.prod.ssh]`).
    pub section: String,
    /// The SSH client config and `bastion` that hosts' routes are resolved
    /// against ([`SshBroker::route`]).
    pub router: Router,
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
            named_hosts: Default::default(),
            section: "[env.<name>.ssh]".into(),
            router: Router::default(),
        }
    }
}

/// One host to talk to: where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// Address actually connected to (after any `address_map`).
    pub address: String,
    /// The SSH port (22 unless the config says otherwise).
    pub port: u16,
    /// The remote user to log in as.
    pub user: String,
    /// Trust an unknown host key (only for hosts created in this deploy).
    pub accept_new: bool,
    /// Run commands through `sudo -n`.
    pub sudo: bool,
    /// Connect only if the name resolves to a public address: set for
    /// host names a provider reported (the user's config may name private
    /// hosts; a provider's answer may not), checked on the address actually
    /// connected to.
    pub public_only: bool,
    /// Bastions in front of the host and its key files from the SSH client
    /// config ([`SshBroker::route`]); part of the host's identity, so the
    /// same address behind two bastions is two hosts.
    pub reach: Reach,
}

impl HostSpec {
    /// `user@address:port`.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// `user@address:port via bastion...`, for messages about connecting.
    pub fn describe_route(&self) -> String {
        format!("{}{}", self.describe(), self.reach.describe())
    }

    fn key(&self) -> String {
        self.describe_route()
    }
}

/// Why a brokered SSH call failed (mirrors the WIT `ssh.error`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    /// The broker refused: an undeclared capability, an unadmitted host, a
    /// private address. The text says what to change.
    #[error("{0}")]
    Denied(String),
    /// The connection or the command outlived its deadline.
    #[error("{0}")]
    Timeout(String),
    /// The host's key did not match the known one; the text shows both
    /// fingerprints.
    #[error("{0}")]
    HostKey(String),
    /// Connection, authentication, protocol or local I/O failure.
    #[error("{0}")]
    Failed(String),
}

/// A path or command with a NUL byte cannot be passed to the remote shell;
/// the call is refused rather than sent shortened.
impl From<crate::shell::NulByte> for SshError {
    fn from(e: crate::shell::NulByte) -> Self {
        SshError::Denied(e.to_string())
    }
}

/// A command's result.
#[derive(Debug, Clone)]
pub struct Output {
    /// The remote exit status: 128 when a signal killed it (stderr says
    /// which), -1 when the channel closed before any status came.
    pub status: i32,
    /// The command's stdout, at most [`OUTPUT_CAP`] bytes.
    pub stdout: Vec<u8>,
    /// The command's stderr, at most [`OUTPUT_CAP`] bytes.
    pub stderr: Vec<u8>,
}

/// What a command reads on stdin.
enum Input<'a> {
    None,
    Bytes(&'a [u8]),
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
    /// Addresses the provider's credential-bound API named.
    seen: Arc<SeenAddresses>,
    journal: Arc<Journal>,
}

/// Who named a host the broker is asked to admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The user's configuration (`[env.<name>.ssh] hosts`).
    Config,
    /// The provider plugin (a `status` endpoint, an applied resource).
    Provider,
}

impl SshBroker {
    /// A broker that admits no host yet (see [`SshBroker::admit`]) and
    /// journals every call to `journal`.
    pub fn new(settings: SshSettings, journal: Arc<Journal>) -> Self {
        Self {
            settings: RwLock::new(settings),
            pool: pool::Pool::default(),
            allowed: RwLock::default(),
            plugin_declared: false,
            seen: Arc::default(),
            journal,
        }
    }

    /// Addresses the provider's API named, as the HTTP broker records them.
    pub fn with_seen_addresses(mut self, seen: Arc<SeenAddresses>) -> Self {
        self.seen = seen;
        self
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

    /// Let Soar and the plugin reach `address:port` (as the config or the
    /// provider named it), connecting as `spec`; returns the spec admitted.
    ///
    /// A host the provider named is admitted only with evidence: an answer
    /// of its credential-bound API named the address in this command, and
    /// the address it connects to is public — unless the user's config
    /// names it (`hosts`, `address_map`). Its new host key is trusted
    /// (`spec.accept_new`) only then too.
    pub fn admit(
        &self,
        address: &str,
        port: u16,
        spec: HostSpec,
        by: NamedBy,
    ) -> Result<HostSpec, SshError> {
        let settings = self.settings();
        let config_named = by == NamedBy::Config
            || settings.named_hosts.contains(address)
            || settings.named_hosts.contains(&format!("{address}:{port}"));
        if !config_named {
            let section = &settings.section;
            if !self.seen.contains(address) {
                return Err(SshError::Denied(format!(
                    "the provider reported SSH host {address}:{port}, but no answer of its API named that address in this command; Soar connects only to hosts the provider's API reports or your config lists (add it to {section} hosts if it is yours)"
                )));
            }
            let bare = spec.address.trim_start_matches('[').trim_end_matches(']');
            let ip = bare.parse::<std::net::IpAddr>();
            if spec.reach.jumps.is_empty() {
                if let Ok(ip) = ip
                    && !is_public(ip)
                {
                    return Err(SshError::Denied(format!(
                        "the provider reported SSH host {address}:{port}, a private, loopback or link-local address; Soar connects to such addresses only when your config names them (add it to {section} hosts or address_map, or set {section} bastion to reach private hosts through it)"
                    )));
                }
            } else {
                behind_bastion(address, port, ip.ok(), section)?;
            }
        }
        let spec = HostSpec {
            accept_new: spec.accept_new && by == NamedBy::Provider,
            public_only: !config_named,
            ..spec
        };
        self.allowed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (address.to_string(), port),
                HostSpec {
                    accept_new: false,
                    ..spec.clone()
                },
            );
        Ok(spec)
    }

    /// Where and as whom to connect for `name` (a host the config lists or
    /// a provider reported): soar.toml's values in `given` first, then the
    /// SSH client config and `bastion` ([`route`] has the precedence).
    pub fn route(&self, name: &str, given: &Given) -> Result<Route, SshError> {
        let settings = self.settings();
        settings
            .router
            .route(name, given)
            .map_err(|e| SshError::Denied(format!("reaching {name} ({}): {e}", settings.section)))
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
            // The user Soar logs in as comes from the config (or, when it
            // says nothing, the provider's answer): a plugin may not log in
            // as anyone else.
            Some(spec) if !user.is_empty() && user != spec.user => Err(SshError::Denied(format!(
                "plugin '{plugin}' asked to log in to {address}:{port} as '{}', but Soar logs in there as '{}' (set by {} user or the provider); a plugin cannot choose another user",
                user.chars().take(64).collect::<String>(),
                spec.user,
                self.settings().section
            ))),
            Some(spec) => Ok(HostSpec {
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
            t = quote(&tmp)?,
            r = quote(remote)?
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

    /// Stream `local` to `remote` with `mode`; verified with sha256 on the
    /// host, moved into place only when it matches. Returns the bytes sent:
    /// 0 when `remote` already had the same content.
    pub async fn upload(
        &self,
        who: &str,
        host: &HostSpec,
        local: &Path,
        remote: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        self.upload_metered(who, host, local, remote, mode, &|_| {})
            .await
    }

    /// [`Self::upload`], calling `on_sent` with each piece of the file as
    /// the channel takes it (at most [`PIECE`] bytes, counted once the SSH
    /// session accepted them within the peer's window, so a progress bar
    /// shows bytes really sent, not bytes read from disk).
    pub async fn upload_metered(
        &self,
        who: &str,
        host: &HostSpec,
        local: &Path,
        remote: &str,
        mode: u32,
        on_sent: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, SshError> {
        let started = Instant::now();
        let r = self.upload_inner(host, local, remote, mode, on_sent).await;
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

    /// One channel, one round trip: the host first prints the digest of
    /// what is at `remote` now (hashed only when the size matches) while this
    /// side hashes the local file; this side answers with its digest, and
    /// streams the file only when the two differ. The host hashes what it
    /// received and moves it into place only when the digests match. See
    /// [`upload_script`].
    async fn upload_inner(
        &self,
        host: &HostSpec,
        local: &Path,
        remote: &str,
        mode: u32,
        on_sent: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, SshError> {
        let reading =
            |e: std::io::Error| SshError::Failed(format!("reading {}: {e}", local.display()));
        let size = tokio::fs::metadata(local).await.map_err(reading)?.len();
        let script = upload_script(remote, size, mode)?;
        // Generous: a slow link moves at least ~64 KiB/s.
        let timeout = Duration::from_secs(120 + size / (64 << 10));
        let fail = |e: russh::Error| SshError::Failed(format!("on {}: {e}", host.describe()));
        let work = async {
            let (mut out, write) = self.start(host, &script).await?;
            let (have, hashed) = tokio::join!(out.first_line(), sha256_file(local));
            let digest = match hashed {
                Ok((digest, n)) if n == size => digest,
                other => {
                    // The host's `read` sees end-of-file and gives up.
                    let _ = write.eof().await;
                    return Err(match other {
                        Err(e) => reading(e),
                        Ok((_, n)) => SshError::Failed(format!(
                            "{} changed while it was being read ({size} bytes, then {n})",
                            local.display()
                        )),
                    });
                }
            };
            let Some(have) = have else {
                // The command ended before saying what the host has: never a
                // success, whatever its exit status.
                let _ = write.eof().await;
                let o = out.finish().await;
                return Err(SshError::Failed(format!(
                    "uploading {remote} failed before it began (exit {}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            };
            let same = have == digest;
            let send = async {
                let sent = async {
                    write
                        .data_bytes(format!("{digest}\n").into_bytes())
                        .await
                        .map_err(SendError::Ssh)?;
                    if same {
                        Ok(0)
                    } else {
                        send_file(&write, local, on_sent).await
                    }
                }
                .await;
                // Always: on a failed read the host sees a short file and
                // refuses it rather than waiting for the rest.
                let _ = write.eof().await;
                sent
            };
            let (sent, output) = drive(send, out).await;
            let lost = output.status == -1;
            match (check(output, "uploading", remote), sent) {
                // Exit 0: the host verified a file with this digest and moved
                // it into place (or already had it).
                (Ok(_), _) => Ok(if same { 0 } else { size }),
                (Err(_), Some(Err(SendError::Read(e)))) => Err(reading(e)),
                (Err(_), Some(Err(SendError::Ssh(e)))) if lost => Err(fail(e)),
                (Err(_), _) if lost => Err(SshError::Failed(format!(
                    "uploading {remote}: the connection to {} was lost before the host confirmed the file",
                    host.describe()
                ))),
                (Err(e), _) => Err(e),
            }
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            SshError::Timeout(format!(
                "uploading {} to {remote} on {} did not finish within {} s",
                local.display(),
                host.describe(),
                timeout.as_secs()
            ))
        })?
    }

    /// Close every connection (end of a command).
    pub async fn close(&self) {
        self.pool.close_all().await;
    }

    /// Open a channel on the host's pooled connection and start `command`
    /// (through `sudo -n` when the host says so).
    async fn start(
        &self,
        host: &HostSpec,
        command: &str,
    ) -> Result<(Remote, ChannelWriteHalf<Msg>), SshError> {
        self.start_with(host, command, None).await
    }

    /// [`Self::start`], first asking for a pseudo-terminal of `pty`'s
    /// terminal type and size (for `soar exec --interactive`).
    async fn start_with(
        &self,
        host: &HostSpec,
        command: &str,
        pty: Option<&stream::Pty>,
    ) -> Result<(Remote, ChannelWriteHalf<Msg>), SshError> {
        let s = self.settings();
        let conn = self
            .pool
            .get(host, &s.known_hosts, &s.auth, s.connect_timeout)
            .await?;
        let line = if host.sudo {
            format!("sudo -n sh -c {}", quote(command)?)
        } else {
            command.to_string()
        };
        let fail = |e: russh::Error| SshError::Failed(format!("on {}: {e}", host.describe()));
        let channel = conn.channel_open_session().await.map_err(fail)?;
        if let Some(p) = pty {
            channel
                .request_pty(true, &p.term, p.cols, p.rows, 0, 0, &[])
                .await
                .map_err(fail)?;
        }
        channel.exec(true, line.as_bytes()).await.map_err(fail)?;
        let (read, write) = channel.split();
        Ok((
            Remote {
                read,
                out: Output {
                    status: -1,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                },
                line_seen: 0,
            },
            write,
        ))
    }

    async fn run(
        &self,
        host: &HostSpec,
        command: &str,
        input: Input<'_>,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let fail = |e: russh::Error| SshError::Failed(format!("on {}: {e}", host.describe()));
        let work = async {
            let (out, write) = self.start(host, command).await?;
            let send = async {
                match input {
                    Input::None => {}
                    Input::Bytes(b) => write.data_bytes(b.to_vec()).await.map_err(fail)?,
                }
                write.eof().await.map_err(fail)?;
                Ok::<_, SshError>(())
            };
            let (sent, out) = drive(send, out).await;
            if out.status == -1 {
                return Err(match sent {
                    Some(Err(e)) => e,
                    _ => SshError::Failed(format!(
                        "the connection to {} was lost before `{}` finished",
                        host.describe(),
                        clip(command, 200)
                    )),
                });
            }
            // A command that exits without reading all of stdin is fine.
            if let Some(Err(e)) = sent
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

/// A host only a provider named, reached through the user's bastion: it
/// may have a private address (that is what bastions are for), but it must
/// be an IP address (a name would be resolved by the bastion, out of
/// Soar's sight) and not one that means the bastion itself or its cloud's
/// metadata service (loopback, link-local, unspecified, multicast).
fn behind_bastion(
    address: &str,
    port: u16,
    ip: Option<std::net::IpAddr>,
    section: &str,
) -> Result<(), SshError> {
    use std::net::IpAddr;
    let refused = match ip {
        None => "a host name, which the bastion would resolve out of Soar's sight",
        Some(ip) if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() => {
            "a loopback, unspecified or multicast address"
        }
        Some(IpAddr::V4(v4)) if v4.is_link_local() || v4.is_broadcast() => {
            "a link-local or broadcast address"
        }
        Some(IpAddr::V6(v6)) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "a link-local address",
        Some(_) => return Ok(()),
    };
    Err(SshError::Denied(format!(
        "the provider reported SSH host {address}:{port} behind the bastion, {refused}; Soar reaches provider hosts through a bastion only by IP address (list the host in {section} hosts if it is yours)"
    )))
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

/// sha256 (hex) and size of a local file, read in chunks (on a blocking
/// thread: one hand-off for the whole file rather than one per read).
pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read as _;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            size += n as u64;
            h.update(&buf[..n]);
        }
        Ok((hex::encode(h.finalize()), size))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// How much of a file is read at a time (hashing, and sending: the reader
/// keeps up to [`READ_AHEAD`] chunks ready, so an upload holds at most a few
/// MiB of the file in memory).
const CHUNK: usize = 1 << 20;
const READ_AHEAD: usize = 4;

/// Files at least this large are hashed with `openssl dgst` when the host
/// has it: OpenSSL uses the CPU's SHA instructions, coreutils' `sha256sum`
/// does not (256 MiB: ~0.2 s against ~1.1 s on the bench machine).
const FAST_HASH_FROM: u64 = 1 << 20;

/// The host's side of [`SshBroker::upload`], for POSIX `sh`.
///
/// 1. Print the sha256 of the file at `remote` now, or `-` when there is
///    none or its size differs from `size` (then it is not read at all).
/// 2. Read one line from stdin: the digest the file must have. When it is
///    the digest just printed, only set the mode: nothing else follows.
/// 3. Otherwise the rest of stdin is the file: `cat` writes it to
///    `remote.soar-part`, the host hashes what it wrote, and only a
///    matching digest moves it into place (`mv -f`, atomic); a short or
///    corrupted upload is removed and the command fails with exit 97.
///
/// The hash runs after the last byte arrived rather than alongside (`tee`
/// into a FIFO): measured on the 2-core bench, `tee`'s 8 KiB copies cost
/// the host more CPU (~0.4 s per 256 MiB) than hashing the page-cached file
/// afterwards takes in wall time (~0.2 s with `openssl`).
fn upload_script(remote: &str, size: u64, mode: u32) -> Result<String, SshError> {
    let hash_tool = if size >= FAST_HASH_FROM {
        "H=sha256sum; command -v openssl >/dev/null 2>&1 && H='openssl dgst -sha256 -r'"
    } else {
        "H=sha256sum"
    };
    // `d FILE` sets `x` to FILE's sha256 (`sha256sum` when `$H` printed
    // something else).
    Ok(format!(
        "r={r}; t={t}; {hash_tool}; \
         d() {{ x=$($H < \"$1\") && x=${{x%% *}} && [ ${{#x}} -eq 64 ] || {{ x=$(sha256sum < \"$1\"); x=${{x%% *}}; }}; }}; \
         have=-; if [ -f \"$r\" ] && n=$(wc -c < \"$r\") && [ $n -eq {size} ]; then d \"$r\"; have=$x; fi; \
         echo \"$have\"; IFS= read -r want || exit 96; \
         case $want in *[!0-9a-f]*|'') echo 'bad digest line' >&2; exit 96;; esac; \
         if [ \"$want\" = \"$have\" ]; then exec chmod {mode:o} \"$r\"; fi; \
         cat > \"$t\" || {{ rm -f \"$t\"; exit 97; }}; d \"$t\"; \
         if [ \"$x\" = \"$want\" ]; then chmod {mode:o} \"$t\" && exec mv -f \"$t\" \"$r\"; rm -f \"$t\"; exit 98; fi; \
         rm -f \"$t\"; echo \"sha256 on the host is $x, expected $want\" >&2; exit 97",
        r = quote(remote)?,
        t = quote(&format!("{remote}.soar-part"))?,
    ))
}

/// Why streaming a file failed.
enum SendError {
    Read(std::io::Error),
    Ssh(russh::Error),
}

/// How much of a chunk goes to the channel at a time: each piece is
/// reported to the upload's `on_sent` once the channel took it, so a bar
/// moves several times a second even on a slow link. A slice of the chunk,
/// not a copy.
const PIECE: usize = 256 << 10;

/// Stream `path` on the channel's stdin; the bytes sent. A blocking thread
/// reads [`CHUNK`]s ahead (at most [`READ_AHEAD`] waiting), each sent as
/// it is (no copy into the channel) in [`PIECE`]s, each reported to
/// `on_sent` once sent.
async fn send_file(
    write: &ChannelWriteHalf<Msg>,
    path: &Path,
    on_sent: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, SendError> {
    use std::io::Read as _;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
    let path = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            match (&mut f).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(buf.into())).is_err() {
                        return; // the sender gave up
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut sent = 0u64;
    let r = async {
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(SendError::Read)?;
            for start in (0..chunk.len()).step_by(PIECE) {
                let piece = chunk.slice(start..(start + PIECE).min(chunk.len()));
                let n = piece.len() as u64;
                write.data_bytes(piece).await.map_err(SendError::Ssh)?;
                sent += n;
                on_sent(n);
            }
        }
        Ok(sent)
    }
    .await;
    drop(rx);
    let _ = reader.await;
    r
}

/// Feed a command's stdin (`send`) while collecting its output, until the
/// channel closes. A send still waiting then is dropped (`None`): when the
/// connection died it would wait for window space forever.
async fn drive<T>(send: impl Future<Output = T>, out: Remote) -> (Option<T>, Output) {
    let mut send = std::pin::pin!(send);
    let mut finish = std::pin::pin!(out.finish());
    tokio::select! {
        sent = &mut send => (Some(sent), finish.await),
        out = &mut finish => {
            // One last look: the send may have completed meanwhile.
            let sent = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(match send.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => Some(v),
                    std::task::Poll::Pending => None,
                })
            })
            .await;
            (sent, out)
        }
    }
}

/// A running command's output side.
struct Remote {
    read: ChannelReadHalf,
    out: Output,
    /// How much of stdout was already searched for a newline.
    line_seen: usize,
}

impl Remote {
    /// Take the next message into `out`; `false` once the channel closed.
    async fn pump(&mut self) -> bool {
        match self.read.wait().await {
            Some(ChannelMsg::Data { data }) => push_capped(&mut self.out.stdout, &data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                push_capped(&mut self.out.stderr, &data)
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => self.out.status = exit_status as i32,
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.out.status = 128;
                push_capped(
                    &mut self.out.stderr,
                    format!("killed by signal {signal_name:?}").as_bytes(),
                );
            }
            Some(ChannelMsg::Close) | None => return false,
            Some(_) => {}
        }
        true
    }

    /// The first line of stdout (taken out of it), or `None` when the
    /// command ended without printing one.
    async fn first_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.out.stdout[self.line_seen..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line: Vec<u8> = self.out.stdout.drain(..=self.line_seen + i).collect();
                self.line_seen = 0;
                return Some(String::from_utf8_lossy(&line).trim().to_string());
            }
            self.line_seen = self.out.stdout.len();
            if !self.pump().await {
                return None;
            }
        }
    }

    /// Everything until the channel closes.
    async fn finish(mut self) -> Output {
        while self.pump().await {}
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    /// Run the upload script with `sh` (dash on Debian) here, feeding `stdin`.
    fn run(shell: &str, script: &str, stdin: &[u8]) -> (i32, String, String) {
        let mut child = Command::new(shell)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The script may exit before reading everything (a skip).
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(b))
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn provider_hosts_behind_a_bastion_may_be_private_ips_only() {
        let seen = Arc::new(SeenAddresses::default());
        seen.record(b"10.0.0.5 db.internal 127.0.0.1 169.254.169.254 203.0.113.7");
        let broker = SshBroker::new(SshSettings::default(), Arc::default())
            .with_seen_addresses(seen)
            .with_plugin_declared(true);
        let spec = |address: &str, bastion: bool| HostSpec {
            address: address.into(),
            port: 22,
            user: "root".into(),
            accept_new: true,
            sudo: false,
            public_only: false,
            reach: Reach {
                jumps: if bastion {
                    vec![Hop {
                        address: "bastion.example".into(),
                        port: 22,
                        user: "ops".into(),
                        identity_files: Vec::new(),
                    }]
                } else {
                    Vec::new()
                },
                identity_files: Vec::new(),
            },
        };
        let admit =
            |a: &str, bastion: bool| broker.admit(a, 22, spec(a, bastion), NamedBy::Provider);
        // Through the user's bastion: a private address is what it is for.
        let ok = admit("10.0.0.5", true).unwrap();
        assert_eq!(ok.reach.jumps.len(), 1);
        assert!(ok.accept_new);
        // The same host without one: refused, as before.
        assert!(matches!(admit("10.0.0.5", false), Err(SshError::Denied(_))));
        // Names (resolved by the bastion, unseen), the bastion's loopback
        // and the metadata address: refused.
        for a in ["db.internal", "127.0.0.1", "169.254.169.254"] {
            let e = admit(a, true).unwrap_err();
            assert!(
                matches!(&e, SshError::Denied(m) if m.contains("behind the bastion")),
                "{a}: {e}"
            );
        }
        // Public addresses are fine either way; unseen ones never.
        assert!(admit("203.0.113.7", true).is_ok());
        assert!(
            matches!(admit("198.51.100.1", true), Err(SshError::Denied(m)) if m.contains("no answer"))
        );
        // The plugin's target keeps the bastion: it cannot go around it.
        let t = broker.check_plugin_target("p", "10.0.0.5", 22, "").unwrap();
        assert_eq!(t.reach.jumps[0].address, "bastion.example");
    }

    #[test]
    fn upload_script_sends_verifies_and_skips() {
        for shell in ["sh", "bash"] {
            for len in [3usize, (FAST_HASH_FROM + 5) as usize] {
                let dir = tempfile::tempdir().unwrap();
                let dest = dir.path().join("a file");
                let remote = dest.display().to_string();
                let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
                let digest = sha(&body);
                let script = upload_script(&remote, len as u64, 0o640).unwrap();
                let line = format!("{digest}\n");

                // New file: the host has nothing, receives, verifies, moves.
                let input = [line.as_bytes(), &body].concat();
                let (code, out, err) = run(shell, &script, &input);
                assert_eq!((code, out.as_str()), (0, "-\n"), "{shell}: {err}");
                assert_eq!(std::fs::read(&dest).unwrap(), body);
                assert_eq!(mode(&dest), 0o640);
                assert!(!Path::new(&format!("{remote}.soar-part")).exists());

                // Same content: the host prints the digest; the answer is
                // the digest alone, and only the mode changes.
                let again = upload_script(&remote, len as u64, 0o600).unwrap();
                let (code, out, err) = run(shell, &again, line.as_bytes());
                assert_eq!(code, 0, "{shell}: {err}");
                assert_eq!(out, line);
                assert_eq!(mode(&dest), 0o600);

                // A short upload (the connection dropped) is refused and
                // removed; the file in place is untouched.
                let other: Vec<u8> = body.iter().map(|b| b ^ 1).collect();
                let input = [
                    format!("{}\n", sha(&other)).as_bytes(),
                    &other[..other.len() - 1],
                ]
                .concat();
                let (code, out, err) = run(shell, &script, &input);
                assert_eq!(code, 97, "{shell}: {out} {err}");
                assert!(err.contains("sha256 on the host is"), "{err}");
                assert_eq!(std::fs::read(&dest).unwrap(), body);
                assert!(!Path::new(&format!("{remote}.soar-part")).exists());

                // A file of another size is not even hashed.
                let (_, out, _) = run(shell, &upload_script(&remote, 1, 0o600).unwrap(), b"");
                assert_eq!(out, "-\n");

                // Garbage instead of a digest.
                let (code, _, err) = run(shell, &script, b"; rm -rf /\n");
                assert_eq!(code, 96, "{err}");
                assert_eq!(std::fs::read(&dest).unwrap(), body);
            }
        }
    }
}
