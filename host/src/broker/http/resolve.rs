//! DNS resolution that refuses non-public addresses for hosts the user did
//! not name. Checked on the addresses actually connected to, so a name that
//! rebinds to 127.0.0.1 or 169.254.169.254 between checks gains nothing.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::broker::addresses::is_public;

/// The resolver's refusal; the broker reports it as a denial.
#[derive(Debug)]
pub struct PrivateAddress {
    host: String,
    addr: std::net::IpAddr,
}

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, a private or local address; only hosts you set as an endpoint override in soar.toml may",
            self.host, self.addr
        )
    }
}

impl std::error::Error for PrivateAddress {}

/// Resolves with the system resolver, then filters.
pub struct GuardedResolver {
    user_named: Arc<HashSet<String>>,
}

impl GuardedResolver {
    /// Hosts in `user_named` may resolve anywhere; others only to public IPs.
    pub fn new(user_named: Vec<String>) -> Self {
        Self {
            user_named: Arc::new(user_named.into_iter().collect()),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.user_named.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if trusted {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let public: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                let addr = addrs
                    .first()
                    .map(|a| a.ip())
                    .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
                return Err(Box::new(PrivateAddress { host, addr })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}
