//! A `soar serve` of one test [`Project`] on a free loopback port, with a
//! read and a deploy token, for the suites that drive the server and look
//! at what it shows (`monitor`, `metrics`, `mcp`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

use crate::support::Listening;
use crate::support::e2e::{Project, wait_until};

/// A running `soar serve` serving one project; killed on drop.
pub struct Served {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
    /// A `read` token.
    pub reader: String,
    /// A `deploy` token.
    pub deployer: String,
}

impl Served {
    /// Serve `p` as project `name`; returns once the server listens.
    pub fn start(p: &Project, name: &str) -> Self {
        Self::serve(p.tmp(), &p.root, name, &[])
    }

    /// Serve the project at `root` as `name`, with the server's (and so
    /// its jobs') environment variables `vars`, sandboxed in `sandbox`.
    pub fn serve(sandbox: &Path, root: &Path, name: &str, vars: &[(&str, &str)]) -> Self {
        Self::launch(&sandbox.join("server"), sandbox, root, name, vars, "")
    }

    /// Serve the project at `root` as `name` from the server directory
    /// `dir` (its config, store and log), with `vars` in its environment
    /// and `config` (e.g. a `[queue]` table) at the top of its
    /// soar-server.toml.
    pub fn launch(
        dir: &Path,
        sandbox: &Path,
        root: &Path,
        name: &str,
        vars: &[(&str, &str)],
        config: &str,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let text = format!(
            "{config}\n[projects.{name}]\npath = {:?}\n",
            root.display().to_string()
        );
        let config = dir.join("soar-server.toml");
        std::fs::write(&config, text).unwrap();
        let serve = |args: &[&str]| {
            let mut cmd = crate::support::soar(sandbox, dir);
            cmd.envs(vars.iter().copied())
                .arg("serve")
                .args(args)
                .arg("--server-config")
                .arg(&config);
            cmd
        };
        let token = |scope: &str| {
            let out = serve(&["token", "create", "--scope", scope])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap()
                .trim()
                .to_string()
        };
        let (reader, deployer) = (token("read"), token("deploy"));
        let log = dir.join("serve.log");
        let mut cmd = serve(&["--listen", "127.0.0.1:0"]);
        cmd.env("SOAR_LOG", "info");
        let Listening {
            child,
            scheme,
            addr,
        } = crate::support::listening(cmd, &log);
        assert_eq!(scheme, "http", "a plain test server");
        let addr = addr.to_string();
        Self {
            child,
            addr,
            log,
            reader,
            deployer,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.0 request: the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }

    /// `GET path` with the read token: its JSON (panics unless 200).
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, Some(&self.reader), "");
        assert_eq!(status, 200, "GET {path}: {body}\nlog:\n{}", self.log());
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// Submit a deploy of `project`'s `env` with the deploy token; its job
    /// id.
    pub fn submit(&self, project: &str, env: &str) -> String {
        let (status, body) = self.request(
            "POST",
            "/v1/deploys",
            Some(&self.deployer),
            &format!(r#"{{"project": "{project}", "environment": "{env}"}}"#),
        );
        assert_eq!(status, 202, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The job `id` once it is neither queued nor running (within 180 s).
    pub fn ended(&self, id: &str) -> Value {
        let mut job = Value::Null;
        let done = wait_until(Duration::from_secs(180), || {
            job = self.get(&format!("/v1/deploys/{id}"));
            job["status"] != "queued" && job["status"] != "running"
        });
        assert!(
            done,
            "job {id} did not end: {job:#}
log:
{}",
            self.log()
        );
        job
    }

    /// Submit a deploy of `project`'s `env` and wait for it to succeed; its
    /// job id.
    pub fn deploy(&self, project: &str, env: &str) -> String {
        let id = self.submit(project, env);
        let job = self.ended(&id);
        assert!(
            job["status"] == "succeeded",
            "deploy {id}: {job:#}\nlog:\n{}",
            self.log()
        );
        id
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
