//! The worker: starts queued jobs, highest priority first, never two of one
//! environment at once and at most `per_provider` of one provider.
//!
//! A job runs as a child of this very binary, `soar -c <project>/soar.toml
//! deploy --json --yes --env <env>` (or `rollback --env <env>`): the CLI's deploy path exactly, its
//! project lock included (so an API deploy and a CLI deploy of one
//! environment never interleave). Each JSON line it prints is an event of
//! the job; its exit code decides success; the tail of its stderr is the
//! job's error. Cancel is SIGTERM to the child.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::{Notify, watch};

use super::jobs::{self, Job};
use super::store::Db;

/// The job kind that runs `soar deploy`: plan then apply (or apply a saved
/// plan).
pub const DEPLOY: &str = "deploy";
/// The job kind that runs `soar rollback`: back to the environment's
/// previous release.
pub const ROLLBACK: &str = "rollback";

/// Bytes of the child's stderr kept as the job's error.
const ERROR_TAIL: usize = 4096;
/// Longest event line kept; longer lines are cut (a deploy's are short).
const MAX_LINE: usize = 64 * 1024;

struct Running {
    env_key: String,
    provider: String,
    pid: Option<u32>,
    cancel: bool,
}

/// Shared by the API and the worker loop.
pub struct Queue {
    /// The server's store: jobs, their events, and tokens.
    pub db: Arc<Db>,
    exe: PathBuf,
    projects: std::collections::BTreeMap<String, PathBuf>,
    /// Where saved plans are kept (`<data dir>/plans`).
    pub plans_dir: PathBuf,
    per_provider: usize,
    wake: Notify,
    running: Mutex<HashMap<String, Running>>,
    /// Bumped on every event and status change; SSE streams wait on it.
    changed: watch::Sender<u64>,
    /// Set on shutdown: no job starts any more.
    stopping: AtomicBool,
}

impl Queue {
    /// A queue running `exe` (this soar) in the configured `projects`
    /// (NAME -> directory), at most `per_provider` jobs per provider at once.
    /// Nothing runs until [`Queue::run`] is spawned.
    pub fn new(
        db: Arc<Db>,
        exe: PathBuf,
        projects: std::collections::BTreeMap<String, PathBuf>,
        plans_dir: PathBuf,
        per_provider: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            exe,
            projects,
            plans_dir,
            per_provider,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            stopping: AtomicBool::new(false),
        })
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// A job was queued (or a slot freed): look again.
    pub fn poke(&self) {
        self.wake.notify_one();
        self.bump();
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancel job `id`: a queued job is marked cancelled, a running one gets
    /// SIGTERM (it becomes `cancelled` when it exits). `Ok(None)` if it is
    /// neither (finished, or unknown).
    pub fn cancel(&self, id: &str) -> anyhow::Result<Option<&'static str>> {
        if jobs::cancel_queued(&self.db, id)? {
            self.poke();
            return Ok(Some(jobs::CANCELLED));
        }
        let mut running = self.running();
        let Some(r) = running.get_mut(id) else {
            return Ok(None);
        };
        r.cancel = true;
        if let Some(pid) = r.pid {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped
            // (it is removed from `running` only after wait()).
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        Ok(Some("cancelling"))
    }

    /// The worker loop; runs for the life of the server.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.start_what_fits() {
                tracing::warn!("queue: {e:#}");
            }
            // A poke, or a look every few seconds whatever happens.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wake.notified()).await;
        }
    }

    /// Start no more jobs (queued ones stay queued for the next start).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Queue::stop`] was called: new submissions are refused (503).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// How many jobs run now.
    pub fn running_count(&self) -> usize {
        self.running().len()
    }

    /// Wait until no job runs.
    pub async fn drained(&self) {
        let mut rx = self.subscribe();
        loop {
            rx.borrow_and_update();
            if self.running().is_empty() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn start_what_fits(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.is_stopping() {
            return Ok(());
        }
        for job in jobs::queued(&self.db)? {
            let env_key = format!("{}\n{}", job.project, job.environment);
            {
                let mut running = self.running();
                if running.values().any(|r| r.env_key == env_key) {
                    continue;
                }
                let of_provider = running
                    .values()
                    .filter(|r| r.provider == job.provider)
                    .count();
                if of_provider >= self.per_provider {
                    continue;
                }
                if !jobs::start(&self.db, &job.id)? {
                    continue;
                }
                running.insert(
                    job.id.clone(),
                    Running {
                        env_key,
                        provider: job.provider.clone(),
                        pid: None,
                        cancel: false,
                    },
                );
            }
            self.bump();
            let me = self.clone();
            tokio::spawn(async move {
                let id = job.id.clone();
                let (status, code, error) = me.execute(&job).await;
                if let Err(e) = jobs::finish(&me.db, &id, status, code, error.as_deref()) {
                    tracing::warn!("recording the end of job {id}: {e:#}");
                }
                me.running().remove(&id);
                me.poke();
            });
        }
        Ok(())
    }

    /// Run the deploy child to its end: (final status, exit code, error).
    async fn execute(&self, job: &Job) -> (&'static str, Option<i32>, Option<String>) {
        let Some(root) = self.projects.get(&job.project) else {
            return (
                jobs::FAILED,
                None,
                Some(format!(
                    "project {:?} is no longer in the server config",
                    job.project
                )),
            );
        };
        let mut cmd = tokio::process::Command::new(&self.exe);
        let args: &[&str] = match job.kind.as_str() {
            ROLLBACK => &["rollback", "--env", &job.environment],
            _ => &["deploy", "--json", "--yes", "--env", &job.environment],
        };
        cmd.arg("-c").arg(root.join("soar.toml")).args(args);
        if let Some(plan) = &job.plan {
            // `soar deploy FILE`: exactly this plan, refused when stale.
            cmd.arg(self.plans_dir.join(format!("{plan}.plan")));
        }
        cmd.current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child
        // before exec. The deploy ends with the server (SIGTERM: it releases
        // its lock), so a restarted server finds it `interrupted`, not
        // running on unobserved.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        // The audit trail's actor, once the engine reads it (it reads $USER
        // today, which the deploy keeps: SSH defaults may depend on it).
        cmd.env("SOAR_ACTOR", format!("api:{}", job.actor));
        let started_ms = crate::state::now_ms();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return (jobs::FAILED, None, Some(format!("cannot start soar: {e}"))),
        };
        let cancelled_early = {
            let mut running = self.running();
            match running.get_mut(&job.id) {
                Some(r) => {
                    r.pid = child.id();
                    r.cancel
                }
                None => false,
            }
        };
        if cancelled_early && let Some(pid) = child.id() {
            // SAFETY: our own live child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let tail = tokio::spawn(async move {
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > ERROR_TAIL {
                    tail.drain(..tail.len() - ERROR_TAIL);
                }
            }
            tail
        });
        let mut lines = BufReader::new(stdout);
        let mut line = Vec::new();
        // The deploy's own error, from its `error` event.
        let mut reported = None;
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            line.truncate(MAX_LINE);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let data = serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::json!({ "type": "output", "line": text }));
            if let Some(error) = super::inspect::error_event(&data) {
                reported = Some(error);
            }
            if let Err(e) = jobs::add_event(&self.db, &job.id, &data) {
                tracing::warn!("recording an event of job {}: {e:#}", job.id);
            }
            self.bump();
        }
        let pid = child.id();
        let status = child.wait().await;
        let tail = tail.await.unwrap_or_default();
        if let Some(pid) = pid {
            match audit_record(root, &job.environment, pid, started_ms) {
                Ok(Some(record)) => {
                    if let Err(e) = jobs::set_audit(&self.db, &job.id, &record) {
                        tracing::warn!("recording the audit of job {}: {e:#}", job.id);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("reading the audit trail of job {}: {e:#}", job.id),
            }
        }
        let cancelled = self.running().get(&job.id).is_some_and(|r| r.cancel);
        let code = status.as_ref().ok().and_then(|s| s.code());
        // What it said on stderr (its warnings, or a rollback's error), then
        // the error event of a --json deploy: the text `soar` prints without
        // --json.
        let mut error = String::from_utf8_lossy(&tail).trim().to_string();
        if let Some(reported) = reported {
            if !error.is_empty() {
                error.push('\n');
            }
            error.push_str(&reported);
        }
        let error = (!error.is_empty()).then_some(error);
        match status {
            _ if cancelled => (
                jobs::CANCELLED,
                code,
                Some("cancelled by request".to_string()),
            ),
            Ok(s) if s.success() => (jobs::SUCCEEDED, code, None),
            Ok(s) => (
                jobs::FAILED,
                code,
                error.or_else(|| Some(format!("soar deploy exited with {s}"))),
            ),
            Err(e) => (jobs::FAILED, None, Some(format!("waiting for soar: {e}"))),
        }
    }
}

/// The audit-trail record the child `pid` wrote in the project's state for
/// `env` (the deploy records its own pid), if any.
fn audit_record(
    root: &std::path::Path,
    env: &str,
    pid: u32,
    since_ms: i64,
) -> anyhow::Result<Option<serde_json::Value>> {
    let dir = root.join(".soar");
    if !dir.join(crate::state::DB_FILE).exists() {
        return Ok(None);
    }
    let store = crate::state::StateStore::open(&dir)?;
    let record = store
        .history(Some(env), 20)?
        .into_iter()
        .find(|r| r.pid == pid && r.started_at >= since_ms - 1000);
    Ok(record.map(serde_json::to_value).transpose()?)
}
