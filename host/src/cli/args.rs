//! The arguments several commands share, declared once and flattened
//! (`#[command(flatten)]`) into each command's arguments, so a flag reads
//! and behaves the same everywhere it appears.

use std::time::Duration;

use clap::Args;

use crate::report::ColorChoice;

/// How output looks: global, so `soar --quiet deploy` and `soar deploy
/// --quiet` mean the same.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Colour the output: auto (a terminal, unless NO_COLOR is set), always
    /// or never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print only the results, warnings and errors: no progress, no notes.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// `--json`, for the commands whose output machines read.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print JSON events, one object per line, errors included (see README,
    /// "JSON output").
    #[arg(long)]
    pub json: bool,
}

/// `--env`, for commands that act on one environment.
#[derive(Debug, Clone, Args)]
pub struct EnvArg {
    /// The environment, as named in soar.toml's [env.NAME] (default: the
    /// only one).
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
}

/// `--env`, for commands that read every environment unless told one.
#[derive(Debug, Clone, Args)]
pub struct EnvFilterArg {
    /// Only this environment, as named in soar.toml's [env.NAME] (default:
    /// every one).
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
}

/// `--yes`, for commands that ask before they change anything.
#[derive(Debug, Clone, Copy, Args)]
pub struct YesArg {
    /// Do not ask for confirmation (needed when standard input is not a
    /// terminal).
    #[arg(short, long)]
    pub yes: bool,
}

/// `--lock-timeout`, for commands that take a lock (an environment's, or
/// the whole project's).
#[derive(Debug, Clone, Copy, Args)]
pub struct LockArgs {
    /// How long to wait for another soar holding the environment (or the
    /// whole project) locked (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::config::parse_duration)]
    pub lock_timeout: Duration,
}
