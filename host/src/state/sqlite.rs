//! The embedded SQLite backend of the [`StateStore`](super::StateStore):
//! opening `.soar/state.db` crash-safely, running every mutation as one
//! transaction, and the per-environment serial that saved plans check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::schema;
use super::store::DB_FILE;

/// How long a statement waits for another process's write before failing.
///
/// Writers are serialized by the project lock already; this only covers
/// readers (`soar status`) racing a checkpoint, and a second `soar` opening
/// the database while the first migrates it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite backend: one connection to `<project>/.soar/state.db`.
///
/// SQLite in WAL mode with `synchronous=FULL`: a committed transaction
/// survives power loss, and a process killed mid-write (SIGKILL included)
/// leaves the database at the last commit. Every mutating method is exactly
/// one `IMMEDIATE` transaction, so state is never half-updated, and every
/// mutation of an environment's resources or releases bumps that
/// environment's serial in the same transaction.
///
/// `Send` but not `Sync` (one SQLite connection).
pub(crate) struct Sqlite {
    pub(crate) conn: Connection,
    dir: PathBuf,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Sqlite {
    /// Open `dir/state.db`, creating `dir` and the database as needed, and
    /// bring its schema up to date.
    ///
    /// `dir` is the project's `.soar` directory. Opening twice (or from two
    /// processes) is safe: migrations are idempotent and serialized.
    pub fn open(dir: &Path) -> anyhow::Result<Sqlite> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)
            .with_context(|| format!("opening the project state {}", path.display()))?;
        configure(&conn).with_context(|| format!("configuring {}", path.display()))?;
        schema::migrate(&mut conn).with_context(|| format!("migrating {}", path.display()))?;
        Ok(Sqlite {
            conn,
            dir: dir.to_path_buf(),
        })
    }

    /// The `.soar` directory this store lives in (where the lock lives too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema version of the open database (equals
    /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION) after a successful open).
    pub fn schema_version(&self) -> anyhow::Result<u32> {
        Ok(schema::version(&self.conn)?)
    }

    /// The environment's serial number: 0 for an environment never written,
    /// then bumped by every mutation of its resources or releases.
    ///
    /// A saved plan records it; the store refuses the plan if it moved,
    /// which is how `soar deploy FILE` detects a stale plan without diffing
    /// state.
    pub fn serial(&self, env: &str) -> anyhow::Result<u64> {
        Ok(read_serial(&self.conn, env)?)
    }

    /// Every environment with any resource, release or deploy recorded,
    /// sorted; for `soar status` without `--env`.
    pub fn envs(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT env FROM serials UNION SELECT env FROM deploys ORDER BY env")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Run `f` as one `IMMEDIATE` transaction and commit it.
    ///
    /// `IMMEDIATE` takes SQLite's write lock up front, so a writer never
    /// fails midway upgrading a read lock; if `f` fails the transaction rolls
    /// back on drop and nothing of it is visible.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .context("starting a state transaction")?;
        let value = f(&tx)?;
        tx.commit().context("committing the state transaction")?;
        Ok(value)
    }
}

/// Per-connection settings; none of them persist in the file except WAL.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer and a crash mid-commit leaves the
    // last committed state. Filesystems without shared memory refuse WAL and
    // stay in rollback-journal mode, which is equally crash-safe.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::debug!(mode, "state database is not in WAL mode");
    }
    // FULL: fsync the WAL on every commit, so a committed deploy record
    // survives power loss, not just a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The serial of `env`, 0 when unset.
pub(crate) fn read_serial(conn: &Connection, env: &str) -> rusqlite::Result<u64> {
    let serial: Option<i64> = conn
        .query_row("SELECT serial FROM serials WHERE env = ?1", [env], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(serial.map_or(0, |s| s as u64))
}

/// Bump `env`'s serial inside the caller's transaction; returns the new value.
pub(crate) fn bump_serial(tx: &Transaction<'_>, env: &str) -> rusqlite::Result<u64> {
    let serial: i64 = tx.query_row(
        "INSERT INTO serials (env, serial) VALUES (?1, 1)
         ON CONFLICT (env) DO UPDATE SET serial = serial + 1
         RETURNING serial",
        [env],
        |row| row.get(0),
    )?;
    Ok(serial as u64)
}
