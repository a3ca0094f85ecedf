//! Releases on PostgreSQL (see the SQLite twin in `state::releases`).

use anyhow::{Context, bail};
use postgres::{Row, Transaction};

use super::{Postgres, bump_serial};
use crate::state::clock::now_ms;
use crate::state::{ReleaseRecord, ReleaseStatus};

const COLUMNS: &str = "env, id, artifact_digest, status, created_at, activated_at, detail";

fn from_row(row: &Row) -> anyhow::Result<ReleaseRecord> {
    Ok(ReleaseRecord {
        env: row.get(0),
        id: row.get(1),
        artifact_digest: row.get(2),
        status: row.get::<_, String>(3).parse()?,
        created_at: row.get(4),
        activated_at: row.get(5),
        detail: row.get(6),
    })
}

impl Postgres {
    /// Record a new release, bumping the serial; an `Active` one supersedes
    /// the current active release in the same transaction.
    pub(crate) fn insert_release(&self, release: &ReleaseRecord) -> anyhow::Result<()> {
        let detail = release.detail.as_deref();
        self.write(|tx, project| {
            if release.status == ReleaseStatus::Active {
                retire_active(tx, project, &release.env, ReleaseStatus::Superseded, None)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO soar.releases (project, {COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &project,
                    &release.env,
                    &release.id,
                    &release.artifact_digest,
                    &release.status.as_str(),
                    &release.created_at,
                    &release.activated_at,
                    &detail,
                ],
            )?;
            bump_serial(tx, project, &release.env)?;
            Ok(())
        })
        .with_context(|| format!("recording release {} of `{}`", release.id, release.env))
    }

    /// Set a release's status (and detail), bumping the serial.
    pub(crate) fn set_release_status(
        &self,
        env: &str,
        id: &str,
        status: ReleaseStatus,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        self.write(|tx, project| {
            let current = status_of(tx, project, env, id)?;
            if status == ReleaseStatus::Active {
                if current != ReleaseStatus::Active {
                    retire_active(tx, project, env, ReleaseStatus::Superseded, None)?;
                    mark_active(tx, project, env, id)?;
                }
            } else {
                tx.execute(
                    "UPDATE soar.releases SET status = $4
                     WHERE project = $1 AND env = $2 AND id = $3",
                    &[&project, &env, &id, &status.as_str()],
                )?;
            }
            if let Some(detail) = &detail {
                tx.execute(
                    "UPDATE soar.releases SET detail = $4
                     WHERE project = $1 AND env = $2 AND id = $3",
                    &[&project, &env, &id, detail],
                )?;
            }
            bump_serial(tx, project, env)?;
            Ok(())
        })
        .with_context(|| format!("setting release {id} of `{env}` to {status}"))
    }

    /// Make `id` the active release, superseding the previous one.
    pub(crate) fn activate_release(&self, env: &str, id: &str) -> anyhow::Result<()> {
        self.write(|tx, project| {
            if status_of(tx, project, env, id)? == ReleaseStatus::Active {
                return Ok(());
            }
            retire_active(tx, project, env, ReleaseStatus::Superseded, None)?;
            mark_active(tx, project, env, id)?;
            bump_serial(tx, project, env)?;
            Ok(())
        })
        .with_context(|| format!("activating release {id} of `{env}`"))
    }

    /// The active release becomes `RolledBack`, `id` active again.
    pub(crate) fn rollback_release(
        &self,
        env: &str,
        id: &str,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        self.write(|tx, project| {
            if status_of(tx, project, env, id)? == ReleaseStatus::Active {
                bail!("release {id} is already the active release");
            }
            retire_active(tx, project, env, ReleaseStatus::RolledBack, detail)?;
            mark_active(tx, project, env, id)?;
            bump_serial(tx, project, env)?;
            Ok(())
        })
        .with_context(|| format!("rolling `{env}` back to release {id}"))
    }

    /// The environment's releases, newest first.
    pub(crate) fn releases(&self, env: &str) -> anyhow::Result<Vec<ReleaseRecord>> {
        self.read(|c, project| {
            let rows = c.query(
                &format!(
                    "SELECT {COLUMNS} FROM soar.releases WHERE project = $1 AND env = $2
                     ORDER BY created_at DESC, seq DESC"
                ),
                &[&project, &env],
            )?;
            rows.iter().map(from_row).collect()
        })
    }

    /// One release by id.
    pub(crate) fn release(&self, env: &str, id: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        self.read(|c, project| {
            let row = c.query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM soar.releases
                     WHERE project = $1 AND env = $2 AND id = $3"
                ),
                &[&project, &env, &id],
            )?;
            row.as_ref().map(from_row).transpose()
        })
    }

    /// The release serving the environment, if any.
    pub(crate) fn active_release(&self, env: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        self.read(|c, project| {
            let row = c.query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM soar.releases
                     WHERE project = $1 AND env = $2 AND status = 'active'"
                ),
                &[&project, &env],
            )?;
            row.as_ref().map(from_row).transpose()
        })
    }
}

/// The stored status of a release; an error when it does not exist.
fn status_of(
    tx: &mut Transaction<'_>,
    project: &str,
    env: &str,
    id: &str,
) -> anyhow::Result<ReleaseStatus> {
    let row = tx.query_opt(
        "SELECT status FROM soar.releases WHERE project = $1 AND env = $2 AND id = $3",
        &[&project, &env, &id],
    )?;
    match row {
        Some(row) => row.get::<_, String>(0).parse(),
        None => bail!("no release {id} in `{env}`"),
    }
}

/// Move the current active release (if any) to `to`.
fn retire_active(
    tx: &mut Transaction<'_>,
    project: &str,
    env: &str,
    to: ReleaseStatus,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE soar.releases SET status = $3, detail = coalesce($4, detail)
         WHERE project = $1 AND env = $2 AND status = 'active'",
        &[&project, &env, &to.as_str(), &detail],
    )?;
    Ok(())
}

/// Mark `id` active now (the unique index refuses a second active one).
fn mark_active(tx: &mut Transaction<'_>, project: &str, env: &str, id: &str) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE soar.releases SET status = 'active', activated_at = $4
         WHERE project = $1 AND env = $2 AND id = $3",
        &[&project, &env, &id, &now_ms()],
    )?;
    Ok(())
}
