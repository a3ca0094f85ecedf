//! Moving a project's state between stores (`soar state push` / `pull`):
//! a [`Snapshot`] of everything the store holds for the project, read in
//! one consistent view and written in one transaction, and the SQLite half
//! of both (the PostgreSQL half is `pg::transfer`).
//!
//! A snapshot is a verbatim copy of the rows, not of their meaning:
//! stored spellings, process tokens and timestamps are kept as they are,
//! so the receiving store answers `status`, `history` and `plan` exactly as
//! the sending one did, serials included (a saved plan stays valid). Only
//! deploy ids change: the receiving store hands out its own (PostgreSQL's
//! are shared by every project of the database), and phases and events
//! follow their deploy.

use std::fmt;

use anyhow::Context;
use rusqlite::Transaction;

use super::releases::ReleaseStatus;
use super::sqlite::Sqlite;
use super::{ReleaseRecord, ResourceRecord};

/// Everything a store holds for one project, oldest first where order
/// matters. Opaque: made by [`StateStore::export`](super::StateStore::export),
/// consumed by [`StateStore::import`](super::StateStore::import).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) serials: Vec<(String, i64)>,
    pub(crate) resources: Vec<ResourceRecord>,
    /// In the order they were recorded (ties in `created_at` keep it).
    pub(crate) releases: Vec<ReleaseRecord>,
    /// In id order.
    pub(crate) deploys: Vec<DeployCopy>,
}

/// One audit record as stored: its status is the stored one (a deploy
/// never finished stays `running` in the row, and is reported as
/// interrupted by whichever store reads it).
#[derive(Debug, Clone)]
pub(crate) struct DeployCopy {
    pub env: String,
    pub command: String,
    pub actor: String,
    pub pid: i64,
    pub host: String,
    pub proc_token: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub summary: Option<String>,
    pub events_dropped: i64,
    /// `(phase, started_at, duration_ms, outcome, detail)`, in order.
    pub phases: Vec<(String, i64, i64, String, String)>,
    /// `(seq, at, body)`, in order.
    pub events: Vec<(i64, i64, String)>,
}

/// How many rows of each kind a transfer copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Environments with a serial.
    pub environments: usize,
    /// Managed resources.
    pub resources: usize,
    /// Releases.
    pub releases: usize,
    /// Audit records (deploys, destroys, rollbacks).
    pub deploys: usize,
    /// Their timed phases.
    pub phases: usize,
    /// Their events.
    pub events: usize,
}

impl fmt::Display for TransferCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = [
            (self.environments, "environment"),
            (self.resources, "resource"),
            (self.releases, "release"),
            (self.deploys, "deploy"),
            (self.phases, "phase"),
            (self.events, "event"),
        ];
        for (i, (n, kind)) in kinds.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let plural = if n == 1 { "" } else { "s" };
            write!(f, "{sep}{n} {kind}{plural}")?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// How many rows of each kind it holds.
    pub fn counts(&self) -> TransferCounts {
        TransferCounts {
            environments: self.serials.len(),
            resources: self.resources.len(),
            releases: self.releases.len(),
            deploys: self.deploys.len(),
            phases: self.deploys.iter().map(|d| d.phases.len()).sum(),
            events: self.deploys.iter().map(|d| d.events.len()).sum(),
        }
    }
}

/// The receiving store already holds state for the project; returned
/// (inside `anyhow::Error`, downcastable) by
/// [`StateStore::import`](super::StateStore::import) without `replace`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place} already holds state for this project")]
pub struct NotEmpty {
    /// The store, for people.
    pub place: String,
}

impl Sqlite {
    /// Every row of the database, read in one transaction (a consistent
    /// view even while a deploy writes).
    pub(crate) fn export(&self) -> anyhow::Result<Snapshot> {
        let tx = Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Deferred)
            .context("starting to read the state")?;
        let serials = collect(&tx, "SELECT env, serial FROM serials ORDER BY env", |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let resources = collect(
            &tx,
            "SELECT env, provider, kind, name, id, attributes, updated_at
             FROM resources ORDER BY env, kind, name",
            |r| {
                let record = ResourceRecord {
                    env: r.get(0)?,
                    provider: r.get(1)?,
                    kind: r.get(2)?,
                    name: r.get(3)?,
                    id: r.get(4)?,
                    attributes: serde_json::Value::Null,
                    updated_at: r.get(6)?,
                };
                Ok((record, r.get::<_, String>(5)?))
            },
        )?
        .into_iter()
        .map(|(mut record, attributes)| {
            record.attributes = serde_json::from_str(&attributes).with_context(|| {
                format!(
                    "resource {}/{} has corrupt attributes",
                    record.kind, record.name
                )
            })?;
            Ok(record)
        })
        .collect::<anyhow::Result<_>>()?;
        let releases = collect(
            &tx,
            "SELECT env, id, artifact_digest, status, created_at, activated_at, detail
             FROM releases ORDER BY rowid",
            |r| {
                let record = ReleaseRecord {
                    env: r.get(0)?,
                    id: r.get(1)?,
                    artifact_digest: r.get(2)?,
                    status: ReleaseStatus::Pending,
                    created_at: r.get(4)?,
                    activated_at: r.get(5)?,
                    detail: r.get(6)?,
                };
                Ok((record, r.get::<_, String>(3)?))
            },
        )?
        .into_iter()
        .map(|(mut record, status)| {
            record.status = status.parse()?;
            Ok(record)
        })
        .collect::<anyhow::Result<_>>()?;
        let deploys = export_deploys(&tx)?;
        drop(tx);
        Ok(Snapshot {
            serials,
            resources,
            releases,
            deploys,
        })
    }

    /// Write `snapshot` in one transaction: refused with [`NotEmpty`] when
    /// the database holds anything, unless `replace`, which first deletes
    /// everything it holds.
    pub(crate) fn import(
        &self,
        snapshot: &Snapshot,
        replace: bool,
    ) -> anyhow::Result<TransferCounts> {
        self.write(|tx| {
            let held: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM serials) OR EXISTS (SELECT 1 FROM deploys)
                     OR EXISTS (SELECT 1 FROM resources) OR EXISTS (SELECT 1 FROM releases)",
                [],
                |r| r.get(0),
            )?;
            if held && !replace {
                return Err(NotEmpty {
                    place: self.dir().display().to_string(),
                }
                .into());
            }
            tx.execute_batch(
                "DELETE FROM deploys; DELETE FROM resources; DELETE FROM releases; DELETE FROM serials;",
            )?;
            import_rows(tx, snapshot)?;
            Ok(snapshot.counts())
        })
        .with_context(|| format!("writing the state into {}", self.dir().display()))
    }
}

/// Run `sql` and collect its rows through `map`.
fn collect<T>(
    tx: &Transaction<'_>,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map([], map)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The audit trail, each deploy with its phases and events.
fn export_deploys(tx: &Transaction<'_>) -> anyhow::Result<Vec<DeployCopy>> {
    let rows = collect(
        tx,
        "SELECT id, env, command, actor, pid, host, proc_token, started_at, finished_at,
                status, summary, events_dropped
         FROM deploys ORDER BY id",
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                DeployCopy {
                    env: r.get(1)?,
                    command: r.get(2)?,
                    actor: r.get(3)?,
                    pid: r.get(4)?,
                    host: r.get(5)?,
                    proc_token: r.get(6)?,
                    started_at: r.get(7)?,
                    finished_at: r.get(8)?,
                    status: r.get(9)?,
                    summary: r.get(10)?,
                    events_dropped: r.get(11)?,
                    phases: Vec::new(),
                    events: Vec::new(),
                },
            ))
        },
    )?;
    let mut phases = tx.prepare(
        "SELECT phase, started_at, duration_ms, outcome, detail
         FROM phases WHERE deploy_id = ?1 ORDER BY seq",
    )?;
    let mut events =
        tx.prepare("SELECT seq, at, body FROM events WHERE deploy_id = ?1 ORDER BY seq")?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, mut deploy) in rows {
        deploy.phases = phases
            .query_map([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        deploy.events = events
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        out.push(deploy);
    }
    Ok(out)
}

/// Insert every row of `snapshot` inside the caller's transaction.
fn import_rows(tx: &Transaction<'_>, snapshot: &Snapshot) -> anyhow::Result<()> {
    for (env, serial) in &snapshot.serials {
        tx.execute(
            "INSERT INTO serials (env, serial) VALUES (?1, ?2)",
            rusqlite::params![env, serial],
        )?;
    }
    for r in &snapshot.resources {
        tx.execute(
            "INSERT INTO resources (env, kind, name, provider, id, attributes, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                r.env,
                r.kind,
                r.name,
                r.provider,
                r.id,
                r.attributes.to_string(),
                r.updated_at
            ],
        )?;
    }
    for r in &snapshot.releases {
        tx.execute(
            "INSERT INTO releases (env, id, artifact_digest, status, created_at, activated_at, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                r.env,
                r.id,
                r.artifact_digest,
                r.status.as_str(),
                r.created_at,
                r.activated_at,
                r.detail
            ],
        )?;
    }
    let mut phase = tx.prepare(
        "INSERT INTO phases (deploy_id, seq, phase, started_at, duration_ms, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut event =
        tx.prepare("INSERT INTO events (deploy_id, seq, at, body) VALUES (?1, ?2, ?3, ?4)")?;
    for d in &snapshot.deploys {
        let id: i64 = tx.query_row(
            "INSERT INTO deploys (env, command, actor, pid, host, proc_token, started_at,
                                  finished_at, status, summary, events_dropped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
            rusqlite::params![
                d.env,
                d.command,
                d.actor,
                d.pid,
                d.host,
                d.proc_token,
                d.started_at,
                d.finished_at,
                d.status,
                d.summary,
                d.events_dropped
            ],
            |r| r.get(0),
        )?;
        for (seq, (name, started_at, duration, outcome, detail)) in d.phases.iter().enumerate() {
            phase.execute(rusqlite::params![
                id,
                seq as i64 + 1,
                name,
                started_at,
                duration,
                outcome,
                detail
            ])?;
        }
        for (seq, at, body) in &d.events {
            event.execute(rusqlite::params![id, seq, at, body])?;
        }
    }
    Ok(())
}
