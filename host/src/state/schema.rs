//! The state database's schema and its migrations.
//!
//! The version lives in SQLite's `user_version` pragma (a header field, so it
//! is read without any table existing). Each [`Migration`] moves the schema
//! from `version - 1` to `version`; [`migrate`] applies the missing ones in one
//! `IMMEDIATE` transaction together with the `user_version` bump, so a crash or
//! a concurrent `soar` opening the same project can never leave a half-migrated
//! database: the second opener waits on SQLite's write lock and then sees the
//! new version. To add v2, append `Migration { version: 2, sql: "ALTER ..." }`
//! to [`MIGRATIONS`]; never edit a released migration.

use anyhow::{Context, bail};
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// One step of the schema history.
pub(crate) struct Migration {
    /// The `user_version` after this migration.
    pub version: u32,
    /// The DDL/DML to run; executed as a batch inside the migration transaction.
    pub sql: &'static str,
}

/// Every migration, in order; versions are 1, 2, 3, ... without gaps.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: V1,
}];

/// The schema version this build of `soar` writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// v1: serials, resources, releases, and the audit trail.
///
/// Tables are `STRICT` so a wrong type is an error instead of silent
/// coercion. Timestamps are unix milliseconds.
const V1: &str = r#"
CREATE TABLE serials (
    env    TEXT PRIMARY KEY NOT NULL,
    serial INTEGER NOT NULL
) STRICT;

CREATE TABLE resources (
    env        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    provider   TEXT NOT NULL,
    id         TEXT,
    attributes TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (env, kind, name)
) STRICT;

CREATE TABLE releases (
    env             TEXT NOT NULL,
    id              TEXT NOT NULL,
    artifact_digest TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    activated_at    INTEGER,
    detail          TEXT,
    PRIMARY KEY (env, id)
) STRICT;
-- At most one active release per environment, enforced by SQLite itself.
CREATE UNIQUE INDEX releases_one_active ON releases (env) WHERE status = 'active';
CREATE INDEX releases_by_time ON releases (env, created_at);

CREATE TABLE deploys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    env            TEXT NOT NULL,
    command        TEXT NOT NULL,
    actor          TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    host           TEXT NOT NULL,
    proc_token     TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    status         TEXT NOT NULL,
    summary        TEXT,
    events_dropped INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX deploys_by_env ON deploys (env, id);

CREATE TABLE phases (
    deploy_id   INTEGER NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    phase       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    PRIMARY KEY (deploy_id, seq)
) STRICT;

CREATE TABLE events (
    deploy_id INTEGER NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (deploy_id, seq)
) STRICT;
"#;

/// The database's current `user_version`.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Bring the database up to [`SCHEMA_VERSION`]; a no-op when it already is.
///
/// Refuses a database from a newer `soar` rather than guess at its meaning.
pub(crate) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    migrate_with(conn, MIGRATIONS)
}

/// [`migrate`] over an explicit list, so tests can exercise a future step.
pub(crate) fn migrate_with(conn: &mut Connection, migrations: &[Migration]) -> anyhow::Result<()> {
    let latest = migrations.last().map_or(0, |m| m.version);
    // Cheap check first: the common case opens an up-to-date database and
    // should not take the write lock.
    let current = version(conn).context("reading the state schema version")?;
    if current == latest {
        return Ok(());
    }
    let tx = Transaction::new(conn, TransactionBehavior::Immediate)
        .context("locking the state database to migrate it")?;
    // Re-read under the write lock: another process may have migrated.
    let current = version(&tx).context("reading the state schema version")?;
    if current > latest {
        bail!(
            "the project state was written by a newer soar (schema v{current}; this soar knows up to v{latest}); upgrade soar"
        );
    }
    for step in migrations.iter().filter(|m| m.version > current) {
        tx.execute_batch(step.sql)
            .with_context(|| format!("migrating the state schema to v{}", step.version))?;
        tx.pragma_update(None, "user_version", step.version)?;
    }
    tx.commit()
        .context("committing the state schema migration")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
    }

    #[test]
    fn a_later_migration_applies_on_top_and_only_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        let v2 = [
            Migration {
                version: 1,
                sql: V1,
            },
            Migration {
                version: 2,
                sql: "ALTER TABLE resources ADD COLUMN note TEXT;",
            },
        ];
        migrate_with(&mut conn, &v2).unwrap();
        // Applying again must not re-run the ALTER (which would fail).
        migrate_with(&mut conn, &v2).unwrap();
        assert_eq!(version(&conn).unwrap(), 2);
        // And the v1-only build now refuses the newer database.
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer soar"), "{err}");
    }
}
