//! The deployer spec's own routes (`POST /deploy`, `GET /deploy/{job_id}`),
//! mapped onto the same jobs as `/v1/deploys`, so a client written for that
//! spec works against `soar serve` (with a bearer token: every route but
//! `/health` needs one).
//!
//! `service_path` must name a configured project — its NAME, or exactly
//! the path the server config gives it — never any other directory.
//! `service_name`, `droplet_id`, `service_port` and `deployment_method` are
//! accepted and echoed: the project's soar.toml decides how it deploys.
//! `environment_vars` must be empty (a service's variables live in its
//! soar.toml, secrets by name). `auto_register: false` skips the project's
//! `[register]` for this deploy; `true` (the spec's default) leaves it as
//! soar.toml says.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{AppState, authorize, body, submit_job, visible_job};
use super::error::ApiError;
use super::jobs;
use super::tokens::Scope;

/// The spec's `DeployRequest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecDeployRequest {
    /// A project NAME of the server config, or exactly its configured path.
    pub service_path: String,
    /// Accepted and ignored: the job reports the project's NAME.
    pub service_name: Option<String>,
    /// Accepted and ignored: the environment's provider decides where.
    pub droplet_id: Option<i64>,
    /// Accepted and ignored: the port is the project's soar.toml's.
    pub service_port: Option<u16>,
    /// `docker` or `systemd` (informational: soar.toml's artifact decides).
    pub deployment_method: Option<String>,
    /// Must be empty: variables belong in soar.toml.
    #[serde(default)]
    pub environment_vars: BTreeMap<String, String>,
    /// `false`: skip the project's `[register]` this time; `true` or
    /// absent: as its soar.toml says.
    #[serde(default)]
    pub auto_register: Option<bool>,
    /// Not in the spec: which environment, when the project has several.
    pub environment: Option<String>,
}

/// The spec's answer to `POST /deploy`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecAccepted {
    /// The job id, for `GET /deploy/{job_id}` (and the `/v1` routes).
    pub deploy_job_id: String,
    /// `pending`.
    pub status: String,
    /// When the job was accepted (RFC 3339, UTC).
    pub created_at: String,
}

/// The spec's `DeploymentPhase`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecPhase {
    /// The audit trail's phase name (`plan`, `apply`, ...).
    pub phase: String,
    /// `success` or `failed`.
    pub status: String,
    /// When the phase began (RFC 3339, UTC), if the trail recorded it.
    pub started_at: Option<String>,
    /// When the phase ended (RFC 3339, UTC), if the trail recorded it.
    pub completed_at: Option<String>,
    /// How long the phase took, in seconds.
    pub duration_seconds: Option<f64>,
    /// What the phase did, as the audit trail tells it (may be empty).
    pub details: String,
    /// The same text as `details` when the phase failed.
    pub error: Option<String>,
}

/// The spec's `DeployJob`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecJob {
    /// The job id.
    pub deploy_job_id: String,
    /// The project's NAME in the server config.
    pub service_name: String,
    /// The project's NAME too: the server never reveals its paths.
    pub service_path: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// The URL the deploy reported, once it has.
    pub service_url: Option<String>,
    /// The audit trail's phases, once the deploy has written one.
    pub phases: Vec<SpecPhase>,
    /// When the deploy started (RFC 3339, UTC); none while queued.
    pub started_at: Option<String>,
    /// When the job ended (RFC 3339, UTC); none until it has.
    pub completed_at: Option<String>,
    /// The deploy's duration per its audit trail, in seconds.
    pub duration_seconds: Option<f64>,
    /// Whether the job succeeded; false while it is still pending or running.
    pub success: bool,
    /// Why the job failed or was cancelled; none otherwise.
    pub error: Option<String>,
}

/// Submit a deploy in the deployer spec's shape.
#[utoipa::path(post, path = "/deploy", tag = "compatibility", security(("bearer" = [])),
    request_body = SpecDeployRequest,
    responses(
        (status = 202, description = "Queued", body = SpecAccepted),
        (status = 400, description = "Bad input", body = super::error::ErrorBody),
        (status = 404, description = "service_path names no configured project", body = super::error::ErrorBody),
    ))]
pub async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<SpecDeployRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let req = body(request)?;
    if !req.environment_vars.is_empty() {
        return Err(ApiError::bad_request(
            "environment_vars is not supported",
            "set the service's variables in its soar.toml ([deploy] env, and secrets by the NAME of a server-side variable)",
        ));
    }
    let project = state
        .queue
        .projects
        .all()
        .into_iter()
        .find(|(name, path)| {
            *name == req.service_path || path.to_str() == Some(req.service_path.as_str())
        })
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            ApiError::not_found(
                "service_path names no project of this server",
                "use a project NAME of the server config (or exactly its configured path)",
            )
        })?;
    let options = jobs::Options {
        auto_register: req.auto_register.filter(|register| !register),
        ..jobs::Options::default()
    };
    let job = submit_job(
        &state,
        &who,
        &project,
        req.environment.as_deref(),
        0,
        None,
        &options,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SpecAccepted {
            deploy_job_id: job.id,
            status: "pending".into(),
            created_at: job.created_at,
        }),
    )
        .into_response())
}

/// A job in the deployer spec's shape.
#[utoipa::path(get, path = "/deploy/{job_id}", tag = "compatibility", security(("bearer" = [])),
    params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "The job", body = SpecJob),
        (status = 404, description = "No such job", body = super::error::ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SpecJob>, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let job = visible_job(&state, &who, &id)?;
    let events = jobs::events_after(&state.queue.db, &id, 0)?;
    let service_url = events
        .iter()
        .rev()
        .find(|e| e.data["type"] == "deployed")
        .and_then(|e| e.data["url"].as_str().map(str::to_string));
    let phases = job
        .audit
        .as_ref()
        .and_then(|a| a["phases"].as_array())
        .map(|phases| phases.iter().map(phase).collect())
        .unwrap_or_default();
    let status = match job.status.as_str() {
        jobs::QUEUED => "pending",
        jobs::RUNNING => "running",
        jobs::SUCCEEDED => "completed",
        _ => "failed",
    };
    let ms = |a: &serde_json::Value, k: &str| a[k].as_i64();
    let duration_seconds = job
        .audit
        .as_ref()
        .and_then(|a| ms(a, "duration_ms"))
        .map(|d| d as f64 / 1000.0);
    let error = match job.status.as_str() {
        jobs::SUCCEEDED | jobs::QUEUED | jobs::RUNNING => None,
        other => Some(job.error.clone().unwrap_or_else(|| other.to_string())),
    };
    Ok(Json(SpecJob {
        deploy_job_id: job.id,
        service_name: job.project.clone(),
        service_path: job.project,
        status: status.into(),
        service_url,
        phases,
        started_at: job.started_at,
        completed_at: job.finished_at,
        duration_seconds,
        success: job.status == jobs::SUCCEEDED,
        error,
    }))
}

/// One audit-trail phase in the spec's shape.
fn phase(p: &serde_json::Value) -> SpecPhase {
    let started = p["started_at"].as_i64();
    let duration = p["duration_ms"].as_i64();
    let ok = p["outcome"] == "ok";
    let detail = p["detail"].as_str().unwrap_or_default().to_string();
    SpecPhase {
        phase: p["phase"].as_str().unwrap_or_default().to_string(),
        status: if ok { "success" } else { "failed" }.into(),
        started_at: started.map(super::store::rfc3339),
        completed_at: started
            .zip(duration)
            .map(|(s, d)| super::store::rfc3339(s + d)),
        duration_seconds: duration.map(|d| d as f64 / 1000.0),
        error: (!ok).then(|| detail.clone()),
        details: detail,
    }
}
