//! `soar lock`: who holds the project lock, and freeing it by force when
//! its holder is stuck.
//!
//! The lock frees itself when its holder dies (the kernel drops the file
//! lock; PostgreSQL ends a dead holder's session), so `release --force` is
//! for the rare holder that is alive but stuck, or unreachable while its
//! session lingers. It ends the holder's database session (its deploy then
//! fails at its next write) and records who forced it, in
//! `soar.lock_releases`.

use std::path::Path;

use clap::Subcommand;

use crate::engine::Workspace;
use crate::report::Reporter;
use crate::state::{HolderInfo, format_utc};

/// `soar lock ...`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show who holds the project lock, if anyone.
    Status,
    /// End the session of a stuck holder of the project lock (PostgreSQL
    /// state only), recording who did it.
    Release {
        /// Required: ending someone's deploy is never the default.
        #[arg(long)]
        force: bool,
    },
}

/// Run a `soar lock` subcommand; `config` is the global `-c`.
pub fn run(config: Option<&Path>, cmd: LockCommand, out: &Reporter) -> anyhow::Result<i32> {
    let ws = Workspace::open(config, out.clone())?;
    let location = ws.state_location();
    match cmd {
        LockCommand::Status => {
            let store = ws.state()?;
            match store.lock_holder()? {
                Some(h) => {
                    out.message(|| format!("held by {} ({})", describe(&h), location.describe()))
                }
                None => out.message(|| format!("free ({})", location.describe())),
            }
            Ok(0)
        }
        LockCommand::Release { force: false } => anyhow::bail!(
            "`soar lock release` ends the holder's deploy: pass --force if that is what you want (see `soar lock status` for who holds it)"
        ),
        LockCommand::Release { force: true } => {
            let store = ws.state()?;
            let actor = HolderInfo::current()
                .user
                .unwrap_or_else(|| "unknown".to_string());
            match store.force_release_lock(&actor)? {
                Some(h) => out.message(|| {
                    format!(
                        "released the project lock held by {}; recorded as forced by {actor}",
                        describe(&h)
                    )
                }),
                None => out.message(|| "the project lock is free; nothing to release".into()),
            }
            Ok(0)
        }
    }
}

/// `pid 1234 on host, user alice, `soar deploy`, since 2026-12-07 06:00:00 UTC`.
fn describe(h: &HolderInfo) -> String {
    let mut text = format!("pid {}", h.pid);
    if let Some(host) = &h.host {
        text.push_str(&format!(" on {host}"));
    }
    if let Some(user) = &h.user {
        text.push_str(&format!(", user {user}"));
    }
    text.push_str(&format!(
        ", `{}`, since {}",
        h.command,
        format_utc(h.started_at)
    ));
    text
}
