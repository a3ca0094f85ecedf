//! The MCP server: the tools an agent sees — their names, descriptions and
//! input schemas (derived from the input types below) — each handing its
//! call to [`super::ops`] on a thread of its own.
//!
//! Tool descriptions are what an agent reads to decide what to call and
//! how, so they say what a tool changes, what it needs first, and what its
//! errors mean; doc comments on the inputs become the schemas'
//! descriptions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::schemars::JsonSchema;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::call::{Outcome, failure, on_own_thread};
use super::ops;
use super::server::Server;

/// `plan`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The environment to plan, as named in soar.toml's [env.NAME]. May be
    /// left out when the project has only one.
    #[serde(default)]
    pub environment: Option<String>,
}

/// `deploy`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct DeployInput {
    /// The plan_id an earlier `plan` call returned (32 hex digits). The
    /// plan's environment is the one deployed.
    pub plan_id: String,
}

/// `status`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// Only this environment (default: every environment of the project).
    #[serde(default)]
    pub environment: Option<String>,
    /// Read the recorded state only, without asking the cloud providers
    /// what is deployed (faster; no drift check). Default false. A server
    /// (`soar mcp --server`) always asks them.
    #[serde(default)]
    pub offline: Option<bool>,
}

/// `logs`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct LogsInput {
    /// The environment whose service to read. May be left out when the
    /// project has only one.
    #[serde(default)]
    pub environment: Option<String>,
    /// How many of the last lines (1 to 10000; default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub lines: Option<u32>,
}

/// `history`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// Only this environment's records (default: every environment).
    #[serde(default)]
    pub environment: Option<String>,
    /// How many records, newest first (default 20).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `rollback`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The environment to roll back. May be left out when the project has
    /// only one.
    #[serde(default)]
    pub environment: Option<String>,
    /// The release id to switch to, as `status` or `history` show it
    /// (default: the release before the active one).
    #[serde(default)]
    pub to: Option<String>,
}

/// The MCP server of one project.
#[derive(Clone)]
pub struct Soar {
    /// `soar mcp -c PATH`; `None`: soar.toml found from the current
    /// directory up, at each call (so edits to it are seen).
    config: Option<PathBuf>,
    /// `soar mcp --server URL`: the tools drive that server's jobs instead
    /// of the local engine.
    server: Option<Arc<Server>>,
    /// Held shared by every operation until its thread ends — even when
    /// the client cancelled the call or went away — so that [`Soar::drain`]
    /// can wait for them: a deploy is never cut off halfway.
    running: Arc<RwLock<()>>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Soar {
    /// The server for the project at `config` (or found from the current
    /// directory up).
    pub fn new(config: Option<PathBuf>) -> Self {
        Self {
            config,
            server: None,
            running: Arc::default(),
            tool_router: Self::tool_router(),
        }
    }

    /// The server whose jobs the tools drive (`soar mcp --server URL`).
    pub fn on_server(server: Server) -> Self {
        Self {
            server: Some(Arc::new(server)),
            ..Self::new(None)
        }
    }

    /// Wait until no operation runs (and let none start).
    pub async fn drain(&self) {
        let _ = self.running.write().await;
    }

    /// Run one operation on its own thread (see [`super::call`]) and send
    /// its outcome.
    async fn call(
        &self,
        op: impl FnOnce(Option<&Path>) -> Outcome + Send + 'static,
    ) -> CallToolResult {
        let config = self.config.clone();
        let running = self.running.clone().read_owned().await;
        on_own_thread(move || {
            let outcome = op(config.as_deref());
            drop(running);
            Ok(outcome)
        })
        .await
        .unwrap_or_else(|e| failure(&e))
        .finish()
    }

    /// Plan a deploy of one environment: build the artifact, ask the cloud
    /// provider what would change, and show the changes (resources to add,
    /// change or destroy, and the release to roll out). Nothing is changed.
    /// Returns the plan and a plan_id: to apply exactly this plan, call
    /// `deploy` with it. A plan_id is single-use and expires after 60
    /// minutes; `deploy` refuses it if the environment changed since the
    /// plan was made (then plan again).
    #[tool(annotations(
        title = "Plan a deploy",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = true
    ))]
    async fn plan(&self, params: Parameters<PlanInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.plan(params.0).await.finish();
        }
        self.call(move |config| ops::plan(config, params.0)).await
    }

    /// Deploy exactly a plan an earlier `plan` call made, by its plan_id:
    /// apply the provider changes, roll the release out, check its health,
    /// and record it. There is no deploy without a plan: call `plan` first,
    /// review it, then deploy its id. Refused (nothing changes) when the id
    /// is unknown, already used or expired, or when the environment changed
    /// since the plan (stale). Returns where the service answers (url) and
    /// the release id.
    #[tool(annotations(
        title = "Deploy a plan",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn deploy(&self, params: Parameters<DeployInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.deploy(params.0).await.finish();
        }
        self.call(move |config| ops::deploy(config, params.0)).await
    }

    /// Show each environment's active release, whether its service runs and
    /// at which url, its resources, and (unless offline) what the cloud
    /// provider reports, with any drift from the recorded state. Changes
    /// nothing.
    #[tool(annotations(
        title = "Environment status",
        read_only_hint = true,
        open_world_hint = true
    ))]
    async fn status(&self, params: Parameters<StatusInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.status(params.0).await.finish();
        }
        self.call(move |config| ops::status(config, params.0)).await
    }

    /// Read the last lines the deployed service logged in one environment.
    /// Changes nothing.
    #[tool(annotations(title = "Service logs", read_only_hint = true, open_world_hint = true))]
    async fn logs(&self, params: Parameters<LogsInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.logs(params.0).await.finish();
        }
        self.call(move |config| ops::logs(config, params.0)).await
    }

    /// Show the audit trail, newest first: every deploy, rollback and
    /// destroy, with who ran it, its phases and their timings, its outcome
    /// and summary. Changes nothing.
    #[tool(annotations(
        title = "Deploy history",
        read_only_hint = true,
        open_world_hint = false
    ))]
    async fn history(&self, params: Parameters<HistoryInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.history(params.0).await.finish();
        }
        self.call(move |config| ops::history(config, params.0))
            .await
    }

    /// Switch one environment back to an earlier release (by default the
    /// one before the active one) and restart the service on it, checking
    /// its health. Fails, changing nothing, when there is no earlier
    /// release. Returns the release now active.
    #[tool(annotations(
        title = "Roll back",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn rollback(&self, params: Parameters<RollbackInput>) -> CallToolResult {
        if let Some(server) = &self.server {
            return server.rollback(params.0).await.finish();
        }
        self.call(move |config| ops::rollback(config, params.0))
            .await
    }
}

/// The router's own `tools/list` and `tools/call`. Arguments that do not
/// fit a tool's schema come back as that tool's error (which the agent sees
/// and can fix), not as a protocol error: rmcp's router does that.
#[tool_handler(
    router = self.tool_router,
    name = "soar",
    instructions = "Soar deploys this project's service to the environments its soar.toml names. To deploy: call `plan`, review the changes, then `deploy` with the plan_id it returned. `status`, `history` and `logs` read; `rollback` switches back to an earlier release."
)]
impl ServerHandler for Soar {}
