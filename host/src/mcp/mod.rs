//! `soar mcp`: the deploy operations as Model Context Protocol tools over
//! stdio, for agents that deploy — the conan design's "tool definitions" on
//! Soar's engine.
//!
//! An MCP client (an agent) starts `soar mcp -c soar.toml` and calls six
//! tools: `plan`, `deploy`, `status`, `logs`, `history` and `rollback`.
//! Each runs the CLI's own command on the project, in this process, so a
//! tool does what the command of the same name does — same state, same
//! project lock, same audit trail — and answers with its events as
//! structured JSON plus a short text, or with the CLI's error message as a
//! tool error. `deploy` applies only a plan a `plan` call made, by its id
//! ([`plans`]).
//!
//! - [`channel`]: stdin and stdout belong to the protocol alone.
//! - [`tools`]: the server, its tools' descriptions and input schemas.
//! - [`ops`]: each tool's operation on the engine.
//! - [`call`]: running a command with its output captured; results,
//!   errors and the secret scrub every result passes through.
//! - [`plans`]: plan ids — unguessable, single-use, expiring, on disk.
//! - [`server`]: with `--server URL`, the same tools on a `soar serve`
//!   server's jobs, over its HTTP API.

pub mod call;
pub mod channel;
pub mod ops;
pub mod plans;
pub mod server;
pub mod tools;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use rmcp::ServiceExt as _;

/// `soar mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Drive the jobs of the `soar serve` server at URL instead of running
    /// the commands here (default: $SOAR_SERVER); the token is read from
    /// $SOAR_SERVER_TOKEN only.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// With --server: the project's NAME on the server (default: [app]
    /// name of soar.toml).
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// With --server: a PEM file of CA certificates to trust besides the
    /// system's.
    #[arg(long, value_name = "FILE")]
    server_ca: Option<PathBuf>,
    /// With --server: allow http:// to another machine (the token then
    /// crosses the network in clear text).
    #[arg(long)]
    insecure_http: bool,
}

impl McpArgs {
    /// The server the tools drive, if any; an error for the server-only
    /// flags without one.
    fn target(self) -> anyhow::Result<Option<server::Target>> {
        let url = self
            .server
            .or_else(|| std::env::var("SOAR_SERVER").ok())
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            anyhow::ensure!(
                self.project.is_none() && self.server_ca.is_none() && !self.insecure_http,
                "--project, --server-ca and --insecure-http apply to a server: add --server URL (or set $SOAR_SERVER)"
            );
            return Ok(None);
        };
        Ok(Some(server::Target {
            url,
            project: self.project,
            ca: self.server_ca,
            insecure_http: self.insecure_http,
        }))
    }
}

/// Serve the tools over this process's stdin and stdout until the client
/// closes the session; `config` is `soar -c PATH` (default: soar.toml found
/// from the current directory up). Returns the exit code.
pub async fn run(config: Option<PathBuf>, args: McpArgs) -> anyhow::Result<i32> {
    let config = config
        .map(std::path::absolute)
        .transpose()
        .context("resolving the -c path")?;
    // A server, its token and the project are checked before the channel
    // is taken, so a mistake is reported as any command's is.
    let on_server = args
        .target()?
        .map(|t| server::Server::open(&t, config.as_deref()))
        .transpose()?;
    // First, before anything could print: from here on stdout is the
    // protocol's alone.
    let channel = channel::take()?;
    // Progress bars draw on stderr, which an MCP client keeps as a log:
    // plain lines read better there.
    crate::report::progress::set_enabled(false);
    let server = match on_server {
        Some(on) => {
            tracing::info!("soar mcp: serving {} over stdio", on.describe());
            tools::Soar::on_server(on)
        }
        None => {
            tracing::info!(
                "soar mcp: serving {} over stdio",
                config.as_deref().map_or_else(
                    || "the soar.toml found from here".into(),
                    |p| p.display().to_string()
                )
            );
            tools::Soar::new(config)
        }
    };
    let session = server
        .clone()
        .serve((channel.input, channel.output))
        .await
        .context("starting the MCP session (the client's initialize)")?;
    let ended = session.waiting().await;
    // The client is gone (or the stream broke): a deploy or rollback still
    // running finishes, as it would had the CLI run it, before we exit.
    server.drain().await;
    ended.context("serving the MCP session")?;
    Ok(0)
}
