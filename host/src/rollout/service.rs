//! Keeping a release running: the service manager the rollout talks to.
//!
//! On remote hosts that is systemd; on this machine it is Soar's own
//! supervisor (`soar __supervise`), a small detached process that runs the
//! current release, restarts it when it exits (like `Restart=always`) and
//! appends its output to a log file. Both present the same interface.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What runs, and where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service name (identity rule applies).
    pub name: String,
    /// The service's root: `releases/`, `current`, `shared/env`, `logs/`.
    pub root: String,
    /// Shell line run inside `<root>/current`.
    pub command: String,
    /// The port the service listens on (also exported as `PORT`).
    pub port: u16,
}

/// Starts, stops and inspects a service.
pub trait ServiceManager: Send + Sync {
    /// Install (or update) the service definition and (re)start it on the
    /// release `current` points at.
    fn restart(&self, spec: &ServiceSpec) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stop it; succeeds when it was not running.
    fn stop(&self, spec: &ServiceSpec) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Whether it is running now.
    fn is_running(&self, spec: &ServiceSpec) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Its last `lines` lines of output.
    fn logs(
        &self,
        spec: &ServiceSpec,
        lines: usize,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// The manager for a process Soar runs beside the service, such as the
    /// `proxy` switch's nginx: it runs as the deploying user, who owns its
    /// files and signals it, rather than as the service's own user.
    fn beside(&self) -> Self
    where
        Self: Clone,
    {
        self.clone()
    }
}

/// Soar's own supervisor, for the local target.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// The `soar` executable that runs `__supervise`.
    pub exe: PathBuf,
}

impl Supervisor {
    /// A supervisor run by this very executable.
    pub fn current() -> anyhow::Result<Self> {
        Ok(Self {
            exe: std::env::current_exe().context("locating the soar executable")?,
        })
    }
}

/// Files of a supervised service under its root.
pub fn spec_file(root: &Path) -> PathBuf {
    root.join("service.json")
}
/// The supervisor's pid file.
pub fn pid_file(root: &Path) -> PathBuf {
    root.join("supervisor.pid")
}
/// The service's log file.
pub fn log_file(root: &Path) -> PathBuf {
    root.join("logs").join("service.log")
}

/// The pid in `file` if that process is alive and is a supervisor of `root`.
pub fn live_supervisor(root: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(root))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("__supervise") && cmdline.contains(root.to_string_lossy().as_ref()))
        .then_some(pid)
}

impl ServiceManager for Supervisor {
    async fn restart(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let root = PathBuf::from(&spec.root);
        self.stop(spec).await?;
        std::fs::create_dir_all(root.join("logs"))?;
        std::fs::write(spec_file(&root), serde_json::to_vec_pretty(spec)?)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file(&root))?;
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.arg("__supervise")
            .arg(&root)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // A session of its own: the service outlives this CLI and its terminal.
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the supervisor for {}", spec.name))?;
        // The supervisor writes its pid file; wait for it so that an
        // immediate stop or status sees the new process.
        for _ in 0..100 {
            if live_supervisor(&root) == Some(child.id() as i32) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!(
            "the supervisor for {} did not start; see {}",
            spec.name,
            log_file(&root).display()
        )
    }

    async fn stop(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let root = PathBuf::from(&spec.root);
        let Some(pid) = live_supervisor(&root) else {
            return Ok(());
        };
        // SAFETY: plain kill(2) on a pid we verified is our supervisor.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..500 {
            if live_supervisor(&root).is_none() || is_zombie(pid) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Ok(())
    }

    /// Running itself, or behind the `proxy` switch's proxy (whose
    /// supervisor lives in `<root>/proxy`).
    async fn is_running(&self, spec: &ServiceSpec) -> anyhow::Result<bool> {
        let root = Path::new(&spec.root);
        Ok([root.to_path_buf(), root.join("proxy")]
            .iter()
            .any(|r| live_supervisor(r).is_some_and(|pid| !is_zombie(pid))))
    }

    async fn logs(&self, spec: &ServiceSpec, lines: usize) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(log_file(Path::new(&spec.root))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines)..].join("\n"))
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
