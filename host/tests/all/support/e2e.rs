//! Shared helpers for end-to-end tests that drive the built `soar` binary.
//!
//! A [`Project`] is a throwaway project in a temporary directory: a
//! `soar.toml` deploying a small Python HTTP service (kind `script`) to the
//! `local` provider. Every `soar` it runs gets its own `HOME` and plugin data
//! directory (the compile cache is shared between tests, see
//! `support::compile_cache`, so each plugin is compiled once).
//!
//! Dropping a `Project` tears down everything it started: processes it
//! spawned, then `soar destroy --yes`, then (as a fallback) the supervisor
//! from its pid file and any process still running in or naming the
//! temporary directory, so no service outlives a test, failed or not.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment every test project deploys to.
pub const ENV: &str = "dev";
/// The service name every test project deploys.
pub const SERVICE: &str = "web";

/// How the test service behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/` answers the version, `/health` answers 200.
    Healthy,
    /// Like `Healthy`, but `/health` answers 500.
    Unhealthy,
    /// Exits at once without listening.
    Exits,
}

/// The service: a Python HTTP server on `$PORT` with `version` baked in.
pub fn app_py(version: &str, mode: Mode) -> String {
    let mode = match mode {
        Mode::Healthy => "healthy",
        Mode::Unhealthy => "unhealthy",
        Mode::Exits => "exits",
    };
    format!(
        r#"import http.server
import os
import sys

VERSION = "{version}"
MODE = "{mode}"

if MODE == "exits":
    sys.exit(3)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            if MODE == "unhealthy":
                code, body = 500, b"unhealthy\n"
            else:
                code, body = 200, b"ok\n"
        elif self.path == "/":
            code, body = 200, (VERSION + "\n").encode()
        else:
            code, body = 404, b"not found\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#
    )
}

/// A `soar.toml` for the test service; `extra` is inserted before the
/// environment (e.g. a `[hooks]` table).
pub fn soar_toml(health_timeout: &str, extra: &str) -> String {
    format!(
        r#"[app]
name = "e2e-app"

[artifact]
kind = "script"
path = "app.py"
command = "python3 app.py"

[deploy]
service = "{SERVICE}"
health = {{ path = "/health", timeout = "{health_timeout}", interval = "100ms", retries = 100 }}

{extra}
[env.{ENV}]
provider = "local"
"#
    )
}

/// What a finished `soar` run printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(args: Vec<String>, out: Output) -> Self {
        Self {
            args,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Everything about the run, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "soar {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Assert the exit code and return self.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.show()
        );
        self
    }

    /// Assert success (exit 0) and return self.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    /// stdout as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.show()))
            })
            .collect()
    }
}

/// A throwaway project; see the module documentation.
pub struct Project {
    tmp: tempfile::TempDir,
    /// The project directory (holds soar.toml, app.py and .soar/).
    pub root: PathBuf,
    /// Processes spawned with [`Project::spawn`], killed on drop.
    children: Vec<Child>,
}

impl Project {
    /// An empty project directory (nothing written yet).
    pub fn empty() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("soar-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        let root = tmp.path().join("project");
        for dir in [&root, &tmp.path().join("home"), &tmp.path().join("data")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        Self {
            tmp,
            root,
            children: Vec::new(),
        }
    }

    /// A project with the given soar.toml and a healthy `app.py` of `version`.
    pub fn new(toml: &str, version: &str) -> Self {
        let p = Self::empty();
        p.write("soar.toml", toml);
        p.write_app(version, Mode::Healthy);
        p
    }

    /// The temporary directory everything lives under.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// `<root>/soar.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("soar.toml")
    }

    /// The local target's service root.
    pub fn service_root(&self) -> PathBuf {
        self.root
            .join(".soar")
            .join("local")
            .join(ENV)
            .join(SERVICE)
    }

    /// Write a file under the project root.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root.join(name), text).unwrap();
    }

    /// Replace the service's code.
    pub fn write_app(&self, version: &str, mode: Mode) {
        self.write("app.py", &app_py(version, mode));
    }

    /// A `soar` command for this project: `-c <root>/soar.toml` first, run in
    /// the project directory, with an isolated HOME and plugin directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::support::soar(self.tmp(), &self.root);
        cmd.arg("-c").arg(self.config()).args(args);
        cmd
    }

    /// Run `soar <args>` to completion.
    pub fn soar(&self, args: &[&str]) -> Run {
        let mut all = vec!["-c".to_string(), self.config().display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_command(self.command(args), all)
    }

    /// Start `soar <args>` in the background (output piped); it is killed on
    /// drop if still running. Returns its index for [`Project::wait`].
    pub fn spawn(&mut self, args: &[&str]) -> usize {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting soar");
        self.children.push(child);
        self.children.len() - 1
    }

    /// The pid of a spawned process.
    pub fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    /// Whether a spawned process has exited (reaping it if so).
    pub fn has_exited(&mut self, index: usize) -> bool {
        self.children[index].try_wait().unwrap().is_some()
    }

    /// SIGKILL a spawned process and reap it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Wait for a spawned process and collect its output.
    pub fn wait(&mut self, index: usize) -> Run {
        let child = &mut self.children[index];
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut s) = child.stdout.take() {
            s.read_to_string(&mut stdout).unwrap();
        }
        if let Some(mut s) = child.stderr.take() {
            s.read_to_string(&mut stderr).unwrap();
        }
        let status = child.wait().unwrap();
        Run {
            args: vec![format!("(spawned #{index})")],
            code: status.code(),
            stdout,
            stderr,
        }
    }

    /// `soar status --json` for the one environment.
    #[track_caller]
    pub fn status(&self) -> serde_json::Value {
        let run = self.soar(&["status", "--json"]).ok();
        let mut lines = run.json_lines();
        assert_eq!(lines.len(), 1, "one environment\n{}", run.show());
        lines.remove(0)
    }

    /// The URL `soar status` reports; panics when the service is not running.
    #[track_caller]
    pub fn url(&self) -> String {
        let status = self.status();
        assert_eq!(status["running"], true, "status: {status}");
        status["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no url in {status}"))
            .to_string()
    }

    /// `soar history --json`, newest first.
    #[track_caller]
    pub fn history(&self) -> Vec<serde_json::Value> {
        self.soar(&["history", "--json"]).ok().json_lines()
    }

    /// The artifact digest `soar plan --json` says the current files deploy.
    #[track_caller]
    pub fn planned_digest(&self) -> String {
        let run = self.soar(&["plan", "--json"]).ok();
        let lines = run.json_lines();
        lines
            .iter()
            .find(|l| l["type"] == "planned_change" && l["change"]["kind"] == "release")
            .and_then(|l| l["change"]["after"]["artifact"].as_str())
            .unwrap_or_else(|| panic!("no release change in the plan\n{}", run.show()))
            .to_string()
    }

    /// Live `soar __supervise` processes for this project's service root.
    pub fn supervisors(&self) -> Vec<i32> {
        let root = self.service_root().display().to_string();
        processes()
            .into_iter()
            .filter(|p| p.cmdline.contains("__supervise") && p.cmdline.contains(&root))
            .map(|p| p.pid)
            .collect()
    }

    /// Live processes whose working directory is inside the service root
    /// (the running releases).
    pub fn services(&self) -> Vec<i32> {
        let root = self.service_root();
        processes()
            .into_iter()
            .filter(|p| p.cwd.as_deref().is_some_and(|c| c.starts_with(&root)))
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.root.join(".soar").exists() && self.config().exists() {
            let _ = self
                .command(&["destroy", "--yes", "--lock-timeout", "20s"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Fallback: the supervisor named by its pid file.
        let root = self.service_root();
        if let Some(pid) = std::fs::read_to_string(root.join("supervisor.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && let Some(p) = processes().into_iter().find(|p| p.pid == pid)
            && p.cmdline.contains("__supervise")
            && p.cmdline.contains(&root.display().to_string())
        {
            terminate(&[pid]);
        }
        // Fallback: anything else still running in or naming our directory
        // (a supervisor orphaned by a killed deploy, its service, a hook).
        let tmp = self.tmp.path().to_path_buf();
        let tmp_text = format!("{}/", tmp.display());
        let own = std::process::id() as i32;
        let leftovers: Vec<i32> = processes()
            .into_iter()
            .filter(|p| p.pid != own)
            .filter(|p| {
                p.cwd.as_deref().is_some_and(|c| c.starts_with(&tmp))
                    || p.cmdline.contains(&tmp_text)
            })
            .map(|p| p.pid)
            .collect();
        terminate(&leftovers);
    }
}

/// Run a command to completion, describing it as `soar <args>`.
pub fn run_command(mut cmd: Command, args: Vec<String>) -> Run {
    let out = cmd.output().expect("running soar");
    Run::from_output(args, out)
}

/// `GET <url><path>` over plain HTTP/1.1; the status and body.
pub fn http_get(url: &str, path: &str) -> std::io::Result<(u16, String)> {
    let host = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"))
        .trim_end_matches('/');
    let addr: SocketAddr = host
        .parse()
        .unwrap_or_else(|e| panic!("URL {url} does not name an address: {e}"));
    assert!(
        addr.ip().is_loopback(),
        "tests only contact 127.0.0.1: {url}"
    );
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    Ok((status, body.to_string()))
}

/// The trimmed body of `GET <url>/`, which must answer 200.
#[track_caller]
pub fn version_at(url: &str) -> String {
    match http_get(url, "/") {
        Ok((200, body)) => body.trim().to_string(),
        Ok((status, body)) => panic!("GET {url}/ answered {status}: {body}"),
        Err(e) => panic!("GET {url}/ failed: {e}"),
    }
}

/// Whether a TCP connection to `url` is refused (nothing listens).
pub fn connection_refused(url: &str) -> bool {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Poll until `cond` holds; false if it did not within `limit` (a safety
/// net against hanging, not a timing assertion).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One live (non-zombie) process.
#[derive(Debug)]
pub struct Proc {
    pub pid: i32,
    /// NUL-separated arguments joined with spaces.
    pub cmdline: String,
    pub cwd: Option<PathBuf>,
}

/// Every live process we can inspect.
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            if raw.is_empty() || is_zombie(pid) {
                return None;
            }
            let cmdline = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            Some(Proc { pid, cmdline, cwd })
        })
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn alive(pid: i32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok() && !is_zombie(pid)
}

/// SIGTERM the given processes, then SIGKILL those still alive after a while.
fn terminate(pids: &[i32]) {
    if pids.is_empty() {
        return;
    }
    for &pid in pids {
        // SAFETY: kill(2) on a pid we identified as started by this test.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    wait_until(Duration::from_secs(10), || pids.iter().all(|&p| !alive(p)));
    for &pid in pids {
        if alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
