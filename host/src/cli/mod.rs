//! The command line: argument parsing and dispatch. Each command returns an
//! exit code; errors bubble up as `anyhow` chains and are printed once, by
//! `main`.
//!
//! Exit codes: 0 success (and, with `plan --detailed-exitcode`, no changes);
//! 1 error; 2 `plan --detailed-exitcode` found changes (clap also uses 2 for
//! usage errors).

mod plugin;
mod project;
mod spot_init;

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::catalog::Catalog;
use crate::runtime::{Runtime, RuntimeConfig, cache::CompileCache};

/// Deploy services to clouds through sandboxed WebAssembly provider plugins.
#[derive(Debug, Parser)]
#[command(name = "soar", version, about, propagate_version = true)]
pub struct Cli {
    /// More logs (-v: info, -vv: debug, including every brokered request).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// The project's soar.toml (default: found from the current directory up).
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented soar.toml for a new project.
    Init(project::InitArgs),
    /// Check soar.toml without touching the network.
    Validate(project::JsonArgs),
    /// Show what a deploy would change (nothing is changed).
    Plan(project::PlanArgs),
    /// Make an environment match the configuration.
    #[command(visible_alias = "apply")]
    Deploy(project::DeployArgs),
    /// Remove everything an environment owns.
    Destroy(project::DestroyArgs),
    /// Show each environment's release and whether it runs.
    Status(project::StatusArgs),
    /// Rebuild the state's resources from what the provider reports (its
    /// `managed-by:soar` tags).
    Refresh(project::EnvJsonArgs),
    /// Show the service's recent log lines.
    Logs(project::LogsArgs),
    /// Show the audit trail of deploys, destroys and rollbacks.
    History(project::HistoryArgs),
    /// Switch back to an earlier release.
    Rollback(project::RollbackArgs),
    /// List, inspect and manage provider plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run Soar as a deployment service: deploy jobs over an HTTP API.
    Serve(crate::serve::ServeArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Run a local service under supervision (started by `soar deploy`).
    #[command(name = "__supervise", hide = true)]
    Supervise { root: PathBuf },
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Init(a) => project::init(config, a),
        Command::Validate(a) => project::validate(config, a),
        Command::Plan(a) => project::plan(config, a).await,
        Command::Deploy(a) => project::deploy(config, a).await,
        Command::Destroy(a) => project::destroy(config, a).await,
        Command::Status(a) => project::status(config, a).await,
        Command::Refresh(a) => project::refresh(config, a).await,
        Command::Logs(a) => project::logs(config, a).await,
        Command::History(a) => project::history(config, a),
        Command::Rollback(a) => project::rollback(config, a).await,
        Command::Plugin(cmd) => plugin::run(config, cmd).await,
        Command::Serve(a) => crate::serve::run(a).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "soar", &mut std::io::stdout());
            Ok(0)
        }
        Command::Supervise { root } => crate::supervise::run(&root).await.map(|_| 0),
    }
}

/// The runtime and catalog commands without a project start from.
pub(crate) fn environment() -> anyhow::Result<(Runtime, Catalog)> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: CompileCache::default_dir(),
        ..Default::default()
    })?;
    let catalog = Catalog::discover(Catalog::default_dir())?;
    Ok((runtime, catalog))
}
