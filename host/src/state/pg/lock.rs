//! The project lock on PostgreSQL: a session-level advisory lock held on a
//! connection of its own, plus a row of `soar.locks` naming the holder.
//!
//! The server frees a session's advisory locks when the session ends for
//! any reason: the holder exiting, being SIGKILLed, or its network going
//! away (once the server notices the dead socket). So, as with the file
//! lock, there is no stale lock to clean up. The row is only what a waiting
//! `soar` prints; it counts only while its `backend_pid` really holds the
//! advisory lock (checked in `pg_locks`), so a row left by a killed holder
//! is never shown as the holder.
//!
//! Each project's lock key is `(LOCK_CLASS, soar.locks.key)`, a number the
//! database hands out per project, so two projects never contend. As with
//! the file locks, a command on one environment takes the project's lock
//! *shared* plus its environment's lock `(ENV_LOCK_CLASS,
//! soar.env_locks.key)` *exclusive*, on the same session, and names itself
//! in its `soar.env_locks` row; a command spanning every environment takes
//! the project's lock exclusive and names itself in `soar.locks`.

use std::time::{Duration, Instant};

use anyhow::Context;
use postgres::Client;

use super::schema::{self, ENV_LOCK_CLASS, LOCK_CLASS};
use super::{Session, Target};
use crate::state::clock::now_ms;
use crate::state::lock::{HolderInfo, LockError, hostname};

/// First pause between attempts while waiting; doubles up to `POLL_MAX`.
/// Each attempt is one round trip, so the cap is higher than the file
/// lock's.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(500);

/// The holder of the lock as `pg_locks` confirms it: the row's session
/// holds the project's advisory lock exclusively right now (shared
/// holders are named by their environment rows).
const LIVE_HOLDER: &str =
    "SELECT l.pid, l.host, l.user_name, l.command, l.started_at, l.backend_pid
     FROM soar.locks l
     WHERE l.project = $1 AND l.backend_pid IS NOT NULL AND EXISTS (
         SELECT 1 FROM pg_locks p
         WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 2
           AND p.mode = 'ExclusiveLock'
           AND p.classid = $2::int::oid AND p.objid = l.key::oid AND p.pid = l.backend_pid
           AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

/// The live holders of the project's environment locks (of `$3` only,
/// unless it is NULL), by environment; confirmed in `pg_locks` as above.
const LIVE_ENV_HOLDERS: &str =
    "SELECT l.pid, l.host, l.user_name, l.command, l.started_at, l.backend_pid, l.env
     FROM soar.env_locks l
     WHERE l.project = $1 AND ($3::text IS NULL OR l.env = $3)
       AND l.backend_pid IS NOT NULL AND EXISTS (
         SELECT 1 FROM pg_locks p
         WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 2
           AND p.classid = $2::int::oid AND p.objid = l.key::oid AND p.pid = l.backend_pid
           AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
     ORDER BY l.env";

/// A held project lock: dropping it closes its session, which frees it.
pub(crate) struct AdvisoryLock {
    session: Session,
}

impl std::fmt::Debug for AdvisoryLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryLock").finish_non_exhaustive()
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        // Clear the description first, so nobody reads it after we let go;
        // closing the session (when `session` drops) frees the lock itself.
        let _ = self.session.run(|c| {
            c.batch_execute(
                "UPDATE soar.locks SET backend_pid = NULL WHERE backend_pid = pg_backend_pid();
                 UPDATE soar.env_locks SET backend_pid = NULL WHERE backend_pid = pg_backend_pid();",
            )?;
            Ok(())
        });
    }
}

/// Take `project`'s lock in the database at `url` (exclusive), or, for a
/// command on environment `env`, the project's lock shared plus `env`'s
/// exclusive; waiting up to `timeout` in all, then record `holder`,
/// stamped with the time it took the lock, in its row. Returns the lock
/// and the holder as recorded.
#[expect(
    clippy::result_large_err,
    reason = "called once per command; the holder is kept inline so callers can match on it"
)]
pub(crate) fn acquire(
    url: &str,
    password_allowed: bool,
    project: &str,
    env: Option<&str>,
    timeout: Duration,
    holder: &HolderInfo,
) -> Result<(AdvisoryLock, HolderInfo), LockError> {
    let database = |e: anyhow::Error| LockError::Database {
        message: format!("{e:#}"),
    };
    let target = Target::parse(url, password_allowed).map_err(database)?;
    let session = Session::new(target.connect().map_err(database)?);
    let shown = target.shown().to_string();
    let (key, env_key) = session
        .run(|c| {
            schema::migrate(c, &shown)?;
            let key = lock_key(c, project)?;
            let env_key = env.map(|env| env_lock_key(c, project, env)).transpose()?;
            Ok((key, env_key))
        })
        .map_err(database)?;
    let start = Instant::now();
    let take = if env.is_some() {
        "SELECT pg_try_advisory_lock_shared($1, $2)"
    } else {
        "SELECT pg_try_advisory_lock($1, $2)"
    };
    let place = format!("the project lock of `{project}` in {shown}");
    wait_for(&session, start, timeout, take, (LOCK_CLASS, key), |c| {
        // An exclusive taker also waits for environment commands.
        let holder = self::holder(c, project)?;
        Ok(match (holder, env) {
            (None, None) => live_env_holders(c, project, None)?
                .into_iter()
                .next()
                .map(|(_, info, _)| info),
            (holder, _) => holder,
        })
    })
    .map_err(|e| e.at(&place))?;
    if let (Some(env), Some(env_key)) = (env, env_key) {
        wait_for(
            &session,
            start,
            timeout,
            "SELECT pg_try_advisory_lock($1, $2)",
            (ENV_LOCK_CLASS, env_key),
            |c| {
                Ok(live_env_holders(c, project, Some(env))?
                    .into_iter()
                    .next()
                    .map(|(_, info, _)| info))
            },
        )
        .map_err(|e| e.at(&format!("{place} for environment `{env}`")))?;
    }
    let lock = AdvisoryLock { session };
    let holder = HolderInfo {
        started_at: now_ms(),
        ..holder.clone()
    };
    // The project row names a project-wide holder; an environment row,
    // the one holder of that environment.
    let (sql, env_arg) = match env {
        Some(env) => (
            "UPDATE soar.env_locks SET backend_pid = pg_backend_pid(), pid = $2, host = $3,
                 user_name = $4, command = $5, started_at = $6
             WHERE project = $1 AND env = $7",
            env,
        ),
        None => (
            "UPDATE soar.locks SET backend_pid = pg_backend_pid(), pid = $2, host = $3,
                 user_name = $4, command = $5, started_at = $6
             WHERE project = $1 AND $7::text IS NOT NULL",
            "",
        ),
    };
    lock.session
        .run(|c| {
            c.execute(
                sql,
                &[
                    &project,
                    &i64::from(holder.pid),
                    &holder.host,
                    &holder.user,
                    &holder.command,
                    &holder.started_at,
                    &env_arg,
                ],
            )?;
            Ok(())
        })
        .map_err(database)?;
    Ok((lock, holder))
}

/// Why [`wait_for`] gave up: the lock stayed held, or the database failed.
enum WaitError {
    Held {
        holder: Option<HolderInfo>,
        waited: Duration,
    },
    Database(anyhow::Error),
}

impl WaitError {
    /// The [`LockError`] for a lock described as `place`.
    fn at(self, place: &str) -> LockError {
        match self {
            Self::Held { holder, waited } => LockError::Held {
                holder,
                waited,
                place: place.to_string(),
            },
            Self::Database(e) => LockError::Database {
                message: format!("{e:#}"),
            },
        }
    }
}

/// Try `take` (a `pg_try_advisory_lock*` query on `key`) until it succeeds
/// or `timeout` from `start` passes; then `describe` names who is in the
/// way.
fn wait_for(
    session: &Session,
    start: Instant,
    timeout: Duration,
    take: &str,
    key: (i32, i32),
    describe: impl FnOnce(&mut Client) -> anyhow::Result<Option<HolderInfo>> + Send,
) -> Result<(), WaitError> {
    let mut pause = POLL_MIN;
    loop {
        let locked = session
            .run(|c| Ok(c.query_one(take, &[&key.0, &key.1])?.get::<_, bool>(0)))
            .map_err(WaitError::Database)?;
        if locked {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let holder = session.run(describe).ok().flatten();
            return Err(WaitError::Held { holder, waited });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// The project's lock key, creating its row on first use.
pub(super) fn lock_key(c: &mut Client, project: &str) -> anyhow::Result<i32> {
    c.execute(
        "INSERT INTO soar.locks (project) VALUES ($1) ON CONFLICT (project) DO NOTHING",
        &[&project],
    )
    .context("registering the project lock")?;
    Ok(
        c.query_one("SELECT key FROM soar.locks WHERE project = $1", &[&project])?
            .get(0),
    )
}

/// Environment `env`'s lock key, creating its row on first use.
fn env_lock_key(c: &mut Client, project: &str, env: &str) -> anyhow::Result<i32> {
    c.execute(
        "INSERT INTO soar.env_locks (project, env) VALUES ($1, $2)
         ON CONFLICT (project, env) DO NOTHING",
        &[&project, &env],
    )
    .context("registering the environment lock")?;
    Ok(c.query_one(
        "SELECT key FROM soar.env_locks WHERE project = $1 AND env = $2",
        &[&project, &env],
    )?
    .get(0))
}

/// Who holds `project`'s environment locks right now (of `env` only, when
/// named), by environment.
pub(crate) fn env_holders(
    c: &mut Client,
    project: &str,
    env: Option<&str>,
) -> anyhow::Result<Vec<(String, HolderInfo)>> {
    Ok(live_env_holders(c, project, env)?
        .into_iter()
        .map(|(env, info, _)| (env, info))
        .collect())
}

/// The live environment holders and their server sessions' pids.
fn live_env_holders(
    c: &mut Client,
    project: &str,
    env: Option<&str>,
) -> anyhow::Result<Vec<(String, HolderInfo, i32)>> {
    let rows = c.query(LIVE_ENV_HOLDERS, &[&project, &ENV_LOCK_CLASS, &env])?;
    Ok(rows
        .iter()
        .map(|row| (row.get(6), holder_of(row), row.get(5)))
        .collect())
}

/// The holder described by the first five columns of a lock row.
fn holder_of(row: &postgres::Row) -> HolderInfo {
    HolderInfo {
        pid: u32::try_from(row.get::<_, Option<i64>>(0).unwrap_or(0)).unwrap_or(0),
        host: row.get(1),
        user: row.get(2),
        command: row.get::<_, Option<String>>(3).unwrap_or_default(),
        started_at: row.get::<_, Option<i64>>(4).unwrap_or(0),
    }
}

/// Who holds `project`'s lock right now, if anyone does.
pub(crate) fn holder(c: &mut Client, project: &str) -> anyhow::Result<Option<HolderInfo>> {
    Ok(live_holder(c, project)?.map(|(info, _)| info))
}

/// The live holder and its server session's pid.
fn live_holder(c: &mut Client, project: &str) -> anyhow::Result<Option<(HolderInfo, i32)>> {
    let row = c.query_opt(LIVE_HOLDER, &[&project, &LOCK_CLASS])?;
    Ok(row.map(|row| (holder_of(&row), row.get(5))))
}

/// `soar lock release --force`: end the holder's server session, which
/// frees its lock, and record who did it. Targets environment `env`'s
/// holder, or with `None` the project-wide holder. Returns the holder it
/// released, `None` when the lock was free.
pub(crate) fn force_release(
    c: &mut Client,
    project: &str,
    env: Option<&str>,
    actor: &str,
) -> anyhow::Result<Option<HolderInfo>> {
    let live = match env {
        Some(env) => live_env_holders(c, project, Some(env))?
            .into_iter()
            .next()
            .map(|(_, info, backend)| (info, backend)),
        None => live_holder(c, project)?,
    };
    let Some((info, backend)) = live else {
        return Ok(None);
    };
    let ended: bool = c
        .query_one("SELECT pg_terminate_backend($1)", &[&backend])
        .context("ending the lock holder's database session")?
        .get(0);
    if !ended {
        anyhow::bail!(
            "the database did not end session {backend} of the lock holder (the user needs to own it, or pg_signal_backend)"
        );
    }
    let released = serde_json::to_string(&info).context("describing the released holder")?;
    c.execute(
        "INSERT INTO soar.lock_releases (project, at, actor, host, released, env)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &project,
            &now_ms(),
            &actor,
            &hostname().unwrap_or_default(),
            &released,
            &env,
        ],
    )
    .context("recording the forced release")?;
    for table in ["soar.locks", "soar.env_locks"] {
        c.execute(
            &format!(
                "UPDATE {table} SET backend_pid = NULL WHERE project = $1 AND backend_pid = $2"
            ),
            &[&project, &backend],
        )?;
    }
    Ok(Some(info))
}
