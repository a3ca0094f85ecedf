//! Moving a project's state in and out of PostgreSQL (see
//! `state::transfer` for the [`Snapshot`] and the SQLite half).
//!
//! Only this project's rows are read, replaced or written; the other
//! projects sharing the database are untouched. The export reads in one
//! `REPEATABLE READ` transaction, so it is one consistent view; the import
//! is one transaction, so a reader sees all of it or none.

use anyhow::Context;
use postgres::{IsolationLevel, Transaction};

use super::Postgres;
use crate::state::transfer::{DeployCopy, NotEmpty, Snapshot, TransferCounts};
use crate::state::{ReleaseRecord, ResourceRecord};

impl Postgres {
    /// Every row of this project, in one consistent view.
    pub(crate) fn export(&self) -> anyhow::Result<Snapshot> {
        self.read(|c, project| {
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .context("starting to read the state")?;
            let serials = tx
                .query(
                    "SELECT env, serial FROM soar.serials WHERE project = $1
                     ORDER BY env COLLATE \"C\"",
                    &[&project],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let resources = export_resources(&mut tx, project)?;
            let releases = export_releases(&mut tx, project)?;
            let deploys = export_deploys(&mut tx, project)?;
            tx.commit()?;
            Ok(Snapshot {
                serials,
                resources,
                releases,
                deploys,
            })
        })
    }

    /// Write `snapshot` as this project's state in one transaction: refused
    /// with [`NotEmpty`] when the project has any row, unless `replace`,
    /// which first deletes them.
    pub(crate) fn import(
        &self,
        snapshot: &Snapshot,
        replace: bool,
    ) -> anyhow::Result<TransferCounts> {
        let place = self.describe();
        self.write(|tx, project| {
            let held: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM soar.serials WHERE project = $1)
                         OR EXISTS (SELECT 1 FROM soar.deploys WHERE project = $1)
                         OR EXISTS (SELECT 1 FROM soar.resources WHERE project = $1)
                         OR EXISTS (SELECT 1 FROM soar.releases WHERE project = $1)",
                    &[&project],
                )?
                .get(0);
            if held && !replace {
                return Err(NotEmpty {
                    place: place.clone(),
                }
                .into());
            }
            for table in ["deploys", "resources", "releases", "serials"] {
                tx.execute(
                    &format!("DELETE FROM soar.{table} WHERE project = $1"),
                    &[&project],
                )?;
            }
            import_rows(tx, project, snapshot)?;
            Ok(snapshot.counts())
        })
        .with_context(|| format!("writing the state into {place}"))
    }
}

fn export_resources(
    tx: &mut Transaction<'_>,
    project: &str,
) -> anyhow::Result<Vec<ResourceRecord>> {
    let rows = tx.query(
        "SELECT env, provider, kind, name, id, attributes, updated_at
         FROM soar.resources WHERE project = $1
         ORDER BY env COLLATE \"C\", kind COLLATE \"C\", name COLLATE \"C\"",
        &[&project],
    )?;
    rows.iter()
        .map(|r| {
            let (kind, name): (String, String) = (r.get(2), r.get(3));
            let attributes = serde_json::from_str(r.get(5))
                .with_context(|| format!("resource {kind}/{name} has corrupt attributes"))?;
            Ok(ResourceRecord {
                env: r.get(0),
                provider: r.get(1),
                kind,
                name,
                id: r.get(4),
                attributes,
                updated_at: r.get(6),
            })
        })
        .collect()
}

fn export_releases(tx: &mut Transaction<'_>, project: &str) -> anyhow::Result<Vec<ReleaseRecord>> {
    let rows = tx.query(
        "SELECT env, id, artifact_digest, status, created_at, activated_at, detail
         FROM soar.releases WHERE project = $1 ORDER BY seq",
        &[&project],
    )?;
    rows.iter()
        .map(|r| {
            Ok(ReleaseRecord {
                env: r.get(0),
                id: r.get(1),
                artifact_digest: r.get(2),
                status: r.get::<_, String>(3).parse()?,
                created_at: r.get(4),
                activated_at: r.get(5),
                detail: r.get(6),
            })
        })
        .collect()
}

/// The audit trail in three queries, whatever its length.
fn export_deploys(tx: &mut Transaction<'_>, project: &str) -> anyhow::Result<Vec<DeployCopy>> {
    let rows = tx.query(
        "SELECT id, env, command, actor, pid, host, proc_token, started_at, finished_at,
                status, summary, events_dropped
         FROM soar.deploys WHERE project = $1 ORDER BY id",
        &[&project],
    )?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut deploys = Vec::with_capacity(rows.len());
    for r in &rows {
        ids.push(r.get::<_, i64>(0));
        deploys.push(DeployCopy {
            env: r.get(1),
            command: r.get(2),
            actor: r.get(3),
            pid: r.get(4),
            host: r.get(5),
            proc_token: r.get(6),
            started_at: r.get(7),
            finished_at: r.get(8),
            status: r.get(9),
            summary: r.get(10),
            events_dropped: r.get(11),
            phases: Vec::new(),
            events: Vec::new(),
        });
    }
    let index = |id: i64| ids.binary_search(&id).ok();
    for r in tx.query(
        "SELECT deploy_id, phase, started_at, duration_ms, outcome, detail
         FROM soar.phases WHERE deploy_id = ANY($1) ORDER BY deploy_id, seq",
        &[&ids],
    )? {
        if let Some(i) = index(r.get(0)) {
            deploys[i]
                .phases
                .push((r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)));
        }
    }
    for r in tx.query(
        "SELECT deploy_id, seq, at, body FROM soar.events
         WHERE deploy_id = ANY($1) ORDER BY deploy_id, seq",
        &[&ids],
    )? {
        if let Some(i) = index(r.get(0)) {
            deploys[i].events.push((r.get(1), r.get(2), r.get(3)));
        }
    }
    Ok(deploys)
}

/// Insert every row of `snapshot` for `project` inside the caller's
/// transaction, with prepared statements (one parse each).
fn import_rows(tx: &mut Transaction<'_>, project: &str, snapshot: &Snapshot) -> anyhow::Result<()> {
    let serial =
        tx.prepare("INSERT INTO soar.serials (project, env, serial) VALUES ($1, $2, $3)")?;
    for (env, n) in &snapshot.serials {
        tx.execute(&serial, &[&project, env, n])?;
    }
    let resource = tx.prepare(
        "INSERT INTO soar.resources
             (project, env, kind, name, provider, id, attributes, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
    for r in &snapshot.resources {
        let attributes = r.attributes.to_string();
        tx.execute(
            &resource,
            &[
                &project,
                &r.env,
                &r.kind,
                &r.name,
                &r.provider,
                &r.id,
                &attributes,
                &r.updated_at,
            ],
        )?;
    }
    let release = tx.prepare(
        "INSERT INTO soar.releases
             (project, env, id, artifact_digest, status, created_at, activated_at, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
    for r in &snapshot.releases {
        tx.execute(
            &release,
            &[
                &project,
                &r.env,
                &r.id,
                &r.artifact_digest,
                &r.status.as_str(),
                &r.created_at,
                &r.activated_at,
                &r.detail,
            ],
        )?;
    }
    import_deploys(tx, project, &snapshot.deploys)
}

fn import_deploys(
    tx: &mut Transaction<'_>,
    project: &str,
    deploys: &[DeployCopy],
) -> anyhow::Result<()> {
    let deploy = tx.prepare(
        "INSERT INTO soar.deploys
             (project, env, command, actor, pid, host, proc_token, started_at, finished_at,
              status, summary, events_dropped)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )?;
    let phase = tx.prepare(
        "INSERT INTO soar.phases
             (deploy_id, seq, phase, started_at, duration_ms, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    // Events can be thousands per deploy: one statement per deploy.
    let events = tx.prepare(
        "INSERT INTO soar.events (deploy_id, seq, at, body)
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[])",
    )?;
    for d in deploys {
        let id: i64 = tx
            .query_one(
                &deploy,
                &[
                    &project,
                    &d.env,
                    &d.command,
                    &d.actor,
                    &d.pid,
                    &d.host,
                    &d.proc_token,
                    &d.started_at,
                    &d.finished_at,
                    &d.status,
                    &d.summary,
                    &d.events_dropped,
                ],
            )?
            .get(0);
        for (seq, (name, started_at, duration, outcome, detail)) in d.phases.iter().enumerate() {
            let seq = seq as i64 + 1;
            tx.execute(
                &phase,
                &[&id, &seq, name, started_at, duration, outcome, detail],
            )?;
        }
        if !d.events.is_empty() {
            let seqs: Vec<i64> = d.events.iter().map(|e| e.0).collect();
            let ats: Vec<i64> = d.events.iter().map(|e| e.1).collect();
            let bodies: Vec<&str> = d.events.iter().map(|e| e.2.as_str()).collect();
            tx.execute(&events, &[&id, &seqs, &ats, &bodies])?;
        }
    }
    Ok(())
}
