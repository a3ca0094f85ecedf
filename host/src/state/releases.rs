//! Releases: each deploy of an artifact to an environment, and which one is
//! live. `soar rollback` re-activates an earlier one.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use rusqlite::{OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};

use super::clock::{compact_utc, now_ms};
use super::sqlite::{Sqlite, bump_serial};

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Recorded, not (yet) serving.
    Pending,
    /// Serving; at most one per environment (enforced by the database).
    Active,
    /// Was active; replaced by a newer release.
    Superseded,
    /// Never became active: the deploy failed.
    Failed,
    /// Was active; replaced by `soar rollback` to an earlier release.
    RolledBack,
}

impl ReleaseStatus {
    /// The stored (and `--json`) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReleaseStatus {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "superseded" => Self::Superseded,
            "failed" => Self::Failed,
            "rolled-back" => Self::RolledBack,
            other => bail!("unknown release status `{other}`"),
        })
    }
}

/// One release of an artifact to an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The environment it was released to.
    pub env: String,
    /// From [`new_release_id`]: `20261122T101500Z-ab12cd34`.
    pub id: String,
    /// The content digest of the artifact it runs (`sha256:...`).
    pub artifact_digest: String,
    /// Where it is in its life.
    pub status: ReleaseStatus,
    /// When it was recorded, unix milliseconds.
    pub created_at: i64,
    /// When it last became active.
    pub activated_at: Option<i64>,
    /// Why it failed or was rolled back, for people.
    pub detail: Option<String>,
}

/// A release id that sorts chronologically and names its artifact:
/// `<UTC time, ISO basic>-<first 8 hex digits of the digest>`, e.g.
/// `20261122T101500Z-ab12cd34`.
///
/// The fixed-width timestamp makes lexical order time order; the digest
/// prefix tells people which build it is at a glance. An algorithm prefix
/// (`sha256:`) is skipped.
pub fn new_release_id(now_ms: i64, artifact_digest: &str) -> String {
    let hex = artifact_digest
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect::<String>();
    let hex = if hex.is_empty() {
        "00000000".to_string()
    } else {
        hex
    };
    format!("{}-{hex}", compact_utc(now_ms))
}

const COLUMNS: &str = "env, id, artifact_digest, status, created_at, activated_at, detail";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(ReleaseRecord, String)> {
    Ok((
        ReleaseRecord {
            env: row.get(0)?,
            id: row.get(1)?,
            artifact_digest: row.get(2)?,
            status: ReleaseStatus::Pending,
            created_at: row.get(4)?,
            activated_at: row.get(5)?,
            detail: row.get(6)?,
        },
        row.get(3)?,
    ))
}

fn finish((mut record, status): (ReleaseRecord, String)) -> anyhow::Result<ReleaseRecord> {
    record.status = status.parse()?;
    Ok(record)
}

impl Sqlite {
    /// Record a new release (normally `Pending`), bumping the serial.
    ///
    /// Inserting one as `Active` supersedes the current active release in the
    /// same transaction, as [`activate_release`](Self::activate_release) does.
    pub fn insert_release(&self, release: &ReleaseRecord) -> anyhow::Result<()> {
        let detail = release.detail.as_deref();
        self.write(|tx| {
            if release.status == ReleaseStatus::Active {
                retire_active(tx, &release.env, ReleaseStatus::Superseded, None)?;
            }
            tx.execute(
                &format!("INSERT INTO releases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                rusqlite::params![
                    release.env,
                    release.id,
                    release.artifact_digest,
                    release.status.as_str(),
                    release.created_at,
                    release.activated_at,
                    detail,
                ],
            )?;
            bump_serial(tx, &release.env)?;
            Ok(())
        })
        .with_context(|| format!("recording release {} of `{}`", release.id, release.env))
    }

    /// Set a release's status (and `detail`, when given), bumping the serial.
    ///
    /// Setting `Active` is [`activate_release`](Self::activate_release):
    /// the previous active release becomes `Superseded`. Fails if the release
    /// is unknown.
    pub fn set_release_status(
        &self,
        env: &str,
        id: &str,
        status: ReleaseStatus,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        self.write(|tx| {
            let current = status_of(tx, env, id)?;
            if status == ReleaseStatus::Active {
                if current != ReleaseStatus::Active {
                    retire_active(tx, env, ReleaseStatus::Superseded, None)?;
                    mark_active(tx, env, id)?;
                }
            } else {
                tx.execute(
                    "UPDATE releases SET status = ?3 WHERE env = ?1 AND id = ?2",
                    [env, id, status.as_str()],
                )?;
            }
            if let Some(detail) = detail {
                tx.execute(
                    "UPDATE releases SET detail = ?3 WHERE env = ?1 AND id = ?2",
                    [env, id, detail],
                )?;
            }
            bump_serial(tx, env)?;
            Ok(())
        })
        .with_context(|| format!("setting release {id} of `{env}` to {status}"))
    }

    /// Make `id` the active release: the previous active one becomes
    /// `Superseded`, atomically (one transaction), so there is never a moment
    /// with two active releases or none. A no-op when `id` is already active.
    pub fn activate_release(&self, env: &str, id: &str) -> anyhow::Result<()> {
        self.write(|tx| {
            if status_of(tx, env, id)? == ReleaseStatus::Active {
                return Ok(());
            }
            retire_active(tx, env, ReleaseStatus::Superseded, None)?;
            mark_active(tx, env, id)?;
            bump_serial(tx, env)?;
            Ok(())
        })
        .with_context(|| format!("activating release {id} of `{env}`"))
    }

    /// `soar rollback`: the active release becomes `RolledBack` (with
    /// `detail`) and the earlier release `id` active again, in one
    /// transaction.
    pub fn rollback_release(
        &self,
        env: &str,
        id: &str,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        self.write(|tx| {
            if status_of(tx, env, id)? == ReleaseStatus::Active {
                bail!("release {id} is already the active release");
            }
            retire_active(tx, env, ReleaseStatus::RolledBack, detail)?;
            mark_active(tx, env, id)?;
            bump_serial(tx, env)?;
            Ok(())
        })
        .with_context(|| format!("rolling `{env}` back to release {id}"))
    }

    /// The environment's releases, newest first.
    pub fn releases(&self, env: &str) -> anyhow::Result<Vec<ReleaseRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM releases WHERE env = ?1
             ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([env], from_row)?;
        rows.map(|row| finish(row?)).collect()
    }

    /// One release by id.
    pub fn release(&self, env: &str, id: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM releases WHERE env = ?1 AND id = ?2"),
                [env, id],
                from_row,
            )
            .optional()?;
        row.map(finish).transpose()
    }

    /// The release serving the environment, if any.
    pub fn active_release(&self, env: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM releases WHERE env = ?1 AND status = 'active'"),
                [env],
                from_row,
            )
            .optional()?;
        row.map(finish).transpose()
    }
}

/// The stored status of a release; an error when it does not exist.
fn status_of(tx: &Transaction<'_>, env: &str, id: &str) -> anyhow::Result<ReleaseStatus> {
    let status: Option<String> = tx
        .query_row(
            "SELECT status FROM releases WHERE env = ?1 AND id = ?2",
            [env, id],
            |row| row.get(0),
        )
        .optional()?;
    match status {
        Some(status) => status.parse(),
        None => bail!("no release {id} in `{env}`"),
    }
}

/// Move the current active release (if any) to `to`.
fn retire_active(
    tx: &Transaction<'_>,
    env: &str,
    to: ReleaseStatus,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE releases SET status = ?2, detail = coalesce(?3, detail)
         WHERE env = ?1 AND status = 'active'",
        rusqlite::params![env, to.as_str(), detail],
    )?;
    Ok(())
}

/// Mark `id` active now. The unique partial index rejects a second active
/// release, so callers retire the previous one first.
fn mark_active(tx: &Transaction<'_>, env: &str, id: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE releases SET status = 'active', activated_at = ?3 WHERE env = ?1 AND id = ?2",
        rusqlite::params![env, id, now_ms()],
    )?;
    Ok(())
}
