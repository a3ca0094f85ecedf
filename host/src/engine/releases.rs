//! Reading and switching releases: `soar status`, `history`, `logs`,
//! `rollback`.

mod drift;

use std::time::Duration;

use serde_json::json;

use super::targets::{SshTarget, Target};
use super::trail::{Trail, mark};
use super::{Workspace, targets};
use crate::contract::{EndpointKind, ResourceState, ResourceStatus};
use crate::report::{Event, value};
use crate::rollout::local::LocalTransport;
use crate::rollout::service::{ServiceManager, ServiceSpec, Supervisor, log_file};
use crate::rollout::{self, Health};
use crate::state::{HolderInfo, Outcome, Phase, ReleaseStatus, format_utc};

/// The local service of `env` as recorded, for reading commands.
fn local_spec(ws: &Workspace, env: &crate::config::Environment, port: u16) -> ServiceSpec {
    ServiceSpec {
        name: env.deploy.service.clone(),
        root: targets::local_root(ws, env).to_string_lossy().into_owned(),
        command: String::new(),
        port,
    }
}

/// What the provider said about an environment, for `soar status`.
enum Asked {
    /// `--offline`, or the local target (its truth is the supervisor).
    Not,
    Reported(Vec<ResourceStatus>),
    Failed(String),
}

/// Ask `env`'s plugin for its resources; an error is kept, not raised, so
/// one unreachable provider does not hide the other environments.
async fn ask_provider(ws: &Workspace, env: &crate::config::Environment, offline: bool) -> Asked {
    if offline || env.provider == "local" {
        return Asked::Not;
    }
    let asked = async {
        let p = ws.prepare_existing(&env.name).await?;
        anyhow::Ok(p.plugin.status(p.session.clone(), &p.ctx).await?)
    };
    match asked.await {
        Ok(r) => Asked::Reported(r),
        Err(e) => Asked::Failed(format!("{e:#}")),
    }
}

/// A provider- or state-supplied string for one line of status output
/// (see [`crate::terminal`]).
fn shown(s: &str) -> String {
    crate::terminal::line(s).into_owned()
}

/// `soar status`: per environment, the active release, whether it runs, and
/// — unless `offline` — what the provider reports, with every difference
/// from the state marked as drift.
pub async fn status_command(
    ws: &Workspace,
    env: Option<&str>,
    offline: bool,
) -> anyhow::Result<i32> {
    let store = ws.state()?;
    let envs: Vec<&crate::config::Environment> = match env {
        Some(e) => vec![ws.environment(Some(e))?],
        None => ws.project.environments.values().collect(),
    };
    for env in envs {
        let status = EnvStatus::gather(ws, &store, env, offline).await?;
        ws.out
            .result(&Event::Status(status.to_json()), || status.to_text(offline));
    }
    Ok(0)
}

/// What `soar status` knows about one environment.
struct EnvStatus<'e> {
    env: &'e crate::config::Environment,
    active: Option<crate::state::ReleaseRecord>,
    resources: Vec<crate::state::ResourceRecord>,
    /// `{host, running, url}` per SSH host.
    hosts: Vec<serde_json::Value>,
    asked: Asked,
    drift: Vec<drift::Drift>,
    running: bool,
    url: Option<String>,
    deployed_by_provider: bool,
    /// The local service's numbers (SSH hosts carry their own).
    metrics: Option<crate::monitor::metrics::Metrics>,
}

impl<'e> EnvStatus<'e> {
    /// Read the state, ask the service managers and (unless `offline`) the
    /// provider.
    async fn gather(
        ws: &Workspace,
        store: &crate::state::StateStore,
        env: &'e crate::config::Environment,
        offline: bool,
    ) -> anyhow::Result<Self> {
        let active = store.active_release(&env.name)?;
        let resources = store.resources(&env.name)?;
        let port = resources
            .iter()
            .find(|r| r.kind == targets::SERVICE_KIND && r.name == env.deploy.service)
            .and_then(|r| r.attributes.get("port").and_then(|p| p.as_u64()))
            .map(|p| p as u16)
            .or(env.deploy.port);
        let running_here = match port {
            Some(p) if env.provider == "local" => {
                Supervisor::current()?
                    .is_running(&local_spec(ws, env, p))
                    .await?
            }
            _ => false,
        };
        let url_here = port
            .filter(|_| running_here)
            .map(|p| format!("http://127.0.0.1:{p}"));
        // The local supervisor's numbers, where it runs the service: an
        // environment with SSH hosts has its numbers per host instead.
        let supervised_here = env.provider == "local" && env.ssh.hosts.is_empty();
        let metrics = (supervised_here && port.is_some()).then(|| {
            crate::monitor::proc::local(&targets::local_root(ws, env), &env.deploy.service)
        });
        let hosts = if active.is_some() {
            host_statuses(ws, env).await
        } else {
            Vec::new()
        };
        let asked = ask_provider(ws, env, offline).await;
        let mut status = Self {
            env,
            active,
            resources,
            hosts,
            asked,
            drift: Vec::new(),
            running: running_here,
            url: url_here,
            deployed_by_provider: false,
            metrics,
        };
        status.conclude();
        Ok(status)
    }

    /// The resources the state records for the provider (the service record
    /// is Soar's own).
    fn in_state(&self) -> Vec<&crate::state::ResourceRecord> {
        self.resources
            .iter()
            .filter(|r| r.kind != targets::SERVICE_KIND)
            .collect()
    }

    fn reported(&self) -> Option<&[ResourceStatus]> {
        match &self.asked {
            Asked::Reported(r) => Some(r),
            _ => None,
        }
    }

    /// From what was gathered: the drift, whether the service runs, where
    /// it answers, and whether the provider deploys the artifact itself.
    fn conclude(&mut self) {
        if let Asked::Reported(r) = &self.asked {
            self.drift = drift::compare(&self.in_state(), r);
        }
        let reported = self.reported();
        let host_url = self
            .hosts
            .iter()
            .find(|h| h["running"] == true)
            .and_then(|h| h["url"].as_str().map(String::from));
        // Without hosts to ask, a resource the provider reports running is
        // the service (a Worker, a Function, a third party's own artifact).
        let provider_running = self.hosts.is_empty()
            && reported.is_some_and(|r| r.iter().any(|s| s.state == ResourceState::Running));
        let provider_url = if self.hosts.is_empty() {
            reported.and_then(|r| {
                r.iter()
                    .filter(|s| s.state == ResourceState::Running)
                    .flat_map(|s| &s.endpoints)
                    .find(|e| e.kind == EndpointKind::Url)
                    .map(|e| e.address.clone())
            })
        } else {
            None
        };
        let any_host_running = self.hosts.iter().any(|h| h["running"] == true);
        self.url = self.url.take().or(host_url).or(provider_url);
        self.running = self.running || provider_running || any_host_running;
        // No hosts to roll onto, yet the provider runs something: it put
        // the artifact in place itself.
        self.deployed_by_provider = provider_running;
    }

    /// The `status` event's fields.
    fn to_json(&self) -> serde_json::Value {
        let provider_error = match &self.asked {
            Asked::Failed(e) => Some(e.clone()),
            _ => None,
        };
        json!({ "env": self.env.name, "provider": self.env.provider, "service": self.env.deploy.service,
            "release": self.active, "running": self.running,
            "url": self.url, "hosts": self.hosts, "resources": self.resources,
            "metrics": self.metrics,
            "checked": if matches!(self.asked, Asked::Not) { "state" } else { "provider" },
            "provider_resources": self.reported().map(drift::reported_json),
            "provider_error": provider_error,
            "drift": self.drift.iter().map(drift::Drift::to_json).collect::<Vec<_>>() })
    }

    /// The environment for people, one fact per line.
    fn to_text(&self, offline: bool) -> String {
        let env = self.env;
        let mut lines = vec![format!(
            "{} ({}): service {}",
            env.name, env.provider, env.deploy.service
        )];
        lines.push(match &self.active {
            Some(r) => format!(
                "  release:  {} (artifact {}…, active since {})",
                r.id,
                &r.artifact_digest[..12.min(r.artifact_digest.len())],
                r.activated_at.map(format_utc).unwrap_or_default()
            ),
            None if self.deployed_by_provider => {
                "  release:  none on hosts (the provider deploys the artifact itself)".into()
            }
            None => "  release:  none deployed".into(),
        });
        lines.push(format!(
            "  running:  {}",
            if self.running { "yes" } else { "no" }
        ));
        if let Some(u) = &self.url {
            lines.push(format!("  url:      {}", shown(u)));
        }
        if let Some(m) = self.metrics.as_ref().filter(|m| m.up) {
            lines.push(format!("  metrics:  {}", m.summary()));
        }
        for h in &self.hosts {
            let numbers =
                serde_json::from_value::<crate::monitor::metrics::Metrics>(h["metrics"].clone())
                    .ok()
                    .filter(|m| m.up)
                    .map(|m| format!(" ({})", m.summary()));
            lines.push(format!(
                "  host:     {} {}{}",
                shown(h["url"].as_str().unwrap_or_default()),
                if h["running"] == true {
                    "running"
                } else {
                    "not running"
                },
                numbers.unwrap_or_default()
            ));
        }
        lines.extend(self.resource_lines());
        for d in &self.drift {
            lines.push(format!(
                "  drift:    {} {} {}: {}",
                shown(&d.kind),
                shown(&d.name),
                d.what,
                shown(&d.detail)
            ));
        }
        match &self.asked {
            Asked::Not if !offline => {}
            Asked::Not => {
                lines.push("  provider: not asked (--offline); showing the state only".into())
            }
            Asked::Reported(_) if self.drift.is_empty() => {
                lines.push("  provider: matches the state".into())
            }
            Asked::Reported(_) => lines.push(format!(
                "  provider: {} difference(s) from the state (drift)",
                self.drift.len()
            )),
            Asked::Failed(e) => lines.push(format!(
                "  provider: could not be asked: {}; showing the state only (check the credentials and network, or pass --offline)",
                shown(e)
            )),
        }
        lines.join("\n")
    }

    /// One line per resource: those in the state (with what the provider
    /// says of each), then those only the provider reports.
    fn resource_lines(&self) -> Vec<String> {
        let in_state = self.in_state();
        let reported = self.reported();
        let mut lines = Vec::new();
        for r in &in_state {
            let at_provider = reported.map(|rep| {
                rep.iter()
                    .find(|s| s.resource.kind == r.kind && s.resource.name == r.name)
                    .map(|s| shown(s.state.as_str()))
                    .unwrap_or_else(|| "missing".into())
            });
            lines.push(format!(
                "  resource: {} {}{}{}",
                shown(&r.kind),
                shown(&r.name),
                r.id.as_deref()
                    .map(|i| format!(" ({})", shown(i)))
                    .unwrap_or_default(),
                at_provider
                    .map(|s| format!(" — provider: {s}"))
                    .unwrap_or_default()
            ));
        }
        for s in reported.unwrap_or_default().iter().filter(|s| {
            s.state != ResourceState::Missing
                && !in_state
                    .iter()
                    .any(|r| r.kind == s.resource.kind && r.name == s.resource.name)
        }) {
            lines.push(format!(
                "  resource: {} {}{} — provider: {}, not in the state",
                shown(&s.resource.kind),
                shown(&s.resource.name),
                s.resource
                    .id
                    .as_deref()
                    .map(|i| format!(" ({})", shown(i)))
                    .unwrap_or_default(),
                shown(s.state.as_str())
            ));
        }
        lines
    }
}

/// Ask each SSH host's service manager whether the service runs; a host
/// list that cannot be had is a warning, not an error (the state is still
/// worth showing).
async fn host_statuses(ws: &Workspace, env: &crate::config::Environment) -> Vec<serde_json::Value> {
    let targets = match ssh_targets(ws, env).await {
        Ok(Some(t)) => t,
        Ok(None) => return Vec::new(),
        Err(e) => {
            ws.out
                .warn(&format!("cannot reach the hosts of {}: {e:#}", env.name));
            return Vec::new();
        }
    };
    let mut hosts = Vec::new();
    for h in targets {
        let up = h.systemd.is_running(&h.spec).await.unwrap_or(false);
        let host_url = format!("http://{}:{}", h.public, h.spec.port);
        let numbers = crate::monitor::metrics::remote(&h.systemd, &h.spec.name)
            .await
            .ok();
        hosts.push(json!({ "host": h.public, "running": up, "url": host_url, "metrics": numbers }));
    }
    hosts
}

/// `soar history`: the audit trail, newest first.
pub fn history_command(ws: &Workspace, env: Option<&str>, limit: usize) -> anyhow::Result<i32> {
    let store = ws.state()?;
    let records = store.history(env, limit)?;
    if records.is_empty() {
        ws.out.message(|| "No deploys recorded yet.".into());
    }
    for r in &records {
        ws.out
            .result(&Event::HistoryRecord(value(r)), || history_text(r));
    }
    Ok(0)
}

/// One audit record for people: the command, its phases, its summary
/// (`soar history`, locally or from a server's records).
pub fn history_text(r: &crate::state::DeployRecord) -> String {
    let mut text = format!(
        "#{} {} {} {} by {} — {}{}",
        r.id,
        format_utc(r.started_at),
        r.command,
        r.env,
        r.actor,
        r.status,
        r.duration_ms
            .map(|d| format!(" in {:.1} s", d as f64 / 1000.0))
            .unwrap_or_default()
    );
    for ph in &r.phases {
        text.push_str(&format!(
            "\n    {:<14} {:<8} {:>7} ms  {}",
            ph.phase.to_string(),
            ph.outcome.to_string(),
            ph.duration_ms,
            ph.detail
        ));
    }
    if let Some(s) = r.summary.as_deref().filter(|s| !s.is_empty()) {
        text.push_str(&format!("\n    {s}"));
    }
    text
}

/// `soar logs`: the service's last lines.
pub async fn logs_command(ws: &Workspace, env: Option<&str>, lines: usize) -> anyhow::Result<i32> {
    let env = ws.environment(env)?;
    if let Some(hosts) = ssh_targets(ws, env).await? {
        for t in &hosts {
            if hosts.len() > 1 {
                ws.out
                    .print(&format!("==> {} <==\n", t.transport.host.describe()));
            }
            let spec = rollout::switch::serving(&t.transport, &t.spec, &env.deploy.switch).await?;
            ws.out.print_raw(&t.systemd.logs(&spec, lines).await?);
        }
        return Ok(0);
    }
    if env.provider != "local" {
        let p = ws.prepare_existing(&env.name).await?;
        for line in p
            .plugin
            .logs(p.session.clone(), &p.ctx, &env.deploy.service, lines as u32)
            .await?
        {
            // The plugin's words: one line each (see crate::terminal).
            ws.out.print(&format!("{}\n", crate::terminal::line(&line)));
        }
        return Ok(0);
    }
    let root = targets::local_root(ws, env);
    // Under the proxy switch the live colour writes the log; its root is
    // all that is read (the port plays no part).
    let spec = ServiceSpec {
        name: env.deploy.service.clone(),
        root: root.to_string_lossy().into_owned(),
        command: String::new(),
        port: 0,
    };
    let spec = rollout::switch::serving(&LocalTransport, &spec, &env.deploy.switch).await?;
    let path = log_file(std::path::Path::new(&spec.root));
    if !path.exists() {
        anyhow::bail!(
            "no logs for {} in {}: has it been deployed?",
            env.deploy.service,
            env.name
        );
    }
    ws.out
        .print_raw(&rollout::tail(&LocalTransport, &path.to_string_lossy(), lines).await?);
    Ok(0)
}

/// `soar rollback [--to RELEASE]`: switch back and restart.
pub async fn rollback_command(
    ws: &Workspace,
    env: Option<&str>,
    to: Option<&str>,
    lock_timeout: Duration,
) -> anyhow::Result<i32> {
    let env = ws.environment(env)?;
    std::fs::create_dir_all(ws.state_dir())?;
    let _lock = ws.lock(&env.name, lock_timeout, &HolderInfo::current())?;
    let store = ws.state()?;
    let releases = store.releases(&env.name)?;
    let active = releases.iter().find(|r| r.status == ReleaseStatus::Active);
    let target = match to {
        Some(id) => releases.iter().find(|r| r.id == id).ok_or_else(|| {
            anyhow::anyhow!(
                "no release {id} in {} (see `soar history` or `soar status`)",
                env.name
            )
        })?,
        None => {
            let after_active = releases
                .iter()
                .skip_while(|r| r.status != ReleaseStatus::Active)
                .skip(1);
            let mut candidates = after_active.filter(|r| {
                matches!(
                    r.status,
                    ReleaseStatus::Superseded | ReleaseStatus::RolledBack
                )
            });
            candidates.next().ok_or_else(|| {
                anyhow::anyhow!("{} has no earlier release to roll back to", env.name)
            })?
        }
    };
    if active.is_some_and(|a| a.id == target.id) {
        anyhow::bail!("release {} is already active in {}", target.id, env.name);
    }
    let h = &env.deploy.health;
    let health = Health {
        path: h.path.clone(),
        timeout: h.timeout,
        interval: h.interval,
        retries: h.retries,
    };
    if let Some(hosts) = ssh_targets(ws, env).await? {
        let id = store.begin_deploy(&env.name, "rollback", &super::trail::actor())?;
        let trail = Trail { store: &store, id };
        let started = mark();
        let who = format!("soar rollback pid {}", std::process::id());
        let mut failed = Vec::new();
        let mut answers = Vec::new();
        for t in &hosts {
            let r = async {
                rollout::lock(&t.transport, &t.spec.root, &who, false).await?;
                let r = rollout::switch_to(
                    &t.transport,
                    &t.systemd,
                    &t.spec,
                    &target.id,
                    &health,
                    &env.deploy.switch,
                )
                .await;
                let _ = rollout::unlock(&t.transport, &t.spec.root).await;
                r
            }
            .await;
            match r {
                Ok(a) => answers.push(format!("{}: {a}", t.transport.host.describe())),
                Err(e) => failed.push(format!("{}: {e:#}", t.transport.host.describe())),
            }
        }
        if failed.is_empty() {
            store.rollback_release(&env.name, &target.id, Some("rolled back by hand"))?;
            trail.phase(Phase::Rollback, started, Outcome::Ok, &answers.join("; "));
            store.finish_deploy(id, Outcome::Ok, &format!("rolled back to {}", target.id))?;
            ws.out.print(&format!(
                "Rolled {} in {} back to release {} on {} host(s).\n",
                env.deploy.service,
                env.name,
                target.id,
                hosts.len()
            ));
            return Ok(0);
        }
        let msg = failed.join("\n  ");
        trail.phase(Phase::Rollback, started, Outcome::Failed, &msg);
        store.finish_deploy(id, Outcome::Failed, &msg)?;
        anyhow::bail!("rolling back to {} failed on:\n  {msg}", target.id);
    }
    if env.provider != "local" {
        anyhow::bail!(
            "provider '{}' reports no host to roll back on",
            env.provider
        );
    }
    let port = targets::service_port(&store, env)?;
    let mut spec = local_spec(ws, env, port);
    spec.command = std::fs::read(crate::rollout::service::spec_file(std::path::Path::new(
        &spec.root,
    )))
    .ok()
    .and_then(|b| serde_json::from_slice::<ServiceSpec>(&b).ok())
    .map(|s| s.command)
    .ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no service definition on this machine: deploy it first",
            env.deploy.service
        )
    })?;
    let id = store.begin_deploy(&env.name, "rollback", &super::trail::actor())?;
    let trail = Trail { store: &store, id };
    let started = mark();
    match rollout::switch_to(
        &LocalTransport,
        &Supervisor::current()?,
        &spec,
        &target.id,
        &health,
        &env.deploy.switch,
    )
    .await
    {
        Ok(answer) => {
            store.rollback_release(&env.name, &target.id, Some("rolled back by hand"))?;
            trail.phase(Phase::Rollback, started, Outcome::Ok, &answer);
            store.finish_deploy(id, Outcome::Ok, &format!("rolled back to {}", target.id))?;
            ws.out.print(&format!(
                "Rolled {} in {} back to release {} ({answer}).\n",
                env.deploy.service, env.name, target.id
            ));
            Ok(0)
        }
        Err(e) => {
            trail.phase(Phase::Rollback, started, Outcome::Failed, &format!("{e:#}"));
            store.finish_deploy(id, Outcome::Failed, &format!("{e:#}"))?;
            Err(e.context(format!("rolling back to {}", target.id)))
        }
    }
}

/// The SSH hosts of `env` (from the provider's status and the config), or
/// `None` when it has none. The service command is left empty: reading
/// commands and rollbacks restart the unit that is installed.
pub(crate) async fn ssh_targets(
    ws: &Workspace,
    env: &crate::config::Environment,
) -> anyhow::Result<Option<Vec<SshTarget>>> {
    if env.provider == "local" && env.ssh.hosts.is_empty() {
        return Ok(None);
    }
    let p = ws.prepare_existing(&env.name).await?;
    let store = ws.state()?;
    let port = targets::known_port(&store, env)?.unwrap_or(0);
    let all = targets::resolve(ws, env, &p.plugin, p.session.clone(), &p.ctx, port, "").await?;
    let hosts: Vec<SshTarget> = all
        .into_iter()
        .filter_map(|t| match t {
            Target::Ssh(s) => Some(*s),
            Target::Local(_) => None,
        })
        .collect();
    Ok((!hosts.is_empty()).then_some(hosts))
}
