//! Who announces a project's health transitions when several monitors
//! watch it: two `soar serve` workers sharing one PostgreSQL state, or a
//! teammate's `soar monitor` beside the server's.
//!
//! Every monitor keeps checking (each server shows what it sees), but only
//! the holder of the project's announcement lease writes the audit record,
//! POSTs the webhook and runs the `on_unhealthy` hook, so a transition is
//! announced once, not once per watcher. The lease is tried at each
//! transition and never waited for; it is freed when its holder dies (the
//! kernel drops a file lock, the server ends the session holding an
//! advisory lock), and the next watcher to see a transition takes it.
//!
//! Local state: an exclusive `flock` on `.soar/announce.lock`. PostgreSQL:
//! an advisory lock of its own class on a dedicated connection.

use std::fs::{File, OpenOptions, TryLockError};

use anyhow::Context as _;

use super::location::StateLocation;
use super::pg;

/// The lock file of the announcement lease in `.soar`.
pub const ANNOUNCE_LOCK_FILE: &str = "announce.lock";

/// A project's announcement lease, taken when free.
pub struct AnnounceLease {
    location: StateLocation,
    held: Option<Held>,
}

enum Held {
    /// The locked `.soar/announce.lock` (unlocked when closed).
    File(#[expect(dead_code, reason = "held only for the flock it carries")] File),
    /// The session holding the advisory lock.
    Postgres(Box<pg::lease::Held>),
}

impl std::fmt::Debug for AnnounceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnounceLease")
            .field("location", &self.location.describe())
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl AnnounceLease {
    /// The lease of the project whose state is at `location`; nothing is
    /// taken until [`holds`](Self::holds) is asked.
    pub fn new(location: StateLocation) -> Self {
        Self {
            location,
            held: None,
        }
    }

    /// Whether this process holds the lease now, taking it when nobody
    /// does. A PostgreSQL session that no longer answers is given up and
    /// the lease tried afresh. Blocking (one round trip at most, or two
    /// and a connect when the lease is tried): transitions are rare.
    pub fn holds(&mut self) -> anyhow::Result<bool> {
        if let Some(Held::Postgres(held)) = &self.held
            && !held.alive()
        {
            self.held = None;
        }
        if self.held.is_none() {
            self.held = self.try_take()?;
        }
        Ok(self.held.is_some())
    }

    fn try_take(&self) -> anyhow::Result<Option<Held>> {
        match &self.location {
            StateLocation::Local { dir } => {
                let path = dir.join(ANNOUNCE_LOCK_FILE);
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Held::File(file))),
                    Err(TryLockError::WouldBlock) => Ok(None),
                    Err(TryLockError::Error(e)) => {
                        Err(e).with_context(|| format!("locking {}", path.display()))
                    }
                }
            }
            StateLocation::Postgres {
                url,
                project,
                from_config,
            } => Ok(pg::lease::try_take(url, !from_config, project)?
                .map(|held| Held::Postgres(Box::new(held)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_local_holder_at_a_time_and_the_next_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let location = StateLocation::Local {
            dir: dir.path().join(".soar"),
        };
        let mut first = AnnounceLease::new(location.clone());
        let mut second = AnnounceLease::new(location);
        assert!(first.holds().unwrap());
        assert!(!second.holds().unwrap(), "two holders at once");
        assert!(first.holds().unwrap(), "the holder keeps it");
        drop(first);
        assert!(second.holds().unwrap(), "freed with its holder");
    }
}
