//! `soar plan` and `soar deploy`: the deploy pipeline, phase by phase, each
//! phase timed into the audit trail.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use super::hooks::{self, HookContext};
use super::plan::{Action, Executor, FORMAT, Plan, PlannedChange, RELEASE_KIND};
use super::targets::{self, Target};
use super::{Workspace, register, render};
use crate::artifact::ArtifactSource;
use crate::config::Environment;
use crate::journal::Journal;
use crate::rollout::local::LocalTransport;
use crate::rollout::service::{ServiceManager, Supervisor};
use crate::rollout::{self, Health, Release};
use crate::runtime::bindings::{Context, Severity};
use crate::runtime::{Plugin, render_plugin_error};
use crate::session::Session;
use crate::state::{
    DeployId, HolderInfo, Outcome, Phase, ProjectLock, ReleaseRecord, ReleaseStatus,
    ResourceRecord, StateStore, new_release_id, now_ms,
};

/// Options of `soar plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub env: Option<String>,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub detailed_exitcode: bool,
}

/// Options of `soar deploy`.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub env: Option<String>,
    pub yes: bool,
    pub json: bool,
    pub parallelism: usize,
    pub lock_timeout: Duration,
    /// Apply exactly this saved plan.
    pub plan_file: Option<PathBuf>,
    /// Break a stale per-host deploy lock (SSH hosts).
    pub force_unlock: bool,
}

/// Everything prepared for planning one environment.
pub(crate) struct Prepared<'w> {
    pub env: &'w Environment,
    pub plugin: Arc<Plugin>,
    pub session: Arc<Session>,
    pub ctx: Context,
    pub artifact: Option<Arc<ArtifactSource>>,
    pub journal: Arc<Journal>,
}

impl Workspace {
    /// Load the plugin and open its session for `env`, to deploy `artifact`:
    /// service secrets are resolved (a deploy may hand them to the
    /// provider's API, e.g. Workers secret bindings).
    pub(crate) async fn prepare(
        &self,
        env: &str,
        artifact: Option<ArtifactSource>,
    ) -> anyhow::Result<Prepared<'_>> {
        let secrets = artifact.is_some();
        self.prepare_with(env, artifact, secrets).await
    }

    /// For commands that deploy nothing (destroy, status, refresh, logs):
    /// the artifact as it is on disk, if it exists, without building it, so
    /// providers that keep their configuration in the project (aws-spot's
    /// `.spot/`) can still read it; no service secrets.
    pub(crate) async fn prepare_existing(&self, env: &str) -> anyhow::Result<Prepared<'_>> {
        let spec = &self.project.artifact;
        let artifact = spec
            .path
            .exists()
            .then(|| ArtifactSource::scan(spec.kind, &spec.path).ok())
            .flatten();
        self.prepare_with(env, artifact, false).await
    }

    async fn prepare_with(
        &self,
        env: &str,
        artifact: Option<ArtifactSource>,
        with_secrets: bool,
    ) -> anyhow::Result<Prepared<'_>> {
        let env = self.environment(Some(env))?;
        let plugin = self.plugin(env).await?;
        let journal = Arc::new(Journal::default());
        let secrets = if with_secrets {
            self.resolve_secrets(env)?
                .into_iter()
                .map(|(k, v)| (k, crate::credentials::Secret::new(v)))
                .collect()
        } else {
            Default::default()
        };
        let artifact = artifact.map(Arc::new);
        let session = self.session(&plugin, env, artifact.clone(), journal.clone(), secrets)?;
        targets::configure_ssh(self, env, &session.ssh);
        let ctx = self.context(env, &session);
        Ok(Prepared {
            env,
            plugin,
            session,
            ctx,
            artifact,
            journal,
        })
    }
}

/// The service command and health check of `env`'s release.
fn release_settings(
    ws: &Workspace,
    env: &Environment,
    artifact: &ArtifactSource,
) -> anyhow::Result<(String, Health)> {
    let command = rollout::start_command(
        ws.project.artifact.kind,
        artifact,
        ws.project.artifact.command.as_deref(),
    )?;
    let h = &env.deploy.health;
    Ok((
        command,
        Health {
            path: h.path.clone(),
            timeout: h.timeout,
            interval: h.interval,
            retries: h.retries,
        },
    ))
}

/// The provider's `validate`; errors point at the environment in soar.toml.
pub(crate) async fn validate_env(ws: &Workspace, p: &Prepared<'_>) -> anyhow::Result<()> {
    let env = p.env;
    let validation = p.plugin.validate(p.session.clone(), &p.ctx).await?;
    let errors: Vec<String> = validation
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let mut line = format!(
                "{}: {}",
                env_location(ws, env, d.field.as_deref()),
                d.message
            );
            if let Some(h) = &d.hint {
                line.push_str(&format!(" ({h})"));
            }
            line
        })
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "provider '{}' rejected environment '{}':\n  {}",
            env.provider,
            env.name,
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// Provider changes plus the host's release step, sorted.
pub(crate) async fn make_plan(
    ws: &Workspace,
    p: &Prepared<'_>,
    store: &StateStore,
) -> anyhow::Result<(Plan, Vec<Target>)> {
    let env = p.env;
    let provider_plan = p.plugin.plan(p.session.clone(), &p.ctx).await?;
    let mut changes = Vec::new();
    for c in provider_plan.changes {
        changes.push(PlannedChange::from_provider(c)?);
    }
    let mut notes = provider_plan.notes;
    notes.extend(
        provider_plan
            .diagnostics
            .iter()
            .map(|d| format!("{:?}: {}", d.severity, d.message).to_lowercase()),
    );

    // The host rolls the release out when the provider's hosts take one: it
    // declares SSH (droplets, spot instances) or reports this machine. A
    // provider without hosts (Workers, Pages) deploys the artifact itself.
    let artifact = p.artifact.as_ref().expect("deploy plans have an artifact");
    let command = release_settings(ws, env, artifact).map(|(c, _)| c);
    let port = targets::known_port(store, env)?;
    let targets = targets::resolve(
        ws,
        env,
        &p.plugin,
        p.session.clone(),
        &p.ctx,
        port.unwrap_or(0),
        command.as_deref().unwrap_or_default(),
    )
    .await?;
    if p.plugin.description().capabilities.ssh || !targets.is_empty() {
        command?;
        let running = match targets.first() {
            Some(Target::Local(spec)) => Supervisor::current()?.is_running(spec).await?,
            Some(Target::Ssh(t)) => t.systemd.is_running(&t.spec).await.unwrap_or(false),
            None => false,
        };
        changes.push(release_step(
            env,
            store.active_release(&env.name)?,
            artifact.digest(),
            running,
            port,
        ));
    }
    let mut plan = Plan {
        format: FORMAT,
        command: "deploy".into(),
        app: ws.project.app.name.clone(),
        env: env.name.clone(),
        provider: env.provider.clone(),
        serial: store.serial(&env.name)?,
        artifact: Some(artifact.digest().to_string()),
        changes,
        notes,
    };
    plan.normalize();
    Ok((plan, targets))
}

fn env_location(ws: &Workspace, env: &Environment, field: Option<&str>) -> String {
    let file = ws.project.file.display();
    let located = field.and_then(|f| {
        let text = std::fs::read_to_string(&ws.project.file).ok()?;
        crate::config::locate(&text, &format!("env.{}.{f}", env.name))
    });
    match located {
        Some((line, col)) => format!("{file}:{line}:{col}"),
        None => format!("{file}:{}", env.line),
    }
}

/// The rollout step: what changes for the release on the hosts.
fn release_step(
    env: &Environment,
    active: Option<ReleaseRecord>,
    digest: &str,
    running: bool,
    port: Option<u16>,
) -> PlannedChange {
    let service = &env.deploy.service;
    let port = port
        .map(serde_json::Value::from)
        .unwrap_or_else(|| "(allocated at deploy)".into());
    let after = json!({ "artifact": digest, "port": port, "running": true });
    let (action, reason, before) = match &active {
        None => (Action::Create, format!("first release of {service}"), None),
        Some(a) if a.artifact_digest != digest => (
            Action::Update,
            "the artifact changed".to_string(),
            Some(json!({ "artifact": a.artifact_digest, "port": port, "running": running })),
        ),
        Some(a) if !running => (
            Action::Update,
            format!("{service} is not running; start release {} again", a.id),
            Some(json!({ "artifact": a.artifact_digest, "port": port, "running": false })),
        ),
        Some(a) => (
            Action::NoOp,
            String::new(),
            Some(json!({ "artifact": a.artifact_digest, "port": port, "running": true })),
        ),
    };
    PlannedChange {
        action,
        kind: RELEASE_KIND.into(),
        name: service.clone(),
        reason,
        before,
        after: Some(after),
        payload: String::new(),
        executor: Executor::Rollout,
    }
}

/// `soar plan`.
pub async fn plan_command(ws: &Workspace, opts: &PlanOptions) -> anyhow::Result<i32> {
    let env = ws.environment(opts.env.as_deref())?;
    let building = crate::progress::Spinner::start("building the artifact", opts.json);
    let artifact = ws.build_artifact().await;
    drop(building);
    let p = ws.prepare(&env.name, Some(artifact?)).await?;
    validate_env(ws, &p).await?;
    let store = ws.state()?;
    let (plan, _) = make_plan(ws, &p, &store).await?;
    if opts.json {
        print!("{}", render::plan_json(&plan));
    } else {
        print!("{}", render::plan_text(&plan));
    }
    if let Some(out) = &opts.out {
        plan.save(out)?;
        if !opts.json {
            println!(
                "\nSaved the plan to {}. Apply exactly it with: soar deploy {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if opts.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// Ask for confirmation on a terminal; refuse when there is none.
pub(crate) fn confirm(what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to {what} without confirmation: standard input is not a terminal. Pass --yes to proceed"
        );
    }
    print!("\nDo you want to {what}? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// Times and records the phases of one deploy.
pub(crate) struct Trail<'s> {
    pub store: &'s StateStore,
    pub id: DeployId,
}

impl Trail<'_> {
    pub fn phase(&self, phase: Phase, started: (i64, Instant), outcome: Outcome, detail: &str) {
        let ms = started.1.elapsed().as_millis() as u64;
        if let Err(e) = self
            .store
            .record_phase(self.id, phase, started.0, ms, outcome, detail)
        {
            tracing::warn!("recording phase {phase}: {e:#}");
        }
    }

    /// Run hook `name` (if configured), timed into the trail with its output;
    /// the error says why it failed.
    pub async fn hook(
        &self,
        ws: &Workspace,
        name: &str,
        command: Option<&String>,
        ctx: &HookContext,
    ) -> Result<(), String> {
        let Some(command) = command else {
            return Ok(());
        };
        let started = mark();
        let result = hooks::run(
            name,
            command,
            &ws.project.root,
            ctx,
            ws.project.hooks.timeout,
        )
        .await;
        let (run, outcome, why) = match result {
            Ok(run) => (run, Outcome::Ok, None),
            Err((run, why)) => (run, Outcome::Failed, Some(why)),
        };
        self.phase(
            Phase::Hooks,
            started,
            outcome,
            &format!("{name} exit {}", run.status),
        );
        self.event(json!({ "hook": run }));
        why.map_or(Ok(()), Err)
    }

    pub fn event(&self, event: serde_json::Value) {
        if let Err(e) = self.store.record_event(self.id, &event) {
            tracing::warn!("recording an audit event: {e:#}");
        }
    }
}

/// A (wall ms, monotonic) start mark.
pub(crate) fn mark() -> (i64, Instant) {
    (now_ms(), Instant::now())
}

/// Print a progress line (stderr for people; a JSON line on stdout in --json).
pub(crate) fn progress(json_mode: bool, value: serde_json::Value, text: String) {
    if json_mode {
        println!("{value}");
    } else {
        eprintln!("{text}");
    }
}

/// `soar deploy`.
pub async fn deploy_command(ws: &Workspace, opts: &DeployOptions) -> anyhow::Result<i32> {
    let saved = opts.plan_file.as_deref().map(Plan::load).transpose()?;
    let env_name = match (&saved, &opts.env) {
        (Some(p), Some(e)) if &p.env != e => {
            anyhow::bail!("the saved plan is for environment '{}', not '{e}'", p.env)
        }
        (Some(p), _) => p.env.clone(),
        (None, e) => ws.environment(e.as_deref())?.name.clone(),
    };
    std::fs::create_dir_all(ws.state_dir())?;
    let holder = HolderInfo::current();
    let _lock = ProjectLock::acquire(&ws.state_dir(), opts.lock_timeout, &holder)?;
    let store = ws.state()?;
    let id = store.begin_deploy(&env_name, "deploy", &actor())?;
    let trail = Trail { store: &store, id };
    let env = ws.environment(Some(&env_name))?;
    let hook_ctx = HookContext {
        app: ws.project.app.name.clone(),
        env: env.name.clone(),
        service: env.deploy.service.clone(),
        ..Default::default()
    };
    let result = run_deploy(ws, opts, saved, &trail, hook_ctx.clone()).await;
    match &result {
        Ok(summary) => {
            let _ = store.finish_deploy(id, Outcome::Ok, summary);
        }
        Err(e) => {
            let ctx = HookContext {
                error: Some(format!("{e:#}")),
                ..hook_ctx
            };
            // The deploy already failed; a failing on_failure hook is in the trail.
            let _ = trail
                .hook(ws, "on_failure", ws.project.hooks.on_failure.as_ref(), &ctx)
                .await;
            let _ = store.finish_deploy(id, Outcome::Failed, &format!("{e:#}"));
        }
    }
    result.map(|_| 0)
}

/// The state record of a resource a provider reported.
pub(crate) fn record_of(
    env: &Environment,
    r: &crate::runtime::bindings::ManagedResource,
) -> ResourceRecord {
    ResourceRecord {
        env: env.name.clone(),
        provider: env.provider.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        id: r.id.clone(),
        attributes: serde_json::from_str(&r.attributes).unwrap_or(serde_json::Value::Null),
        updated_at: now_ms(),
    }
}

/// Who runs this command, for the audit trail.
pub(crate) fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

async fn run_deploy(
    ws: &Workspace,
    opts: &DeployOptions,
    saved: Option<Plan>,
    trail: &Trail<'_>,
    mut hook_ctx: HookContext,
) -> anyhow::Result<String> {
    let env_name = hook_ctx.env.clone();
    let env = ws.environment(Some(&env_name))?;
    let json_mode = opts.json;

    if let Err(why) = trail
        .hook(
            ws,
            "pre_deploy",
            ws.project.hooks.pre_deploy.as_ref(),
            &hook_ctx,
        )
        .await
    {
        anyhow::bail!("{why}; nothing was deployed");
    }

    let started = mark();
    let building = crate::progress::Spinner::start("building the artifact", json_mode);
    let built = ws.build_artifact().await;
    drop(building);
    let artifact = match built {
        Ok(a) => {
            trail.phase(Phase::Build, started, Outcome::Ok, a.digest());
            a
        }
        Err(e) => {
            trail.phase(Phase::Build, started, Outcome::Failed, &format!("{e:#}"));
            return Err(e);
        }
    };
    let secrets = ws.resolve_secrets(env)?;

    let started = mark();
    let p = ws.prepare(&env_name, Some(artifact)).await?;
    let store = trail.store;
    if let Err(e) = validate_env(ws, &p).await {
        trail.phase(Phase::Validate, started, Outcome::Failed, &format!("{e:#}"));
        return Err(e);
    }
    trail.phase(
        Phase::Validate,
        started,
        Outcome::Ok,
        &format!("provider {}", env.provider),
    );
    let started = mark();
    let planning = crate::progress::Spinner::start(format!("planning {env_name}"), json_mode);
    let planned = make_plan(ws, &p, store).await;
    drop(planning);
    let (plan, targets) = match planned {
        Ok(v) => v,
        Err(e) => {
            trail.phase(Phase::Plan, started, Outcome::Failed, &format!("{e:#}"));
            return Err(e);
        }
    };
    let plan = match saved {
        Some(saved) => {
            store.check_serial(&env_name, saved.serial)?;
            if saved.artifact != plan.artifact {
                anyhow::bail!(
                    "the saved plan deploys artifact {}, but the build now produces {}: run `soar plan -o` again",
                    saved.artifact.as_deref().unwrap_or("(none)"),
                    plan.artifact.as_deref().unwrap_or("(none)")
                );
            }
            saved
        }
        None => plan,
    };
    let s = plan.summary();
    trail.phase(
        Phase::Plan,
        started,
        Outcome::Ok,
        &format!(
            "{} to add, {} to change, {} to destroy",
            s.add, s.change, s.destroy
        ),
    );
    trail.event(json!({ "plan": plan.changes }));
    if json_mode {
        print!("{}", render::plan_json(&plan));
    } else {
        print!("{}", render::plan_text(&plan));
    }
    if !plan.has_changes() {
        let url = targets.first().map(Target::url);
        if let Some(url) = &url {
            progress(
                json_mode,
                json!({ "type": "deployed", "env": env_name, "url": url, "changed": false }),
                format!("\n{} is up to date at {url}", env.deploy.service),
            );
        }
        return Ok("no changes".into());
    }
    if !opts.yes && !confirm("perform these actions")? {
        anyhow::bail!("deploy cancelled; nothing was changed");
    }

    // Provider changes, in parallel within a bound.
    let started = mark();
    let outcomes = apply_provider_changes(&p, &plan, opts.parallelism, json_mode).await;
    let mut failed = Vec::new();
    for (change, result) in &outcomes {
        match result {
            Ok(applied) => {
                record_resource(store, env, change, applied.as_ref())?;
            }
            Err(e) => failed.push(format!(
                "{} {} {}: {e}",
                change.action.verb(),
                change.kind,
                change.name
            )),
        }
        trail.event(json!({ "apply": { "kind": change.kind, "name": change.name, "action": change.action, "ok": result.is_ok(),
            "error": result.as_ref().err() } }));
    }
    if !outcomes.is_empty() {
        let outcome = if failed.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        trail.phase(
            Phase::Apply,
            started,
            outcome,
            &format!("{} changes, {} failed", outcomes.len(), failed.len()),
        );
    }
    if !failed.is_empty() {
        let done: Vec<String> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(c, _)| format!("{} {} {}", c.action.verb(), c.kind, c.name))
            .collect();
        anyhow::bail!(
            "{} of {} changes failed:\n  {}\n{}Re-run `soar deploy` to converge: completed changes are not repeated.",
            failed.len(),
            outcomes.len(),
            failed.join("\n  "),
            if done.is_empty() {
                String::new()
            } else {
                format!("These completed and exist now:\n  {}\n", done.join("\n  "))
            }
        );
    }

    // The release onto the hosts.
    let Some(step) = plan
        .changes
        .iter()
        .find(|c| c.executor == Executor::Rollout && c.action != Action::NoOp)
    else {
        // The provider deployed the artifact itself: report where it answers.
        let urls: Vec<String> = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned().flatten())
            .flat_map(|a| a.endpoints)
            .filter(|e| e.kind == "url")
            .map(|e| e.address)
            .collect();
        for url in &urls {
            progress(
                json_mode,
                json!({ "type": "deployed", "env": env_name, "url": url, "changed": true }),
                format!("\nDeployed to {env_name}: {url}"),
            );
        }
        return Ok(format!("provider changes applied {}", urls.join(" ")));
    };
    let artifact = p.artifact.as_ref().expect("deploys have an artifact");
    let (command, health) = release_settings(ws, env, artifact)?;
    let port = targets::service_port(store, env)?;
    drop(targets);
    // Hosts a provider created in this deploy: their new host keys are trusted.
    let fresh: Vec<String> = outcomes
        .iter()
        .filter(|(c, _)| c.action == Action::Create || c.action == Action::Replace)
        .filter_map(|(_, r)| r.as_ref().ok().cloned().flatten())
        .flat_map(|a| a.endpoints)
        .filter(|e| e.kind == "ssh")
        .map(|e| e.address)
        .collect();
    let targets = targets::resolve_fresh(
        ws,
        env,
        &p.plugin,
        p.session.clone(),
        &p.ctx,
        port,
        &command,
        &fresh,
    )
    .await?;
    if targets.is_empty() {
        anyhow::bail!(
            "provider '{}' reports no host to roll the release out to",
            env.provider
        );
    }
    let mut vars: Vec<(String, String)> = env
        .deploy
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.extend(secrets);
    vars.push(("PORT".into(), port.to_string()));
    let existing = store
        .releases(&env_name)?
        .into_iter()
        .find(|r| r.artifact_digest == artifact.digest());
    let release_id = existing
        .map(|r| r.id)
        .unwrap_or_else(|| new_release_id(now_ms(), artifact.digest()));
    let release = Release {
        id: release_id.clone(),
        artifact,
        kind: ws.project.artifact.kind,
        env: vars,
        health,
        keep: env.deploy.keep_releases,
        setup: ws.project.artifact.setup.clone(),
    };
    progress(
        json_mode,
        json!({ "type": "rollout_start", "release": release_id, "targets": targets.len() }),
        format!(
            "\n{} {}: rolling out release {release_id} to {} host(s)",
            step.action.symbol(),
            step.name,
            targets.len()
        ),
    );
    let job = Arc::new(RolloutJob {
        id: release_id.clone(),
        artifact: p.artifact.clone().expect("deploys have an artifact"),
        kind: release.kind,
        env: release.env.clone(),
        health: release.health.clone(),
        keep: release.keep,
        setup: release.setup.clone(),
        who: format!(
            "{} pid {} at {}",
            actor(),
            std::process::id(),
            crate::state::format_utc(now_ms())
        ),
        force_unlock: opts.force_unlock,
    });
    drop(release);
    let parallelism = env
        .deploy
        .rollout
        .parallelism
        .unwrap_or(opts.parallelism)
        .max(1);
    let plan_batches = batches(targets.len(), env.deploy.rollout.batch);
    let mut results: Vec<(usize, Result<rollout::Report, rollout::Failure>)> = Vec::new();
    let mut stopped_after = None;
    for (bi, range) in plan_batches.iter().enumerate() {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallelism));
        let mut set = JoinSet::new();
        for i in range.clone() {
            let (target, job, sem) = (targets[i].clone(), job.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let started = mark();
                let r = roll_one(&target, &job).await;
                (i, r, started)
            });
        }
        let mut failed = false;
        while let Some(joined) = set.join_next().await {
            let (i, result, started) = joined?;
            let target = &targets[i];
            let phases = match &result {
                Ok(r) => r.phases.clone(),
                Err(f) => f.phases.clone(),
            };
            for (name, d) in phases {
                // A failed health check is recorded as failed below, not as ok.
                if result.is_err() && name == "verify-health" {
                    continue;
                }
                let phase = match name {
                    "transfer" => Phase::Transfer,
                    "start" => Phase::Start,
                    _ => Phase::VerifyHealth,
                };
                let _ = store.record_phase(
                    trail.id,
                    phase,
                    started.0,
                    d.as_millis() as u64,
                    Outcome::Ok,
                    &target.url(),
                );
            }
            match &result {
                Ok(report) => progress(
                    json_mode,
                    json!({ "type": "rollout_done", "target": target.url(), "host": target.host(), "release": report.release, "bytes_sent": report.bytes_sent, "health": report.health }),
                    format!(
                        "  ✓ {} healthy ({}; {} bytes sent)",
                        match target {
                            Target::Local(_) => target.url(),
                            Target::Ssh(_) => target.host(),
                        },
                        report.health,
                        report.bytes_sent
                    ),
                ),
                Err(f) => {
                    failed = true;
                    // The phase after the last one completed is the one that failed.
                    let failed_phase = match f.phases.last().map(|(name, _)| *name) {
                        None => Phase::Transfer,
                        Some("transfer") => Phase::Start,
                        Some(_) => Phase::VerifyHealth,
                    };
                    let _ = store.record_phase(
                        trail.id,
                        failed_phase,
                        started.0,
                        started.1.elapsed().as_millis() as u64,
                        Outcome::Failed,
                        &format!("{}: {}", target.host(), f.message),
                    );
                    if f.rolled_back {
                        let _ = store.record_phase(
                            trail.id,
                            Phase::Rollback,
                            now_ms(),
                            0,
                            Outcome::Ok,
                            &format!("{}: switched back to the previous release", target.host()),
                        );
                    }
                    progress(
                        json_mode,
                        json!({ "type": "rollout_failed", "target": target.url(), "host": target.host(), "rolled_back": f.rolled_back, "error": f.message }),
                        format!("  ✗ {}: {}", target.host(), first_line(&f.message)),
                    );
                }
            }
            results.push((i, result));
        }
        if failed {
            stopped_after = Some(bi);
            break;
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let url;
    if stopped_after.is_none() {
        let first = results
            .iter()
            .find_map(|(_, r)| r.as_ref().ok())
            .expect("every host succeeded");
        if store.release(&env_name, &first.release)?.is_none() {
            store.insert_release(&ReleaseRecord {
                env: env_name.clone(),
                id: first.release.clone(),
                artifact_digest: artifact.digest().to_string(),
                status: ReleaseStatus::Pending,
                created_at: now_ms(),
                activated_at: None,
                detail: None,
            })?;
        }
        store.activate_release(&env_name, &first.release)?;
        hook_ctx.release = Some(first.release.clone());
        url = targets.first().map(Target::url);
    } else {
        let failures: Vec<&rollout::Failure> = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect();
        let rolled_back = failures.iter().all(|f| f.rolled_back);
        let message = if targets.len() == 1 {
            failures[0].message.clone()
        } else {
            per_host_report(&targets, &results)
        };
        let status = if rolled_back {
            ReleaseStatus::RolledBack
        } else {
            ReleaseStatus::Failed
        };
        if store.release(&env_name, &release_id)?.is_none() {
            store.insert_release(&ReleaseRecord {
                env: env_name.clone(),
                id: release_id.clone(),
                artifact_digest: artifact.digest().to_string(),
                status,
                created_at: now_ms(),
                activated_at: None,
                detail: Some(message.clone()),
            })?;
        } else if store
            .active_release(&env_name)?
            .is_none_or(|a| a.id != release_id)
        {
            store.set_release_status(&env_name, &release_id, status, Some(&message))?;
        }
        for event in p.journal.events() {
            trail.event(json!({ "plugin": event }));
        }
        p.session.ssh.close().await;
        anyhow::bail!("{message}");
    }
    p.session.ssh.close().await;
    let url = url.unwrap_or_default();
    hook_ctx.url = Some(url.clone());

    if let Some(reg) = &ws.project.register {
        let started = mark();
        match register::announce(
            &reg.url,
            &ws.project.app.name,
            &env_name,
            &env.deploy.service,
            &url,
            &release_id,
        )
        .await
        {
            Ok(status) => trail.phase(
                Phase::Register,
                started,
                Outcome::Ok,
                &format!("{} answered {status}", reg.url),
            ),
            Err(e) => {
                trail.phase(Phase::Register, started, Outcome::Failed, &format!("{e:#}"));
                progress(
                    json_mode,
                    json!({ "type": "warning", "message": format!("registration failed: {e:#}") }),
                    format!("warning: registration failed: {e:#}"),
                );
            }
        }
    }
    if let Err(why) = trail
        .hook(
            ws,
            "post_deploy",
            ws.project.hooks.post_deploy.as_ref(),
            &hook_ctx,
        )
        .await
    {
        progress(
            json_mode,
            json!({ "type": "warning", "message": why }),
            format!("warning: {why}"),
        );
    }
    for event in p.journal.events() {
        trail.event(json!({ "plugin": event }));
    }
    progress(
        json_mode,
        json!({ "type": "deployed", "env": env_name, "url": url, "release": release_id, "changed": true }),
        format!("\nDeployed {} to {env_name}: {url}", env.deploy.service),
    );
    if !json_mode {
        println!("{url}");
    }
    Ok(format!("release {release_id} at {url}"))
}

/// A release for every host, owned so hosts roll out in parallel tasks.
struct RolloutJob {
    id: String,
    artifact: Arc<ArtifactSource>,
    kind: crate::runtime::bindings::ArtifactKind,
    env: Vec<(String, String)>,
    health: Health,
    keep: u32,
    setup: Option<String>,
    /// Written into a host's deploy lock.
    who: String,
    force_unlock: bool,
}

/// Roll the release out to one host; SSH hosts hold their deploy lock for
/// the duration, released on every path.
async fn roll_one(target: &Target, job: &RolloutJob) -> Result<rollout::Report, rollout::Failure> {
    let release = Release {
        id: job.id.clone(),
        artifact: &job.artifact,
        kind: job.kind,
        env: job.env.clone(),
        health: job.health.clone(),
        keep: job.keep,
        setup: job.setup.clone(),
    };
    let failure = |e: anyhow::Error| rollout::Failure {
        message: format!("{e:#}"),
        rolled_back: false,
        phases: Vec::new(),
    };
    match target {
        Target::Local(spec) => {
            let supervisor = Supervisor::current().map_err(failure)?;
            rollout::deploy(&LocalTransport, &supervisor, spec, &release).await
        }
        Target::Ssh(t) => {
            rollout::lock(&t.transport, &t.spec.root, &job.who, job.force_unlock)
                .await
                .map_err(failure)?;
            let result = rollout::deploy(&t.transport, &t.systemd, &t.spec, &release).await;
            if let Err(e) = rollout::unlock(&t.transport, &t.spec.root).await {
                tracing::warn!(
                    "releasing the deploy lock on {}: {e:#}",
                    t.transport.host.describe()
                );
            }
            result
        }
    }
}

#[allow(clippy::single_range_in_vec_init)]
/// Index ranges of the rollout's batches: everything at once, or (with
/// `rollout.batch`) the first host alone as a canary, then batches.
pub(crate) fn batches(
    hosts: usize,
    batch: Option<crate::config::Batch>,
) -> Vec<std::ops::Range<usize>> {
    use crate::config::Batch;
    let size = match batch {
        None => return if hosts == 0 { vec![] } else { vec![0..hosts] },
        Some(Batch::Count(n)) => n.max(1),
        Some(Batch::Percent(p)) => (hosts * p as usize).div_ceil(100).max(1),
    };
    let mut out = Vec::new();
    if hosts == 0 {
        return out;
    }
    out.push(0..1);
    let mut start = 1;
    while start < hosts {
        let end = (start + size).min(hosts);
        out.push(start..end);
        start = end;
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Which host did what, for a failed multi-host rollout.
fn per_host_report(
    targets: &[Target],
    results: &[(usize, Result<rollout::Report, rollout::Failure>)],
) -> String {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let mut lines = vec![format!(
        "the rollout failed on {failed} of {} host(s); later batches were not started:",
        targets.len()
    )];
    for (i, t) in targets.iter().enumerate() {
        let line = match results.iter().find(|(j, _)| *j == i).map(|(_, r)| r) {
            Some(Ok(r)) => format!("  ✓ {}: release {} healthy", t.host(), r.release),
            Some(Err(f)) => format!(
                "  ✗ {}: {}{}",
                t.host(),
                f.message.replace('\n', "\n      "),
                if f.rolled_back { " (rolled back)" } else { "" }
            ),
            None => format!("  - {}: not started", t.host()),
        };
        lines.push(line);
    }
    lines.join("\n")
}

pub(crate) type ApplyOutcome = (
    PlannedChange,
    Result<Option<crate::runtime::bindings::Applied>, String>,
);

/// Apply the provider's changes: deletes first, then the rest, each wave
/// in parallel with at most `parallelism` calls at once.
pub(crate) async fn apply_provider_changes(
    p: &Prepared<'_>,
    plan: &Plan,
    parallelism: usize,
    json_mode: bool,
) -> Vec<ApplyOutcome> {
    let provider: Vec<&PlannedChange> = plan
        .effective()
        .filter(|c| c.executor == Executor::Provider)
        .collect();
    let (deletes, rest): (Vec<&PlannedChange>, Vec<&PlannedChange>) = provider
        .into_iter()
        .partition(|c| c.action == Action::Delete);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(parallelism.max(1)));
    let mut outcomes = Vec::new();
    for wave in [deletes, rest] {
        let mut set = JoinSet::new();
        for change in wave {
            let (plugin, session, ctx, change, sem) = (
                p.plugin.clone(),
                p.session.clone(),
                p.ctx.clone(),
                change.clone(),
                semaphore.clone(),
            );
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let started = Instant::now();
                let r = plugin
                    .apply(session, &ctx, &change.to_provider())
                    .await
                    .map(Some)
                    .map_err(|e| match e {
                        crate::runtime::CallError::Plugin { error, .. } => {
                            render_plugin_error(&error)
                        }
                        other => other.to_string(),
                    });
                (change, r, started.elapsed())
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((change, r, took)) = joined else {
                continue;
            };
            let line = match &r {
                Ok(_) => format!(
                    "  ✓ {} {} {} ({:.1} s)",
                    change.action.verb(),
                    change.kind,
                    change.name,
                    took.as_secs_f64()
                ),
                Err(e) => format!(
                    "  ✗ {} {} {}: {e}",
                    change.action.verb(),
                    change.kind,
                    change.name
                ),
            };
            progress(
                json_mode,
                json!({ "type": "apply_result", "kind": change.kind, "name": change.name, "action": change.action, "ok": r.is_ok(), "error": r.as_ref().err() }),
                line,
            );
            outcomes.push((change, r));
        }
    }
    outcomes.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    outcomes
}

/// Keep state in step with what a change did.
fn record_resource(
    store: &StateStore,
    env: &Environment,
    change: &PlannedChange,
    applied: Option<&crate::runtime::bindings::Applied>,
) -> anyhow::Result<()> {
    match applied.and_then(|a| a.resource.as_ref()) {
        Some(r) if change.action != Action::Delete => store.upsert_resource(&record_of(env, r)),
        _ => store
            .remove_resource(&env.name, &change.kind, &change.name)
            .map(|_| ()),
    }
}

#[cfg(test)]
mod rollout_tests {
    use super::batches;
    use crate::config::Batch;

    #[test]
    fn batch_plans() {
        assert_eq!(batches(5, None), vec![0..5]);
        assert_eq!(batches(5, Some(Batch::Count(2))), vec![0..1, 1..3, 3..5]);
        assert_eq!(batches(5, Some(Batch::Percent(50))), vec![0..1, 1..4, 4..5]);
        assert_eq!(batches(1, Some(Batch::Count(3))), vec![0..1]);
        assert!(batches(0, None).is_empty());
    }
}
