//! One look at one host: is it reachable, and for each of its services,
//! does the health endpoint answer 2xx and does the manager run it?
//!
//! The probe is the rollout's own ([`Transport::probe_http`]): `GET
//! <path>` on 127.0.0.1 of the host, over the SSH connection for a remote
//! one, exactly as the deploy judged the release.

use std::time::Duration;

use serde::Serialize;

use super::metrics::{self, Metrics};
use super::{Place, Service};
use crate::rollout::local::LocalTransport;
use crate::rollout::transport::Transport;

/// How long a host may take to answer `true` before it counts as down.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// What one check of one service found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// [`Service::key`].
    pub key: String,
    /// The environment.
    pub env: String,
    /// The service.
    pub service: String,
    /// The host.
    pub host: String,
    /// Whether it answered 2xx.
    pub healthy: bool,
    /// The answer (`GET /health answered 200`) or why it failed.
    pub detail: String,
    /// The manager's numbers (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// What one check of one host found: the host down (one finding for all
/// its services), or a finding per service.
#[derive(Debug, Clone)]
pub enum HostFinding {
    /// The host did not answer; its services were not checked.
    Down {
        /// The host.
        host: String,
        /// The environments with services there.
        envs: Vec<String>,
        /// Why: the connection error.
        reason: String,
    },
    /// The host answered; one finding per service.
    Up {
        /// The host.
        host: String,
        /// Per service, in the order given.
        services: Vec<Finding>,
    },
}

/// Check every service of one host (all of `services` share it).
pub async fn host(services: &[Service], probe_timeout: Duration) -> HostFinding {
    let Some(first) = services.first() else {
        return HostFinding::Up {
            host: String::new(),
            services: Vec::new(),
        };
    };
    let host = first.host();
    if let Place::Ssh(r) = &first.place
        && let Err(e) = r.transport.exec("true", REACH_TIMEOUT).await
    {
        let mut envs: Vec<String> = services.iter().map(|s| s.env.clone()).collect();
        envs.sort();
        envs.dedup();
        return HostFinding::Down {
            host,
            envs,
            reason: format!("{e:#}"),
        };
    }
    let mut out = Vec::with_capacity(services.len());
    for svc in services {
        out.push(service(svc, probe_timeout).await);
    }
    HostFinding::Up {
        host,
        services: out,
    }
}

/// Check one service: probe its health endpoint and read its numbers.
pub async fn service(svc: &Service, probe_timeout: Duration) -> Finding {
    let (probe, numbers) = tokio::join!(probe(svc, probe_timeout), metrics::gather(svc));
    let numbers = numbers.ok();
    let (healthy, mut detail) = match probe {
        Ok((status, _)) if (200..300).contains(&status) => {
            (true, format!("GET {} answered {status}", svc.health_path))
        }
        Ok((status, body)) => (
            false,
            format!(
                "GET {} answered {status}: {}",
                svc.health_path,
                crate::terminal::line(body.trim())
            ),
        ),
        Err(e) => (
            false,
            format!(
                "GET {} on port {}: {}",
                svc.health_path,
                svc.health_port,
                crate::terminal::line(&format!("{e:#}"))
            ),
        ),
    };
    if !healthy && numbers.as_ref().is_some_and(|m| !m.up) {
        detail.push_str(" (the service manager reports it not running)");
    }
    Finding {
        key: svc.key(),
        env: svc.env.clone(),
        service: svc.spec.name.clone(),
        host: svc.host(),
        healthy,
        detail,
        metrics: numbers,
    }
}

async fn probe(svc: &Service, timeout: Duration) -> anyhow::Result<(u16, String)> {
    match &svc.place {
        Place::Local => {
            LocalTransport
                .probe_http(svc.health_port, &svc.health_path, timeout)
                .await
        }
        Place::Ssh(r) => {
            r.transport
                .probe_http(svc.health_port, &svc.health_path, timeout)
                .await
        }
    }
}
