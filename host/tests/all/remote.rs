//! `soar deploy --server URL` and friends, through the built binary against
//! a real `soar serve` on 127.0.0.1: the same events and exit codes as a
//! local run of the same project, status and history that agree with the
//! server's API, refusals that say what to do, and a token that never
//! shows in any output.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::e2e::{ENV, Mode, Project, Run, run_command, soar_toml, version_at};
use crate::support::leak_scan::assert_no_secret;
use crate::support::{Listening, listening, soar};

/// The project NAME on the server: the `[app] name` of [`soar_toml`], so the
/// CLI finds it from the checkout's soar.toml without `--project`.
const APP: &str = "e2e-app";

/// A running `soar serve`; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    scheme: &'static str,
    log: PathBuf,
}

impl Server {
    /// `soar serve` with `config` on a free loopback port; returns once it
    /// listens.
    fn start(home: &Path, config: &Path) -> Self {
        let log = config.with_file_name("serve.log");
        // The server's environment points soar at a server (nothing
        // listens there): its own jobs, `soar` children of it, must still
        // deploy locally, or every job here would fail.
        let mut serve = soar(home, config.parent().unwrap());
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--server-config"])
            .arg(config)
            .env("SOAR_SERVER", "http://127.0.0.1:9")
            .env("SOAR_SERVER_TOKEN", "soar_not_for_jobs");
        let Listening {
            child,
            scheme,
            addr,
        } = listening(serve, &log);
        Self {
            child,
            addr,
            scheme,
            log,
        }
    }

    fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with `token` over HTTP/1.0: status and JSON body.
    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose one project (`e2e-app`) is `served`; the server config's
/// path.
fn server_config(served: &Project, extra: &str) -> PathBuf {
    let dir = served.tmp().join("server");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("soar-server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[projects.{APP}]\npath = {:?}\n{extra}",
            served.root.display().to_string()
        ),
    )
    .unwrap();
    config
}

/// `soar serve token create --scope <scope>`: the token.
fn token(home: &Path, config: &Path, scope: &str) -> String {
    let out = soar(home, config.parent().unwrap())
        .args([
            "serve",
            "token",
            "create",
            "--scope",
            scope,
            "--server-config",
        ])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// A user's checkout: a directory holding the project's soar.toml only
/// (the code is on the server), where the CLI runs.
fn checkout(served: &Project) -> PathBuf {
    let dir = served.tmp().join("checkout");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(served.config(), dir.join("soar.toml")).unwrap();
    dir
}

/// The client: `soar <args>` in `dir`, with `token` (if any) in
/// `$SOAR_SERVER_TOKEN`, in its own sandbox.
fn client(sandbox: &Path, dir: &Path, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd: Command = soar(sandbox, dir);
    cmd.args(args).env_remove("SOAR_SERVER");
    match token {
        Some(t) => cmd.env("SOAR_SERVER_TOKEN", t),
        None => cmd.env_remove("SOAR_SERVER_TOKEN"),
    };
    let run = run_command(cmd, args.iter().map(|a| a.to_string()).collect());
    eprintln!("{}", run.show());
    run
}

fn types(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// `value` without its `type` (the API's bodies carry none).
fn untyped(mut value: Value) -> Value {
    value.as_object_mut().unwrap().remove("type");
    value
}

/// The token must be in no output, in any encoded form.
fn assert_token_hidden(runs: &[&Run], tokens: &[&str]) {
    for run in runs {
        let place = format!("soar {}", run.args.join(" "));
        assert_no_secret(&format!("{place} stdout"), run.stdout.as_bytes(), tokens);
        assert_no_secret(&format!("{place} stderr"), run.stderr.as_bytes(), tokens);
    }
}

#[test]
fn deploy_via_the_server_shows_and_exits_as_a_local_deploy() {
    let here = Project::new(&soar_toml("20s", ""), "v1");
    let served = Project::new(&soar_toml("20s", ""), "v1");
    let config = server_config(&served, "");
    let tok = token(served.tmp(), &config, "deploy");
    let reader = token(served.tmp(), &config, "read");
    let server = Server::start(served.tmp(), &config);
    let url = server.url();
    let dir = checkout(&served);
    let sandbox = served.tmp();

    // First deploy, --json: the same events in the same order, same exit.
    let clock = std::time::Instant::now();
    let local = here.soar(&["deploy", "--json", "--yes"]).ok();
    let local_took = clock.elapsed();
    let clock = std::time::Instant::now();
    let remote = client(
        sandbox,
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, "--json", "--yes"],
    )
    .ok();
    eprintln!(
        "figure: first deploy {:.2} s here, {:.2} s via the server (submit, run, follow)",
        local_took.as_secs_f64(),
        clock.elapsed().as_secs_f64()
    );
    let remote_lines = remote.json_lines();
    assert_eq!(types(&remote_lines), types(&local.json_lines()));
    let deployed = remote_lines
        .iter()
        .find(|l| l["type"] == "deployed")
        .unwrap();
    let service = deployed["url"].as_str().unwrap();
    assert_eq!(version_at(service), "v1");
    assert_eq!(served.url(), service, "the server's project runs it");

    // Again, for people and without --yes: nothing to change, so nothing
    // is asked; stdout is what a local deploy prints, word for word.
    let clock = std::time::Instant::now();
    let local = here.soar(&["deploy"]).ok();
    let local_took = clock.elapsed();
    let clock = std::time::Instant::now();
    let remote_again = client(sandbox, &dir, Some(&tok), &["deploy", "--server", &url]).ok();
    eprintln!(
        "figure: converged deploy {:.2} s here, {:.2} s via the server (plan, then apply the plan id)",
        local_took.as_secs_f64(),
        clock.elapsed().as_secs_f64()
    );
    assert_eq!(remote_again.stdout, local.stdout);
    assert!(
        remote_again.stderr.contains("is up to date at"),
        "{}",
        remote_again.show()
    );

    // A change: a local deploy without --yes and no terminal refuses, and
    // so does one via the server — before anything is submitted.
    served.write_app("v2", Mode::Healthy);
    here.write_app("v2", Mode::Healthy);
    let local = here.soar(&["deploy"]).expect_code(1);
    let refused = client(sandbox, &dir, Some(&tok), &["deploy", "--server", &url]).expect_code(1);
    for run in [&local, &refused] {
        assert!(run.stderr.contains("Pass --yes"), "{}", run.show());
    }
    assert_eq!(version_at(service), "v1");

    // Plan via the server, then deploy exactly that plan by its id.
    let plan = client(
        sandbox,
        &dir,
        Some(&tok),
        &["plan", "--server", &url, "--detailed-exitcode"],
    )
    .expect_code(2);
    let id = plan
        .stdout
        .lines()
        .find_map(|l| l.split("Saved on the server as plan ").nth(1))
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_else(|| panic!("no plan id\n{}", plan.show()))
        .to_string();
    let applied = client(
        sandbox,
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, &id, "--json"],
    )
    .ok();
    assert!(types(&applied.json_lines()).contains(&"deployed".to_string()));
    assert_eq!(version_at(service), "v2");

    // Status and history via the server agree with the server's API.
    let status = client(
        sandbox,
        &dir,
        Some(&reader),
        &["status", "--server", &url, "--json"],
    )
    .ok();
    let lines = status.json_lines();
    assert_eq!(types(&lines), ["status"]);
    let (code, api) = server.get(&format!("/v1/environments/{APP}/{ENV}"), &reader);
    assert_eq!(code, 200, "{api}");
    assert_eq!(untyped(lines[0].clone()), api);
    let history = client(
        sandbox,
        &dir,
        Some(&reader),
        &["history", "--server", &url, "--json", "-n", "10"],
    )
    .ok();
    let (code, api) = server.get(
        &format!("/v1/environments/{APP}/{ENV}/history?limit=10"),
        &reader,
    );
    assert_eq!(code, 200, "{api}");
    let records: Vec<Value> = history.json_lines().into_iter().map(untyped).collect();
    assert_eq!(Value::Array(records.clone()), api);
    assert!(records.len() >= 3, "{records:?}");
    let people = client(sandbox, &dir, Some(&reader), &["history", "--server", &url]).ok();
    assert!(people.stdout.contains("deploy dev by"), "{}", people.show());

    // Logs, and rollback to v1 followed to its end.
    client(sandbox, &dir, Some(&reader), &["logs", "--server", &url]).ok();
    let rollback = client(sandbox, &dir, Some(&tok), &["rollback", "--server", &url]).ok();
    assert_eq!(version_at(service), "v1", "{}", rollback.show());

    assert_token_hidden(
        &[
            &remote,
            &remote_again,
            &refused,
            &plan,
            &applied,
            &status,
            &history,
            &people,
            &rollback,
        ],
        &[&tok, &reader],
    );
    eprintln!("server log:\n{}", server.log());
}

#[test]
fn a_failing_deploy_fails_via_the_server_as_it_does_here() {
    let toml = soar_toml("2s", "");
    let here = Project::new(&toml, "v1");
    let served = Project::new(&toml, "v1");
    here.write_app("v1", Mode::Unhealthy);
    served.write_app("v1", Mode::Unhealthy);
    let config = server_config(&served, "");
    let tok = token(served.tmp(), &config, "deploy");
    let server = Server::start(served.tmp(), &config);
    let dir = checkout(&served);
    let url = server.url();

    let local = here.soar(&["deploy", "--json", "--yes"]).expect_code(1);
    let remote = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, "--json", "--yes"],
    )
    .expect_code(1);
    let (local_lines, remote_lines) = (local.json_lines(), remote.json_lines());
    assert_eq!(types(&remote_lines), types(&local_lines));
    assert_eq!(
        types(&remote_lines).last().map(String::as_str),
        Some("error")
    );
    // The error is the deploy's own — what its failed rollout said —
    // reported once.
    let failed = remote_lines
        .iter()
        .find(|l| l["type"] == "rollout_failed")
        .unwrap_or_else(|| panic!("no rollout_failed\n{}", remote.show()));
    assert_eq!(remote_lines.last().unwrap()["message"], failed["error"]);

    let people = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, "--yes"],
    )
    .expect_code(1);
    let errors = people.stderr.lines().filter(|l| l.starts_with("error:"));
    assert_eq!(errors.count(), 1, "{}", people.show());
    assert_token_hidden(&[&remote, &people], &[&tok]);
}

#[test]
fn refusals_say_what_to_do_in_one_line() {
    let served = Project::new(&soar_toml("20s", ""), "v1");
    let config = server_config(&served, "");
    let tok = token(served.tmp(), &config, "deploy");
    let reader = token(served.tmp(), &config, "read");
    let server = Server::start(served.tmp(), &config);
    let dir = checkout(&served);
    let url = server.url();
    let sandbox = served.tmp();
    let deploy = |token: Option<&str>, extra: &[&str]| {
        let mut args = vec!["deploy", "--server", &url, "--yes"];
        args.extend_from_slice(extra);
        client(sandbox, &dir, token, &args)
    };

    // Each: exit 1 and the line that says what to do.
    let cases: Vec<(&str, Run, &str)> = vec![
        ("no token", deploy(None, &[]), "set $SOAR_SERVER_TOKEN"),
        (
            "a wrong token",
            deploy(Some("soar_0000000000000000"), &[]),
            "refused the token in $SOAR_SERVER_TOKEN",
        ),
        (
            "a read token deploying",
            deploy(Some(&reader), &[]),
            "does not allow this token",
        ),
        (
            "an unknown project",
            deploy(Some(&tok), &["--project", "nope"]),
            "no project \"nope\" on this server",
        ),
        (
            "an unknown environment",
            deploy(Some(&tok), &["-e", "prod"]),
            "has no environment \"prod\"",
        ),
        (
            "an unknown job to follow",
            deploy(Some(&tok), &["--follow", "0000"]),
            "no deploy \"0000\" on",
        ),
        (
            "--since, which needs the hosts' own logs",
            client(
                sandbox,
                &dir,
                Some(&tok),
                &["logs", "--server", &url, "--follow", "--since", "10m"],
            ),
            "--since does not apply with --server",
        ),
        (
            "plain http to another machine",
            client(
                sandbox,
                &dir,
                Some(&tok),
                &["status", "--server", "http://192.0.2.1:8007"],
            ),
            "over plain http",
        ),
    ];
    for (what, run, needle) in &cases {
        assert_eq!(run.code, Some(1), "{what}\n{}", run.show());
        assert!(
            run.stderr.contains(needle),
            "{what}: no {needle:?}\n{}",
            run.show()
        );
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{what}\n{}",
            run.show()
        );
    }

    // Under --json the refusal is the one error event, as locally.
    let json = deploy(Some("soar_0000000000000000"), &["--json"]);
    assert_eq!(json.code, Some(1));
    assert_eq!(types(&json.json_lines()), ["error"]);

    // Nothing listening: connection refused, and what to check.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let refused = client(
        sandbox,
        &dir,
        Some(&tok),
        &["status", "--server", &format!("http://{closed}")],
    );
    assert_eq!(refused.code, Some(1), "{}", refused.show());
    assert!(
        refused.stderr.contains("connection refused"),
        "{}",
        refused.show()
    );

    let mut runs: Vec<&Run> = cases.iter().map(|(_, r, _)| r).collect();
    runs.extend([&json, &refused]);
    assert_token_hidden(&runs, &[&tok, &reader, "soar_0000000000000000"]);
    eprintln!("server log:\n{}", server.log());
}

/// A hook that holds a deploy until the test lets it go.
const GATE: &str = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";

/// SIGINT `child` (the user's Ctrl-C) once `marker` exists; its output.
fn interrupt_when(child: std::process::Child, marker: &Path) -> std::process::Output {
    assert!(
        crate::support::e2e::wait_until(Duration::from_secs(120), || marker.exists()),
        "{} never appeared",
        marker.display()
    );
    // SAFETY: our own live child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_stops_following_and_the_deploy_goes_on_or_is_cancelled() {
    let gated = format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n");
    let served = Project::new(&soar_toml("20s", &gated), "v1");
    let config = server_config(&served, "");
    let tok = token(served.tmp(), &config, "deploy");
    let server = Server::start(served.tmp(), &config);
    let dir = checkout(&served);
    let url = server.url();
    let spawn = |extra: &[&str]| {
        let mut cmd = soar(served.tmp(), &dir);
        cmd.args(["deploy", "--server", &url, "--yes"])
            .args(extra)
            .env("SOAR_SERVER_TOKEN", &tok)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let started = served.root.join("hook-started");
    let release = served.root.join("hook-release");

    // Ctrl-C: stop following, say how to resume; the deploy goes on.
    let out = interrupt_when(spawn(&[]), &started);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let id = stderr
        .split("--follow ")
        .nth(1)
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("no --follow hint: {stderr}"));
    std::fs::write(&release, "").unwrap();
    let resumed = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, "--follow", &id, "--json"],
    )
    .ok();
    assert!(
        types(&resumed.json_lines()).contains(&"deployed".to_string()),
        "{}",
        resumed.show()
    );
    assert_eq!(version_at(&served.url()), "v1");

    // --cancel-on-interrupt: Ctrl-C cancels the job, which ends cancelled.
    std::fs::remove_file(&started).unwrap();
    std::fs::remove_file(&release).unwrap();
    served.write_app("v2", Mode::Healthy);
    let out = interrupt_when(spawn(&["--cancel-on-interrupt"]), &started);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Asked the server to cancel"), "{stderr}");
    assert!(stderr.contains("was cancelled on the server"), "{stderr}");
    assert_eq!(
        version_at(&served.url()),
        "v1",
        "the cancelled deploy changed nothing"
    );
    for text in [&out.stdout, &out.stderr] {
        assert_no_secret("the interrupted deploy's output", text, &[&tok]);
    }
}

/// `soar logs --server -f` follows the server's event stream: the backlog,
/// then a line written after it started; `--grep` filters; Ctrl-C ends it
/// with 0, as a local follow.
#[test]
fn logs_follow_through_the_server() {
    let served = Project::new(&soar_toml("20s", ""), "v1");
    served.soar(&["deploy", "--yes"]).ok();
    let log = served.service_root().join("logs").join("service.log");
    std::fs::write(&log, "before the follow\nnoise\n").unwrap();
    let config = server_config(&served, "");
    let reader = token(served.tmp(), &config, "read");
    let server = Server::start(served.tmp(), &config);
    let dir = checkout(&served);
    let mut child = soar(served.tmp(), &dir)
        .args(["logs", "--server", &server.url(), "-f", "-n", "5"])
        .args(["--grep", "follow"])
        .env_remove("SOAR_SERVER")
        .env("SOAR_SERVER_TOKEN", &reader)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(60)).ok();
    assert_eq!(next().as_deref(), Some("before the follow"), "the backlog");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "not shown\nafter the follow started").unwrap();
    assert_eq!(
        next().as_deref(),
        Some("after the follow started"),
        "a new line, and --grep dropped the others"
    );
    // SAFETY: our own live child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_no_secret("the follow's output", stderr.as_bytes(), &[&reader]);
}

/// A self-signed certificate for IP 127.0.0.1 and its key, valid until
/// 2126 (the pair host/tests/all/serve.rs's TLS test uses; made with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
/// -days 36500 -subj /CN=soar-serve-test -addext subjectAltName=IP:127.0.0.1
/// -addext basicConstraints=critical,CA:FALSE -addext
/// extendedKeyUsage=serverAuth`). Test-only.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBrjCCAVSgAwIBAgIUXiIIxh2rZy6qq8T3+tG4tSI2bgkwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPc29hci1zZXJ2ZS10ZXN0MCAXDTI2MTIwNzAwMzY0OFoYDzIx\nMjYxMTEzMDAzNjQ4WjAaMRgwFgYDVQQDDA9zb2FyLXNlcnZlLXRlc3QwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9fhIE+Q06\n0d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEro3YwdDAdBgNVHQ4E\nFgQU/a+3JWqM/Lo9ND1locXnEPJHE6YwHwYDVR0jBBgwFoAU/a+3JWqM/Lo9ND1l\nocXnEPJHE6YwDwYDVR0RBAgwBocEfwAAATAMBgNVHRMBAf8EAjAAMBMGA1UdJQQM\nMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gAMEUCIQDrOReIx0VaaBeSnxaB1sYI\nIlm7vM771w752llLPhKDcAIgBNRvHNrlPA20cnZiGaZRypRSHApdUSJb0o+Ch0pS\nV5U=\n-----END CERTIFICATE-----\n";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxHaj2L3Cy1j/rU7D\nZIhZmabaq0dW0R7JTdT1yogvMCuhRANCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9\nfhIE+Q060d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEr\n-----END PRIVATE KEY-----\n";

#[test]
fn https_with_a_private_ca_and_nothing_without_it() {
    let served = Project::new(&soar_toml("20s", ""), "v1");
    let config = server_config(
        &served,
        "[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n",
    );
    let server_dir = config.parent().unwrap();
    std::fs::write(server_dir.join("server.crt"), TEST_CERT).unwrap();
    std::fs::write(server_dir.join("server.key"), TEST_KEY).unwrap();
    let tok = token(served.tmp(), &config, "deploy");
    let server = Server::start(served.tmp(), &config);
    assert_eq!(server.scheme, "https");
    let dir = checkout(&served);
    let url = server.url();
    let ca = crate::support::write(served.tmp(), "ca.pem", TEST_CERT);
    let ca = ca.to_str().unwrap();

    let deployed = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["deploy", "--server", &url, "--server-ca", ca, "--yes"],
    )
    .ok();
    // As locally: the plan, then the URL alone on the last line.
    let last = deployed.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, served.url(), "{}", deployed.show());

    let untrusted = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["history", "--server", &url],
    );
    assert_eq!(untrusted.code, Some(1), "{}", untrusted.show());
    assert!(
        untrusted.stderr.contains("--server-ca"),
        "{}",
        untrusted.show()
    );
    let not_pem = client(
        served.tmp(),
        &dir,
        Some(&tok),
        &["history", "--server", &url, "--server-ca", "soar.toml"],
    );
    assert_eq!(not_pem.code, Some(1), "{}", not_pem.show());
    assert_token_hidden(&[&deployed, &untrusted, &not_pem], &[&tok]);
}
