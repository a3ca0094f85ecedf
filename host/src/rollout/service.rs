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

/// Most bytes read back from the end of a log for its last lines: a line
/// count of long lines must not turn into reading a log of gigabytes.
const MAX_TAIL_BYTES: u64 = 8 * 1024 * 1024;

/// The last `n` lines of the file at `path`, and its length then (where a
/// follow goes on from). Read from the end in chunks, not whole: a
/// service's log grows for as long as it runs, and Soar does not rotate it.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const CHUNK: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    let mut newlines = 0usize;
    while start > 0 && len - start < MAX_TAIL_BYTES {
        let step = CHUNK.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        newlines += chunk.iter().filter(|b| **b == b'\n').count();
        chunk.extend_from_slice(&tail);
        tail = chunk;
        // The file's own final newline ends its last line, not another one.
        let ends = usize::from(tail.last() == Some(&b'\n'));
        if newlines.saturating_sub(ends) >= n {
            break;
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // Begun mid-line (or at a line the count does not need).
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok((lines[skip..].iter().map(|l| l.to_string()).collect(), len))
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
        let (last, _) = tail_lines(&log_file(Path::new(&spec.root)), lines).unwrap_or_default();
        Ok(last.join("\n"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str, n: usize) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.log");
        std::fs::write(&path, text).unwrap();
        let (lines, len) = tail_lines(&path, n).unwrap();
        assert_eq!(len, text.len() as u64);
        lines
    }

    #[test]
    fn the_last_lines_whatever_the_file_ends_with() {
        assert_eq!(tail("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail("a\nb\nc", 2), ["b", "c"]);
        assert_eq!(tail("a\nb\n", 5), ["a", "b"]);
        assert_eq!(tail("a\nb\n", 0), Vec::<String>::new());
        assert_eq!(tail("", 3), Vec::<String>::new());
    }

    #[test]
    fn a_long_log_is_read_from_its_end_only() {
        // Lines across many chunks: the count is exact at chunk edges.
        let text: String = (0..50_000).map(|i| format!("line {i:05}\n")).collect();
        let want: Vec<String> = (49_990..50_000).map(|i| format!("line {i:05}")).collect();
        assert_eq!(tail(&text, 10), want);
        let want: Vec<String> = (40_000..50_000).map(|i| format!("line {i:05}")).collect();
        assert_eq!(tail(&text, 10_000), want);
        // More lines asked than MAX_TAIL_BYTES holds: what fits, whole lines.
        let big: String = (0..1_000_000).map(|i| format!("line {i:07}\n")).collect();
        let got = tail(&big, 2_000_000);
        assert!(
            got.len() < 1_000_000 && got.len() > 600_000,
            "{}",
            got.len()
        );
        assert_eq!(got.last().map(String::as_str), Some("line 0999999"));
        assert!(got[0].starts_with("line "), "{}", got[0]);
    }
}
