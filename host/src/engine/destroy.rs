//! `soar destroy`: remove everything an environment owns, provider resources
//! and the service on its hosts, and say what is left when something fails.

use std::time::Duration;

use serde_json::json;

use super::plan::{Action, Executor, FORMAT, Plan, PlannedChange, RELEASE_KIND};
use super::targets::{self, Target};
use super::trail::{Trail, confirm, mark};
use super::{Workspace, render};
use crate::report::{Event, Reporter};
use crate::rollout::local::LocalTransport;
use crate::rollout::service::{ServiceSpec, Supervisor};
use crate::state::{HolderInfo, Outcome, Phase, ReleaseStatus};

/// Options of `soar destroy`.
#[derive(Debug, Clone)]
pub struct DestroyOptions {
    /// The environment (`None`: the only one).
    pub env: Option<String>,
    /// Do not ask before removing anything.
    pub yes: bool,
    /// How long to wait for the project lock.
    pub lock_timeout: Duration,
}

/// `soar destroy`.
pub async fn destroy_command(ws: &Workspace, opts: &DestroyOptions) -> anyhow::Result<i32> {
    let env = ws.environment(opts.env.as_deref())?;
    std::fs::create_dir_all(ws.state_dir())?;
    let _lock = ws.lock(&env.name, opts.lock_timeout, &HolderInfo::current())?;
    let store = ws.state()?;
    let p = ws.prepare_existing(&env.name).await?;
    let provider_plan = p.plugin.plan_destroy(p.session.clone(), &p.ctx).await?;
    let mut changes = Vec::new();
    for c in provider_plan.changes {
        changes.push(PlannedChange::from_provider(c)?);
    }
    let root = targets::local_root(ws, env);
    let active = store.active_release(&env.name)?;
    if active.is_some() || root.exists() {
        changes.push(PlannedChange {
            action: Action::Delete,
            kind: RELEASE_KIND.into(),
            name: env.deploy.service.clone(),
            reason: "stop the service and remove its releases".into(),
            before: active
                .as_ref()
                .map(|a| json!({ "artifact": a.artifact_digest, "release": a.id })),
            after: None,
            payload: String::new(),
            deploys_artifact: false,
            executor: Executor::Rollout,
        });
    }
    let mut plan = Plan {
        format: FORMAT,
        command: "destroy".into(),
        app: ws.project.app.name.clone(),
        env: env.name.clone(),
        provider: env.provider.clone(),
        serial: store.serial(&env.name)?,
        artifact: None,
        changes,
        notes: provider_plan.notes,
    };
    plan.normalize();
    // Stop the service before deleting the hosts it runs on.
    plan.changes
        .sort_by_key(|c| c.executor != Executor::Rollout);
    let out = &ws.out;
    render::show_plan(out, &plan);
    if !plan.has_changes() {
        return Ok(0);
    }
    if !opts.yes && !confirm(out, "destroy these resources")? {
        anyhow::bail!("destroy cancelled; nothing was changed");
    }
    let id = store.begin_deploy(&env.name, "destroy", &super::trail::actor())?;
    let trail = Trail { store: &store, id };
    let started = mark();
    let mut failed = Vec::new();
    // The service first (it runs on the hosts about to go), then every
    // provider removal at once: a provider may make one removal wait for
    // another (aws-spot keeps the security group until its instances are
    // gone), so they must not run one after the other.
    for change in plan.effective().filter(|c| c.executor == Executor::Rollout) {
        let result = remove_service(ws, env, &root).await;
        report(out, change, &result);
        match result {
            Ok(()) => {
                if let Some(a) = &active {
                    store.set_release_status(
                        &env.name,
                        &a.id,
                        ReleaseStatus::Superseded,
                        Some("destroyed"),
                    )?;
                }
                store.remove_resource(&env.name, targets::SERVICE_KIND, &env.deploy.service)?;
            }
            Err(e) => failed.push(format!("{} {}: {e}", change.kind, change.name)),
        }
    }
    for (change, result) in super::apply::apply_provider_changes(&p, &plan, 10, out).await {
        match result {
            Ok(_) => {
                store.remove_resource(&env.name, &change.kind, &change.name)?;
            }
            Err(e) => failed.push(format!("{} {}: {e}", change.kind, change.name)),
        }
    }
    let outcome = if failed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    trail.phase(
        Phase::Apply,
        started,
        outcome,
        &format!("{} failed", failed.len()),
    );
    trail.plugin_events(&p.journal);
    store.finish_deploy(id, outcome, &failed.join("; "))?;
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} removals failed:\n  {}\nRe-run `soar destroy` to finish.",
            failed.len(),
            plan.effective().count(),
            failed.join("\n  ")
        );
    }
    out.status(&Event::Destroyed { env: &env.name }, || {
        format!("\nDestroyed environment {}.", env.name)
    });
    Ok(0)
}

/// Stop the service and remove it from every host of the environment.
async fn remove_service(
    ws: &Workspace,
    env: &crate::config::Environment,
    root: &std::path::Path,
) -> Result<(), String> {
    match super::releases::ssh_targets(ws, env).await {
        // Remote hosts: stop and remove the unit, then the service root.
        Ok(Some(hosts)) => {
            let mut errors = Vec::new();
            for h in hosts {
                let removed = async {
                    h.systemd.uninstall(&h.spec).await?;
                    crate::rollout::remove(&h.transport, &h.systemd, &h.spec).await
                }
                .await;
                if let Err(e) = removed {
                    errors.push(format!("{}: {e:#}", h.public));
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        }
        Ok(None) => {
            let spec = ServiceSpec {
                name: env.deploy.service.clone(),
                root: root.to_string_lossy().into_owned(),
                command: String::new(),
                port: 0,
            };
            let supervisor = Supervisor::current().map_err(|e| format!("{e:#}"))?;
            crate::rollout::remove(&LocalTransport, &supervisor, Target::Local(spec).spec())
                .await
                .map_err(|e| format!("{e:#}"))
        }
        Err(e) => Err(format!("{e:#}")),
    }
}

/// One line (or JSON object) per removal.
fn report(out: &Reporter, change: &PlannedChange, result: &Result<(), String>) {
    let line = || match result {
        Ok(()) => format!(
            "  ✓ destroy {} {}",
            crate::terminal::line(&change.kind),
            crate::terminal::line(&change.name)
        ),
        Err(e) => format!(
            "  ✗ destroy {} {}: {}",
            crate::terminal::line(&change.kind),
            crate::terminal::line(&change.name),
            crate::terminal::line(&e.to_string())
        ),
    };
    let event = Event::ApplyResult {
        kind: &change.kind,
        name: &change.name,
        action: "delete".into(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(String::as_str),
    };
    out.status(&event, line);
}
