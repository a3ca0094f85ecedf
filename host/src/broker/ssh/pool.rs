//! One SSH connection per host for a whole command, shared by every step
//! (each command or upload is a channel on it), reconnected if it drops.
//!
//! A host behind bastions (`ProxyJump`, `[env.<name>.ssh] bastion`) is
//! reached through them: the last bastion's pooled connection opens a
//! `direct-tcpip` channel to the host, and the host's SSH session runs over
//! that channel's stream. Each hop is an SSH session of its own, with its
//! own host-key check against known_hosts (a bastion's unknown key is never
//! trusted automatically), so twenty hosts behind one bastion share one
//! connection to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;

use super::auth::{AuthConfig, authenticate};
use super::known_hosts::KnownHosts;
use super::route::Reach;
use super::{HostSpec, SshError};

/// russh's client callbacks: only host key verification matters here.
pub(crate) struct Client {
    known: KnownHosts,
    host: String,
    port: u16,
    accept_new: bool,
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Ssh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for ConnectError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = ConnectError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Err(ConnectError::HostKey(format!(
                "{}:{} presented a host certificate; Soar verifies plain host keys only",
                self.host, self.port
            )));
        };
        self.known
            .verify(&self.host, self.port, key, self.accept_new)
            .map(|_| true)
            .map_err(ConnectError::HostKey)
    }
}

pub(crate) type Conn = Handle<Client>;

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

/// Live connections by `user@address:port`.
#[derive(Default)]
pub(crate) struct Pool {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

impl Pool {
    /// The connection to `host`, made on first use (one at a time per host).
    pub(crate) async fn get(
        &self,
        host: &HostSpec,
        known: &KnownHosts,
        auth: &AuthConfig,
        connect_timeout: Duration,
    ) -> Result<Arc<Conn>, SshError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(host.key()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let conn = match host.reach.jumps.split_last() {
            None => connect(host, known, auth, connect_timeout).await?,
            Some((last, before)) => {
                let bastion = HostSpec {
                    address: last.address.clone(),
                    port: last.port,
                    user: last.user.clone(),
                    // A bastion is the user's own machine: its key must be
                    // known already, and its address may be private.
                    accept_new: false,
                    sudo: false,
                    public_only: false,
                    reach: Reach {
                        jumps: before.to_vec(),
                        identity_files: last.identity_files.clone(),
                    },
                };
                let through = Box::pin(self.get(&bastion, known, auth, connect_timeout))
                    .await
                    .map_err(|e| via_bastion(&bastion, e))?;
                connect_through(&through, &bastion, host, known, auth, connect_timeout).await?
            }
        };
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Close every connection.
    pub(crate) async fn close_all(&self) {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in slots {
            if let Some(c) = s.lock().await.take() {
                let _ = c
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        }
    }
}

/// A failure to reach a bastion, said as one: the host behind it was never
/// contacted.
fn via_bastion(bastion: &HostSpec, e: SshError) -> SshError {
    let say = |m: String| format!("bastion {}: {m}", bastion.describe_route());
    match e {
        SshError::Denied(m) => SshError::Denied(say(m)),
        SshError::Timeout(m) => SshError::Timeout(say(m)),
        SshError::HostKey(m) => SshError::HostKey(say(m)),
        SshError::Failed(m) => SshError::Failed(say(m)),
    }
}

/// The SSH client settings every connection uses.
fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        window_size: 8 << 20,
        preferred: preferred(),
        ..Default::default()
    })
}

/// A direct TCP connection to `host`.
async fn connect(
    host: &HostSpec,
    known: &KnownHosts,
    auth: &AuthConfig,
    connect_timeout: Duration,
) -> Result<Conn, SshError> {
    let addr = address_of(host).await?;
    let shown = host.describe();
    let attempt = async {
        let handle = client::connect(client_config(), addr, handler_for(host, known)).await;
        let mut handle = handle.map_err(|e| connect_error(e, &shown))?;
        log_in(&mut handle, host, auth).await?;
        Ok(handle)
    };
    within(connect_timeout, &shown, attempt).await
}

/// `host`'s SSH session over a `direct-tcpip` channel that `bastion`'s
/// connection opens to it; `host`'s key is checked as for a direct
/// connection (known_hosts under the host's own name and port).
async fn connect_through(
    through: &Conn,
    bastion: &HostSpec,
    host: &HostSpec,
    known: &KnownHosts,
    auth: &AuthConfig,
    connect_timeout: Duration,
) -> Result<Conn, SshError> {
    let shown = host.describe_route();
    let attempt = async {
        let channel = through
            .channel_open_direct_tcpip(host.address.clone(), host.port.into(), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                SshError::Failed(format!(
                    "the bastion {} could not open a connection to {}:{} ({e}); check that the host is up and that the bastion's sshd allows forwarding there (AllowTcpForwarding, PermitOpen)",
                    bastion.describe(),
                    host.address,
                    host.port
                ))
            })?;
        let stream = channel.into_stream();
        let handle =
            client::connect_stream(client_config(), stream, handler_for(host, known)).await;
        let mut handle = handle.map_err(|e| connect_error(e, &shown))?;
        log_in(&mut handle, host, auth).await?;
        Ok(handle)
    };
    within(connect_timeout, &shown, attempt).await
}

/// The client handler that checks `host`'s key against `known`.
fn handler_for(host: &HostSpec, known: &KnownHosts) -> Client {
    Client {
        known: known.clone(),
        host: host.address.clone(),
        port: host.port,
        accept_new: host.accept_new,
    }
}

/// A failed SSH handshake with `shown`; a host key refusal stays one.
fn connect_error(e: ConnectError, shown: &str) -> SshError {
    match e {
        ConnectError::HostKey(m) => SshError::HostKey(m),
        ConnectError::Ssh(e) => SshError::Failed(format!("connecting to {shown}: {e}")),
    }
}

/// `attempt` (connecting to `shown` and logging in), or a timeout error
/// after `connect_timeout`.
async fn within(
    connect_timeout: Duration,
    shown: &str,
    attempt: impl std::future::Future<Output = Result<Conn, SshError>>,
) -> Result<Conn, SshError> {
    tokio::time::timeout(connect_timeout, attempt)
        .await
        .map_err(|_| {
            SshError::Timeout(format!(
                "connecting to {shown} took longer than {} s",
                connect_timeout.as_secs()
            ))
        })?
}

async fn log_in(handle: &mut Conn, host: &HostSpec, auth: &AuthConfig) -> Result<(), SshError> {
    authenticate(handle, &host.user, auth, &host.reach.identity_files)
        .await
        .map_err(|m| SshError::Failed(format!("logging in to {}: {m}", host.describe_route())))
}

/// Where to connect: the host's address resolved here, so that a host
/// name a provider reported ([`HostSpec::public_only`]) is refused when it
/// resolves only to private, loopback or link-local addresses (a rebinding
/// name gains nothing: this is the address connected to).
async fn address_of(host: &HostSpec) -> Result<std::net::SocketAddr, SshError> {
    let bare = host.address.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, host.port))
        .await
        .map_err(|e| SshError::Failed(format!("resolving {}: {e}", host.describe())))?
        .collect();
    let usable = addrs
        .iter()
        .find(|a| !host.public_only || crate::broker::addresses::is_public(a.ip()));
    match (usable, addrs.first()) {
        (Some(a), _) => Ok(*a),
        (None, Some(a)) => Err(SshError::Denied(format!(
            "{} resolves to {}, a private, loopback or link-local address; Soar connects to such addresses only when your config names the host",
            host.describe(),
            a.ip()
        ))),
        (None, None) => Err(SshError::Failed(format!(
            "{} resolves to no address",
            host.describe()
        ))),
    }
}

/// russh's default algorithms, with AES-256-GCM ahead of
/// ChaCha20-Poly1305 on CPUs with AES and carry-less multiply instructions.
/// There ring's AES-GCM costs the client about half of what ChaCha20-Poly1305
/// does, and OpenSSH's sshd decrypts it with OpenSSL's AES-NI code rather
/// than its own Poly1305; on the P5 bench (256 MiB on loopback) the upload
/// took ~0.8 s against ~1.1 s, with ~250 ms less CPU on each side.
fn preferred() -> russh::Preferred {
    use russh::cipher;
    const AES_FIRST: &[cipher::Name] = &[
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ];
    let defaults = russh::Preferred::default();
    if aes_in_hardware() {
        russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(AES_FIRST),
            ..defaults
        }
    } else {
        defaults
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(address: &str, public_only: bool) -> HostSpec {
        HostSpec {
            address: address.into(),
            port: 22,
            user: "root".into(),
            accept_new: false,
            sudo: false,
            public_only,
            reach: Reach::default(),
        }
    }

    #[tokio::test]
    async fn provider_named_hosts_must_resolve_to_public_addresses() {
        for name in ["localhost", "127.0.0.1", "[::1]"] {
            let e = address_of(&spec(name, true)).await.unwrap_err();
            assert!(
                matches!(&e, SshError::Denied(m) if m.contains("private, loopback")),
                "{name}: {e:?}"
            );
        }
        // The config may name them.
        let a = address_of(&spec("127.0.0.1", false)).await.unwrap();
        assert_eq!(a, "127.0.0.1:22".parse().unwrap());
    }
}
