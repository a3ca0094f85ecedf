//! `soar monitor`, `soar top`, and `soar logs -f`: the commands that watch
//! deployed services. The watching itself is [`crate::monitor`]'s; this
//! module turns a project's environments into the services it watches
//! (through the engine, which knows where each environment runs) and shows
//! what it sees.
//!
//! All three end cleanly on Ctrl-C (SIGINT) or SIGTERM, with exit code 0:
//! stopping is what the user asked for, not a failure.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::args::{EnvFilterArg, JsonArg};
use crate::config::Environment;
use crate::engine::Workspace;
use crate::engine::hooks::{self, HookContext};
use crate::engine::releases::ssh_targets;
use crate::engine::targets;
use crate::monitor::announce::{Announcer, HookRunner};
use crate::monitor::check::HostFinding;
use crate::monitor::follow::{self, Line, Start};
use crate::monitor::metrics::{self, Metrics};
use crate::monitor::schedule::{self, Event as Watched, Options};
use crate::monitor::{Place, Remote, Service};
use crate::report::{Event, Reporter, value};
use crate::state::{AnnounceLease, format_utc};

/// `soar monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    env: EnvFilterArg,
    #[command(flatten)]
    json: JsonArg,
    /// Check every deployed environment this often (e.g. 30s), overriding
    /// `[deploy] health.monitor`; without it only environments that set
    /// `health.monitor` are watched.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    interval: Option<Duration>,
    /// Most hosts checked at the same time.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
}

impl MonitorArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// `soar top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    env: EnvFilterArg,
    #[command(flatten)]
    json: JsonArg,
    /// How often the numbers are read again.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::config::parse_duration)]
    interval: Duration,
    /// Show the numbers once and exit.
    #[arg(long)]
    once: bool,
}

impl TopArgs {
    pub(super) fn json(&self) -> bool {
        self.json.json
    }
}

/// What `soar logs` was asked beyond the last lines.
#[derive(Debug, Clone)]
pub struct LogsFollow {
    /// The environment (default: the only one).
    pub env: Option<String>,
    /// Lines of backlog.
    pub lines: usize,
    /// Keep following.
    pub follow: bool,
    /// Only lines this recent (journald and Docker).
    pub since: Option<Duration>,
    /// Only lines containing this text.
    pub grep: Option<String>,
}

/// Ends on SIGINT or SIGTERM. Registered before any work, so a Ctrl-C
/// during start-up is also a clean stop rather than the default death.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// The environments asked for: one, or every one.
fn environments<'w>(ws: &'w Workspace, env: Option<&str>) -> anyhow::Result<Vec<&'w Environment>> {
    Ok(match env {
        Some(e) => vec![ws.environment(Some(e))?],
        None => ws.project.environments.values().collect(),
    })
}

/// The services of `env` that are deployed, on every host. Environments a
/// provider runs itself (Workers, Functions) have no host to look at and
/// yield none.
async fn services(ws: &Workspace, env: &Environment) -> anyhow::Result<Vec<Service>> {
    let store = ws.state()?;
    if store.active_release(&env.name)?.is_none() {
        return Ok(Vec::new());
    }
    let Some(port) = targets::known_port(&store, env)? else {
        return Ok(Vec::new());
    };
    let health_port = env.deploy.health.port.unwrap_or(port);
    let watched = |spec: crate::rollout::service::ServiceSpec, place| Service {
        env: env.name.clone(),
        spec,
        health_path: env.deploy.health.path.clone(),
        health_port,
        place,
    };
    // Under the proxy switch the live colour is the process to read
    // numbers and logs of (health goes through the proxy, on `health_port`).
    let switch = &env.deploy.switch;
    if let Some(hosts) = ssh_targets(ws, env).await? {
        let mut found = Vec::with_capacity(hosts.len());
        for h in hosts {
            let spec = crate::rollout::switch::serving(&h.transport, &h.spec, switch).await?;
            let place = Place::Ssh(Box::new(Remote {
                transport: h.transport,
                manager: h.systemd,
            }));
            found.push(watched(spec, place));
        }
        return Ok(found);
    }
    if env.provider != "local" {
        return Ok(Vec::new());
    }
    let spec = crate::rollout::service::ServiceSpec {
        name: env.deploy.service.clone(),
        root: targets::local_root(ws, env).to_string_lossy().into_owned(),
        command: String::new(),
        port,
    };
    let spec =
        crate::rollout::switch::serving(&crate::rollout::local::LocalTransport, &spec, switch)
            .await?;
    Ok(vec![watched(spec, Place::Local)])
}

/// How often `soar monitor` looks for a deploy of its environments made
/// elsewhere (one read of the state store's newest records): often enough
/// to pause before a proxy switch's deploy stops the old colour.
const DEPLOYS_POLL: Duration = Duration::from_millis(500);

/// `soar monitor`: watch until stopped; every transition is printed, kept
/// in the audit trail, POSTed to `[monitor] webhook` and (when a service
/// fails) handed to the `on_unhealthy` hook.
///
/// A deploy, rollback or destroy of a watched environment (from this
/// machine or a teammate's, through the shared state) ends the round: the
/// watching pauses while it runs (a deploy restarts the service on
/// purpose; that is not an outage), then the services are resolved again,
/// so the monitor watches what was deployed (under the proxy switch, the
/// new live colour). `soar serve` restarts its monitor after a job the
/// same way.
pub async fn monitor(config: Option<&Path>, a: MonitorArgs, out: &Reporter) -> anyhow::Result<i32> {
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let ws = Workspace::open(config, out.clone())?;
    let envs = environments(&ws, a.env.env.as_deref())?;
    let announcer = announcer(&ws)?;
    let mut deploys = Deploys::new(&ws, &envs);
    let mut first = true;
    loop {
        let stamp = deploys.stamp()?;
        let by_interval = watched(&ws, &envs, &a, out, first).await?;
        let count: usize = by_interval.values().map(Vec::len).sum();
        if first && count == 0 {
            anyhow::bail!(
                "nothing to watch: no environment has a deployed service with an interval \
                 (deploy first, and set `[deploy] health = {{ monitor = \"30s\" }}` or pass --interval 30s)"
            );
        }
        if first {
            out.note(|| format!("Watching {count} service(s); Ctrl-C stops."));
        } else {
            out.note(|| format!("A deploy ended; watching {count} service(s) again."));
        }
        first = false;
        let changed = deploys.changed(&stamp);
        let redeployed =
            watch_round(by_interval, &a, &announcer, out, stop.as_mut(), changed).await;
        if !redeployed {
            return Ok(0);
        }
        // Not while the deploy runs: wait for it to end, or for a stop.
        tokio::select! {
            () = &mut stop => return Ok(0),
            () = deploys.settled() => {}
        }
    }
}

/// One round of watching: the services `by_interval` until `stop` (then
/// `false`) or `changed` (a deploy of their environments: `true`); every
/// event is shown as it comes, the last ones too.
async fn watch_round<S: Future<Output = ()>>(
    by_interval: BTreeMap<Duration, Vec<Service>>,
    a: &MonitorArgs,
    announcer: &Announcer,
    out: &Reporter,
    mut stop: std::pin::Pin<&mut S>,
    changed: impl Future<Output = ()>,
) -> bool {
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let loops = by_interval.into_iter().map(|(every, services)| {
        let (announcer, tx, mut done) = (announcer.clone(), tx.clone(), done_rx.clone());
        let opts = Options {
            concurrency: a.concurrency,
            ..Options::every(every)
        };
        schedule::run(
            services,
            opts,
            announcer,
            move |e| {
                let _ = tx.send(e);
            },
            async move {
                let _ = done.wait_for(|d| *d).await;
            },
        )
    });
    let all = futures_util::future::join_all(loops);
    drop(tx);
    tokio::pin!(all, changed);
    let mut watching = true;
    let redeployed = loop {
        tokio::select! {
            () = &mut stop => break false,
            _ = &mut all, if watching => watching = false,
            () = &mut changed => break true,
            Some(e) = rx.recv() => show_watched(out, &e),
        }
    };
    let _ = done_tx.send(true);
    if watching {
        all.await;
    }
    while let Ok(e) = rx.try_recv() {
        show_watched(out, &e);
    }
    redeployed
}

/// The services of `envs` to watch, by interval; notes the environments
/// not watched (on the first round only).
async fn watched(
    ws: &Workspace,
    envs: &[&Environment],
    a: &MonitorArgs,
    out: &Reporter,
    first: bool,
) -> anyhow::Result<BTreeMap<Duration, Vec<Service>>> {
    let mut by_interval: BTreeMap<Duration, Vec<Service>> = BTreeMap::new();
    for env in envs {
        let Some(every) = a.interval.or(env.deploy.health.monitor) else {
            if first {
                out.note(|| {
                    format!(
                        "{}: not watched (set `health.monitor = \"30s\"` in its deploy table, or pass --interval)",
                        env.name
                    )
                });
            }
            continue;
        };
        let found = services(ws, env).await?;
        if found.is_empty() && first {
            out.note(|| format!("{}: nothing deployed on a host to watch", env.name));
        }
        by_interval.entry(every).or_default().extend(found);
    }
    Ok(by_interval)
}

/// Records of these commands change what runs; the monitor's own records
/// (and exec's, host setup's) do not.
const DEPLOYING: &[&str] = &["deploy", "rollback", "destroy"];

/// The id and status of a deploy record, or none yet.
type Stamp = Option<(crate::state::DeployId, crate::state::DeployStatus)>;

/// The newest deploy, rollback or destroy of the watched environments (one
/// query, [`crate::state::StateStore::latest`]), read every [`DEPLOYS_POLL`]:
/// how `soar monitor` learns of a deploy made by another process, here or
/// on a teammate's machine. Two environments deploying at once are seen as
/// their newest one.
struct Deploys<'w> {
    ws: &'w Workspace,
    envs: Vec<String>,
    /// Kept open between reads; opened again after a failed one.
    store: Option<crate::state::StateStore>,
}

impl<'w> Deploys<'w> {
    fn new(ws: &'w Workspace, envs: &[&Environment]) -> Self {
        Self {
            ws,
            envs: envs.iter().map(|e| e.name.clone()).collect(),
            store: None,
        }
    }

    /// The newest deploy record of the environments: its id and status.
    fn stamp(&mut self) -> anyhow::Result<Stamp> {
        let store = match self.store.take() {
            Some(s) => s,
            None => self.ws.state()?,
        };
        let envs: Vec<&str> = self.envs.iter().map(String::as_str).collect();
        let latest = store.latest(&envs, DEPLOYING)?;
        self.store = Some(store);
        Ok(latest.map(|r| (r.id, r.status)))
    }

    /// Resolves once the newest deploy of the environments differs from
    /// `was`. A failed read is a warning: the watching goes on.
    async fn changed(&mut self, was: &Stamp) {
        loop {
            tokio::time::sleep(DEPLOYS_POLL).await;
            match self.stamp() {
                Ok(now) if now != *was => return,
                Ok(_) => {}
                Err(e) => tracing::warn!("reading the state for deploys: {e:#}"),
            }
        }
    }

    /// Resolves once the newest deploy of the environments is not running.
    async fn settled(&mut self) {
        loop {
            match self.stamp() {
                Ok(now) if !matches!(now, Some((_, crate::state::DeployStatus::Running))) => {
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading the state for deploys: {e:#}"),
            }
            tokio::time::sleep(DEPLOYS_POLL).await;
        }
    }
}

/// The audit trail, the webhook and the hook of this project.
fn announcer(ws: &Workspace) -> anyhow::Result<Announcer> {
    let hook: Option<HookRunner> = ws.project.hooks.on_unhealthy.clone().map(|command| {
        let (root, app) = (ws.project.root.clone(), ws.project.app.name.clone());
        let timeout = ws.project.hooks.timeout;
        let run: HookRunner = Arc::new(move |t| {
            let ctx = HookContext {
                app: app.clone(),
                env: t.envs.join(","),
                service: t.service.clone().unwrap_or_default(),
                release: None,
                url: None,
                error: Some(t.summary()),
            };
            let (command, root) = (command.clone(), root.clone());
            Box::pin(async move {
                hooks::run("on_unhealthy", &command, &root, &ctx, timeout)
                    .await
                    .map(|_| ())
                    .map_err(|(_, why)| anyhow::anyhow!(why))
            })
        });
        run
    });
    Ok(Announcer {
        store: Some(Arc::new(Mutex::new(ws.state()?))),
        webhook: ws.project.monitor.webhook.clone(),
        hook,
        lease: Some(Arc::new(Mutex::new(AnnounceLease::new(
            ws.state_location(),
        )))),
    })
}

fn show_watched(out: &Reporter, e: &Watched) {
    match e {
        Watched::Checked(finding) => {
            let lines: Vec<String> = match finding {
                HostFinding::Down { host, reason, .. } => {
                    vec![format!("host {host} is unreachable: {reason}")]
                }
                HostFinding::Up { services, .. } => services
                    .iter()
                    .map(|f| {
                        let numbers = f.metrics.as_ref().map(Metrics::summary);
                        format!(
                            "{} {}: {}{}",
                            f.key,
                            if f.healthy { "healthy" } else { "UNHEALTHY" },
                            f.detail,
                            numbers.map(|n| format!(" [{n}]")).unwrap_or_default()
                        )
                    })
                    .collect(),
            };
            if out.is_json() {
                out.emit(&Event::HealthCheck(finding_json(finding)));
            } else if out.verbosity() > 0 {
                for l in lines {
                    out.note(|| l);
                }
            }
        }
        Watched::Transition(t, announced) => {
            let mut event = value(t);
            if let Some(fields) = event.as_object_mut() {
                fields.insert("announced".into(), (!announced.elsewhere).into());
            }
            out.result(&Event::HealthTransition(event), || {
                let by = if announced.elsewhere {
                    " (announced by another monitor of this project)"
                } else {
                    ""
                };
                format!("{} {}{by}", format_utc(t.at), t.summary())
            });
            for p in &announced.problems {
                out.warn(&format!("announcing {}: {p}", t.key));
            }
        }
    }
}

fn finding_json(f: &HostFinding) -> serde_json::Value {
    match f {
        HostFinding::Down { host, envs, reason } => {
            serde_json::json!({ "host": host, "envs": envs, "reachable": false, "detail": reason })
        }
        HostFinding::Up { host, services } => {
            serde_json::json!({ "host": host, "reachable": true, "services": services })
        }
    }
}

/// `soar top`: the services' numbers, read again every interval and drawn
/// over the last frame on a terminal (one frame after another otherwise).
pub async fn top(config: Option<&Path>, a: TopArgs, out: &Reporter) -> anyhow::Result<i32> {
    let stop = stop_signal()?;
    let ws = Workspace::open(config, out.clone())?;
    let mut all = Vec::new();
    for env in environments(&ws, a.env.env.as_deref())? {
        all.extend(services(&ws, env).await?);
    }
    if all.is_empty() {
        anyhow::bail!("nothing deployed on a host to show: deploy first (`soar deploy`)");
    }
    let redraw = !a.once && !out.is_json() && std::io::stdout().is_terminal();
    let mut before: BTreeMap<String, (Instant, f64)> = BTreeMap::new();
    tokio::pin!(stop);
    loop {
        let read_at = Instant::now();
        let numbers = futures_util::future::join_all(all.iter().map(metrics::gather)).await;
        let mut rows = vec![format!(
            "{:<28} {:<5} {:>8} {:>8} {:>9} {:>6} {:>11}",
            "SERVICE", "UP", "PID", "RESTARTS", "UPTIME", "CPU%", "RSS"
        )];
        for (svc, m) in all.iter().zip(numbers) {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    rows.push(format!("{:<28} cannot read: {e:#}", svc.key()));
                    continue;
                }
            };
            let cpu = cpu_percent(&mut before, &svc.key(), read_at, m.cpu_seconds);
            out.emit(&Event::ServiceMetrics(serde_json::json!({
                "env": svc.env, "service": svc.spec.name, "host": svc.host(),
                "metrics": m, "cpu_percent": cpu,
            })));
            rows.push(row(&svc.key(), &m, cpu));
        }
        if !out.is_json() {
            let clear = if redraw { "\x1b[H\x1b[2J" } else { "" };
            out.print(&format!("{clear}{}\n\n", rows.join("\n")));
        }
        if a.once {
            return Ok(0);
        }
        tokio::select! {
            _ = &mut stop => return Ok(0),
            _ = tokio::time::sleep(a.interval) => {}
        }
    }
}

/// CPU use since the last reading of `key`, in percent of one core.
fn cpu_percent(
    before: &mut BTreeMap<String, (Instant, f64)>,
    key: &str,
    at: Instant,
    cpu: Option<f64>,
) -> Option<f64> {
    let cpu = cpu?;
    let last = before.insert(key.to_string(), (at, cpu));
    let (then, was) = last?;
    let wall = at.duration_since(then).as_secs_f64();
    (wall > 0.0 && cpu >= was).then(|| (cpu - was) / wall * 100.0)
}

fn row(key: &str, m: &Metrics, cpu: Option<f64>) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "{:<28} {:<5} {:>8} {:>8} {:>9} {:>6} {:>11}",
        key,
        if m.up { "yes" } else { "no" },
        or_dash(m.pid.map(|p| p.to_string())),
        or_dash(m.restarts.map(|r| r.to_string())),
        or_dash(m.uptime_seconds.map(metrics::duration)),
        or_dash(cpu.map(|c| format!("{c:.1}"))),
        or_dash(m.rss_bytes.map(metrics::bytes)),
    )
}

/// `soar logs` with `-f`, `--since`, `--grep` or `--json`: every host of the
/// environment, each line prefixed with its host when there are several.
pub async fn logs(config: Option<&Path>, a: LogsFollow, out: &Reporter) -> anyhow::Result<i32> {
    let stop = stop_signal()?;
    let ws = Workspace::open(config, out.clone())?;
    let env = ws.environment(a.env.as_deref())?;
    let all = services(&ws, env).await?;
    if all.is_empty() {
        anyhow::bail!(
            "no logs for {} in {} on a host: has it been deployed? (`soar logs` without -f/--since/--grep shows what the provider keeps)",
            env.deploy.service,
            env.name
        );
    }
    let prefix = all.len() > 1;
    let start = Start {
        lines: a.lines,
        since: a.since,
        follow: a.follow,
    };
    let (tx, mut rx) = mpsc::channel::<Line>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for svc in all {
        tasks.spawn(follow::follow(svc, start, tx.clone()));
    }
    drop(tx);
    tokio::pin!(stop);
    let mut failed = None;
    let mut ended = |done: Result<anyhow::Result<()>, tokio::task::JoinError>| match done {
        // Following goes on from the other hosts; the user is told.
        Ok(Err(e)) if a.follow => out.warn(&format!("{e:#}")),
        Ok(Err(e)) => {
            failed.get_or_insert(e);
        }
        _ => {}
    };
    loop {
        tokio::select! {
            _ = &mut stop => {
                tasks.abort_all();
                return Ok(0);
            }
            line = rx.recv() => {
                let Some(line) = line else { break };
                if a.grep.as_deref().is_some_and(|g| !line.line.contains(g)) {
                    continue;
                }
                out.emit(&Event::LogLine(value(&line)));
                let shown = if prefix { format!("[{}] {}\n", line.host, line.line) } else { format!("{}\n", line.line) };
                out.print_raw(&shown);
            }
            Some(done) = tasks.join_next() => ended(done),
        }
    }
    // Every follower has ended (their senders are gone): collect why.
    while let Some(done) = tasks.join_next().await {
        ended(done);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}
