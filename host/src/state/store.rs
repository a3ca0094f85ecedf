//! The store interface the engine uses, over its two backends.

use std::path::Path;

use serde::Serialize;

use super::location::StateLocation;
use super::pg::Postgres;
use super::sqlite::Sqlite;
use super::text::{MAX_ACTOR, MAX_COMMAND, MAX_DETAIL, bounded};
use super::transfer::{Snapshot, TransferCounts};
use super::{
    DeployId, DeployRecord, EventRecord, HolderInfo, Outcome, Phase, ProjectLock, ReleaseRecord,
    ReleaseStatus, ResourceRecord,
};

/// The database file inside the project's `.soar/` directory.
pub const DB_FILE: &str = "state.db";

/// The project's state: resources Soar manages, releases, and the audit trail
/// of every deploy; in `<project>/.soar/state.db`, or in a PostgreSQL
/// database a team shares ([`StateLocation`]).
///
/// Both backends keep the same promises: every mutating method is exactly
/// one transaction, so state is never half-updated and a process killed
/// mid-write (SIGKILL included) leaves the last commit; every mutation of an
/// environment's resources or releases bumps that environment's
/// [serial](StateStore::serial) in the same transaction; at most one release
/// per environment is active. SQLite runs in WAL mode with
/// `synchronous=FULL`, so a commit also survives power loss; PostgreSQL
/// gives that by default.
///
/// Mutations should happen while holding the
/// [`ProjectLock`](super::ProjectLock); reads (`soar status`, `soar history`)
/// need no lock, since readers see a consistent snapshot.
///
/// The backend is an enum, not a trait object: there are exactly two, the
/// `match` in each method makes the compiler check that both implement
/// every operation, and generic methods ([`record_event`](Self::record_event))
/// need no boxing.
///
/// `Send` but not `Sync` (one SQLite connection, or one PostgreSQL session):
/// async code moves it into `spawn_blocking`, or opens a second handle.
/// Called from async code directly, the PostgreSQL backend runs its round
/// trips on a helper thread, so it never blocks inside the runtime's
/// `block_on`.
///
/// **No secrets.** The API takes plain strings and JSON the engine built from
/// plugin outputs the brokers have already scrubbed; it deliberately has no
/// parameter of type [`Secret`](crate::credentials::Secret), and `Secret` does
/// not implement `Serialize`, so one cannot slip into `attributes` through
/// `serde_json::to_value`. The state is readable by anyone who can read the
/// project (or the database), and is treated as such.
#[derive(Debug)]
pub struct StateStore {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(Box<Postgres>),
}

/// Call the same method on whichever backend is open.
macro_rules! on_backend {
    ($self:ident, $backend:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($backend) => $call,
            Backend::Postgres($backend) => $call,
        }
    };
}

/// A saved plan was made against state that has changed since.
///
/// Returned (inside `anyhow::Error`, downcastable) by
/// [`StateStore::check_serial`]: applying such a plan would act on a stale
/// picture of the world, so `soar deploy FILE` refuses and asks for a new plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the saved plan for `{env}` is stale: it was made at state serial {planned}, the state is now at serial {current}. Run `soar plan` again"
)]
pub struct StalePlan {
    /// The environment the plan is for.
    pub env: String,
    /// The serial the plan was made at.
    pub planned: u64,
    /// The serial now.
    pub current: u64,
}

impl StateStore {
    /// Open `dir/state.db`, creating `dir` and the database as needed, and
    /// bring its schema up to date.
    ///
    /// `dir` is the project's `.soar` directory. Opening twice (or from two
    /// processes) is safe: migrations are idempotent and serialized.
    pub fn open(dir: &Path) -> anyhow::Result<StateStore> {
        Ok(StateStore {
            backend: Backend::Sqlite(Sqlite::open(dir)?),
        })
    }

    /// Open the state where `location` says it lives, migrating its schema
    /// as needed (and refusing one written by a newer soar).
    pub fn open_at(location: &StateLocation) -> anyhow::Result<StateStore> {
        let backend = match location {
            StateLocation::Local { dir } => Backend::Sqlite(Sqlite::open(dir)?),
            StateLocation::Postgres {
                url,
                project,
                from_config,
            } => Backend::Postgres(Box::new(Postgres::open(url, !from_config, project)?)),
        };
        Ok(StateStore { backend })
    }

    /// Where this store is, for people: the `.soar` directory, or the
    /// database URL (without a password) and project.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.dir().display().to_string(),
            Backend::Postgres(p) => p.describe(),
        }
    }

    /// The schema version of the open database (equals
    /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION) for SQLite after a
    /// successful open; PostgreSQL's numbering is its own).
    pub fn schema_version(&self) -> anyhow::Result<u32> {
        on_backend!(self, b => b.schema_version())
    }

    /// The environment's serial number: 0 for an environment never written,
    /// then bumped by every mutation of its resources or releases.
    ///
    /// A saved plan records it; [`check_serial`](Self::check_serial) refuses
    /// the plan if it moved, which is how `soar deploy FILE` detects a stale
    /// plan without diffing state.
    pub fn serial(&self, env: &str) -> anyhow::Result<u64> {
        on_backend!(self, b => b.serial(env))
    }

    /// `Ok` when the environment is still at `planned`, else a [`StalePlan`].
    ///
    /// Check while holding the environment's lock, so nothing can change the state
    /// between the check and the apply.
    pub fn check_serial(&self, env: &str, planned: u64) -> anyhow::Result<()> {
        let current = self.serial(env)?;
        if current != planned {
            return Err(StalePlan {
                env: env.to_string(),
                planned,
                current,
            }
            .into());
        }
        Ok(())
    }

    /// Every environment with any resource, release or deploy recorded,
    /// sorted; for `soar status` without `--env`.
    pub fn envs(&self) -> anyhow::Result<Vec<String>> {
        on_backend!(self, b => b.envs())
    }

    /// Insert or replace the resource `(env, kind, name)`, bumping the
    /// environment's serial, in one transaction.
    pub fn upsert_resource(&self, resource: &ResourceRecord) -> anyhow::Result<()> {
        on_backend!(self, b => b.upsert_resource(resource))
    }

    /// Forget the resource; returns whether it was recorded. Bumps the serial
    /// only when something was removed.
    pub fn remove_resource(&self, env: &str, kind: &str, name: &str) -> anyhow::Result<bool> {
        on_backend!(self, b => b.remove_resource(env, kind, name))
    }

    /// The environment's resources, sorted by kind then name.
    pub fn resources(&self, env: &str) -> anyhow::Result<Vec<ResourceRecord>> {
        on_backend!(self, b => b.resources(env))
    }

    /// Record a new release (normally `Pending`), bumping the serial.
    ///
    /// Inserting one as `Active` supersedes the current active release in the
    /// same transaction, as [`activate_release`](Self::activate_release) does.
    pub fn insert_release(&self, release: &ReleaseRecord) -> anyhow::Result<()> {
        let release = &ReleaseRecord {
            detail: release.detail.as_deref().map(|d| bounded(d, MAX_DETAIL)),
            ..release.clone()
        };
        on_backend!(self, b => b.insert_release(release))
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
        let detail = detail.map(|d| bounded(d, MAX_DETAIL));
        let detail = detail.as_deref();
        on_backend!(self, b => b.set_release_status(env, id, status, detail))
    }

    /// Make `id` the active release: the previous active one becomes
    /// `Superseded`, atomically (one transaction), so there is never a moment
    /// with two active releases or none. A no-op when `id` is already active.
    pub fn activate_release(&self, env: &str, id: &str) -> anyhow::Result<()> {
        on_backend!(self, b => b.activate_release(env, id))
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
        let detail = detail.map(|d| bounded(d, MAX_DETAIL));
        let detail = detail.as_deref();
        on_backend!(self, b => b.rollback_release(env, id, detail))
    }

    /// The environment's releases, newest first.
    pub fn releases(&self, env: &str) -> anyhow::Result<Vec<ReleaseRecord>> {
        on_backend!(self, b => b.releases(env))
    }

    /// One release by id.
    pub fn release(&self, env: &str, id: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        on_backend!(self, b => b.release(env, id))
    }

    /// The release serving the environment, if any.
    pub fn active_release(&self, env: &str) -> anyhow::Result<Option<ReleaseRecord>> {
        on_backend!(self, b => b.active_release(env))
    }

    /// Open an audit record for a `command` (`deploy`, `destroy`, `rollback`)
    /// on `env` by `actor`; committed at once, so even a deploy killed in
    /// its first phase leaves a trace.
    ///
    /// Call it after taking the environment's [`ProjectLock`]: `history`
    /// tells a running deploy from an interrupted one by matching it to the
    /// holder of its environment's lock.
    pub fn begin_deploy(&self, env: &str, command: &str, actor: &str) -> anyhow::Result<DeployId> {
        let (command, actor) = (&bounded(command, MAX_COMMAND), &bounded(actor, MAX_ACTOR));
        on_backend!(self, b => b.begin_deploy(env, command, actor))
    }

    /// Record one phase's timing and outcome. Phases keep the order they
    /// were recorded in.
    pub fn record_phase(
        &self,
        deploy: DeployId,
        phase: Phase,
        started_at: i64,
        duration_ms: u64,
        outcome: Outcome,
        detail: &str,
    ) -> anyhow::Result<()> {
        let detail = &bounded(detail, MAX_DETAIL);
        on_backend!(self, b => b.record_phase(deploy, phase, started_at, duration_ms, outcome, detail))
    }

    /// Record an event (a per-resource outcome, a plugin journal entry) as
    /// JSON. Bounded: an event over [`MAX_EVENT_BYTES`](super::MAX_EVENT_BYTES)
    /// is replaced by its truncated text, and past
    /// [`MAX_EVENTS_PER_DEPLOY`](super::MAX_EVENTS_PER_DEPLOY) events are only
    /// counted, so a chatty plugin cannot grow the state without limit.
    pub fn record_event<T: Serialize + ?Sized>(
        &self,
        deploy: DeployId,
        event: &T,
    ) -> anyhow::Result<()> {
        on_backend!(self, b => b.record_event(deploy, event))
    }

    /// Close the audit record with its outcome and a one-line summary.
    /// Fails if the deploy is unknown or already finished.
    pub fn finish_deploy(
        &self,
        deploy: DeployId,
        outcome: Outcome,
        summary: &str,
    ) -> anyhow::Result<()> {
        let summary = &bounded(summary, MAX_DETAIL);
        on_backend!(self, b => b.finish_deploy(deploy, outcome, summary))
    }

    /// The latest `limit` deploys (of `env`, or of every environment),
    /// newest first, each with its phases.
    ///
    /// A deploy that never finished is [`Running`](super::DeployStatus::Running)
    /// if it belongs to this process or to the live holder of its
    /// environment's lock, and [`Interrupted`](super::DeployStatus::Interrupted) otherwise.
    pub fn history(&self, env: Option<&str>, limit: usize) -> anyhow::Result<Vec<DeployRecord>> {
        on_backend!(self, b => b.history(env, limit))
    }

    /// The newest record of one of `envs` made by one of `commands`
    /// (`deploy`, `rollback`...), without its phases: one query, cheap
    /// enough for `soar monitor` to poll for deploys made elsewhere.
    pub fn latest(&self, envs: &[&str], commands: &[&str]) -> anyhow::Result<Option<DeployRecord>> {
        on_backend!(self, b => b.latest(envs, commands))
    }

    /// One deploy by id, with its phases.
    pub fn deploy(&self, id: DeployId) -> anyhow::Result<Option<DeployRecord>> {
        on_backend!(self, b => b.deploy(id))
    }

    /// A deploy's recorded events, in order.
    pub fn events(&self, deploy: DeployId) -> anyhow::Result<Vec<EventRecord>> {
        on_backend!(self, b => b.events(deploy))
    }

    /// Everything this store holds for the project, read in one
    /// consistent view, for `soar state push` / `pull`.
    pub fn export(&self) -> anyhow::Result<Snapshot> {
        on_backend!(self, b => b.export())
    }

    /// Write `snapshot` as the project's state, in one transaction.
    /// Refused with [`NotEmpty`](super::NotEmpty) when the store already
    /// holds state for the project, unless `replace`, which deletes that
    /// state first (in the same transaction). Deploys get new ids;
    /// everything else is copied verbatim, serials included.
    pub fn import(&self, snapshot: &Snapshot, replace: bool) -> anyhow::Result<TransferCounts> {
        on_backend!(self, b => b.import(snapshot, replace))
    }

    /// Who holds this project's lock exclusively right now (a command
    /// spanning every environment), if anyone does.
    pub fn lock_holder(&self) -> anyhow::Result<Option<HolderInfo>> {
        match &self.backend {
            Backend::Sqlite(s) => Ok(ProjectLock::try_holder(s.dir())),
            Backend::Postgres(p) => p.lock_holder(),
        }
    }

    /// Every current holder: `(None, holder)` for a project-wide one,
    /// `(Some(env), holder)` per held environment lock, by environment.
    pub fn lock_holders(&self) -> anyhow::Result<Vec<(Option<String>, HolderInfo)>> {
        let (project, envs) = match &self.backend {
            Backend::Sqlite(s) => (
                ProjectLock::try_holder(s.dir()),
                ProjectLock::env_holders(s.dir()),
            ),
            Backend::Postgres(p) => (p.lock_holder()?, p.env_lock_holders()?),
        };
        Ok(project
            .map(|h| (None, h))
            .into_iter()
            .chain(envs.into_iter().map(|(env, h)| (Some(env), h)))
            .collect())
    }

    /// `soar lock release --force`: end the session of whoever holds
    /// environment `env`'s PostgreSQL lock (`None`: the project-wide lock)
    /// and record that `actor` did. Returns the holder released, `None`
    /// when the lock was free.
    ///
    /// Refused for local state: the file lock belongs to a process on this
    /// machine, which the kernel releases when it exits; stop that process.
    pub fn force_release_lock(
        &self,
        env: Option<&str>,
        actor: &str,
    ) -> anyhow::Result<Option<HolderInfo>> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let held = match env {
                    Some(env) => ProjectLock::try_env_holder(s.dir(), env),
                    None => ProjectLock::try_holder(s.dir()),
                };
                let Some(h) = held else {
                    return Ok(None);
                };
                let which = match env {
                    Some(env) => format!("the lock of environment `{env}`"),
                    None => "the project lock".to_string(),
                };
                anyhow::bail!(
                    "{which} in {} is held by pid {} on this machine; a file lock is freed when its process exits: stop that process (kill {})",
                    s.dir().display(),
                    h.pid,
                    h.pid
                )
            }
            Backend::Postgres(p) => p.force_release_lock(env, actor),
        }
    }

    /// The SQLite connection, for tests of its pragmas.
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> Option<&Sqlite> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }
}
