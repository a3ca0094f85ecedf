//! What the pages show, gathered the way the API gathers it: status,
//! history and logs from the CLI's own commands run as children
//! ([`inspect::soar`]), jobs from the server's store. Nothing here is
//! trusted to be HTML: the views escape every string.

use serde_json::Value;

use crate::serve::api::AppState;
use crate::serve::error::ApiError;
use crate::serve::inspect;
use crate::serve::jobs::{self, Job};
use crate::serve::monitoring::Watched;
use crate::serve::tokens::Principal;

/// One environment of a project, with what `soar status` said of it.
pub struct EnvView {
    /// The project's NAME in the server config.
    pub project: String,
    /// The environment's name in its soar.toml.
    pub env: String,
    /// Its provider plugin.
    pub provider: String,
    /// `soar status --json`'s object, or why it could not be had.
    pub status: Result<Value, String>,
    /// Its services as the server's health monitor last saw them (none
    /// when `[deploy] health.monitor` is off).
    pub watched: Vec<Watched>,
}

/// The monitor's findings for `project`'s environment `env`.
fn watched(state: &AppState, project: &str, env: &str) -> Vec<Watched> {
    state
        .monitoring
        .services(Some(project))
        .into_iter()
        .filter(|w| w.environment == env)
        .collect()
}

/// The projects `who` may see, each with its environments' status (state
/// and service managers only: `--offline`, so a slow provider does not hold
/// the page). One `soar status` per project, one project at a time, so the
/// page never takes more than one of the server's inspection slots.
pub async fn environments(state: &AppState, who: &Principal) -> Vec<EnvView> {
    let known: Vec<&str> = state.providers.iter().map(|(n, _)| n.as_str()).collect();
    let mut views = Vec::new();
    for name in state.queue.projects.names() {
        let Some(root) = state
            .queue
            .projects
            .get(&name)
            .filter(|_| who.covers(&name))
        else {
            continue;
        };
        let config = match crate::config::load(&root.join("soar.toml"), &known) {
            Ok(c) => c,
            Err(_) => {
                views.push(EnvView {
                    project: name.clone(),
                    env: "?".into(),
                    provider: "?".into(),
                    status: Err("its soar.toml is invalid (`soar validate` says why)".into()),
                    watched: Vec::new(),
                });
                continue;
            }
        };
        let statuses = match inspect::soar(state, &root, &["status", "--json", "--offline"]).await {
            Ok((0, out, _)) => Ok(of_type(&out, "status")),
            Ok((_, _, err)) => Err(last_line(&err)),
            Err(e) => Err(e.body.error),
        };
        for (env, e) in &config.environments {
            let status = statuses.clone().and_then(|all| {
                all.into_iter()
                    .find(|s| s["env"] == env.as_str())
                    .ok_or_else(|| "`soar status` said nothing of it".to_string())
            });
            views.push(EnvView {
                watched: watched(state, &name, env),
                project: name.clone(),
                env: env.clone(),
                provider: e.provider.clone(),
                status,
            });
        }
    }
    views
}

/// Everything the environment page shows.
pub struct EnvDetail {
    /// Its provider plugin.
    pub provider: String,
    /// `soar status --json` (asking the provider too).
    pub status: Result<Value, String>,
    /// What the server's health monitor last saw of its services.
    pub watched: Vec<Watched>,
    /// `soar history --json`, newest first.
    pub history: Result<Vec<Value>, String>,
    /// `soar logs`' last lines.
    pub logs: Result<Vec<String>, String>,
    /// This environment's jobs on this server, newest first.
    pub jobs: Vec<Job>,
}

/// Lines of history and of logs the environment page shows.
const HISTORY: &str = "20";
const LOG_LINES: &str = "100";

/// The environment page's data; an unknown project or environment (or one
/// `who` may not see) is the API's 404.
pub async fn environment(
    state: &AppState,
    who: &Principal,
    project: &str,
    env: &str,
) -> Result<EnvDetail, ApiError> {
    let (root, provider) = inspect::resolve(state, who, project, env)?;
    let run = |args: &'static [&'static str]| {
        let root = root.clone();
        async move {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--env", env]);
            match inspect::soar(state, &root, &all).await {
                Ok((0, out, _)) => Ok(out),
                Ok((_, _, err)) => Err(last_line(&err)),
                Err(e) => Err(e.body.error),
            }
        }
    };
    let (status, history, logs) = tokio::join!(
        run(&["status", "--json"]),
        run(&["history", "--json", "-n", HISTORY]),
        run(&["logs", "-n", LOG_LINES]),
    );
    let status = status.and_then(|out| {
        of_type(&out, "status")
            .into_iter()
            .next()
            .ok_or_else(|| "`soar status` printed nothing".to_string())
    });
    let jobs = jobs::list(
        &state.queue.db,
        &jobs::Listing {
            project: Some(project),
            environment: Some(env),
            status: None,
            limit: 20,
        },
    )?;
    Ok(EnvDetail {
        provider,
        status,
        watched: watched(state, project, env),
        history: history.map(|out| of_type(&out, "history_record")),
        logs: logs.map(|out| out.lines().map(str::to_string).collect()),
        jobs,
    })
}

/// The newest jobs `who` may see.
pub fn recent_jobs(state: &AppState, who: &Principal, limit: u32) -> anyhow::Result<Vec<Job>> {
    jobs::list(
        &state.queue.db,
        &jobs::Listing {
            project: who.project.as_deref(),
            environment: None,
            status: None,
            limit,
        },
    )
}

/// The `--json` events of type `kind` in a command's output.
fn of_type(stdout: &str, kind: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The last non-empty line a failed command printed: its error.
fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the command failed without saying why")
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_and_errors_of_a_command() {
        let out = "{\"type\":\"status\",\"env\":\"dev\"}\nnot json\n{\"type\":\"other\"}\n";
        let found = super::of_type(out, "status");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["env"], "dev");
        assert_eq!(super::last_line("a\nerror: b\n\n"), "error: b");
        assert!(super::last_line("").contains("without saying why"));
    }
}
