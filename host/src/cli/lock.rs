//! `soar lock`: who holds the project's locks (the project-wide one and
//! each environment's), and freeing one by force when its holder is stuck.
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
    /// Show who holds the project's locks, if anyone: the project-wide
    /// lock and each environment's.
    Status,
    /// End the session of a stuck lock holder (PostgreSQL state only),
    /// recording who did it.
    Release {
        /// Required: ending someone's deploy is never the default.
        #[arg(long)]
        force: bool,
        /// The environment whose lock to free; without it, the project-wide
        /// holder, or the only environment held.
        #[arg(long)]
        env: Option<String>,
    },
}

/// Run a `soar lock` subcommand; `config` is the global `-c`.
pub fn run(config: Option<&Path>, cmd: LockCommand, out: &Reporter) -> anyhow::Result<i32> {
    let ws = Workspace::open(config, out.clone())?;
    let location = ws.state_location();
    match cmd {
        LockCommand::Status => {
            let store = ws.state()?;
            let holders = store.lock_holders()?;
            if holders.is_empty() {
                out.message(|| format!("free ({})", location.describe()));
            }
            for (env, h) in &holders {
                let which = match env {
                    Some(env) => format!("environment `{env}`"),
                    None => "every environment".to_string(),
                };
                out.message(|| {
                    format!("{which}: held by {} ({})", describe(h), location.describe())
                });
            }
            Ok(0)
        }
        LockCommand::Release { force: false, .. } => anyhow::bail!(
            "`soar lock release` ends the holder's deploy: pass --force if that is what you want (see `soar lock status` for who holds it)"
        ),
        LockCommand::Release { force: true, env } => {
            let store = ws.state()?;
            let actor = HolderInfo::current()
                .user
                .unwrap_or_else(|| "unknown".to_string());
            let env = match env {
                Some(env) => Some(ws.environment(Some(&env))?.name.clone()),
                None => only_target(&store.lock_holders()?)?,
            };
            let which = match &env {
                Some(env) => format!("the lock of environment `{env}`"),
                None => "the project lock".to_string(),
            };
            match store.force_release_lock(env.as_deref(), &actor)? {
                Some(h) => out.message(|| {
                    format!(
                        "released {which} held by {}; recorded as forced by {actor}",
                        describe(&h)
                    )
                }),
                None => out.message(|| format!("{which} is free; nothing to release")),
            }
            Ok(0)
        }
    }
}

/// What `release --force` without `--env` targets: the project-wide
/// holder, or the one environment held; refused when several are, since
/// ending the wrong deploy is worse than asking.
fn only_target(holders: &[(Option<String>, HolderInfo)]) -> anyhow::Result<Option<String>> {
    if holders.iter().any(|(env, _)| env.is_none()) {
        return Ok(None);
    }
    match holders {
        [] => Ok(None),
        [(env, _)] => Ok(env.clone()),
        several => {
            let envs: Vec<&str> = several
                .iter()
                .filter_map(|(env, _)| env.as_deref())
                .collect();
            anyhow::bail!(
                "several environments' locks are held ({}): choose one with --env",
                envs.join(", ")
            )
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
