//! `soar state push URL` / `soar state pull [URL]`: move a project's state
//! between its `.soar/state.db` and a PostgreSQL database a team shares.
//!
//! Both directions hold the project lock on both sides while they copy,
//! so no deploy writes either store meanwhile; read the source in one
//! consistent view, and write the destination in one transaction
//! ([`StateStore::import`]), so a copy cut short leaves the destination as
//! it was. A destination that already holds state for the project is left
//! alone unless `--force`, which replaces it (in that same transaction).
//! The source is never changed: after a push, point the project at the
//! database (`[state] url`, `SOAR_STATE_URL` or `--state`) and keep
//! `.soar/state.db` as a backup, or remove it.

use std::path::Path;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::args::LockArgs;
use crate::engine::Workspace;
use crate::report::Reporter;
use crate::state::{HolderInfo, NotEmpty, ProjectLock, StateLocation, StateStore};

/// `soar state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy this project's local state (.soar/state.db) into a PostgreSQL
    /// database.
    Push(PushArgs),
    /// Copy this project's state from a PostgreSQL database into
    /// .soar/state.db.
    Pull(PullArgs),
}

/// `soar state push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The database: postgres://user@host:5432/db (the password from
    /// PGPASSWORD or ~/.pgpass).
    url: String,
    /// Replace the state the database already holds for this project.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    lock: LockArgs,
}

/// `soar state pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The database (default: the project's own, from --state,
    /// SOAR_STATE_URL or [state] url).
    url: Option<String>,
    /// Replace the state .soar/state.db already holds.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    lock: LockArgs,
}

/// Run a `soar state` subcommand; `config` is the global `-c`.
pub fn run(config: Option<&Path>, cmd: StateCommand, out: &Reporter) -> anyhow::Result<i32> {
    let ws = Workspace::open(config, out.clone())?;
    let local = StateLocation::Local {
        dir: ws.state_dir(),
    };
    let remote = |url: String| StateLocation::Postgres {
        url,
        project: ws.project.state.project.clone(),
        from_config: false,
    };
    let (from, to, force, lock) = match cmd {
        StateCommand::Push(a) => {
            let db = ws.state_dir().join(crate::state::DB_FILE);
            anyhow::ensure!(
                db.exists(),
                "there is no local state to push: {} does not exist",
                db.display()
            );
            (local, remote(a.url), a.force, a.lock)
        }
        StateCommand::Pull(a) => {
            let from = match a.url {
                Some(url) => remote(url),
                None => match ws.state_location() {
                    located @ StateLocation::Postgres { .. } => located,
                    StateLocation::Local { .. } => anyhow::bail!(
                        "pull from where? give the database URL (soar state pull postgres://user@host/db), or set SOAR_STATE_URL or [state] url"
                    ),
                },
            };
            (from, local, a.force, a.lock)
        }
    };
    let counts = copy(&from, &to, force, lock.lock_timeout)?;
    out.message(|| format!("copied {} -> {}: {counts}", from.describe(), to.describe()));
    Ok(0)
}

/// Copy the state at `from` to `to` under both project locks.
fn copy(
    from: &StateLocation,
    to: &StateLocation,
    force: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<crate::state::TransferCounts> {
    let holder = HolderInfo::current();
    let _from_lock = ProjectLock::acquire_at(from, timeout, &holder)?;
    let _to_lock = ProjectLock::acquire_at(to, timeout, &holder)?;
    let source = StateStore::open_at(from)?;
    let snapshot = source
        .export()
        .with_context(|| format!("reading the state in {}", from.describe()))?;
    let destination = StateStore::open_at(to)?;
    destination
        .import(&snapshot, force)
        .map_err(|e| match e.downcast_ref::<NotEmpty>() {
            Some(held) => anyhow::anyhow!(
                "{held}; nothing was copied. Pass --force to replace it with the state of {}",
                from.describe()
            ),
            None => e,
        })
}
