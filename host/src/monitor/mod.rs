//! Watching services after the deploy: their metrics, their health over
//! time, and their logs as they are written.
//!
//! A deploy checks health once; a service can die an hour later. This
//! module is the library piece behind `soar monitor`, `soar top`, the
//! metrics in `soar status` and `soar logs -f`, written so that `soar serve`
//! can run the same loop:
//!
//! - [`metrics`]: up, restarts, uptime, CPU and resident memory, read where
//!   they live ([`proc`] for the local supervisor, `systemctl show` and
//!   `docker inspect`/`docker stats` over SSH).
//! - [`check`]: one look at one host's services: the HTTP health endpoint
//!   through the rollout's own probe, plus the service manager's view.
//! - [`tracker`]: findings → transitions (healthy → unhealthy → recovered);
//!   a failed probe of a service already known unhealthy is not news.
//! - [`announce`]: a transition goes to the audit trail, the webhook and
//!   the `on_unhealthy` hook — once per transition.
//! - [`schedule`]: the loop — hosts spread over the interval, bounded
//!   concurrency, one finding for a host that is down.
//! - [`follow`]: `soar logs -f` across the hosts of an environment.
//!
//! The module knows services, not projects: the command line resolves an
//! environment's targets (through the engine) and hands them in as
//! [`Service`]s, so this layer sits below the engine and the server.

pub mod announce;
pub mod check;
pub mod follow;
pub mod metrics;
pub mod proc;
pub mod schedule;
pub mod tracker;

use crate::rollout::Manager;
use crate::rollout::service::ServiceSpec;
use crate::rollout::ssh::SshTransport;

/// One deployed service on one host, as the monitor sees it.
#[derive(Clone)]
pub struct Service {
    /// The environment it belongs to.
    pub env: String,
    /// How it runs there: name, root, port.
    pub spec: ServiceSpec,
    /// The health endpoint's path (`[deploy] health.path`).
    pub health_path: String,
    /// The port the health endpoint answers on (`health.port`, else the
    /// service's).
    pub health_port: u16,
    /// Where it runs.
    pub place: Place,
}

/// Where a [`Service`] runs, and who manages it there.
#[derive(Clone)]
pub enum Place {
    /// This machine, under Soar's own supervisor.
    Local,
    /// A host reached over SSH: systemd or the Docker engine.
    Ssh(Box<Remote>),
}

/// A remote host and its service manager.
#[derive(Clone)]
pub struct Remote {
    /// The SSH connection commands go through.
    pub transport: SshTransport,
    /// systemd or Docker on that host.
    pub manager: Manager,
}

impl Service {
    /// The host, for findings and log prefixes: `local` or `user@host:port`.
    pub fn host(&self) -> String {
        match &self.place {
            Place::Local => "local".into(),
            Place::Ssh(r) => r.transport.host.describe(),
        }
    }

    /// `env/service@host`: the key a service's health is tracked under.
    pub fn key(&self) -> String {
        format!("{}/{}@{}", self.env, self.spec.name, self.host())
    }
}
