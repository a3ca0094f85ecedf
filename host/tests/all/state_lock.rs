//! The project lock and the state store across real processes.
//!
//! The holder must be another *process* (the lock is the kernel's, released
//! when the process dies), so this test binary re-executes itself: with
//! `SOAR_STATE_CHILD=<mode>:<dir>` set, the `child_process_entry` test acts as
//! the child instead of testing anything, and the parent tests SIGKILL it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use soar::state::{
    DeployStatus, HolderInfo, LockError, Outcome, Phase, ProjectLock, ReleaseRecord, ReleaseStatus,
    ResourceRecord, StateStore, new_release_id, now_ms,
};

/// Set on the child process: `lock:<dir>` or `crash:<dir>`.
const CHILD_VAR: &str = "SOAR_STATE_CHILD";
/// The child never outlives a parent that forgot it by more than this.
const CHILD_MAX_LIFE: Duration = Duration::from_secs(60);
const ENV: &str = "crash";

/// The child's side. A no-op test unless `SOAR_STATE_CHILD` is set.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let dir = Path::new(dir);
    match mode {
        "lock" => hold_lock(dir),
        "crash" => write_until_killed(dir),
        other => panic!("unknown child mode {other}"),
    }
}

/// Marks the child's own lines: libtest writes `test state_lock::child_process_entry ... `
/// to the same stdout without a newline, so a line may not start with ours.
const MARK: &str = "@@soar-child: ";

/// Say something the parent waits for, bypassing libtest's capture.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{MARK}{line}").unwrap();
    out.flush().unwrap();
}

fn hold_lock(dir: &Path) {
    let holder = HolderInfo {
        command: "soar deploy --env staging".into(),
        ..HolderInfo::current()
    };
    let _lock = ProjectLock::acquire(dir, Duration::from_secs(10), &holder).unwrap();
    announce(&format!("locked {}", std::process::id()));
    std::thread::sleep(CHILD_MAX_LIFE);
}

/// Take the lock, open a deploy, and write resources and releases in a loop,
/// one transaction each, until SIGKILLed.
fn write_until_killed(dir: &Path) {
    let holder = HolderInfo {
        command: "soar deploy --env crash".into(),
        ..HolderInfo::current()
    };
    let _lock = ProjectLock::acquire(dir, Duration::from_secs(10), &holder).unwrap();
    let store = StateStore::open(dir).unwrap();
    let deploy = store.begin_deploy(ENV, "deploy", "child").unwrap();
    let start = Instant::now();
    let mut i = store.resources(ENV).unwrap().len();
    announce("writing");
    while start.elapsed() < CHILD_MAX_LIFE {
        let name = format!("r{i:06}");
        store
            .upsert_resource(&ResourceRecord {
                env: ENV.into(),
                provider: "local".into(),
                kind: "vm".into(),
                name: name.clone(),
                id: Some(format!("id-{i}")),
                attributes: json!({ "i": i, "padding": "x".repeat(512) }),
                updated_at: now_ms(),
            })
            .unwrap();
        let id = format!("{}-{i:06}", new_release_id(now_ms(), "sha256:abcdef12"));
        store
            .insert_release(&ReleaseRecord {
                env: ENV.into(),
                id: id.clone(),
                artifact_digest: "sha256:abcdef12".into(),
                status: ReleaseStatus::Pending,
                created_at: now_ms(),
                activated_at: None,
                detail: None,
            })
            .unwrap();
        store.activate_release(ENV, &id).unwrap();
        store
            .record_phase(deploy, Phase::Apply, now_ms(), 1, Outcome::Ok, &name)
            .unwrap();
        store
            .record_event(deploy, &json!({ "resource": name }))
            .unwrap();
        i += 1;
    }
}

/// A child process, SIGKILLed and reaped when dropped, so a failing
/// assertion in the parent never leaves one behind.
struct ChildGuard(Child);

impl ChildGuard {
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start this binary as a child in `mode`, and wait until it says something
/// starting with `ready`; returns what it said.
fn spawn_child(mode: &str, dir: &Path, ready: &str) -> (ChildGuard, String) {
    let child = Command::new(std::env::current_exe().unwrap())
        .arg(crate::support::this_test(
            module_path!(),
            "child_process_entry",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, format!("{mode}:{}", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait().unwrap();
            panic!("child exited ({status}) before printing `{ready}`");
        }
        if let Some(at) = line.find(MARK) {
            let said = line[at + MARK.len()..].trim();
            if said.starts_with(ready) {
                return (child, said.to_string());
            }
        }
    }
}

#[test]
fn a_second_process_waits_names_the_holder_and_a_killed_holder_frees_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(".soar");
    let (mut child, line) = spawn_child("lock", &soar, "locked");
    let child_pid = child.id();
    assert_eq!(line, format!("locked {child_pid}"));

    // Someone else holds it, and says who.
    let holder = ProjectLock::try_holder(&soar).expect("the child holds the lock");
    assert_eq!(holder.pid, child_pid);
    assert_eq!(holder.command, "soar deploy --env staging");

    // We wait out the timeout, then get an error naming the child.
    let me = HolderInfo {
        command: "soar deploy".into(),
        ..HolderInfo::current()
    };
    let timeout = Duration::from_millis(400);
    let start = Instant::now();
    let err = ProjectLock::acquire(&soar, timeout, &me).unwrap_err();
    assert!(start.elapsed() >= timeout);
    match &err {
        LockError::Held { holder, waited, .. } => {
            assert_eq!(holder.as_ref().map(|h| h.pid), Some(child_pid));
            assert!(*waited >= timeout);
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("another soar (pid {child_pid}")),
        "{message}"
    );
    assert!(message.contains("`soar deploy --env staging`"), "{message}");
    assert!(message.contains("raise --lock-timeout"), "{message}");

    // SIGKILL the holder: the kernel releases its lock, so we get it at once
    // without any stale-lock cleanup.
    child.kill();
    let start = Instant::now();
    let lock = ProjectLock::acquire(&soar, Duration::from_secs(5), &me)
        .expect("a killed holder must not wedge the project");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        ProjectLock::try_holder(&soar).map(|h| h.pid),
        Some(std::process::id())
    );
    drop(lock);
    assert!(ProjectLock::try_holder(&soar).is_none());
}

#[test]
fn state_stays_consistent_when_the_writer_is_sigkilled_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(".soar");
    let rounds = 5;
    for round in 1..=rounds {
        let (mut child, _) = spawn_child("crash", &soar, "writing");
        std::thread::sleep(Duration::from_millis(rand::random_range(5..250)));
        child.kill();

        // The lock is free again, and the database opens.
        let _lock = ProjectLock::acquire(&soar, Duration::ZERO, &HolderInfo::current())
            .expect("the killed writer's lock must be released");
        let store = StateStore::open(&soar).expect("reopen after SIGKILL");
        assert_integrity(&soar);

        // Each mutation was one transaction bumping the serial: the serial
        // counts exactly the committed writes, none lost, none half-done.
        let resources = store.resources(ENV).unwrap();
        let releases = store.releases(ENV).unwrap();
        let activated = releases
            .iter()
            .filter(|r| matches!(r.status, ReleaseStatus::Active | ReleaseStatus::Superseded))
            .count();
        let serial = store.serial(ENV).unwrap();
        assert_eq!(
            serial as usize,
            resources.len() + releases.len() + activated,
            "round {round}: serial {serial}, {} resources, {} releases, {activated} activated",
            resources.len(),
            releases.len(),
        );
        // Writes happened in order (resource i, then release i, then its
        // activation), so each kill leaves at most one resource without its
        // release and one release still pending.
        assert!(releases.len() <= resources.len());
        assert!(resources.len() <= releases.len() + round);
        let pending = releases
            .iter()
            .filter(|r| r.status == ReleaseStatus::Pending)
            .count();
        assert!(pending <= round);
        // Never two active releases, and once any was activated exactly one
        // is: the most recently activated (newest non-pending) one.
        let active = releases
            .iter()
            .filter(|r| r.status == ReleaseStatus::Active)
            .count();
        assert_eq!(active, usize::from(activated > 0));
        if let Some(newest) = releases.iter().find(|r| r.status != ReleaseStatus::Pending) {
            assert_eq!(newest.status, ReleaseStatus::Active);
        }
        assert!(
            !resources.is_empty(),
            "round {round}: the child wrote nothing"
        );
        eprintln!(
            "round {round}: serial {serial}, {} resources, {} releases ({pending} pending)",
            resources.len(),
            releases.len()
        );

        // Every child's deploy was cut short: history says interrupted.
        let history = store.history(Some(ENV), 100).unwrap();
        assert_eq!(history.len(), round);
        for deploy in &history {
            assert_eq!(deploy.status, DeployStatus::Interrupted, "{deploy:?}");
            assert!(deploy.finished_at.is_none());
        }
    }
}

fn assert_integrity(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(result, "ok");
}
