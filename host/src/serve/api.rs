//! The HTTP routes. Every route but `/health` needs a bearer token whose
//! scope covers it; a token limited to a project sees only that project's
//! jobs. Requests name projects by their NAME in the server config, never a
//! path.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::config::ServerConfig;
use super::error::ApiError;
use super::events;
use super::jobs::{self, NewJob};
use super::queue::Queue;
use super::tokens::{self, Principal, Scope};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Priorities run from -1000 (last) to 1000 (first); default 0.
pub const MAX_PRIORITY: i64 = 1000;

/// Artifact kinds a project may deploy (`[artifact] kind`).
pub const ARTIFACT_KINDS: &[&str] = &["binary", "script", "static", "tarball", "docker"];

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub queue: Arc<Queue>,
    /// Provider plugins: (name, source).
    pub providers: Arc<Vec<(String, String)>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/capabilities", get(capabilities))
        .route("/v1/deploys", post(submit))
        .route("/v1/deploys/{id}", get(show))
        .route("/v1/deploys/{id}/events", get(events::stream))
        .route("/v1/deploys/{id}/cancel", post(cancel))
        .fallback(|| async {
            ApiError::not_found(
                "no such route",
                "routes: GET /health, GET /capabilities, POST /v1/deploys, GET /v1/deploys/{id}, GET /v1/deploys/{id}/events, POST /v1/deploys/{id}/cancel",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The token of the request, if it has the scope `need`.
pub fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    need: Scope,
) -> Result<Principal, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    let principal = tokens::verify(&state.queue.db, token).ok_or_else(ApiError::unauthorized)?;
    if principal.scope < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token's scope is '{}'; this needs '{need}'",
                principal.scope
            ),
            format!("create a token with `soar serve token create --scope {need}`"),
        ));
    }
    Ok(principal)
}

/// Job `id`, if it exists and `who` may see it (else 404 alike, so a
/// project-bound token learns nothing of other projects' jobs).
pub fn visible_job(state: &AppState, who: &Principal, id: &str) -> Result<jobs::Job, ApiError> {
    match jobs::get(&state.queue.db, id)? {
        Some(job) if who.covers(&job.project) => Ok(job),
        _ => Err(ApiError::not_found(
            format!("no deploy {id:?}"),
            "use the id POST /v1/deploys returned",
        )),
    }
}

async fn health(State(state): State<AppState>) -> Response {
    match jobs::counts(&state.queue.db) {
        Ok((queued, running)) => Json(json!({
            "status": "ok",
            "store": "ok",
            "queue": { "queued": queued, "running": running, "per_provider": state.config.per_provider },
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "store": "error",
                "error": "the server's state store does not answer",
                "hint": format!("check {} on the server", state.config.data_dir.display()),
                "detail": format!("{e:#}"),
            })),
        )
            .into_response(),
    }
}

async fn capabilities(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    use crate::runtime::contract;
    let providers: Vec<_> = state
        .providers
        .iter()
        .map(|(name, source)| {
            // Bundled plugins are built with this host's contract; an
            // installed one is checked against `supported` when loaded.
            let contract = (source == "bundled")
                .then(|| format!("{}@{}", contract::PACKAGE, contract::CURRENT));
            json!({ "name": name, "source": source, "contract": contract })
        })
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "contract": {
            "package": contract::PACKAGE,
            "current": contract::CURRENT,
            "supported": contract::SUPPORTED,
        },
        "providers": providers,
        "artifact_kinds": ARTIFACT_KINDS,
        "features": ["deploys", "events", "cancel", "tokens", "priorities", "per-provider-limits"],
        "limits": { "max_body_bytes": MAX_BODY, "per_provider": state.config.per_provider },
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    project: String,
    environment: String,
    #[serde(default)]
    priority: i64,
}

/// A JSON body, or the 4xx saying why not.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t).map_err(|r| {
        let hint = match r {
            JsonRejection::MissingJsonContentType(_) => {
                "send `Content-Type: application/json`".to_string()
            }
            JsonRejection::BytesRejection(_) => {
                format!("request bodies are at most {MAX_BODY} bytes")
            }
            _ => "send a JSON object like {\"project\": \"NAME\", \"environment\": \"ENV\", \"priority\": 0}"
                .to_string(),
        };
        // A body that parses but has the wrong shape is as bad a request
        // as one that does not parse: 400 for both.
        let status = match r {
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            _ => r.status(),
        };
        ApiError::new(status, r.body_text(), hint)
    })
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let req = body(request)?;
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&req.priority) {
        return Err(ApiError::bad_request(
            format!("priority {} is out of range", req.priority),
            format!("use -{MAX_PRIORITY}..={MAX_PRIORITY} (higher runs first; default 0)"),
        ));
    }
    let names = || {
        state
            .config
            .projects
            .keys()
            .filter(|n| who.covers(n))
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let root = match state.config.projects.get(&req.project) {
        Some(root) if who.covers(&req.project) => root,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this token is limited to another project than {:?}",
                    req.project
                ),
                "use a token created with `--project` naming this project, or none",
            ));
        }
        None => {
            return Err(ApiError::not_found(
                format!("no project {:?} on this server", req.project),
                format!("projects this token may deploy: {}", names()),
            ));
        }
    };
    let known: Vec<&str> = state.providers.iter().map(|(n, _)| n.as_str()).collect();
    let project = match crate::config::load(&root.join("soar.toml"), &known) {
        Ok(p) => p,
        Err(e) => {
            // `soar validate`'s diagnostics, with paths relative to the project.
            let prefix = format!("{}/", root.display());
            let diagnostics: Vec<String> =
                e.0.iter()
                    .map(|d| d.to_string().replace(&prefix, ""))
                    .collect();
            return Err(ApiError::bad_request(
                format!("project {:?} has an invalid soar.toml", req.project),
                "fix what the diagnostics name (`soar validate` on the server shows the same)",
            )
            .with("diagnostics", json!(diagnostics)));
        }
    };
    let Some(env) = project.environments.get(&req.environment) else {
        let envs: Vec<&String> = project.environments.keys().collect();
        return Err(ApiError::bad_request(
            format!(
                "project {:?} has no environment {:?}",
                req.project, req.environment
            ),
            format!(
                "its environments: {}",
                envs.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let job = jobs::insert(
        &state.queue.db,
        &NewJob {
            project: &req.project,
            environment: &req.environment,
            provider: &env.provider,
            priority: req.priority,
            actor: &who.name,
        },
    )?;
    state.queue.poke();
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/deploys/{}", job.id))],
        Json(json!({ "id": job.id, "status": job.status, "created_at": job.created_at })),
    )
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let job = visible_job(&state, &who, &id)?;
    let events = jobs::events_after(&state.queue.db, &id, 0)?;
    // The service URL, from the deploy's `deployed` event.
    let url = events
        .iter()
        .rev()
        .find(|e| e.data["type"] == "deployed")
        .and_then(|e| e.data["url"].as_str().map(str::to_string));
    let mut out = serde_json::to_value(&job).map_err(anyhow::Error::from)?;
    out["url"] = json!(url);
    out["events"] = json!(events);
    Ok(Json(out).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let job = visible_job(&state, &who, &id)?;
    match state.queue.cancel(&id)? {
        Some(status) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "status": status })),
        )
            .into_response()),
        None => {
            let now = jobs::get(&state.queue.db, &id)?.map_or(job.status, |j| j.status);
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("deploy {id} is already {now}"),
                "only a queued or running deploy can be cancelled",
            ))
        }
    }
}
