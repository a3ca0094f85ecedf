//! The project state in `.soar/`: resources, releases, audit trail, lock.
//!
//! * [`StateStore`]: an embedded SQLite database, `.soar/state.db`, holding
//!   the resources Soar manages ([`ResourceRecord`]), the releases
//!   ([`ReleaseRecord`]) and the audit trail of every deploy, destroy and
//!   rollback with its timed phases ([`DeployRecord`]). `soar status` and
//!   `soar history` read it.
//! * [`ProjectLock`]: an exclusive file lock, `.soar/lock`, so two
//!   `soar deploy` runs on one project cannot interleave; the second waits up
//!   to `--lock-timeout` and then names who holds it ([`LockError::Held`]).
//! * Saved plans record the environment's [serial](StateStore::serial);
//!   [`StateStore::check_serial`] refuses a stale one ([`StalePlan`]).
//!
//! Crash consistency: every mutation is one SQLite transaction, committed
//! with `synchronous=FULL`, and the lock is released by the kernel when its
//! holder dies. A `soar deploy` SIGKILLed at any point leaves the state at
//! its last commit, the lock free, and the deploy shown as
//! [`Interrupted`](DeployStatus::Interrupted); re-running reconciles from
//! there.
//!
//! Nothing here stores secrets: see [`StateStore`].

// Every public item says why it is there.
#![warn(missing_docs)]

mod audit;
mod clock;
mod lock;
mod releases;
mod resources;
mod schema;
mod store;
mod text;

#[cfg(test)]
mod tests;

pub use audit::{
    DeployId, DeployRecord, DeployStatus, EventRecord, MAX_EVENT_BYTES, MAX_EVENTS_PER_DEPLOY,
    Outcome, Phase, PhaseRecord,
};
pub use clock::{compact_utc, format_utc, now_ms};
pub use lock::{HolderInfo, LOCK_FILE, LOCK_INFO_FILE, LockError, ProjectLock};
pub use releases::{ReleaseRecord, ReleaseStatus, new_release_id};
pub use resources::ResourceRecord;
pub use schema::SCHEMA_VERSION;
pub use store::{DB_FILE, StalePlan, StateStore};

/// The project's state directory name, `<project>/.soar`.
pub const STATE_DIR: &str = ".soar";
