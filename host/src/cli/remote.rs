//! `--server URL`: deploy, plan, status, history, logs and rollback run on
//! a `soar serve` server instead of here, shown as a local run shows them
//! and ending with the exit code a local run would (see README, "Driving a
//! server from the CLI").
//!
//! - The URL: `--server URL`, else `$SOAR_SERVER`. The token: only
//!   `$SOAR_SERVER_TOKEN` (a flag would land in shell history and `ps`).
//! - The project: the server's project NAME, `--project NAME`, else the
//!   `[app] name` of the local soar.toml (the project's checkout names the
//!   project it is deployed as).
//! - The environment: `-e ENV`, else the local soar.toml's only one.
//! - Ctrl-C while following stops following (exit 130) and says how to
//!   resume; the deploy goes on on the server. With `--cancel-on-interrupt`
//!   it asks the server to cancel the job instead, and follows it to its end.
//! - Every error exits 1, as a local one does.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use crate::remote::{self, Client, Endpoint, Followed, LocalNames as Local, Renderer, wire};
use crate::report::{Event, Reporter};

/// The exit code of a command the user stopped with Ctrl-C (128 + SIGINT),
/// as a shell reports it.
const INTERRUPTED: i32 = 130;

/// `--server` and what goes with it, for the commands a server runs.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Run on the `soar serve` server at URL instead of here (default:
    /// $SOAR_SERVER); the token is read from $SOAR_SERVER_TOKEN.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The project's NAME on the server (default: [app] name of soar.toml).
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// A PEM file of CA certificates to trust for --server, besides the
    /// system's.
    #[arg(long, value_name = "FILE")]
    server_ca: Option<PathBuf>,
    /// Allow --server http:// to another machine (the token then crosses
    /// the network in clear text).
    #[arg(long)]
    insecure_http: bool,
}

/// `soar deploy --server` only: following a job, and what Ctrl-C does.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// With --server: follow the deploy job ID (from its start) instead of
    /// submitting one.
    #[arg(long, value_name = "ID")]
    follow: Option<String>,
    /// With --server: Ctrl-C cancels the job on the server (default: it
    /// only stops following).
    #[arg(long)]
    cancel_on_interrupt: bool,
}

impl ServerArgs {
    /// The server URL: `--server`, else `$SOAR_SERVER` — except in a soar
    /// that a soar started (the server's own jobs run `soar deploy`: they
    /// must run here, whatever the server's environment says).
    fn url(&self) -> Option<String> {
        if let Some(url) = &self.server {
            return Some(url.clone());
        }
        let env = std::env::var("SOAR_SERVER")
            .ok()
            .filter(|u| !u.is_empty())?;
        (!started_by_soar()).then_some(env)
    }

    /// Whether the command runs on a server; an error for the server-only
    /// flags given without one.
    pub fn remote(&self) -> anyhow::Result<bool> {
        if self.url().is_some() {
            return Ok(true);
        }
        if self.project.is_some() || self.server_ca.is_some() || self.insecure_http {
            anyhow::bail!(
                "--project, --server-ca and --insecure-http apply to a server: add --server URL (or set $SOAR_SERVER)"
            );
        }
        Ok(false)
    }
}

impl FollowArgs {
    /// An error for these flags given without a server.
    pub fn check_local(&self) -> anyhow::Result<()> {
        if self.follow.is_some() || self.cancel_on_interrupt {
            anyhow::bail!("--follow and --cancel-on-interrupt apply to a server: add --server URL");
        }
        Ok(())
    }
}

/// Whether this process's parent is this same soar binary.
fn started_by_soar() -> bool {
    let parent = std::os::unix::process::parent_id();
    match (
        std::fs::read_link(format!("/proc/{parent}/exe")),
        std::env::current_exe(),
    ) {
        (Ok(parent), Ok(me)) => parent == me,
        _ => false,
    }
}

/// A server, the project on it, and the local soar.toml.
struct Target {
    client: Client,
    project: String,
    local: Local,
}

impl Target {
    fn open(config: Option<&Path>, args: &ServerArgs) -> anyhow::Result<Self> {
        let url = args.url().unwrap_or_default();
        let client = Client::new(&Endpoint {
            url,
            ca: args.server_ca.clone(),
            insecure_http: args.insecure_http,
        })?;
        let local = Local::read(config)?;
        let project = match (&args.project, &local.app) {
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => anyhow::bail!(
                "which project of the server? pass --project NAME (there is no soar.toml here to take [app] name from)"
            ),
        };
        Ok(Self {
            client,
            project,
            local,
        })
    }

    /// The one environment a command acts on.
    fn env(&self, env: Option<&str>) -> anyhow::Result<String> {
        self.local.only_env(env).ok_or_else(|| {
            anyhow::anyhow!(
                "which environment of {} on the server? pass -e ENV",
                self.project
            )
        })
    }

    fn command(&self) -> String {
        format!("soar deploy --server {}", self.client.server())
    }
}

/// Ctrl-C, as a future that resolves when the user presses it.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No handler: never resolve, as without one Ctrl-C ends the process.
        std::future::pending::<()>().await;
    }
}

/// `soar deploy --server`: plan on the server and ask (unless `--yes`),
/// then submit and follow; or `--follow ID`.
pub async fn deploy(
    config: Option<&Path>,
    server: &ServerArgs,
    follow: &FollowArgs,
    env: Option<&str>,
    plan: Option<&Path>,
    yes: bool,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let t = Target::open(config, server)?;
    if let Some(id) = &follow.follow {
        let job = t.client.job(id).await.map_err(|e| match e.downcast_ref() {
            Some(remote::ServerError { status, .. }) if status.as_u16() == 404 => anyhow::anyhow!(
                "no deploy {id:?} on {} that this token may see; --follow takes the id `soar deploy --server` printed",
                t.client.server()
            ),
            _ => e,
        })?;
        let mut renderer = Renderer::new(out, &job.provider);
        out.note(|| {
            format!(
                "Following {} {} of {}/{} ({}).",
                job.kind, job.id, job.project, job.environment, job.status
            )
        });
        return follow_job(&t, id, &mut renderer, follow.cancel_on_interrupt, out).await;
    }
    let env = t.env(env)?;
    let mut renderer = Renderer::new(out, t.local.provider(&env));
    let mut plan_id = plan.map(|p| p.to_string_lossy().into_owned());
    if plan_id.is_none() && !yes {
        // As a local deploy: show the plan, and ask before changing
        // anything. The deploy then applies exactly the plan shown.
        let saved = t
            .client
            .plan(&wire::PlanRequest {
                project: &t.project,
                environment: &env,
            })
            .await?;
        for line in &saved.plan {
            renderer.show(line);
        }
        if renderer.has_changes() == Some(true)
            && !crate::engine::trail::confirm(out, "perform these actions")?
        {
            anyhow::bail!("deploy cancelled; nothing was changed");
        }
        renderer.skip_plan();
        plan_id = Some(saved.id);
    }
    let job = t
        .client
        .submit(&wire::DeployRequest {
            project: &t.project,
            environment: &env,
            plan: plan_id.as_deref(),
        })
        .await?;
    out.note(|| {
        format!(
            "Deploy {} of {}/{env} queued on {}.",
            job.id,
            t.project,
            t.client.server()
        )
    });
    follow_job(&t, &job.id, &mut renderer, follow.cancel_on_interrupt, out).await
}

/// Follow job `id` to its end: the exit code a local run would have had.
async fn follow_job(
    t: &Target,
    id: &str,
    renderer: &mut Renderer,
    cancel_on_interrupt: bool,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let mut last = None;
    let mut followed = remote::follow(&t.client, id, renderer, &mut last, ctrl_c()).await?;
    if matches!(followed, Followed::Stopped) && cancel_on_interrupt {
        let cancelled = t.client.cancel(id).await?;
        out.notice(&format!(
            "Asked the server to cancel {id} ({}); following it to its end (Ctrl-C again stops following).",
            cancelled.status
        ));
        followed = remote::follow(&t.client, id, renderer, &mut last, ctrl_c()).await?;
    }
    let end = match followed {
        Followed::End(end) => end,
        Followed::Stopped => {
            out.notice(&format!(
                "Stopped following {id}; it goes on on the server. Follow it again: {} --follow {id}",
                t.command()
            ));
            return Ok(INTERRUPTED);
        }
    };
    if let Some(reported) = renderer.take_error() {
        return Err(reported.into_error());
    }
    let detail = end
        .error
        .as_deref()
        .map(|e| format!(": {}", crate::terminal::text(e.trim())))
        .unwrap_or_default();
    match end.status.as_str() {
        "succeeded" => Ok(end.exit_code.map_or(0, |c| c as i32)),
        "cancelled" => anyhow::bail!("{id} was cancelled on the server{detail}"),
        "interrupted" => anyhow::bail!(
            "the server stopped while {id} ran; the environment converges when you deploy again"
        ),
        other => anyhow::bail!("{id} {other} on the server{detail}"),
    }
}

/// `soar plan --server`: the plan, made and kept by the server.
pub async fn plan(
    config: Option<&Path>,
    server: &ServerArgs,
    env: Option<&str>,
    out_file: Option<&Path>,
    detailed_exitcode: bool,
    out: &Reporter,
) -> anyhow::Result<i32> {
    if out_file.is_some() {
        anyhow::bail!(
            "-o FILE does not apply with --server: the server keeps the plan and prints its id, for `soar deploy --server URL ID`"
        );
    }
    let t = Target::open(config, server)?;
    let env = t.env(env)?;
    let saved = t
        .client
        .plan(&wire::PlanRequest {
            project: &t.project,
            environment: &env,
        })
        .await?;
    let mut renderer = Renderer::new(out, t.local.provider(&env));
    for line in &saved.plan {
        renderer.show(line);
    }
    out.message(|| {
        format!(
            "\nSaved on the server as plan {}. Apply exactly it with: {} {}",
            saved.id,
            t.command(),
            saved.id
        )
    });
    Ok(
        if detailed_exitcode && renderer.has_changes() == Some(true) {
            2
        } else {
            0
        },
    )
}

/// `soar status --server`: each environment (or `-e`'s) as the server's
/// `soar status` sees it.
pub async fn status(
    config: Option<&Path>,
    server: &ServerArgs,
    env: Option<&str>,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let t = Target::open(config, server)?;
    let envs: Vec<String> = match env {
        Some(e) => vec![e.to_string()],
        None if !t.local.envs.is_empty() => t.local.envs.keys().cloned().collect(),
        None => anyhow::bail!(
            "which environment of {} on the server? pass -e ENV",
            t.project
        ),
    };
    for env in envs {
        let status = t.client.status(&t.project, &env).await?;
        out.result(&Event::Status(status.clone()), || status_text(&status));
    }
    Ok(0)
}

/// One environment's status for people, from `soar status --json`'s object.
fn status_text(s: &Value) -> String {
    let f = |k: &str| crate::terminal::line(s[k].as_str().unwrap_or("")).into_owned();
    let mut lines = vec![format!(
        "{} ({}): service {}",
        f("env"),
        f("provider"),
        f("service")
    )];
    lines.push(match s["release"]["id"].as_str() {
        Some(id) => format!("  release:  {}", crate::terminal::line(id)),
        None => "  release:  none deployed".into(),
    });
    lines.push(format!(
        "  running:  {}",
        if s["running"] == true { "yes" } else { "no" }
    ));
    if s["url"].is_string() {
        lines.push(format!("  url:      {}", f("url")));
    }
    for h in s["hosts"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  host:     {} {}",
            crate::terminal::line(h["url"].as_str().unwrap_or("")),
            if h["running"] == true {
                "running"
            } else {
                "not running"
            }
        ));
    }
    for d in s["drift"].as_array().into_iter().flatten() {
        lines.push(format!("  drift:    {}", crate::terminal::json(d)));
    }
    if let Some(e) = s["provider_error"].as_str() {
        lines.push(format!("  provider: {}", crate::terminal::line(e)));
    }
    lines.join("\n")
}

/// `soar history --server`: the audit trail, newest first.
pub async fn history(
    config: Option<&Path>,
    server: &ServerArgs,
    env: Option<&str>,
    limit: usize,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let t = Target::open(config, server)?;
    let records = match (env, t.local.envs.len()) {
        (Some(e), _) => t.client.history(&t.project, Some(e), limit).await?,
        // Without a soar.toml here, the server picks the only environment.
        (None, 0) => t.client.history(&t.project, None, limit).await?,
        // Every environment, merged newest first, as locally.
        (None, _) => {
            let mut all = Vec::new();
            for e in t.local.envs.keys() {
                all.extend(t.client.history(&t.project, Some(e), limit).await?);
            }
            all.sort_by_key(|r| std::cmp::Reverse(r["started_at"].as_i64().unwrap_or(0)));
            all.truncate(limit);
            all
        }
    };
    if records.is_empty() {
        out.message(|| "No deploys recorded yet.".into());
    }
    for r in &records {
        out.result(&Event::HistoryRecord(r.clone()), || history_text(r));
    }
    Ok(0)
}

/// One audit record for people, as a local `soar history` shows it; a
/// record this soar cannot read is shown as the JSON it is.
fn history_text(r: &Value) -> String {
    match serde_json::from_value::<crate::state::DeployRecord>(r.clone()) {
        Ok(r) => crate::engine::releases::history_text(&r),
        Err(_) => crate::terminal::json(r),
    }
}

/// `soar logs --server`: the service's last lines, or (`-f`) its log as the
/// server follows it, through the API's event stream. `--grep` filters
/// here; `--since` needs the hosts' own clocks and logs, so a local run.
pub async fn logs(
    config: Option<&Path>,
    server: &ServerArgs,
    want: &super::monitor::LogsFollow,
    out: &Reporter,
) -> anyhow::Result<i32> {
    if want.since.is_some() {
        anyhow::bail!(
            "--since does not apply with --server: the server follows from the last -n lines (drop --since, or run `soar logs --since` where the project is checked out)"
        );
    }
    let t = Target::open(config, server)?;
    let env = t.local.only_env(want.env.as_deref());
    if !want.follow {
        let logs = t
            .client
            .logs(&t.project, env.as_deref(), want.lines)
            .await?;
        for line in &logs.lines {
            show_log_line(out, want, None, line);
        }
        return Ok(0);
    }
    let mut events = t
        .client
        .follow_logs(&t.project, env.as_deref(), want.lines)
        .await?;
    // Several hosts' lines carry their host, as a local `soar logs -f`.
    let mut hosts: Vec<String> = Vec::new();
    let stop = ctrl_c();
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            _ = &mut stop => return Ok(0),
            m = events.next() => m?,
        };
        let Some(message) = message else {
            anyhow::bail!(
                "{} closed the log stream; run the command again to go on following",
                t.client.server()
            );
        };
        let data: Value = serde_json::from_str(&message.data).unwrap_or(Value::Null);
        match message.event.as_str() {
            "line" => {
                let host = data["host"].as_str().unwrap_or_default();
                if !hosts.iter().any(|h| h == host) {
                    hosts.push(host.to_string());
                }
                let line = data["line"].as_str().unwrap_or_default();
                show_log_line(out, want, (hosts.len() > 1).then_some(host), line);
            }
            "end" => {
                let why = data["error"].as_str().unwrap_or("it ended by itself");
                anyhow::bail!(
                    "the server stopped following the logs: {}",
                    crate::terminal::line(why)
                );
            }
            _ => {}
        }
    }
}

/// One line of the service's output, shown as a local `soar logs` shows it:
/// as written (it is the user's own service's), `[host]`-prefixed when
/// several hosts speak, filtered by `--grep`, a `log_line` event with
/// `--json`.
fn show_log_line(
    out: &Reporter,
    want: &super::monitor::LogsFollow,
    host: Option<&str>,
    line: &str,
) {
    if want.grep.as_deref().is_some_and(|g| !line.contains(g)) {
        return;
    }
    out.emit(&Event::LogLine(
        serde_json::json!({ "host": host, "line": line }),
    ));
    let shown = match host {
        Some(h) => format!("[{}] {line}\n", crate::terminal::line(h)),
        None => format!("{line}\n"),
    };
    out.print_raw(&shown);
}

/// `soar rollback --server`: a rollback job to the previous release,
/// followed to its end.
pub async fn rollback(
    config: Option<&Path>,
    server: &ServerArgs,
    env: Option<&str>,
    to: Option<&str>,
    out: &Reporter,
) -> anyhow::Result<i32> {
    if to.is_some() {
        anyhow::bail!(
            "--to does not apply with --server: the server rolls back to the previous release"
        );
    }
    let t = Target::open(config, server)?;
    let env = t.env(env)?;
    let job = t.client.rollback(&t.project, &env).await?;
    out.note(|| {
        format!(
            "Rollback {} of {}/{env} queued on {}.",
            job.id,
            t.project,
            t.client.server()
        )
    });
    let mut renderer = Renderer::new(out, t.local.provider(&env));
    follow_job(&t, &job.id, &mut renderer, false, out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_names_release_running_and_url() {
        let text = status_text(&serde_json::json!({
            "env": "dev", "provider": "local", "service": "web",
            "release": {"id": "r1"}, "running": true, "url": "http://127.0.0.1:5",
            "hosts": [], "drift": []
        }));
        assert_eq!(
            text,
            "dev (local): service web\n  release:  r1\n  running:  yes\n  url:      http://127.0.0.1:5"
        );
    }

    #[test]
    fn history_text_reads_a_record_or_shows_its_json() {
        assert_eq!(history_text(&serde_json::json!({"x": 1})), "{\"x\":1}");
    }
}
