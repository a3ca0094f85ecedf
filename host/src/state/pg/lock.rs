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
//! database hands out per project, so two projects never contend.

use std::time::{Duration, Instant};

use anyhow::Context;
use postgres::Client;

use super::schema::{self, LOCK_CLASS};
use super::{Session, Target};
use crate::state::clock::now_ms;
use crate::state::lock::{HolderInfo, LockError, hostname};

/// First pause between attempts while waiting; doubles up to `POLL_MAX`.
/// Each attempt is one round trip, so the cap is higher than the file
/// lock's.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(500);

/// The holder of the lock as `pg_locks` confirms it: the row's session
/// holds the project's advisory lock right now.
const LIVE_HOLDER: &str =
    "SELECT l.pid, l.host, l.user_name, l.command, l.started_at, l.backend_pid
     FROM soar.locks l
     WHERE l.project = $1 AND l.backend_pid IS NOT NULL AND EXISTS (
         SELECT 1 FROM pg_locks p
         WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 2
           AND p.classid = $2::int::oid AND p.objid = l.key::oid AND p.pid = l.backend_pid
           AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

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
            c.execute(
                "UPDATE soar.locks SET backend_pid = NULL WHERE backend_pid = pg_backend_pid()",
                &[],
            )?;
            Ok(())
        });
    }
}

/// Take `project`'s lock in the database at `url`, waiting up to `timeout`,
/// then record `holder`, stamped with the time it took the lock, in its
/// row. Returns the lock and the holder as recorded.
#[expect(
    clippy::result_large_err,
    reason = "called once per command; the holder is kept inline so callers can match on it"
)]
pub(crate) fn acquire(
    url: &str,
    password_allowed: bool,
    project: &str,
    timeout: Duration,
    holder: &HolderInfo,
) -> Result<(AdvisoryLock, HolderInfo), LockError> {
    let database = |e: anyhow::Error| LockError::Database {
        message: format!("{e:#}"),
    };
    let target = Target::parse(url, password_allowed).map_err(database)?;
    let session = Session::new(target.connect().map_err(database)?);
    let shown = target.shown().to_string();
    let key = session
        .run(|c| {
            schema::migrate(c, &shown)?;
            lock_key(c, project)
        })
        .map_err(database)?;
    let start = Instant::now();
    let mut pause = POLL_MIN;
    loop {
        let locked = session
            .run(|c| {
                Ok(
                    c.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &key])?
                        .get::<_, bool>(0),
                )
            })
            .map_err(database)?;
        if locked {
            break;
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let holder = session.run(|c| self::holder(c, project)).ok().flatten();
            return Err(LockError::Held {
                holder,
                waited,
                place: format!("the project lock of `{project}` in {}", target.shown()),
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(POLL_MAX);
    }
    let lock = AdvisoryLock { session };
    let holder = HolderInfo {
        started_at: now_ms(),
        ..holder.clone()
    };
    lock.session
        .run(|c| {
            c.execute(
                "UPDATE soar.locks SET backend_pid = pg_backend_pid(), pid = $2, host = $3,
                     user_name = $4, command = $5, started_at = $6
                 WHERE project = $1",
                &[
                    &project,
                    &i64::from(holder.pid),
                    &holder.host,
                    &holder.user,
                    &holder.command,
                    &holder.started_at,
                ],
            )?;
            Ok(())
        })
        .map_err(database)?;
    Ok((lock, holder))
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

/// Who holds `project`'s lock right now, if anyone does.
pub(crate) fn holder(c: &mut Client, project: &str) -> anyhow::Result<Option<HolderInfo>> {
    Ok(live_holder(c, project)?.map(|(info, _)| info))
}

/// The live holder and its server session's pid.
fn live_holder(c: &mut Client, project: &str) -> anyhow::Result<Option<(HolderInfo, i32)>> {
    let row = c.query_opt(LIVE_HOLDER, &[&project, &LOCK_CLASS])?;
    Ok(row.map(|row| {
        (
            HolderInfo {
                pid: u32::try_from(row.get::<_, Option<i64>>(0).unwrap_or(0)).unwrap_or(0),
                host: row.get(1),
                user: row.get(2),
                command: row.get::<_, Option<String>>(3).unwrap_or_default(),
                started_at: row.get::<_, Option<i64>>(4).unwrap_or(0),
            },
            row.get(5),
        )
    }))
}

/// `soar lock release --force`: end the holder's server session, which
/// frees its lock, and record who did it. Returns the holder it released,
/// `None` when the lock was free.
pub(crate) fn force_release(
    c: &mut Client,
    project: &str,
    actor: &str,
) -> anyhow::Result<Option<HolderInfo>> {
    let Some((info, backend)) = live_holder(c, project)? else {
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
        "INSERT INTO soar.lock_releases (project, at, actor, host, released)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &project,
            &now_ms(),
            &actor,
            &hostname().unwrap_or_default(),
            &released,
        ],
    )
    .context("recording the forced release")?;
    c.execute(
        "UPDATE soar.locks SET backend_pid = NULL WHERE project = $1 AND backend_pid = $2",
        &[&project, &backend],
    )?;
    Ok(Some(info))
}
