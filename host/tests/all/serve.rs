//! `soar serve` through the built binary, over real HTTP on 127.0.0.1: a
//! server with two local-target projects, tokens made with the CLI, deploys
//! submitted as JSON, followed as Server-Sent Events, cancelled, and a
//! server killed with SIGKILL mid-job and restarted; transient failures
//! retried, projects uploaded as bundles, deploy options with server-side
//! secrets, and `/health` probing the hosts the projects name.
//!
//! The client is a few lines of HTTP/1.0 over `TcpStream` (the server
//! closes each response, SSE included, so the body is "read to EOF").

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::e2e::{ENV, Project, soar_toml, version_at, wait_until};
use crate::support::{Listening, listening, soar};
use tar::EntryType::{Regular, Symlink};

/// A hook that holds a deploy until the test lets it go.
const GATE: &str = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";

/// A running `soar serve`; killed (SIGKILL) on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Start `soar serve` with `config`, in `home`'s isolated environment,
    /// on a free port; returns once it listens.
    fn start(home: &Path, config: &Path) -> Self {
        Self::start_with(home, config, &[])
    }

    /// [`Server::start`] with extra environment variables (the server's
    /// own secrets).
    fn start_with(home: &Path, config: &Path, vars: &[(&str, &str)]) -> Self {
        let log = unique(config.with_file_name("serve"));
        let mut serve = soar(home, config.parent().unwrap());
        serve
            .envs(vars.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0", "--server-config"])
            .arg(config);
        let Listening { child, addr, .. } = listening(serve, &log);
        Self { child, addr, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait (up to `limit`) for the server to exit; its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; the status and the body (as JSON when it is JSON).
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> (u16, Value) {
        let (status, _, body) = self.raw(method, path, token, body, &[]);
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            head += &format!("Authorization: Bearer {t}\r\n");
        }
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        let body = body.map(|(ct, b)| {
            head += &format!("Content-Type: {ct}\r\nContent-Length: {}\r\n", b.len());
            b
        });
        head += "\r\n";
        s.write_all(head.as_bytes()).unwrap();
        if let Some(b) = body {
            // The server may answer (413) before reading it all.
            let _ = s.write_all(b);
        }
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(&response)
                )
            });
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head, response[split + 4..].to_vec())
    }

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request("GET", path, Some(token), None)
    }

    fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let text = body.to_string();
        self.request(
            "POST",
            path,
            token,
            Some(("application/json", text.as_bytes())),
        )
    }

    /// Submit a deploy; its id.
    #[track_caller]
    fn submit(&self, token: &str, project: &str, env: &str, priority: i64) -> String {
        let (status, body) = self.post_json(
            "/v1/deploys",
            Some(token),
            &json!({ "project": project, "environment": env, "priority": priority }),
        );
        assert_eq!(status, 202, "{body}\n{}", self.log());
        assert_eq!(body["status"], "queued", "{body}");
        assert!(
            body["created_at"].as_str().unwrap().ends_with('Z'),
            "{body}"
        );
        body["id"].as_str().unwrap().to_string()
    }

    fn job(&self, token: &str, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/deploys/{id}"), token);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Poll until job `id` has `status`.
    #[track_caller]
    fn wait_status(&self, token: &str, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(Duration::from_secs(120), || {
            last = self.job(token, id);
            last["status"] == status
        });
        assert!(
            ok,
            "job never became {status}: {last}\nserver log:\n{}",
            self.log()
        );
        last
    }

    /// `GET /v1/deploys/{id}/events` to its end: (event, data) pairs.
    fn events(&self, token: &str, id: &str, last_id: Option<&str>) -> Vec<(String, Value)> {
        let headers: Vec<(&str, &str)> =
            last_id.map(|l| ("Last-Event-ID", l)).into_iter().collect();
        let (status, head, body) = self.raw(
            "GET",
            &format!("/v1/deploys/{id}/events"),
            Some(token),
            None,
            &headers,
        );
        assert_eq!(status, 200, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("text/event-stream"),
            "{head}"
        );
        let text = String::from_utf8(body).unwrap();
        text.split("\n\n")
            .filter_map(|block| {
                let mut event = "message".to_string();
                let mut data = None;
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(d).unwrap());
                    }
                }
                data.map(|d| (event, d))
            })
            .collect()
    }

    #[track_caller]
    fn alive(&self) {
        let (status, body) = self.request("GET", "/health", None, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let p = path.with_extension(format!("{n}.log"));
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// `soar serve token create ...`: the token (the last stdout line).
fn create_token(home: &Path, config: &Path, args: &[&str]) -> String {
    let out = serve_cli(home, config, &[&["token", "create"][..], args].concat());
    assert_eq!(out.0, Some(0), "{out:?}");
    out.1.lines().last().unwrap().trim().to_string()
}

fn serve_cli(home: &Path, config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = soar(home, config.parent().unwrap())
        .arg("serve")
        .args(args)
        .arg("--server-config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two projects (`web`: a plain service; `gated`: its deploys wait in a
/// pre_deploy hook for `hook-release`) and a server config naming them.
fn setup() -> (Project, Project, PathBuf) {
    setup_with(2, &[])
}

/// [`setup`] with a per-provider limit and extra plain projects.
fn setup_with(per_provider: usize, extra: &[(&str, &Project)]) -> (Project, Project, PathBuf) {
    let web = Project::new(&soar_toml("20s", ""), "v1");
    let gated = Project::new(
        &soar_toml(
            "20s",
            &format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n"),
        ),
        "g1",
    );
    let dir = web.tmp().join("server");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("soar-server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[queue]\nper_provider = {per_provider}\n[projects.web]\npath = {:?}\n[projects.gated]\npath = {:?}\n{}",
            web.root.display().to_string(),
            gated.root.display().to_string(),
            extra
                .iter()
                .map(|(name, p)| format!("[projects.{name}]\npath = {:?}\n", p.root.display().to_string()))
                .collect::<String>()
        ),
    )
    .unwrap();
    (web, gated, config)
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn deploy_over_http_follow_events_and_the_service_answers() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let deployer = create_token(home, &config, &["--scope", "deploy", "--name", "ci"]);
    let reader = create_token(home, &config, &["--scope", "read"]);
    assert!(deployer.starts_with("soar_"), "{deployer}");
    let server = Server::start(home, &config);
    server.alive();
    if let Some(kib) = rss_kib(server.child.id()) {
        eprintln!("figure: server RSS idle {kib} KiB");
    }

    // Capabilities: version, providers and their contract, artifact kinds.
    let (status, caps) = server.get("/capabilities", &reader);
    assert_eq!(status, 200, "{caps}");
    assert_eq!(caps["version"], env!("CARGO_PKG_VERSION"));
    let local = caps["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "local")
        .unwrap_or_else(|| panic!("no local provider: {caps}"));
    assert_eq!(local["contract"], "soar:plugin@0.2.0", "{caps}");
    assert!(
        caps["artifact_kinds"]
            .as_array()
            .unwrap()
            .contains(&json!("script"))
    );

    // The OpenAPI 3.1 document, with a token.
    let (status, doc) = server.get("/v1/openapi.json", &reader);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/deploys"]["post"].is_object(), "{doc}");
    assert!(
        doc["components"]["schemas"]["DeployRequest"].is_object(),
        "{doc}"
    );
    assert_eq!(server.request("GET", "/v1/openapi.json", None, None).0, 401);

    // Submit, then follow: the stream replays from the start, follows live,
    // and ends with the job's status.
    let submitted = Instant::now();
    let id = server.submit(&deployer, "web", ENV, 0);
    let mut running_after = None;
    wait_until(Duration::from_secs(60), || {
        let s = server.job(&reader, &id)["status"].clone();
        if s != "queued" && running_after.is_none() {
            running_after = Some(submitted.elapsed());
        }
        s != "queued"
    });
    eprintln!("figure: submit -> not queued in {running_after:?} (polled every 20 ms)");
    let events = server.events(&reader, &id, None);
    let (last_kind, end) = events.last().unwrap();
    assert_eq!(last_kind, "end", "{events:?}");
    assert_eq!(end["status"], "succeeded", "{events:?}\n{}", server.log());
    let deployed = events
        .iter()
        .find(|(k, d)| k == "progress" && d["type"] == "deployed")
        .unwrap_or_else(|| panic!("no deployed event: {events:?}"));
    let url = deployed.1["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url), "v1");
    eprintln!("figure: submit -> succeeded in {:?}", submitted.elapsed());

    // The job record agrees, and so does the CLI's own view.
    let job = server.job(&reader, &id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["url"], url.as_str(), "{job}");
    assert_eq!(job["actor"], "ci", "{job}");
    assert_eq!(job["exit_code"], 0, "{job}");
    assert_eq!(
        job["events"].as_array().unwrap().len(),
        events.len() - 1,
        "{job}"
    );
    assert_eq!(web.url(), url);
    // ... and the project's audit trail: the job carries the record its
    // deploy wrote, phases and all, the same `soar history` shows.
    let audit = &job["audit"];
    assert_eq!(audit["command"], "deploy", "{job}");
    // The audit trail names the token that submitted the deploy.
    assert_eq!(audit["actor"], "api:ci", "{job}");
    assert!(!audit["phases"].as_array().unwrap().is_empty(), "{job}");
    assert_eq!(audit["id"], web.history()[0]["id"], "{job}");

    // A late subscriber resuming after event 2 gets the rest only.
    let resumed = server.events(&reader, &id, Some("2"));
    assert_eq!(resumed.len(), events.len() - 2, "{resumed:?}");

    // A second deploy of unchanged files converges (nothing to change).
    let again = server.submit(&deployer, "web", ENV, 0);
    let events = server.events(&deployer, &again, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    assert_eq!(version_at(&url), "v1");

    // Status, history and logs say what the CLI says.
    let env_path = format!("/v1/environments/web/{ENV}");
    let (status, body) = server.get(&env_path, &reader);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["running"].clone(), body["url"].clone()),
        (json!(true), json!(url)),
        "{body}"
    );
    let (status, body) = server.get(&format!("{env_path}/history?limit=10"), &reader);
    assert_eq!(status, 200, "{body}");
    let cli_history = web.history();
    assert_eq!(body.as_array().unwrap().len(), cli_history.len(), "{body}");
    assert_eq!(body[0]["id"], cli_history[0]["id"], "{body}");
    let (status, body) = server.get(&format!("{env_path}/logs?lines=5"), &reader);
    assert_eq!(status, 200, "{body}");
    assert!(body["lines"].is_array(), "{body}");
    // The same by service (project NAME), as issue 15 names the routes.
    let (status, by_service) = server.get("/v1/services/web/history?limit=10", &reader);
    assert_eq!(status, 200, "{by_service}");
    assert_eq!(by_service.as_array().unwrap().len(), cli_history.len());
    let (status, body) = server.get("/v1/services/web/logs?lines=5", &reader);
    assert_eq!(status, 200, "{body}");
    assert!(body["lines"].is_array(), "{body}");
    assert_eq!(server.get("/v1/services/nope/logs", &reader).0, 404);
    for (path, want) in [
        (format!("{env_path}/history?limit=many"), 400),
        (format!("{env_path}/logs?lines=0"), 400),
        ("/v1/environments/web/prod".to_string(), 404),
        (format!("/v1/environments/nope/{ENV}"), 404),
    ] {
        let (status, body) = server.get(&path, &reader);
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["hint"].is_string(), "{path}: {body}");
    }

    // One release only: nothing to roll back to (409). A read token may not.
    let rollback = format!("{env_path}/rollback");
    let (status, body) = server.request("POST", &rollback, Some(&deployer), None);
    assert_eq!(status, 409, "{body}");
    let (status, _) = server.request("POST", &rollback, Some(&reader), None);
    assert_eq!(status, 403);
    // v2, then roll back over HTTP: v1 answers again.
    web.write_app("v2", crate::support::e2e::Mode::Healthy);
    let v2 = server.submit(&deployer, "web", ENV, 0);
    let events = server.events(&reader, &v2, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    assert_eq!(version_at(&web.url()), "v2");
    // (by the id of a deploy of that environment, as the deployer spec has it)
    let by_deploy = format!("/v1/deploys/{v2}/rollback");
    let (status, body) = server.request("POST", &by_deploy, Some(&deployer), None);
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    let events = server.events(&reader, id, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    let job = server.job(&reader, id);
    assert_eq!(job["kind"], "rollback");
    assert_eq!(job["audit"]["command"], "rollback", "{job}");
    assert_eq!(version_at(&web.url()), "v1");

    // The deployer spec's own request, on the compatibility route.
    let spec = json!({
        "service_path": "web", "service_name": "web", "droplet_id": 0,
        "service_port": 8080, "deployment_method": "systemd",
        "environment_vars": {}, "auto_register": true,
    });
    let (status, body) = server.post_json("/deploy", Some(&deployer), &spec);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending", "{body}");
    let id = body["deploy_job_id"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    assert!(wait_until(Duration::from_secs(60), || {
        job = server.get(&format!("/deploy/{id}"), &reader).1;
        job["status"] == "completed" || job["status"] == "failed"
    }));
    assert_eq!(
        (job["status"].as_str(), job["success"].as_bool()),
        (Some("completed"), Some(true)),
        "{job}"
    );
    assert_eq!(job["service_url"], web.url().as_str(), "{job}");
    let phases = job["phases"].as_array().unwrap();
    assert!(
        !phases.is_empty() && phases.iter().all(|p| p["status"] == "success"),
        "{job}"
    );
    let mut with_vars = spec.clone();
    with_vars["environment_vars"] = json!({ "API_KEY": "value" });
    let mut elsewhere = spec.clone();
    elsewhere["service_path"] = json!("/etc");
    for (bad, want) in [(with_vars, 400), (elsewhere, 404)] {
        let (status, body) = server.post_json("/deploy", Some(&deployer), &bad);
        assert_eq!(status, want, "{body}");
        assert!(!body.to_string().contains("value\""), "{body}");
    }
    assert_eq!(server.post_json("/deploy", None, &spec).0, 401);
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn bad_requests_are_refused_with_a_hint_and_the_server_lives_on() {
    let broken = Project::new("[app]\nname = \"x\"\nbogus = 1\n", "v1");
    let (web, _gated, config) = setup_with(2, &[("broken", &broken)]);
    // Small bundle caps, and one server-side secret.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "[bundles]\nmax_bytes = 65536\nmax_unpacked_bytes = 1048576\n[secrets]\nKNOWN = \"SOAR_TEST_KNOWN_SECRET\"\n";
    std::fs::write(&config, text).unwrap();
    let home = web.tmp();
    let deployer = create_token(home, &config, &["--scope", "deploy"]);
    let reader = create_token(home, &config, &["--scope", "read"]);
    let gated_only = create_token(home, &config, &["--scope", "deploy", "--project", "gated"]);
    let revoked = create_token(home, &config, &["--scope", "admin", "--name", "old"]);
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    let (code, _, err) = serve_cli(home, &config, &["token", "revoke", &revoked_id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, list, _) = serve_cli(home, &config, &["token", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(!list.contains(&deployer[8..]), "token list shows no secret");
    assert!(list.contains("\"revoked_at\":\"20"), "{list}");
    // A project a token is limited to must exist.
    let (code, _, err) = serve_cli(
        home,
        &config,
        &["token", "create", "--scope", "read", "--project", "nope"],
    );
    assert_eq!(code, Some(1), "{err}");

    let server = Server::start(home, &config);
    let ok = json!({ "project": "web", "environment": ENV });
    let big = format!("{{\"project\": \"{}\"}}", "x".repeat(2 << 20));
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<(&'a str, Vec<u8>)>,
        u16,
        &'a str,
    );
    let json = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let gz = |entries: &[(&str, tar::EntryType, &[u8])]| Some(("application/gzip", targz(entries)));
    let toml = soar_toml("20s", "");
    let toml = toml.as_bytes();
    let upload = "/v1/bundles?project=up";
    let zeros = vec![0u8; 2 << 20];
    let deploy_with = |extra: Value| {
        let mut body = json!({ "project": "web", "environment": ENV });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json(body)
    };
    let cases: Vec<Case> = vec![
        (
            "bundle with path traversal",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml), ("../evil", Regular, b"x")]),
            400,
            "climbs out",
        ),
        (
            "bundle with an absolute path",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml), ("/tmp/evil", Regular, b"x")]),
            400,
            "absolute",
        ),
        (
            "symlink escaping the bundle",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[
                ("soar.toml", Regular, toml),
                ("app.py", Symlink, b"/etc/passwd"),
            ]),
            400,
            "outside the bundle",
        ),
        (
            "symlink climbing out of the bundle",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml), ("a/up", Symlink, b"../../..")]),
            400,
            "outside the bundle",
        ),
        (
            "device file in a bundle",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[
                ("soar.toml", Regular, toml),
                ("tty", tar::EntryType::Char, b""),
            ]),
            400,
            "Char",
        ),
        (
            "oversized bundle",
            "POST",
            upload,
            Some(deployer.as_str()),
            Some(("application/gzip", noise(100 * 1024))),
            413,
            "at most 65536 bytes",
        ),
        (
            "bundle unpacking past its cap",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml), ("zeros", Regular, &zeros)]),
            413,
            "unpacks to more than",
        ),
        (
            "bundle without soar.toml",
            "POST",
            upload,
            Some(deployer.as_str()),
            gz(&[("app.py", Regular, b"print()")]),
            400,
            "no soar.toml",
        ),
        (
            "bundle that is not a tar.gz",
            "POST",
            upload,
            Some(deployer.as_str()),
            Some(("application/gzip", b"plain text".to_vec())),
            400,
            "tar.gz",
        ),
        (
            "bundle over a configured project",
            "POST",
            "/v1/bundles?project=web",
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml)]),
            409,
            "server config",
        ),
        (
            "bundle NAME that is a path",
            "POST",
            "/v1/bundles?project=..%2Fetc",
            Some(deployer.as_str()),
            gz(&[("soar.toml", Regular, toml)]),
            400,
            "not valid",
        ),
        (
            "read token uploading",
            "POST",
            upload,
            Some(reader.as_str()),
            gz(&[("soar.toml", Regular, toml)]),
            403,
            "scope",
        ),
        (
            "unknown secret name",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            deploy_with(json!({"secrets": {"API_TOKEN": "NOPE"}})),
            400,
            "no server secret named \"NOPE\"",
        ),
        (
            "secret variable that is not a name",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            deploy_with(json!({"secrets": {"api token": "KNOWN"}})),
            400,
            "not a variable name",
        ),
        (
            "secret the server does not hold",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            deploy_with(json!({"secrets": {"API_TOKEN": "KNOWN"}})),
            400,
            "no value on this server",
        ),
        (
            "auto_register without a [register]",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            deploy_with(json!({"auto_register": true})),
            400,
            "[register]",
        ),
        (
            "auto_register not a boolean",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            deploy_with(json!({"auto_register": "yes"})),
            400,
            "",
        ),
        (
            "no token",
            "POST",
            "/v1/deploys",
            None,
            json(ok.clone()),
            401,
            "bearer",
        ),
        (
            "forged token",
            "POST",
            "/v1/deploys",
            Some("soar_abc_def"),
            json(ok.clone()),
            401,
            "bearer",
        ),
        (
            "not a soar token",
            "GET",
            "/capabilities",
            Some("hello"),
            None,
            401,
            "bearer",
        ),
        (
            "revoked token",
            "GET",
            "/capabilities",
            Some(revoked.as_str()),
            None,
            401,
            "bearer",
        ),
        (
            "no token for capabilities",
            "GET",
            "/capabilities",
            None,
            None,
            401,
            "bearer",
        ),
        (
            "read token deploying",
            "POST",
            "/v1/deploys",
            Some(reader.as_str()),
            json(ok.clone()),
            403,
            "scope",
        ),
        (
            "read token cancelling",
            "POST",
            "/v1/deploys/abc/cancel",
            Some(reader.as_str()),
            None,
            403,
            "scope",
        ),
        (
            "token for another project",
            "POST",
            "/v1/deploys",
            Some(gated_only.as_str()),
            json(ok.clone()),
            403,
            "limited",
        ),
        (
            "unknown project",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "nope", "environment": ENV})),
            404,
            "no project",
        ),
        (
            "a path as project",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "../../etc", "environment": ENV})),
            404,
            "no project",
        ),
        (
            "unknown environment",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "web", "environment": "prod"})),
            400,
            "no environment",
        ),
        (
            "malformed JSON",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            Some(("application/json", b"{\"project\": ".to_vec())),
            400,
            "",
        ),
        (
            "not an object",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!([1, 2])),
            400,
            "",
        ),
        (
            "missing environment",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "web"})),
            400,
            "environment",
        ),
        (
            "unknown field",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "web", "environment": ENV, "path": "/etc"})),
            400,
            "unknown field",
        ),
        (
            "priority out of range",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "web", "environment": ENV, "priority": 1_000_000})),
            400,
            "priority",
        ),
        (
            "priority not a number",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            json(json!({"project": "web", "environment": ENV, "priority": "high"})),
            400,
            "",
        ),
        (
            "no content type",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            Some(("text/plain", ok.to_string().into_bytes())),
            415,
            "Content-Type",
        ),
        (
            "oversized body",
            "POST",
            "/v1/deploys",
            Some(deployer.as_str()),
            Some(("application/json", big.into_bytes())),
            413,
            "at most",
        ),
        (
            "unknown deploy",
            "GET",
            "/v1/deploys/0123456789abcdef",
            Some(reader.as_str()),
            None,
            404,
            "no deploy",
        ),
        (
            "events of an unknown deploy",
            "GET",
            "/v1/deploys/nope/events",
            Some(reader.as_str()),
            None,
            404,
            "no deploy",
        ),
        (
            "cancel an unknown deploy",
            "POST",
            "/v1/deploys/nope/cancel",
            Some(deployer.as_str()),
            None,
            404,
            "no deploy",
        ),
        (
            "unknown route",
            "GET",
            "/v1/nothing",
            Some(reader.as_str()),
            None,
            404,
            "no such route",
        ),
    ];
    for (what, method, path, token, body, want, needle) in cases {
        let (status, answer) = server.request(
            method,
            path,
            token,
            body.as_ref().map(|(ct, b)| (*ct, b.as_slice())),
        );
        assert_eq!(status, want, "{what}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error in {answer}"));
        let hint = answer["hint"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no hint in {answer}"));
        assert!(!hint.is_empty(), "{what}: {answer}");
        assert!(
            format!("{error} {hint}").contains(needle),
            "{what}: {needle:?} not in {answer}"
        );
        for t in [&deployer, &reader, &revoked] {
            assert!(
                !answer.to_string().contains(t.as_str()),
                "{what}: a token in {answer}"
            );
        }
        server.alive();
    }
    // A project whose soar.toml is invalid: 400 with `soar validate`'s
    // diagnostics, paths relative to the project.
    let (status, answer) = server.post_json(
        "/v1/deploys",
        Some(&deployer),
        &json!({ "project": "broken", "environment": ENV }),
    );
    assert_eq!(status, 400, "{answer}");
    let diagnostics = answer["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(!diagnostics.is_empty(), "{answer}");
    assert!(
        diagnostics[0].as_str().unwrap().starts_with("soar.toml:"),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains(broken.tmp().to_str().unwrap()),
        "{answer}"
    );
    server.alive();

    // Nothing was queued by any of them, and no bundle was kept.
    let (_, health) = server.request("GET", "/health", None, None);
    assert_eq!(health["queue"]["queued"], 0, "{health}");
    assert_eq!(health["queue"]["running"], 0, "{health}");
    let bundles = config.with_file_name(".soar-server").join("bundles");
    let left: Vec<_> = std::fs::read_dir(&bundles)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!web.tmp().join("evil").exists() && !Path::new("/tmp/evil").exists());
}

/// A tar.gz of `entries` (path, kind, contents or link target). Headers
/// are written raw, so the paths a careful archiver refuses (`..`,
/// absolute) can be made too.
fn targz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(if path.ends_with(".py") { 0o755 } else { 0o644 });
        let body: &[u8] = if kind.is_symlink() || kind.is_hard_link() {
            h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            b""
        } else {
            data
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// `n` bytes gzip cannot shrink (a xorshift stream).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn queue_serialises_an_environment_cancel_and_survives_a_kill() {
    let (web, gated, config) = setup();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "admin"]);
    let mut server = Server::start(home, &config);

    // The first gated deploy runs and waits in its hook; a second one of the
    // same environment stays queued behind it.
    let first = server.submit(&token, "gated", ENV, 0);
    server.wait_status(&token, &first, "running");
    assert!(
        wait_until(Duration::from_secs(60), || gated
            .root
            .join("hook-started")
            .exists()),
        "{}",
        server.log()
    );
    let second = server.submit(&token, "gated", ENV, 5);
    // Another project's environment is not held up meanwhile.
    let other = server.submit(&token, "web", ENV, 0);
    let events = server.events(&token, &other, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    assert_eq!(server.job(&token, &second)["status"], "queued");

    // Cancel the queued one: it never runs.
    let (status, body) = server.request(
        "POST",
        &format!("/v1/deploys/{second}/cancel"),
        Some(token.as_str()),
        None,
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("cancelled")),
        "{body}"
    );
    let (status, body) = server.request(
        "POST",
        &format!("/v1/deploys/{second}/cancel"),
        Some(token.as_str()),
        None,
    );
    assert_eq!(status, 409, "{body}");
    let events = server.events(&token, &second, None);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["status"], "cancelled");

    // Cancel the running one: SIGTERM to its deploy.
    let (status, body) = server.request(
        "POST",
        &format!("/v1/deploys/{first}/cancel"),
        Some(token.as_str()),
        None,
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("cancelling")),
        "{body}"
    );
    let job = server.wait_status(&token, &first, "cancelled");
    assert!(job["finished_at"].is_string(), "{job}");

    // A third runs, and the server dies under it (SIGKILL): after a
    // restart, it is `interrupted`, with its events kept.
    std::fs::remove_file(gated.root.join("hook-started")).unwrap();
    let third = server.submit(&token, "gated", ENV, 0);
    server.wait_status(&token, &third, "running");
    assert!(wait_until(Duration::from_secs(60), || gated
        .root
        .join("hook-started")
        .exists()));
    server.kill();
    let server = Server::start(home, &config);
    let job = server.job(&token, &third);
    assert_eq!(job["status"], "interrupted", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("Submit it again"),
        "{job}"
    );
    let events = server.events(&token, &third, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "interrupted",
        "{events:?}"
    );
    // Earlier jobs kept their outcome across the restart.
    assert_eq!(server.job(&token, &second)["status"], "cancelled");
    assert_eq!(server.job(&token, &other)["status"], "succeeded");

    // The environment converges when submitted again (the gate open now).
    std::fs::write(gated.root.join("hook-release"), "").unwrap();
    let fourth = server.submit(&token, "gated", ENV, 0);
    let events = server.events(&token, &fourth, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}\n{}",
        server.log()
    );
    assert_eq!(version_at(&gated.url()), "g1");
}

#[test]
fn priority_orders_the_queue_within_the_per_provider_limit() {
    let low = Project::new(&soar_toml("20s", ""), "low");
    let high = Project::new(&soar_toml("20s", ""), "high");
    let (web, gated, config) = setup_with(1, &[("low", &low), ("high", &high)]);
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let gated_reader = create_token(home, &config, &["--scope", "read", "--project", "gated"]);
    let server = Server::start(home, &config);

    // The one `local` slot is held by a gated deploy...
    let gate = server.submit(&token, "gated", ENV, 0);
    server.wait_status(&token, &gate, "running");
    // ... so other environments wait although they are free.
    let b = server.submit(&token, "low", ENV, -5);
    let c = server.submit(&token, "high", ENV, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.job(&token, &b)["status"], "queued");
    assert_eq!(server.job(&token, &c)["status"], "queued");
    let (_, health) = server.request("GET", "/health", None, None);
    assert_eq!(
        (
            health["queue"]["queued"].as_i64(),
            health["queue"]["running"].as_i64()
        ),
        (Some(2), Some(1)),
        "{health}"
    );

    std::fs::write(gated.root.join("hook-release"), "").unwrap();
    for id in [&gate, &b, &c] {
        let events = server.events(&token, id, None);
        assert_eq!(
            events.last().unwrap().1["status"],
            "succeeded",
            "{events:?}"
        );
    }
    let (g, b, c) = (
        server.job(&token, &gate),
        server.job(&token, &b),
        server.job(&token, &c),
    );
    let at = |j: &Value, k: &str| j[k].as_str().unwrap().to_string();
    // The higher priority ran first, each after the previous one ended:
    // never two `local` jobs at once.
    assert!(at(&g, "finished_at") <= at(&c, "started_at"), "{g}\n{c}");
    assert!(at(&c, "finished_at") <= at(&b, "started_at"), "{c}\n{b}");
    assert_eq!(version_at(&high.url()), "high");
    assert_eq!(version_at(&low.url()), "low");

    // GET /v1/deploys lists them newest first, filtered, and only what the
    // token may see.
    let ids = |path: &str, token: &str| -> Vec<String> {
        let (code, body) = server.get(path, token);
        assert_eq!(code, 200, "{path}: {body}");
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (gate_id, b_id, c_id) = (at(&g, "id"), at(&b, "id"), at(&c, "id"));
    let (gate_id, b_id, c_id) = (gate_id.as_str(), b_id.as_str(), c_id.as_str());
    assert_eq!(ids("/v1/deploys", &token), [c_id, b_id, gate_id]);
    assert_eq!(ids("/v1/deploys?project=low", &token), [b_id]);
    assert_eq!(
        ids("/v1/deploys?status=succeeded&limit=2", &token),
        [c_id, b_id]
    );
    assert_eq!(
        ids("/v1/deploys?environment=nowhere", &token),
        Vec::<String>::new()
    );
    assert_eq!(ids("/v1/deploys", &gated_reader), [gate_id]);
    assert_eq!(
        ids("/v1/deploys?project=low", &gated_reader),
        Vec::<String>::new()
    );
    for bad in [
        "/v1/deploys?status=done",
        "/v1/deploys?limit=0",
        "/v1/deploys?limit=x",
    ] {
        let (code, body) = server.get(bad, &token);
        assert_eq!(code, 400, "{bad}: {body}");
    }
}

#[test]
fn sigterm_stops_taking_jobs_and_waits_for_the_running_one() {
    let (web, gated, config) = setup();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("per_provider = 2\n", "per_provider = 2\nmax_queued = 1\n"),
    )
    .unwrap();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let mut server = Server::start(home, &config);
    let running = server.submit(&token, "gated", ENV, 0);
    server.wait_status(&token, &running, "running");
    assert!(wait_until(Duration::from_secs(60), || gated
        .root
        .join("hook-started")
        .exists()));
    let queued = server.submit(&token, "gated", ENV, 0);
    // `max_queued = 1`: the queue is full now.
    let (status, body) = server.post_json(
        "/v1/deploys",
        Some(&token),
        &json!({ "project": "web", "environment": ENV }),
    );
    assert_eq!(status, 429, "{body}");
    assert!(body["hint"].is_string(), "{body}");

    // SAFETY: kill(2) on the server this test started.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("stopping")),
        "{}",
        server.log()
    );
    // Still answering, but taking no new job.
    server.alive();
    let (status, body) = server.post_json(
        "/v1/deploys",
        Some(&token),
        &json!({ "project": "web", "environment": ENV }),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["hint"].as_str().unwrap().contains("submit again"),
        "{body}"
    );
    assert_eq!(server.wait_exit(Duration::from_millis(300)), None);

    // The running job finishes; then the server exits, 0.
    std::fs::write(gated.root.join("hook-release"), "").unwrap();
    assert_eq!(
        server.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        server.log()
    );

    // After a restart: the job that ran succeeded; the queued one runs now.
    let server = Server::start(home, &config);
    assert_eq!(server.job(&token, &running)["status"], "succeeded");
    let events = server.events(&token, &queued, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
}

/// Figures for issue 15's benchmarks (run with `--ignored --nocapture`):
/// a converged deploy run by the CLI against the same deploy as jobs, 100
/// of them queued at once on one environment (so one at a time), and the
/// server's RSS idle and with them queued.
#[test]
#[ignore = "a benchmark: prints figures"]
fn bench_100_converged_jobs() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    web.soar(&["deploy", "--yes"]).ok();
    let runs = 10;
    let started = Instant::now();
    for _ in 0..runs {
        web.soar(&["deploy", "--yes", "--json"]).ok();
    }
    let cli = started.elapsed() / runs;
    eprintln!("figure: CLI converged deploy {cli:?} each (mean of {runs})");

    let server = Server::start(home, &config);
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(server.child.id());
    let n = 100;
    let started = Instant::now();
    // Submitted while the worker drains; each submission takes a few ms.
    let ids: Vec<String> = (0..n)
        .map(|_| server.submit(&token, "web", ENV, 0))
        .collect();
    let submitted = started.elapsed();
    let queued_rss = rss_kib(server.child.id());
    let last = ids.last().unwrap();
    let events = server.events(&token, last, None);
    assert_eq!(events.last().unwrap().1["status"], "succeeded");
    let drained = started.elapsed();
    for id in &ids {
        assert_eq!(server.job(&token, id)["status"], "succeeded", "{id}");
    }
    let per_job = drained / n;
    eprintln!(
        "figure: {n} jobs submitted in {submitted:?}; drained in {drained:?}: {:.2} jobs/s, {per_job:?} per job, {:?} over the CLI's",
        n as f64 / drained.as_secs_f64(),
        per_job.saturating_sub(cli)
    );
    eprintln!("figure: server RSS idle {idle:?} KiB, with {n} jobs queued {queued_rss:?} KiB");
}

/// A self-signed end-entity certificate for 127.0.0.1 (P-256, valid until
/// 2126), made with `openssl req -x509 -newkey ec -pkeyopt
/// ec_paramgen_curve:prime256v1 -nodes -days 36500 -addext
/// subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE
/// -addext extendedKeyUsage=serverAuth`. Test-only.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBrjCCAVSgAwIBAgIUXiIIxh2rZy6qq8T3+tG4tSI2bgkwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPc29hci1zZXJ2ZS10ZXN0MCAXDTI2MTIwNzAwMzY0OFoYDzIx\nMjYxMTEzMDAzNjQ4WjAaMRgwFgYDVQQDDA9zb2FyLXNlcnZlLXRlc3QwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9fhIE+Q06\n0d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEro3YwdDAdBgNVHQ4E\nFgQU/a+3JWqM/Lo9ND1locXnEPJHE6YwHwYDVR0jBBgwFoAU/a+3JWqM/Lo9ND1l\nocXnEPJHE6YwDwYDVR0RBAgwBocEfwAAATAMBgNVHRMBAf8EAjAAMBMGA1UdJQQM\nMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gAMEUCIQDrOReIx0VaaBeSnxaB1sYI\nIlm7vM771w752llLPhKDcAIgBNRvHNrlPA20cnZiGaZRypRSHApdUSJb0o+Ch0pS\nV5U=\n-----END CERTIFICATE-----\n";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxHaj2L3Cy1j/rU7D\nZIhZmabaq0dW0R7JTdT1yogvMCuhRANCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9\nfhIE+Q060d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEr\n-----END PRIVATE KEY-----\n";

#[test]
fn tls_from_cert_and_key_files() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let dir = config.parent().unwrap();
    std::fs::write(dir.join("server.crt"), TEST_CERT).unwrap();
    std::fs::write(dir.join("server.key"), TEST_KEY).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n";
    std::fs::write(&config, text).unwrap();
    let token = create_token(home, &config, &["--scope", "read"]);
    let server = Server::start(home, &config);
    let base = format!("https://{}", server.addr);

    // Plain HTTP to the TLS port gets no HTTP answer, and harms nothing.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    soar::tls::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(TEST_CERT.as_bytes()).unwrap()])
            .build()
            .unwrap();
        let health: Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok", "{health}");
        let r = client
            .get(format!("{base}/capabilities"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = client
            .get(format!("{base}/capabilities"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // A client that does not trust the certificate is refused.
        let untrusting = reqwest::Client::builder()
            .tls_certs_only([])
            .build()
            .unwrap();
        assert!(
            untrusting
                .get(format!("{base}/health"))
                .send()
                .await
                .is_err()
        );
    });
}

#[test]
fn plan_then_deploy_exactly_that_plan() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let deployer = create_token(home, &config, &["--scope", "deploy"]);
    let reader = create_token(home, &config, &["--scope", "read"]);
    let server = Server::start(home, &config);
    let request = json!({ "project": "web", "environment": ENV });

    let (status, plan) = server.post_json("/v1/plans", Some(&deployer), &request);
    assert_eq!(status, 201, "{plan}\n{}", server.log());
    let id = plan["id"].as_str().unwrap().to_string();
    assert!(
        plan["plan"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["type"] == "planned_change" && l["change"]["kind"] == "release"),
        "{plan}"
    );
    // Planning changed nothing.
    assert!(web.history().is_empty());

    let mut with_plan = request.clone();
    with_plan["plan"] = json!(id);
    let (status, body) = server.post_json("/v1/deploys", Some(&deployer), &with_plan);
    assert_eq!(status, 202, "{body}");
    let job_id = body["id"].as_str().unwrap().to_string();
    let events = server.events(&reader, &job_id, None);
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    assert_eq!(server.job(&reader, &job_id)["plan"], id.as_str());
    assert_eq!(version_at(&web.url()), "v1");

    // The same plan again is stale now: the deploy refuses it.
    let (status, body) = server.post_json("/v1/deploys", Some(&deployer), &with_plan);
    assert_eq!(status, 202, "{body}");
    let job = server.wait_status(&deployer, body["id"].as_str().unwrap(), "failed");
    assert!(
        job["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{job}"
    );

    // Refusals.
    with_plan["plan"] = json!("0000000000000000");
    let (status, body) = server.post_json("/v1/deploys", Some(&deployer), &with_plan);
    assert_eq!(status, 404, "{body}");
    let (status, _) = server.post_json("/v1/plans", Some(&reader), &request);
    assert_eq!(status, 403);
    let (status, body) = server.post_json(
        "/v1/plans",
        Some(&deployer),
        &json!({ "project": "nope", "environment": ENV }),
    );
    assert_eq!(status, 404, "{body}");
    server.alive();
}

/// A loopback HTTP server answering the n-th request with the n-th of
/// `statuses` (the last one repeating), counting what it saw: a dependency
/// or registry whose answers the test decides.
struct FakeHttp {
    addr: SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeHttp {
    fn start(statuses: &[u16]) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen, statuses) = (hits.clone(), statuses.to_vec());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let _ = reader.read_exact(&mut vec![0; length]);
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status = statuses[n.min(statuses.len() - 1)];
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Service Unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                );
            }
        });
        Self { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `[queue]` settings added to a server config made by [`setup_with`].
fn with_queue(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let (head, tail) = text.split_once("[queue]\n").unwrap();
    std::fs::write(config, format!("{head}[queue]\n{lines}{tail}")).unwrap();
}

/// Follow job `id` to its end; its record.
#[track_caller]
fn finished(server: &Server, token: &str, id: &str) -> Value {
    let events = server.events(token, id, None);
    assert_eq!(events.last().unwrap().0, "end", "{events:?}");
    server.job(token, id)
}

#[test]
fn a_transient_failure_is_retried_and_every_attempt_is_recorded() {
    // A dependency the pre_deploy hook checks: down (503) once, then up.
    let dependency = FakeHttp::start(&[503, 200]);
    let check = |addr: SocketAddr| {
        format!(
            "[hooks]\npre_deploy = '''python3 -c \"import urllib.request; urllib.request.urlopen('http://{addr}/ready', timeout=10)\"'''\n"
        )
    };
    let flaky = Project::new(&soar_toml("20s", &check(dependency.addr)), "r1");
    // One that stays down: retried until the retries run out.
    let down = FakeHttp::start(&[503]);
    let unavailable = Project::new(&soar_toml("20s", &check(down.addr)), "d1");
    // One that fails for good: no retry.
    let wrong = Project::new(
        &soar_toml(
            "20s",
            "[hooks]\npre_deploy = \"echo 'the input is wrong' >&2; exit 1\"\n",
        ),
        "w1",
    );
    let (web, _gated, config) = setup_with(
        2,
        &[
            ("flaky", &flaky),
            ("unavailable", &unavailable),
            ("wrong", &wrong),
        ],
    );
    with_queue(&config, "retries = 2\nbackoff = \"200ms\"\n");
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let server = Server::start(home, &config);

    let id = server.submit(&token, "flaky", ENV, 0);
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "succeeded", "{job}\n{}", server.log());
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{job}");
    let first = &attempts[0];
    assert!(first["error"].as_str().unwrap().contains("503"), "{first}");
    assert_eq!(first["transient"], "server error (5xx)", "{first}");
    assert_eq!(first["exit_code"], 1, "{first}");
    assert!(attempts[1]["error"].is_null(), "{job}");
    assert!(
        first["finished_at"].as_str().unwrap() <= attempts[1]["started_at"].as_str().unwrap(),
        "{job}"
    );
    assert_eq!(job["started_at"], first["started_at"], "{job}");
    assert!(job["retry_at"].is_null(), "{job}");
    let retrying: Vec<&Value> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["type"] == "retrying")
        .collect();
    assert_eq!(retrying.len(), 1, "{job}");
    assert_eq!(retrying[0]["data"]["attempt"], 1, "{job}");
    assert_eq!(retrying[0]["data"]["delay_ms"], 200, "{job}");
    assert_eq!(dependency.hits(), 2);
    assert_eq!(version_at(job["url"].as_str().unwrap()), "r1");

    // Still down after 1 + 2 attempts: failed, each attempt transient.
    let id = server.submit(&token, "unavailable", ENV, 0);
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "failed", "{job}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{job}");
    assert!(attempts.iter().all(|a| a["transient"].is_string()), "{job}");
    assert_eq!(down.hits(), 3);

    // A permanent failure fails at once.
    let id = server.submit(&token, "wrong", ENV, 0);
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "failed", "{job}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{job}");
    assert!(attempts[0]["transient"].is_null(), "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("the input is wrong"),
        "{job}"
    );
}

#[test]
fn deploy_options_skip_the_registry_and_add_server_secrets() {
    const VALUE: &str = "s3cr3t-value-0451";
    let registry = FakeHttp::start(&[200]);
    let reg = Project::new(
        &soar_toml(
            "20s",
            &format!("[register]\nurl = \"http://{}/services\"\n", registry.addr),
        ),
        "o1",
    );
    let (web, _gated, config) = setup_with(2, &[("reg", &reg)]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "[secrets]\nAPI_TOKEN_SECRET = \"SOAR_TEST_SERVER_SECRET\"\n";
    std::fs::write(&config, text).unwrap();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let server = Server::start_with(home, &config, &[("SOAR_TEST_SERVER_SECRET", VALUE)]);

    let (status, body) = server.post_json(
        "/v1/deploys",
        Some(&token),
        &json!({
            "project": "reg", "environment": ENV, "auto_register": false,
            "secrets": { "API_TOKEN": "API_TOKEN_SECRET" },
        }),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "succeeded", "{job}\n{}", server.log());
    // The record names the options, the secret by NAME only.
    assert_eq!(job["auto_register"], false, "{job}");
    assert_eq!(
        job["secrets"],
        json!({ "API_TOKEN": "API_TOKEN_SECRET" }),
        "{job}"
    );
    assert_eq!(registry.hits(), 0, "auto_register false: not announced");
    // The service got the value, from the server's own environment...
    let env = std::fs::read_to_string(reg.service_root().join("shared/env")).unwrap();
    assert!(env.contains(VALUE), "the service's env lacks the secret");
    // ... and it shows nowhere else: record, events, log, project files.
    let (_, _, events) = server.raw(
        "GET",
        &format!("/v1/deploys/{id}/events"),
        Some(&token),
        None,
        &[],
    );
    assert!(!String::from_utf8_lossy(&events).contains(VALUE));
    assert!(!job.to_string().contains(VALUE));
    assert!(!server.log().contains(VALUE));
    let leftovers: Vec<_> = std::fs::read_dir(&reg.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".soar-serve-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Without options the project's own [register] announces it.
    reg.write_app("o2", crate::support::e2e::Mode::Healthy);
    let id = server.submit(&token, "reg", ENV, 0);
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(
        job.get("secrets").is_none() && job.get("auto_register").is_none(),
        "{job}"
    );
    assert_eq!(registry.hits(), 1);
    assert_eq!(version_at(&reg.url()), "o2");
}

#[test]
fn a_bundle_uploaded_then_deployed_by_name_keeps_its_state_across_uploads() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let mut server = Server::start(home, &config);
    let toml = soar_toml("20s", "");
    let bundle = |version: &str| {
        let app = crate::support::e2e::app_py(version, crate::support::e2e::Mode::Healthy);
        targz(&[
            ("soar.toml", Regular, toml.as_bytes()),
            ("./src/", tar::EntryType::Directory, b""),
            ("src/app.py", Regular, app.as_bytes()),
            ("app.py", Symlink, b"src/app.py"),
        ])
    };
    let upload = |server: &Server, version: &str| {
        let (status, _, body) = server.raw(
            "POST",
            "/v1/bundles?project=uploaded",
            Some(&token),
            Some(("application/gzip", &bundle(version))),
            &[],
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 201, "{body}\n{}", server.log());
        body
    };

    let body = upload(&server, "b1");
    assert_eq!(
        (
            body["project"].as_str(),
            body["files"].as_u64(),
            body["replaced"].as_bool()
        ),
        (Some("uploaded"), Some(2), Some(false)),
        "{body}"
    );
    let id = server.submit(&token, "uploaded", ENV, 0);
    let job = finished(&server, &token, &id);
    assert_eq!(job["status"], "succeeded", "{job}\n{}", server.log());
    let url = job["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url), "b1");

    // A new upload replaces the files and keeps the state: the second
    // deploy is a second release of the same environment.
    assert_eq!(upload(&server, "b2")["replaced"], true);
    let id = server.submit(&token, "uploaded", ENV, 0);
    assert_eq!(finished(&server, &token, &id)["status"], "succeeded");
    assert_eq!(version_at(&url), "b2");
    let path = format!("/v1/environments/uploaded/{ENV}/history?limit=10");
    let (status, history) = server.get(&path, &token);
    assert_eq!(status, 200, "{history}");
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");

    // The bundle is still a project after a restart.
    server.kill();
    let server = Server::start(home, &config);
    let (status, body) = server.get(&format!("/v1/environments/uploaded/{ENV}"), &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], url.as_str(), "{body}");
}

#[test]
fn health_reports_the_ssh_hosts_and_registries_the_projects_name() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let registry = FakeHttp::start(&[200]);
    let hosts = Project::new(
        &format!(
            "{}[env.{ENV}.ssh]\nhosts = [\"{}\", \"{closed}\"]\n",
            soar_toml(
                "20s",
                &format!(
                    "[register]\nurl = \"http://{}/services?token=abc123\"\n",
                    registry.addr
                )
            ),
            open.local_addr().unwrap()
        ),
        "h1",
    );
    let (web, _gated, config) = setup_with(2, &[("hosts", &hosts)]);
    let server = Server::start(web.tmp(), &config);

    let (status, health) = server.request("GET", "/health", None, None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"], "ok", "{health}");
    let ssh = health["ssh_hosts"].as_array().unwrap();
    let reach = |address: String| {
        ssh.iter()
            .find(|h| h["address"] == address.as_str())
            .unwrap_or_else(|| panic!("{address} missing: {health}"))
    };
    let up = reach(open.local_addr().unwrap().to_string());
    assert_eq!(up["reachable"], true, "{health}");
    assert_eq!(up["used_by"], json!([format!("hosts/{ENV}")]), "{health}");
    let down = reach(closed.to_string());
    assert_eq!(down["reachable"], false, "{health}");
    assert!(
        down["error"].as_str().unwrap().contains("refused"),
        "{health}"
    );
    let registries = health["registries"].as_array().unwrap();
    assert_eq!(registries.len(), 1, "{health}");
    assert_eq!(
        registries[0]["address"],
        format!("http://{}", registry.addr),
        "{health}"
    );
    assert_eq!(registries[0]["reachable"], true, "{health}");
    // A registry is shown by origin: no path, no query (which may carry a
    // key; soar.toml already refuses a password in the URL).
    let text = health.to_string();
    assert!(
        !text.contains("abc123") && !text.contains("/services"),
        "{text}"
    );
}

/// Issue 15's queue test: 20 jobs over 3 environments with 2 `local` slots.
/// Every project's hook holds its first deploy until the test has queued
/// them all; the job records' start and end times then show the limits kept.
#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn twenty_jobs_three_environments_two_per_provider() {
    let hold = format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n");
    let a = Project::new(&soar_toml("20s", &hold), "a");
    let b = Project::new(&soar_toml("20s", &hold), "b");
    let c = Project::new(&soar_toml("20s", &hold), "c");
    let (web, _gated, config) = setup_with(2, &[("a", &a), ("b", &b), ("c", &c)]);
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    let server = Server::start(home, &config);

    // Two take both slots and wait in their hooks; 18 more queue behind.
    let mut submitted: Vec<(String, &str, i64)> = Vec::new();
    for (name, project) in [("a", &a), ("b", &b)] {
        let id = server.submit(&token, name, ENV, 0);
        server.wait_status(&token, &id, "running");
        assert!(wait_until(Duration::from_secs(60), || project
            .root
            .join("hook-started")
            .exists()));
        submitted.push((id, name, 0));
    }
    for i in 0..18i64 {
        let name = ["a", "b", "c"][(i % 3) as usize];
        let priority = (i * 7) % 11 - 5;
        submitted.push((server.submit(&token, name, ENV, priority), name, priority));
    }
    let (_, health) = server.request("GET", "/health", None, None);
    assert_eq!(
        (
            health["queue"]["running"].as_i64(),
            health["queue"]["queued"].as_i64()
        ),
        (Some(2), Some(18)),
        "{health}"
    );
    for p in [&a, &b, &c] {
        std::fs::write(p.root.join("hook-release"), "").unwrap();
    }
    let mut jobs: Vec<Value> = Vec::new();
    let done = wait_until(Duration::from_secs(600), || {
        jobs = submitted
            .iter()
            .map(|(id, _, _)| server.job(&token, id))
            .collect();
        jobs.iter()
            .all(|j| j["status"] != "queued" && j["status"] != "running")
    });
    assert!(done, "{jobs:?}\n{}", server.log());
    for j in &jobs {
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["attempts"].as_array().unwrap().len(), 1, "{j}");
    }

    // [start, end) of each job, from the records (fixed-width RFC 3339).
    let span = |j: &Value| {
        (
            j["started_at"].as_str().unwrap().to_string(),
            j["finished_at"].as_str().unwrap().to_string(),
        )
    };
    let mut most = 0;
    for j in &jobs {
        let (start, _) = span(j);
        let at_once: Vec<&Value> = jobs
            .iter()
            .filter(|k| {
                let (s, e) = span(k);
                s <= start && start < e
            })
            .collect();
        most = most.max(at_once.len());
        assert!(
            at_once.len() <= 2,
            "{} local jobs at {start}: {at_once:?}",
            at_once.len()
        );
        let envs: std::collections::BTreeSet<&str> = at_once
            .iter()
            .map(|k| k["project"].as_str().unwrap())
            .collect();
        assert_eq!(
            envs.len(),
            at_once.len(),
            "one environment twice at {start}: {at_once:?}"
        );
    }
    eprintln!("figure: at most {most} of 20 jobs ran at once (limit 2)");

    // Per environment, the queued jobs ran highest priority first, and in
    // submission order within a priority.
    for name in ["a", "b", "c"] {
        let mut of_env: Vec<(&Value, i64, usize)> = jobs
            .iter()
            .zip(&submitted)
            .enumerate()
            .filter(|(n, (_, (_, p, _)))| *p == name && *n >= 2)
            .map(|(n, (j, (_, _, prio)))| (j, *prio, n))
            .collect();
        of_env.sort_by_key(|(j, _, _)| span(j).0);
        let ran: Vec<(i64, usize)> = of_env.iter().map(|(_, p, n)| (*p, *n)).collect();
        let mut want = ran.clone();
        want.sort_by_key(|(p, n)| (-p, *n));
        assert_eq!(
            ran, want,
            "environment {name}: (priority, submission) in run order"
        );
    }
    assert_eq!(version_at(&c.url()), "c");
}

/// Issue 15's job overhead, side by side (run with `--ignored
/// --nocapture`): the same converged deploy run by the CLI and submitted
/// over the API, one at a time; submit -> running as the job records it
/// and as a polling client sees it; and the API's added time per deploy.
#[test]
#[ignore = "a benchmark: prints figures"]
fn bench_api_overhead_over_the_cli() {
    let (web, _gated, config) = setup();
    let home = web.tmp();
    let token = create_token(home, &config, &["--scope", "deploy"]);
    web.soar(&["deploy", "--yes"]).ok();
    let runs = 10u32;
    let started = Instant::now();
    for _ in 0..runs {
        web.soar(&["deploy", "--yes", "--json"]).ok();
    }
    let cli = started.elapsed() / runs;

    let server = Server::start(home, &config);
    let ms = |t: &str| -> i64 {
        // HH:MM:SS.mmm of the fixed-width RFC 3339 time, as ms of the day.
        let clock = &t[11..23];
        let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
        ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as i64
    };
    let (mut api, mut recorded, mut seen, mut child) = (Duration::ZERO, 0i64, Duration::ZERO, 0i64);
    for _ in 0..runs {
        let t0 = Instant::now();
        let id = server.submit(&token, "web", ENV, 0);
        let mut first_seen = None;
        wait_until(Duration::from_secs(60), || {
            let job = server.job(&token, &id);
            if job["status"] != "queued" && first_seen.is_none() {
                first_seen = Some(t0.elapsed());
            }
            job["finished_at"].is_string()
        });
        api += t0.elapsed();
        seen += first_seen.unwrap_or_default();
        let job = server.job(&token, &id);
        assert_eq!(job["status"], "succeeded", "{job}");
        let (created, start, end) = (
            ms(job["created_at"].as_str().unwrap()),
            ms(job["started_at"].as_str().unwrap()),
            ms(job["finished_at"].as_str().unwrap()),
        );
        recorded += start - created;
        child += end - start;
    }
    let n = i64::from(runs);
    let api = api / runs;
    eprintln!("figure: converged deploy, mean of {runs}:");
    eprintln!(
        "figure:   CLI (soar deploy --yes --json)      {:>8.1} ms",
        cli.as_secs_f64() * 1e3
    );
    eprintln!(
        "figure:   API submit -> finished (client)      {:>8.1} ms",
        api.as_secs_f64() * 1e3
    );
    eprintln!(
        "figure:   API added over the CLI               {:>8.1} ms",
        (api.as_secs_f64() - cli.as_secs_f64()) * 1e3
    );
    eprintln!(
        "figure:   submit -> running (job record)       {:>8} ms",
        recorded / n
    );
    eprintln!(
        "figure:   submit -> running (client, 20ms poll){:>8.1} ms",
        (seen / runs).as_secs_f64() * 1e3
    );
    eprintln!(
        "figure:   the job's deploy (started -> finished){:>7} ms",
        child / n
    );
}
