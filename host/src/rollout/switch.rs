//! The `proxy` switch: blue/green releases behind the host's nginx, so a
//! deploy or a rollback drops no request.
//!
//! A host runs two instances of the service, `blue` and `green`, each on a
//! port of its own, and nginx ([`super::proxy`]) on the service's port in
//! front of them. A switch, for a deploy and a rollback alike:
//!
//! 1. starts the release on the colour that is not live, beside the live
//!    one, and health-checks it directly on its own port;
//! 2. only when it is healthy, writes and validates nginx's configuration
//!    for it and reloads nginx gracefully (no restart): new connections go
//!    to the new release from then on;
//! 3. lets the old release finish its requests (until nginx's old workers
//!    exit, at most `drain`), then stops it.
//!
//! An unhealthy release is stopped at step 1 and never receives a request:
//! the live colour was never touched, so "rolling back" needs no switch.
//! `soar rollback` is the same switch in reverse (the previous release
//! starts on the idle colour).
//!
//! Layout under the service root, beside the usual one ([`super`]):
//! ```text
//! blue/  green/      a service root each: current -> ../releases/<id>,
//!                    shared/env (the service's, with the colour's PORT)
//! proxy/             nginx's files ([`super::proxy`]); proxy/live names
//!                    the colour traffic goes to
//! current            the live release, as with the restart switch
//! ```
//! The instances and the proxy are services of the host's manager
//! (`<service>-blue`, `-green`, `-proxy`): systemd units over SSH, Soar's
//! supervisor on this machine. A docker release's colours are containers
//! (`soar-<service>-blue`, [`super::docker`]) and its nginx, which has no
//! systemd unit there, a detached process Soar starts and stops
//! ([`Detached`]). The first proxied deploy on a host stops
//! the restart-switch service, which holds the port the proxy takes: that
//! one switch has a moment without a listener.

use std::time::Instant;

use super::proxy::Nginx;
use super::service::{ServiceManager, ServiceSpec};
use super::transport::Transport;
use super::{Failure, Health, Release, Report, STEP_TIMEOUT};
use crate::artifact::Kind;
use crate::config::{ProxySwitch, Switch};
use crate::shell::quote;

/// One of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Blue,
    Green,
}

impl Colour {
    fn name(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    fn other(self) -> Self {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }
}

/// The blue/green pair of one service on one host.
struct Pair<'a> {
    spec: &'a ServiceSpec,
    /// Blue's port, green's port.
    ports: [u16; 2],
}

impl<'a> Pair<'a> {
    fn new(spec: &'a ServiceSpec, settings: &ProxySwitch) -> anyhow::Result<Self> {
        let ports = match settings.ports {
            Some(p) => p,
            None => match (spec.port.checked_add(1), spec.port.checked_add(2)) {
                (Some(a), Some(b)) => [a, b],
                _ => anyhow::bail!(
                    "the service port {} leaves no room for the blue and green ports after it: \
                     set `proxy = {{ ports = [8001, 8002] }}` in [deploy]",
                    spec.port
                ),
            },
        };
        Ok(Self { spec, ports })
    }

    /// The colour's instance, as its service manager sees it.
    fn spec(&self, c: Colour) -> ServiceSpec {
        ServiceSpec {
            name: format!("{}-{}", self.spec.name, c.name()),
            root: format!("{}/{}", self.spec.root, c.name()),
            command: self.spec.command.clone(),
            port: self.ports[c as usize],
        }
    }
}

/// The service whose colour `spec` is, when it is one ([`Pair::spec`]:
/// `<service>-blue` under `<root>/blue`); `None` for any other service.
pub fn colour_of(spec: &ServiceSpec) -> Option<ServiceSpec> {
    [Colour::Blue, Colour::Green].into_iter().find_map(|c| {
        let name = spec.name.strip_suffix(c.name())?.strip_suffix('-')?;
        let root = spec.root.strip_suffix(c.name())?.strip_suffix('/')?;
        root.ends_with(&format!("/{name}")).then(|| ServiceSpec {
            name: name.to_string(),
            root: root.to_string(),
            command: spec.command.clone(),
            port: spec.port,
        })
    })
}

/// A process Soar runs beside a service on a host where no service
/// manager of the host can: the `proxy` switch's nginx beside docker
/// containers (the docker target has no systemd settings, and the proxy
/// must not depend on an image that may not be pullable). Started with
/// `setsid nohup` in the spec's `current`, output appended to
/// `logs/service.log`, its pid in `soar.pid`. It is not restarted should
/// it die or the host reboot: the next deploy starts it again (`soar host
/// setup` is where a permanent unit belongs).
#[derive(Debug, Clone)]
pub struct Detached<T> {
    /// Where the process runs.
    pub transport: T,
}

impl<T: Transport> Detached<T> {
    /// Shell words that set `$p` to the recorded pid when that process
    /// still runs this spec's command (its root in its command line, so a
    /// recycled pid is never signalled); they fail otherwise.
    fn alive(spec: &ServiceSpec) -> anyhow::Result<String> {
        Ok(format!(
            "p=$(cat {pid} 2>/dev/null) && [ -n \"$p\" ] && \
             tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline | grep -qF {root}",
            pid = quote(&format!("{}/soar.pid", spec.root))?,
            root = quote(&spec.root)?,
        ))
    }
}

impl<T: Transport> ServiceManager for Detached<T> {
    async fn restart(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        self.stop(spec).await?;
        let r = quote(&spec.root)?;
        let inner = format!(
            "echo $$ > {}; exec {}",
            quote(&format!("{}/soar.pid", spec.root))?,
            spec.command
        );
        self.transport
            .exec(
                &format!(
                    "mkdir -p {r}/logs && cd {r}/current && \
                     {{ nohup setsid sh -c {inner} </dev/null >>{r}/logs/service.log 2>&1 & }}",
                    inner = quote(&inner)?
                ),
                STEP_TIMEOUT,
            )
            .await?
            .check(&format!("starting {}", spec.name))?;
        Ok(())
    }

    async fn stop(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let script = format!(
            "if {alive}; then kill -TERM $p; i=0; \
             while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             kill -0 $p 2>/dev/null && kill -KILL $p; fi; rm -f {pid}",
            alive = Self::alive(spec)?,
            pid = quote(&format!("{}/soar.pid", spec.root))?,
        );
        self.transport
            .exec(&script, STEP_TIMEOUT)
            .await?
            .check(&format!("stopping {}", spec.name))?;
        Ok(())
    }

    async fn is_running(&self, spec: &ServiceSpec) -> anyhow::Result<bool> {
        let out = self
            .transport
            .exec(&Self::alive(spec)?, STEP_TIMEOUT)
            .await?;
        Ok(out.status == 0)
    }

    async fn logs(&self, spec: &ServiceSpec, lines: usize) -> anyhow::Result<String> {
        super::tail(
            &self.transport,
            &format!("{}/logs/service.log", spec.root),
            lines,
        )
        .await
    }
}

/// Why a switch stopped, and whether the previous release still serves.
struct Refused {
    message: String,
    previous_serves: bool,
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Self {
            message: format!("{e:#}"),
            previous_serves: true,
        }
    }
}

/// Roll `release` out with the proxy switch: transfer, then [`takeover`].
pub(super) async fn deploy<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    release: &Release<'_>,
    settings: &ProxySwitch,
) -> Result<Report, Failure> {
    let mut report = Report::default();
    let fail = |message: String, rolled_back: bool, report: &Report| Failure {
        message,
        rolled_back,
        phases: report.phases.clone(),
    };
    let root = spec.root.as_str();
    let started = Instant::now();
    let (dir, sent) = super::transfer(t, root, release).await.map_err(|e| {
        fail(
            format!("transfer to {} failed: {e:#}", t.describe()),
            false,
            &report,
        )
    })?;
    report.bytes_sent = sent;
    report.release = dir.clone();
    report.phases.push(("transfer", started.elapsed()));
    report.previous = super::current(t, root)
        .await
        .ok()
        .flatten()
        .filter(|p| p != &dir);
    let env = match release.kind {
        Kind::Docker => super::docker::render_env(&release.env),
        _ => super::env_file::render(&release.env),
    }
    .map_err(|e| fail(format!("{e:#}"), false, &report))?;
    if let Err(e) = t
        .put_bytes(env.as_bytes(), &format!("{root}/shared/env"), 0o600)
        .await
    {
        return Err(fail(format!("{e:#}"), false, &report));
    }
    match takeover(
        t,
        svc,
        spec,
        &dir,
        &release.health,
        settings,
        &mut report.phases,
    )
    .await
    {
        Ok(answer) => report.health = answer,
        Err(r) => {
            let rolled_back = r.previous_serves && report.previous.is_some();
            return Err(fail(r.message, rolled_back, &report));
        }
    }
    if let Err(e) = super::prune(t, root, release.keep, &dir, report.previous.as_deref()).await {
        tracing::warn!("pruning old releases on {}: {e:#}", t.describe());
    }
    Ok(report)
}

/// `soar rollback` with the proxy switch: the release `dir`, already on
/// the host, takes over as a new one would.
pub(super) async fn switch_to<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    dir: &str,
    health: &Health,
    settings: &ProxySwitch,
) -> anyhow::Result<String> {
    takeover(t, svc, spec, dir, health, settings, &mut Vec::new())
        .await
        .map_err(|r| anyhow::anyhow!(r.message))
}

/// Start `dir` on the idle colour, check it, move traffic to it, drain and
/// stop the old colour. Phases are appended as they complete.
async fn takeover<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    dir: &str,
    health: &Health,
    settings: &ProxySwitch,
    phases: &mut Vec<(&'static str, std::time::Duration)>,
) -> Result<String, Refused> {
    let nginx = Nginx::locate(t, spec).await?;
    let pair = Pair::new(spec, settings)?;
    let live = live_colour(t, &nginx).await?;
    let next = live.map_or(Colour::Blue, Colour::other);
    let next_spec = pair.spec(next);

    let started = Instant::now();
    let up = async {
        prepare(t, spec, &next_spec, dir).await?;
        svc.restart(&next_spec).await
    }
    .await;
    if let Err(e) = up {
        let _ = svc.stop(&next_spec).await;
        return Err(Refused {
            message: format!(
                "starting release {dir} as {} on {} failed: {e:#}",
                next_spec.name,
                t.describe()
            ),
            previous_serves: true,
        });
    }
    phases.push(("start", started.elapsed()));

    let started = Instant::now();
    let answer = match super::check_health(t, svc, &next_spec, health).await {
        Ok(answer) => answer,
        Err(why) => {
            let logs = svc.logs(&next_spec, 20).await.unwrap_or_default();
            let _ = svc.stop(&next_spec).await;
            let mut message = format!("release {dir} on {} is unhealthy: {why}", t.describe());
            if !logs.trim().is_empty() {
                message.push_str(&format!(
                    "\nlast lines of {}'s log:\n{}",
                    next_spec.name,
                    super::indent(&logs)
                ));
            }
            message.push_str(&format!(
                "\nit was stopped without receiving a request; {}",
                match live {
                    Some(c) => format!("the live release ({}) kept serving", c.name()),
                    None => "nothing else was serving through the proxy".to_string(),
                }
            ));
            return Err(Refused {
                message,
                previous_serves: live.is_some(),
            });
        }
    };
    phases.push(("verify-health", started.elapsed()));

    let started = Instant::now();
    let old_workers = match move_traffic(t, svc, spec, &nginx, &next_spec, health).await {
        Ok(old) => old,
        Err(e) => {
            let _ = svc.stop(&next_spec).await;
            return Err(Refused {
                message: format!("{e:#}"),
                previous_serves: live.is_some(),
            });
        }
    };
    record_live(t, spec, &nginx, next, dir).await?;
    phases.push(("switch", started.elapsed()));

    let started = Instant::now();
    if let Some(old) = live {
        let drained = nginx.drain(t, &old_workers, settings.drain).await?;
        tracing::debug!(
            "{}: nginx's old workers {} after {} ms",
            t.describe(),
            if drained { "exited" } else { "were still busy" },
            started.elapsed().as_millis()
        );
        if !drained {
            tracing::warn!(
                "{}: requests to the old release were still running after the {} s drain; stopping it anyway",
                t.describe(),
                settings.drain.as_secs()
            );
        }
        svc.stop(&pair.spec(old)).await?;
    }
    phases.push(("drain", started.elapsed()));
    Ok(format!("{answer}; traffic moved to {}", next.name()))
}

/// The instance that serves `spec` now, for `soar logs`: under the proxy
/// switch the live colour's (as the proxy's record on the host says), else
/// `spec` itself, as it is before the first proxied deploy too. Only the
/// name and root of the answer are the service manager's to use for logs.
pub async fn serving<T: Transport>(
    t: &T,
    spec: &ServiceSpec,
    mode: &Switch,
) -> anyhow::Result<ServiceSpec> {
    let Switch::Proxy(settings) = mode else {
        return Ok(spec.clone());
    };
    let nginx = Nginx::locate(t, spec).await?;
    Ok(match live_colour(t, &nginx).await? {
        Some(c) => Pair::new(spec, settings)?.spec(c),
        None => spec.clone(),
    })
}

/// The colour traffic goes to now, from `proxy/live`.
async fn live_colour<T: Transport>(t: &T, nginx: &Nginx) -> anyhow::Result<Option<Colour>> {
    let out = t
        .exec(
            &format!("cat {} 2>/dev/null", quote(&format!("{}/live", nginx.dir))?),
            STEP_TIMEOUT,
        )
        .await?;
    Ok(match out.stdout.trim() {
        "blue" => Some(Colour::Blue),
        "green" => Some(Colour::Green),
        _ => None,
    })
}

/// Give the colour's root its release and the service's environment with
/// the colour's own `PORT` (the later line wins, for systemd and Docker's
/// `--env-file` too; digits need no quotes in either format).
async fn prepare<T: Transport>(
    t: &T,
    spec: &ServiceSpec,
    colour: &ServiceSpec,
    dir: &str,
) -> anyhow::Result<()> {
    let c = quote(&colour.root)?;
    let shared = quote(&format!("{}/shared/env", spec.root))?;
    let link = quote(&format!("../releases/{dir}"))?;
    t.exec(
        &format!(
            "set -e; umask 077; mkdir -p {c}/shared {c}/logs; \
             {{ cat {shared}; printf 'PORT=%s\\n' {port}; }} > {c}/shared/env.soar-tmp; \
             mv -f {c}/shared/env.soar-tmp {c}/shared/env; \
             ln -sfn {link} {c}/current.soar-new; mv -Tf {c}/current.soar-new {c}/current",
            port = colour.port
        ),
        STEP_TIMEOUT,
    )
    .await?
    .check(&format!("preparing {}", colour.name))?;
    Ok(())
}

/// Point nginx at `next`: a graceful reload when it runs (the old workers'
/// pids are returned), else its first start, which first stops the
/// restart switch's service holding the port.
async fn move_traffic<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    nginx: &Nginx,
    next: &ServiceSpec,
    health: &Health,
) -> anyhow::Result<Vec<u32>> {
    nginx.write_config(t, next.port).await?;
    if nginx.is_running(t).await? {
        return nginx.reload(t).await;
    }
    svc.stop(spec).await?;
    let manager = svc.beside();
    let proxy = nginx.spec();
    manager.restart(&proxy).await?;
    if let Err(why) = super::check_health(t, &manager, &proxy, health).await {
        anyhow::bail!(
            "the proxy on {} did not pass requests to {} on port {}: {why}{}",
            t.describe(),
            next.name,
            next.port,
            nginx.error_log_tail(t).await
        );
    }
    Ok(Vec::new())
}

/// After the switch: `proxy/live`, `current` (what status and rollback
/// read) and `service.json` (the local target's service definition, which
/// `soar rollback` reads back).
async fn record_live<T: Transport>(
    t: &T,
    spec: &ServiceSpec,
    nginx: &Nginx,
    live: Colour,
    dir: &str,
) -> anyhow::Result<()> {
    t.put_bytes(
        format!("{}\n", live.name()).as_bytes(),
        &format!("{}/live", nginx.dir),
        0o644,
    )
    .await?;
    super::switch(t, &spec.root, dir).await?;
    if !spec.command.is_empty() {
        let json = serde_json::to_vec_pretty(spec)?;
        t.put_bytes(
            &json,
            &super::service::spec_file(std::path::Path::new(&spec.root)).to_string_lossy(),
            0o644,
        )
        .await?;
    }
    Ok(())
}

/// The services the proxy switch adds beside `spec` (blue, green, the
/// proxy), with what stops or removes them (not what starts them).
pub(super) fn companions(spec: &ServiceSpec) -> [ServiceSpec; 3] {
    let pair = Pair {
        spec,
        ports: [0, 0],
    };
    [
        pair.spec(Colour::Blue),
        pair.spec(Colour::Green),
        ServiceSpec {
            name: format!("{}-proxy", spec.name),
            root: format!("{}/proxy", spec.root),
            command: String::new(),
            port: spec.port,
        },
    ]
}

/// Stop both colours and the proxy, for `soar destroy`; nothing to do
/// when the service never used the proxy switch.
pub(super) async fn stop_all<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
) -> anyhow::Result<()> {
    let marker = quote(&format!("{}/proxy", spec.root))?;
    if t.exec(&format!("test -d {marker}"), STEP_TIMEOUT)
        .await?
        .status
        != 0
    {
        return Ok(());
    }
    let [blue, green, proxy] = companions(spec);
    svc.beside().stop(&proxy).await?;
    svc.stop(&blue).await?;
    svc.stop(&green).await?;
    Ok(())
}

/// Leave the proxy switch before a restart-switch release starts: stop
/// the proxy (which holds the service's port) and both colours, and
/// remove their files, so the service can take its port back. One round
/// trip when the proxy switch was never used.
pub(super) async fn retire<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
) -> anyhow::Result<()> {
    let [blue, green, proxy] = companions(spec);
    let dir = quote(&proxy.root)?;
    if t.exec(&format!("test -d {dir}"), STEP_TIMEOUT)
        .await?
        .status
        != 0
    {
        return Ok(());
    }
    svc.beside().stop(&proxy).await?;
    svc.stop(&blue).await?;
    svc.stop(&green).await?;
    t.exec(
        &format!(
            "rm -rf {dir} {} {}",
            quote(&blue.root)?,
            quote(&green.root)?
        ),
        STEP_TIMEOUT,
    )
    .await?
    .check("removing the proxy switch's files")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn colours_have_their_own_root_name_and_port() {
        let spec = ServiceSpec {
            name: "web".into(),
            root: "/opt/web".into(),
            command: "./web".into(),
            port: 8080,
        };
        let defaults = ProxySwitch {
            ports: None,
            drain: Duration::from_secs(1),
        };
        let pair = Pair::new(&spec, &defaults).unwrap();
        let green = pair.spec(Colour::Blue.other());
        assert_eq!(
            (green.name.as_str(), green.root.as_str(), green.port),
            ("web-green", "/opt/web/green", 8082)
        );
        assert_eq!(pair.spec(Colour::Blue).port, 8081);
        let high = ServiceSpec {
            port: 65535,
            ..spec.clone()
        };
        assert!(Pair::new(&high, &defaults).is_err());
    }

    #[test]
    fn a_colour_knows_its_service_and_nothing_else_is_one() {
        let spec = ServiceSpec {
            name: "web".into(),
            root: "/srv/opt/web".into(),
            command: String::new(),
            port: 8080,
        };
        let pair = Pair {
            spec: &spec,
            ports: [8081, 8082],
        };
        for c in [Colour::Blue, Colour::Green] {
            let base = colour_of(&pair.spec(c)).unwrap();
            assert_eq!(
                (base.name.as_str(), base.root.as_str()),
                ("web", "/srv/opt/web")
            );
        }
        assert!(colour_of(&spec).is_none());
        // A service merely named like a colour, in its own root.
        let named = ServiceSpec {
            name: "web-blue".into(),
            root: "/srv/opt/web-blue".into(),
            ..spec.clone()
        };
        assert!(colour_of(&named).is_none());
    }
}
