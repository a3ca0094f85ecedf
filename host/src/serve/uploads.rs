//! `POST /v1/bundles?project=NAME`: a project uploaded as a tar.gz (the
//! body, raw), checked and unpacked by [`super::bundle`] into
//! `<data dir>/bundles/NAME`, then deployable by NAME like a configured
//! project. A new upload of the same NAME replaces the files and keeps the
//! project's `.soar/` state; it is refused while a job of it runs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{AppState, authorize};
use super::bundle::{self, BundleError};
use super::error::{ApiError, ErrorBody};
use super::store::random_hex;
use super::tokens::Scope;

/// The query of `POST /v1/bundles`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The NAME to deploy it by: 1-63 of a-z, 0-9, '-' and '_'; not a
    /// project of the server config.
    pub project: String,
}

/// A bundle unpacked and ready to deploy.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// Its NAME, for `POST /v1/deploys`.
    pub project: String,
    /// Regular files unpacked.
    pub files: u64,
    /// Their sizes added up.
    pub bytes: u64,
    /// Whether it replaced an earlier upload of the same NAME.
    pub replaced: bool,
}

/// Upload a project as a tar.gz with `soar.toml` at its top.
#[utoipa::path(post, path = "/v1/bundles", tag = "deploys", security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/gzip",
        description = "`tar czf - -C DIR .`: soar.toml at the top; no absolute paths, `..`, `.soar/`, special files or links out"),
    responses(
        (status = 201, description = "Unpacked; deploy it by NAME", body = Uploaded),
        (status = 400, description = "A bad NAME, archive, entry or soar.toml", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token's scope or project does not allow it", body = ErrorBody),
        (status = 409, description = "A configured project's NAME, or a job of it runs", body = ErrorBody),
        (status = 413, description = "Over a cap: compressed, unpacked bytes or entries", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Deploy)?;
    let name = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "project")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !super::config::valid_name(&name) {
        return Err(ApiError::bad_request(
            format!(
                "project NAME {:?} is not valid",
                crate::terminal::clip(&name, 64)
            ),
            "give ?project=NAME with 1-63 of a-z, 0-9, '-' and '_'",
        ));
    }
    if !who.covers(&name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this token is limited to another project than {name:?}"),
            "use a token created with `--project` naming this project, or none",
        ));
    }
    if state.queue.projects.is_configured(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{name:?} is a project of the server config; an upload cannot replace it"),
            "upload under another NAME",
        ));
    }
    let cap = state.config.bundles.max_bytes;
    let archive = body.map_err(|r| {
        let status = r.status();
        let hint = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("bundles are at most {cap} bytes compressed ([bundles] max_bytes)")
        } else {
            "send the tar.gz as the request body".to_string()
        };
        ApiError::new(status, r.body_text(), hint)
    })?;
    if archive.is_empty() {
        return Err(ApiError::bad_request(
            "the bundle is empty",
            "send a tar.gz made with `tar czf - -C DIR .` as the body",
        ));
    }
    if !state.queue.hold_project(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a job of {name:?} runs (or another upload of it is under way)"),
            "upload again once it ended",
        ));
    }
    let result = install(&state, &name, archive).await;
    state.queue.release_project(&name);
    let (unpacked, replaced) = result?;
    state.queue.projects.add_uploaded(&name);
    tracing::info!(
        "bundle {name}: {} files, {} bytes, uploaded by {}",
        unpacked.files,
        unpacked.bytes,
        who.name
    );
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            project: name,
            files: unpacked.files,
            bytes: unpacked.bytes,
            replaced,
        }),
    )
        .into_response())
}

/// Unpack into a fresh directory beside the target, check its soar.toml,
/// then swap it in: (what was unpacked, whether it replaced one).
async fn install(
    state: &AppState,
    name: &str,
    archive: Bytes,
) -> Result<(bundle::Unpacked, bool), ApiError> {
    let dir = state.queue.projects.bundles_dir().to_path_buf();
    let target = dir.join(name);
    let fresh = dir.join(format!(".upload-{}", random_hex(6)));
    let limits = state.config.bundles;
    let unpack_into = fresh.clone();
    let unpacked = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&unpack_into)?;
        bundle::unpack(&archive, &unpack_into, &limits)
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("unpacking a bundle: {e}")))?;
    let checked = unpacked
        .map_err(refusal)
        .and_then(|u| check_project(state, &fresh).map(|()| u));
    let unpacked = match checked {
        Ok(u) => u,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
    };
    let replaced = target.exists();
    bundle::replace(&fresh, &target).map_err(|e| {
        let _ = std::fs::remove_dir_all(&fresh);
        ApiError::internal(anyhow::anyhow!("moving bundle {name} into place: {e}"))
    })?;
    Ok((unpacked, replaced))
}

/// A bundle error as the client sees it.
fn refusal(e: BundleError) -> ApiError {
    match e {
        BundleError::Refused(m) => ApiError::bad_request(
            format!("bundle refused: {m}"),
            "pack the project directory itself: `tar czf - -C DIR .` (soar.toml at the top, links only within it)",
        ),
        BundleError::TooLarge(m) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bundle refused: {m}"),
            "leave build outputs and dependencies out, or ask the server's operator to raise [bundles] in soar-server.toml",
        ),
        BundleError::Io(e) => ApiError::internal(anyhow::anyhow!("unpacking a bundle: {e}")),
    }
}

/// The unpacked project at `dir` has a valid soar.toml at its top (400
/// with `soar validate`'s diagnostics, paths relative to the bundle).
fn check_project(state: &AppState, dir: &std::path::Path) -> Result<(), ApiError> {
    let file = dir.join("soar.toml");
    if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
        return Err(ApiError::bad_request(
            "the bundle has no soar.toml at its top",
            "pack the project directory itself: `tar czf - -C DIR .`",
        ));
    }
    let known: Vec<&str> = state.providers.iter().map(|(n, _)| n.as_str()).collect();
    crate::config::load(&file, &known).map(|_| ()).map_err(|e| {
        let prefix = format!("{}/", dir.display());
        let diagnostics =
            e.0.iter()
                .map(|d| d.to_string().replace(&prefix, ""))
                .collect();
        ApiError::bad_request(
            "the bundle's soar.toml is invalid",
            "fix what the diagnostics name (`soar validate` in the project shows the same)",
        )
        .with_diagnostics(diagnostics)
    })
}
