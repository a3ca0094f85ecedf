//! Deploy jobs as rows of the server store, and their events (the JSON lines
//! the deploy printed), so both survive a restart. With a shared queue
//! (`[queue] url`), each operation goes to the PostgreSQL tables every
//! worker shares instead ([`super::shared_queue`]).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use super::store::{Db, random_hex, rfc3339};
use crate::state::now_ms;

// A job's `status`, as stored and as the API shows it.

/// Accepted, waiting for a slot of its provider.
pub const QUEUED: &str = "queued";
/// Its deploy process is running (or, once cancelled, being stopped).
pub const RUNNING: &str = "running";
/// Its deploy exited 0.
pub const SUCCEEDED: &str = "succeeded";
/// Its deploy exited non-zero or could not start.
pub const FAILED: &str = "failed";
/// Cancelled while queued, or stopped by a cancel while running.
pub const CANCELLED: &str = "cancelled";
/// The server stopped while it ran (see [`interrupt_running`]).
pub const INTERRUPTED: &str = "interrupted";

/// Every status a job can have.
pub const STATUSES: &[&str] = &[QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED];

/// Whether a job in `status` will never change again.
pub fn is_final(status: &str) -> bool {
    matches!(status, SUCCEEDED | FAILED | CANCELLED | INTERRUPTED)
}

/// Most events kept per job (a deploy prints a few dozen).
pub const MAX_EVENTS: i64 = 10_000;

/// One job as the API shows it. Times are RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Random hex, unique in this server's store.
    pub id: String,
    /// `deploy` or `rollback`.
    pub kind: String,
    /// The project's NAME in the server config.
    pub project: String,
    /// The environment of the project's soar.toml it deploys.
    pub environment: String,
    /// That environment's provider: jobs of one provider share its slots.
    pub provider: String,
    /// Higher runs first.
    pub priority: i64,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or
    /// `interrupted` (the server stopped while it ran).
    pub status: String,
    /// The name of the token that submitted it.
    pub actor: String,
    /// When the job was accepted.
    pub created_at: String,
    /// When its deploy started; none while queued.
    pub started_at: Option<String>,
    /// When it reached a final status; none until then.
    pub finished_at: Option<String>,
    /// The deploy process's exit code; none while it runs, or if it never
    /// started or a signal ended it.
    pub exit_code: Option<i64>,
    /// The tail of the deploy's error output, when it failed.
    pub error: Option<String>,
    /// The project's audit-trail record of this job's command (`soar
    /// history` shows the same): its phases with their timings and
    /// outcomes. Present once the job ended, if the command got as far as
    /// recording one.
    #[schema(value_type = Option<Object>)]
    pub audit: Option<serde_json::Value>,
    /// The saved plan (from `POST /v1/plans`) this deploy applies exactly.
    pub plan: Option<String>,
    /// While queued after a transient failure: when the next attempt may
    /// start (the job keeps its environment's turn meanwhile).
    pub retry_at: Option<String>,
    /// What the request asked beyond the project's soar.toml.
    #[serde(flatten)]
    pub options: Options,
    /// Each run of the job's deploy, oldest first: one, or more when a
    /// transient failure was retried.
    pub attempts: Vec<Attempt>,
}

/// A deploy's options beyond the project's soar.toml, kept with the job so
/// a retry (or a restarted server) runs it the same way. Only NAMEs of
/// secrets, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Options {
    /// `false`: skip the project's `[register]` for this deploy; `true`:
    /// require one; none: as soar.toml says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_register: Option<bool>,
    /// Extra service variables: variable -> NAME of a server-side secret
    /// (`[secrets]` of soar-server.toml), resolved by the server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

impl Options {
    /// Whether the deploy runs the project exactly as its soar.toml says.
    pub fn is_empty(&self) -> bool {
        self.auto_register.is_none() && self.secrets.is_empty()
    }
}

/// One run of a job's deploy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1, 2, ...
    pub n: i64,
    /// When it started (RFC 3339 UTC, milliseconds).
    pub started_at: String,
    /// When it ended; none while it runs.
    pub finished_at: Option<String>,
    /// The deploy's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why it failed; none when it succeeded or still runs.
    pub error: Option<String>,
    /// Why the failure counted as transient (so the job was retried or
    /// ran out of retries); none for a permanent failure or a success.
    pub transient: Option<String>,
}

const COLUMNS: &str = "id, kind, project, environment, provider, priority, status, actor, created_at, started_at, finished_at, exit_code, error, audit, plan, retry_at, options";

fn job_of(r: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        kind: r.get(1)?,
        project: r.get(2)?,
        environment: r.get(3)?,
        provider: r.get(4)?,
        priority: r.get(5)?,
        status: r.get(6)?,
        actor: r.get(7)?,
        created_at: rfc3339(r.get(8)?),
        started_at: r.get::<_, Option<i64>>(9)?.map(rfc3339),
        finished_at: r.get::<_, Option<i64>>(10)?.map(rfc3339),
        exit_code: r.get(11)?,
        error: r.get(12)?,
        audit: r
            .get::<_, Option<String>>(13)?
            .and_then(|a| serde_json::from_str(&a).ok()),
        plan: r.get(14)?,
        retry_at: r.get::<_, Option<i64>>(15)?.map(rfc3339),
        options: r
            .get::<_, Option<String>>(16)?
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
        attempts: Vec::new(),
    })
}

/// The attempts of job `id`, oldest first.
pub fn attempts(db: &Db, id: &str) -> anyhow::Result<Vec<Attempt>> {
    if let Some(shared) = db.shared() {
        return shared.attempts(id);
    }
    let conn = db.conn();
    let mut stmt = conn.prepare(
        "SELECT n, started_at, finished_at, exit_code, error, transient FROM attempts WHERE job = ?1 ORDER BY n",
    )?;
    let rows = stmt.query_map(params![id], |r| {
        Ok(Attempt {
            n: r.get(0)?,
            started_at: rfc3339(r.get(1)?),
            finished_at: r.get::<_, Option<i64>>(2)?.map(rfc3339),
            exit_code: r.get(3)?,
            error: r.get(4)?,
            transient: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn with_attempts(db: &Db, mut job: Job) -> anyhow::Result<Job> {
    job.attempts = attempts(db, &job.id)?;
    Ok(job)
}

/// What a new job is.
pub struct NewJob<'a> {
    /// `deploy` or `rollback`.
    pub kind: &'a str,
    /// The project's NAME in the server config.
    pub project: &'a str,
    /// The environment to deploy.
    pub environment: &'a str,
    /// That environment's provider, which decides the job's slot.
    pub provider: &'a str,
    /// -1000..=1000, higher first (the API checks the bounds).
    pub priority: i64,
    /// The name of the token that submitted it.
    pub actor: &'a str,
    /// A saved plan's id, for a deploy that applies it.
    pub plan: Option<&'a str>,
    /// Options beyond the project's soar.toml.
    pub options: &'a Options,
}

/// Queue a new job; returns it as stored (with its id and `created_at`).
pub fn insert(db: &Db, new: &NewJob<'_>) -> anyhow::Result<Job> {
    if let Some(shared) = db.shared() {
        return shared.insert(new);
    }
    let id = random_hex(8);
    let options = (!new.options.is_empty())
        .then(|| serde_json::to_string(new.options))
        .transpose()?;
    db.conn().execute(
        "INSERT INTO jobs (id, kind, project, environment, provider, priority, status, actor, created_at, plan, options) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![id, new.kind, new.project, new.environment, new.provider, new.priority, QUEUED, new.actor, now_ms(), new.plan, options],
    )?;
    get(db, &id)?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))
}

/// Job `id` with its attempts, if the store has it.
pub fn get(db: &Db, id: &str) -> anyhow::Result<Option<Job>> {
    if let Some(shared) = db.shared() {
        return shared.get(id);
    }
    let job = db
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
            params![id],
            job_of,
        )
        .optional()?;
    job.map(|j| with_attempts(db, j)).transpose()
}

/// Queued jobs, the first to run first: highest priority, then oldest.
pub fn queued(db: &Db) -> anyhow::Result<Vec<Job>> {
    if let Some(shared) = db.shared() {
        return shared.queued();
    }
    let conn = db.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE status = ?1 ORDER BY priority DESC, created_at, rowid"
    ))?;
    let rows = stmt.query_map(params![QUEUED], job_of)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What `GET /v1/deploys` asks for: every filter optional, newest first.
#[derive(Debug, Default, Clone)]
pub struct Listing<'a> {
    /// Only jobs of this project.
    pub project: Option<&'a str>,
    /// Only jobs of this environment.
    pub environment: Option<&'a str>,
    /// Only jobs in this status.
    pub status: Option<&'a str>,
    /// At most this many jobs.
    pub limit: u32,
}

/// Jobs matching `l`, newest first (by acceptance).
pub fn list(db: &Db, l: &Listing<'_>) -> anyhow::Result<Vec<Job>> {
    if let Some(shared) = db.shared() {
        return shared.list(l);
    }
    let conn = db.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs \
         WHERE (?1 IS NULL OR project = ?1) AND (?2 IS NULL OR environment = ?2) \
         AND (?3 IS NULL OR status = ?3) \
         ORDER BY created_at DESC, rowid DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![l.project, l.environment, l.status, l.limit], job_of)?;
    let jobs: Vec<Job> = rows.collect::<Result<_, _>>()?;
    drop(stmt);
    drop(conn);
    jobs.into_iter().map(|j| with_attempts(db, j)).collect()
}

/// `(queued, running)` counts.
pub fn counts(db: &Db) -> anyhow::Result<(i64, i64)> {
    if let Some(shared) = db.shared() {
        return shared.counts();
    }
    let conn = db.conn();
    let n = |s: &str| -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE status = ?1",
            params![s],
            |r| r.get(0),
        )
    };
    Ok((n(QUEUED)?, n(RUNNING)?))
}

/// queued -> running, opening its next attempt; false if it was no longer
/// queued (cancelled meanwhile). `started_at` stays the first attempt's.
/// The single-server path: workers of a shared queue claim instead
/// ([`super::shared_queue::SharedJobs::claim`]).
pub fn start(db: &Db, id: &str) -> anyhow::Result<bool> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    let now = now_ms();
    let n = tx.execute(
        "UPDATE jobs SET status = ?2, started_at = COALESCE(started_at, ?3), retry_at = NULL WHERE id = ?1 AND status = ?4",
        params![id, RUNNING, now, QUEUED],
    )?;
    if n == 1 {
        tx.execute(
            "INSERT INTO attempts (job, n, started_at) VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE job = ?1), ?2)",
            params![id, now],
        )?;
    }
    tx.commit()?;
    Ok(n == 1)
}

/// Close the open attempt of job `id`: its exit code, its error, and why
/// that error was transient (when it was). Returns the attempt's number.
pub fn end_attempt(
    db: &Db,
    id: &str,
    exit_code: Option<i32>,
    error: Option<&str>,
    transient: Option<&str>,
) -> anyhow::Result<u32> {
    if let Some(shared) = db.shared() {
        return shared.end_attempt(id, exit_code, error, transient);
    }
    let conn = db.conn();
    conn.execute(
        "UPDATE attempts SET finished_at = ?2, exit_code = ?3, error = ?4, transient = ?5 WHERE job = ?1 AND finished_at IS NULL",
        params![id, now_ms(), exit_code, error, transient],
    )?;
    let n: i64 = conn.query_row(
        "SELECT COALESCE(MAX(n), 0) FROM attempts WHERE job = ?1",
        params![id],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// running -> queued again, to be retried no earlier than `retry_at_ms`;
/// false if it was not running.
pub fn requeue(db: &Db, id: &str, retry_at_ms: i64) -> anyhow::Result<bool> {
    if let Some(shared) = db.shared() {
        return shared.requeue(id, retry_at_ms);
    }
    let n = db.conn().execute(
        "UPDATE jobs SET status = ?2, retry_at = ?3 WHERE id = ?1 AND status = ?4",
        params![id, QUEUED, retry_at_ms, RUNNING],
    )?;
    Ok(n == 1)
}

/// running -> a final status.
pub fn finish(
    db: &Db,
    id: &str,
    status: &str,
    exit_code: Option<i32>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(shared) = db.shared() {
        return shared.finish(id, status, exit_code, error);
    }
    db.conn().execute(
        "UPDATE jobs SET status = ?2, finished_at = ?3, exit_code = ?4, error = ?5 WHERE id = ?1 AND status = ?6",
        params![id, status, now_ms(), exit_code, error, RUNNING],
    )?;
    Ok(())
}

/// The earliest `retry_at` (ms) of a queued job that is later than `now`.
pub fn next_retry_after(db: &Db, now: i64) -> anyhow::Result<Option<i64>> {
    if let Some(shared) = db.shared() {
        return shared.next_retry_after(now);
    }
    Ok(db.conn().query_row(
        "SELECT MIN(retry_at) FROM jobs WHERE status = ?1 AND retry_at > ?2",
        params![QUEUED, now],
        |r| r.get(0),
    )?)
}

/// Attach the audit-trail record of the job's command.
pub fn set_audit(db: &Db, id: &str, audit: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(shared) = db.shared() {
        return shared.set_audit(id, audit);
    }
    db.conn().execute(
        "UPDATE jobs SET audit = ?2 WHERE id = ?1",
        params![id, audit.to_string()],
    )?;
    Ok(())
}

/// queued -> cancelled; false if it was not queued.
pub fn cancel_queued(db: &Db, id: &str) -> anyhow::Result<bool> {
    if let Some(shared) = db.shared() {
        return shared.cancel_queued(id);
    }
    let n = db.conn().execute(
        "UPDATE jobs SET status = ?2, finished_at = ?3 WHERE id = ?1 AND status = ?4",
        params![id, CANCELLED, now_ms(), QUEUED],
    )?;
    Ok(n == 1)
}

/// At startup: jobs a previous server left running did not finish under
/// its watch. Returns how many.
pub fn interrupt_running(db: &Db) -> anyhow::Result<usize> {
    if let Some(shared) = db.shared() {
        return shared.interrupt_running();
    }
    let conn = db.conn();
    conn.execute(
        "UPDATE attempts SET finished_at = ?1, error = COALESCE(error, ?2) WHERE finished_at IS NULL AND job IN (SELECT id FROM jobs WHERE status = ?3)",
        params![now_ms(), "the server stopped while this attempt ran", RUNNING],
    )?;
    Ok(conn.execute(
        "UPDATE jobs SET status = ?1, finished_at = ?2, error = COALESCE(error, ?3) WHERE status = ?4",
        params![
            INTERRUPTED,
            now_ms(),
            "the server stopped while this job ran; its events show how far it got. Submit it again: a deploy converges",
            RUNNING
        ],
    )?)
}

/// One recorded event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// 1, 2, ...: the SSE event id.
    pub seq: i64,
    /// When the server recorded it (RFC 3339 UTC, milliseconds).
    pub at: String,
    /// One line `soar deploy --json` printed.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Append an event; returns its sequence number (from 1), or `None` once
/// the job has [`MAX_EVENTS`].
pub fn add_event(db: &Db, job: &str, data: &serde_json::Value) -> anyhow::Result<Option<i64>> {
    if let Some(shared) = db.shared() {
        return shared.add_event(job, data);
    }
    let conn = db.conn();
    let next: i64 = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job = ?1",
        params![job],
        |r| r.get(0),
    )?;
    if next > MAX_EVENTS {
        return Ok(None);
    }
    conn.execute(
        "INSERT INTO events (job, seq, at, data) VALUES (?1, ?2, ?3, ?4)",
        params![job, next, now_ms(), data.to_string()],
    )?;
    Ok(Some(next))
}

/// Events of `job` after `seq`, in order.
pub fn events_after(db: &Db, job: &str, seq: i64) -> anyhow::Result<Vec<Event>> {
    if let Some(shared) = db.shared() {
        return shared.events_after(job, seq);
    }
    let conn = db.conn();
    let mut stmt =
        conn.prepare("SELECT seq, at, data FROM events WHERE job = ?1 AND seq > ?2 ORDER BY seq")?;
    let rows = stmt.query_map(params![job, seq], |r| {
        let data: String = r.get(2)?;
        Ok(Event {
            seq: r.get(0)?,
            at: rfc3339(r.get(1)?),
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let none = Options::default();
        let new = |env, priority| NewJob {
            options: &none,
            kind: "deploy",
            project: "app",
            environment: env,
            provider: "local",
            priority,
            actor: "ci",
            plan: None,
        };
        let a = insert(&db, &new("dev", 0)).unwrap();
        let b = insert(&db, &new("prod", 5)).unwrap();
        let c = insert(&db, &new("dev", 0)).unwrap();
        let order: Vec<String> = queued(&db).unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(order, [b.id.clone(), a.id.clone(), c.id.clone()]);
        assert!(start(&db, &a.id).unwrap());
        assert!(!start(&db, &a.id).unwrap());
        // A transient failure: back in the queue, then a second attempt.
        assert_eq!(
            end_attempt(&db, &a.id, Some(1), Some("API error 503"), Some("5xx")).unwrap(),
            1
        );
        assert!(requeue(&db, &a.id, now_ms() + 10).unwrap());
        assert!(get(&db, &a.id).unwrap().unwrap().retry_at.is_some());
        assert!(start(&db, &a.id).unwrap());
        let tries = get(&db, &a.id).unwrap().unwrap().attempts;
        assert_eq!(tries.len(), 2);
        assert_eq!(tries[0].transient.as_deref(), Some("5xx"));
        assert!(tries[0].finished_at.is_some() && tries[1].finished_at.is_none());
        assert!(cancel_queued(&db, &c.id).unwrap());
        assert!(!start(&db, &c.id).unwrap());
        assert_eq!(
            add_event(&db, &a.id, &serde_json::json!({"type": "x"})).unwrap(),
            Some(1)
        );
        assert_eq!(
            add_event(&db, &a.id, &serde_json::json!(2)).unwrap(),
            Some(2)
        );
        assert_eq!(events_after(&db, &a.id, 1).unwrap()[0].seq, 2);
        assert_eq!(counts(&db).unwrap(), (1, 1));
        assert_eq!(interrupt_running(&db).unwrap(), 1);
        let a = get(&db, &a.id).unwrap().unwrap();
        assert_eq!(a.status, INTERRUPTED);
        assert!(a.attempts.iter().all(|t| t.finished_at.is_some()));
        assert!(a.error.is_some() && a.finished_at.is_some());
        assert!(get(&db, "nope").unwrap().is_none());
    }
}
