//! The `proxy` switch drops no request: a client hammers the service
//! through the real nginx on each host while the built `soar` deploys five
//! releases, rolls back twice and tries an unhealthy release, on the local
//! target and on SSH hosts (real OpenSSH `sshd` on loopback, systemd's
//! stand-in `systemctl3.py`).
//!
//! Every request is a new connection (as a fleet's load balancer or many
//! clients make them). The checks: no request fails; once `soar` has
//! returned from a switch, no answer comes from the release it replaced;
//! the unhealthy release never answers a request. How much longer a
//! proxied deploy takes than a restart is printed, not asserted.
//!
//! Needs nginx (Debian `nginx-light`); SSH cases also `/usr/sbin/sshd` and
//! `systemctl3.py` (see `ssh_rollout`). The docker case (blue/green
//! containers behind the host's nginx) needs a Docker engine too, and
//! builds its images `FROM scratch` around the static example service.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use soar_tests::sshd::{
    ClientKey, SshHost, SshProject, free_port, python, require_peers, systemctl_py,
};

use crate::support::e2e::{Mode, Project, app_py, soar_toml};
use crate::support::running::Running;

/// Most requests one hammer sends (a bound, should a deploy hang).
const MAX_REQUESTS: usize = 200_000;

/// Whether nginx is installed; CI installs it (`.ci/run`), elsewhere the
/// test says so and passes.
fn nginx_available() -> bool {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !found && std::env::var_os("CI").is_some() {
        panic!("nginx is required in CI (Debian nginx-light)");
    }
    if !found {
        eprintln!("skipping: nginx is not installed (apt-get install nginx-light)");
    }
    found
}

/// One answer the hammer got: when it was sent and what came back.
struct Answer {
    sent: Instant,
    result: Result<String, String>,
}

/// A client sending `GET /` to a port in a loop until stopped.
struct Hammer {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl Hammer {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                for _ in 0..MAX_REQUESTS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sent = Instant::now();
                    let result = get(port);
                    answers.lock().unwrap().push(Answer { sent, result });
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Self {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    /// Stop and return every answer, in order.
    fn finish(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET /` on 127.0.0.1:`port` over a new connection: the body of a 200,
/// or what went wrong.
fn get(port: u16) -> Result<String, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("status {status}: {}", body.trim()));
    }
    Ok(body.trim().to_string())
}

/// One switch `soar` made: while it ran, answers come from `previous` or
/// `version`; once it has returned (until the next command starts), from
/// `version` alone.
struct Expect {
    started: Instant,
    returned: Instant,
    previous: String,
    version: String,
}

/// The switches of one service, as the script makes them.
#[derive(Default)]
struct Script {
    switches: Vec<Expect>,
    live: String,
}

impl Script {
    /// Run `command`, which switches to `version`; returns its result.
    fn switch<R>(&mut self, version: &str, command: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = command();
        self.switches.push(Expect {
            started,
            returned: Instant::now(),
            previous: std::mem::replace(&mut self.live, version.to_string()),
            version: version.to_string(),
        });
        result
    }
}

/// Check a hammer's answers: none failed; each after a switch returned
/// is from the release switched to; `never` never answered. Returns how
/// many answers there were.
#[track_caller]
fn check(what: &str, answers: &[Answer], switches: &[Expect], never: &str) -> usize {
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err().cloned())
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
    for (i, e) in switches.iter().enumerate() {
        let next = switches.get(i + 1).map(|n| n.started);
        let from = |start: Instant, end: Option<Instant>| {
            answers
                .iter()
                .filter(move |a| a.sent >= start && end.is_none_or(|u| a.sent < u))
                .filter_map(|a| a.result.as_deref().ok())
        };
        let stray: Vec<&str> = from(e.started, Some(e.returned))
            .filter(|v| *v != e.previous && *v != e.version)
            .collect();
        assert!(
            stray.is_empty(),
            "{what}: while switching from {} to {}, {} answers came from elsewhere: {:?}",
            e.previous,
            e.version,
            stray.len(),
            &stray[..stray.len().min(5)]
        );
        let stale: Vec<&str> = from(e.returned, next).filter(|v| *v != e.version).collect();
        assert!(
            stale.is_empty(),
            "{what}: after switching to {}, {} answers came from elsewhere: {:?}",
            e.version,
            stale.len(),
            &stale[..stale.len().min(5)]
        );
    }
    assert!(
        !answers.iter().any(|a| a.result.as_deref() == Ok(never)),
        "{what}: the unhealthy release {never} answered a request"
    );
    answers.len()
}

/// The `[deploy]` lines of the proxy switch with the ports given.
fn proxy_lines(blue: u16, green: u16) -> String {
    format!("switch = \"proxy\"\nproxy = {{ ports = [{blue}, {green}], drain = \"5s\" }}\n")
}

/// A local project on a fixed port, with the proxy switch or not.
fn local_project(port: u16, proxy: bool, version: &str) -> Project {
    let mut extra = format!("port = {port}\n");
    if proxy {
        extra.push_str(&proxy_lines(free_port().unwrap(), free_port().unwrap()));
    }
    // soar_toml's [deploy] ends with the health line: the extra keys join it.
    let toml =
        soar_toml("15s", "").replace("retries = 100 }\n", &format!("retries = 100 }}\n{extra}"));
    Project::new(&toml, version)
}

/// Seconds of one successful `soar deploy --yes`.
#[track_caller]
fn timed_deploy(p: &Project) -> f64 {
    let started = Instant::now();
    p.soar(&["deploy", "--yes"]).ok();
    started.elapsed().as_secs_f64()
}

/// `soar monitor` started before a deploy made by another process watches
/// what that deploy made live: the new colour's process (its numbers), not
/// the old one the switch stopped.
#[test]
fn monitor_watches_the_colour_a_later_deploy_made_live() {
    if !nginx_available() {
        return;
    }
    let port = free_port().unwrap();
    let p = local_project(port, true, "v1");
    p.soar(&["deploy", "--yes"]).ok();
    let mut monitor = Running::spawn(p.command(&["monitor", "--interval", "300ms", "--json"]));
    // The pid of an up service in a `health_check` line.
    let up_pid = |l: &str| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let m = &v["services"][0]["metrics"];
        (v["type"] == "health_check" && m["up"] == true).then(|| m["pid"].as_i64())?
    };
    let first = monitor
        .until(Duration::from_secs(30), |l| up_pid(l).is_some())
        .expect("a first check with the service up");
    let before = up_pid(&first).unwrap();

    p.write_app("v2", Mode::Healthy);
    p.soar(&["deploy", "--yes"]).ok();
    assert_eq!(get(port).as_deref(), Ok("v2"));
    let after = monitor
        .until(Duration::from_secs(30), |l| {
            up_pid(l).is_some_and(|pid| pid != before)
        })
        .expect("a check of the new colour, up");
    eprintln!("watched pid {before}, then {}", up_pid(&after).unwrap());
    assert_eq!(monitor.interrupt(), Some(0), "Ctrl-C ends it cleanly");
}

/// A proxied deploy killed anywhere (starting the other colour, switching
/// the proxy, draining) converges when run again: the new version serves
/// through the proxy, the plan is empty, and one colour runs.
#[test]
fn a_proxied_deploy_killed_at_a_random_point_converges_when_run_again() {
    if !nginx_available() {
        return;
    }
    let port = free_port().unwrap();
    let mut p = local_project(port, true, "v1");
    let started = Instant::now();
    p.soar(&["deploy", "--yes"]).ok();
    let span = started
        .elapsed()
        .max(Duration::from_millis(300))
        .as_millis() as u64;
    const ROUNDS: u64 = 6;
    for round in 0..ROUNDS {
        let version = format!("v{}", round + 2);
        p.write_app(&version, Mode::Healthy);
        let deploy = p.spawn(&["deploy", "--yes"]);
        let delay = rand::random_range(round * span / ROUNDS..(round + 1) * span / ROUNDS);
        std::thread::sleep(Duration::from_millis(delay));
        p.kill(deploy);

        let again = p.soar(&["deploy", "--yes"]);
        assert_eq!(
            again.code,
            Some(0),
            "round {round}: re-running after a kill at {delay} ms failed\n{}",
            again.show()
        );
        assert_eq!(
            get(port).as_deref(),
            Ok(version.as_str()),
            "round {round} (killed at {delay} ms)\n{}",
            again.show()
        );
        let plan = p.soar(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.code,
            Some(0),
            "round {round} (killed at {delay} ms): not converged\n{}",
            plan.show()
        );
        // The colours run in their release directories (nginx in proxy/).
        let root = p.service_root().join("releases");
        let running: Vec<String> = crate::support::e2e::processes()
            .into_iter()
            .filter(|q| q.cwd.as_deref().is_some_and(|c| c.starts_with(&root)))
            .map(|q| format!("{} {} (in {})", q.pid, q.cmdline, q.cwd.unwrap().display()))
            .collect();
        assert_eq!(
            running.len(),
            1,
            "round {round} (killed at {delay} ms): one colour runs: {running:#?}"
        );
    }
}

#[test]
fn local_deploys_and_rollbacks_drop_no_request() {
    if !nginx_available() {
        return;
    }
    let port = free_port().unwrap();
    let p = local_project(port, true, "v1");
    p.soar(&["deploy", "--yes"]).ok();
    assert_eq!(get(port).as_deref(), Ok("v1"));

    let hammer = Hammer::start(port);
    let mut script = Script {
        live: "v1".into(),
        ..Script::default()
    };
    let mut proxied = Vec::new();
    for v in ["v2", "v3", "v4", "v5", "v6"] {
        p.write_app(v, Mode::Healthy);
        proxied.push(script.switch(v, || timed_deploy(&p)));
    }
    for back_to in ["v5", "v4"] {
        let run = script.switch(back_to, || p.soar(&["rollback"]).ok());
        assert!(run.stdout.contains("back to release"), "{}", run.show());
    }
    // An unhealthy release: the deploy fails, v4 keeps every request.
    p.write_app("v7-unhealthy", Mode::Unhealthy);
    let run = script.switch("v4", || p.soar(&["deploy", "--yes"]));
    assert_ne!(run.code, Some(0), "{}", run.show());
    assert!(run.stderr.contains("unhealthy"), "{}", run.show());
    assert!(
        run.stderr.contains("without receiving a request"),
        "{}",
        run.show()
    );
    std::thread::sleep(Duration::from_millis(300));
    let answers = hammer.finish();
    let n = check("local", &answers, &script.switches, "v7-unhealthy");
    assert_eq!(get(port).as_deref(), Ok("v4"));
    let status = p.status();
    assert_eq!(status["running"], true, "{status}");
    // `soar logs` reads the live colour's log.
    let logs = p.soar(&["logs"]).ok();
    assert!(
        logs.stdout.contains("[soar] started web-blue")
            || logs.stdout.contains("[soar] started web-green"),
        "{}",
        logs.show()
    );
    // The watchers read the live colour too: its numbers, and its log.
    let top = p.soar(&["top", "--once", "--json"]).ok();
    let rows = top.json_lines();
    assert_eq!(rows.len(), 1, "{}", top.show());
    assert_eq!(rows[0]["metrics"]["up"], true, "{}", top.show());
    let followed = p.soar(&["logs", "-n", "50", "--json"]).ok();
    assert!(
        followed.stdout.contains("[soar] started web-"),
        "{}",
        followed.show()
    );
    // The audit trail names the proxy switch's own phases.
    let history = p.history();
    let proxied_deploy = history
        .iter()
        .find(|r| r["command"] == "deploy" && r["status"] == "ok")
        .expect("a proxied deploy in the history");
    let phases: Vec<&str> = proxied_deploy["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ph| ph["outcome"] == "ok")
        .filter_map(|ph| ph["phase"].as_str())
        .collect();
    assert!(
        phases.contains(&"switch") && phases.contains(&"drain"),
        "{proxied_deploy}"
    );

    // Back to the restart switch: the proxy gives the port back.
    let toml = std::fs::read_to_string(p.config()).unwrap();
    let restart: String = toml
        .lines()
        .filter(|l| !l.starts_with("switch =") && !l.starts_with("proxy ="))
        .map(|l| format!("{l}\n"))
        .collect();
    p.write("soar.toml", &restart);
    p.write_app("v8", Mode::Healthy);
    p.soar(&["deploy", "--yes"]).ok();
    assert_eq!(get(port).as_deref(), Ok("v8"));
    let proxy_dir = p.service_root().join("proxy").display().to_string();
    assert!(
        !crate::support::e2e::processes()
            .iter()
            .any(|q| q.cmdline.contains(&proxy_dir)),
        "the proxy still runs"
    );

    // The same deploy with the restart switch, for the figures.
    let plain_port = free_port().unwrap();
    let plain = local_project(plain_port, false, "v1");
    plain.soar(&["deploy", "--yes"]).ok();
    let hammer = Hammer::start(plain_port);
    let mut restarted = Vec::new();
    for v in ["v2", "v3", "v4", "v5", "v6"] {
        plain.write_app(v, Mode::Healthy);
        restarted.push(timed_deploy(&plain));
    }
    let plain_answers = hammer.finish();
    let plain_failed = plain_answers.iter().filter(|a| a.result.is_err()).count();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "zero_downtime local: proxy switch {n} requests, 0 failed, deploy {:.2} s on average; \
         restart switch {} requests, {plain_failed} failed, deploy {:.2} s; proxy adds {:.2} s per deploy",
        mean(&proxied),
        plain_answers.len(),
        mean(&restarted),
        mean(&proxied) - mean(&restarted)
    );
}

/// One SSH host with a project of its own (its own service port, so the
/// hosts' proxies do not share one), torn down with the proxy's services.
struct Host {
    project: SshProject,
    host: SshHost,
}

impl Host {
    fn start(key: &ClientKey, version: &str, proxy: bool) -> Self {
        let host = SshHost::start(key).unwrap();
        let deploy = if proxy {
            proxy_lines(free_port().unwrap(), free_port().unwrap())
        } else {
            String::new()
        };
        let project = SshProject::with_deploy(
            Path::new(env!("CARGO_BIN_EXE_soar")),
            "hello",
            &[&host],
            "kind = \"script\"\npath = \"app.py\"\ncommand = \"python3 app.py\"",
            &deploy,
        )
        .unwrap();
        let h = Self { project, host };
        h.write_app(version, Mode::Healthy);
        h
    }

    fn write_app(&self, version: &str, mode: Mode) {
        std::fs::write(
            self.project.dir.path().join("app.py"),
            app_py(version, mode),
        )
        .unwrap();
    }

    fn soar(&self, args: &[&str]) -> std::process::Output {
        self.project.soar(args)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for unit in ["hello-proxy", "hello-blue", "hello-green"] {
            let _ = Command::new(python())
                .arg(systemctl_py())
                .arg(format!(
                    "--root={}",
                    self.project.prefix(&self.host).display()
                ))
                .args(["stop", unit])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Run `step` on every host at once (each host is its own project), and
/// wait for all of them.
fn on_every_host(hosts: &[Host], scripts: &mut [Script], step: impl Fn(&Host, &mut Script) + Sync) {
    std::thread::scope(|scope| {
        for (h, s) in hosts.iter().zip(scripts.iter_mut()) {
            let step = &step;
            scope.spawn(move || step(h, s));
        }
    });
}

#[test]
fn ssh_deploys_and_rollbacks_drop_no_request() {
    if !soar_tests::sshd::available() || !nginx_available() {
        eprintln!("skipping: needs sshd and nginx");
        return;
    }
    require_peers();
    let key = ClientKey::generate().unwrap();
    let hosts: Vec<Host> = (0..3).map(|_| Host::start(&key, "v1", true)).collect();
    let mut scripts: Vec<Script> = hosts
        .iter()
        .map(|_| Script {
            live: "v1".into(),
            ..Script::default()
        })
        .collect();
    on_every_host(&hosts, &mut scripts, |h, _| {
        assert!(
            h.soar(&["deploy", "--yes"]).status.success(),
            "first deploy failed"
        );
        assert_eq!(get(h.project.port).as_deref(), Ok("v1"));
    });
    let hammers: Vec<Hammer> = hosts
        .iter()
        .map(|h| Hammer::start(h.project.port))
        .collect();
    let times = Mutex::new(Vec::new());
    for v in ["v2", "v3", "v4", "v5", "v6"] {
        on_every_host(&hosts, &mut scripts, |h, s| {
            h.write_app(v, Mode::Healthy);
            let started = Instant::now();
            let out = s.switch(v, || h.soar(&["deploy", "--yes"]));
            assert!(out.status.success(), "deploy of {v} failed");
            times.lock().unwrap().push(started.elapsed().as_secs_f64());
        });
    }
    for back_to in ["v5", "v4"] {
        on_every_host(&hosts, &mut scripts, |h, s| {
            let out = s.switch(back_to, || h.soar(&["rollback"]));
            assert!(out.status.success(), "rollback to {back_to} failed");
        });
    }
    on_every_host(&hosts, &mut scripts, |h, s| {
        h.write_app("v7-unhealthy", Mode::Unhealthy);
        let out = s.switch("v4", || h.soar(&["deploy", "--yes"]));
        assert!(!out.status.success(), "the unhealthy deploy succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("without receiving a request"), "{err}");
    });
    // `soar exec` runs in the live colour's release (v4's), not in the
    // plain service's root, which the proxy switch does not use.
    let exec = hosts[0].soar(&["exec", "--", "grep VERSION app.py"]);
    let said = String::from_utf8_lossy(&exec.stdout);
    assert!(
        exec.status.success() && said.contains("VERSION = \"v4\""),
        "{said}{}",
        String::from_utf8_lossy(&exec.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut total = 0;
    for (i, (hammer, s)) in hammers.into_iter().zip(&scripts).enumerate() {
        let answers = hammer.finish();
        total += check(
            &format!("ssh host {i}"),
            &answers,
            &s.switches,
            "v7-unhealthy",
        );
        assert_eq!(get(hosts[i].project.port).as_deref(), Ok("v4"));
    }
    drop(hosts);

    // The same deploys with the restart switch, for the figures.
    let plain = Host::start(&key, "v1", false);
    assert!(plain.soar(&["deploy", "--yes"]).status.success());
    let hammer = Hammer::start(plain.project.port);
    let mut restarted = Vec::new();
    for v in ["v2", "v3", "v4"] {
        plain.write_app(v, Mode::Healthy);
        let started = Instant::now();
        assert!(plain.soar(&["deploy", "--yes"]).status.success());
        restarted.push(started.elapsed().as_secs_f64());
    }
    let plain_answers = hammer.finish();
    let plain_failed = plain_answers.iter().filter(|a| a.result.is_err()).count();
    let times = times.into_inner().unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "zero_downtime ssh: proxy switch on 3 hosts, {total} requests, 0 failed, deploy {:.2} s on average; \
         restart switch {} requests, {plain_failed} failed, deploy {:.2} s; proxy adds {:.2} s per deploy \
         (systemctl3.py, the test hosts' systemd stand-in, takes whole seconds to stop a unit)",
        mean(&times),
        plain_answers.len(),
        mean(&restarted),
        mean(&times) - mean(&restarted)
    );
}

/// A docker service's containers, images and proxy, removed when the
/// docker case ends, passed or failed (the engine is shared by every
/// test).
struct DockerLeftovers {
    _docker: soar_tests::dockerd::Leftovers,
    proxy_dir: std::path::PathBuf,
}

impl Drop for DockerLeftovers {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.proxy_dir.join("soar.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn docker_deploys_and_a_rollback_drop_no_request() {
    if !soar_tests::sshd::available() || !nginx_available() {
        eprintln!("skipping: needs sshd and nginx");
        return;
    }
    let Some(engine) = soar_tests::dockerd::require_engine() else {
        return;
    };
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let service = format!("zdd{}", std::process::id());
    let root = host.root.join("opt").join(&service);
    let _leftovers = DockerLeftovers {
        _docker: soar_tests::dockerd::Leftovers::of_service(engine, &service)
            .container(format!("soar-{service}-blue"))
            .container(format!("soar-{service}-green")),
        proxy_dir: root.join("proxy"),
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    std::fs::write(dir.path().join("known_hosts"), host.known_hosts_line()).unwrap();
    std::fs::write(
        dir.path().join("soar.toml"),
        format!(
            r#"[app]
name = "{service}"

[artifact]
kind = "docker"
path = "context"
docker_command = "{cli}"
publish = "127.0.0.1"

[deploy]
port = {port}
keep_releases = 3
health = {{ path = "/health", timeout = "10s", interval = "200ms", retries = 50 }}
{proxy}
[env.prod]
provider = "local"

{ssh}"#,
            cli = engine.cli(),
            proxy = proxy_lines(free_port().unwrap(), free_port().unwrap()),
            ssh = host.ssh_table("prod"),
        ),
    )
    .unwrap();
    let soar = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_soar"))
            .arg("-c")
            .arg(dir.path().join("soar.toml"))
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("running soar");
        eprintln!(
            "$ soar {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let context = dir.path().join("context");
    soar_tests::dockerd::write_hello_image(&context, "d1", true);
    assert!(
        soar(&["deploy", "--yes"]).status.success(),
        "first deploy failed"
    );
    assert_eq!(get(port).as_deref(), Ok("hello d1"));

    let hammer = Hammer::start(port);
    let mut script = Script {
        live: "hello d1".into(),
        ..Script::default()
    };
    let mut times = Vec::new();
    for v in ["d2", "d3", "d4"] {
        soar_tests::dockerd::write_hello_image(&context, v, true);
        let started = Instant::now();
        let out = script.switch(&format!("hello {v}"), || soar(&["deploy", "--yes"]));
        assert!(out.status.success(), "deploy of {v} failed");
        times.push(started.elapsed().as_secs_f64());
    }
    let out = script.switch("hello d3", || soar(&["rollback"]));
    assert!(out.status.success(), "rollback failed");
    std::thread::sleep(Duration::from_millis(300));
    let answers = hammer.finish();
    let n = check("docker", &answers, &script.switches, "never served");
    assert_eq!(get(port).as_deref(), Ok("hello d3"));
    // The idle colour's container was stopped after the drain.
    let running = engine
        .stdout(&[
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=soar-{service}"),
        ])
        .unwrap_or_default();
    assert_eq!(
        running.lines().filter(|l| !l.is_empty()).count(),
        1,
        "one colour runs: {running}"
    );

    let out = soar(&["destroy", "--yes"]);
    assert!(out.status.success(), "destroy failed");
    assert!(get(port).is_err(), "the proxy still answers after destroy");
    let left = engine
        .stdout(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=soar-{service}"),
        ])
        .unwrap_or_default();
    assert!(left.trim().is_empty(), "containers left: {left}");
    eprintln!(
        "zero_downtime docker: proxy switch, {n} requests, 0 failed, deploy {:.2} s on average",
        times.iter().sum::<f64>() / times.len() as f64
    );
}

#[test]
fn host_setup_prepares_the_proxy_once_and_is_audited() {
    if !soar_tests::sshd::available() || !nginx_available() {
        eprintln!("skipping: needs sshd and nginx");
        return;
    }
    require_peers();
    let key = ClientKey::generate().unwrap();
    let hosts = [SshHost::start(&key).unwrap(), SshHost::start(&key).unwrap()];
    let (blue, green) = (free_port().unwrap(), free_port().unwrap());
    let project = SshProject::with_deploy(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "hello",
        &[&hosts[0], &hosts[1]],
        "kind = \"script\"\npath = \"app.py\"\ncommand = \"python3 app.py\"",
        &proxy_lines(blue, green),
    )
    .unwrap();
    std::fs::write(
        project.dir.path().join("app.py"),
        app_py("v1", Mode::Healthy),
    )
    .unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let first = project.soar(&["host", "setup"]);
    assert!(first.status.success(), "{}", text(&first));
    let first = text(&first);
    for h in &hosts {
        let conf = project.service_root(h).join("proxy/nginx.conf");
        let written = std::fs::read_to_string(&conf)
            .unwrap_or_else(|e| panic!("{}: {e}\n{first}", conf.display()));
        assert!(
            written.contains(&format!("server 127.0.0.1:{blue};"))
                && written.contains(&format!("listen {};", project.port)),
            "{written}"
        );
    }
    assert_eq!(first.matches("nginx.conf written").count(), 2, "{first}");
    assert_eq!(first.matches("nginx is installed").count(), 2, "{first}");

    // Again: nothing to write, the configuration only checked.
    let again = project.soar(&["host", "setup"]);
    assert!(again.status.success(), "{}", text(&again));
    let again = text(&again);
    assert_eq!(
        again.matches("already in place, nginx -t ok").count(),
        2,
        "{again}"
    );
    assert!(!again.contains("written"), "{again}");

    // A configuration nginx rejects is reported, not replaced.
    let conf = project.service_root(&hosts[1]).join("proxy/nginx.conf");
    std::fs::write(&conf, "this is not nginx\n").unwrap();
    let broken = project.soar(&["host", "setup"]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(
        text(&broken).contains("nginx -t rejects it"),
        "{}",
        text(&broken)
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "this is not nginx\n"
    );
    std::fs::remove_file(&conf).unwrap();

    // A prepared host takes its first proxied deploy (one host: on
    // loopback, two hosts' proxies would want the same port).
    let single = SshProject::with_deploy(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "hello",
        &[&hosts[0]],
        "kind = \"script\"\npath = \"app.py\"\ncommand = \"python3 app.py\"",
        &proxy_lines(blue, green),
    )
    .unwrap();
    std::fs::write(
        single.dir.path().join("app.py"),
        app_py("v1", Mode::Healthy),
    )
    .unwrap();
    let deploy = single.soar(&["deploy", "--yes"]);
    let answer = get(single.port);
    for unit in ["hello-proxy", "hello-blue", "hello-green"] {
        let _ = single.systemctl(&hosts[0], &["stop", unit]);
    }
    assert!(deploy.status.success(), "{}", text(&deploy));
    assert_eq!(answer.as_deref(), Ok("v1"));

    // The audit trail has each run, with its outcome.
    let history = project.soar(&["history", "--json"]);
    let history = String::from_utf8_lossy(&history.stdout);
    assert_eq!(history.matches("\"host-setup\"").count(), 3, "{history}");
}
