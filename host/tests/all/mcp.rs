//! `soar mcp` through the built binary: each test starts `soar -c
//! soar.toml mcp` on a local-target project (see `support::e2e`), speaks the
//! Model Context Protocol to it as an agent's client would — JSON-RPC
//! lines over the child's stdin and stdout: `initialize`,
//! `notifications/initialized`, `tools/list`, `tools/call` — and checks
//! what the tools answer, what runs on 127.0.0.1, and what the CLI reports
//! of the same project.
//!
//! Every line the server writes must be a JSON-RPC message (a stray print
//! would break a real client), and none may hold the project's secret.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::served::Served;
use crate::support::e2e::{Mode, Project, app_py, soar_toml, version_at, wait_until};

/// The secret the test projects' service gets (as `API_KEY`).
const SECRET: &str = "mcp-test-secret-8c1f0e2d9a";
/// The variable of `soar mcp`'s environment that holds it.
const SECRET_VAR: &str = "SOAR_MCP_TEST_API_KEY";

/// Longest wait for one answer: a first deploy compiles the plugin.
const ANSWER_LIMIT: Duration = Duration::from_secs(300);

/// A project whose service gets [`SECRET`] and prints it to its log.
fn project(version: &str) -> Project {
    project_with(version, "")
}

/// [`project`] with `extra` tables (e.g. `[hooks]`) in its soar.toml.
fn project_with(version: &str, extra: &str) -> Project {
    let secrets = format!("secrets = {{ API_KEY = \"{SECRET_VAR}\" }}\n\n{extra}");
    let p = Project::new(&soar_toml("10s", &secrets), version);
    write_app(&p, version);
    p
}

/// The test service, printing its secret first (so the log holds it).
fn write_app(p: &Project, version: &str) {
    let app = format!(
        "import os\nprint('starting with key', os.environ['API_KEY'], flush=True)\n{}",
        app_py(version, Mode::Healthy)
    );
    p.write("app.py", &app);
}

/// One `soar mcp` process and the client's side of its session.
struct Session {
    child: Child,
    /// `None` once closed (the client went away).
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
}

impl Session {
    /// Start `soar mcp` for `p` and complete the MCP handshake.
    fn start(p: &Project) -> Self {
        let mut cmd = p.command(&["mcp"]);
        cmd.env(SECRET_VAR, SECRET);
        Self::spawn(cmd)
    }

    /// Start `cmd` (a `soar mcp`) and complete the MCP handshake.
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting soar mcp");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut s = Self {
            child,
            stdin: Some(stdin),
            lines,
            stderr,
            next_id: 0,
        };
        let init = s.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "soar-tests", "version": "0" }
            }),
        );
        assert_eq!(init["serverInfo"]["name"], "soar", "{init}");
        assert!(init["capabilities"]["tools"].is_object(), "{init}");
        s.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        s
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("the session is open");
        writeln!(stdin, "{message}").expect("writing to soar mcp");
        stdin.flush().unwrap();
    }

    /// Send a request without waiting for its answer.
    fn send_request(&mut self, method: &str, params: Value) {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
    }

    /// Close the server's stdin, as a client that quits does, and wait for
    /// the server to exit; its exit code.
    fn close(&mut self) -> Option<i32> {
        self.stdin = None;
        let exited = wait_until(Duration::from_secs(300), || {
            self.child.try_wait().unwrap().is_some()
        });
        assert!(exited, "soar mcp did not exit\n{}", self.log());
        self.child.wait().unwrap().code()
    }

    /// Send a request and wait for its response's `result`.
    #[track_caller]
    fn request(&mut self, method: &str, params: Value) -> Value {
        let what = match params["name"].as_str() {
            Some(tool) => format!("{method} {tool}"),
            None => method.to_string(),
        };
        self.send_request(method, params);
        let id = self.next_id;
        let started = Instant::now();
        loop {
            let line = match self.lines.recv_timeout(ANSWER_LIMIT) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => panic!("no answer to {method}\n{}", self.log()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("soar mcp closed stdout during {method}\n{}", self.log())
                }
            };
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!(
                    "not a JSON-RPC line on stdout ({e}): {line}\n{}",
                    self.log()
                )
            });
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            assert!(
                !line.contains(SECRET),
                "the secret reached the client: {line}"
            );
            if message["id"] == id {
                eprintln!("mcp {what}: {} ms", started.elapsed().as_millis());
                return match message.get("result") {
                    Some(result) => result.clone(),
                    None => panic!("{method} failed: {message}\n{}", self.log()),
                };
            }
        }
    }

    /// Call a tool; its result (`isError` decides success).
    #[track_caller]
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        )
    }

    /// Call a tool that must succeed; its structured content.
    #[track_caller]
    fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments);
        assert_eq!(
            result["isError"],
            false,
            "{tool} failed: {result:#}\n{}",
            self.log()
        );
        result["structuredContent"].clone()
    }

    /// Call a tool that must fail; its message (the first text block).
    #[track_caller]
    fn error(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments);
        assert_eq!(result["isError"], true, "{tool} should fail: {result:#}");
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {result}"))
            .to_string()
    }

    fn log(&self) -> String {
        format!("--- soar mcp stderr ---\n{}", self.stderr.lock().unwrap())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tools_list_names_the_six_tools_with_schemas() {
    let p = project("v1");
    let mut s = Session::start(&p);
    let list = s.request("tools/list", json!({}));
    let tools = list["tools"].as_array().expect("a tools array");
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["deploy", "history", "logs", "plan", "rollback", "status"]
    );
    for t in tools {
        let schema = &t["inputSchema"];
        assert_eq!(schema["type"], "object", "{t:#}");
        assert!(schema["properties"].is_object(), "{t:#}");
        let description = t["description"].as_str().unwrap_or_default();
        assert!(description.len() > 80, "a useful description: {t:#}");
    }
    let deploy = tools.iter().find(|t| t["name"] == "deploy").unwrap();
    assert_eq!(deploy["inputSchema"]["required"], json!(["plan_id"]));
    assert!(
        deploy["description"].as_str().unwrap().contains("plan_id"),
        "{deploy:#}"
    );
    let logs = tools.iter().find(|t| t["name"] == "logs").unwrap();
    assert!(
        logs["inputSchema"]["properties"]["lines"].is_object(),
        "{logs:#}"
    );
}

#[test]
fn plan_deploy_status_history_logs_and_rollback() {
    let p = project("v1");
    let mut s = Session::start(&p);

    // Nothing deployed: no release to roll back to, said plainly.
    let e = s.error("rollback", json!({}));
    assert!(e.contains("no earlier release"), "{e}");

    // Plan, then deploy exactly that plan by its id.
    let plan = s.ok("plan", json!({}));
    let id = plan["plan_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{plan}");
    assert_eq!(plan["environment"], "dev");
    assert_eq!(plan["has_changes"], true);
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "release" && c["action"] == "create"),
        "{plan:#}"
    );
    let deployed = s.ok("deploy", json!({ "plan_id": id }));
    let url = deployed["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url), "v1");
    let release = deployed["release"].as_str().unwrap().to_string();
    assert_eq!(deployed["audit"]["command"], "deploy", "{deployed:#}");
    assert_eq!(deployed["audit"]["status"], "ok", "{deployed:#}");

    // The id was used: it cannot deploy again.
    let e = s.error("deploy", json!({ "plan_id": id }));
    assert!(e.contains("single-use"), "{e}");

    // Status and history agree with the deploy, and with the CLI.
    let status = s.ok("status", json!({}));
    let env = &status["environments"][0];
    assert_eq!(env["running"], true, "{status:#}");
    assert_eq!(env["url"], url.as_str());
    assert_eq!(env["release"]["id"], release.as_str());
    let cli = p.status();
    assert_eq!(cli["release"]["id"], release.as_str());
    assert_eq!(cli["url"], url.as_str());
    let history = s.ok("history", json!({ "environment": "dev" }));
    let records = history["records"].as_array().unwrap();
    assert_eq!(records[0]["command"], "deploy", "{history:#}");
    assert_eq!(records[0]["status"], "ok");
    assert_eq!(records[0]["id"], p.history()[0]["id"]);

    // The service's log holds the secret; the tool's answer does not.
    let logs = s.ok("logs", json!({ "lines": 20 }));
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap().contains("starting with key [redacted]")),
        "{logs:#}"
    );
    let raw = std::fs::read_to_string(p.service_root().join("logs").join("service.log"))
        .unwrap_or_default();
    eprintln!(
        "service log on disk has the secret: {}",
        raw.contains(SECRET)
    );

    // A second release, then a rollback to the first.
    write_app(&p, "v2");
    let plan = s.ok("plan", json!({ "environment": "dev" }));
    let v2 = s.ok("deploy", json!({ "plan_id": plan["plan_id"] }));
    assert_eq!(version_at(&url), "v2");
    assert_ne!(v2["release"], release.as_str());
    let back = s.ok("rollback", json!({}));
    assert_eq!(back["release"]["id"], release.as_str(), "{back:#}");
    assert_eq!(version_at(&url), "v1");
    let history = s.ok("history", json!({}));
    let commands: Vec<&str> = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["rollback", "deploy", "deploy"]);
}

#[test]
fn deploy_needs_a_plan_id_that_plan_returned() {
    let p = project("v1");
    let mut s = Session::start(&p);
    let made_up = "0123456789abcdef0123456789abcdef";
    let e = s.error("deploy", json!({ "plan_id": made_up }));
    assert!(e.contains(&format!("no plan {made_up}")), "{e}");
    assert!(e.contains("Call `plan`"), "{e}");
    for bad in ["../../soar.toml", "latest", ""] {
        let e = s.error("deploy", json!({ "plan_id": bad }));
        assert!(e.contains("is not a plan id"), "{bad}: {e}");
    }
    // Arguments outside the schema are the tool's error, not the session's.
    let e = s.error("deploy", json!({}));
    assert!(e.contains("plan_id"), "{e}");
    let e = s.error("deploy", json!({ "plan_id": made_up, "force": true }));
    assert!(e.contains("force"), "{e}");
    // An unknown environment: the CLI's message.
    let e = s.error("plan", json!({ "environment": "prod" }));
    assert!(e.contains("no environment 'prod'"), "{e}");
    // Nothing was deployed, and the session still answers.
    assert!(p.history().is_empty());
    let list = s.request("tools/list", json!({}));
    assert_eq!(list["tools"].as_array().unwrap().len(), 6);
}

#[test]
fn a_stale_plan_is_refused_even_by_another_process() {
    let p = project("v1");
    let (first, second) = {
        let mut s = Session::start(&p);
        let a = s.ok("plan", json!({}))["plan_id"].clone();
        let b = s.ok("plan", json!({}))["plan_id"].clone();
        (a, b)
    };
    // Agents restart their servers: a new process deploys the ids.
    let mut s = Session::start(&p);
    let deployed = s.ok("deploy", json!({ "plan_id": second }));
    let url = deployed["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url), "v1");
    // The first plan was made before that deploy changed the state.
    let e = s.error("deploy", json!({ "plan_id": first }));
    assert!(e.contains("stale"), "{e}");
    assert!(e.contains("call `plan` again"), "{e}");
    let history = p.history();
    assert_eq!(
        history.len(),
        2,
        "the refused deploy is recorded: {history:#?}"
    );
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[1]["status"], "ok");
    assert_eq!(p.status()["release"]["id"], deployed["release"]);
}

#[test]
fn a_deploy_outlives_a_client_that_cancels_and_goes_away() {
    // The hook holds the deploy open, after it is recorded as running, for
    // longer than rmcp waits for a handler's answer when its input ends
    // (5 s): only `soar mcp`'s own wait keeps the deploy alive then.
    let p = project_with("v1", "[hooks]\npre_deploy = \"sleep 7\"\n");
    let mut s = Session::start(&p);
    let id = s.ok("plan", json!({}))["plan_id"].clone();
    s.send_request(
        "tools/call",
        json!({ "name": "deploy", "arguments": { "plan_id": id } }),
    );
    let started = wait_until(Duration::from_secs(120), || {
        p.history()
            .first()
            .is_some_and(|r| r["command"] == "deploy")
    });
    assert!(started, "the deploy never started\n{}", s.log());
    // The client gives up on the call, then quits.
    let request = s.next_id;
    s.send(&json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": { "requestId": request, "reason": "the user pressed stop" }
    }));
    let code = s.close();
    assert_eq!(code, Some(0), "{}", s.log());
    let history = p.history();
    assert_eq!(history[0]["status"], "ok", "{history:#?}");
    assert_eq!(version_at(&p.url()), "v1");
}

/// `soar mcp --server URL` in a checkout of `p` (its soar.toml only), with
/// `token` in `$SOAR_SERVER_TOKEN`.
fn on_server(p: &Project, s: &Served, token: Option<&str>) -> Command {
    let checkout = p.tmp().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::copy(p.config(), checkout.join("soar.toml")).unwrap();
    let mut cmd = crate::support::soar(&p.tmp().join("client"), &checkout);
    cmd.args(["mcp", "--server", &s.url()]);
    if let Some(t) = token {
        cmd.env("SOAR_SERVER_TOKEN", t);
    }
    cmd
}

#[test]
fn on_a_server_the_tools_drive_its_jobs() {
    // The project's `[app] name` is its NAME on the server, as for
    // `soar deploy --server`.
    let p = Project::new(&soar_toml("10s", ""), "v1");
    p.write("app.py", &app_py("v1", Mode::Healthy));
    let served = Served::start(&p, "e2e-app");

    // No token: said before the protocol starts, and nothing runs.
    let out = on_server(&p, &served, None).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SOAR_SERVER_TOKEN"), "{stderr}");

    let mut s = Session::spawn(on_server(&p, &served, Some(&served.deployer)));
    let e = s.error("rollback", json!({}));
    assert!(
        e.contains("HTTP 409") || e.contains("no earlier release"),
        "{e}"
    );

    // Plan on the server, deploy that plan as a job of the server.
    let plan = s.ok("plan", json!({}));
    assert_eq!(plan["environment"], "dev", "{plan:#}");
    assert_eq!(plan["project"], "e2e-app", "{plan:#}");
    assert_eq!(plan["has_changes"], true, "{plan:#}");
    let id = plan["plan_id"].as_str().unwrap().to_string();
    let deployed = s.ok("deploy", json!({ "plan_id": id }));
    let url = deployed["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url), "v1");
    let release = deployed["release"].as_str().unwrap().to_string();
    let job = served.get(&format!(
        "/v1/deploys/{}",
        deployed["job"].as_str().unwrap()
    ));
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(
        job["plan"],
        id.as_str(),
        "the plan applied exactly: {job:#}"
    );

    // Status, history and logs are the server's, and agree with the CLI
    // run where the project lives.
    let status = s.ok("status", json!({}));
    let env = &status["environments"][0];
    assert_eq!(env["release"]["id"], release.as_str(), "{status:#}");
    assert_eq!(p.status()["release"]["id"], release.as_str());
    let history = s.ok("history", json!({ "environment": "dev" }));
    assert_eq!(
        history["records"][0]["id"],
        p.history()[0]["id"],
        "{history:#}"
    );
    let logs = s.ok("logs", json!({ "lines": 20 }));
    assert!(
        logs["lines"].as_array().is_some_and(|l| l
            .iter()
            .any(|l| l.as_str().unwrap().contains("started web"))),
        "{logs:#}"
    );

    // A second release, then a rollback job back to the first.
    p.write("app.py", &app_py("v2", Mode::Healthy));
    let plan = s.ok("plan", json!({ "environment": "dev" }));
    s.ok("deploy", json!({ "plan_id": plan["plan_id"] }));
    assert_eq!(version_at(&url), "v2");
    let e = s.error("rollback", json!({ "to": release }));
    assert!(e.contains("leave `to` out"), "{e}");
    let back = s.ok("rollback", json!({}));
    assert_eq!(back["release"]["id"], release.as_str(), "{back:#}");
    assert_eq!(version_at(&url), "v1");
    let jobs = served.get("/v1/deploys?project=e2e-app");
    let kinds: Vec<&str> = jobs
        .as_array()
        .or_else(|| jobs["jobs"].as_array())
        .unwrap_or_else(|| panic!("{jobs:#}"))
        .iter()
        .filter_map(|j| j["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["rollback", "deploy", "deploy"], "{jobs:#}");

    // A plan id the server never made: its error, as a tool error.
    let e = s.error(
        "deploy",
        json!({ "plan_id": "0123456789abcdef0123456789abcdef" }),
    );
    assert!(e.contains("0123456789abcdef0123456789abcdef"), "{e}");
    assert_eq!(s.close(), Some(0));
}
