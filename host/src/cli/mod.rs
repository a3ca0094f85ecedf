//! The command line: argument parsing and dispatch. Each subcommand lives in
//! its own module and returns an exit code; errors bubble up as `anyhow`
//! chains and are printed once, by `main`.

mod plugin;

use clap::{Parser, Subcommand};

use crate::catalog::Catalog;
use crate::runtime::{Runtime, RuntimeConfig, cache::CompileCache};

/// Deploy services to clouds through sandboxed WebAssembly provider plugins.
#[derive(Debug, Parser)]
#[command(name = "soar", version, about, propagate_version = true)]
pub struct Cli {
    /// More logs (-v: info, -vv: debug, including every brokered request).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect and manage provider plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd).await,
    }
}

/// The runtime and catalog every command starts from.
pub(crate) fn environment() -> anyhow::Result<(Runtime, Catalog)> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: CompileCache::default_dir(),
        ..Default::default()
    })?;
    let catalog = Catalog::discover(Catalog::default_dir())?;
    Ok((runtime, catalog))
}
