//! The command line: argument parsing and dispatch. Each command returns an
//! exit code and writes its output through one [`Reporter`]; errors bubble
//! up as `anyhow` chains and are reported once, by `main`, through the same
//! reporter (an `error` event under `--json`).
//!
//! Exit codes: 0 success (and, with `plan --detailed-exitcode`, no changes);
//! 1 error; 2 `plan --detailed-exitcode` found changes (clap also uses 2 for
//! usage errors).

pub mod args;
mod exec;
mod host_setup;
mod lock;
mod monitor;
mod plugin;
mod plugin_test;
mod project;
mod remote;
mod spot_init;
mod state_cmd;

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::catalog::Catalog;
use crate::report::{Reporter, Settings};
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

    /// Keep the state in this PostgreSQL database
    /// (postgres://user@host:5432/db), over SOAR_STATE_URL and soar.toml's
    /// [state] url.
    #[arg(long, global = true, value_name = "URL")]
    pub state: Option<String>,

    /// `--color`, `--quiet`.
    #[command(flatten)]
    pub output: args::OutputArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented soar.toml for a new project.
    Init(project::InitArgs),
    /// Check soar.toml without touching the network.
    Validate(args::JsonArg),
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
    Refresh(project::RefreshArgs),
    /// Show the service's recent log lines, or follow them (-f).
    Logs(project::LogsArgs),
    /// Run a command on every SSH host of an environment, in the current
    /// release with the service's environment.
    Exec(exec::ExecArgs),
    /// Prepare an environment's SSH hosts once for the configured switch
    /// (`soar host setup`: nginx and Soar's proxy configuration).
    #[command(subcommand)]
    Host(host_setup::HostCommand),
    /// Watch the deployed services' health; announce every change.
    Monitor(monitor::MonitorArgs),
    /// Show the deployed services' CPU, memory, restarts and uptime, live.
    Top(monitor::TopArgs),
    /// Show the audit trail of deploys, destroys and rollbacks.
    History(project::HistoryArgs),
    /// Switch back to an earlier release.
    Rollback(project::RollbackArgs),
    /// List, inspect and manage provider plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run Soar as a deployment service: deploy jobs over an HTTP API.
    Serve(crate::serve::ServeArgs),
    /// Show or force-release the project and environment locks.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// Move the project's state between .soar/ and a PostgreSQL database.
    #[command(subcommand)]
    State(state_cmd::StateCommand),
    /// Serve plan, deploy, status, logs, history and rollback as Model
    /// Context Protocol tools over stdio, for agents (see README, "MCP").
    Mcp(crate::mcp::McpArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Run a local service under supervision (started by `soar deploy`).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The service's directory (its releases, spec and log).
        root: PathBuf,
    },
}

impl Command {
    /// Whether this command was asked for `--json`.
    fn json(&self) -> bool {
        match self {
            Command::Validate(a) => a.json,
            Command::Plan(a) => a.json(),
            Command::Deploy(a) => a.json(),
            Command::Destroy(a) => a.json(),
            Command::Status(a) => a.json(),
            Command::Refresh(a) => a.json(),
            Command::History(a) => a.json(),
            Command::Plugin(p) => p.json(),
            Command::Logs(a) => a.json(),
            Command::Monitor(a) => a.json(),
            Command::Top(a) => a.json(),
            Command::Init(_)
            | Command::Exec(_)
            | Command::Host(_)
            | Command::Rollback(_)
            | Command::Serve(_)
            | Command::Lock(_)
            | Command::State(_)
            | Command::Mcp(_)
            | Command::Completions { .. }
            | Command::Supervise { .. } => false,
        }
    }
}

impl Cli {
    /// How this command line wants its output shown.
    pub fn report_settings(&self) -> Settings {
        Settings {
            json: self.command.json(),
            color: self.output.color,
            quiet: self.output.quiet,
            verbose: self.verbose,
        }
    }
}

/// Run a parsed command line, writing through `out`; returns the process
/// exit code.
pub async fn run(cli: Cli, out: &Reporter) -> anyhow::Result<i32> {
    let config = cli.config.as_deref();
    if let Some(url) = &cli.state {
        crate::state::StateLocation::set_flag(url.clone());
    }
    match cli.command {
        Command::Init(a) => project::init(config, a, out),
        Command::Validate(a) => project::validate(config, a, out).await,
        Command::Plan(a) => project::plan(config, a, out).await,
        Command::Deploy(a) => project::deploy(config, a, out).await,
        Command::Destroy(a) => project::destroy(config, a, out).await,
        Command::Status(a) => project::status(config, a, out).await,
        Command::Refresh(a) => project::refresh(config, a, out).await,
        Command::Logs(a) => project::logs(config, a, out).await,
        Command::Exec(a) => exec::run(config, a, out).await,
        Command::Host(cmd) => host_setup::run(config, cmd, out).await,
        Command::Monitor(a) => monitor::monitor(config, a, out).await,
        Command::Top(a) => monitor::top(config, a, out).await,
        Command::History(a) => project::history(config, a, out).await,
        Command::Rollback(a) => project::rollback(config, a, out).await,
        Command::Plugin(cmd) => plugin::run(config, cmd, out).await,
        Command::Serve(a) => crate::serve::run(a).await,
        Command::Lock(cmd) => lock::run(config, cmd, out),
        Command::State(cmd) => state_cmd::run(config, cmd, out),
        Command::Mcp(a) => crate::mcp::run(config.map(std::path::Path::to_path_buf), a).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "soar", &mut std::io::stdout());
            Ok(0)
        }
        Command::Supervise { root } => crate::supervise::run(&root).await.map(|_| 0),
    }
}

/// The runtime and catalog commands without a project start from.
pub(crate) fn environment() -> anyhow::Result<(Runtime, Catalog)> {
    let catalog = Catalog::discover(Catalog::default_dir())?;
    Ok((runtime()?, catalog))
}

/// The runtime with the user's compile cache.
pub(crate) fn runtime() -> anyhow::Result<Runtime> {
    Runtime::new(runtime_config())
}

/// Default budgets, and the user's compile (and describe) cache.
pub(crate) fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: CompileCache::default_dir(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory as _, Parser as _};

    /// Every flag and argument of every command says what it is for:
    /// `soar logs --help` must not show `-e, --env <ENV>` with nothing beside
    /// it.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "soar", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    /// The shared flags keep their names and short forms everywhere.
    #[test]
    fn shared_flags_keep_their_spellings() {
        for line in [
            "soar deploy -e prod -y --json --lock-timeout 5s",
            "soar destroy --env prod --yes --json --lock-timeout 1m",
            "soar plan -e prod --json -o plan.json",
            "soar status -e prod --json --offline",
            "soar refresh -e prod --json",
            "soar history -e prod --json -n 3",
            "soar logs -e prod -n 5",
            "soar rollback -e prod --to r1 --lock-timeout 5s",
            "soar plugin pin local -y",
            "soar --quiet --color never plan",
            "soar plan -q --color=always",
        ] {
            let args = line.split(' ');
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("{line}: {e}");
            }
        }
        let cli = Cli::try_parse_from(["soar", "status", "--json", "-q"]).unwrap();
        let s = cli.report_settings();
        assert!(s.json && s.quiet, "{s:?}");
        assert!(Cli::try_parse_from(["soar", "plan", "--color", "sometimes"]).is_err());
    }
}
