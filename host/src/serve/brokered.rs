//! The brokered requests of the server's jobs, for `/metrics`: every HTTP
//! request and SSH command a job's plugins (and its rollout) made through
//! the brokers, by plugin, host and status, and the requests the HTTP
//! broker denied.
//!
//! A job runs as a child `soar deploy`, so its brokers run in the child,
//! not in the server: a counter in the server's own brokers would never see
//! them. What the brokers did is where they record it, each request once:
//! the command's journal, which the engine keeps in the project's audit
//! trail as the events of the job's audit record ([`super::jobs::Job`]'s
//! `audit`). Each finished job's events are read once, when a scrape first
//! sees the job among the recent ones ([`super::metrics::RECENT_JOBS`]),
//! and added to running totals; a restarted server counts the recent jobs
//! of its store again (the totals restart with the process, as a
//! Prometheus counter may).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

use super::jobs::{self, Job};
use super::projects::Projects;
use crate::state::{DeployId, StateStore};

/// One series of `soar_brokered_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    /// The project's NAME (for a project-bound token's view).
    pub project: String,
    /// `http` or `ssh`.
    pub transport: &'static str,
    /// The plugin that asked (`soar` for the rollout's own SSH).
    pub plugin: String,
    /// The URL's host, or `user@host:port`.
    pub host: String,
    /// The HTTP status or the command's exit status; `denied`, `timeout`,
    /// `failed` ... when none came.
    pub status: String,
}

/// Running totals over the jobs counted so far.
#[derive(Default)]
pub struct Brokered {
    counted: Mutex<Counted>,
}

#[derive(Default)]
struct Counted {
    jobs: HashSet<String>,
    requests: BTreeMap<Request, u64>,
}

impl Brokered {
    /// Count the finished jobs of `recent` not counted yet, then the
    /// totals of `project` (all when `None`): request series and their
    /// counts.
    pub fn totals(
        &self,
        recent: &[Job],
        projects: &Projects,
        project: Option<&str>,
    ) -> Vec<(Request, u64)> {
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let mut stores: BTreeMap<String, Option<StateStore>> = BTreeMap::new();
        for job in recent {
            if !jobs::is_final(&job.status) || counted.jobs.contains(&job.id) {
                continue;
            }
            let (id, project) = (&job.id, &job.project);
            let Some(audit) = job.audit.as_ref().and_then(|a| a["id"].as_i64()) else {
                counted.jobs.insert(id.clone());
                continue;
            };
            let store = stores
                .entry(project.clone())
                .or_insert_with(|| open(projects.get(project)?.as_path()));
            let Some(store) = store else { continue };
            match store.events(DeployId(audit)) {
                Ok(events) => {
                    for e in events {
                        if let Some(r) = request(project, &e.event["plugin"]) {
                            *counted.requests.entry(r).or_default() += 1;
                        }
                    }
                    counted.jobs.insert(id.clone());
                }
                Err(e) => tracing::warn!("counting the brokered requests of job {id}: {e:#}"),
            }
        }
        counted
            .requests
            .iter()
            .filter(|(r, _)| project.is_none_or(|p| p == r.project))
            .map(|(r, n)| (r.clone(), *n))
            .collect()
    }
}

/// The state store of the project at `root`, if it has one.
fn open(root: &Path) -> Option<StateStore> {
    let dir = root.join(".soar");
    if !dir.join(crate::state::DB_FILE).exists() {
        return None;
    }
    StateStore::open(&dir)
        .inspect_err(|e| tracing::warn!("reading {}: {e:#}", dir.display()))
        .ok()
}

/// The series of one journal event (`{"event": "http" | "ssh", ...}`), or
/// `None` for a log record.
pub fn request(project: &str, e: &Value) -> Option<Request> {
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let (transport, host, status) = match e["event"].as_str()? {
        "http" => {
            let host = url::Url::parse(&text("url"))
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            let status = match e["status"].as_u64() {
                Some(s) => s.to_string(),
                // `denied: ...`, `timeout: ...`: the kind of failure.
                None => text("outcome")
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            ("http", host, status)
        }
        "ssh" => {
            let status = e["exit"]
                .as_i64()
                .map_or_else(|| "failed".to_string(), |x| x.to_string());
            ("ssh", text("host"), status)
        }
        _ => return None,
    };
    Some(Request {
        project: project.to_string(),
        transport,
        plugin: text("plugin"),
        host,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn journal_events_become_series() {
        let ok = json!({"event": "http", "plugin": "do", "method": "GET",
            "url": "https://api.digitalocean.com/v2/droplets", "status": 200, "outcome": "ok"});
        let r = request("p", &ok).unwrap();
        assert_eq!(
            (r.transport, r.host.as_str(), r.status.as_str()),
            ("http", "api.digitalocean.com", "200")
        );
        let denied = json!({"event": "http", "plugin": "do", "url": "http://169.254.169.254/",
            "status": null, "outcome": "denied: 169.254.169.254 is not in the plugin's allowed hosts"});
        assert_eq!(request("p", &denied).unwrap().status, "denied");
        let ssh =
            json!({"event": "ssh", "plugin": "soar", "host": "deploy@10.0.0.5:22", "exit": 0});
        assert_eq!(request("p", &ssh).unwrap().status, "0");
        let log = json!({"event": "log", "plugin": "do", "message": "hi"});
        assert!(request("p", &log).is_none());
    }
}
