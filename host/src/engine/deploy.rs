//! `soar plan` and `soar deploy`: the deploy pipeline, phase by phase, each
//! phase timed into the audit trail.
//!
//! [`run_deploy`] reads as the list of its steps — hooks, build, validate,
//! plan, confirm, apply, roll out, record, register, report — each a
//! function of its own below, and the pure decisions among them (which plan
//! to apply, which hosts are new, what the service's environment is, what a
//! failed rollout leaves in the state) are plain functions with unit tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::apply::{ApplyOutcome, apply_and_record};
use super::fanout::{self, RolloutJob, batches, per_host_report};
use super::hooks::HookContext;
use super::plan::{Action, Executor, FORMAT, Plan, PlannedChange, RELEASE_KIND};
use super::prepare::{Prepared, validate_env};
use super::targets::{self, Target};
use super::trail::{Trail, actor, confirm, mark};
use super::{Workspace, register, render};
use crate::artifact::ArtifactSource;
use crate::config::Environment;
use crate::contract::EndpointKind;
use crate::report::Event;
use crate::rollout::service::{ServiceManager, Supervisor};
use crate::rollout::{self, Health};
use crate::state::{
    HolderInfo, Outcome, Phase, ReleaseRecord, ReleaseStatus, StateStore, new_release_id, now_ms,
};

/// Options of `soar plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The environment (`None`: the only one).
    pub env: Option<String>,
    /// Save the plan here, for `soar deploy FILE`.
    pub out: Option<PathBuf>,
    /// Exit 2 when the plan has changes.
    pub detailed_exitcode: bool,
}

/// Options of `soar deploy`.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The environment (`None`: the only one, or the saved plan's).
    pub env: Option<String>,
    /// Do not ask before changing anything.
    pub yes: bool,
    /// Most provider changes applied at once (and hosts rolled at once,
    /// unless the environment says otherwise).
    pub parallelism: usize,
    /// How long to wait for the project lock.
    pub lock_timeout: Duration,
    /// Apply exactly this saved plan.
    pub plan_file: Option<PathBuf>,
    /// Break a stale per-host deploy lock (SSH hosts).
    pub force_unlock: bool,
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
    let provider_deploys =
        !changes.is_empty() && changes.iter().all(|c: &PlannedChange| c.deploys_artifact);
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
        deploys_artifact: false,
        executor: Executor::Rollout,
    }
}

/// `soar plan`.
pub async fn plan_command(ws: &Workspace, opts: &PlanOptions) -> anyhow::Result<i32> {
    let out = &ws.out;
    let env = ws.environment(opts.env.as_deref())?;
    let building = crate::report::progress::Spinner::start("building the artifact", out);
    let artifact = ws.build_artifact().await;
    drop(building);
    let p = ws.prepare(&env.name, Some(artifact?)).await?;
    validate_env(ws, &p).await?;
    let store = ws.state()?;
    let (plan, _) = make_plan(ws, &p, &store).await?;
    render::show_plan(out, &plan);
    if let Some(file) = &opts.out {
        plan.save(file)?;
        out.message(|| {
            format!(
                "\nSaved the plan to {}. Apply exactly it with: soar deploy {}",
                file.display(),
                file.display()
            )
        });
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
    let _lock = ws.lock(&env_name, opts.lock_timeout, &holder)?;
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

/// The deploy, step by step; returns the audit trail's one-line summary.
async fn run_deploy(
    ws: &Workspace,
    opts: &DeployOptions,
    saved: Option<Plan>,
    trail: &Trail<'_>,
    hook_ctx: HookContext,
) -> anyhow::Result<String> {
    let env = ws.environment(Some(&hook_ctx.env))?;
    pre_deploy_hook(ws, trail, &hook_ctx).await?;
    let artifact = build(ws, trail).await?;
    let secrets = ws.resolve_secrets(env)?;
    let p = validate(ws, trail, env, artifact).await?;
    let result = deploy_prepared(ws, opts, saved, trail, &p, secrets, hook_ctx).await;
    trail.plugin_events(&p.journal);
    result
}

/// The deploy once the plugin is loaded and has validated the environment:
/// plan, apply, roll out, announce.
async fn deploy_prepared(
    ws: &Workspace,
    opts: &DeployOptions,
    saved: Option<Plan>,
    trail: &Trail<'_>,
    p: &Prepared<'_>,
    secrets: BTreeMap<String, String>,
    mut hook_ctx: HookContext,
) -> anyhow::Result<String> {
    let out = &ws.out;
    let env = ws.environment(Some(&hook_ctx.env))?;
    let (plan, targets) = plan(ws, trail, p, saved).await?;
    render::show_plan(out, &plan);
    if !plan.has_changes() {
        if let Some(url) = targets.first().map(Target::url) {
            report_deployed(out, env, &url, None, false);
        }
        return Ok("no changes".into());
    }
    if !opts.yes && !confirm(out, "perform these actions")? {
        anyhow::bail!("deploy cancelled; nothing was changed");
    }
    // Provider changes, in parallel within a bound.
    let outcomes = apply_and_record(p, &plan, trail, opts.parallelism, out).await?;
    let Some(step) = plan
        .changes
        .iter()
        .find(|c| c.executor == Executor::Rollout && c.action != Action::NoOp)
    else {
        // The provider deployed the artifact itself: report where it answers.
        let urls = provider_urls(&outcomes);
        for url in &urls {
            report_deployed(out, env, url, None, true);
        }
        return Ok(format!("provider changes applied {}", urls.join(" ")));
    };
    drop(targets);
    let rollout = Rollout::prepare(ws, p, trail.store, &outcomes, secrets, opts).await?;
    let deployed = rollout.run(step, trail).await;
    p.session.ssh.close().await;
    let (release_id, url) = deployed?;
    hook_ctx.release = Some(release_id.clone());
    hook_ctx.url = Some(url.clone());
    announce(ws, trail, env, &url, &release_id).await;
    if let Err(why) = trail
        .hook(
            ws,
            "post_deploy",
            ws.project.hooks.post_deploy.as_ref(),
            &hook_ctx,
        )
        .await
    {
        out.warn(&why);
    }
    report_deployed(out, env, &url, Some(&release_id), true);
    Ok(format!("release {release_id} at {url}"))
}

/// Step: the `pre_deploy` hook; its failure stops the deploy before
/// anything changed.
async fn pre_deploy_hook(
    ws: &Workspace,
    trail: &Trail<'_>,
    hook_ctx: &HookContext,
) -> anyhow::Result<()> {
    trail
        .hook(
            ws,
            "pre_deploy",
            ws.project.hooks.pre_deploy.as_ref(),
            hook_ctx,
        )
        .await
        .map_err(|why| anyhow::anyhow!("{why}; nothing was deployed"))
}

/// Step: build the artifact, timed into the trail.
async fn build(ws: &Workspace, trail: &Trail<'_>) -> anyhow::Result<ArtifactSource> {
    let started = mark();
    let building = crate::report::progress::Spinner::start("building the artifact", &ws.out);
    let built = ws.build_artifact().await;
    drop(building);
    match built {
        Ok(a) => {
            trail.phase(Phase::Build, started, Outcome::Ok, a.digest());
            Ok(a)
        }
        Err(e) => {
            trail.phase(Phase::Build, started, Outcome::Failed, &format!("{e:#}"));
            Err(e)
        }
    }
}

/// Step: load the plugin with the artifact and let the provider validate
/// the environment, timed into the trail.
async fn validate<'w>(
    ws: &'w Workspace,
    trail: &Trail<'_>,
    env: &Environment,
    artifact: ArtifactSource,
) -> anyhow::Result<Prepared<'w>> {
    let started = mark();
    let p = ws.prepare(&env.name, Some(artifact)).await?;
    if let Err(e) = validate_env(ws, &p).await {
        trail.phase(Phase::Validate, started, Outcome::Failed, &format!("{e:#}"));
        trail.plugin_events(&p.journal);
        return Err(e);
    }
    trail.phase(
        Phase::Validate,
        started,
        Outcome::Ok,
        &format!("provider {}", env.provider),
    );
    Ok(p)
}

/// Step: plan, or check that a saved plan still applies; timed into the
/// trail, with the changes recorded.
async fn plan(
    ws: &Workspace,
    trail: &Trail<'_>,
    p: &Prepared<'_>,
    saved: Option<Plan>,
) -> anyhow::Result<(Plan, Vec<Target>)> {
    let store = trail.store;
    let started = mark();
    let planning =
        crate::report::progress::Spinner::start(format!("planning {}", p.env.name), &ws.out);
    let planned = make_plan(ws, p, store).await;
    drop(planning);
    let (fresh, targets) = match planned {
        Ok(v) => v,
        Err(e) => {
            trail.phase(Phase::Plan, started, Outcome::Failed, &format!("{e:#}"));
            return Err(e);
        }
    };
    if let Some(saved) = &saved {
        store.check_serial(&p.env.name, saved.serial)?;
    }
    let plan = plan_to_apply(saved, fresh)?;
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
    Ok((plan, targets))
}

/// The plan a deploy applies: the saved one, when it still deploys what
/// the build produces now, else the fresh one.
fn plan_to_apply(saved: Option<Plan>, fresh: Plan) -> anyhow::Result<Plan> {
    match saved {
        Some(saved) if saved.artifact != fresh.artifact => anyhow::bail!(
            "the saved plan deploys artifact {}, but the build now produces {}: run `soar plan -o` again",
            saved.artifact.as_deref().unwrap_or("(none)"),
            fresh.artifact.as_deref().unwrap_or("(none)")
        ),
        Some(saved) => Ok(saved),
        None => Ok(fresh),
    }
}

/// The URLs a provider that deploys the artifact itself reported.
fn provider_urls(outcomes: &[ApplyOutcome]) -> Vec<String> {
    applied_endpoints(outcomes.iter(), EndpointKind::Url)
}

/// The SSH hosts a provider created (or replaced) in this deploy: their new
/// host keys are trusted.
fn fresh_ssh_hosts(outcomes: &[ApplyOutcome]) -> Vec<String> {
    let created = outcomes
        .iter()
        .filter(|(c, _)| c.action == Action::Create || c.action == Action::Replace);
    applied_endpoints(created, EndpointKind::Ssh)
}

fn applied_endpoints<'a>(
    outcomes: impl Iterator<Item = &'a ApplyOutcome>,
    kind: EndpointKind,
) -> Vec<String> {
    outcomes
        .filter_map(|(_, r)| r.as_ref().ok().cloned().flatten())
        .flat_map(|a| a.endpoints)
        .filter(|e| e.kind == kind)
        .map(|e| e.address)
        .collect()
}

/// The service's environment: the configured variables, the secrets, and
/// `PORT` last (it wins).
fn service_vars(
    env: &Environment,
    secrets: impl IntoIterator<Item = (String, String)>,
    port: u16,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = env
        .deploy
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.extend(secrets);
    vars.push(("PORT".into(), port.to_string()));
    vars
}

/// The release going out: its hosts and what each of them gets.
struct Rollout<'e> {
    out: crate::report::Reporter,
    env: &'e Environment,
    targets: Vec<Target>,
    job: Arc<RolloutJob>,
    parallelism: usize,
}

impl<'e> Rollout<'e> {
    /// Step: resolve the hosts (new ones included) and make the job: the
    /// release id (the existing one for an artifact deployed before), the
    /// service's command, environment and health check.
    async fn prepare(
        ws: &Workspace,
        p: &Prepared<'e>,
        store: &StateStore,
        outcomes: &[ApplyOutcome],
        secrets: impl IntoIterator<Item = (String, String)>,
        opts: &DeployOptions,
    ) -> anyhow::Result<Self> {
        let env = p.env;
        let artifact = p.artifact.clone().expect("deploys have an artifact");
        let (command, health) = release_settings(ws, env, &artifact)?;
        let port = targets::service_port(store, env)?;
        let targets = targets::resolve_fresh(
            ws,
            env,
            &p.plugin,
            p.session.clone(),
            &p.ctx,
            port,
            &command,
            &fresh_ssh_hosts(outcomes),
        )
        .await?;
        if targets.is_empty() {
            anyhow::bail!(
                "provider '{}' reports no host to roll the release out to",
                env.provider
            );
        }
        let existing = store
            .releases(&env.name)?
            .into_iter()
            .find(|r| r.artifact_digest == artifact.digest());
        let id = existing
            .map(|r| r.id)
            .unwrap_or_else(|| new_release_id(now_ms(), artifact.digest()));
        let job = Arc::new(RolloutJob {
            id,
            kind: ws.project.artifact.kind,
            env: service_vars(env, secrets, port),
            health,
            keep: env.deploy.keep_releases,
            setup: ws.project.artifact.setup.clone(),
            switch: env.deploy.switch.clone(),
            who: format!(
                "{} pid {} at {}",
                actor(),
                std::process::id(),
                crate::state::format_utc(now_ms())
            ),
            force_unlock: opts.force_unlock,
            artifact,
        });
        let parallelism = env
            .deploy
            .rollout
            .parallelism
            .unwrap_or(opts.parallelism)
            .max(1);
        Ok(Self {
            out: ws.out.clone(),
            env,
            targets,
            job,
            parallelism,
        })
    }

    /// Steps: roll out in batches, then record the outcome in the state —
    /// the release active, or failed / rolled back with why. Returns the
    /// release and the URL it answers at.
    async fn run(
        &self,
        step: &PlannedChange,
        trail: &Trail<'_>,
    ) -> anyhow::Result<(String, String)> {
        let out = &self.out;
        let release_id = &self.job.id;
        out.status(
            &Event::RolloutStart {
                release: release_id,
                targets: self.targets.len(),
            },
            || {
                format!(
                    "\n{} {}: rolling out release {release_id} to {} host(s)",
                    step.action.symbol(),
                    step.name,
                    self.targets.len()
                )
            },
        );
        let plan_batches = batches(self.targets.len(), self.env.deploy.rollout.batch);
        let (results, stopped_after) = fanout::run(
            &self.targets,
            &self.job,
            self.parallelism,
            &plan_batches,
            trail,
            out,
        )
        .await?;
        if stopped_after.is_some() {
            let message = self.record_failure(trail.store, &results)?;
            anyhow::bail!("{message}");
        }
        let first = results
            .iter()
            .find_map(|(_, r)| r.as_ref().ok())
            .expect("every host succeeded");
        self.record_success(trail.store, &first.release)?;
        let url = self.targets.first().map(Target::url).unwrap_or_default();
        Ok((release_id.clone(), url))
    }

    /// Step: the release every host now runs becomes the active one.
    fn record_success(&self, store: &StateStore, release: &str) -> anyhow::Result<()> {
        let env = &self.env.name;
        if store.release(env, release)?.is_none() {
            store.insert_release(&ReleaseRecord {
                env: env.clone(),
                id: release.to_string(),
                artifact_digest: self.job.artifact.digest().to_string(),
                status: ReleaseStatus::Pending,
                created_at: now_ms(),
                activated_at: None,
                detail: None,
            })?;
        }
        store.activate_release(env, release)
    }

    /// Step: a failed rollout is recorded (rolled back when every failed
    /// host was switched back); returns the error message, per host when
    /// there are several.
    fn record_failure(
        &self,
        store: &StateStore,
        results: &[(usize, Result<rollout::Report, rollout::Failure>)],
    ) -> anyhow::Result<String> {
        let (env, release_id) = (&self.env.name, &self.job.id);
        let failures: Vec<&rollout::Failure> = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect();
        let message = if self.targets.len() == 1 {
            failures[0].message.clone()
        } else {
            per_host_report(&self.targets, results)
        };
        let status = failed_status(&failures);
        if store.release(env, release_id)?.is_none() {
            store.insert_release(&ReleaseRecord {
                env: env.clone(),
                id: release_id.clone(),
                artifact_digest: self.job.artifact.digest().to_string(),
                status,
                created_at: now_ms(),
                activated_at: None,
                detail: Some(message.clone()),
            })?;
        } else if store
            .active_release(env)?
            .is_none_or(|a| &a.id != release_id)
        {
            store.set_release_status(env, release_id, status, Some(&message))?;
        }
        Ok(message)
    }
}

/// A failed release's status: rolled back when every failed host was
/// switched back to the previous release.
fn failed_status(failures: &[&rollout::Failure]) -> ReleaseStatus {
    if failures.iter().all(|f| f.rolled_back) {
        ReleaseStatus::RolledBack
    } else {
        ReleaseStatus::Failed
    }
}

/// Step: announce the release to the registry, when one is configured; a
/// failure is a warning (the service runs).
async fn announce(ws: &Workspace, trail: &Trail<'_>, env: &Environment, url: &str, release: &str) {
    let Some(reg) = &ws.project.register else {
        return;
    };
    let started = mark();
    let announced = register::announce(
        &reg.url,
        &ws.project.app.name,
        &env.name,
        &env.deploy.service,
        url,
        release,
    )
    .await;
    match announced {
        Ok(status) => trail.phase(
            Phase::Register,
            started,
            Outcome::Ok,
            &format!("{} answered {status}", reg.url),
        ),
        Err(e) => {
            trail.phase(Phase::Register, started, Outcome::Failed, &format!("{e:#}"));
            ws.out.warn(&format!("registration failed: {e:#}"));
        }
    }
}

/// Step: where the service answers. With a release (`release`): a line for
/// people on stderr and the URL alone on stdout; without (nothing changed,
/// or the provider deployed the artifact itself), the line only.
fn report_deployed(
    out: &crate::report::Reporter,
    env: &Environment,
    url: &str,
    release: Option<&str>,
    changed: bool,
) {
    let event = Event::Deployed {
        env: &env.name,
        url,
        release,
        changed,
    };
    let service = &env.deploy.service;
    let name = &env.name;
    match (release, changed) {
        (Some(_), _) => {
            out.note(|| format!("\nDeployed {service} to {name}: {url}"));
            out.result(&event, || url.to_string());
        }
        (None, false) => out.status(&event, || format!("\n{service} is up to date at {url}")),
        (None, true) => out.status(&event, || format!("\nDeployed to {name}: {url}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Applied, Endpoint};

    fn plan_of(artifact: &str) -> Plan {
        Plan {
            format: FORMAT,
            command: "deploy".into(),
            app: "hello".into(),
            env: "prod".into(),
            provider: "local".into(),
            serial: 1,
            artifact: Some(artifact.into()),
            changes: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn change(action: Action) -> PlannedChange {
        PlannedChange {
            action,
            kind: "droplet".into(),
            name: "web".into(),
            reason: String::new(),
            before: None,
            after: None,
            payload: String::new(),
            executor: Executor::Provider,
            deploys_artifact: false,
        }
    }

    fn applied(
        endpoints: &[(EndpointKind, &str)],
    ) -> Result<Option<Applied>, crate::engine::failure::ChangeError> {
        Ok(Some(Applied {
            resource: None,
            endpoints: endpoints
                .iter()
                .map(|(kind, address)| Endpoint {
                    kind: *kind,
                    address: address.to_string(),
                    port: None,
                    user: None,
                })
                .collect(),
            messages: Vec::new(),
        }))
    }

    #[test]
    fn a_saved_plan_applies_only_to_the_artifact_it_was_made_for() {
        let chosen = plan_to_apply(Some(plan_of("aaa")), plan_of("aaa")).unwrap();
        assert_eq!(chosen.artifact.as_deref(), Some("aaa"));
        let err = plan_to_apply(Some(plan_of("aaa")), plan_of("bbb")).unwrap_err();
        assert!(
            err.to_string().contains("run `soar plan -o` again"),
            "{err}"
        );
        let mut fresh = plan_of("ccc");
        fresh.serial = 7;
        assert_eq!(plan_to_apply(None, fresh).unwrap().serial, 7);
    }

    #[test]
    fn only_created_hosts_have_their_keys_trusted() {
        let outcomes: Vec<ApplyOutcome> = vec![
            (
                change(Action::Create),
                applied(&[
                    (EndpointKind::Ssh, "10.0.0.1"),
                    (EndpointKind::Url, "http://a"),
                ]),
            ),
            (
                change(Action::Update),
                applied(&[(EndpointKind::Ssh, "10.0.0.2")]),
            ),
            (
                change(Action::Replace),
                applied(&[(EndpointKind::Ssh, "10.0.0.3")]),
            ),
            (
                change(Action::Create),
                Err(crate::engine::failure::ChangeError {
                    text: "quota".into(),
                    transient: None,
                }),
            ),
        ];
        assert_eq!(fresh_ssh_hosts(&outcomes), ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(provider_urls(&outcomes), ["http://a"]);
    }

    #[test]
    fn a_rollout_is_rolled_back_only_when_every_failed_host_was() {
        let f = |rolled_back| rollout::Failure {
            message: "health".into(),
            rolled_back,
            phases: Vec::new(),
        };
        let (yes, no) = (f(true), f(false));
        assert_eq!(failed_status(&[&yes, &yes]), ReleaseStatus::RolledBack);
        assert_eq!(failed_status(&[&yes, &no]), ReleaseStatus::Failed);
    }
}
