//! `GET /health`: the state store, the queue, and whether what the
//! projects deploy to answers — each SSH host their soar.toml lists
//! (`[env.<name>.ssh] hosts`) and each `[register]` registry — by a TCP
//! connect with a short timeout.
//!
//! The route needs no token, so it must not become a way to make the
//! server knock on hosts at will: it probes only what the projects name,
//! at most [`PARALLEL`] at once, one round at a time, and reuses a round's
//! result for [`FRESH`]. Registries are shown by origin only (a URL may
//! carry credentials in its user-info or query).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::api::AppState;
use super::error::{ApiError, ErrorBody};
use super::jobs;

/// How long one connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Connects in flight at once.
pub const PARALLEL: usize = 16;
/// How long a round's result is reused.
pub const FRESH: Duration = Duration::from_secs(10);

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when a listed SSH host or registry does not
    /// answer; `unavailable` (503) when the state store does not.
    pub status: String,
    /// `ok` when the state store answered (the 503 body says otherwise).
    pub store: String,
    /// How many jobs wait and run.
    pub queue: QueueHealth,
    /// Each SSH host a project's soar.toml lists.
    pub ssh_hosts: Vec<Reach>,
    /// Each registry a project announces its services to.
    pub registries: Vec<Reach>,
}

/// The queue's load, as `GET /health` reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueHealth {
    /// Jobs accepted but not yet started (including those waiting to retry).
    pub queued: i64,
    /// Jobs whose deploy is running now (or being cancelled).
    pub running: i64,
    /// Jobs running at once per provider.
    pub per_provider: usize,
}

/// Whether one host answered a TCP connect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reach {
    /// `host:port` (for a registry: `scheme://host:port`).
    pub address: String,
    /// The projects (and environments) that use it: `web/prod`, ...
    pub used_by: Vec<String>,
    /// Whether a TCP connect succeeded within the timeout.
    pub reachable: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last round of probes, shared by the requests.
#[derive(Debug, Default)]
pub struct Probes {
    last: tokio::sync::Mutex<Option<Round>>,
}

/// One round of probes: when, and what answered.
#[derive(Debug)]
struct Round {
    at: Instant,
    ssh: Vec<Reach>,
    registries: Vec<Reach>,
}

/// Liveness, the queue, and the reachability of SSH hosts and registries;
/// the one route without a token.
#[utoipa::path(get, path = "/health", tag = "server",
    responses(
        (status = 200, description = "The server and its store answer (`degraded`: a host does not)", body = Health),
        (status = 503, description = "The state store does not answer", body = ErrorBody),
    ))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let (queued, running) = jobs::counts(&state.queue.db).map_err(|e| {
        tracing::warn!("health: {e:#}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server's state store does not answer",
            format!("check {} on the server", state.config.data_dir.display()),
        )
    })?;
    let (ssh_hosts, registries) = probe(&state).await;
    let degraded = ssh_hosts.iter().chain(&registries).any(|r| !r.reachable);
    Ok(Json(Health {
        status: if degraded { "degraded" } else { "ok" }.into(),
        store: "ok".into(),
        queue: QueueHealth {
            queued,
            running,
            per_provider: state.config.per_provider,
        },
        ssh_hosts,
        registries,
    }))
}

/// The SSH hosts and registries, probed (or the last round, if fresh).
async fn probe(state: &AppState) -> (Vec<Reach>, Vec<Reach>) {
    let mut last = state.probes.last.lock().await;
    if let Some(round) = last.as_ref()
        && round.at.elapsed() < FRESH
    {
        return (round.ssh.clone(), round.registries.clone());
    }
    let (ssh, reg) = targets(state);
    let ssh = reach_all(ssh).await;
    let registries = reach_all(reg).await;
    *last = Some(Round {
        at: Instant::now(),
        ssh: ssh.clone(),
        registries: registries.clone(),
    });
    (ssh, registries)
}

/// What to probe: (shown address, host, port, users), for SSH hosts and
/// registries, from every project's soar.toml.
type Target = (String, String, u16, BTreeSet<String>);

fn targets(state: &AppState) -> (Vec<Target>, Vec<Target>) {
    use std::collections::BTreeMap;
    let known: Vec<&str> = state.providers.iter().map(|(n, _)| n.as_str()).collect();
    let mut ssh: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
    let mut reg: BTreeMap<(String, String, u16), BTreeSet<String>> = BTreeMap::new();
    for (name, root) in state.queue.projects.all() {
        // An invalid project shows up when it is deployed (400 with its
        // diagnostics); health is about what a valid one reaches.
        let Ok(project) = crate::config::load(&root.join("soar.toml"), &known) else {
            continue;
        };
        for env in project.environments.values() {
            for (host, port) in &env.ssh.hosts {
                let port = port.or(env.ssh.port).unwrap_or(22);
                ssh.entry((host.clone(), port))
                    .or_default()
                    .insert(format!("{name}/{}", env.name));
            }
        }
        if let Some(r) = &project.register
            && let Ok(url) = url::Url::parse(&r.url)
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            reg.entry((url.scheme().to_string(), host.to_string(), port))
                .or_default()
                .insert(name.clone());
        }
    }
    let ssh = ssh
        .into_iter()
        .map(|((host, port), by)| (join(&host, port), host, port, by))
        .collect();
    let reg = reg
        .into_iter()
        .map(|((scheme, host, port), by)| {
            (format!("{scheme}://{}", join(&host, port)), host, port, by)
        })
        .collect();
    (ssh, reg)
}

/// `host:port`, bracketing an IPv6 address.
fn join(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connect to each target, [`PARALLEL`] at a time; in the targets' order.
async fn reach_all(targets: Vec<Target>) -> Vec<Reach> {
    futures_util::stream::iter(targets)
        .map(|(address, host, port, by)| async move {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let error = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "no answer within {} ms",
                    CONNECT_TIMEOUT.as_millis()
                )),
            };
            Reach {
                address,
                used_by: by.into_iter().collect(),
                reachable: error.is_none(),
                error,
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}
