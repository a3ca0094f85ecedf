//! The project commands: init, validate, plan, deploy, destroy, status, logs,
//! history, rollback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::catalog::Catalog;
use crate::engine::Workspace;
use crate::engine::deploy::{DeployOptions, PlanOptions, deploy_command, plan_command};
use crate::engine::destroy::{DestroyOptions, destroy_command};
use crate::engine::releases;

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `--env` and `--json`.
#[derive(Debug, Args)]
pub struct EnvJsonArgs {
    /// Environment (default: the only one).
    #[arg(short, long)]
    env: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// `soar init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The application's name (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// `local` writes soar.toml; `aws-spot` writes a zero-config `.spot/` +
    /// `deployment/` skeleton instead (no soar.toml).
    #[arg(long, value_name = "PROVIDER", default_value = "local")]
    provider: String,
}

/// `soar plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[arg(short, long)]
    env: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Save the plan, to apply exactly it with `soar deploy FILE`.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
}

/// `soar deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A plan saved by `soar plan -o FILE`, applied exactly (refused when stale).
    plan: Option<PathBuf>,
    #[arg(short, long)]
    env: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Most provider changes applied at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    /// How long to wait for another soar holding the project lock.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_timeout: Duration,
    /// Break a stale deploy lock left on SSH hosts by a deploy that died.
    #[arg(long)]
    force_unlock: bool,
}

/// `soar destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[arg(short, long)]
    env: Option<String>,
    #[arg(short, long)]
    yes: bool,
    #[arg(long)]
    json: bool,
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_timeout: Duration,
}

/// `soar logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    env: Option<String>,
    /// How many lines.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
}

/// `soar history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(short, long)]
    env: Option<String>,
    #[arg(long)]
    json: bool,
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
}

/// `soar rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(short, long)]
    env: Option<String>,
    /// The release to switch to (default: the one before the active one).
    #[arg(long, value_name = "RELEASE")]
    to: Option<String>,
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

pub fn init(config: Option<&Path>, args: InitArgs) -> anyhow::Result<i32> {
    let path = config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(crate::config::FILE_NAME));
    match args.provider.as_str() {
        "local" => {}
        crate::config::spot::PROVIDER => {
            if args.name.is_some() {
                anyhow::bail!(
                    "--name does not apply to --provider aws-spot: a zero-config project is named after its directory (write a soar.toml to choose another name)"
                );
            }
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return super::spot_init::write(&std::path::absolute(dir)?);
        }
        other => anyhow::bail!(
            "soar init --provider {other}: init writes projects for `local` (soar.toml) and `aws-spot` (.spot/ and deployment/); for other providers, start from `soar init` and edit [env.<name>]"
        ),
    }
    if path.exists() {
        anyhow::bail!(
            "{} already exists; edit it, or remove it to start over",
            path.display()
        );
    }
    let dir = std::path::absolute(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let name = args.name.unwrap_or_else(|| {
        let raw = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into());
        crate::config::suggest_name(&raw)
    });
    crate::config::check_name(&name)
        .map_err(|e| anyhow::anyhow!("application name '{name}': {e}; pass --name"))?;
    std::fs::write(&path, crate::config::init_template(&name))?;
    println!(
        "Wrote {}. Next: edit [artifact], then `soar plan`.",
        path.display()
    );
    Ok(0)
}

pub fn validate(config: Option<&Path>, args: JsonArgs) -> anyhow::Result<i32> {
    use crate::config::spot::Located;
    let located = match config {
        Some(p) => Located::File(p.to_path_buf()),
        None => crate::config::spot::discover(&std::env::current_dir()?).ok_or_else(|| {
            anyhow::anyhow!("no soar.toml (or .spot/config.yaml) here or above; run `soar init`")
        })?,
    };
    let catalog = Catalog::discover(Catalog::default_dir())?;
    let known: Vec<&str> = catalog.entries().iter().map(|e| e.name.as_str()).collect();
    let path = match &located {
        Located::File(p) => p.clone(),
        Located::ZeroConfig(dir) => dir.join(crate::config::spot::CONFIG_PATH),
    };
    match located.load(&known) {
        Ok(project) if matches!(located, Located::ZeroConfig(_)) => {
            let envs: Vec<&String> = project.environments.keys().collect();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "file": path, "zero_config": true, "app": project.app.name, "environments": envs })
                );
            } else {
                println!(
                    "{} is a zero-config {} project (no soar.toml): app '{}', environment '{}'. \
                     Its settings and deployment/ are checked by the plugin at `soar plan`.",
                    path.display(),
                    crate::config::spot::PROVIDER,
                    project.app.name,
                    crate::config::spot::ENVIRONMENT,
                );
            }
            Ok(0)
        }
        Ok(project) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "file": path, "environments": project.environments.keys().collect::<Vec<_>>() })
                );
            } else {
                println!(
                    "{} is valid ({} environment(s)).",
                    path.display(),
                    project.environments.len()
                );
            }
            Ok(0)
        }
        Err(e) => {
            if args.json {
                for d in &e.0 {
                    println!(
                        "{}",
                        serde_json::json!({ "file": d.file, "line": d.line, "col": d.col, "message": d.message, "hint": d.hint })
                    );
                }
                Ok(1)
            } else {
                Err(e.into())
            }
        }
    }
}

pub async fn plan(config: Option<&Path>, a: PlanArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    plan_command(
        &ws,
        &PlanOptions {
            env: a.env,
            json: a.json,
            out: a.out,
            detailed_exitcode: a.detailed_exitcode,
        },
    )
    .await
}

pub async fn deploy(config: Option<&Path>, a: DeployArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    let opts = DeployOptions {
        env: a.env,
        yes: a.yes,
        json: a.json,
        parallelism: a.parallelism,
        lock_timeout: a.lock_timeout,
        plan_file: a.plan,
        force_unlock: a.force_unlock,
    };
    deploy_command(&ws, &opts).await
}

pub async fn destroy(config: Option<&Path>, a: DestroyArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    destroy_command(
        &ws,
        &DestroyOptions {
            env: a.env,
            yes: a.yes,
            json: a.json,
            lock_timeout: a.lock_timeout,
        },
    )
    .await
}

/// `soar status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Environment (default: every one).
    #[arg(short, long)]
    env: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Show the state only: do not ask the providers what is deployed.
    #[arg(long)]
    offline: bool,
}

pub async fn status(config: Option<&Path>, a: StatusArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    releases::status_command(&ws, a.env.as_deref(), a.json, a.offline).await
}

pub async fn refresh(config: Option<&Path>, a: EnvJsonArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    crate::engine::refresh::refresh_command(&ws, a.env.as_deref(), a.json, Duration::from_secs(30))
        .await
}

pub async fn logs(config: Option<&Path>, a: LogsArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    releases::logs_command(&ws, a.env.as_deref(), a.lines).await
}

pub fn history(config: Option<&Path>, a: HistoryArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    releases::history_command(&ws, a.env.as_deref(), a.limit, a.json)
}

pub async fn rollback(config: Option<&Path>, a: RollbackArgs) -> anyhow::Result<i32> {
    let ws = Workspace::open(config)?;
    releases::rollback_command(&ws, a.env.as_deref(), a.to.as_deref(), a.lock_timeout).await
}
