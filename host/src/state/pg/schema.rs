//! The PostgreSQL schema of the state and its migrations.
//!
//! Everything lives in the `soar` schema of the database, so the state can
//! share a database with anything else; several projects share the tables,
//! every row keyed by `project`. The version is the one row of
//! `soar.meta`. [`migrate`] applies the missing steps in one transaction
//! under a transaction-scoped advisory lock, so two `soar`s opening a fresh
//! database at once cannot both run a step; a database migrated by a newer
//! soar is refused. Released migrations are never edited: append a
//! [`Migration`].

use anyhow::{Context, bail};
use postgres::Client;
use postgres::error::SqlState;

use crate::state::schema::Migration;

/// Advisory lock key (class) of everything soar locks in PostgreSQL: the
/// migration lock below and, with the project's key, the project locks.
pub(crate) const LOCK_CLASS: i32 = 0x50_0A_52;
/// Advisory lock class of the environment locks, keyed by
/// `soar.env_locks.key` (`LOCK_CLASS + 1` and `+ 2` are the queue's claim
/// and announcement locks).
pub(crate) const ENV_LOCK_CLASS: i32 = LOCK_CLASS + 3;
/// The second half of the migration lock's key.
const MIGRATION_KEY: i32 = 0;

/// Every migration, in order; versions 1, 2, 3, ... without gaps.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: V1,
    },
    Migration {
        version: 2,
        sql: super::queue::MIGRATION,
    },
    Migration {
        version: 3,
        sql: V3,
    },
];

/// The schema version this soar writes to a PostgreSQL state database
/// (numbered apart from SQLite's [`SCHEMA_VERSION`](crate::state::SCHEMA_VERSION)).
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// v1: the SQLite v1 tables keyed by project, plus the project locks.
///
/// Timestamps are unix milliseconds (`bigint`), as in SQLite, so both
/// backends hand out identical records.
const V1: &str = r#"
CREATE TABLE soar.serials (
    project text NOT NULL,
    env     text NOT NULL,
    serial  bigint NOT NULL,
    PRIMARY KEY (project, env)
);

CREATE TABLE soar.resources (
    project    text NOT NULL,
    env        text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    provider   text NOT NULL,
    id         text,
    attributes text NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (project, env, kind, name)
);

CREATE TABLE soar.releases (
    project         text NOT NULL,
    env             text NOT NULL,
    id              text NOT NULL,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    artifact_digest text NOT NULL,
    status          text NOT NULL,
    created_at      bigint NOT NULL,
    activated_at    bigint,
    detail          text,
    PRIMARY KEY (project, env, id)
);
-- At most one active release per environment, enforced by the database.
CREATE UNIQUE INDEX releases_one_active ON soar.releases (project, env) WHERE status = 'active';
CREATE INDEX releases_by_time ON soar.releases (project, env, created_at);

CREATE TABLE soar.deploys (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project        text NOT NULL,
    env            text NOT NULL,
    command        text NOT NULL,
    actor          text NOT NULL,
    pid            bigint NOT NULL,
    host           text NOT NULL,
    proc_token     text NOT NULL,
    started_at     bigint NOT NULL,
    finished_at    bigint,
    status         text NOT NULL,
    summary        text,
    events_dropped bigint NOT NULL DEFAULT 0
);
CREATE INDEX deploys_by_env ON soar.deploys (project, env, id);

CREATE TABLE soar.phases (
    deploy_id   bigint NOT NULL REFERENCES soar.deploys (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    phase       text NOT NULL,
    started_at  bigint NOT NULL,
    duration_ms bigint NOT NULL,
    outcome     text NOT NULL,
    detail      text NOT NULL,
    PRIMARY KEY (deploy_id, seq)
);

CREATE TABLE soar.events (
    deploy_id bigint NOT NULL REFERENCES soar.deploys (id) ON DELETE CASCADE,
    seq       bigint NOT NULL,
    at        bigint NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (deploy_id, seq)
);

-- One row per project that ever took its lock: `key` is the advisory lock's
-- second half; the rest names the holder while `backend_pid` holds it.
CREATE TABLE soar.locks (
    project     text PRIMARY KEY,
    key         integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    backend_pid integer,
    pid         bigint,
    host        text,
    user_name   text,
    command     text,
    started_at  bigint
);

-- Forced releases (`soar lock release --force`), for the record.
CREATE TABLE soar.lock_releases (
    project     text NOT NULL,
    at          bigint NOT NULL,
    actor       text NOT NULL,
    host        text NOT NULL,
    released    text NOT NULL
);
"#;

/// v3: a lock per environment, so deploys of two environments of one
/// project run side by side; forced releases say which environment.
/// Idempotent (`IF NOT EXISTS`), so a database set back to an older
/// version by hand migrates again cleanly.
const V3: &str = r#"
-- One row per (project, environment) that ever took its lock: `key` is the
-- advisory lock's second half (class ENV_LOCK_CLASS); the rest names the
-- holder while `backend_pid` holds it.
CREATE TABLE IF NOT EXISTS soar.env_locks (
    project     text NOT NULL,
    env         text NOT NULL,
    key         integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    backend_pid integer,
    pid         bigint,
    host        text,
    user_name   text,
    command     text,
    started_at  bigint,
    PRIMARY KEY (project, env)
);

ALTER TABLE soar.lock_releases ADD COLUMN IF NOT EXISTS env text;
"#;

/// The database's schema version; 0 before the first migration.
pub(crate) fn version(client: &mut Client) -> anyhow::Result<u32> {
    match client.query_one("SELECT version FROM soar.meta", &[]) {
        Ok(row) => Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0)),
        Err(e)
            if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE
                || *c == SqlState::INVALID_SCHEMA_NAME) =>
        {
            Ok(0)
        }
        Err(e) => Err(e).context("reading the state schema version"),
    }
}

/// Bring the database up to [`PG_SCHEMA_VERSION`]; one query when it is.
pub(crate) fn migrate(client: &mut Client, shown: &str) -> anyhow::Result<()> {
    migrate_with(client, MIGRATIONS, shown)
}

/// [`migrate`] over an explicit list, so tests can exercise a future step.
pub(crate) fn migrate_with(
    client: &mut Client,
    migrations: &[Migration],
    shown: &str,
) -> anyhow::Result<()> {
    let latest = migrations.last().map_or(0, |m| m.version);
    let current = version(client)?;
    if current == latest {
        return Ok(());
    }
    refuse_newer(current, latest, shown)?;
    let mut tx = client
        .transaction()
        .context("starting the state schema migration")?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &MIGRATION_KEY],
    )
    .context("locking the state schema to migrate it")?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS soar;
         CREATE TABLE IF NOT EXISTS soar.meta (
             one     boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL
         );",
    )
    .with_context(|| {
        format!("creating the soar schema in {shown} (may this user CREATE in that database?)")
    })?;
    // Re-read under the lock: another soar may have migrated meanwhile.
    let current: u32 = tx
        .query_opt("SELECT version FROM soar.meta", &[])?
        .map_or(0, |row| u32::try_from(row.get::<_, i32>(0)).unwrap_or(0));
    refuse_newer(current, latest, shown)?;
    for step in migrations.iter().filter(|m| m.version > current) {
        tx.batch_execute(step.sql)
            .with_context(|| format!("migrating the state schema to v{}", step.version))?;
    }
    let latest_i32 = i32::try_from(latest).context("schema version out of range")?;
    tx.execute(
        "INSERT INTO soar.meta (version) VALUES ($1)
         ON CONFLICT (one) DO UPDATE SET version = excluded.version",
        &[&latest_i32],
    )?;
    tx.commit()
        .context("committing the state schema migration")?;
    Ok(())
}

fn refuse_newer(current: u32, latest: u32, shown: &str) -> anyhow::Result<()> {
    if current > latest {
        bail!(
            "the state database {shown} was written by a newer soar (schema v{current}; this soar knows up to v{latest}); upgrade soar"
        );
    }
    Ok(())
}
