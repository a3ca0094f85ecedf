//! Putting a release on a host and keeping the service healthy: the one
//! rollout, written once over a [`Transport`] and a [`ServiceManager`].
//!
//! This is a host feature rather than an `installer` plugin world: the host
//! already holds the SSH keys and the artifact bytes, the steps are the same
//! for every provider (a droplet and a spot instance are both "a Linux host
//! reached over SSH"), and keeping them here means a plugin never needs to
//! stream a 100 MB binary or see a secret env file. Providers that need
//! something special still have the `ssh` import.
//!
//! Layout on a host, under the service root:
//! ```text
//! releases/<id>/        one directory per release (.soar-digest inside)
//! current -> releases/<id>   switched atomically (ln -sfn + mv -T)
//! shared/env            the service environment, mode 0600
//! logs/                 service output (local supervisor)
//! .soar-lock            who is deploying, while they are
//! ```
//!
//! Docker artifacts use the same layout and the same steps: a release
//! directory holds the image archive (or build context), and the service
//! manager is the host's Docker engine instead of systemd ([`docker`]).
//! [`Manager`] is whichever of the two runs a service on an SSH host.

pub mod docker;
pub mod env_file;
pub mod local;
pub mod proxy;
pub mod registry;
pub mod service;
pub mod ssh;
mod survey;
pub mod switch;
pub mod systemd;
pub mod transport;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use self::docker::Docker;
use self::service::{ServiceManager, ServiceSpec};
use self::ssh::SshTransport;
use self::systemd::Systemd;
use self::transport::Transport;
use crate::artifact::{ArtifactSource, Kind};
use crate::config::Switch;
use crate::shell::quote;

/// How long a housekeeping command may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The health check a release must pass.
#[derive(Debug, Clone)]
pub struct Health {
    /// The path probed on the service's port (`/health` by default); any
    /// 2xx answer counts as healthy.
    pub path: String,
    /// Overall deadline for the release to become healthy.
    pub timeout: Duration,
    /// Pause between attempts.
    pub interval: Duration,
    /// Most attempts.
    pub retries: u32,
}

/// One release to roll out.
pub struct Release<'a> {
    /// Directory name under `releases/` (sortable by time).
    pub id: String,
    /// The bytes to put on the host.
    pub artifact: &'a ArtifactSource,
    /// How the artifact runs: it decides unpacking, file modes and the
    /// service manager.
    pub kind: Kind,
    /// The service environment (plain vars and resolved secrets).
    pub env: Vec<(String, String)>,
    /// The check the release must pass before the rollout succeeds.
    pub health: Health,
    /// Releases kept on the host (older ones are pruned).
    pub keep: u32,
    /// For tarballs: the setup script to run after extraction, if present.
    pub setup: Option<String>,
    /// How the release takes over from the running one ([`switch`]).
    pub switch: Switch,
}

/// What a rollout did, phase by phase.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The release directory now current.
    pub release: String,
    /// The release that was current before, if any.
    pub previous: Option<String>,
    /// Bytes transferred (0 when the release was already on the host).
    pub bytes_sent: u64,
    /// `(phase, duration)` in order: transfer, start, verify-health.
    pub phases: Vec<(&'static str, Duration)>,
    /// The health check's last answer.
    pub health: String,
}

/// Why a rollout failed, and what state the host is in.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What failed, for the user (the error's `Display`).
    pub message: String,
    /// The previous release was switched back in and restarted.
    pub rolled_back: bool,
    /// Phases completed before the failure.
    pub phases: Vec<(&'static str, Duration)>,
}

/// The command that starts a release of `kind` (run inside `current`).
/// Empty for a docker image: the image says what runs, and the service
/// manager is the Docker engine, which runs no command line of ours.
pub fn start_command(
    kind: Kind,
    artifact: &ArtifactSource,
    configured: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(cmd) = configured {
        return Ok(cmd.to_string());
    }
    match kind {
        Kind::Docker => Ok(String::new()),
        Kind::Binary => {
            let files = artifact.describe().files;
            let [file] = files.as_slice() else {
                anyhow::bail!(
                    "a binary artifact is one file; this one has {}: set `artifact.command` to say which to run",
                    files.len()
                );
            };
            Ok(format!("./{}", quote(&file.path)?))
        }
        Kind::Script | Kind::Tarball => {
            anyhow::bail!(
                "set `artifact.command` to say how to run this artifact (for example `python3 app.py`)"
            )
        }
        Kind::Static => anyhow::bail!(
            "static sites are served by Cloudflare Pages; to run one locally set `artifact.command` (for example `python3 -m http.server $PORT`)"
        ),
    }
}

/// Take the host's deploy lock, or say who holds it. One round trip:
/// create the root, drop the lock when forced, take it or print who holds
/// it (exit 3: the root could not be created).
pub async fn lock<T: Transport>(t: &T, root: &str, who: &str, force: bool) -> anyhow::Result<()> {
    let file = format!("{root}/.soar-lock");
    let f = quote(&file)?;
    let take = format!(
        "mkdir -p {r} || exit 3; {clear}if (set -C; printf '%s\\n' {who} > {f}) 2>/dev/null; then exit 0; fi; cat {f}; exit 1",
        r = quote(root)?,
        who = quote(who)?,
        clear = if force {
            format!("rm -f {f}; ")
        } else {
            String::new()
        },
    );
    let out = t.exec(&take, STEP_TIMEOUT).await?;
    match out.status {
        0 => Ok(()),
        3 => out.check("creating the service root").map(|_| ()),
        _ => anyhow::bail!(
            "{} is being deployed by someone else: {} holds {file}. If that deploy died, re-run with --force-unlock",
            t.describe(),
            out.stdout.trim()
        ),
    }
}

/// Release the host's deploy lock.
pub async fn unlock<T: Transport>(t: &T, root: &str) -> anyhow::Result<()> {
    t.exec(
        &format!("rm -f {}", quote(&format!("{root}/.soar-lock"))?),
        STEP_TIMEOUT,
    )
    .await?;
    Ok(())
}

/// Roll `release` out: transfer (or reuse), switch, start, verify health;
/// on an unhealthy release switch back to the previous one. With the
/// proxy switch, [`switch::deploy`] does it without dropping a request.
pub async fn deploy<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    release: &Release<'_>,
) -> Result<Report, Failure> {
    if let Switch::Proxy(settings) = &release.switch {
        return switch::deploy(t, svc, spec, release, settings).await;
    }
    let mut report = Report::default();
    let fail =
        |message: String, rolled_back: bool, phases: &Vec<(&'static str, Duration)>| Failure {
            message,
            rolled_back,
            phases: phases.clone(),
        };
    let root = spec.root.as_str();

    let env = match release.kind {
        Kind::Docker => docker::render_env(&release.env),
        _ => env_file::render(&release.env),
    }
    .map_err(|e| fail(format!("{e:#}"), false, &report.phases))?;

    let started = Instant::now();
    let transferred = async {
        let host = survey::survey(t, root, release.artifact.digest()).await?;
        let (dir, sent) = match &host.found {
            Some(found) => (found.clone(), 0),
            None => upload(t, root, release).await?,
        };
        anyhow::Ok((host, dir, sent))
    };
    let (host, dir, sent) = transferred.await.map_err(|e| {
        fail(
            format!("transfer to {} failed: {e:#}", t.describe()),
            false,
            &report.phases,
        )
    })?;
    report.bytes_sent = sent;
    report.release = dir.clone();
    report.phases.push(("transfer", started.elapsed()));

    let started = Instant::now();
    report.previous = host.current.clone().filter(|p| p != &dir);
    // What already runs, started the same way and healthy, is left alone.
    let stamp = survey::stamp(&dir, &env, spec);
    if host.current.as_deref() == Some(dir.as_str())
        && host.started.as_deref() == Some(stamp.as_str())
        && let Some(answer) = survey::still_serving(t, svc, spec, &release.health).await
    {
        report.health = answer;
        report.phases.push(("verify-health", started.elapsed()));
        return Ok(report);
    }
    let switched = async {
        t.put_bytes(env.as_bytes(), &format!("{root}/shared/env"), 0o600)
            .await?;
        switch(t, root, &dir).await?;
        switch::retire(t, svc, spec).await?;
        svc.restart(spec).await
    }
    .await;
    if let Err(e) = switched {
        let rolled_back = restore(t, svc, spec, report.previous.as_deref(), &release.health).await;
        return Err(fail(
            format!("starting release {dir} on {} failed: {e:#}", t.describe()),
            rolled_back,
            &report.phases,
        ));
    }
    report.phases.push(("start", started.elapsed()));

    let started = Instant::now();
    match check_health(t, svc, spec, &release.health).await {
        Ok(answer) => {
            report.health = answer;
            report.phases.push(("verify-health", started.elapsed()));
        }
        Err(why) => {
            report.phases.push(("verify-health", started.elapsed()));
            let logs = svc.logs(spec, 20).await.unwrap_or_default();
            let rolled_back =
                restore(t, svc, spec, report.previous.as_deref(), &release.health).await;
            let mut message = format!("release {dir} on {} is unhealthy: {why}", t.describe());
            if !logs.trim().is_empty() {
                message.push_str(&format!(
                    "\nlast lines of {}'s log:\n{}",
                    spec.name,
                    indent(&logs)
                ));
            }
            message.push_str(&match (&report.previous, rolled_back) {
                (Some(prev), true) => format!("\nrolled back to {prev}, which is running again"),
                (Some(prev), false) => {
                    format!("\nrolling back to {prev} failed too: check the host")
                }
                (None, _) => {
                    "\nthere is no previous release to roll back to; the service is stopped"
                        .to_string()
                }
            });
            if report.previous.is_none() {
                let _ = svc.stop(spec).await;
            }
            return Err(fail(message, rolled_back, &report.phases));
        }
    }
    let mut listed = host.releases;
    listed.push(dir.clone());
    let settled = async {
        let doomed = doomed(root, release.keep, &dir, report.previous.as_deref(), listed)?;
        let mut command = survey::record_stamp(root, &stamp)?;
        if !doomed.is_empty() {
            command.push_str(&format!("; rm -rf {}", doomed.join(" ")));
        }
        t.exec(&command, STEP_TIMEOUT)
            .await?
            .check("recording the start and removing old releases")?;
        anyhow::Ok(())
    };
    // Bookkeeping: failing it costs a restart or some disk next time.
    if let Err(e) = settled.await {
        tracing::warn!("after the start on {}: {e:#}", t.describe());
    }
    Ok(report)
}

/// Switch `current` to an existing release and restart; verify its health.
/// With the proxy switch, the release takes over as a new one would
/// ([`switch::switch_to`]).
pub async fn switch_to<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    dir: &str,
    health: &Health,
    mode: &Switch,
) -> anyhow::Result<String> {
    let exists = t
        .exec(
            &format!(
                "test -d {}",
                quote(&format!("{}/releases/{dir}", spec.root))?
            ),
            STEP_TIMEOUT,
        )
        .await?;
    if exists.status != 0 {
        anyhow::bail!(
            "release {dir} is not on {} (it may have been pruned)",
            t.describe()
        );
    }
    if let Switch::Proxy(settings) = mode {
        return switch::switch_to(t, svc, spec, dir, health, settings).await;
    }
    switch(t, &spec.root, dir).await?;
    svc.restart(spec).await?;
    check_health(t, svc, spec, health)
        .await
        .map_err(anyhow::Error::msg)
}

/// The release `current` points at.
pub async fn current<T: Transport>(t: &T, root: &str) -> anyhow::Result<Option<String>> {
    let out = t
        .exec(
            &format!("readlink {}", quote(&format!("{root}/current"))?),
            STEP_TIMEOUT,
        )
        .await?;
    Ok((out.status == 0)
        .then(|| {
            // `../releases/<id>` in a colour of the proxy switch.
            out.stdout
                .trim()
                .trim_start_matches("../")
                .trim_start_matches("releases/")
                .to_string()
        })
        .filter(|s| !s.is_empty()))
}

/// Stop the service (and the proxy switch's, if any) and remove
/// everything under its root.
pub async fn remove<T: Transport, S: ServiceManager + Clone>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
) -> anyhow::Result<()> {
    svc.stop(spec).await?;
    switch::stop_all(t, svc, spec).await?;
    t.exec(&format!("rm -rf {}", quote(&spec.root)?), STEP_TIMEOUT)
        .await?
        .check("removing the service root")?;
    Ok(())
}

/// Upload the artifact into a new release directory, or find one that
/// already holds the same digest. Returns the directory and bytes sent.
async fn transfer<T: Transport>(
    t: &T,
    root: &str,
    release: &Release<'_>,
) -> anyhow::Result<(String, u64)> {
    match survey::survey(t, root, release.artifact.digest())
        .await?
        .found
    {
        Some(existing) => Ok((existing, 0)),
        None => upload(t, root, release).await,
    }
}

/// Upload the artifact into a new release directory (`.partial` until it
/// is complete). Returns the directory and bytes sent.
async fn upload<T: Transport>(
    t: &T,
    root: &str,
    release: &Release<'_>,
) -> anyhow::Result<(String, u64)> {
    let digest = release.artifact.digest();
    let partial = format!("{root}/releases/{}.partial", release.id);
    let final_dir = format!("{root}/releases/{}", release.id);
    let listing = release.artifact.describe();
    let mut dirs: Vec<String> = listing
        .files
        .iter()
        .filter_map(|f| {
            Path::new(&f.path)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .filter(|p| !p.is_empty())
        .map(|p| format!("{partial}/{p}"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.push(partial.clone());
    let mkdirs = dirs
        .iter()
        .map(|d| quote(d))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    t.exec(
        &format!(
            // Partial releases of killed deploys go too: the host lock is
            // held, so nothing else is writing one.
            "rm -rf {} {}/releases/*.partial && mkdir -p {mkdirs} {}/shared {}/logs",
            quote(&partial)?,
            quote(root)?,
            quote(root)?,
            quote(root)?
        ),
        STEP_TIMEOUT,
    )
    .await?
    .check("preparing the release directory")?;
    // The release's size up front, so an upload bar's length is the whole
    // release from its first byte (bars draw only for bytes really sent:
    // nothing for the local transport).
    let planned: u64 = listing.files.iter().map(|f| f.size).sum();
    let _bar = crate::report::progress::uploads().plan(&t.describe(), planned);
    let mut sent = 0;
    for file in &listing.files {
        let mode = if release.kind == Kind::Binary
            || is_executable(&release.artifact.path_of(&file.path)?)
        {
            0o755
        } else {
            0o644
        };
        sent += t
            .put_file(
                &release.artifact.path_of(&file.path)?,
                &format!("{partial}/{}", file.path),
                mode,
            )
            .await?;
    }
    if release.kind == Kind::Tarball {
        let [tarball] = listing.files.as_slice() else {
            anyhow::bail!("a tarball artifact is one .tar.gz file");
        };
        let name = quote(&tarball.path)?;
        t.exec(
            &format!("cd {} && tar -xzf {name} && rm -f {name}", quote(&partial)?),
            STEP_TIMEOUT,
        )
        .await?
        .check("extracting the tarball")?;
        let setup = release.setup.clone().unwrap_or_else(|| "setup.sh".into());
        let script = format!(
            "cd {} && if [ -f {s} ]; then sh {s}; fi",
            quote(&partial)?,
            s = quote(&setup)?
        );
        t.exec(&script, Duration::from_secs(600))
            .await?
            .check(&format!("running {setup}"))?;
    }
    // The digest (hex, not secret) is written by the command that moves
    // the release into place: one round trip.
    t.exec(
        &format!(
            "printf '%s' {} > {} && mv {} {}",
            quote(digest)?,
            quote(&format!("{partial}/.soar-digest"))?,
            quote(&partial)?,
            quote(&final_dir)?
        ),
        STEP_TIMEOUT,
    )
    .await?
    .check("completing the release directory")?;
    Ok((release.id.clone(), sent))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Point `current` at `releases/<dir>` atomically.
async fn switch<T: Transport>(t: &T, root: &str, dir: &str) -> anyhow::Result<()> {
    let (new, cur) = (
        format!("{root}/current.soar-new"),
        format!("{root}/current"),
    );
    t.exec(
        &format!(
            "{} && ln -sfn {} {} && mv -Tf {} {}",
            survey::clear_stamp(root)?,
            quote(&format!("releases/{dir}"))?,
            quote(&new)?,
            quote(&new)?,
            quote(&cur)?
        ),
        STEP_TIMEOUT,
    )
    .await?
    .check("switching the current release")?;
    Ok(())
}

/// Switch back to `previous`, restart, and wait for it to pass the health
/// check again; whether that worked.
async fn restore<T: Transport, S: ServiceManager>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    previous: Option<&str>,
    health: &Health,
) -> bool {
    let Some(prev) = previous else { return false };
    switch(t, &spec.root, prev).await.is_ok()
        && svc.restart(spec).await.is_ok()
        && check_health(t, svc, spec, health).await.is_ok()
}

/// Poll the health endpoint until it answers 2xx, within the deadline.
async fn check_health<T: Transport, S: ServiceManager>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    health: &Health,
) -> Result<String, String> {
    let deadline = Instant::now() + health.timeout;
    let mut last = String::from("no answer yet");
    for attempt in 1..=health.retries.max(1) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match t
            .probe_http(spec.port, &health.path, left.min(Duration::from_secs(5)))
            .await
        {
            Ok((status, _)) if (200..300).contains(&status) => {
                return Ok(format!("GET {} answered {status}", health.path));
            }
            Ok((status, body)) => {
                last = format!("GET {} answered {status}: {}", health.path, body.trim())
            }
            Err(e) => last = format!("GET {} on port {}: {e:#}", health.path, spec.port),
        }
        if !svc.is_running(spec).await.unwrap_or(true) && attempt > 1 {
            last.push_str(" (the service is not running)");
        }
        if attempt < health.retries {
            tokio::time::sleep(
                health
                    .interval
                    .min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }
    Err(format!("{last} (after {} s)", health.timeout.as_secs()))
}

/// Remove old releases, keeping the newest `keep` plus current and previous.
async fn prune<T: Transport>(
    t: &T,
    root: &str,
    keep: u32,
    current: &str,
    previous: Option<&str>,
) -> anyhow::Result<()> {
    let out = t
        .exec(
            &format!("ls -1 {}", quote(&format!("{root}/releases"))?),
            STEP_TIMEOUT,
        )
        .await?
        .check("listing releases")?;
    let listed = out.stdout.lines().map(str::to_string).collect();
    let doomed = doomed(root, keep, current, previous, listed)?;
    if !doomed.is_empty() {
        t.exec(&format!("rm -rf {}", doomed.join(" ")), STEP_TIMEOUT)
            .await?
            .check("removing old releases")?;
    }
    Ok(())
}

/// The release directories of `listed` (as `ls` or the survey found them)
/// that go: all but the newest `keep`, never `current` nor `previous`;
/// quoted for the shell.
fn doomed(
    root: &str,
    keep: u32,
    current: &str,
    previous: Option<&str>,
    mut listed: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    listed.retain(|l| !l.ends_with(".partial") && !l.trim().is_empty());
    listed.sort_unstable_by(|a, b| b.cmp(a));
    listed.dedup();
    listed
        .iter()
        .skip(keep.max(1) as usize)
        .filter(|d| *d != current && Some(d.as_str()) != previous)
        .map(|d| Ok(quote(&format!("{root}/releases/{d}"))?))
        .collect()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read a file on the host through the transport (for `soar logs`).
pub async fn tail<T: Transport>(t: &T, path: &str, lines: usize) -> anyhow::Result<String> {
    let out = t
        .exec(&format!("tail -n {lines} {}", quote(path)?), STEP_TIMEOUT)
        .await
        .context("reading logs")?;
    Ok(out.stdout)
}

/// The service manager of an SSH host: systemd for processes, the host's
/// Docker engine for `docker` artifacts. One type, so an SSH target holds
/// either and every command (deploy, status, logs, rollback, destroy) runs
/// the same steps whatever the kind.
#[derive(Clone)]
pub enum Manager {
    /// A systemd unit runs the release's start command.
    Systemd(Systemd),
    /// A container of the release's image, on the host's Docker engine.
    Docker(Docker<SshTransport>),
}

impl ServiceManager for Manager {
    async fn restart(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        match self {
            Manager::Systemd(m) => m.restart(spec).await,
            Manager::Docker(m) => m.restart(spec).await,
        }
    }

    async fn stop(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        match self {
            Manager::Systemd(m) => m.stop(spec).await,
            Manager::Docker(m) => m.stop(spec).await,
        }
    }

    async fn is_running(&self, spec: &ServiceSpec) -> anyhow::Result<bool> {
        match self {
            Manager::Systemd(m) => m.is_running(spec).await,
            Manager::Docker(m) => m.is_running(spec).await,
        }
    }

    async fn logs(&self, spec: &ServiceSpec, lines: usize) -> anyhow::Result<String> {
        match self {
            Manager::Systemd(m) => m.logs(spec, lines).await,
            Manager::Docker(m) => m.logs(spec, lines).await,
        }
    }

    fn beside(&self) -> Self {
        match self {
            Manager::Systemd(m) => Manager::Systemd(m.beside()),
            Manager::Docker(m) => Manager::Docker(m.beside()),
        }
    }
}

impl Manager {
    /// Remove what runs the service, for `soar destroy`: the systemd unit,
    /// or the container and every image of the service. The service root
    /// is removed afterwards by [`remove`].
    pub async fn uninstall(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        match self {
            Manager::Systemd(m) => {
                // The proxy switch's units, where it was used.
                for companion in switch::companions(spec) {
                    m.beside().uninstall(&companion).await?;
                }
                m.uninstall(spec).await
            }
            Manager::Docker(m) => {
                // The proxy switch's colours, where it was used (the proxy
                // itself was stopped by [`remove`]).
                for colour in &switch::companions(spec)[..2] {
                    m.remove_container(colour).await?;
                }
                m.uninstall(spec).await
            }
        }
    }

    /// Housekeeping after a rollout, successful or not: Docker images of
    /// releases no longer on the host are removed (release directories are
    /// pruned by the rollout itself). Nothing for systemd.
    pub async fn tidy(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        match self {
            Manager::Systemd(_) => Ok(()),
            Manager::Docker(m) => m.prune_images(spec).await,
        }
    }
}
