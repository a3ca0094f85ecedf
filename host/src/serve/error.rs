//! Every error the API returns: a status and JSON `{error, hint}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    pub hint: String,
    /// For a project whose soar.toml is invalid: `soar validate`'s
    /// `file:line:col` diagnostics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<String>>,
}

/// An error response: every handler's `Err`, turned into `status` and a JSON
/// [`ErrorBody`] so a client always learns what was wrong and what to do.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status of the response (4xx for the client's mistakes).
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, saying what went wrong and what to do.
    pub fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                hint: hint.into(),
                diagnostics: None,
            },
        }
    }

    /// Attach a soar.toml's `file:line:col` diagnostics.
    pub fn with_diagnostics(mut self, diagnostics: Vec<String>) -> Self {
        self.body.diagnostics = Some(diagnostics);
        self
    }

    /// A 500 for a failure that is the server's, not the client's: the
    /// detail goes to the server's log, never to the client.
    pub fn internal(e: anyhow::Error) -> Self {
        tracing::warn!("serve: {e:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "the server's log says more; retry later",
        )
    }

    /// A 401 for a missing, unknown or revoked bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token",
            "send `Authorization: Bearer <token>`; create one on the server with `soar serve token create --scope read|deploy|admin`",
        )
    }

    /// A 404: `what` is missing (or the caller may not see it).
    pub fn not_found(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what, hint)
    }

    /// A 400: the request itself is wrong.
    pub fn bad_request(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what, hint)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}
