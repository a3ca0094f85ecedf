//! The job store of a `soar serve` worker of a shared queue: the same
//! operations as [`super::jobs`] on the SQLite store, on the PostgreSQL
//! tables every worker shares (`[queue] url` in soar-server.toml).
//!
//! With a shared queue, jobs, their attempts and their events live in the
//! database, so a job submitted to one server may run on another and any
//! server shows it; tokens and saved plans stay in each server's own store.
//! [`super::jobs`] hands each call here when the server has a shared queue
//! ([`super::store::Db::shared`]). The claiming, lease and wake-up protocol
//! is [`crate::state::QueueDb`]'s; this module adds the job rows the API
//! reads, and fences every write about a running job by this worker's name,
//! so a worker that lost a job (its lease expired) cannot record an outcome
//! over the run that replaced it.

use std::time::Duration;

use anyhow::Context as _;
use postgres::Row;

use super::jobs::{
    Attempt, CANCELLED, Event, INTERRUPTED, Job, Listing, MAX_EVENTS, NewJob, QUEUED, RUNNING,
};
use super::store::{random_hex, rfc3339};
use crate::state::{DB_MS, QueueDb, Reaped, Renewal, notify_jobs, now_ms};

/// How long a claimed job's lease lasts unless its worker renews it (every
/// third of it); a worker silent for longer is taken for dead.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

const COLUMNS: &str = "id, kind, project, environment, provider, priority, status, actor, created_at, started_at, finished_at, exit_code, error, audit, plan, retry_at, options";

/// This worker's connection to the shared queue.
#[derive(Debug)]
pub struct SharedJobs {
    db: QueueDb,
    worker: String,
    lease: Duration,
}

fn job_of(r: &Row) -> Job {
    Job {
        id: r.get(0),
        kind: r.get(1),
        project: r.get(2),
        environment: r.get(3),
        provider: r.get(4),
        priority: r.get(5),
        status: r.get(6),
        actor: r.get(7),
        created_at: rfc3339(r.get(8)),
        started_at: r.get::<_, Option<i64>>(9).map(rfc3339),
        finished_at: r.get::<_, Option<i64>>(10).map(rfc3339),
        exit_code: r.get(11),
        error: r.get(12),
        audit: r
            .get::<_, Option<String>>(13)
            .and_then(|a| serde_json::from_str(&a).ok()),
        plan: r.get(14),
        retry_at: r.get::<_, Option<i64>>(15).map(rfc3339),
        options: r
            .get::<_, Option<String>>(16)
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
        attempts: Vec::new(),
    }
}

/// The attempts of each of `jobs`, attached, in one query.
fn with_attempts(c: &mut postgres::Client, mut jobs: Vec<Job>) -> anyhow::Result<Vec<Job>> {
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let rows = c.query(
        "SELECT job, n, started_at, finished_at, exit_code, error, transient
         FROM soar.job_attempts WHERE job = ANY($1) ORDER BY job, n",
        &[&ids],
    )?;
    for row in rows {
        let job: String = row.get(0);
        if let Some(j) = jobs.iter_mut().find(|j| j.id == job) {
            j.attempts.push(Attempt {
                n: row.get(1),
                started_at: rfc3339(row.get(2)),
                finished_at: row.get::<_, Option<i64>>(3).map(rfc3339),
                exit_code: row.get(4),
                error: row.get(5),
                transient: row.get(6),
            });
        }
    }
    Ok(jobs)
}

impl SharedJobs {
    /// Connect to the queue at `url` (from soar-server.toml, so without a
    /// password: PGPASSWORD or ~/.pgpass give it) as a new worker whose
    /// claims last `lease` unless renewed.
    pub fn connect(url: &str, lease: Duration) -> anyhow::Result<Self> {
        let db = QueueDb::connect(url, false)?;
        let host = crate::state::HolderInfo::current()
            .host
            .unwrap_or_else(|| "localhost".into());
        let worker = format!("{host}:{}:{}", std::process::id(), random_hex(3));
        Ok(Self { db, worker, lease })
    }

    /// This worker's name (host, pid and a random suffix: unique even
    /// across restarts with a reused pid).
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Where the queue is (no password), for messages.
    pub fn shown(&self) -> &str {
        self.db.shown()
    }

    /// How long a lease lasts; renew every third of it.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Call `on_notify` whenever a job is queued or leaves the running
    /// set, on any worker.
    pub fn listen(&self, on_notify: impl Fn() + Send + 'static) -> anyhow::Result<()> {
        crate::state::listen_for_jobs(&self.db, on_notify).map(drop)
    }

    /// Queue a new job and wake the idle workers.
    pub fn insert(&self, new: &NewJob<'_>) -> anyhow::Result<Job> {
        let id = random_hex(8);
        let options = (!new.options.is_empty())
            .then(|| serde_json::to_string(new.options))
            .transpose()?;
        self.db.run(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO soar.jobs (id, kind, project, environment, provider, priority,
                                       status, actor, created_at, plan, options)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &id,
                    &new.kind,
                    &new.project,
                    &new.environment,
                    &new.provider,
                    &new.priority,
                    &QUEUED,
                    &new.actor,
                    &now_ms(),
                    &new.plan,
                    &options,
                ],
            )?;
            notify_jobs(&mut tx)?;
            tx.commit()?;
            Ok(())
        })?;
        self.get(&id)?
            .ok_or_else(|| anyhow::anyhow!("job {id} vanished"))
    }

    /// Job `id` with its attempts.
    pub fn get(&self, id: &str) -> anyhow::Result<Option<Job>> {
        self.db.run(|c| {
            let row = c.query_opt(
                &format!("SELECT {COLUMNS} FROM soar.jobs WHERE id = $1"),
                &[&id],
            )?;
            let jobs = row.iter().map(job_of).collect();
            Ok(with_attempts(c, jobs)?.pop())
        })
    }

    /// The attempts of job `id`, oldest first.
    pub fn attempts(&self, id: &str) -> anyhow::Result<Vec<Attempt>> {
        Ok(self.get(id)?.map(|j| j.attempts).unwrap_or_default())
    }

    /// Queued jobs, the first to run first.
    pub fn queued(&self) -> anyhow::Result<Vec<Job>> {
        self.db.run(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {COLUMNS} FROM soar.jobs WHERE status = $1
                     ORDER BY priority DESC, created_at, seq"
                ),
                &[&QUEUED],
            )?;
            Ok(rows.iter().map(job_of).collect())
        })
    }

    /// Jobs matching `l`, newest first.
    pub fn list(&self, l: &Listing<'_>) -> anyhow::Result<Vec<Job>> {
        let limit = i64::from(l.limit);
        self.db.run(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {COLUMNS} FROM soar.jobs
                     WHERE ($1::text IS NULL OR project = $1)
                       AND ($2::text IS NULL OR environment = $2)
                       AND ($3::text IS NULL OR status = $3)
                     ORDER BY created_at DESC, seq DESC LIMIT $4"
                ),
                &[&l.project, &l.environment, &l.status, &limit],
            )?;
            with_attempts(c, rows.iter().map(job_of).collect())
        })
    }

    /// `(queued, running)` counts, across every worker.
    pub fn counts(&self) -> anyhow::Result<(i64, i64)> {
        self.db.run(|c| {
            let row = c.query_one(
                "SELECT count(*) FILTER (WHERE status = $1), count(*) FILTER (WHERE status = $2)
                 FROM soar.jobs WHERE status IN ($1, $2)",
                &[&QUEUED, &RUNNING],
            )?;
            Ok((row.get(0), row.get(1)))
        })
    }

    /// Claim the next job that fits (see [`QueueDb::claim`]) among
    /// `projects`, with `per_provider` slots per provider across workers; a
    /// saved-plan deploy only when its plan is among `plans` (saved plans
    /// stay on the server that made them).
    pub fn claim(
        &self,
        per_provider: usize,
        projects: &[String],
        plans: &[String],
    ) -> anyhow::Result<Option<Job>> {
        let claimed = self.db.claim(
            &self.worker,
            self.lease,
            per_provider,
            projects,
            plans,
            now_ms(),
        )?;
        match claimed {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// Renew this worker's leases on the jobs it runs, `running`.
    pub fn renew(&self, running: &[String]) -> anyhow::Result<Renewal> {
        self.db.renew(&self.worker, self.lease, running)
    }

    /// Take back the jobs of workers whose leases expired.
    pub fn reap(&self) -> anyhow::Result<Vec<Reaped>> {
        self.db.reap(now_ms())
    }

    /// Close this worker's open attempt of job `id`; its number.
    pub fn end_attempt(
        &self,
        id: &str,
        exit_code: Option<i32>,
        error: Option<&str>,
        transient: Option<&str>,
    ) -> anyhow::Result<u32> {
        let code = exit_code.map(i64::from);
        self.db.run(|c| {
            c.execute(
                "UPDATE soar.job_attempts SET finished_at = $3, exit_code = $4, error = $5,
                     transient = $6
                 WHERE job = $1 AND worker = $2 AND finished_at IS NULL",
                &[&id, &self.worker, &now_ms(), &code, &error, &transient],
            )?;
            let n: i64 = c
                .query_one(
                    "SELECT coalesce(max(n), 0) FROM soar.job_attempts WHERE job = $1",
                    &[&id],
                )?
                .get(0);
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    /// This worker's running job back to the queue, to retry no earlier
    /// than `retry_at_ms`; false if it is no longer this worker's.
    pub fn requeue(&self, id: &str, retry_at_ms: i64) -> anyhow::Result<bool> {
        self.leave_running(
            id,
            "UPDATE soar.jobs SET status = 'queued', retry_at = $3, worker = NULL,
                 lease_until = NULL
             WHERE id = $1 AND worker = $2 AND status = 'running'",
            &retry_at_ms,
        )
    }

    /// This worker's running job to a final `status`.
    pub fn finish(
        &self,
        id: &str,
        status: &str,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let code = exit_code.map(i64::from);
        self.db.run(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                &format!(
                    "UPDATE soar.jobs SET status = $3, finished_at = {DB_MS}, exit_code = $4,
                         error = $5, worker = NULL, lease_until = NULL
                     WHERE id = $1 AND worker = $2 AND status = 'running'"
                ),
                &[&id, &self.worker, &status, &code, &error],
            )?;
            notify_jobs(&mut tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Run `sql` (`$1` id, `$2` this worker, `$3` `value`) and, when it
    /// changed the job, wake the other workers: a slot was freed.
    fn leave_running(
        &self,
        id: &str,
        sql: &str,
        value: &(dyn postgres::types::ToSql + Sync),
    ) -> anyhow::Result<bool> {
        self.db.run(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(sql, &[&id, &self.worker, value])?;
            if n == 1 {
                notify_jobs(&mut tx)?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    /// The earliest `retry_at` later than `now` of a queued job.
    pub fn next_retry_after(&self, now: i64) -> anyhow::Result<Option<i64>> {
        self.db.run(|c| {
            Ok(c.query_one(
                "SELECT min(retry_at) FROM soar.jobs WHERE status = $1 AND retry_at > $2",
                &[&QUEUED, &now],
            )?
            .get(0))
        })
    }

    /// Attach the audit-trail record of the job's command.
    pub fn set_audit(&self, id: &str, audit: &serde_json::Value) -> anyhow::Result<()> {
        let audit = audit.to_string();
        self.db.run(|c| {
            c.execute(
                "UPDATE soar.jobs SET audit = $2 WHERE id = $1",
                &[&id, &audit],
            )?;
            Ok(())
        })
    }

    /// queued -> cancelled; false if it was not queued.
    pub fn cancel_queued(&self, id: &str) -> anyhow::Result<bool> {
        self.db.run(|c| {
            Ok(c.execute(
                "UPDATE soar.jobs SET status = $2, finished_at = $3 WHERE id = $1 AND status = $4",
                &[&id, &CANCELLED, &now_ms(), &QUEUED],
            )? == 1)
        })
    }

    /// Ask the worker running job `id` (another one) to stop it, at its
    /// next lease renewal; false if it is not running.
    pub fn request_cancel(&self, id: &str) -> anyhow::Result<bool> {
        self.db.run(|c| {
            Ok(c.execute(
                "UPDATE soar.jobs SET cancel_requested = true WHERE id = $1 AND status = $2",
                &[&id, &RUNNING],
            )? == 1)
        })
    }

    /// On shutdown past the deadline: the jobs this worker still runs end
    /// `interrupted` (they end with this process). Other workers' jobs are
    /// theirs. Returns how many.
    pub fn interrupt_running(&self) -> anyhow::Result<usize> {
        let note = "the server stopped while this attempt ran";
        let error = "the server running it stopped; its events show how far it got. Submit it again: a deploy converges";
        self.db.run(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE soar.job_attempts SET finished_at = $2, error = coalesce(error, $3)
                 WHERE worker = $1 AND finished_at IS NULL",
                &[&self.worker, &now_ms(), &note],
            )?;
            let n = tx.execute(
                "UPDATE soar.jobs SET status = $2, finished_at = $3, error = coalesce(error, $4),
                     worker = NULL, lease_until = NULL
                 WHERE worker = $1 AND status = 'running'",
                &[&self.worker, &INTERRUPTED, &now_ms(), &error],
            )?;
            notify_jobs(&mut tx)?;
            tx.commit()?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Append an event; its sequence number, or `None` past [`MAX_EVENTS`].
    pub fn add_event(&self, job: &str, data: &serde_json::Value) -> anyhow::Result<Option<i64>> {
        let data = data.to_string();
        self.db.run(|c| {
            let row = c.query_opt(
                "INSERT INTO soar.job_events (job, seq, at, data)
                 SELECT $1, coalesce(max(seq), 0) + 1, $2, $3 FROM soar.job_events
                 WHERE job = $1 HAVING coalesce(max(seq), 0) < $4
                 RETURNING seq",
                &[&job, &now_ms(), &data, &MAX_EVENTS],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Events of `job` after `seq`, in order.
    pub fn events_after(&self, job: &str, seq: i64) -> anyhow::Result<Vec<Event>> {
        self.db
            .run(|c| {
                let rows = c.query(
                    "SELECT seq, at, data FROM soar.job_events
                     WHERE job = $1 AND seq > $2 ORDER BY seq",
                    &[&job, &seq],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let data: String = r.get(2);
                        Event {
                            seq: r.get(0),
                            at: rfc3339(r.get(1)),
                            data: serde_json::from_str(&data)
                                .unwrap_or(serde_json::Value::String(data)),
                        }
                    })
                    .collect())
            })
            .with_context(|| format!("reading the events of job {job}"))
    }
}
