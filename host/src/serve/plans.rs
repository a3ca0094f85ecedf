//! `POST /v1/plans`: `soar plan --json -o FILE` for one environment, the
//! file kept under `<data dir>/plans/<id>.plan`, so a later
//! `POST /v1/deploys {"plan": id}` applies exactly it (`soar deploy FILE`,
//! refused when the state moved on since).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{AppState, authorize, body};
use super::error::ApiError;
use super::inspect::{failed, resolve, soar};
use super::store::{random_hex, rfc3339};
use super::tokens::Scope;
use crate::state::now_ms;

/// `POST /v1/plans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// A project NAME of the server config (`[projects.NAME]`).
    pub project: String,
    /// An environment of that project's soar.toml.
    pub environment: String,
}

/// A saved plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedPlan {
    /// Pass as `plan` to `POST /v1/deploys`.
    pub id: String,
    /// The project planned, by its NAME in the server config.
    pub project: String,
    /// The environment planned; a deploy of the plan must name the same.
    pub environment: String,
    /// When the plan was made (RFC 3339 UTC).
    pub created_at: String,
    /// The lines `soar plan --json` printed (planned changes, summary).
    #[schema(value_type = Vec<Object>)]
    pub plan: Vec<serde_json::Value>,
}

/// Plan a deploy (nothing changes) and keep the plan for a later deploy.
#[utoipa::path(post, path = "/v1/plans", tag = "deploys", security(("bearer" = [])),
    request_body = PlanRequest,
    responses(
        (status = 201, description = "The plan, saved", body = SavedPlan),
        (status = 400, description = "Bad JSON or an invalid project", body = super::error::ErrorBody),
        (status = 404, description = "No such project or environment", body = super::error::ErrorBody),
        (status = 502, description = "Planning failed", body = super::error::ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<PlanRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let req = body(request)?;
    let (root, _) = resolve(&state, &who, &req.project, &req.environment)?;
    let dir = &state.queue.plans_dir;
    std::fs::create_dir_all(dir).map_err(anyhow::Error::from)?;
    let id = random_hex(8);
    let file = dir.join(format!("{id}.plan"));
    let file_arg = file.to_string_lossy().into_owned();
    let (code, out, err) = soar(
        &state,
        &root,
        &["plan", "--json", "--env", &req.environment, "-o", &file_arg],
    )
    .await?;
    if code != 0 {
        let _ = std::fs::remove_file(&file);
        return Err(failed("plan", &err));
    }
    let created = now_ms();
    state.queue.db.conn().execute(
        "INSERT INTO plans (id, project, environment, actor, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, req.project, req.environment, who.name, created],
    ).map_err(anyhow::Error::from)?;
    let plan = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(SavedPlan {
            id,
            project: req.project,
            environment: req.environment,
            created_at: rfc3339(created),
            plan,
        }),
    )
        .into_response())
}

/// That plan `id` exists and was made for `project`'s `environment`.
pub fn check(state: &AppState, id: &str, project: &str, environment: &str) -> Result<(), ApiError> {
    let row: Option<(String, String)> = state
        .queue
        .db
        .conn()
        .query_row(
            "SELECT project, environment FROM plans WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(anyhow::Error::from)?;
    match row {
        Some((p, e)) if p == project && e == environment => Ok(()),
        Some((p, e)) => Err(ApiError::bad_request(
            format!("plan {id} was made for {p}/{e}, not {project}/{environment}"),
            "deploy it to the environment it was made for, or make a new plan",
        )),
        None => Err(ApiError::not_found(
            format!("no plan {id:?}"),
            "use the id POST /v1/plans returned",
        )),
    }
}
