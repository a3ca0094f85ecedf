//! `soar __supervise ROOT`: the local target's service supervisor.
//!
//! Runs `<ROOT>/current` with the command from `<ROOT>/service.json` and the
//! environment from `<ROOT>/shared/env`, restarts it with backoff when it
//! exits, and stops it on SIGTERM. Output goes to stdout/stderr, which the
//! starter points at `<ROOT>/logs/service.log`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::rollout::env_file;
use crate::rollout::service::{ServiceSpec, pid_file, spec_file};

/// Supervise the service under `root` until SIGTERM.
pub async fn run(root: &Path) -> anyhow::Result<()> {
    let spec: ServiceSpec =
        serde_json::from_slice(&std::fs::read(spec_file(root)).context("reading service.json")?)?;
    std::fs::write(pid_file(root), std::process::id().to_string())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let cwd = std::fs::canonicalize(root.join("current")).context("no current release")?;
        let vars = env_file::read(&root.join("shared").join("env")).unwrap_or_default();
        let started = Instant::now();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", spec.command))
            .current_dir(&cwd)
            // Nothing of the deploying shell leaks in (its cloud tokens least
            // of all): only a base environment, the env file and PORT.
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &cwd)
            .env("LANG", "C.UTF-8")
            .envs(vars)
            .env("PORT", spec.port.to_string())
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting `{}`", spec.command))?;
        eprintln!(
            "[soar] started {} (pid {}) from {}",
            spec.name,
            child.id().unwrap_or(0),
            cwd.display()
        );
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                eprintln!("[soar] {} exited with {status}; restarting in {} s", spec.name, backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = term.recv() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            _ = term.recv() => {
                stop_child(&mut child).await;
                break;
            }
        }
    }
    let _ = std::fs::remove_file(pid_file(root));
    eprintln!("[soar] supervisor for {} stopped", spec.name);
    Ok(())
}

async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
