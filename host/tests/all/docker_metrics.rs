//! A `docker` service watched after its deploy, through the built `soar`
//! binary, on a real OpenSSH `sshd` on loopback and the machine's real
//! Docker engine (as docker_rollout.rs: a `FROM scratch` image of the
//! static example service, built here, nothing pulled; with `CI=true` a
//! missing engine fails the test, elsewhere it is skipped loudly):
//!
//! - `soar status --json` and `soar top --once --json` carry plausible
//!   numbers: up, its pid, restarts, uptime, CPU time and memory counted
//!   over the whole container (not only Docker's `--init` process);
//! - `soar logs -f` sees a line the container writes after the follow
//!   started: the service's start line, written again when the restart
//!   policy brings it back after its process was killed from outside;
//! - that restart is counted;
//! - Ctrl-C (SIGINT) ends the follow with exit code 0.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use soar_tests::dockerd::{Engine, Leftovers, require_engine, static_hello, unique_service};
use soar_tests::sshd::{ClientKey, SshHost, available, free_port};

use crate::support::running::Running;
use crate::support::{soar, text};

/// A project deploying a `FROM scratch` image of the static hello to
/// `host` as an image archive.
struct Project {
    dir: tempfile::TempDir,
    sandbox: tempfile::TempDir,
    service: String,
    engine: &'static Engine,
}

impl Project {
    fn new(engine: &'static Engine, host: &SshHost, service: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let image = dir.path().join("image");
        std::fs::create_dir_all(&image).unwrap();
        let bin = static_hello().unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(&bin, image.join("hello")).unwrap();
        std::fs::write(
            image.join("Dockerfile"),
            "FROM scratch\nCOPY hello /hello\nENV BIND_ADDR=0.0.0.0\nENTRYPOINT [\"/hello\"]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("known_hosts"), host.known_hosts_line()).unwrap();
        let cli = engine.cli();
        std::fs::write(
            dir.path().join("soar.toml"),
            format!(
                r#"[app]
name = "{service}"

[artifact]
kind = "docker"
path = "out/app.tar"
build = "{cli} build -q -t {service}-build image >/dev/null && mkdir -p out && {cli} save {service}-build -o out/app.tar"
docker_command = "{cli}"
publish = "127.0.0.1"

[deploy]
port = {port}
health = {{ path = "/health", timeout = "20s", interval = "200ms", retries = 100 }}

[env.prod]
provider = "local"

{ssh}"#,
                ssh = host.ssh_table("prod"),
            ),
        )
        .unwrap();
        Self {
            dir,
            sandbox: tempfile::tempdir().unwrap(),
            service: service.to_string(),
            engine,
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = soar(self.sandbox.path(), self.dir.path());
        c.arg("-c")
            .arg(self.dir.path().join("soar.toml"))
            .args(args)
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn soar(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("running soar");
        eprintln!(
            "$ soar {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// The first host's numbers from `soar status --json`.
    fn status_metrics(&self) -> Value {
        let out = self.soar(&["status", "--json"]);
        assert!(out.status.success(), "status failed");
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            status["metrics"].is_null(),
            "nothing runs under the local supervisor: the numbers are the host's: {status:#}"
        );
        status["hosts"][0]["metrics"].clone()
    }

    /// The container's memory as `docker stats --no-stream` shows it, in
    /// bytes.
    fn stats_memory(&self) -> u64 {
        let shown = self
            .engine
            .stdout(&[
                "stats",
                "--no-stream",
                "--format",
                "{{.MemUsage}}",
                &format!("soar-{}", self.service),
            ])
            .unwrap_or_default();
        let used = shown.split('/').next().unwrap_or_default().trim();
        let split = used
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or_else(|| panic!("docker stats said {shown:?}"));
        let (n, unit) = used.split_at(split);
        let scale = match unit {
            "B" => 1.0,
            "KiB" | "kB" => 1024.0,
            "MiB" | "MB" => 1024.0 * 1024.0,
            "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
            _ => panic!("docker stats said {shown:?}"),
        };
        (n.trim().parse::<f64>().unwrap() * scale) as u64
    }

    /// `docker inspect -f <format>` of the service's container.
    fn inspect(&self, format: &str) -> String {
        self.engine
            .stdout(&["inspect", "-f", format, &format!("soar-{}", self.service)])
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// The numbers of a running container, plausible for the static hello.
#[track_caller]
fn assert_plausible(m: &Value, restarts: u64) {
    assert_eq!(m["up"], true, "{m:#}");
    assert!(m["pid"].as_u64().is_some_and(|p| p > 1), "{m:#}");
    assert_eq!(m["restarts"].as_u64(), Some(restarts), "{m:#}");
    assert!(
        m["uptime_seconds"].as_u64().is_some_and(|u| u < 600),
        "{m:#}"
    );
    assert!(
        m["cpu_seconds"]
            .as_f64()
            .is_some_and(|c| (0.0..60.0).contains(&c)),
        "{m:#}"
    );
    // The static hello and Docker's init: more than 100 KiB, far less than
    // 200 MiB.
    assert!(
        m["rss_bytes"]
            .as_u64()
            .is_some_and(|b| ((100 << 10)..(200 << 20)).contains(&b)),
        "{m:#}"
    );
}

#[test]
fn numbers_logs_and_restarts_of_a_container() {
    let Some(engine) = require_engine() else {
        return;
    };
    assert!(
        available(),
        "Docker tests need OpenSSH's sshd: apt-get install -y openssh-server"
    );
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let service = unique_service("met");
    let _cleanup = Leftovers::of_service(engine, &service).image(format!("{service}-build"));
    let p = Project::new(engine, &host, &service);
    let out = p.soar(&["deploy", "--yes"]);
    assert!(out.status.success(), "deploy: {}", text(&out.stderr));

    // The numbers, as `soar status` and `soar top` show them.
    let m = p.status_metrics();
    assert_plausible(&m, 0);
    assert_eq!(
        m["pid"].as_u64().unwrap().to_string(),
        p.inspect("{{.State.Pid}}"),
        "{m:#}"
    );
    // The memory is the whole container's as `docker stats` counts it
    // (not only that of its init, Docker's `--init`, the pid above).
    let stats = p.stats_memory();
    let rss = m["rss_bytes"].as_u64().unwrap();
    assert!(
        rss.abs_diff(stats) <= (stats / 2).max(1 << 20),
        "{m:#}: `docker stats` says {stats} bytes"
    );
    let out = p.soar(&["top", "--once", "--json"]);
    assert!(out.status.success(), "top: {}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["type"] == "service_metrics")
        .collect();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_plausible(&rows[0]["metrics"], 0);

    // Follow from now on (no backlog), then kill the container's process
    // from outside: the restart policy brings it back, and the start line
    // it writes again is followed.
    let mut follow = Running::spawn(p.command(&["logs", "-f", "-n", "0"]));
    // Let the first poll (which only marks where "now" is) happen.
    std::thread::sleep(Duration::from_secs(2));
    let pid: u32 = p.inspect("{{.State.Pid}}").parse().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill {pid}");
    let line = follow.until(Duration::from_secs(60), |l| {
        l.contains("hello: listening on")
    });
    assert!(
        line.is_some(),
        "the restarted container's start line never arrived"
    );
    assert_eq!(
        follow.interrupt(),
        Some(0),
        "Ctrl-C ends the follow cleanly"
    );

    // The restart is counted, and the numbers are those of the new process.
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = p.status_metrics();
        if m["restarts"].as_u64().is_some_and(|r| r >= 1) && m["up"] == true {
            break m;
        }
        assert!(Instant::now() < deadline, "no restart counted: {m:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_plausible(&m, 1);
    assert_ne!(m["pid"].as_u64(), Some(u64::from(pid)), "{m:#}");
    assert!(
        m["uptime_seconds"].as_u64().is_some_and(|u| u < 60),
        "the uptime is the restarted process's: {m:#}"
    );
}
