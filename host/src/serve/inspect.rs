//! Read-only views of an environment (status, history, logs) and rollback,
//! each answered by the CLI's own command run as a child of this binary,
//! so they say exactly what `soar status --json` & co. say.
//!
//! `GET /v1/environments/{project}/{env}`: `soar status --json`'s object.
//! `GET /v1/environments/{project}/{env}/history?limit=N`: `soar history --json`.
//! `GET /v1/environments/{project}/{env}/logs?lines=N`: `soar logs`; with
//! `follow=1`, `soar logs -f` as Server-Sent Events
//! ([`super::dashboard::live_logs`]).
//! `POST /v1/environments/{project}/{env}/rollback` (or
//! `/v1/deploys/{id}/rollback`): a `rollback` job.

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{AppState, Submitted, authorize};
use super::error::ApiError;
use super::jobs::{self, NewJob};
use super::tokens::{Principal, Scope};

/// How long a status/history/logs command may take (status asks the
/// provider).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of output returned.
const MAX_OUTPUT: usize = 1024 * 1024;
/// Most status/history/logs/plan commands running at once.
pub const MAX_INSPECTIONS: usize = 4;

/// The project directory and the environment's provider, once the token,
/// the project NAME and the environment all check out.
pub(crate) fn resolve(
    state: &AppState,
    who: &Principal,
    project: &str,
    env: &str,
) -> Result<(PathBuf, String), ApiError> {
    let (root, config) = project_config(
        state,
        who,
        project,
        "use a project NAME of the server config (see GET /capabilities for the server, the server admin for names)",
    )?;
    match config.environments.get(env) {
        Some(e) => Ok((root, e.provider.clone())),
        None => Err(ApiError::not_found(
            format!("project {project:?} has no environment {env:?}"),
            format!("its environments: {}", env_names(&config)),
        )),
    }
}

/// The project NAME's directory and configuration, when the token covers
/// it; `hint` says what a NAME is, for the 404.
fn project_config(
    state: &AppState,
    who: &Principal,
    name: &str,
    hint: &str,
) -> Result<(PathBuf, crate::config::Project), ApiError> {
    let root = match state.queue.projects.get(name) {
        Some(root) if who.covers(name) => root,
        _ => {
            return Err(ApiError::not_found(
                format!("no project {name:?} on this server"),
                hint.to_string(),
            ));
        }
    };
    let known: Vec<&str> = state.providers.iter().map(|(n, _)| n.as_str()).collect();
    let config = crate::config::load(&root.join("soar.toml"), &known).map_err(|_| {
        ApiError::bad_request(
            format!("project {name:?} has an invalid soar.toml"),
            "POST /v1/deploys for it shows the diagnostics; `soar validate` on the server too",
        )
    })?;
    Ok((root, config))
}

/// The project's environment names, for hints.
fn env_names(config: &crate::config::Project) -> String {
    config
        .environments
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run `soar -c <root>/soar.toml <args>`: (exit code, stdout, stderr).
pub(crate) async fn soar(
    state: &AppState,
    root: &std::path::Path,
    args: &[&str],
) -> Result<(i32, String, String), ApiError> {
    let _permit = state.inspections.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_INSPECTIONS} status, history, logs or plan commands run already"),
            "retry in a moment",
        )
    })?;
    let exe = std::env::current_exe().map_err(anyhow::Error::from)?;
    let child = super::soar_child(&exe, root, false)
        .arg("-c")
        .arg(root.join("soar.toml"))
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .map_err(anyhow::Error::from)?;
    let out = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.map_err(anyhow::Error::from)?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("`soar {}` took over {}s", args[0], TIMEOUT.as_secs()),
                "the provider may be slow to answer; retry",
            ));
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(MAX_OUTPUT)]).into_owned();
    let (stdout, mut stderr) = (text(&out.stdout), text(&out.stderr));
    // Under --json the command's error is an event on stdout: the caller
    // reports it from stderr, as without --json.
    for line in stdout.lines() {
        if let Some(error) = serde_json::from_str(line)
            .ok()
            .as_ref()
            .and_then(error_event)
        {
            stderr.push_str(&error);
            stderr.push('\n');
        }
    }
    Ok((out.status.code().unwrap_or(-1), stdout, stderr))
}

/// `error: message: cause: ...` (the line `soar` prints without `--json`)
/// when `event` is a `--json` error event.
pub(crate) fn error_event(event: &serde_json::Value) -> Option<String> {
    if event["type"] != "error" {
        return None;
    }
    let mut text = format!("error: {}", event["message"].as_str().unwrap_or_default());
    for cause in event["causes"].as_array().into_iter().flatten() {
        text.push_str(": ");
        text.push_str(cause.as_str().unwrap_or_default());
    }
    Some(text)
}

/// The `--json` events of `kind` that `stdout` holds, without their `type`
/// (the API's bodies keep the shape they had before events were typed).
fn events_of(stdout: &str, kind: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("type");
            }
            v
        })
        .collect()
}

/// A failed command as a 502 with the tail of what it said.
pub(crate) fn failed(what: &str, stderr: &str) -> ApiError {
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("soar {what} failed: {tail}"),
        "the same command on the server says more",
    )
}

/// `name=N` from a query string, within 1..=max.
pub(super) fn number(
    query: Option<&str>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(v) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(default);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            format!("{name}={v:?} is not a number from 1 to {max}"),
            format!("e.g. ?{name}={default}"),
        )),
    }
}

/// `soar status --json` for one environment: release, running, URL,
/// resources, drift.
#[utoipa::path(get, path = "/v1/environments/{project}/{env}", tag = "environments", security(("bearer" = [])),
    params(("project" = String, Path), ("env" = String, Path)),
    responses(
        (status = 200, description = "What `soar status --json` prints for it", content_type = "application/json"),
        (status = 404, description = "No such project or environment", body = super::error::ErrorBody),
        (status = 502, description = "The status command failed", body = super::error::ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let (root, _) = resolve(&state, &who, &project, &env)?;
    let (code, out, err) = soar(&state, &root, &["status", "--json", "--env", &env]).await?;
    if code != 0 {
        return Err(failed("status", &err));
    }
    let value = events_of(&out, "status")
        .into_iter()
        .next()
        .ok_or_else(|| failed("status", "printed no JSON"))?;
    Ok(Json(value).into_response())
}

/// `soar history --json`: deploys, destroys and rollbacks, newest first.
#[utoipa::path(get, path = "/v1/environments/{project}/{env}/history", tag = "environments", security(("bearer" = [])),
    params(("project" = String, Path), ("env" = String, Path), ("limit" = Option<usize>, Query, description = "1..=500, default 20")),
    responses(
        (status = 200, description = "The records `soar history --json` prints, as an array", content_type = "application/json"),
        (status = 400, description = "Bad limit", body = super::error::ErrorBody),
        (status = 404, description = "No such project or environment", body = super::error::ErrorBody),
    ))]
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let limit = number(query.as_deref(), "limit", 20, 500)?.to_string();
    let (root, _) = resolve(&state, &who, &project, &env)?;
    let (code, out, err) = soar(
        &state,
        &root,
        &["history", "--json", "--env", &env, "-n", &limit],
    )
    .await?;
    if code != 0 {
        return Err(failed("history", &err));
    }
    let records = events_of(&out, "history_record");
    Ok(Json(records).into_response())
}

/// The service's last log lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Logs {
    /// The lines `soar logs` printed, oldest first, without their newlines.
    pub lines: Vec<String>,
}

/// `soar logs`: the service's last log lines; with `follow=1` an event
/// stream of them as they are written (`start`, then one `line` event
/// `{host, line}` each, backlog first; `end` `{error}` if the follow stops).
#[utoipa::path(get, path = "/v1/environments/{project}/{env}/logs", tag = "environments", security(("bearer" = [])),
    params(("project" = String, Path), ("env" = String, Path), ("lines" = Option<usize>, Query, description = "1..=10000, default 100"),
        ("follow" = Option<u8>, Query, description = "1: follow, as Server-Sent Events")),
    responses(
        (status = 200, description = "The lines (with follow=1: an event stream, text/event-stream)", body = Logs),
        (status = 429, description = "Too many follows at once", body = super::error::ErrorBody),
        (status = 400, description = "Bad lines", body = super::error::ErrorBody),
        (status = 404, description = "No such project or environment", body = super::error::ErrorBody),
    ))]
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let lines = number(query.as_deref(), "lines", 100, 10_000)?;
    let (root, _) = resolve(&state, &who, &project, &env)?;
    let follow = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "follow=1" || kv == "follow=true");
    if follow {
        return super::dashboard::live_logs::stream(&root, &env, lines).await;
    }
    let lines = lines.to_string();
    let (code, out, err) = soar(&state, &root, &["logs", "--env", &env, "-n", &lines]).await?;
    if code != 0 {
        return Err(failed("logs", &err));
    }
    Ok(Json(Logs {
        lines: out.lines().map(str::to_string).collect(),
    })
    .into_response())
}

/// Whether `env` of the project at `root` has a release to roll back to
/// (the rule `soar rollback` applies: an earlier superseded or rolled-back
/// release after the active one). The job itself is authoritative; this
/// only answers 409 up front.
fn has_earlier_release(root: &std::path::Path, env: &str) -> anyhow::Result<bool> {
    use crate::state::{ReleaseStatus, StateStore};
    let dir = root.join(".soar");
    if !dir.join(crate::state::DB_FILE).exists() {
        return Ok(false);
    }
    let store = StateStore::open(&dir)?;
    let releases = store.releases(env)?;
    Ok(releases
        .iter()
        .skip_while(|r| r.status != ReleaseStatus::Active)
        .skip(1)
        .any(|r| {
            matches!(
                r.status,
                ReleaseStatus::Superseded | ReleaseStatus::RolledBack
            )
        }))
}

/// Queue a rollback of the environment to its previous release.
#[utoipa::path(post, path = "/v1/environments/{project}/{env}/rollback", tag = "environments", security(("bearer" = [])),
    params(("project" = String, Path), ("env" = String, Path)),
    responses(
        (status = 202, description = "A rollback job, queued", body = Submitted),
        (status = 404, description = "No such project or environment", body = super::error::ErrorBody),
        (status = 409, description = "No earlier release to roll back to", body = super::error::ErrorBody),
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, env)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    queue_rollback(&state, &who, &project, &env)
}

/// Queue a rollback of the environment job `id` deployed.
#[utoipa::path(post, path = "/v1/deploys/{id}/rollback", tag = "deploys", security(("bearer" = [])),
    params(("id" = String, Path, description = "A job of the environment to roll back")),
    responses(
        (status = 202, description = "A rollback job, queued", body = Submitted),
        (status = 404, description = "No such job", body = super::error::ErrorBody),
        (status = 409, description = "No earlier release to roll back to", body = super::error::ErrorBody),
    ))]
pub async fn rollback_of_deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let job = super::api::visible_job(&state, &who, &id)?;
    queue_rollback(&state, &who, &job.project, &job.environment)
}

fn queue_rollback(
    state: &AppState,
    who: &Principal,
    project: &str,
    env: &str,
) -> Result<Response, ApiError> {
    if state.queue.is_stopping() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
            "submit again once it is back (queued jobs are kept)",
        ));
    }
    let (root, provider) = resolve(state, who, project, env)?;
    if !has_earlier_release(&root, env)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{project}/{env} has no earlier release to roll back to"),
            "a rollback needs a previous release: deploy at least twice",
        ));
    }
    let job = jobs::insert(
        &state.queue.db,
        &NewJob {
            kind: super::queue::ROLLBACK,
            project,
            environment: env,
            provider: &provider,
            priority: 0,
            actor: &who.name,
            plan: None,
            options: &jobs::Options::default(),
        },
    )?;
    state.queue.poke();
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/deploys/{}", job.id))],
        Json(Submitted {
            id: job.id,
            status: job.status,
            created_at: job.created_at,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_from_the_query() {
        assert_eq!(super::number(None, "lines", 100, 500).unwrap(), 100);
        assert_eq!(
            super::number(Some("lines=7"), "lines", 100, 500).unwrap(),
            7
        );
        assert_eq!(
            super::number(Some("x=1&lines=9"), "lines", 100, 500).unwrap(),
            9
        );
        assert!(super::number(Some("lines=0"), "lines", 100, 500).is_err());
        assert!(super::number(Some("lines=501"), "lines", 100, 500).is_err());
        assert!(super::number(Some("lines=a"), "lines", 100, 500).is_err());
    }
}

/// The environment a `/v1/services/{name}/...` request means: its
/// `environment=` query parameter, or the project's only environment.
fn service_env(
    state: &AppState,
    who: &Principal,
    name: &str,
    query: Option<&str>,
) -> Result<String, ApiError> {
    if let Some(env) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("environment="))
    {
        return Ok(env.to_string());
    }
    let (_, config) = project_config(
        state,
        who,
        name,
        "a service is a project NAME of the server config",
    )?;
    let mut envs = config.environments.keys();
    match (envs.next(), envs.next()) {
        (Some(only), None) => Ok(only.clone()),
        _ => Err(ApiError::bad_request(
            format!("project {name:?} has several environments"),
            format!("add ?environment= one of: {}", env_names(&config)),
        )),
    }
}

/// `GET /v1/services/{name}/history`: as the environment route, for the
/// project NAME's only environment (or `?environment=`).
#[utoipa::path(get, path = "/v1/services/{name}/history", tag = "environments", security(("bearer" = [])),
    params(("name" = String, Path, description = "A project NAME"), ("environment" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses(
        (status = 200, description = "As /v1/environments/{project}/{env}/history", content_type = "application/json"),
        (status = 400, description = "Several environments and none named", body = super::error::ErrorBody),
        (status = 404, description = "No such service", body = super::error::ErrorBody),
    ))]
pub async fn service_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let env = service_env(&state, &who, &name, query.as_deref())?;
    history(State(state), headers, Path((name, env)), RawQuery(query)).await
}

/// `GET /v1/services/{name}/logs?lines=N[&follow=1]`: as the environment
/// route, for the project NAME's only environment (or `?environment=`).
#[utoipa::path(get, path = "/v1/services/{name}/logs", tag = "environments", security(("bearer" = [])),
    params(("name" = String, Path, description = "A project NAME"), ("environment" = Option<String>, Query), ("lines" = Option<usize>, Query),
        ("follow" = Option<u8>, Query, description = "1: follow, as Server-Sent Events")),
    responses(
        (status = 200, description = "The lines (with follow=1: an event stream, text/event-stream)", body = Logs),
        (status = 400, description = "Several environments and none named", body = super::error::ErrorBody),
        (status = 404, description = "No such service", body = super::error::ErrorBody),
    ))]
pub async fn service_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let env = service_env(&state, &who, &name, query.as_deref())?;
    logs(State(state), headers, Path((name, env)), RawQuery(query)).await
}
