//! Faults during an SSH rollout, through the built `soar` binary against real
//! OpenSSH `sshd` hosts on loopback (see `ssh_rollout.rs` for the happy
//! paths): a connection dropped in the middle of a large upload, a deploy
//! killed while it holds the host lock, a service whose process dies
//! (`Restart=always`), and the plugin `ssh` import against a real host.
//!
//! The service is a real "binary" artifact: a shell script that `exec`s a
//! small Python HTTP server, followed by tens of MiB of random bytes the
//! shell never gets to, so the upload is large enough to be caught mid-way.
//! To make "mid-way" deterministic the test freezes the remote `cat` that
//! writes the `.soar-part` file (SIGSTOP) once it has written a few MiB, and
//! only then kills the connection.
//!
//! Needs `/usr/sbin/sshd` (Debian `openssh-server`) and
//! `target/test-peers/venv/bin/systemctl3.py` (or `SOAR_SYSTEMCTL_PY`).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use soar_tests::sshd::{
    ClientKey, Proc, SHARED_PORT_SERVER, SshHost, SshProject, python, require_peers, signal,
    systemctl_py, user,
};

use crate::support::text;

/// Random bytes appended to the large releases.
const PADDING: u64 = 64 << 20;
/// How much of the large file must be on the host before the connection is
/// cut.
const CUT_AFTER: u64 = 8 << 20;
/// The artifact's file name (so the start command is `./svc.bin`).
const BIN: &str = "svc.bin";

/// Write the service "binary": a shell header that execs a Python HTTP
/// server answering `version <version> pid <pid>`, then `padding` random
/// bytes.
fn write_service(dir: &Path, version: &str, padding: u64) {
    let path = dir.join(BIN);
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"#!/bin/sh
# A service "binary" for soar's SSH fault tests: this header, then random
# bytes the shell never gets to (python3 replaces it first).
exec python3 -c '
import os, socket, http.server
BODY = ("version {version} pid " + str(os.getpid())).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a): pass
print("starting version {version}", flush=True)
{serve}'
exit 1
"#,
        serve = SHARED_PORT_SERVER
    )
    .unwrap();
    let mut random = std::fs::File::open("/dev/urandom").unwrap().take(padding);
    std::io::copy(&mut random, &mut f).unwrap();
    f.sync_all().unwrap();
    drop(f);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn project(host: &SshHost) -> SshProject {
    let p = SshProject::new(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "faulty",
        &[host],
        &format!("kind = \"binary\"\npath = \"{BIN}\""),
    )
    .unwrap();
    write_service(p.dir.path(), "v1", 4096);
    p
}

/// `soar deploy --yes <extra>` must succeed.
fn deploy_ok(p: &SshProject, extra: &[&str]) {
    let mut args = vec!["deploy", "--yes"];
    args.extend_from_slice(extra);
    let out = p.soar(&args);
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));
}

/// The release `current` points at on the host (`releases/<id>`).
fn current(p: &SshProject, host: &SshHost) -> String {
    std::fs::read_link(p.service_root(host).join("current"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Everything under `releases/` on the host, recursively, relative to it.
fn release_tree(p: &SshProject, host: &SshHost) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, base, out);
            }
        }
    }
    let base = p.service_root(host).join("releases");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// The body of `GET /`, waiting up to `within` for one containing `want`.
fn wait_for_answer(p: &SshProject, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = p.get("/");
        if last.as_deref().is_some_and(|b| b.contains(want)) {
            return last.unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no answer containing {want:?} within {within:?}; last: {last:?}")
}

/// A running `soar deploy` whose output is collected when it ends.
struct Running(Option<Child>);

impl Running {
    fn start(p: &SshProject, extra: &[&str]) -> Self {
        let mut args = vec!["deploy", "--yes"];
        args.extend_from_slice(extra);
        let child = p
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Wait (at most `within`) for it to end; its output.
    fn finish(mut self, within: Duration) -> Output {
        let deadline = Instant::now() + within;
        while self.alive() {
            assert!(
                Instant::now() < deadline,
                "soar deploy did not end within {within:?} of the fault"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        eprintln!(
            "$ soar deploy (faulted) -> {}\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The upload in flight on `host`: the remote `cat` writing a `.soar-part`
/// file, frozen (SIGSTOP) once at least `at_least` bytes of it are on disk.
/// Fails if the upload completes first.
struct FrozenUpload {
    cat: Proc,
    part: PathBuf,
    size: u64,
}

fn freeze_upload(
    p: &SshProject,
    host: &SshHost,
    deploy: &mut Running,
    at_least: u64,
) -> FrozenUpload {
    let deadline = Instant::now() + Duration::from_secs(60);
    // Find the remote command that writes the `.soar-part`, and its `cat`.
    let cat = loop {
        assert!(Instant::now() < deadline, "no upload started on the host");
        if !deploy.alive() {
            let out = deploy.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "soar deploy ended ({}) before its upload started:\n{}{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        let procs = host.session_processes();
        // A `cat` whose parent is (a subshell of) the upload command.
        let writing = |c: &&Proc| {
            c.comm == "cat"
                && procs.iter().any(|w| {
                    w.pid == c.ppid && w.cmdline.contains(".soar-part") && w.cmdline.contains(BIN)
                })
        };
        if let Some(cat) = procs.iter().find(writing) {
            assert!(signal(cat.pid, "STOP"), "freezing the remote cat");
            break cat.clone();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Let it write in short bursts until enough of the file is there.
    let part = find_part(p, host).expect("the .soar-part file exists while its cat runs");
    let size = loop {
        let size = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if size >= at_least {
            break size;
        }
        assert!(
            Instant::now() < deadline,
            "the upload stalled at {size} bytes"
        );
        signal(cat.pid, "CONT");
        std::thread::sleep(Duration::from_millis(3));
        signal(cat.pid, "STOP");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        size < PADDING,
        "the upload was not caught in the middle ({size} bytes written)"
    );
    FrozenUpload { cat, part, size }
}

impl Drop for FrozenUpload {
    /// Never leave a stopped process behind (a no-op once it is gone).
    fn drop(&mut self) {
        signal(self.cat.pid, "CONT");
    }
}

/// The SSH events (`Event::Ssh`) the audit trail in `.soar/state.db`
/// holds for the newest deploy.
fn audited_ssh(p: &SshProject) -> Vec<serde_json::Value> {
    let store = soar::state::StateStore::open(&p.dir.path().join(".soar")).unwrap();
    let newest = store.history(Some("prod"), 1).unwrap().remove(0);
    store
        .events(newest.id)
        .unwrap()
        .into_iter()
        .map(|e| e.event["plugin"].clone())
        .filter(|e| e["event"] == "ssh")
        .collect()
}

/// The audited upload of the artifact in the newest deploy.
fn audited_upload(p: &SshProject) -> serde_json::Value {
    let events = audited_ssh(p);
    events
        .iter()
        .find(|e| {
            e["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("upload ") && c.contains(BIN))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no upload of {BIN} in the audit trail: {events:#?}"))
}

/// The `.soar-part` file under `releases/` on the host, if any.
fn find_part(p: &SshProject, host: &SshHost) -> Option<PathBuf> {
    release_tree(p, host)
        .into_iter()
        .find(|f| f.ends_with(".soar-part"))
        .map(|f| p.service_root(host).join("releases").join(f))
}

/// The assertions after an upload was cut: the deploy failed naming the
/// host and the transfer, the previous release is current and still
/// answers, the lock is gone, and no release directory holds a partial file
/// under the artifact's name.
fn assert_clean_failure(p: &SshProject, host: &SshHost, out: &Output, previous: &str) {
    assert!(
        !out.status.success(),
        "the deploy succeeded despite the cut"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&host.endpoint()),
        "the error names no host: {err}"
    );
    assert!(
        err.contains("transfer") && err.contains(BIN),
        "the error does not say the upload of {BIN} failed: {err}"
    );
    assert_eq!(current(p, host), previous, "`current` moved");
    assert!(
        p.get("/").unwrap().contains("version v1"),
        "v1 stopped answering"
    );
    assert!(
        !p.service_root(host).join(".soar-lock").exists(),
        "the host lock was not released"
    );
    for f in release_tree(p, host) {
        // Only a `.partial` directory (which nothing ever switches to or
        // recognises as a release) may hold the remains of the upload.
        let dir = f.split('/').next().unwrap();
        assert!(
            dir.ends_with(".partial") || Some(dir) == previous.strip_prefix("releases/"),
            "unexpected release content after the cut: {f}"
        );
        if !dir.ends_with(".partial") {
            assert!(!f.ends_with(".soar-part"), "{f}");
        }
    }
}

#[test]
fn upload_cut_mid_transfer_fails_cleanly_and_a_rerun_converges() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let p = project(&host);
    deploy_ok(&p, &[]);
    assert!(p.get("/").unwrap().contains("version v1"));
    let v1 = current(&p, &host);

    write_service(p.dir.path(), "v2", PADDING);

    // 1. The connection drops; the remote command lives on and sees its
    //    stdin end early: its sha256 check must refuse the short file.
    let mut deploy = Running::start(&p, &[]);
    let frozen = freeze_upload(&p, &host, &mut deploy, CUT_AFTER);
    eprintln!(
        "cutting the connection with {} of {} bytes in {}",
        frozen.size,
        PADDING,
        frozen.part.display()
    );
    assert!(host.kill_sessions(false) > 0, "no sshd session to kill");
    signal(frozen.cat.pid, "CONT");
    let out = deploy.finish(Duration::from_secs(60));
    assert_clean_failure(&p, &host, &out, &v1);
    // The audit trail holds the failed upload, with its host and why.
    let upload = audited_upload(&p);
    assert_eq!(upload["host"], format!("{}@{}", user(), host.endpoint()));
    assert_eq!(upload["plugin"], "soar");
    assert!(upload["exit"].is_null(), "{upload}");
    assert!(
        upload["command"].as_str().unwrap().contains(" ["),
        "the audited upload does not say why it failed: {upload}"
    );
    // The remote side noticed the short file and removed it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frozen.part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !frozen.part.exists(),
        "the remote upload kept a short {}",
        frozen.part.display()
    );

    // 2. The connection and the commands it runs die together (an OOM
    //    kill, a host crash): the short `.soar-part` stays behind.
    let mut deploy = Running::start(&p, &[]);
    let frozen = freeze_upload(&p, &host, &mut deploy, CUT_AFTER);
    assert!(host.kill_sessions(true) > 0, "no sshd session to kill");
    let out = deploy.finish(Duration::from_secs(60));
    assert_clean_failure(&p, &host, &out, &v1);
    assert!(
        frozen.part.exists(),
        "expected the killed upload to leave {} behind",
        frozen.part.display()
    );

    let out = p.soar(&["history", "--json", "-n", "1"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("\"status\":\"failed\""));
    assert!(text(&out.stdout).contains(&host.endpoint()));

    // 3. A re-run converges: v2 is current and answers, and no remains of
    //    the cut uploads are left in `releases/`.
    deploy_ok(&p, &[]);
    assert!(p.get("/").unwrap().contains("version v2"));
    assert_ne!(current(&p, &host), v1);
    let size = std::fs::metadata(p.dir.path().join(BIN)).unwrap().len();
    let upload = audited_upload(&p);
    assert!(
        upload["command"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{size} bytes, sha256 verified")),
        "{upload}"
    );
    let tree = release_tree(&p, &host);
    assert!(
        tree.iter()
            .all(|f| !f.ends_with(".soar-part") && !f.contains(".partial")),
        "remains of the cut uploads are still on the host: {tree:?}"
    );
    assert!(!p.service_root(&host).join(".soar-lock").exists());
}

#[test]
fn a_deploy_killed_mid_upload_leaves_a_lock_naming_it_until_force_unlock() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let p = project(&host);
    deploy_ok(&p, &[]);
    let v1 = current(&p, &host);
    write_service(p.dir.path(), "v2", PADDING);

    // Kill soar itself while it uploads (and so holds the host lock).
    let mut deploy = Running::start(&p, &[]);
    let soar_pid = deploy.pid();
    let frozen = freeze_upload(&p, &host, &mut deploy, CUT_AFTER);
    assert!(signal(soar_pid, "KILL"));
    let _ = deploy.finish(Duration::from_secs(10));
    signal(frozen.cat.pid, "CONT");

    let lock = std::fs::read_to_string(p.service_root(&host).join(".soar-lock"))
        .expect("the killed deploy's lock is still on the host");
    assert!(lock.contains(&format!("pid {soar_pid} at ")), "{lock}");
    assert_eq!(current(&p, &host), v1);
    assert!(p.get("/").unwrap().contains("version v1"));

    // A new deploy refuses, naming who holds the lock and since when.
    let out = p.soar(&["deploy", "--yes"]);
    assert!(!out.status.success(), "a deploy went past a held lock");
    let err = text(&out.stderr);
    assert!(
        err.contains(lock.trim()),
        "the refusal does not name {lock:?}: {err}"
    );
    assert!(err.contains("--force-unlock"), "{err}");
    assert!(err.contains(&host.endpoint()), "{err}");
    assert_eq!(current(&p, &host), v1);

    // --force-unlock proceeds, and releases the lock afterwards.
    deploy_ok(&p, &["--force-unlock"]);
    assert!(p.get("/").unwrap().contains("version v2"));
    // The killed deploy's half-made release directory is gone too (it is
    // no release, and nothing else would ever remove it).
    let tree = release_tree(&p, &host);
    assert!(
        tree.iter()
            .all(|f| !f.contains(".partial") && !f.ends_with(".soar-part")),
        "the killed deploy's upload is still on the host: {tree:?}"
    );
    assert!(!p.service_root(&host).join(".soar-lock").exists());
}

/// systemd's stand-in as the host's init: `systemctl3.py init` keeps the
/// enabled services running, restarting those that die (`Restart=`).
struct InitLoop(Child);

impl InitLoop {
    fn start(p: &SshProject, host: &SshHost) -> Self {
        let child = Command::new(python())
            .arg(systemctl_py())
            .arg(format!("--root={}", p.prefix(host).display()))
            .arg("init")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for InitLoop {
    fn drop(&mut self) {
        // SIGTERM: it stops the services it keeps, then exits.
        signal(self.0.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main_pid(p: &SshProject, host: &SshHost) -> u32 {
    let out = p.systemctl(host, &["show", "-p", "MainPID", &p.name]);
    text(&out.stdout)
        .trim()
        .strip_prefix("MainPID=")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn restart_always_brings_a_killed_service_back() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let p = project(&host);
    deploy_ok(&p, &[]);

    let unit = std::fs::read_to_string(
        host.root
            .join(format!("etc/systemd/system/{}.service", p.name)),
    )
    .unwrap();
    assert!(unit.contains("\nRestart=always\n"), "{unit}");
    assert!(unit.contains("\nRestartSec=1\n"), "{unit}");
    assert!(
        unit.contains("ExecStart=/bin/sh -c \"exec ./svc.bin\""),
        "{unit}"
    );

    let first = main_pid(&p, &host);
    assert!(first > 0, "no main pid");
    let before = wait_for_answer(&p, "version v1", Duration::from_secs(5));
    assert!(before.ends_with(&format!("pid {first}")), "{before}");

    // The host's init keeps the service; kill its main process outright.
    let _init = InitLoop::start(&p, &host);
    std::thread::sleep(Duration::from_secs(1));
    assert!(signal(first, "KILL"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    let again = loop {
        let pid = main_pid(&p, &host);
        if pid != 0 && pid != first {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the killed service was not restarted within 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let body = wait_for_answer(&p, &format!("pid {again}"), Duration::from_secs(10));
    assert!(body.contains("version v1"), "{body}");
    eprintln!("restarted as pid {again} after {:?}", started.elapsed());

    // `soar status` sees it running again.
    let out = p.soar(&["status", "--json"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["running"], true, "{status}");
}

/// The plugin `ssh` import against a real host: a provider that declared
/// the capability reaches a host in the allowed set through the broker (and
/// the journal records it), and is denied one outside it without any
/// connection being made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_ssh_import_reaches_allowed_hosts_only_and_is_journaled() {
    use soar::broker::http::HttpLimits;
    use soar::broker::ssh::{AuthConfig, HostSpec, KnownHosts, NamedBy, SshSettings};
    use soar::contract::Context;
    use soar::journal::{Event, Journal};
    use soar::session::{Session, SessionConfig};

    use crate::support::{self, Vars};

    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, host.known_hosts_line()).unwrap();
    // A port that is listening but was never allowed: any connection to it
    // would be counted.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_port = other.local_addr().unwrap().port();

    let runtime = support::runtime(Default::default());
    let plugin = runtime
        .load("hostile", soar_tests::components::hostile())
        .await
        .unwrap();
    // The hostile plugin declares `ssh`: the broker's host and user rules
    // are what contain it.
    let description = plugin.description().clone();
    assert!(description.capabilities.ssh);
    let journal = Arc::new(Journal::default());
    let session = Arc::new(
        Session::new(
            &description,
            SessionConfig {
                grants: support::grants(&[("api", "http://127.0.0.1:9")]),
                credential_env: BTreeMap::new(),
                secrets: Box::new(Vars::none()),
                artifact: None,
                journal: journal.clone(),
                http_limits: HttpLimits::default(),
            },
        )
        .unwrap(),
    );
    session.ssh.configure(SshSettings {
        known_hosts: KnownHosts::standard(known.clone()),
        auth: AuthConfig {
            identity_file: Some(host.key_path.clone()),
            use_agent: false,
        },
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(30),
        ..SshSettings::default()
    });
    // What the engine does for a host listed in `[env.<name>.ssh] hosts`.
    session
        .ssh
        .admit(
            &host.addr,
            host.port,
            HostSpec {
                address: host.addr.clone(),
                port: host.port,
                user: user(),
                accept_new: false,
                sudo: false,
                public_only: false,
                reach: Default::default(),
            },
            NamedBy::Config,
        )
        .unwrap();
    let plan_as = |addr: String, user: &'static str| {
        let session = session.clone();
        let plugin = &plugin;
        async move {
            let ctx = Context {
                app: "app".into(),
                environment: "test".into(),
                settings: serde_json::json!({"mode": "ssh", "addr": addr, "user": user})
                    .to_string(),
                endpoints: session.http.endpoints().to_vec(),
                artifact: None,
            };
            plugin.plan(session, &ctx).await
        }
    };

    let plan = |addr: String| plan_as(addr, "");

    // A plugin may not pick the login user: the config's (here the current
    // user's) wins, and the attempt is journaled.
    let err = plan_as(host.endpoint(), "someone-else")
        .await
        .expect_err("a plugin-chosen user")
        .to_string();
    assert!(err.contains("cannot choose another user"), "{err}");
    let denied = journal.events().len();

    // Allowed: the command runs on the host, as the config's user, and is
    // journaled under the plugin's name.
    let r = plan(host.endpoint()).await;
    let ssh_events: Vec<(String, String, String, Option<i32>)> = journal
        .events()
        .into_iter()
        .skip(denied)
        .filter_map(|e| match e {
            Event::Ssh {
                plugin,
                host,
                command,
                exit,
                ..
            } => Some((plugin, host, command, exit)),
            _ => None,
        })
        .collect();
    let described = format!("{}@{}", user(), host.endpoint());
    assert_eq!(ssh_events.len(), 1, "{ssh_events:?}");
    let (who, on, command, exit) = &ssh_events[0];
    assert_eq!(who, "hostile");
    assert_eq!(on, &described);
    assert!(command.starts_with("cat /etc/shadow"), "{command}");
    // `cat /etc/shadow` succeeds for root only; either way it ran there.
    let code = if user() == "root" { 0 } else { 1 };
    let answered = r.expect("the allowed host answered");
    assert_eq!(answered.notes, [format!("ssh exit {code}")]);
    assert_eq!(*exit, Some(code));

    // Not allowed: denied, naming the allowed set, with no connection made.
    let err = plan(format!("127.0.0.1:{other_port}"))
        .await
        .expect_err("a host outside the allowed set was reached")
        .to_string();
    assert!(err.contains("denied by the host"), "{err}");
    assert!(
        err.contains(&format!("may not reach 127.0.0.1:{other_port}")),
        "{err}"
    );
    assert!(
        err.contains(&host.endpoint()),
        "the allowed set is not named: {err}"
    );
    assert!(
        matches!(other.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the broker connected to a host outside the allowed set"
    );
}
