//! The audit trail on PostgreSQL (see the SQLite twin in `state::audit`).

use std::collections::HashMap;

use anyhow::{Context, bail};
use postgres::Row;
use serde::Serialize;

use super::Postgres;
use crate::state::audit::{HolderCache, derive_status, event_body, process_token};
use crate::state::clock::now_ms;
use crate::state::lock::hostname;
use crate::state::{
    DeployId, DeployRecord, DeployStatus, EventRecord, MAX_EVENTS_PER_DEPLOY, Outcome, Phase,
    PhaseRecord,
};

const DEPLOY_COLUMNS: &str = "id, env, command, actor, pid, host, started_at, finished_at, \
     status, summary, events_dropped, proc_token";

/// A deploy row, its stored status and its process token.
fn deploy_row(row: &Row) -> (DeployRecord, String, String) {
    let started_at: i64 = row.get(6);
    let finished_at: Option<i64> = row.get(7);
    let record = DeployRecord {
        id: DeployId(row.get(0)),
        env: row.get(1),
        command: row.get(2),
        actor: row.get(3),
        pid: u32::try_from(row.get::<_, i64>(4)).unwrap_or(0),
        host: row.get(5),
        started_at,
        finished_at,
        duration_ms: finished_at.map(|f| f.saturating_sub(started_at).max(0) as u64),
        status: DeployStatus::Running,
        summary: row.get(9),
        events_dropped: row.get::<_, i64>(10).max(0) as u64,
        phases: Vec::new(),
    };
    (record, row.get(8), row.get(11))
}

impl Postgres {
    /// Open an audit record, committed at once.
    pub(crate) fn begin_deploy(
        &self,
        env: &str,
        command: &str,
        actor: &str,
    ) -> anyhow::Result<DeployId> {
        let id = self
            .write(|tx, project| {
                let row = tx.query_one(
                    "INSERT INTO soar.deploys
                         (project, env, command, actor, pid, host, proc_token, started_at, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running')
                     RETURNING id",
                    &[
                        &project,
                        &env,
                        &command,
                        &actor,
                        &i64::from(std::process::id()),
                        &hostname().unwrap_or_default(),
                        &process_token(),
                        &now_ms(),
                    ],
                )?;
                Ok(row.get::<_, i64>(0))
            })
            .with_context(|| format!("recording the start of `{command}` on `{env}`"))?;
        Ok(DeployId(id))
    }

    /// Record one phase's timing and outcome.
    pub(crate) fn record_phase(
        &self,
        deploy: DeployId,
        phase: Phase,
        started_at: i64,
        duration_ms: u64,
        outcome: Outcome,
        detail: &str,
    ) -> anyhow::Result<()> {
        let duration = i64::try_from(duration_ms).unwrap_or(i64::MAX);
        self.write(|tx, _| {
            tx.execute(
                "INSERT INTO soar.phases
                     (deploy_id, seq, phase, started_at, duration_ms, outcome, detail)
                 VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM soar.phases WHERE deploy_id = $1),
                         $2, $3, $4, $5, $6)",
                &[
                    &deploy.0,
                    &phase.as_str(),
                    &started_at,
                    &duration,
                    &outcome.as_str(),
                    &detail,
                ],
            )?;
            Ok(())
        })
        .with_context(|| format!("recording phase {phase} of deploy {deploy}"))
    }

    /// Record an event, bounded as on SQLite.
    pub(crate) fn record_event<T: Serialize + ?Sized>(
        &self,
        deploy: DeployId,
        event: &T,
    ) -> anyhow::Result<()> {
        let body = event_body(event)?;
        self.write(|tx, _| {
            let count: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), 0) FROM soar.events WHERE deploy_id = $1",
                    &[&deploy.0],
                )?
                .get(0);
            if count as u64 >= MAX_EVENTS_PER_DEPLOY {
                let updated = tx.execute(
                    "UPDATE soar.deploys SET events_dropped = events_dropped + 1 WHERE id = $1",
                    &[&deploy.0],
                )?;
                if updated == 0 {
                    bail!("no deploy {deploy}");
                }
            } else {
                tx.execute(
                    "INSERT INTO soar.events (deploy_id, seq, at, body) VALUES ($1, $2, $3, $4)",
                    &[&deploy.0, &(count + 1), &now_ms(), &body],
                )?;
            }
            Ok(())
        })
        .with_context(|| format!("recording an event of deploy {deploy}"))
    }

    /// Close the audit record.
    pub(crate) fn finish_deploy(
        &self,
        deploy: DeployId,
        outcome: Outcome,
        summary: &str,
    ) -> anyhow::Result<()> {
        self.write(|tx, project| {
            let updated = tx.execute(
                "UPDATE soar.deploys SET finished_at = $3, status = $4, summary = $5
                 WHERE project = $1 AND id = $2 AND finished_at IS NULL",
                &[&project, &deploy.0, &now_ms(), &outcome.as_str(), &summary],
            )?;
            if updated == 0 {
                bail!("deploy {deploy} is unknown or already finished");
            }
            Ok(())
        })
        .with_context(|| format!("recording the end of deploy {deploy}"))
    }

    /// The latest `limit` deploys, newest first, with their phases: two
    /// queries whatever the count (plus one lock probe when one is
    /// unfinished).
    pub(crate) fn history(
        &self,
        env: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<DeployRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c, project| {
            let rows = c.query(
                &format!(
                    "SELECT {DEPLOY_COLUMNS} FROM soar.deploys
                     WHERE project = $1 AND ($2::text IS NULL OR env = $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&project, &env, &limit],
            )?;
            let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let mut phases = phases_of(c, &ids)?;
            let mut holders = HolderCache::new();
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let (mut record, stored, token) = deploy_row(row);
                record.status = derive_status(&record, &stored, &token, &mut holders, |env| {
                    live_holder(c, project, env)
                })?;
                record.phases = phases.remove(&record.id.0).unwrap_or_default();
                out.push(record);
            }
            Ok(out)
        })
    }

    /// The newest record of one of `envs` made by one of `commands`,
    /// without its phases: one query, for a watcher that polls it.
    pub(crate) fn latest(
        &self,
        envs: &[&str],
        commands: &[&str],
    ) -> anyhow::Result<Option<DeployRecord>> {
        self.read(|c, project| {
            let row = c.query_opt(
                &format!(
                    "SELECT {DEPLOY_COLUMNS} FROM soar.deploys
                     WHERE project = $1 AND env = ANY($2) AND command = ANY($3)
                     ORDER BY id DESC LIMIT 1"
                ),
                &[&project, &envs, &commands],
            )?;
            row.map(|row| resolved(c, project, &row)).transpose()
        })
    }

    /// One deploy by id, with its phases.
    pub(crate) fn deploy(&self, id: DeployId) -> anyhow::Result<Option<DeployRecord>> {
        self.read(|c, project| {
            let row = c.query_opt(
                &format!(
                    "SELECT {DEPLOY_COLUMNS} FROM soar.deploys WHERE project = $1 AND id = $2"
                ),
                &[&project, &id.0],
            )?;
            let Some(row) = row else { return Ok(None) };
            let mut record = resolved(c, project, &row)?;
            record.phases = phases_of(c, &[id.0])?.remove(&id.0).unwrap_or_default();
            Ok(Some(record))
        })
    }

    /// A deploy's recorded events, in order.
    pub(crate) fn events(&self, deploy: DeployId) -> anyhow::Result<Vec<EventRecord>> {
        self.read(|c, project| {
            let rows = c.query(
                "SELECT e.seq, e.at, e.body FROM soar.events e
                 JOIN soar.deploys d ON d.id = e.deploy_id
                 WHERE d.project = $1 AND e.deploy_id = $2 ORDER BY e.seq",
                &[&project, &deploy.0],
            )?;
            rows.iter()
                .map(|row| {
                    let seq: i64 = row.get(0);
                    let body: String = row.get(2);
                    Ok(EventRecord {
                        seq: seq.max(0) as u64,
                        at: row.get(1),
                        event: serde_json::from_str(&body).with_context(|| {
                            format!("event {seq} of deploy {deploy} is corrupt")
                        })?,
                    })
                })
                .collect()
        })
    }
}

/// The live holder of environment `env`'s lock, or else of the project's
/// (an older soar locking project-wide), for [`derive_status`].
fn live_holder(
    c: &mut postgres::Client,
    project: &str,
    env: &str,
) -> Option<crate::state::HolderInfo> {
    let env_holder = super::lock::env_holders(c, project, Some(env))
        .ok()
        .and_then(|holders| holders.into_iter().next().map(|(_, h)| h));
    env_holder.or_else(|| super::lock::holder(c, project).ok().flatten())
}

/// The phases of each of `ids`, in order, in one query.
fn phases_of(
    c: &mut postgres::Client,
    ids: &[i64],
) -> anyhow::Result<HashMap<i64, Vec<PhaseRecord>>> {
    let mut out: HashMap<i64, Vec<PhaseRecord>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = c.query(
        "SELECT deploy_id, phase, started_at, duration_ms, outcome, detail
         FROM soar.phases WHERE deploy_id = ANY($1) ORDER BY deploy_id, seq",
        &[&ids],
    )?;
    for row in rows {
        out.entry(row.get(0)).or_default().push(PhaseRecord {
            phase: row.get::<_, String>(1).parse()?,
            started_at: row.get(2),
            duration_ms: row.get::<_, i64>(3).max(0) as u64,
            outcome: row.get::<_, String>(4).parse()?,
            detail: row.get(5),
        });
    }
    Ok(out)
}

/// One deploy row as a record, its status derived (running, or
/// interrupted when its process's lock is gone); no phases.
fn resolved(
    c: &mut postgres::Client,
    project: &str,
    row: &postgres::Row,
) -> anyhow::Result<DeployRecord> {
    let (mut record, stored, token) = deploy_row(row);
    record.status = derive_status(&record, &stored, &token, &mut HolderCache::new(), |env| {
        live_holder(c, project, env)
    })?;
    Ok(record)
}
