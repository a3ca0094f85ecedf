//! The shared job queue of `soar serve` workers on PostgreSQL: its tables,
//! its connection, and the concurrency protocol every worker follows.
//!
//! Several `soar serve` processes (on one machine or many) pointed at one
//! database are workers of one queue:
//!
//! * **Claiming** ([`QueueDb::claim`]): a worker locks one queued job with
//!   `FOR UPDATE SKIP LOCKED` (so two workers never wait on, or take, the
//!   same row), then takes an advisory lock on the job's provider and
//!   counts, under it, that provider's running jobs and whether the job's
//!   environment is busy; it keeps the lock until its claim commits, or
//!   lets it go at once when the job does not fit (holding one provider
//!   lock at a time, two claimers cannot deadlock). Every claim of a
//!   provider goes through that lock, and an environment has exactly one
//!   provider, so the per-provider limit and one-job-per-environment hold
//!   across all workers, not just within one.
//! * **Leases**: a claimed job carries its worker's name and a
//!   `lease_until` on the database's clock (no clock skew between
//!   machines), which the worker renews ([`QueueDb::renew`]) while the job
//!   runs. A worker that dies (SIGKILL, power, network) stops renewing;
//!   any other worker then finds the lease expired ([`QueueDb::reap`]),
//!   marks that attempt `interrupted` and puts the job back in the queue,
//!   once: a deploy converges when re-run, but a job that kills its worker
//!   every time must not kill the whole fleet. The second loss ends it as
//!   `interrupted`. Every write a worker makes about a job it runs is
//!   fenced by its name, so a worker that lost its lease (paused, cut off)
//!   cannot overwrite the next run's outcome.
//! * **Wake-ups**: submitting a job, and any job leaving the running set,
//!   sends `NOTIFY soar_jobs` in the same transaction; idle workers
//!   `LISTEN` ([`listen`]) and look at once instead of at their next poll.
//!
//! The jobs' rows (what the API shows) are in the same tables, so any
//! worker answers for any job; the mapping of API operations onto them is
//! `serve::shared_queue`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator as _;

use super::Target;
use super::schema::{self, LOCK_CLASS};
use super::session::off_runtime;

/// The `LISTEN`/`NOTIFY` channel of the queue.
pub const JOBS_CHANNEL: &str = "soar_jobs";

/// Advisory lock class of the per-provider claim locks (the project and
/// migration locks use [`LOCK_CLASS`]).
const CLAIM_CLASS: i32 = LOCK_CLASS + 1;

/// Now in unix milliseconds on the database's clock, which every worker
/// shares: a job's start and end are stamped with it, so that the order
/// of claims and finishes across workers is also the order of their times.
pub const DB_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// How many queued jobs one claim looks at before giving up (each one that
/// does not fit now: its environment busy, its provider full).
const CLAIM_SCAN: usize = 64;

/// v2: the shared queue's jobs, their attempts and their events.
///
/// Times are unix milliseconds from the workers' clocks, as in the server's
/// SQLite store, except `lease_until`, which is the database's own time so
/// that workers on machines with skewed clocks agree on an expiry.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE soar.jobs (
    id          text PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    project     text NOT NULL,
    environment text NOT NULL,
    provider    text NOT NULL,
    priority    bigint NOT NULL,
    status      text NOT NULL,
    actor       text NOT NULL,
    created_at  bigint NOT NULL,
    started_at  bigint,
    finished_at bigint,
    exit_code   bigint,
    error       text,
    audit       text,
    plan        text,
    retry_at    bigint,
    options     text,
    -- The worker running it, and until when its lease holds.
    worker      text,
    lease_until timestamptz,
    -- Times it was put back after its worker was lost (at most once).
    requeued    integer NOT NULL DEFAULT 0,
    -- A cancel asked on another worker than the one running it.
    cancel_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX jobs_by_status ON soar.jobs (status, priority DESC, created_at, seq);
CREATE INDEX jobs_by_env ON soar.jobs (project, environment) WHERE status IN ('queued', 'running');

CREATE TABLE soar.job_attempts (
    job         text NOT NULL REFERENCES soar.jobs (id) ON DELETE CASCADE,
    n           bigint NOT NULL,
    started_at  bigint NOT NULL,
    finished_at bigint,
    exit_code   bigint,
    error       text,
    transient   text,
    worker      text NOT NULL,
    PRIMARY KEY (job, n)
);

CREATE TABLE soar.job_events (
    job  text NOT NULL REFERENCES soar.jobs (id) ON DELETE CASCADE,
    seq  bigint NOT NULL,
    at   bigint NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (job, seq)
);
"#;

/// A connection to the queue's database, reconnected when it breaks.
///
/// One connection serves the worker and the API of a server (every
/// statement is short); [`listen`] keeps a second one for `LISTEN`.
pub struct QueueDb {
    target: Target,
    /// As given, for [`listen`]'s own connection (never shown: it may hold
    /// a password).
    url: String,
    password_allowed: bool,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for QueueDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueDb")
            .field("url", &self.target.shown())
            .finish_non_exhaustive()
    }
}

/// What renewing a worker's leases found.
#[derive(Debug, Default)]
pub struct Renewal {
    /// The jobs this worker still runs, lease renewed.
    pub held: Vec<String>,
    /// Of those, the ones someone asked (on any worker) to cancel.
    pub cancel: Vec<String>,
}

/// A job whose worker stopped renewing its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The job.
    pub id: String,
    /// The worker that lost it.
    pub worker: String,
    /// Put back in the queue (`true`), or ended as `interrupted`.
    pub requeued: bool,
}

impl QueueDb {
    /// Connect to `url` and bring the schema up to date (the queue's tables
    /// are migration v2 of the state schema). `password_allowed` is false
    /// for a URL from a config file.
    pub fn connect(url: &str, password_allowed: bool) -> anyhow::Result<QueueDb> {
        let target = Target::parse(url, password_allowed)?;
        let client = target.connect()?;
        let shown = target.shown().to_string();
        // Migrate and, on failure, drop the client off the runtime too: a
        // blocking client dropped on a runtime thread panics.
        let client = off_runtime(move || {
            let mut client = client;
            schema::migrate(&mut client, &shown).map(|()| client)
        })?;
        Ok(QueueDb {
            target,
            url: url.to_string(),
            password_allowed,
            client: Mutex::new(Some(client)),
        })
    }

    /// The URL without a password, for messages.
    pub fn shown(&self) -> &str {
        self.target.shown()
    }

    /// Run `f` with the connection, off any async runtime; a connection the
    /// server closed (a restart, a network cut) is replaced first.
    pub fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(Client::is_closed) {
            if let Some(dead) = guard.take() {
                off_runtime(move || drop(dead));
            }
            *guard = Some(self.target.connect()?);
        }
        let client = guard.as_mut().expect("connected just above");
        off_runtime(|| f(client))
    }

    /// Claim the first queued job that may start now, for `worker`, under a
    /// lease of `lease`: highest priority first, then oldest; of `projects`
    /// only (the ones this worker can run); not while another job of its
    /// environment runs or waits to retry; not past `per_provider` running
    /// jobs of its provider across every worker; a job applying a saved
    /// plan only if the plan is one of `plans` (the ones this worker has).
    /// Returns its id, `None` when nothing fits.
    pub fn claim(
        &self,
        worker: &str,
        lease: Duration,
        per_provider: usize,
        projects: &[String],
        plans: &[String],
        now_ms: i64,
    ) -> anyhow::Result<Option<String>> {
        // `now_ms` (this worker's clock) decides which retries are due, as
        // it set them; the claim itself is stamped with [`DB_MS`].
        let lease_secs = lease.as_secs_f64();
        let limit = i64::try_from(per_provider).unwrap_or(i64::MAX);
        self.run(|c| {
            let claimed = claim_in(c, worker, lease_secs, limit, projects, plans, now_ms);
            // Whatever happened (the transaction is over either way), this
            // connection holds no provider lock afterwards.
            let unlocked = c.execute("SELECT pg_advisory_unlock_all()", &[]);
            let claimed = claimed?;
            unlocked.context("releasing the claim's provider lock")?;
            Ok(claimed)
        })
    }

    /// Extend by `lease` the leases `worker` holds on `running`, the jobs
    /// it really runs; what it still holds and which of those someone asked
    /// to cancel. A job claimed but never started (the worker failed right
    /// after the claim) is not renewed, so it expires and is taken back.
    pub fn renew(
        &self,
        worker: &str,
        lease: Duration,
        running: &[String],
    ) -> anyhow::Result<Renewal> {
        let lease_secs = lease.as_secs_f64();
        self.run(|c| {
            let rows = c.query(
                "UPDATE soar.jobs SET lease_until = now() + make_interval(secs => $2::float8)
                 WHERE worker = $1 AND status = 'running' AND id = ANY($3)
                 RETURNING id, cancel_requested",
                &[&worker, &lease_secs, &running],
            )?;
            let mut renewal = Renewal::default();
            for row in rows {
                let id: String = row.get(0);
                if row.get::<_, bool>(1) {
                    renewal.cancel.push(id.clone());
                }
                renewal.held.push(id);
            }
            Ok(renewal)
        })
    }

    /// Take back every job whose lease expired: its open attempt ends as
    /// interrupted, and the job goes back to the queue if it never did
    /// before, else ends `interrupted`. One transaction; wakes the workers
    /// when anything was reaped.
    pub fn reap(&self, now_ms: i64) -> anyhow::Result<Vec<Reaped>> {
        self.run(|c| {
            let mut tx = c.transaction().context("starting to reap expired leases")?;
            let rows = tx.query(
                "WITH lost AS (
                     SELECT id, worker, requeued FROM soar.jobs
                     WHERE status = 'running' AND lease_until < now()
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE soar.jobs j SET
                     status = CASE WHEN l.requeued = 0 THEN 'queued' ELSE 'interrupted' END,
                     finished_at = CASE WHEN l.requeued = 0 THEN NULL ELSE $1::bigint END,
                     error = CASE WHEN l.requeued = 0 THEN j.error ELSE
                         'its worker ' || l.worker || ' stopped answering while it ran, for the second time; its events show how far it got. Submit it again: a deploy converges'
                         END,
                     requeued = j.requeued + 1, worker = NULL, lease_until = NULL,
                     retry_at = NULL, cancel_requested = false
                 FROM lost l WHERE j.id = l.id
                 RETURNING j.id, l.worker, l.requeued = 0",
                &[&now_ms],
            )?;
            let mut reaped = Vec::with_capacity(rows.len());
            for row in rows {
                let lost = Reaped {
                    id: row.get(0),
                    worker: row.get(1),
                    requeued: row.get(2),
                };
                let note = format!(
                    "interrupted: worker {} stopped renewing its lease",
                    lost.worker
                );
                tx.execute(
                    "UPDATE soar.job_attempts SET finished_at = $2, error = coalesce(error, $3)
                     WHERE job = $1 AND finished_at IS NULL",
                    &[&lost.id, &now_ms, &note],
                )?;
                let event = serde_json::json!({
                    "type": "interrupted",
                    "worker": lost.worker,
                    "requeued": lost.requeued,
                })
                .to_string();
                tx.execute(
                    "INSERT INTO soar.job_events (job, seq, at, data)
                     SELECT $1, coalesce(max(seq), 0) + 1, $2, $3
                     FROM soar.job_events WHERE job = $1",
                    &[&lost.id, &now_ms, &event],
                )?;
                reaped.push(lost);
            }
            if !reaped.is_empty() {
                notify(&mut tx)?;
            }
            tx.commit().context("committing the reaped leases")?;
            Ok(reaped)
        })
    }
}

/// One claim on `c` (see [`QueueDb::claim`]), in a transaction of its own.
/// May leave a session-level provider lock held: the caller releases them.
fn claim_in(
    c: &mut Client,
    worker: &str,
    lease_secs: f64,
    limit: i64,
    projects: &[String],
    plans: &[String],
    now_ms: i64,
) -> anyhow::Result<Option<String>> {
    let mut tx = c.transaction().context("starting a claim")?;
    let mut passed: Vec<String> = Vec::new();
    while passed.len() < CLAIM_SCAN {
        let Some(row) = tx.query_opt(
            "SELECT id, project, environment, provider FROM soar.jobs
             WHERE status = 'queued' AND project = ANY($1) AND id <> ALL($2)
               AND (retry_at IS NULL OR retry_at <= $3)
               AND (plan IS NULL OR plan = ANY($4))
             ORDER BY priority DESC, created_at, seq
             LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[&projects, &passed, &now_ms, &plans],
        )?
        else {
            break;
        };
        let (id, project, env, provider): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // One provider lock at a time, released as soon as its job
        // does not fit (so two claimers never wait on each other's
        // providers), else after the claim commits.
        tx.execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&CLAIM_CLASS, &provider],
        )?;
        let fits: bool = tx
            .query_one(
                "SELECT (SELECT count(*) FROM soar.jobs
                         WHERE status = 'running' AND provider = $1) < $2
                    AND NOT EXISTS (SELECT 1 FROM soar.jobs
                         WHERE project = $3 AND environment = $4 AND id <> $5
                           AND (status = 'running'
                                OR (status = 'queued' AND retry_at IS NOT NULL)))",
                &[&provider, &limit, &project, &env, &id],
            )?
            .get(0);
        if !fits {
            tx.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))",
                &[&CLAIM_CLASS, &provider],
            )?;
            passed.push(id);
            continue;
        }
        tx.execute(
            &format!(
                "UPDATE soar.jobs SET status = 'running', worker = $2,
                     lease_until = now() + make_interval(secs => $3::float8),
                     started_at = coalesce(started_at, {DB_MS}), retry_at = NULL,
                     cancel_requested = false
                 WHERE id = $1"
            ),
            &[&id, &worker, &lease_secs],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO soar.job_attempts (job, n, started_at, worker)
                 VALUES ($1, (SELECT coalesce(max(n), 0) + 1 FROM soar.job_attempts
                              WHERE job = $1), {DB_MS}, $2)"
            ),
            &[&id, &worker],
        )?;
        tx.commit().context("committing a claim")?;
        return Ok(Some(id));
    }
    tx.commit()?;
    Ok(None)
}

/// `NOTIFY` the queue's channel inside the caller's transaction (delivered
/// when it commits).
pub fn notify(tx: &mut impl postgres::GenericClient) -> anyhow::Result<()> {
    tx.execute("SELECT pg_notify($1, '')", &[&JOBS_CHANNEL])?;
    Ok(())
}

/// Call `on_notify` whenever the queue's channel is notified, on a thread
/// of its own with a connection of its own, reconnecting (with a pause)
/// when the connection breaks, for the life of the process. Idle workers
/// also poll, so a missed notification only delays a job.
pub fn listen(
    db: &QueueDb,
    on_notify: impl Fn() + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let target = Target::parse(&db.url, db.password_allowed)?;
    let spawned = std::thread::Builder::new()
        .name("soar-queue-listen".into())
        .spawn(move || {
            loop {
                if let Err(e) = listen_once(&target, &on_notify) {
                    tracing::warn!("queue notifications: {e:#}; reconnecting");
                }
                std::thread::sleep(Duration::from_secs(1));
                // A reconnect may have missed notifications: look anyway.
                on_notify();
            }
        })
        .context("starting the queue's listener thread")?;
    Ok(spawned)
}

/// One connection's worth of [`listen`]: returns when it breaks.
fn listen_once(target: &Target, on_notify: &impl Fn()) -> anyhow::Result<()> {
    let mut client = target.connect()?;
    client.batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))?;
    loop {
        let next = client
            .notifications()
            .timeout_iter(Duration::from_secs(30))
            .next()?;
        match next {
            Some(_) => on_notify(),
            // Quiet for a while: check the connection is still there.
            None => drop(client.simple_query("")?),
        }
    }
}
