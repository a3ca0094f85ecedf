//! The server's own SQLite store (`.soar-server/server.db`): tokens, jobs
//! and each job's events. Separate from every project's `.soar/state.db`,
//! which only the deploy itself writes.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context as _;
use rusqlite::Connection;

use super::shared_queue::SharedJobs;

/// The store's file name, under the server's data directory.
pub const DB_FILE: &str = "server.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    project TEXT,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'deploy',
    project TEXT NOT NULL,
    environment TEXT NOT NULL,
    provider TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    exit_code INTEGER,
    error TEXT,
    audit TEXT,
    plan TEXT,
    retry_at INTEGER,
    options TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    exit_code INTEGER,
    error TEXT,
    transient TEXT,
    PRIMARY KEY (job, n)
);
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    environment TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS events (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);
";

/// One connection behind a mutex: every statement is short. With a shared
/// queue, the jobs live in PostgreSQL instead ([`Db::shared`]); tokens
/// and saved plans stay here.
pub struct Db {
    conn: Mutex<Connection>,
    shared: Option<SharedJobs>,
}

impl Db {
    /// Open (creating) `<data_dir>/server.db`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Token hashes and job logs: the server's user only.
            let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = data_dir.join(DB_FILE);
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating the schema of {}", path.display()))?;
        // Columns added after the first stores were made.
        for (column, decl) in [
            ("kind", "TEXT NOT NULL DEFAULT 'deploy'"),
            ("audit", "TEXT"),
            ("plan", "TEXT"),
            ("retry_at", "INTEGER"),
            ("options", "TEXT"),
        ] {
            let has: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
                [column],
                |r| r.get(0),
            )?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {column} {decl}"))?;
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            shared: None,
        })
    }

    /// Keep the jobs in the shared queue `shared` from now on.
    pub fn with_shared(mut self, shared: SharedJobs) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared queue's job store, when this server is one of its workers.
    pub fn shared(&self) -> Option<&SharedJobs> {
        self.shared.as_ref()
    }

    /// The one connection, locked; a handler that panicked holding it does
    /// not poison it for every later request.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `2026-11-22T10:15:00.123Z` (fixed width: sorts in time order).
pub fn rfc3339(ms: i64) -> String {
    let s = crate::state::format_utc(ms);
    format!(
        "{}.{:03}Z",
        s.trim_end_matches(" UTC").replacen(' ', "T", 1),
        ms.rem_euclid(1000)
    )
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    use rand::Rng as _;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_001), "1970-01-01T00:00:01.001Z");
    }
}
