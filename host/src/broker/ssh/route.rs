//! How a host is reached: its real name, port and user, the key files to
//! offer, and the bastions (`ProxyJump`) in front of it — soar.toml's
//! `[env.<name>.ssh]` first, then the user's SSH client config.
//!
//! Precedence, per value (the first that says something wins):
//! - address: `address_map` → `HostName` → the name as given;
//! - port: `hosts = ["h:2222"]`, the provider's endpoint, `port` or
//!   `address_map` → `Port` → 22;
//! - user: `user` → the provider's endpoint → `User` → `root`;
//! - key files: `identity_file` → `IdentityFile`s → ssh's default files;
//! - bastions: `bastion` → `ProxyJump` → none.
//!
//! The provider's answer plays the part of ssh's command line (`ssh -p
//! PORT user@host`), which OpenSSH also lets win over the config file.
//! Each hop is itself resolved through the client config (an alias for the
//! bastion works); a hop's user defaults to the local user, as in ssh, and
//! the first hop's own `ProxyJump` is followed, as `ssh -J` does.

use std::path::PathBuf;

use super::client_config::{ClientConfig, HostEntry, Jump, local_user, parse_jumps};

/// Most hops in front of one host (OpenSSH's limit for nested jumps too).
pub const MAX_HOPS: usize = 8;

/// One bastion a connection goes through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The address connected to (after the client config's `HostName`).
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// The user Soar logs in as there.
    pub user: String,
    /// Its `IdentityFile`s from the client config (when soar.toml names no
    /// `identity_file`).
    pub identity_files: Vec<PathBuf>,
}

impl Hop {
    /// `user@address:port`.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// How a host is reached beyond its address: the default is directly, with
/// the broker's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Reach {
    /// Bastions, outermost first: each is reached through the ones before
    /// it, and the host through the last.
    pub jumps: Vec<Hop>,
    /// The host's `IdentityFile`s from the client config.
    pub identity_files: Vec<PathBuf>,
}

impl Reach {
    /// ` via a@b:22, c@d:22`, or nothing for a direct connection.
    pub fn describe(&self) -> String {
        if self.jumps.is_empty() {
            return String::new();
        }
        let hops: Vec<String> = self.jumps.iter().map(Hop::describe).collect();
        format!(" via {}", hops.join(", "))
    }
}

/// What soar.toml (or the provider's answer) fixed for one host; these win
/// over the client config.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `address_map`'s target for the host, with its port when it names one.
    pub mapped: Option<(String, Option<u16>)>,
    /// A port from `hosts`, the provider's endpoint or `port`.
    pub port: Option<u16>,
    /// `[env.<name>.ssh] user`.
    pub user: Option<String>,
    /// The provider's endpoint user (below soar.toml's, above the config's).
    pub provider_user: Option<String>,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The address connected to (from the last hop, when there are hops).
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// Key files and bastions.
    pub reach: Reach,
}

/// The client config and `bastion` setting routes are resolved against.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// The SSH client config (`~/.ssh/config`, or `[env.<name>.ssh] config`).
    pub client: Option<std::sync::Arc<ClientConfig>>,
    /// `[env.<name>.ssh] bastion`, parsed: it replaces any `ProxyJump`.
    pub bastion: Vec<Jump>,
}

impl Router {
    /// The route to `name` given what soar.toml fixed; the error says which
    /// `ProxyJump` could not be read or why the chain is refused.
    pub fn route(&self, name: &str, given: &Given) -> Result<Route, String> {
        let entry = self.entry(name);
        let (address, mapped_port) = match &given.mapped {
            Some((a, p)) => (a.clone(), *p),
            None => (entry.hostname.clone(), None),
        };
        let port = mapped_port.or(given.port).or(entry.port).unwrap_or(22);
        let user = given
            .user
            .clone()
            .or_else(|| given.provider_user.clone())
            .or_else(|| entry.user.clone())
            .unwrap_or_else(|| "root".into());
        let jumps = if !self.bastion.is_empty() {
            self.bastion.clone()
        } else {
            match &entry.proxy_jump {
                Some(pj) => parse_jumps(pj).map_err(|e| self.in_config(&e))?,
                None => Vec::new(),
            }
        };
        let jumps = self.hops(&jumps, 0)?;
        Ok(Route {
            address,
            port,
            user: user.clone(),
            reach: Reach {
                jumps,
                identity_files: entry.identity_paths(name, &user, port),
            },
        })
    }

    /// The hops for a `ProxyJump` list: the first hop's own `ProxyJump`
    /// first (recursively), then each hop resolved through the config.
    fn hops(&self, jumps: &[Jump], depth: usize) -> Result<Vec<Hop>, String> {
        let Some(first) = jumps.first() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let first_entry = self.entry(&first.host);
        if let Some(pj) = &first_entry.proxy_jump {
            let outer = parse_jumps(pj).map_err(|e| self.in_config(&e))?;
            if depth >= MAX_HOPS {
                return Err(format!(
                    "ProxyJump through {} nests deeper than {MAX_HOPS} hops (a loop in the SSH client config?)",
                    first.host
                ));
            }
            out = self.hops(&outer, depth + 1)?;
        }
        for j in jumps {
            let entry = self.entry(&j.host);
            let port = j.port.or(entry.port).unwrap_or(22);
            let user = j
                .user
                .clone()
                .or_else(|| entry.user.clone())
                .unwrap_or_else(local_user);
            out.push(Hop {
                identity_files: entry.identity_paths(&j.host, &user, port),
                address: entry.hostname,
                port,
                user,
            });
        }
        if out.len() > MAX_HOPS {
            return Err(format!(
                "a route of {} bastions is longer than Soar follows ({MAX_HOPS})",
                out.len()
            ));
        }
        Ok(out)
    }

    fn entry(&self, name: &str) -> HostEntry {
        match &self.client {
            Some(c) => c.resolve(name),
            None => HostEntry {
                hostname: name.to_string(),
                user: None,
                port: None,
                identity_files: Vec::new(),
                proxy_jump: None,
            },
        }
    }

    fn in_config(&self, e: &str) -> String {
        match &self.client {
            Some(c) => format!("{e} (in {})", c.path().display()),
            None => e.to_string(),
        }
    }
}
