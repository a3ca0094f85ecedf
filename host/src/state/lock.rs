//! The project lock: one `soar deploy` (or destroy, rollback) per project at a
//! time.
//!
//! An exclusive advisory lock (`flock`) on `.soar/lock`, via `std::fs::File::try_lock`. The kernel
//! drops it when the holding process exits *for any reason*, SIGKILL and power
//! loss included, so a crashed `soar` never wedges the project and there is no
//! stale-lock cleanup to get wrong. Who holds it is written next to it in
//! `.soar/lock.info` (JSON), purely so a waiting `soar` can name the holder.
//!
//! The lock file itself is never deleted: unlinking a lock file while someone
//! waits on it would let two processes lock two different inodes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::fs::TryLockError;

use super::clock::{format_utc, now_ms};
use super::location::StateLocation;
use super::pg::{self, lock::AdvisoryLock};

/// The lock file inside `.soar/`.
pub const LOCK_FILE: &str = "lock";
/// Who holds the lock, next to it.
pub const LOCK_INFO_FILE: &str = "lock.info";

/// First pause between attempts while waiting for the lock; doubles each
/// attempt up to `POLL_MAX`, so a short wait is noticed quickly and a long
/// one costs little CPU.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(200);

/// Who holds (or wants) the project lock, as shown to a `soar` kept waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderInfo {
    /// The holder's process id.
    pub pid: u32,
    /// Host name, when cheaply known: a lock on a shared filesystem may be
    /// held from another machine, where the pid means nothing here.
    pub host: Option<String>,
    /// Who ran it (`$USER`), when known.
    pub user: Option<String>,
    /// The holder's command line, e.g. `soar deploy --env staging`.
    pub command: String,
    /// Unix milliseconds when it took the lock (or was described).
    pub started_at: i64,
}

impl HolderInfo {
    /// This process: its pid, host, user and command line, started now.
    pub fn current() -> Self {
        Self {
            pid: std::process::id(),
            host: hostname(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty()),
            command: command_line(),
            started_at: now_ms(),
        }
    }
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else held it for the whole `waited`.
    ///
    /// `holder` is `None` when `lock.info` could not be read (the holder is
    /// an older soar, or was between taking the lock and describing itself).
    Held {
        /// Who holds it, from `lock.info`.
        holder: Option<HolderInfo>,
        /// How long we waited before giving up.
        waited: Duration,
        /// Which lock, for the message: `the project lock in .soar/lock`,
        /// or the lock of a project in a PostgreSQL database.
        place: String,
    },
    /// The lock file could not be created or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The state database holding the lock could not be used (one line:
    /// which database, what went wrong, what to do).
    Database {
        /// What went wrong.
        message: String,
    },
}

// Hand-written because the `Held` message is assembled from optional parts.
impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Held {
                holder,
                waited,
                place,
            } => {
                match holder {
                    Some(h) => {
                        write!(f, "another soar (pid {}", h.pid)?;
                        if let Some(host) = &h.host {
                            write!(f, " on {host}")?;
                        }
                        if let Some(user) = &h.user {
                            write!(f, ", user {user}")?;
                        }
                        write!(
                            f,
                            ", `{}`, started {})",
                            h.command,
                            format_utc(h.started_at)
                        )?;
                    }
                    None => f.write_str("another process")?,
                }
                write!(
                    f,
                    " holds {place}; waited {}. Wait for it to finish, or raise --lock-timeout",
                    human(*waited)
                )
            }
            Self::Io { path, source } => {
                write!(
                    f,
                    "cannot use the project lock {}: {source}",
                    path.display()
                )
            }
            Self::Database { message } => f.write_str(message),
        }
    }
}

/// Held project lock; released when dropped (or when the process dies).
///
/// The file lock for local state, the advisory lock for state on PostgreSQL
/// ([`acquire_at`](Self::acquire_at) picks by [`StateLocation`]); the same
/// waiting, naming of the holder, and release on death for both.
#[derive(Debug)]
pub struct ProjectLock {
    #[expect(dead_code, reason = "held only for its Drop, which releases the lock")]
    held: Held,
    holder: HolderInfo,
}

/// What is actually locked.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "held only for their Drop, which releases the lock"
)]
enum Held {
    /// `.soar/lock`, described by `.soar/lock.info`.
    File(FileLock),
    /// A PostgreSQL advisory lock and its `soar.locks` row.
    Postgres(Box<AdvisoryLock>),
}

/// The locked `.soar/lock`; unlocked (and its description removed) on drop.
#[derive(Debug)]
struct FileLock {
    file: File,
    info_path: PathBuf,
}

impl ProjectLock {
    /// Take the exclusive lock on `dir/lock`, waiting up to `timeout`
    /// (`--lock-timeout`), then record `holder` in `dir/lock.info`.
    ///
    /// Polls rather than blocking in `flock` so the wait is bounded without
    /// signals or threads; a zero timeout tries exactly once. Blocking: call
    /// it before entering async code, or from `spawn_blocking`.
    #[expect(
        clippy::result_large_err,
        reason = "called once per command; the holder is kept inline so callers can match on it"
    )]
    pub fn acquire(
        dir: &Path,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> Result<ProjectLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = open_lock_file(&path).map_err(io)?;
        let start = Instant::now();
        let mut pause = POLL_MIN;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(LockError::Held {
                    holder: read_info(dir),
                    waited,
                    place: format!("the project lock in {}", path.display()),
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(POLL_MAX);
        }
        let holder = HolderInfo {
            started_at: now_ms(),
            ..holder.clone()
        };
        let info_path = dir.join(LOCK_INFO_FILE);
        // Best effort: the lock is what excludes; the info is only for the
        // message a waiter prints.
        if let Err(e) = write_info(dir, &info_path, &holder) {
            tracing::debug!(error = %e, "could not describe the lock holder");
        }
        Ok(ProjectLock {
            held: Held::File(FileLock { file, info_path }),
            holder,
        })
    }

    /// Take the project lock where `location` keeps the state: the file
    /// lock in its `.soar` directory, or the project's advisory lock in its
    /// PostgreSQL database. Same waiting and messages either way.
    #[expect(
        clippy::result_large_err,
        reason = "called once per command; the holder is kept inline so callers can match on it"
    )]
    pub fn acquire_at(
        location: &StateLocation,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> Result<ProjectLock, LockError> {
        match location {
            StateLocation::Local { dir } => Self::acquire(dir, timeout, holder),
            StateLocation::Postgres {
                url,
                project,
                from_config,
            } => {
                let (lock, holder) =
                    pg::lock::acquire(url, !from_config, project, timeout, holder)?;
                Ok(ProjectLock {
                    held: Held::Postgres(Box::new(lock)),
                    holder,
                })
            }
        }
    }

    /// Who holds the project lock where `location` keeps the state, if
    /// anyone does (`soar lock status`).
    pub fn holder_at(location: &StateLocation) -> anyhow::Result<Option<HolderInfo>> {
        match location {
            StateLocation::Local { dir } => Ok(Self::try_holder(dir)),
            StateLocation::Postgres { .. } => {
                let store = super::StateStore::open_at(location)?;
                store.lock_holder()
            }
        }
    }

    /// Who holds the lock on `dir/lock` right now, if anyone does and said so.
    ///
    /// `None` when the lock is free, or when the holder left no readable
    /// `lock.info`. Probes with a momentary shared lock, so it never waits.
    pub fn try_holder(dir: &Path) -> Option<HolderInfo> {
        let file = File::open(dir.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => {
                // Free: whatever lock.info says is left from a dead holder.
                let _ = file.unlock();
                None
            }
            Err(TryLockError::WouldBlock) => read_info(dir),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// The holder recorded for this lock (this process).
    pub fn holder(&self) -> &HolderInfo {
        &self.holder
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Remove the description first, so nobody reads it after we let go.
        let _ = std::fs::remove_file(&self.info_path);
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Read `lock.info`; `None` if missing or unparsable.
fn read_info(dir: &Path) -> Option<HolderInfo> {
    let text = std::fs::read_to_string(dir.join(LOCK_INFO_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write `lock.info` atomically (temp file + rename) so a reader never sees a
/// half-written description.
fn write_info(dir: &Path, info_path: &Path, holder: &HolderInfo) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, holder)?;
    tmp.write_all(b"\n")?;
    tmp.persist(info_path).map_err(|e| e.error)?;
    Ok(())
}

/// `5s`, `1.5s`, `250ms`: how long we waited, for the message.
fn human(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() < 50 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The host name, if cheap to find; cached for the process.
pub(crate) fn hostname() -> Option<String> {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    HOST.get_or_init(|| {
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    })
    .clone()
}

/// This process's command line, program shown by file name
/// (`soar deploy --env staging`), arguments with spaces quoted.
fn command_line() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .unwrap_or(p.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "soar".to_string());
    let mut line = program;
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            line.push_str(&format!("'{arg}'"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(command: &str) -> HolderInfo {
        HolderInfo {
            command: command.to_string(),
            ..HolderInfo::current()
        }
    }

    #[test]
    fn second_acquire_in_process_times_out_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProjectLock::acquire(
            dir.path(),
            Duration::ZERO,
            &holder("soar deploy --env staging"),
        )
        .unwrap();
        let start = Instant::now();
        let err = ProjectLock::acquire(
            dir.path(),
            Duration::from_millis(150),
            &holder("soar deploy"),
        )
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(150));
        match &err {
            LockError::Held { holder, waited, .. } => {
                assert_eq!(holder.as_ref().unwrap().pid, std::process::id());
                assert!(*waited >= Duration::from_millis(150));
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("another soar (pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("`soar deploy --env staging`"), "{message}");
        assert!(message.contains("raise --lock-timeout"), "{message}");
        assert_eq!(
            ProjectLock::try_holder(dir.path()).unwrap().command,
            "soar deploy --env staging"
        );

        drop(first);
        assert!(ProjectLock::try_holder(dir.path()).is_none());
        assert!(!dir.path().join(LOCK_INFO_FILE).exists());
        let again = ProjectLock::acquire(dir.path(), Duration::ZERO, &holder("soar destroy"));
        assert!(again.is_ok());
    }

    #[test]
    fn message_without_holder_info() {
        let err = LockError::Held {
            holder: None,
            waited: Duration::from_secs(5),
            place: "the project lock in .soar/lock".into(),
        };
        assert_eq!(
            err.to_string(),
            "another process holds the project lock in .soar/lock; waited 5s. Wait for it to finish, or raise --lock-timeout"
        );
    }

    #[test]
    fn message_format_matches_the_issue() {
        let err = LockError::Held {
            holder: Some(HolderInfo {
                pid: 1234,
                host: None,
                user: None,
                command: "soar deploy --env staging".into(),
                started_at: 1_795_342_500_000,
            }),
            waited: Duration::from_millis(5010),
            place: "the project lock in .soar/lock".into(),
        };
        assert_eq!(
            err.to_string(),
            "another soar (pid 1234, `soar deploy --env staging`, started 2026-11-22 10:15:00 UTC) holds the project lock in .soar/lock; waited 5s. Wait for it to finish, or raise --lock-timeout"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(5003)), "5s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }
}
