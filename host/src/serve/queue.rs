//! The worker: starts queued jobs, highest priority first, never two of one
//! environment at once and at most `per_provider` of one provider.
//!
//! A job runs as a child of this very binary, `soar -c <project>/soar.toml
//! deploy --json --yes --env <env>` (or `rollback --env <env>`): the CLI's deploy path exactly, its
//! project lock included (so an API deploy and a CLI deploy of one
//! environment never interleave). Each JSON line it prints is an event of
//! the job; its exit code decides success; the tail of its stderr is the
//! job's error. Cancel is SIGTERM to the child.
//!
//! A failure [`super::retry`] calls transient puts the job back in the
//! queue with a `retry_at` (capped exponential backoff); until it runs
//! again it holds its environment's turn, so no later job of that
//! environment overtakes it. Every run is an attempt in the job record.
//!
//! With a shared queue (`[queue] url`), this server is one worker of many:
//! it claims jobs from the database instead of reading its own store, holds
//! a lease on each while it runs, and the limits above hold across every
//! worker (see [`super::shared_queue`]).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::{Notify, watch};

use super::jobs::{self, Job};
use super::projects::Projects;
use super::retry::Policy;
use super::shared_queue::SharedJobs;
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
    project: String,
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
    /// The projects jobs may name: configured and uploaded.
    pub projects: Arc<Projects>,
    /// Where saved plans are kept (`<data dir>/plans`).
    pub plans_dir: PathBuf,
    per_provider: usize,
    retry: Policy,
    /// `[secrets]`: NAME -> the server's environment variable.
    secrets: std::collections::BTreeMap<String, String>,
    wake: Notify,
    running: Mutex<HashMap<String, Running>>,
    /// Projects whose bundle is being replaced: none of their jobs starts.
    replacing: Mutex<HashSet<String>>,
    /// Bumped on every event and status change; SSE streams wait on it.
    changed: watch::Sender<u64>,
    /// Set on shutdown: no job starts any more.
    stopping: AtomicBool,
}

impl Queue {
    /// A queue running `exe` (this soar) in `projects`, with the limits,
    /// retry policy and secrets of `config`. Nothing runs until
    /// [`Queue::run`] is spawned.
    pub fn new(
        db: Arc<Db>,
        exe: PathBuf,
        projects: Arc<Projects>,
        config: &super::config::ServerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            exe,
            projects,
            plans_dir: config.data_dir.join("plans"),
            per_provider: config.per_provider,
            retry: config.retry,
            secrets: config.secrets.clone(),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            replacing: Mutex::new(HashSet::new()),
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
            // Running on another worker of a shared queue: it stops the
            // job at its next lease renewal.
            if let Some(shared) = self.db.shared()
                && shared.request_cancel(id)?
            {
                return Ok(Some("cancelling"));
            }
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

    /// Hold off every job of `project` while its bundle is replaced, if
    /// none runs now; `false` when one does. Undo with
    /// [`Queue::release_project`].
    pub fn hold_project(&self, project: &str) -> bool {
        let running = self.running();
        if running.values().any(|r| r.project == project) {
            return false;
        }
        self.replacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.to_string())
    }

    /// Let `project`'s jobs start again.
    pub fn release_project(&self, project: &str) {
        self.replacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(project);
        self.poke();
    }

    /// The worker loop; runs for the life of the server.
    pub async fn run(self: Arc<Self>) {
        if let Some(shared) = self.db.shared() {
            let me = self.clone();
            if let Err(e) = shared.listen(move || me.poke()) {
                tracing::warn!("queue: {e:#}; new jobs are seen at the next poll");
            }
            tokio::spawn(self.clone().keep_leases());
        }
        loop {
            // A poke, the next retry's time, or a look every few seconds
            // whatever happens.
            let wait = match self.start_what_fits() {
                Ok(Some(next)) => next.min(Duration::from_secs(5)),
                Ok(None) => Duration::from_secs(5),
                Err(e) => {
                    tracing::warn!("queue: {e:#}");
                    Duration::from_secs(5)
                }
            };
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
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

    /// Start every queued job that fits now; returns how long until the
    /// earliest retry that must wait is due, if any.
    fn start_what_fits(self: &Arc<Self>) -> anyhow::Result<Option<Duration>> {
        if self.is_stopping() {
            return Ok(None);
        }
        if let Some(shared) = self.db.shared() {
            return self.claim_what_fits(shared);
        }
        let queued = jobs::queued(&self.db)?;
        let now = super::store::rfc3339(crate::state::now_ms());
        // A job waiting to retry keeps its environment's turn.
        let held: HashMap<String, &str> = queued
            .iter()
            .filter(|j| j.retry_at.is_some())
            .map(|j| (env_key(j), j.id.as_str()))
            .collect();
        for job in &queued {
            let env_key = env_key(job);
            if job.retry_at.as_deref().is_some_and(|at| at > now.as_str()) {
                continue;
            }
            if held.get(&env_key).is_some_and(|holder| *holder != job.id) {
                continue;
            }
            {
                let mut running = self.running();
                if running.values().any(|r| r.env_key == env_key)
                    || self
                        .replacing
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(&job.project)
                {
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
                        project: job.project.clone(),
                        env_key,
                        provider: job.provider.clone(),
                        pid: None,
                        cancel: false,
                    },
                );
            }
            self.launch(job.clone());
        }
        let now = crate::state::now_ms();
        Ok(jobs::next_retry_after(&self.db, now)?
            .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0))))
    }

    /// Run `job`, already marked running in the store and in `running`, to
    /// its end on a task of its own.
    fn launch(self: &Arc<Self>, job: Job) {
        self.bump();
        let me = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            let outcome = me.execute(&job).await;
            if let Err(e) = me.conclude(&job, outcome) {
                tracing::warn!("recording the end of job {id}: {e:#}");
            }
            me.running().remove(&id);
            me.poke();
        });
    }

    /// [`Queue::start_what_fits`] as a worker of a shared queue: take back
    /// the jobs of workers that died, then claim every job that fits now
    /// (the limits hold across workers: see [`crate::state::QueueDb`]).
    fn claim_what_fits(self: &Arc<Self>, shared: &SharedJobs) -> anyhow::Result<Option<Duration>> {
        for lost in shared.reap()? {
            tracing::warn!(
                "job {} lost its worker {}: {}",
                lost.id,
                lost.worker,
                if lost.requeued {
                    "queued again"
                } else {
                    "interrupted (lost twice)"
                }
            );
        }
        let held = self
            .replacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let projects: Vec<String> = self
            .projects
            .names()
            .into_iter()
            .filter(|p| !held.contains(p))
            .collect();
        let plans = saved_plans(&self.plans_dir);
        while let Some(job) = shared.claim(self.per_provider, &projects, &plans)? {
            self.running().insert(
                job.id.clone(),
                Running {
                    project: job.project.clone(),
                    env_key: env_key(&job),
                    provider: job.provider.clone(),
                    pid: None,
                    cancel: false,
                },
            );
            self.launch(job);
        }
        let now = crate::state::now_ms();
        Ok(shared
            .next_retry_after(now)?
            .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0))))
    }

    /// For a shared queue: renew this worker's leases every third of a
    /// lease, and stop the jobs it no longer holds (taken back after a
    /// pause longer than the lease) or that a cancel on another worker
    /// asked to stop.
    async fn keep_leases(self: Arc<Self>) {
        let Some(shared) = self.db.shared() else {
            return;
        };
        let mut tick = tokio::time::interval(shared.lease() / 3);
        loop {
            tick.tick().await;
            let ids: Vec<String> = self.running().keys().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            let renewal = match shared.renew(&ids) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("renewing the queue's leases: {e:#}");
                    continue;
                }
            };
            let mut running = self.running();
            for (id, r) in running.iter_mut() {
                // A cancel before its deploy starts is seen when it starts.
                r.cancel |= renewal.cancel.contains(id);
                // No pid: not started yet, or ended and being recorded.
                let Some(pid) = r.pid else { continue };
                let lost = !renewal.held.contains(id);
                if lost {
                    tracing::warn!("job {id}: this worker's lease on it expired; stopping it");
                }
                if lost || r.cancel {
                    // SAFETY: kill(2) on our own child, not yet reaped
                    // (`pid` is cleared when it is).
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
            }
        }
    }

    /// Record how an attempt ended: the job finishes, or goes back in the
    /// queue when its failure was transient and it has retries left.
    fn conclude(&self, job: &Job, outcome: Outcome) -> anyhow::Result<()> {
        let (status, code, error, transient) = outcome;
        let transient = transient.filter(|_| status == jobs::FAILED);
        let n = jobs::end_attempt(
            &self.db,
            &job.id,
            code,
            error.as_deref(),
            transient.as_deref(),
        )?;
        if let Some(reason) = transient
            && self.retry.allows_another(n)
        {
            let delay = self.retry.delay(n);
            let at = crate::state::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            if jobs::requeue(&self.db, &job.id, at)? {
                let event = serde_json::json!({
                    "type": "retrying",
                    "attempt": n,
                    "reason": reason,
                    "delay_ms": delay.as_millis() as u64,
                });
                jobs::add_event(&self.db, &job.id, &event)?;
                return Ok(());
            }
        }
        jobs::finish(&self.db, &job.id, status, code, error.as_deref())
    }

    /// Run one attempt's deploy child to its end.
    async fn execute(&self, job: &Job) -> Outcome {
        let Some(root) = self.projects.get(&job.project) else {
            return (
                jobs::FAILED,
                None,
                Some(format!(
                    "project {:?} is no longer in the server config",
                    job.project
                )),
                None,
            );
        };
        // The project's soar.toml, or a copy with the request's options.
        let config = match super::options::derive(&root, job, &self.secrets) {
            Ok(c) => c,
            Err(e) => {
                let error = format!("applying the deploy's options: {e:#}");
                return (jobs::FAILED, None, Some(error), None);
            }
        };
        let outcome = self.run_child(job, &root, config.path()).await;
        drop(config);
        outcome
    }

    /// Run `soar -c config ...` for `job` in `root`.
    async fn run_child(
        &self,
        job: &Job,
        root: &std::path::Path,
        config: &std::path::Path,
    ) -> Outcome {
        let mut cmd = super::soar_child(&self.exe, root, true);
        let args: &[&str] = match job.kind.as_str() {
            ROLLBACK => &["rollback", "--env", &job.environment],
            _ => &["deploy", "--json", "--yes", "--env", &job.environment],
        };
        cmd.arg("-c").arg(config).args(args);
        if let Some(plan) = &job.plan {
            // `soar deploy FILE`: exactly this plan, refused when stale.
            cmd.arg(self.plans_dir.join(format!("{plan}.plan")));
        }
        // The audit trail's actor, once the engine reads it (it reads $USER
        // today, which the deploy keeps: SSH defaults may depend on it).
        cmd.env("SOAR_ACTOR", format!("api:{}", job.actor));
        let started_ms = crate::state::now_ms();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return (
                    jobs::FAILED,
                    None,
                    Some(format!("cannot start soar: {e}")),
                    None,
                );
            }
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
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = keep_tail(stderr, ERROR_TAIL);
        let mut lines = BufReader::new(stdout);
        let mut line = Vec::new();
        // The deploy's own error, from its `error` event, and its verdict
        // on whether another attempt may pass (`transient`).
        let mut reported = None;
        let mut transient = None;
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
                transient = data["transient"].as_str().map(str::to_string);
            }
            if let Err(e) = jobs::add_event(&self.db, &job.id, &data) {
                tracing::warn!("recording an event of job {}: {e:#}", job.id);
            }
            self.bump();
        }
        let pid = child.id();
        let status = child.wait().await;
        // Reaped: the pid may be reused from now on, so no signal uses it.
        if let Some(r) = self.running().get_mut(&job.id) {
            r.pid = None;
        }
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
        if let Some(reported) = &reported {
            if !error.is_empty() {
                error.push('\n');
            }
            error.push_str(reported);
        }
        let error = (!error.is_empty()).then_some(error);
        match status {
            _ if cancelled => (
                jobs::CANCELLED,
                code,
                Some("cancelled by request".to_string()),
                None,
            ),
            Ok(s) if s.success() => (jobs::SUCCEEDED, code, None, None),
            Ok(s) => (
                jobs::FAILED,
                code,
                error.or_else(|| Some(format!("soar deploy exited with {s}"))),
                transient,
            ),
            Err(e) => (
                jobs::FAILED,
                None,
                Some(format!("waiting for soar: {e}")),
                None,
            ),
        }
    }
}

/// How an attempt ended: its status, the exit code, the job's error text,
/// and why the deploy judged its failure transient (its `error` event's
/// `transient`), if it did.
type Outcome = (&'static str, Option<i32>, Option<String>, Option<String>);

/// The ids of the saved plans in `dir` (`<id>.plan`): the plans a deploy
/// on this server can apply.
fn saved_plans(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".plan").map(str::to_string)
        })
        .collect()
}

/// The key that serialises jobs: one environment of one project.
fn env_key(job: &Job) -> String {
    format!("{}\n{}", job.project, job.environment)
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

/// Read a child's stream to its end on a task of its own, keeping only the
/// last `cap` bytes: what a failed child said last, without letting a
/// chatty one grow the server's memory (or block on a full pipe).
pub(super) fn keep_tail(
    mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    cap: usize,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > cap {
                tail.drain(..tail.len() - cap);
            }
        }
        tail
    })
}
