//! The audit trail: every deploy, destroy and rollback, its phases with their
//! timings, and per-resource outcomes and plugin journal entries, for
//! `soar history`.
//!
//! Each record is committed as it happens (not at the end), so a `soar`
//! killed mid-deploy leaves a trail up to the moment it died; such a deploy
//! has no finish and `history` reports it as
//! [`Interrupted`](DeployStatus::Interrupted).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use rusqlite::{OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::clock::now_ms;
use super::lock::{HolderInfo, ProjectLock, hostname};
use super::sqlite::Sqlite;
use super::text::bounded;

/// Longest single event kept (serialized JSON); larger ones are cut.
pub const MAX_EVENT_BYTES: usize = 8192;
/// Most events kept per deploy; the rest are only counted.
pub const MAX_EVENTS_PER_DEPLOY: u64 = 10_000;

/// Identifies one deploy (or destroy, rollback) in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeployId(pub i64);

impl fmt::Display for DeployId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Defines an enum stored as text, with `as_str`, `Display` and `FromStr`
/// agreeing with its serde spelling.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The stored (and `--json`) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = anyhow::Error;

            fn from_str(s: &str) -> anyhow::Result<Self> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => bail!(concat!("unknown ", stringify!($name), " `{}`"), other),
                }
            }
        }
    };
}

text_enum! {
    /// A step of a deploy whose timing and outcome the trail records.
    Phase {
        /// Checking the configuration and the plugins' inputs.
        Validate => "validate",
        /// Building the artifact.
        Build => "build",
        /// Computing (or loading and checking) the plan.
        Plan => "plan",
        /// Uploading the artifact to where it will run.
        Transfer => "transfer",
        /// Creating, updating and deleting resources.
        Apply => "apply",
        /// Starting the new release.
        Start => "start",
        /// Waiting for the new release to pass its health check.
        VerifyHealth => "verify-health",
        /// Moving traffic to the new release through the proxy
        /// (`switch = "proxy"`).
        Switch => "switch",
        /// Letting the old release finish its requests, then stopping it.
        Drain => "drain",
        /// Routing traffic to it / recording it as active.
        Register => "register",
        /// Returning to the previous release after a failure.
        Rollback => "rollback",
        /// User hooks (before/after deploy).
        Hooks => "hooks",
    }
}

text_enum! {
    /// How a phase, or a whole deploy, ended.
    Outcome {
        /// Succeeded.
        Ok => "ok",
        /// Failed; the detail says why.
        Failed => "failed",
        /// Not needed this time (nothing changed, or not applicable).
        Skipped => "skipped",
    }
}

text_enum! {
    /// A deploy's state as `soar history` reports it.
    DeployStatus {
        /// Not finished, and its process is still alive.
        Running => "running",
        /// Finished successfully.
        Ok => "ok",
        /// Finished with a failure; the summary says why.
        Failed => "failed",
        /// Nothing to do.
        Skipped => "skipped",
        /// Never finished: its process died (killed, crashed, power loss).
        /// Derived, never stored.
        Interrupted => "interrupted",
    }
}

impl From<Outcome> for DeployStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => Self::Ok,
            Outcome::Failed => Self::Failed,
            Outcome::Skipped => Self::Skipped,
        }
    }
}

/// One timed phase of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Which phase.
    pub phase: Phase,
    /// When it started, unix milliseconds.
    pub started_at: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// For people: what it did, or why it failed (bounded).
    pub detail: String,
}

/// One deploy, destroy or rollback, with its phases in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// Its id, increasing with time.
    pub id: DeployId,
    /// The environment it acted on.
    pub env: String,
    /// `deploy`, `destroy` or `rollback`.
    pub command: String,
    /// Who ran it (user name, or CI job).
    pub actor: String,
    /// The `soar` process that ran it; with `host`, how a running deploy is
    /// told from an interrupted one.
    pub pid: u32,
    /// The machine it ran on (empty when unknown).
    pub host: String,
    /// When it began, unix milliseconds.
    pub started_at: i64,
    /// When it finished; `None` while running or if interrupted.
    pub finished_at: Option<i64>,
    /// `finished_at - started_at`, for display.
    pub duration_ms: Option<u64>,
    /// Its outcome, or running / interrupted.
    pub status: DeployStatus,
    /// A one-line summary given when it finished.
    pub summary: Option<String>,
    /// Events beyond [`MAX_EVENTS_PER_DEPLOY`], counted but not kept.
    pub events_dropped: u64,
    /// Its phases, in the order they were recorded.
    pub phases: Vec<PhaseRecord>,
}

/// One recorded event: a per-resource outcome or a plugin journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its position in the deploy, from 1.
    pub seq: u64,
    /// When it was recorded, unix milliseconds.
    pub at: i64,
    /// The event as recorded, or `{"truncated": true, ...}` if it was too big.
    pub event: serde_json::Value,
}

/// Identifies this process's deploy rows, so `history` run from the process
/// that is deploying reports its own deploy as running, not interrupted.
/// The pid alone is not enough: pids are reused after a crash.
pub(crate) fn process_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// A deploy row before its status is derived and its phases attached.
struct Row0 {
    record: DeployRecord,
    stored_status: String,
    proc_token: String,
}

const DEPLOY_COLUMNS: &str = "id, env, command, actor, pid, host, started_at, finished_at, \
     status, summary, events_dropped, proc_token";

fn deploy_row(row: &Row<'_>) -> rusqlite::Result<Row0> {
    let started_at: i64 = row.get(6)?;
    let finished_at: Option<i64> = row.get(7)?;
    Ok(Row0 {
        record: DeployRecord {
            id: DeployId(row.get(0)?),
            env: row.get(1)?,
            command: row.get(2)?,
            actor: row.get(3)?,
            pid: row.get(4)?,
            host: row.get(5)?,
            started_at,
            finished_at,
            duration_ms: finished_at.map(|f| f.saturating_sub(started_at).max(0) as u64),
            status: DeployStatus::Running,
            summary: row.get(9)?,
            events_dropped: row.get::<_, i64>(10)? as u64,
            phases: Vec::new(),
        },
        stored_status: row.get(8)?,
        proc_token: row.get(11)?,
    })
}

impl Sqlite {
    /// Open an audit record for a `command` (`deploy`, `destroy`, `rollback`)
    /// on `env` by `actor`; committed at once, so even a deploy killed in
    /// its first phase leaves a trace.
    ///
    /// Call it after taking the environment's [`ProjectLock`]: `history`
    /// tells a running deploy from an interrupted one by matching it to the
    /// holder of its environment's lock.
    pub fn begin_deploy(&self, env: &str, command: &str, actor: &str) -> anyhow::Result<DeployId> {
        let id = self
            .write(|tx| {
                Ok(tx.query_row(
                    "INSERT INTO deploys (env, command, actor, pid, host, proc_token, started_at, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running')
                     RETURNING id",
                    rusqlite::params![
                        env,
                        command,
                        actor,
                        std::process::id(),
                        hostname().unwrap_or_default(),
                        process_token(),
                        now_ms(),
                    ],
                    |row| row.get(0),
                )?)
            })
            .with_context(|| format!("recording the start of `{command}` on `{env}`"))?;
        Ok(DeployId(id))
    }

    /// Record one phase's timing and outcome. Phases keep the order they
    /// were recorded in.
    pub fn record_phase(
        &self,
        deploy: DeployId,
        phase: Phase,
        started_at: i64,
        duration_ms: u64,
        outcome: Outcome,
        detail: &str,
    ) -> anyhow::Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO phases (deploy_id, seq, phase, started_at, duration_ms, outcome, detail)
                 VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM phases WHERE deploy_id = ?1),
                         ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    deploy.0,
                    phase.as_str(),
                    started_at,
                    i64::try_from(duration_ms).unwrap_or(i64::MAX),
                    outcome.as_str(),
                    detail,
                ],
            )?;
            Ok(())
        })
        .with_context(|| format!("recording phase {phase} of deploy {deploy}"))
    }

    /// Record an event (a per-resource outcome, a plugin journal entry) as
    /// JSON. Bounded: an event over [`MAX_EVENT_BYTES`] is replaced by its
    /// truncated text, and past [`MAX_EVENTS_PER_DEPLOY`] events are only
    /// counted, so a chatty plugin cannot grow the state without limit.
    pub fn record_event<T: Serialize + ?Sized>(
        &self,
        deploy: DeployId,
        event: &T,
    ) -> anyhow::Result<()> {
        let body = event_body(event)?;
        self.write(|tx| {
            let count: i64 = tx.query_row(
                "SELECT coalesce(max(seq), 0) FROM events WHERE deploy_id = ?1",
                [deploy.0],
                |row| row.get(0),
            )?;
            if count as u64 >= MAX_EVENTS_PER_DEPLOY {
                let updated = tx.execute(
                    "UPDATE deploys SET events_dropped = events_dropped + 1 WHERE id = ?1",
                    [deploy.0],
                )?;
                if updated == 0 {
                    bail!("no deploy {deploy}");
                }
            } else {
                tx.execute(
                    "INSERT INTO events (deploy_id, seq, at, body) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![deploy.0, count + 1, now_ms(), body],
                )?;
            }
            Ok(())
        })
        .with_context(|| format!("recording an event of deploy {deploy}"))
    }

    /// Close the audit record with its outcome and a one-line summary.
    /// Fails if the deploy is unknown or already finished.
    pub fn finish_deploy(
        &self,
        deploy: DeployId,
        outcome: Outcome,
        summary: &str,
    ) -> anyhow::Result<()> {
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE deploys SET finished_at = ?2, status = ?3, summary = ?4
                 WHERE id = ?1 AND finished_at IS NULL",
                rusqlite::params![deploy.0, now_ms(), outcome.as_str(), summary],
            )?;
            if updated == 0 {
                bail!("deploy {deploy} is unknown or already finished");
            }
            Ok(())
        })
        .with_context(|| format!("recording the end of deploy {deploy}"))
    }

    /// The latest `limit` deploys (of `env`, or of every environment),
    /// newest first, each with its phases.
    ///
    /// A deploy that never finished is [`Running`](DeployStatus::Running)
    /// if it belongs to this process or to the live holder of its
    /// environment's lock, and [`Interrupted`](DeployStatus::Interrupted) otherwise.
    pub fn history(&self, env: Option<&str>, limit: usize) -> anyhow::Result<Vec<DeployRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys
             WHERE ?1 IS NULL OR env = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(rusqlite::params![env, limit], deploy_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut holders = HolderCache::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut record = self.resolve(row, &mut holders)?;
            record.phases = self.phases(record.id)?;
            out.push(record);
        }
        Ok(out)
    }

    /// The newest record of one of `envs` made by one of `commands`,
    /// without its phases: one query, for a watcher that polls it.
    pub fn latest(&self, envs: &[&str], commands: &[&str]) -> anyhow::Result<Option<DeployRecord>> {
        if envs.is_empty() || commands.is_empty() {
            return Ok(None);
        }
        let marks = |from: usize, n: usize| {
            (from..from + n)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE env IN ({}) AND command IN ({})
             ORDER BY id DESC LIMIT 1",
            marks(1, envs.len()),
            marks(envs.len() + 1, commands.len())
        );
        let row = self
            .conn
            .query_row(
                &sql,
                rusqlite::params_from_iter(envs.iter().chain(commands)),
                deploy_row,
            )
            .optional()?;
        row.map(|r| self.resolve(r, &mut HolderCache::new()))
            .transpose()
    }

    /// One deploy by id, with its phases.
    pub fn deploy(&self, id: DeployId) -> anyhow::Result<Option<DeployRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {DEPLOY_COLUMNS} FROM deploys WHERE id = ?1"),
                [id.0],
                deploy_row,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let mut record = self.resolve(row, &mut HolderCache::new())?;
        record.phases = self.phases(record.id)?;
        Ok(Some(record))
    }

    /// A deploy's recorded events, in order.
    pub fn events(&self, deploy: DeployId) -> anyhow::Result<Vec<EventRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, body FROM events WHERE deploy_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([deploy.0], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, body) = row?;
            out.push(EventRecord {
                seq: seq as u64,
                at,
                event: serde_json::from_str(&body)
                    .with_context(|| format!("event {seq} of deploy {deploy} is corrupt"))?,
            });
        }
        Ok(out)
    }

    fn phases(&self, deploy: DeployId) -> anyhow::Result<Vec<PhaseRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT phase, started_at, duration_ms, outcome, detail
             FROM phases WHERE deploy_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([deploy.0], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (phase, started_at, duration_ms, outcome, detail) = row?;
            out.push(PhaseRecord {
                phase: phase.parse()?,
                started_at,
                duration_ms: duration_ms.max(0) as u64,
                outcome: outcome.parse()?,
                detail,
            });
        }
        Ok(out)
    }

    /// Derive the reported status; `holders` caches the lock probes.
    fn resolve(&self, row: Row0, holders: &mut HolderCache) -> anyhow::Result<DeployRecord> {
        let Row0 {
            mut record,
            stored_status,
            proc_token,
        } = row;
        record.status = derive_status(&record, &stored_status, &proc_token, holders, |env| {
            // A project-wide holder (an older soar) counts too.
            ProjectLock::try_env_holder(self.dir(), env)
                .or_else(|| ProjectLock::try_holder(self.dir()))
        })?;
        Ok(record)
    }
}

/// The JSON of an event as stored: over [`MAX_EVENT_BYTES`], a
/// `{"truncated": true, ...}` stand-in with its head.
pub(crate) fn event_body<T: Serialize + ?Sized>(event: &T) -> anyhow::Result<String> {
    let body = serde_json::to_string(event).context("serializing an audit event")?;
    if body.len() <= MAX_EVENT_BYTES {
        return Ok(body);
    }
    Ok(serde_json::json!({
        "truncated": true,
        "bytes": body.len(),
        "head": bounded(&body, MAX_EVENT_BYTES - 256),
    })
    .to_string())
}

/// The lock holder of each environment probed so far in one listing.
pub(crate) type HolderCache = std::collections::HashMap<String, Option<HolderInfo>>;

/// The status `history` reports for a deploy row, on either backend.
///
/// A finished deploy has its stored outcome. An unfinished one is
/// [`Running`](DeployStatus::Running) if it belongs to this process or to
/// the live holder of its environment's lock (`probe`, given the
/// environment and called at most once per environment per listing
/// through the `holders` cache), else
/// [`Interrupted`](DeployStatus::Interrupted). Deploys of several
/// environments run at once, so the holder to match is the one of the
/// deploy's own environment.
pub(crate) fn derive_status(
    record: &DeployRecord,
    stored_status: &str,
    proc_token: &str,
    holders: &mut HolderCache,
    probe: impl FnOnce(&str) -> Option<HolderInfo>,
) -> anyhow::Result<DeployStatus> {
    if record.finished_at.is_some() {
        return stored_status.parse();
    }
    if proc_token == process_token() {
        return Ok(DeployStatus::Running);
    }
    let holder = holders
        .entry(record.env.clone())
        .or_insert_with(|| probe(&record.env));
    let alive = holder.as_ref().is_some_and(|h| {
        h.pid == record.pid
            && h.host.as_deref().unwrap_or_default() == record.host
            // The holder took the lock before it began this deploy;
            // an older row with the same (reused) pid is a dead one.
            && record.started_at >= h.started_at
    });
    Ok(if alive {
        DeployStatus::Running
    } else {
        DeployStatus::Interrupted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfinished(env: &str, pid: u32) -> DeployRecord {
        DeployRecord {
            id: DeployId(1),
            env: env.to_string(),
            command: "deploy".into(),
            actor: "alice".into(),
            pid,
            host: "ci-7".into(),
            started_at: 2_000,
            finished_at: None,
            duration_ms: None,
            status: DeployStatus::Running,
            summary: None,
            events_dropped: 0,
            phases: Vec::new(),
        }
    }

    fn holder(pid: u32) -> HolderInfo {
        HolderInfo {
            pid,
            host: Some("ci-7".into()),
            user: None,
            command: "soar deploy".into(),
            started_at: 1_000,
        }
    }

    /// Two environments deploy at once: each unfinished deploy is matched
    /// to its own environment's holder, probed once per environment.
    #[test]
    fn status_matches_the_holder_of_the_deploys_own_environment() {
        let mut cache = HolderCache::new();
        let mut probes = Vec::new();
        let mut status = |record: &DeployRecord, cache: &mut HolderCache| {
            derive_status(record, "running", "another process", cache, |env| {
                probes.push(env.to_string());
                match env {
                    "staging" => Some(holder(41)),
                    "production" => Some(holder(42)),
                    _ => None,
                }
            })
            .unwrap()
        };
        assert_eq!(
            status(&unfinished("staging", 41), &mut cache),
            DeployStatus::Running
        );
        assert_eq!(
            status(&unfinished("production", 42), &mut cache),
            DeployStatus::Running
        );
        // Staging's holder is alive, but it is not this dev deploy's.
        assert_eq!(
            status(&unfinished("dev", 41), &mut cache),
            DeployStatus::Interrupted
        );
        // A dead staging deploy whose pid is not the holder's.
        assert_eq!(
            status(&unfinished("staging", 40), &mut cache),
            DeployStatus::Interrupted
        );
        assert_eq!(probes, ["staging", "production", "dev"]);
    }
}
