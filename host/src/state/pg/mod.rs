//! The PostgreSQL backend of the [`StateStore`](super::StateStore): a
//! team's shared state, every row keyed by the project's name.
//!
//! Same semantics as the SQLite backend, method for method: every mutation
//! is one transaction, bumps the environment's serial with it, and keeps at
//! most one active release per environment (a unique index). Writers are
//! serialized by the project lock ([`lock`]), an advisory lock the server
//! frees when the holder's session ends, so a holder killed with SIGKILL or
//! cut off by the network never wedges the project.

mod audit;
mod connect;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod queue;
mod releases;
mod resources;
pub(crate) mod schema;
mod session;
mod tls;
mod transfer;

use anyhow::Context;
use postgres::Transaction;

pub(crate) use connect::{Target, redact};
pub(crate) use session::Session;

/// A project's state in a PostgreSQL database.
pub(crate) struct Postgres {
    session: Session,
    project: String,
    shown: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.shown)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connect to `url` and bring its schema up to date; rows are those of
    /// `project`. `password_allowed` is false for a URL from soar.toml.
    pub(crate) fn open(url: &str, password_allowed: bool, project: &str) -> anyhow::Result<Self> {
        let target = Target::parse(url, password_allowed)?;
        let session = Session::new(target.connect()?);
        let shown = target.shown().to_string();
        session.run(|c| schema::migrate(c, &shown))?;
        Ok(Postgres {
            session,
            project: project.to_string(),
            shown,
        })
    }

    /// The URL (without a password) and project, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("{} (project `{}`)", self.shown, self.project)
    }

    /// The database's schema version.
    pub(crate) fn schema_version(&self) -> anyhow::Result<u32> {
        self.session.run(schema::version)
    }

    /// The environment's serial, 0 when never written.
    pub(crate) fn serial(&self, env: &str) -> anyhow::Result<u64> {
        let project = &self.project;
        self.session.run(|c| {
            let row = c.query_opt(
                "SELECT serial FROM soar.serials WHERE project = $1 AND env = $2",
                &[project, &env],
            )?;
            Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
        })
    }

    /// Every environment with any resource, release or deploy, sorted.
    pub(crate) fn envs(&self) -> anyhow::Result<Vec<String>> {
        let project = &self.project;
        self.session.run(|c| {
            let rows = c.query(
                "SELECT env FROM (
                     SELECT env FROM soar.serials WHERE project = $1
                     UNION SELECT env FROM soar.deploys WHERE project = $1
                 ) e ORDER BY env COLLATE \"C\"",
                &[project],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Run `f` in one transaction and commit it; rolled back if `f` fails.
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>, &str) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let project = &self.project;
        self.session.run(|c| {
            let mut tx = c.transaction().context("starting a state transaction")?;
            let value = f(&mut tx, project)?;
            tx.commit().context("committing the state transaction")?;
            Ok(value)
        })
    }

    /// Run `f` with the connection (reads).
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client, &str) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let project = &self.project;
        self.session.run(|c| f(c, project))
    }
}

/// Bump `env`'s serial inside the caller's transaction; returns the new value.
fn bump_serial(tx: &mut Transaction<'_>, project: &str, env: &str) -> anyhow::Result<u64> {
    let row = tx.query_one(
        "INSERT INTO soar.serials (project, env, serial) VALUES ($1, $2, 1)
         ON CONFLICT (project, env) DO UPDATE SET serial = soar.serials.serial + 1
         RETURNING serial",
        &[&project, &env],
    )?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

impl Postgres {
    /// Who holds this project's lock exclusively right now.
    pub(crate) fn lock_holder(&self) -> anyhow::Result<Option<crate::state::HolderInfo>> {
        self.read(lock::holder)
    }

    /// Who holds this project's environment locks right now, by
    /// environment.
    pub(crate) fn env_lock_holders(
        &self,
    ) -> anyhow::Result<Vec<(String, crate::state::HolderInfo)>> {
        self.read(|c, project| lock::env_holders(c, project, None))
    }

    /// End the session of the holder of `env`'s lock (`None`: of the
    /// project-wide lock) and record it (`soar lock release --force`).
    pub(crate) fn force_release_lock(
        &self,
        env: Option<&str>,
        actor: &str,
    ) -> anyhow::Result<Option<crate::state::HolderInfo>> {
        self.read(|c, project| lock::force_release(c, project, env, actor))
    }
}
