//! The health monitor inside `soar serve`: every project of the server with
//! an environment that sets `[deploy] health.monitor` is watched, its
//! findings kept for `GET /v1/monitor` and `/metrics`.
//!
//! The watching is `soar monitor --json` itself, run as a child of this
//! binary per project, as the server runs every other command
//! ([`super::queue`], [`super::inspect`]): the same services resolved by
//! the engine, the same checks spread over the interval with bounded
//! concurrency ([`crate::monitor::schedule`]), and each transition in the
//! project's audit trail, its webhook and its `on_unhealthy` hook exactly
//! as the CLI announces it. The server only reads the child's events.
//!
//! A project's monitor stops while one of its jobs runs (a deploy restarts
//! the service on purpose; that is not an outage) and starts again when
//! the job ends, so it watches what the job deployed. A monitor that ends
//! by itself (nothing deployed yet, a broken soar.toml) is tried again
//! after [`RETRY`], or at the project's next job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use super::api::{AppState, authorize};
use super::error::{ApiError, ErrorBody};
use super::queue::Queue;
use super::tokens::Scope;
use crate::monitor::metrics::Metrics;

/// How long after a monitor ended by itself it is started again.
pub const RETRY: Duration = Duration::from_secs(60);
/// Bytes of a monitor's stderr kept to say why it ended.
const ERROR_TAIL: usize = 2048;
/// Longest event line read from a monitor.
const MAX_LINE: usize = 256 * 1024;

/// One watched service as the server last saw it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Watched {
    /// The project's NAME in the server config.
    pub project: String,
    /// The environment of its soar.toml.
    pub environment: String,
    /// The service's name.
    pub service: String,
    /// Where it runs: `local` or `user@host:port`.
    pub host: String,
    /// Whether its health endpoint answered 2xx at the last check (and its
    /// host was reachable).
    pub healthy: bool,
    /// The last check's answer, or why it failed.
    pub detail: String,
    /// The service manager's numbers at the last check (up, pid, restarts,
    /// uptime_seconds, cpu_seconds, rss_bytes), when they could be read.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<Metrics>,
    /// When it was last checked (RFC 3339 UTC).
    pub checked_at: String,
    /// The last transition seen for it (`unhealthy` or `recovered`), if any
    /// since its monitor started.
    pub last_change: Option<String>,
}

/// `GET /v1/monitor`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorView {
    /// Every watched service the token may see, by project, environment
    /// and service.
    pub services: Vec<Watched>,
}

/// What the monitors have seen, shared by the runner, the API and
/// `/metrics`.
#[derive(Default)]
pub struct Monitoring {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// By project, then `env/service@host`.
    services: BTreeMap<String, BTreeMap<String, Watched>>,
    /// Transitions seen, by (project, change).
    transitions: BTreeMap<(String, String), u64>,
}

impl Monitoring {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watched services of `project` (all when `None`).
    pub fn services(&self, project: Option<&str>) -> Vec<Watched> {
        self.seen()
            .services
            .iter()
            .filter(|(p, _)| project.is_none_or(|want| want == p.as_str()))
            .flat_map(|(_, s)| s.values().cloned())
            .collect()
    }

    /// Transitions seen since the server started: (project, change, count).
    pub fn transitions(&self, project: Option<&str>) -> Vec<(String, String, u64)> {
        self.seen()
            .transitions
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|want| want == p.as_str()))
            .map(|((p, c), n)| (p.clone(), c.clone(), *n))
            .collect()
    }

    /// Forget `project`'s services (its monitor stopped).
    fn forget(&self, project: &str) {
        self.seen().services.remove(project);
    }

    /// Take in one event line of `project`'s monitor.
    pub fn observe(&self, project: &str, event: &Value) {
        let now = super::store::rfc3339(crate::state::now_ms());
        let mut seen = self.seen();
        match event["type"].as_str() {
            Some("health_check") => {
                let host = event["host"].as_str().unwrap_or_default();
                let services = seen.services.entry(project.to_string()).or_default();
                if event["reachable"] == false {
                    // One finding for the host: each of its services is
                    // unreachable with it.
                    let reason = format!(
                        "host {host} is unreachable: {}",
                        event["detail"].as_str().unwrap_or_default()
                    );
                    for w in services.values_mut().filter(|w| w.host == host) {
                        w.healthy = false;
                        w.detail.clone_from(&reason);
                        w.checked_at.clone_from(&now);
                    }
                    return;
                }
                for f in event["services"].as_array().into_iter().flatten() {
                    let key = f["key"].as_str().unwrap_or_default().to_string();
                    let last_change = services.get(&key).and_then(|w| w.last_change.clone());
                    services.insert(
                        key,
                        Watched {
                            project: project.to_string(),
                            environment: text(&f["env"]),
                            service: text(&f["service"]),
                            host: text(&f["host"]),
                            healthy: f["healthy"] == true,
                            detail: text(&f["detail"]),
                            metrics: serde_json::from_value(f["metrics"].clone()).ok(),
                            checked_at: now.clone(),
                            last_change,
                        },
                    );
                }
            }
            Some("health_transition") => {
                let change = text(&event["change"]);
                *seen
                    .transitions
                    .entry((project.to_string(), change.clone()))
                    .or_default() += 1;
                let key = text(&event["key"]);
                if let Some(w) = seen.services.get_mut(project).and_then(|s| s.get_mut(&key)) {
                    w.last_change = Some(change);
                }
            }
            _ => {}
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The watched services, with their health and numbers at the last check.
#[utoipa::path(get, path = "/v1/monitor", tag = "environments", security(("bearer" = [])),
    responses(
        (status = 200, description = "The services the server watches", body = MonitorView),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
pub async fn view(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<MonitorView>, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let services = state
        .monitoring
        .services(who.project.as_deref())
        .into_iter()
        .filter(|w| who.covers(&w.project))
        .collect();
    Ok(Json(MonitorView { services }))
}

/// One project's monitor: the task reading its child, and the job stamp it
/// was started for.
struct Slot {
    stamp: Option<String>,
    started: Instant,
    task: Option<JoinHandle<()>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The child is killed on drop of its handle, with the task.
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Starts and stops the projects' monitors for the life of the server.
pub struct Runner {
    monitoring: Arc<Monitoring>,
    queue: Arc<Queue>,
    exe: PathBuf,
    providers: Vec<String>,
    slots: HashMap<String, Slot>,
}

impl Runner {
    /// A runner of `exe monitor` for `queue`'s projects, keeping what it
    /// sees in `monitoring`; `providers` are the plugins a soar.toml may
    /// name.
    pub fn new(
        monitoring: Arc<Monitoring>,
        queue: Arc<Queue>,
        exe: PathBuf,
        providers: Vec<String>,
    ) -> Self {
        Self {
            monitoring,
            queue,
            exe,
            providers,
            slots: HashMap::new(),
        }
    }

    /// Look again at every change of the queue (and every [`RETRY`]) until
    /// the server stops; then every monitor is stopped.
    pub async fn run(mut self) {
        let mut changes = self.queue.subscribe();
        while !self.queue.is_stopping() {
            if let Err(e) = self.reconcile() {
                tracing::warn!("monitor: {e:#}");
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { break },
                () = tokio::time::sleep(RETRY) => {}
            }
        }
        self.slots.clear();
    }

    /// Start, restart or stop each project's monitor as its jobs say.
    fn reconcile(&mut self) -> anyhow::Result<()> {
        let projects = self.queue.projects.all();
        let (running, stamps) = job_stamps(&self.queue.db, &projects)?;
        self.slots.retain(|name, _| projects.contains_key(name));
        for (name, root) in projects {
            let stamp = stamps.get(&name).cloned();
            if running.contains(&name) {
                if self.slots.remove(&name).is_some() {
                    self.monitoring.forget(&name);
                }
                continue;
            }
            let fresh = self.slots.get(&name).is_some_and(|s| {
                s.stamp == stamp
                    && (s.task.as_ref().is_some_and(|t| !t.is_finished())
                        || s.started.elapsed() < RETRY)
            });
            if fresh {
                continue;
            }
            self.slots.remove(&name);
            self.monitoring.forget(&name);
            let task = self.watched(&root).then(|| {
                let (monitoring, exe, project) =
                    (self.monitoring.clone(), self.exe.clone(), name.clone());
                tokio::spawn(async move { watch(&monitoring, &exe, &project, &root).await })
            });
            self.slots.insert(
                name,
                Slot {
                    stamp,
                    started: Instant::now(),
                    task,
                },
            );
        }
        Ok(())
    }

    /// Whether an environment of the project at `root` sets
    /// `health.monitor` (a soar.toml that does not load is not watched;
    /// its deploys say why).
    fn watched(&self, root: &Path) -> bool {
        let known: Vec<&str> = self.providers.iter().map(String::as_str).collect();
        crate::config::load(&root.join(crate::config::FILE_NAME), &known).is_ok_and(|p| {
            p.environments
                .values()
                .any(|e| e.deploy.health.monitor.is_some())
        })
    }
}

/// The projects with a running job, and each project's newest job as
/// `id:status` (a change means something was queued, deployed or rolled
/// back since).
fn job_stamps(
    db: &super::store::Db,
    projects: &BTreeMap<String, PathBuf>,
) -> anyhow::Result<(HashSet<String>, HashMap<String, String>)> {
    use super::jobs::{Listing, RUNNING, list};
    let running = list(
        db,
        &Listing {
            status: Some(RUNNING),
            limit: u32::MAX,
            ..Listing::default()
        },
    )?
    .into_iter()
    .map(|j| j.project)
    .collect();
    let mut stamps = HashMap::new();
    for name in projects.keys() {
        let newest = list(
            db,
            &Listing {
                project: Some(name),
                limit: 1,
                ..Listing::default()
            },
        )?;
        if let Some(j) = newest.first() {
            stamps.insert(name.clone(), format!("{}:{}", j.id, j.status));
        }
    }
    Ok((running, stamps))
}

/// Run `soar monitor --json` on the project at `root` until it ends (or
/// this task is aborted, which kills it), feeding its events to
/// `monitoring`.
async fn watch(monitoring: &Monitoring, exe: &Path, project: &str, root: &Path) {
    // The monitor ends with the server.
    let mut cmd = super::soar_child(exe, root, true);
    cmd.arg("-c")
        .arg(root.join(crate::config::FILE_NAME))
        .args(["monitor", "--json"])
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("monitor of project {project}: cannot start soar: {e}");
            return;
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return;
    };
    let tail = super::queue::keep_tail(stderr, ERROR_TAIL);
    let mut lines = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line.truncate(MAX_LINE);
        if let Ok(event) = serde_json::from_slice::<Value>(&line) {
            monitoring.observe(project, &event);
        }
    }
    let status = child.wait().await;
    let tail = tail.await.unwrap_or_default();
    let why = String::from_utf8_lossy(&tail);
    let why = why.trim().lines().last().unwrap_or_default();
    tracing::info!(
        "monitor of project {project} ended ({}): {why}; trying again in {} s or after its next job",
        status.map_or_else(|e| e.to_string(), |s| s.to_string()),
        RETRY.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_and_transitions_make_the_view() {
        let m = Monitoring::default();
        let check = |healthy: bool| {
            json!({"type": "health_check", "host": "local", "reachable": true, "services": [{
                "key": "dev/web@local", "env": "dev", "service": "web", "host": "local",
                "healthy": healthy, "detail": "GET /health answered 200",
                "metrics": {"up": healthy, "restarts": 2, "rss_bytes": 1024}
            }]})
        };
        m.observe("shop", &check(true));
        m.observe(
            "shop",
            &json!({"type": "health_transition", "change": "unhealthy", "key": "dev/web@local"}),
        );
        m.observe("shop", &check(false));
        let seen = m.services(None);
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].healthy);
        assert_eq!(seen[0].last_change.as_deref(), Some("unhealthy"));
        assert_eq!(seen[0].metrics.as_ref().and_then(|m| m.restarts), Some(2));
        assert!(m.services(Some("other")).is_empty());
        assert_eq!(
            m.transitions(Some("shop")),
            [("shop".to_string(), "unhealthy".to_string(), 1)]
        );
    }

    #[test]
    fn a_host_that_is_down_marks_its_services() {
        let m = Monitoring::default();
        m.observe(
            "p",
            &json!({"type": "health_check", "host": "h", "reachable": true, "services": [
                {"key": "prod/a@h", "env": "prod", "service": "a", "host": "h", "healthy": true, "detail": "ok"}
            ]}),
        );
        m.observe(
            "p",
            &json!({"type": "health_check", "host": "h", "envs": ["prod"], "reachable": false, "detail": "connection refused"}),
        );
        let seen = m.services(Some("p"));
        assert!(!seen[0].healthy);
        assert!(seen[0].detail.contains("unreachable"), "{}", seen[0].detail);
    }
}
