//! The project and environment locks: one `soar deploy` (or destroy,
//! rollback, refresh) per environment at a time, and nothing else while a
//! command spanning every environment (`soar state push`/`pull`) runs.
//!
//! Two levels, so deploys of `staging` and `production` of one project run
//! side by side: an environment command takes the project lock *shared*
//! plus its environment's lock *exclusive*; a command spanning every
//! environment takes the project lock *exclusive*, which waits for every
//! environment command to finish and keeps new ones out.
//!
//! Locally both are advisory locks (`flock`) via `std::fs::File::try_lock`:
//! `.soar/lock` for the project, `.soar/lock.env-<env>` per environment
//! (environment names are lowercase letters, digits and hyphens, checked
//! again here, so the name cannot leave `.soar/` or collide with another
//! lock's file). The kernel
//! drops it when the holding process exits *for any reason*, SIGKILL and power
//! loss included, so a crashed `soar` never wedges the project and there is no
//! stale-lock cleanup to get wrong. Who holds an exclusive lock is written
//! next to it in `.soar/lock.info` or `.soar/lock.env-<env>.info` (JSON),
//! purely so a waiting `soar` can name the holder; shared holders of the
//! project lock are named by their environment locks.
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
/// An environment's lock file is this prefix plus the environment's name;
/// its description adds `.info`.
pub const ENV_LOCK_PREFIX: &str = "lock.env-";

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
    /// `.soar/lock` (exclusive, described by `.soar/lock.info`), or
    /// `.soar/lock` shared plus `.soar/lock.env-<env>` exclusive.
    Files(Vec<FileLock>),
    /// A PostgreSQL advisory lock and its `soar.locks` row.
    Postgres(Box<AdvisoryLock>),
}

/// A locked lock file; unlocked (and its description, if it wrote one,
/// removed) on drop.
#[derive(Debug)]
struct FileLock {
    file: File,
    info_path: Option<PathBuf>,
}

/// How a lock file is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Alongside other shared holders (environment commands on the
    /// project lock).
    Shared,
    /// Alone.
    Exclusive,
}

impl ProjectLock {
    /// Take the exclusive lock on `dir/lock`, waiting up to `timeout`
    /// (`--lock-timeout`), then record `holder` in `dir/lock.info`: for a
    /// command spanning every environment, which so waits for (and then
    /// keeps out) every environment command.
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
        let deadline = Deadline::new(timeout);
        let mut lock = lock_file(dir, LOCK_FILE, Mode::Exclusive, &deadline, || {
            // An exclusive taker also waits for environment commands.
            read_info(&dir.join(LOCK_INFO_FILE))
                .or_else(|| env_holders(dir).into_iter().next().map(|(_, h)| h))
        })?;
        let holder = HolderInfo {
            started_at: now_ms(),
            ..holder.clone()
        };
        lock.describe(dir, LOCK_FILE, &holder);
        Ok(ProjectLock {
            held: Held::Files(vec![lock]),
            holder,
        })
    }

    /// Take environment `env`'s lock in `dir`: `dir/lock` shared, then
    /// `dir/lock.env-<env>` exclusive, both within `timeout`, and record
    /// `holder` in `dir/lock.env-<env>.info`. Other environments' commands
    /// run meanwhile; a second command on `env`, or one spanning every
    /// environment, waits. Blocking, like [`acquire`](Self::acquire).
    #[expect(
        clippy::result_large_err,
        reason = "called once per command; the holder is kept inline so callers can match on it"
    )]
    pub fn acquire_env(
        dir: &Path,
        env: &str,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> Result<ProjectLock, LockError> {
        let file = env_lock_file(dir, env)?;
        let deadline = Deadline::new(timeout);
        let project = lock_file(dir, LOCK_FILE, Mode::Shared, &deadline, || {
            read_info(&dir.join(LOCK_INFO_FILE))
        })?;
        let mut env_lock = lock_file(dir, &file, Mode::Exclusive, &deadline, || {
            read_info(&dir.join(format!("{file}.info")))
        })
        .map_err(|e| match e {
            LockError::Held {
                holder,
                waited,
                place,
            } => LockError::Held {
                holder,
                waited,
                place: format!("{place} for environment `{env}`"),
            },
            other => other,
        })?;
        let holder = HolderInfo {
            started_at: now_ms(),
            ..holder.clone()
        };
        env_lock.describe(dir, &file, &holder);
        // The environment's lock first, so a waiter never sees its holder
        // gone while the project lock is still held.
        Ok(ProjectLock {
            held: Held::Files(vec![env_lock, project]),
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
        Self::acquire_scoped(location, None, timeout, holder)
    }

    /// Take environment `env`'s lock where `location` keeps the state (the
    /// project lock shared plus the environment's exclusive; see
    /// [`acquire_env`](Self::acquire_env)), for a command on one
    /// environment.
    #[expect(
        clippy::result_large_err,
        reason = "called once per command; the holder is kept inline so callers can match on it"
    )]
    pub fn acquire_env_at(
        location: &StateLocation,
        env: &str,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> Result<ProjectLock, LockError> {
        Self::acquire_scoped(location, Some(env), timeout, holder)
    }

    /// [`acquire_at`](Self::acquire_at) (`env` none: the whole project) and
    /// [`acquire_env_at`](Self::acquire_env_at) in one place.
    #[expect(
        clippy::result_large_err,
        reason = "called once per command; the holder is kept inline so callers can match on it"
    )]
    fn acquire_scoped(
        location: &StateLocation,
        env: Option<&str>,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> Result<ProjectLock, LockError> {
        match (location, env) {
            (StateLocation::Local { dir }, None) => Self::acquire(dir, timeout, holder),
            (StateLocation::Local { dir }, Some(env)) => {
                Self::acquire_env(dir, env, timeout, holder)
            }
            (
                StateLocation::Postgres {
                    url,
                    project,
                    from_config,
                },
                env,
            ) => {
                let (lock, holder) =
                    pg::lock::acquire(url, !from_config, project, env, timeout, holder)?;
                Ok(ProjectLock {
                    held: Held::Postgres(Box::new(lock)),
                    holder,
                })
            }
        }
    }

    /// Who holds the project lock exclusively where `location` keeps the
    /// state, if anyone does (environment holders: [`StateStore::lock_holders`](super::StateStore::lock_holders)).
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
        probe(&dir.join(LOCK_FILE), &dir.join(LOCK_INFO_FILE))
    }

    /// Who holds environment `env`'s lock in `dir` right now, if anyone
    /// does and said so; like [`try_holder`](Self::try_holder).
    pub fn try_env_holder(dir: &Path, env: &str) -> Option<HolderInfo> {
        let file = env_lock_file(dir, env).ok()?;
        probe(&dir.join(&file), &dir.join(format!("{file}.info")))
    }

    /// Every held environment lock in `dir` and its holder, by environment
    /// name.
    pub fn env_holders(dir: &Path) -> Vec<(String, HolderInfo)> {
        env_holders(dir)
    }

    /// The holder recorded for this lock (this process).
    pub fn holder(&self) -> &HolderInfo {
        &self.holder
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Remove the description first, so nobody reads it after we let go.
        if let Some(info) = &self.info_path {
            let _ = std::fs::remove_file(info);
        }
        let _ = self.file.unlock();
    }
}

/// The time budget of one acquisition, shared by its two locks.
struct Deadline {
    start: Instant,
    timeout: Duration,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            timeout,
        }
    }
}

/// `lock.env-<env>`, refused unless `env` is a valid environment name
/// (lowercase letters, digits, hyphens): validated by the config already,
/// checked again because it becomes a file name.
#[expect(
    clippy::result_large_err,
    reason = "the error type of the lock functions that call it"
)]
fn env_lock_file(dir: &Path, env: &str) -> Result<String, LockError> {
    let valid = !env.is_empty()
        && env.len() <= 64
        && !env.starts_with('-')
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(LockError::Io {
            path: dir.join(ENV_LOCK_PREFIX),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is not an environment name (lowercase letters, digits and hyphens)",
                    env.escape_debug()
                ),
            ),
        });
    }
    Ok(format!("{ENV_LOCK_PREFIX}{env}"))
}

/// Take `dir/name` in `mode` before `deadline`. On timeout, `describe`
/// names who is in the way.
#[expect(
    clippy::result_large_err,
    reason = "called once per command; the holder is kept inline so callers can match on it"
)]
fn lock_file(
    dir: &Path,
    name: &str,
    mode: Mode,
    deadline: &Deadline,
    describe: impl FnOnce() -> Option<HolderInfo>,
) -> Result<FileLock, LockError> {
    let path = dir.join(name);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = open_lock_file(&path).map_err(io)?;
    let mut pause = POLL_MIN;
    loop {
        let attempt = match mode {
            Mode::Shared => file.try_lock_shared(),
            Mode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let waited = deadline.start.elapsed();
        if waited >= deadline.timeout {
            return Err(LockError::Held {
                holder: describe(),
                waited,
                place: format!("the project lock in {}", path.display()),
            });
        }
        std::thread::sleep(pause.min(deadline.timeout - waited));
        pause = (pause * 2).min(POLL_MAX);
    }
    Ok(FileLock {
        file,
        info_path: None,
    })
}

impl FileLock {
    /// Record `holder` in `dir/name.info`, removed again on drop. Best
    /// effort: the lock is what excludes; the info is only for the message
    /// a waiter prints.
    fn describe(&mut self, dir: &Path, name: &str, holder: &HolderInfo) {
        let info_path = dir.join(format!("{name}.info"));
        if let Err(e) = write_info(dir, &info_path, holder) {
            tracing::debug!(error = %e, "could not describe the lock holder");
        }
        self.info_path = Some(info_path);
    }
}

/// Who holds the lock on `path` (described in `info`) right now; probes
/// with a momentary shared lock, so it never waits.
fn probe(path: &Path, info: &Path) -> Option<HolderInfo> {
    let file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            // Free: whatever the info says is left from a dead holder.
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => read_info(info),
        Err(TryLockError::Error(_)) => None,
    }
}

/// Every environment lock file in `dir` that is held, with its holder,
/// sorted by environment.
fn env_holders(dir: &Path) -> Vec<(String, HolderInfo)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, HolderInfo)> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let env = name.strip_prefix(ENV_LOCK_PREFIX)?;
            if env.ends_with(".info") || env_lock_file(dir, env).is_err() {
                return None;
            }
            let holder = probe(&dir.join(&name), &dir.join(format!("{name}.info")))?;
            Some((env.to_string(), holder))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Read a lock's description; `None` if missing or unparsable.
fn read_info(path: &Path) -> Option<HolderInfo> {
    let text = std::fs::read_to_string(path).ok()?;
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
    fn environments_lock_apart_and_describe_their_holders() {
        let dir = tempfile::tempdir().unwrap();
        let staging = ProjectLock::acquire_env(
            dir.path(),
            "staging",
            Duration::ZERO,
            &holder("soar deploy --env staging"),
        )
        .unwrap();
        let production = ProjectLock::acquire_env(
            dir.path(),
            "production",
            Duration::ZERO,
            &holder("soar deploy --env production"),
        )
        .unwrap();
        // Shared holders of the project lock are not a project-wide holder.
        assert!(ProjectLock::try_holder(dir.path()).is_none());
        assert_eq!(
            ProjectLock::try_env_holder(dir.path(), "staging")
                .unwrap()
                .command,
            "soar deploy --env staging"
        );
        let envs: Vec<String> = ProjectLock::env_holders(dir.path())
            .into_iter()
            .map(|(env, _)| env)
            .collect();
        assert_eq!(envs, ["production", "staging"]);
        drop(staging);
        assert!(ProjectLock::try_env_holder(dir.path(), "staging").is_none());
        assert!(!dir.path().join("lock.env-staging.info").exists());
        let err = ProjectLock::acquire(dir.path(), Duration::ZERO, &holder("soar state push"))
            .unwrap_err();
        assert!(
            err.to_string().contains("`soar deploy --env production`"),
            "{err}"
        );
        drop(production);
        assert!(
            ProjectLock::acquire(dir.path(), Duration::ZERO, &holder("soar state push")).is_ok()
        );
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
