//! The project state: resources, releases, audit trail, lock.
//!
//! * [`StateStore`]: the resources Soar manages ([`ResourceRecord`]), the
//!   releases ([`ReleaseRecord`]) and the audit trail of every deploy,
//!   destroy and rollback with its timed phases ([`DeployRecord`]). `soar
//!   status` and `soar history` read it. By default an embedded SQLite
//!   database, `.soar/state.db`; with `[state] url`, `SOAR_STATE_URL` or
//!   `--state` ([`StateLocation`]), a PostgreSQL database a team shares,
//!   with the same semantics.
//! * [`ProjectLock`]: one `soar deploy` per environment at a time (the
//!   project lock shared plus the environment's exclusive; commands
//!   spanning every environment take the project lock exclusive); file
//!   locks in `.soar/`, or advisory locks in the PostgreSQL database. The
//!   second waits up to `--lock-timeout` and then names who holds it
//!   ([`LockError::Held`]).
//! * [`AnnounceLease`]: of several monitors of one project, the one that
//!   announces its health transitions.
//! * Saved plans record the environment's [serial](StateStore::serial);
//!   [`StateStore::check_serial`] refuses a stale one ([`StalePlan`]).
//!
//! Crash consistency: every mutation is one transaction, and either lock is
//! released when its holder dies (the kernel drops the file lock; the
//! server ends the session holding the advisory lock). A `soar deploy`
//! SIGKILLed at any point leaves the state at its last commit, the lock
//! free, and the deploy shown as [`Interrupted`](DeployStatus::Interrupted);
//! re-running reconciles from there.
//!
//! Nothing here stores secrets: see [`StateStore`].

// Every public item says why it is there.
#![warn(missing_docs)]

mod audit;
mod clock;
mod lease;
mod location;
mod lock;
mod pg;
mod releases;
mod resources;
mod schema;
mod sqlite;
mod store;
mod text;
mod transfer;

#[cfg(test)]
mod tests;

pub use audit::{
    DeployId, DeployRecord, DeployStatus, EventRecord, MAX_EVENT_BYTES, MAX_EVENTS_PER_DEPLOY,
    Outcome, Phase, PhaseRecord,
};
pub use clock::{compact_utc, format_utc, now_ms};
pub use lease::{ANNOUNCE_LOCK_FILE, AnnounceLease};
pub use location::{STATE_URL_VAR, StateLocation};
pub use lock::{ENV_LOCK_PREFIX, HolderInfo, LOCK_FILE, LOCK_INFO_FILE, LockError, ProjectLock};
pub use pg::queue::{
    DB_MS, QueueDb, Reaped, Renewal, listen as listen_for_jobs, notify as notify_jobs,
};
pub use pg::schema::PG_SCHEMA_VERSION;
pub use releases::{ReleaseRecord, ReleaseStatus, new_release_id};
pub use resources::ResourceRecord;
pub use schema::SCHEMA_VERSION;
pub use store::{DB_FILE, StalePlan, StateStore};
pub use transfer::{NotEmpty, Snapshot, TransferCounts};

/// The project's state directory name, `<project>/.soar`.
pub const STATE_DIR: &str = ".soar";
