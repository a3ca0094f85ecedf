//! The JSON a `soar serve` server sends and takes, as this client reads
//! it. These are the client's own types, not the server's: they name only
//! the fields the CLI uses and ignore the rest, so a newer server that adds
//! fields still works with this client. The integration tests run them
//! against the real server (host/tests/all/remote.rs).

use serde::{Deserialize, Serialize};

/// `POST /v1/deploys`.
#[derive(Debug, Serialize)]
pub struct DeployRequest<'a> {
    /// The project's NAME in the server config.
    pub project: &'a str,
    /// The environment of its soar.toml.
    pub environment: &'a str,
    /// A plan id from `POST /v1/plans`, applied exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a str>,
}

/// `POST /v1/plans`.
#[derive(Debug, Serialize)]
pub struct PlanRequest<'a> {
    /// The project's NAME in the server config.
    pub project: &'a str,
    /// The environment of its soar.toml.
    pub environment: &'a str,
}

/// A job the server accepted (`202`).
#[derive(Debug, Deserialize)]
pub struct Submitted {
    /// The job's id, for its events and `--follow`.
    pub id: String,
}

/// `GET /v1/deploys/{id}`: the fields the client shows.
#[derive(Debug, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// `deploy` or `rollback`.
    pub kind: String,
    /// The project's NAME.
    pub project: String,
    /// The environment it deploys.
    pub environment: String,
    /// That environment's provider.
    pub provider: String,
    /// `queued`, `running`, or a final status.
    pub status: String,
}

/// The `end` event that closes a job's event stream.
#[derive(Debug, Deserialize)]
pub struct End {
    /// `succeeded`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    /// The deploy's exit code, when it exited by itself.
    pub exit_code: Option<i64>,
    /// The tail of its error output, when it failed.
    pub error: Option<String>,
}

/// A plan the server made and kept (`POST /v1/plans`).
#[derive(Debug, Deserialize)]
pub struct SavedPlan {
    /// Pass it to `soar deploy --server URL ID` to apply exactly it.
    pub id: String,
    /// The lines `soar plan --json` printed on the server.
    pub plan: Vec<serde_json::Value>,
}

/// `GET .../logs`.
#[derive(Debug, Deserialize)]
pub struct Logs {
    /// The service's lines, oldest first.
    pub lines: Vec<String>,
}

/// `POST /v1/deploys/{id}/cancel`.
#[derive(Debug, Deserialize)]
pub struct Cancelled {
    /// `cancelled` (it was queued) or `cancelling` (it is being stopped).
    pub status: String,
}

/// Every error response: `{error, hint}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    #[serde(default)]
    pub hint: String,
    /// An invalid soar.toml's `file:line:col` diagnostics.
    #[serde(default)]
    pub diagnostics: Vec<String>,
}
