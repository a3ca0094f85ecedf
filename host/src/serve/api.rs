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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::compat;
use super::config::ServerConfig;
use super::error::{ApiError, ErrorBody};
use super::events;
use super::inspect;
use super::jobs::{self, Event, Job, NewJob, Options};
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
    /// The server config: projects by name, limits, the data directory.
    pub config: Arc<ServerConfig>,
    /// The job queue and its database, also where tokens are checked.
    pub queue: Arc<Queue>,
    /// Provider plugins: (name, source).
    pub providers: Arc<Vec<(String, String)>>,
    /// Bounds the status/history/logs/plan commands run at once.
    pub inspections: Arc<tokio::sync::Semaphore>,
    /// `GET /health`'s last round of reachability probes.
    pub probes: Arc<super::health::Probes>,
    /// What the health monitors of the projects' services have seen.
    pub monitoring: Arc<super::monitoring::Monitoring>,
    /// The brokered requests of finished jobs, counted for `/metrics`.
    pub brokered: Arc<super::brokered::Brokered>,
}

/// Every route of the server, with the body limit and the 404 fallback that
/// points at the OpenAPI document, and the dashboard's pages.
pub fn router(state: AppState) -> Router {
    let bundle_cap = usize::try_from(state.config.bundles.max_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/health", get(super::health::health))
        .route("/capabilities", get(capabilities))
        .route("/metrics", get(super::metrics::metrics))
        .route("/v1/monitor", get(super::monitoring::view))
        .route("/v1/deploys", post(submit).get(list))
        .route("/v1/deploys/{id}", get(show))
        .route("/v1/deploys/{id}/events", get(events::stream))
        .route("/v1/deploys/{id}/cancel", post(cancel))
        .route(
            "/v1/deploys/{id}/rollback",
            post(inspect::rollback_of_deploy),
        )
        .route("/v1/environments/{project}/{env}", get(inspect::status))
        .route(
            "/v1/environments/{project}/{env}/history",
            get(inspect::history),
        )
        .route("/v1/environments/{project}/{env}/logs", get(inspect::logs))
        .route(
            "/v1/environments/{project}/{env}/rollback",
            post(inspect::rollback),
        )
        .route("/v1/plans", post(super::plans::create))
        .route(
            "/v1/bundles",
            post(super::uploads::upload).layer(DefaultBodyLimit::max(bundle_cap)),
        )
        .route("/v1/services/{name}/history", get(inspect::service_history))
        .route("/v1/services/{name}/logs", get(inspect::service_logs))
        .route("/v1/openapi.json", get(openapi))
        .route("/deploy", post(compat::deploy))
        .route("/deploy/{job_id}", get(compat::show))
        .fallback(|| async {
            ApiError::not_found(
                "no such route",
                "GET /v1/openapi.json (with a token) describes every route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone())
        .merge(super::dashboard::router(state))
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

/// `GET /capabilities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Capabilities {
    /// This soar's version.
    pub version: String,
    /// The plugin contract this host speaks.
    pub contract: ContractInfo,
    /// The provider plugins this server can load, bundled and installed.
    pub providers: Vec<ProviderInfo>,
    /// The `[artifact] kind`s a project may deploy.
    pub artifact_kinds: Vec<String>,
    /// Names of the API's optional features (`events`, `plans`, ...), so a
    /// client can tell what an older server lacks.
    pub features: Vec<String>,
    /// The bounds a client must stay within.
    pub limits: Limits,
}

/// The plugin contract versions of `GET /capabilities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContractInfo {
    /// The plugin contract package (`soar:plugin`).
    pub package: String,
    /// The contract version bundled plugins are built against.
    pub current: String,
    /// Contract versions this host loads.
    pub supported: Vec<String>,
}

/// One provider plugin of `GET /capabilities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderInfo {
    /// The provider's name, as soar.toml's `provider` names it.
    pub name: String,
    /// `bundled` or `installed`.
    pub source: String,
    /// `soar:plugin@<version>` for bundled plugins; an installed one is
    /// checked against `contract.supported` when it loads.
    pub contract: Option<String>,
}

/// The server's bounds, as `GET /capabilities` reports them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Jobs running at once per provider; more wait in the queue.
    pub per_provider: usize,
    /// Largest bundle upload (compressed), in bytes.
    pub max_bundle_bytes: u64,
    /// Most bytes a bundle may unpack to.
    pub max_bundle_unpacked_bytes: u64,
    /// Most entries (files, directories, links) in a bundle.
    pub max_bundle_entries: u64,
    /// Further attempts after a transient failure.
    pub retries: u32,
}

/// What this server can deploy, and with which plugins.
#[utoipa::path(get, path = "/capabilities", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "Version, providers, artifact kinds", body = Capabilities),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
async fn capabilities(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Capabilities>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    use crate::contract::version as contract;
    let providers = state
        .providers
        .iter()
        .map(|(name, source)| ProviderInfo {
            name: name.clone(),
            source: source.clone(),
            contract: (source == "bundled")
                .then(|| format!("{}@{}", contract::PACKAGE, contract::CURRENT)),
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Ok(Json(Capabilities {
        version: env!("CARGO_PKG_VERSION").into(),
        contract: ContractInfo {
            package: contract::PACKAGE.into(),
            current: contract::CURRENT.into(),
            supported: strings(contract::SUPPORTED),
        },
        providers,
        artifact_kinds: strings(ARTIFACT_KINDS),
        features: strings(&[
            "deploys",
            "events",
            "cancel",
            "tokens",
            "priorities",
            "per-provider-limits",
            "openapi",
            "status",
            "history",
            "logs",
            "logs-follow",
            "rollback",
            "plans",
            "retries",
            "bundles",
            "secrets",
            "auto-register",
        ]),
        limits: Limits {
            max_body_bytes: MAX_BODY,
            per_provider: state.config.per_provider,
            max_bundle_bytes: state.config.bundles.max_bytes,
            max_bundle_unpacked_bytes: state.config.bundles.max_unpacked_bytes,
            max_bundle_entries: state.config.bundles.max_entries,
            retries: state.config.retry.retries,
        },
    }))
}

/// `POST /v1/deploys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// A project NAME of the server config (`[projects.NAME]`).
    pub project: String,
    /// An environment of that project's soar.toml.
    pub environment: String,
    /// -1000..=1000, higher first; default 0.
    #[serde(default)]
    pub priority: i64,
    /// A plan id from `POST /v1/plans`: apply exactly that plan (refused
    /// when stale). Without one, the deploy plans then applies.
    pub plan: Option<String>,
    /// `false`: skip the project's `[register]` this time; `true`: require
    /// one (400 without); absent: as soar.toml says.
    pub auto_register: Option<bool>,
    /// Extra service variables for this deploy: variable -> the NAME of a
    /// secret the server holds (`[secrets]` of soar-server.toml). Only
    /// names travel; the server resolves the values.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, String>,
}

/// A job accepted into the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    /// The job id, for `GET /v1/deploys/{id}` and its events.
    pub id: String,
    /// `queued`.
    pub status: String,
    /// When the job was accepted (RFC 3339, UTC).
    pub created_at: String,
}

/// A job, its events so far and the service URL once deployed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    /// The job itself, flattened into this object.
    #[serde(flatten)]
    pub job: Job,
    /// The URL the deploy reported (its `deployed` event).
    pub url: Option<String>,
    /// The job's events so far, oldest first.
    pub events: Vec<Event>,
}

/// A cancel request taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// The job the cancel was for.
    pub id: String,
    /// `cancelled` (it was queued) or `cancelling` (SIGTERM sent; the job
    /// becomes `cancelled` when its deploy exits).
    pub status: String,
}

/// A JSON body, or the 4xx saying why not.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
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

/// Queue a deploy of one environment of a configured project.
#[utoipa::path(post, path = "/v1/deploys", tag = "deploys", security(("bearer" = [])),
    request_body = DeployRequest,
    responses(
        (status = 202, description = "Queued", body = Submitted),
        (status = 400, description = "Bad JSON, unknown environment, bad priority or an invalid soar.toml", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's scope or project does not allow it", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 429, description = "The queue is full (`[queue] max_queued`)", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    ))]
async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let req = body(request)?;
    let options = Options {
        auto_register: req.auto_register,
        secrets: req.secrets,
    };
    let job = submit_job(
        &state,
        &who,
        &req.project,
        Some(&req.environment),
        req.priority,
        req.plan.as_deref(),
        &options,
    )?;
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

/// Check and queue a deploy of `project`'s `environment` (with none, the
/// project's only one) for `who`: what `POST /v1/deploys` and the
/// compatibility route share.
pub fn submit_job(
    state: &AppState,
    who: &Principal,
    project_name: &str,
    environment: Option<&str>,
    priority: i64,
    plan: Option<&str>,
    options: &Options,
) -> Result<Job, ApiError> {
    if state.queue.is_stopping() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
            "submit again once it is back (queued jobs are kept)",
        ));
    }
    let (queued, _) = jobs::counts(&state.queue.db)?;
    if queued >= state.config.max_queued {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{queued} jobs are queued already, the most this server takes"),
            "submit again once some have run (GET /health shows the queue)",
        ));
    }
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        return Err(ApiError::bad_request(
            format!("priority {priority} is out of range"),
            format!("use -{MAX_PRIORITY}..={MAX_PRIORITY} (higher runs first; default 0)"),
        ));
    }
    let names = || {
        state
            .queue
            .projects
            .names()
            .into_iter()
            .filter(|n| who.covers(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let root = match state.queue.projects.get(project_name) {
        Some(root) if who.covers(project_name) => root,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this token is limited to another project than {project_name:?}"),
                "use a token created with `--project` naming this project, or none",
            ));
        }
        None => {
            return Err(ApiError::not_found(
                format!("no project {project_name:?} on this server"),
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
                format!("project {project_name:?} has an invalid soar.toml"),
                "fix what the diagnostics name (`soar validate` on the server shows the same)",
            )
            .with_diagnostics(diagnostics));
        }
    };
    let envs = || {
        project
            .environments
            .keys()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let environment = match environment {
        Some(e) => e.to_string(),
        None if project.environments.len() == 1 => project
            .environments
            .keys()
            .next()
            .cloned()
            .unwrap_or_default(),
        None => {
            return Err(ApiError::bad_request(
                format!("project {project_name:?} has several environments"),
                format!("name one with \"environment\": {}", envs()),
            ));
        }
    };
    let Some(env) = project.environments.get(&environment) else {
        return Err(ApiError::bad_request(
            format!("project {project_name:?} has no environment {environment:?}"),
            format!("its environments: {}", envs()),
        ));
    };
    if let Some(plan) = plan {
        super::plans::check(state, plan, project_name, &environment)?;
    }
    super::options::check(options, &project, env, &state.config.secrets, plan)?;
    let job = jobs::insert(
        &state.queue.db,
        &NewJob {
            options,
            plan,
            project: project_name,
            environment: &environment,
            kind: super::queue::DEPLOY,
            provider: &env.provider,
            priority,
            actor: &who.name,
        },
    )?;
    state.queue.poke();
    Ok(job)
}

/// A job: status, times, error, events so far, service URL.
#[utoipa::path(get, path = "/v1/deploys/{id}", tag = "deploys", security(("bearer" = [])),
    params(("id" = String, Path, description = "The id POST /v1/deploys returned")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such job (or not this token's project)", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let job = visible_job(&state, &who, &id)?;
    let events = jobs::events_after(&state.queue.db, &id, 0)?;
    let url = events
        .iter()
        .rev()
        .find(|e| e.data["type"] == "deployed")
        .and_then(|e| e.data["url"].as_str().map(str::to_string));
    Ok(Json(JobDetail { job, url, events }))
}

/// The query of `GET /v1/deploys` (percent-decoded; the last of a
/// repeated parameter wins).
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this project's jobs (a token limited to a project sees only
    /// that one's, whatever this says).
    pub project: Option<String>,
    /// Only jobs of this environment.
    pub environment: Option<String>,
    /// Only jobs in this status (`queued`, `running`, `succeeded`,
    /// `failed`, `cancelled`, `interrupted`).
    pub status: Option<String>,
    /// At most this many, newest first: 1-500, default 50.
    pub limit: Option<u32>,
}

impl ListQuery {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = Self {
            limit: Some(inspect::number(raw, "limit", 50, 500)? as u32),
            ..Self::default()
        };
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "project" => q.project = Some(v.into_owned()),
                "environment" => q.environment = Some(v.into_owned()),
                "status" => q.status = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// `GET /v1/deploys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<jobs::Job>,
}

/// The jobs this token may see, newest first, optionally filtered.
#[utoipa::path(get, path = "/v1/deploys", tag = "deploys", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The jobs, newest first", body = JobList),
        (status = 400, description = "A filter or the limit is out of range", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let q = ListQuery::parse(raw.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if let Some(s) = q.status.as_deref()
        && !jobs::STATUSES.contains(&s)
    {
        return Err(ApiError::bad_request(
            format!("no job status {:?}", crate::terminal::clip(s, 40)),
            format!("use one of: {}", jobs::STATUSES.join(", ")),
        ));
    }
    // A token limited to one project lists that project only; asking for
    // another one lists nothing rather than saying the project exists.
    let project = match (&who.project, &q.project) {
        (Some(mine), Some(asked)) if mine != asked => return Ok(Json(JobList { jobs: vec![] })),
        (Some(mine), _) => Some(mine.as_str()),
        (None, asked) => asked.as_deref(),
    };
    let jobs = jobs::list(
        &state.queue.db,
        &jobs::Listing {
            project,
            environment: q.environment.as_deref(),
            status: q.status.as_deref(),
            limit,
        },
    )?;
    Ok(Json(JobList { jobs }))
}

/// Cancel a queued job, or SIGTERM a running one's deploy.
#[utoipa::path(post, path = "/v1/deploys/{id}/cancel", tag = "deploys", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 202, description = "Cancelled, or cancelling", body = Cancelled),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow it", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody),
    ))]
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
            Json(Cancelled {
                id,
                status: status.into(),
            }),
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

/// The OpenAPI document, generated from the handlers' annotations and the
/// Rust types above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Soar", description = "Deploy jobs over HTTP: the same deploy path as `soar deploy`."),
    paths(
        super::health::health,
        super::uploads::upload,
        capabilities,
        submit,
        list,
        show,
        events::stream,
        cancel,
        inspect::status,
        inspect::history,
        inspect::logs,
        inspect::rollback,
        inspect::rollback_of_deploy,
        compat::deploy,
        compat::show,
        super::plans::create,
        inspect::service_history,
        inspect::service_logs,
        super::monitoring::view,
        openapi
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "server", description = "Liveness and capabilities"),
        (name = "deploys", description = "Deploy jobs"),
        (name = "environments", description = "Status, history, logs and rollback of an environment"),
        (name = "compatibility", description = "The deployer spec's routes, on the same jobs"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
async fn openapi(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(<ApiDoc as utoipa::OpenApi>::openapi()).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_names_every_route() {
        let doc = serde_json::to_value(<super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            paths,
            [
                "/capabilities",
                "/deploy",
                "/deploy/{job_id}",
                "/health",
                "/v1/bundles",
                "/v1/deploys",
                "/v1/deploys/{id}",
                "/v1/deploys/{id}/cancel",
                "/v1/deploys/{id}/events",
                "/v1/deploys/{id}/rollback",
                "/v1/environments/{project}/{env}",
                "/v1/environments/{project}/{env}/history",
                "/v1/environments/{project}/{env}/logs",
                "/v1/environments/{project}/{env}/rollback",
                "/v1/monitor",
                "/v1/openapi.json",
                "/v1/plans",
                "/v1/services/{name}/history",
                "/v1/services/{name}/logs",
            ]
        );
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in [
            "DeployRequest",
            "Submitted",
            "JobDetail",
            "Job",
            "Event",
            "ErrorBody",
            "Health",
            "Capabilities",
        ] {
            assert!(schemas.contains_key(s), "{s} missing: {:?}", schemas.keys());
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
