//! `soar plan` and `soar deploy`: the deploy pipeline, phase by phase, each
//! phase timed into the audit trail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::apply::apply_and_record;
use super::fanout::{self, RolloutJob, batches, per_host_report};
use super::hooks::HookContext;
use super::plan::{Action, Executor, FORMAT, Plan, PlannedChange, RELEASE_KIND};
use super::prepare::{Prepared, validate_env};
use super::targets::{self, Target};
use super::trail::{Trail, actor, confirm, mark, progress};
use super::{Workspace, register, render};
use crate::artifact::ArtifactSource;
use crate::config::Environment;
use crate::rollout::service::{ServiceManager, Supervisor};
use crate::rollout::{self, Health, Release};
use crate::state::{
    HolderInfo, Outcome, Phase, ProjectLock, ReleaseRecord, ReleaseStatus, StateStore,
    new_release_id, now_ms,
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

/// The attribute by which a provider's change says "I deploy the artifact
/// myself" (see `managed-resource` in wit/types.wit).
pub const DEPLOYS_ARTIFACT: &str = "soar:deploys-artifact";

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

/// Provider changes plus the host's release step, sorted.
pub(crate) async fn make_plan(
    ws: &Workspace,
    p: &Prepared<'_>,
    store: &StateStore,
) -> anyhow::Result<(Plan, Vec<Target>)> {
    let env = p.env;
    if ws.project.artifact.kind == crate::artifact::Kind::Docker {
        targets::check_docker_provider(env, &p.plugin)?;
    }
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
    if ws.project.artifact.kind == crate::artifact::Kind::Docker {
        targets::check_docker_targets(env, &targets)?;
    }
    // A provider that deploys the artifact itself (a DigitalOcean Function)
    // marks each of its changes so: then there is no release to roll out,
    // even though the provider could create hosts in another environment.
    let provider_deploys = !changes.is_empty()
        && changes.iter().all(|c: &PlannedChange| {
            c.after
                .as_ref()
                .or(c.before.as_ref())
                .and_then(|a| a.get(DEPLOYS_ARTIFACT))
                == Some(&serde_json::Value::Bool(true))
        });
    if (p.plugin.description().capabilities.ssh && !provider_deploys) || !targets.is_empty() {
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
    let outcomes = apply_and_record(&p, &plan, trail, opts.parallelism, json_mode).await?;

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
    let (results, stopped_after) =
        fanout::run(&targets, &job, parallelism, &plan_batches, trail, json_mode).await?;
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
