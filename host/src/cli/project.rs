//! The project commands: init, validate, plan, deploy, destroy, status, logs,
//! history, rollback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::args::{EnvArg, EnvFilterArg, JsonArg, LockArgs, YesArg};
use crate::catalog::Catalog;
use crate::engine::Workspace;
use crate::engine::deploy::{DeployOptions, PlanOptions, deploy_command, plan_command};
use crate::engine::destroy::{DestroyOptions, destroy_command};
use crate::engine::releases;
use crate::report::{Event, Reporter};

/// `soar refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    env: EnvArg,
    #[command(flatten)]
    json: JsonArg,
}

impl RefreshArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
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
    #[command(flatten)]
    env: EnvArg,
    #[command(flatten)]
    json: JsonArg,
    /// Save the plan, to apply exactly it with `soar deploy FILE`.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    server: super::remote::ServerArgs,
}

impl PlanArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A plan saved by `soar plan -o FILE`, applied exactly (refused when
    /// stale); with --server, the plan id `soar plan --server` printed.
    plan: Option<PathBuf>,
    #[command(flatten)]
    env: EnvArg,
    #[command(flatten)]
    yes: YesArg,
    #[command(flatten)]
    json: JsonArg,
    /// Most provider changes applied at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    #[command(flatten)]
    lock: LockArgs,
    /// Break a stale deploy lock left on SSH hosts by a deploy that died.
    #[arg(long)]
    force_unlock: bool,
    #[command(flatten)]
    server: super::remote::ServerArgs,
    #[command(flatten)]
    follow: super::remote::FollowArgs,
}

impl DeployArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    env: EnvArg,
    #[command(flatten)]
    yes: YesArg,
    #[command(flatten)]
    json: JsonArg,
    #[command(flatten)]
    lock: LockArgs,
}

impl DestroyArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    env: EnvArg,
    /// How many lines.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
    #[command(flatten)]
    server: super::remote::ServerArgs,
    /// Keep printing lines as the service writes them, from every host
    /// (each line prefixed with its host when there are several); Ctrl-C
    /// stops (exit 0).
    #[arg(short, long)]
    follow: bool,
    /// Only lines from this long ago on (e.g. 10m; journald and Docker
    /// logs, which have timestamps).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    since: Option<std::time::Duration>,
    /// Only lines containing this text.
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

impl LogsArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    env: EnvFilterArg,
    #[command(flatten)]
    json: JsonArg,
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    server: super::remote::ServerArgs,
}

impl HistoryArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    env: EnvArg,
    /// The release to switch to (default: the one before the active one).
    #[arg(long, value_name = "RELEASE")]
    to: Option<String>,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    server: super::remote::ServerArgs,
}

/// `soar status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    env: EnvFilterArg,
    #[command(flatten)]
    json: JsonArg,
    /// Show the state only: do not ask the providers what is deployed.
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    server: super::remote::ServerArgs,
}

impl StatusArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

pub fn init(config: Option<&Path>, args: InitArgs, out: &Reporter) -> anyhow::Result<i32> {
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
            return super::spot_init::write(&std::path::absolute(dir)?, out);
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
    out.message(|| {
        format!(
            "Wrote {}. Next: edit [artifact], then `soar plan`.",
            path.display()
        )
    });
    Ok(0)
}

pub async fn validate(
    config: Option<&Path>,
    _args: JsonArg,
    out: &Reporter,
) -> anyhow::Result<i32> {
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
    let zero_config = matches!(located, Located::ZeroConfig(_));
    // The file parses: now each environment's provider settings against the
    // schema its plugin declares (a zero-config project's settings are the
    // plugin's own files, checked at `soar plan`).
    let loaded = match located.load(&known) {
        Ok(project) if !zero_config => {
            let problems = settings_problems(&path, &project, &catalog).await?;
            if problems.is_empty() {
                Ok(project)
            } else {
                Err(crate::config::ConfigError(problems))
            }
        }
        other => other,
    };
    match loaded {
        Ok(project) => {
            let event = Event::Valid {
                valid: true,
                file: &path,
                zero_config: zero_config.then_some(true),
                app: zero_config.then_some(project.app.name.as_str()),
                environments: project.environments.keys().map(String::as_str).collect(),
            };
            out.result(&event, || {
                if zero_config {
                    format!(
                        "{} is a zero-config {} project (no soar.toml): app '{}', environment '{}'. \
                         Its settings and deployment/ are checked by the plugin at `soar plan`.",
                        path.display(),
                        crate::config::spot::PROVIDER,
                        project.app.name,
                        crate::config::spot::ENVIRONMENT,
                    )
                } else {
                    format!(
                        "{} is valid ({} environment(s)).",
                        path.display(),
                        project.environments.len()
                    )
                }
            });
            Ok(0)
        }
        // In --json, each problem is an event and the exit code says it
        // failed; for people, the diagnostics are the error.
        Err(e) if out.is_json() => {
            for d in &e.0 {
                out.emit(&Event::Diagnostic {
                    file: &d.file,
                    line: d.line,
                    col: d.col,
                    message: &d.message,
                    hint: d.hint.as_deref(),
                });
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every environment's provider settings checked against the JSON Schema its
/// plugin declares, offline: each plugin is loaded only to be described.
async fn settings_problems(
    path: &Path,
    project: &crate::config::Project,
    catalog: &Catalog,
) -> anyhow::Result<Vec<crate::config::Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let runtime = super::runtime()?;
    let mut schemas: std::collections::BTreeMap<&str, String> = Default::default();
    let mut problems = Vec::new();
    for env in project.environments.values() {
        if !schemas.contains_key(env.provider.as_str()) {
            let entry = catalog.get(&env.provider)?;
            let plugin = runtime
                .load_digested(&entry.name, &entry.bytes, entry.digest.clone())
                .await?;
            let schema = plugin.description().settings_schema.clone();
            schemas.insert(env.provider.as_str(), schema);
        }
        let schema = &schemas[env.provider.as_str()];
        problems.extend(crate::config::settings::check(&text, path, env, schema));
    }
    // In file order, like every other configuration problem.
    problems.sort_by_key(|d| (d.line, d.col));
    Ok(problems)
}

pub async fn plan(config: Option<&Path>, a: PlanArgs, out: &Reporter) -> anyhow::Result<i32> {
    if a.server.remote()? {
        let (env, file) = (a.env.env.as_deref(), a.out.as_deref());
        return super::remote::plan(config, &a.server, env, file, a.detailed_exitcode, out).await;
    }
    let ws = Workspace::open(config, out.clone())?;
    plan_command(
        &ws,
        &PlanOptions {
            env: a.env.env,
            out: a.out,
            detailed_exitcode: a.detailed_exitcode,
        },
    )
    .await
}

pub async fn deploy(config: Option<&Path>, a: DeployArgs, out: &Reporter) -> anyhow::Result<i32> {
    if a.server.remote()? {
        let (env, plan) = (a.env.env.as_deref(), a.plan.as_deref());
        return super::remote::deploy(config, &a.server, &a.follow, env, plan, a.yes.yes, out)
            .await;
    }
    a.follow.check_local()?;
    let ws = Workspace::open(config, out.clone())?;
    let opts = DeployOptions {
        env: a.env.env,
        yes: a.yes.yes,
        parallelism: a.parallelism,
        lock_timeout: a.lock.lock_timeout,
        plan_file: a.plan,
        force_unlock: a.force_unlock,
    };
    deploy_command(&ws, &opts).await
}

pub async fn destroy(config: Option<&Path>, a: DestroyArgs, out: &Reporter) -> anyhow::Result<i32> {
    let ws = Workspace::open(config, out.clone())?;
    destroy_command(
        &ws,
        &DestroyOptions {
            env: a.env.env,
            yes: a.yes.yes,
            lock_timeout: a.lock.lock_timeout,
        },
    )
    .await
}

pub async fn status(config: Option<&Path>, a: StatusArgs, out: &Reporter) -> anyhow::Result<i32> {
    if a.server.remote()? {
        return super::remote::status(config, &a.server, a.env.env.as_deref(), out).await;
    }
    let ws = Workspace::open(config, out.clone())?;
    releases::status_command(&ws, a.env.env.as_deref(), a.offline).await
}

pub async fn refresh(config: Option<&Path>, a: RefreshArgs, out: &Reporter) -> anyhow::Result<i32> {
    let ws = Workspace::open(config, out.clone())?;
    crate::engine::refresh::refresh_command(&ws, a.env.env.as_deref(), Duration::from_secs(30))
        .await
}

pub async fn logs(config: Option<&Path>, a: LogsArgs, out: &Reporter) -> anyhow::Result<i32> {
    let streaming = a.follow || a.since.is_some() || a.grep.is_some() || a.json.json;
    let want = super::monitor::LogsFollow {
        env: a.env.env,
        lines: a.lines,
        follow: a.follow,
        since: a.since,
        grep: a.grep,
    };
    if a.server.remote()? {
        return super::remote::logs(config, &a.server, &want, out).await;
    }
    if streaming {
        return super::monitor::logs(config, want, out).await;
    }
    let ws = Workspace::open(config, out.clone())?;
    releases::logs_command(&ws, want.env.as_deref(), want.lines).await
}

pub async fn history(config: Option<&Path>, a: HistoryArgs, out: &Reporter) -> anyhow::Result<i32> {
    if a.server.remote()? {
        let env = a.env.env.as_deref();
        return super::remote::history(config, &a.server, env, a.limit, out).await;
    }
    let ws = Workspace::open(config, out.clone())?;
    releases::history_command(&ws, a.env.env.as_deref(), a.limit)
}

pub async fn rollback(
    config: Option<&Path>,
    a: RollbackArgs,
    out: &Reporter,
) -> anyhow::Result<i32> {
    if a.server.remote()? {
        let (env, to) = (a.env.env.as_deref(), a.to.as_deref());
        return super::remote::rollback(config, &a.server, env, to, out).await;
    }
    let ws = Workspace::open(config, out.clone())?;
    releases::rollback_command(
        &ws,
        a.env.env.as_deref(),
        a.to.as_deref(),
        a.lock.lock_timeout,
    )
    .await
}
