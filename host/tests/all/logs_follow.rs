//! `soar logs -f` on SSH hosts, through the built `soar` binary, on real
//! OpenSSH `sshd` hosts on loopback with systemd's stand-in
//! (`systemctl3.py`, which writes a unit's output to
//! `<prefix>/var/log/journal/<unit>.service.log`): two hosts of one
//! environment are followed at once, each line prefixed with its host;
//! lines the services write after the follow started arrive; `--grep`
//! keeps only matching lines (with `--json`, as `log_line` events); Ctrl-C
//! (SIGINT) ends the follow with exit code 0 and leaves no SSH session or
//! remote command behind on either host.
//!
//! The local case is monitor.rs's `logs_follow_sees_new_lines_and_stops_on_ctrl_c`;
//! Docker's is docker_metrics.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use soar_tests::sshd::{ClientKey, SHARED_PORT_SERVER, SshHost, SshProject, require_peers, user};

use crate::support::running::Running;
use crate::support::text;

/// A service that says where it runs when it starts, and logs every
/// `/say/<words>` request with its working directory (which names the
/// host: each test host has its own root). Every line is flushed at once:
/// a follow must not wait for Python's buffer.
fn write_app(dir: &Path) {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        [
            r#"import os, socket, http.server, urllib.parse
print("started in " + os.getcwd(), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/say/"):
            print("said " + urllib.parse.unquote(self.path[5:]) + " in " + os.getcwd(), flush=True)
        body = b"ok"
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
"#,
            SHARED_PORT_SERVER,
        ]
        .concat(),
    )
    .unwrap();
}

/// Two test hosts with the service deployed on both.
struct Deployed {
    hosts: Vec<SshHost>,
    p: SshProject,
    _key: ClientKey,
}

impl Deployed {
    fn new() -> Self {
        require_peers();
        let key = ClientKey::generate().unwrap();
        let hosts = vec![SshHost::start(&key).unwrap(), SshHost::start(&key).unwrap()];
        let p = SshProject::with_deploy(
            Path::new(env!("CARGO_BIN_EXE_soar")),
            "hello",
            &hosts.iter().collect::<Vec<_>>(),
            "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
            "",
        )
        .unwrap();
        write_app(p.dir.path());
        let out = p.soar(&["deploy", "--yes"]);
        assert!(out.status.success(), "deploy: {}", text(&out.stderr));
        Self {
            hosts,
            p,
            _key: key,
        }
    }

    /// The prefix `soar logs` puts before a line of `host`.
    fn prefix(&self, host: &SshHost) -> String {
        format!("[{}@127.0.0.1:{}] ", user(), host.port)
    }

    /// The physical root of `host` (what the service's `getcwd` starts with).
    fn root(host: &SshHost) -> PathBuf {
        host.root.canonicalize().unwrap()
    }

    /// The service's log file on `host` (systemctl3.py's "journal").
    fn log_file(&self, host: &SshHost) -> PathBuf {
        host.root.join("var/log/journal/hello.service.log")
    }

    /// Processes still running under `host`'s sshd listener other than the
    /// service itself: open sessions and the commands they run.
    fn sessions(host: &SshHost) -> Vec<String> {
        host.session_processes()
            .into_iter()
            .filter(|p| !p.cmdline.contains("app.py"))
            .map(|p| format!("{} {} ({})", p.pid, p.cmdline, p.comm))
            .collect()
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = self.p.systemctl(h, &["stop", "hello"]);
        }
    }
}

/// Send `/say/<tag>-<n>` requests (the hosts share the port, so the kernel
/// picks one per connection) until `follow` has shown a `said <tag>-`
/// line from every host, within 60 s; the lines seen, per host prefix.
fn say_until_every_host_logged(
    d: &Deployed,
    follow: &Running,
    tag: &str,
    also: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut all = Vec::new();
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "not every host's `said {tag}-` line arrived; the follow printed:\n{}",
            all.join("\n")
        );
        if let Some(other) = also {
            d.p.get(&format!("/say/{other}-{n}"));
        }
        assert!(
            d.p.get(&format!("/say/{tag}-{n}")).is_some(),
            "the service did not answer"
        );
        for line in follow.drain(Duration::from_millis(300)) {
            // `[user@127.0.0.1:PORT] ...`, or `"host":"user@127.0.0.1:PORT"`.
            let of = |h: &&SshHost| {
                line.contains(&format!(":{}] ", h.port)) || line.contains(&format!(":{}\"", h.port))
            };
            if line.contains(&format!("said {tag}-"))
                && let Some(h) = d.hosts.iter().find(of)
            {
                seen.entry(d.prefix(h)).or_default().push(line.clone());
            }
            all.push(line);
        }
        if seen.len() == d.hosts.len() {
            break;
        }
    }
    seen
}

/// SIGINT ends the follow with 0, and within 15 s neither host has a
/// session or a command of it left.
fn interrupt_and_check_nothing_is_left(d: &Deployed, follow: &mut Running) {
    assert_eq!(
        follow.interrupt(),
        Some(0),
        "Ctrl-C ends the follow cleanly"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    for h in &d.hosts {
        loop {
            let left = Deployed::sessions(h);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the follow left sessions or commands on {}: {left:#?}",
                h.endpoint()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn follows_every_host_with_a_prefix_and_stops_cleanly_on_ctrl_c() {
    let d = Deployed::new();
    let mut follow = Running::spawn(d.p.command(&["logs", "-f", "-n", "5"]));

    // The backlog: each host's start line, under that host's prefix.
    let mut backlog = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !d.hosts.iter().all(|h| {
            backlog
                .iter()
                .any(|l: &String| l.starts_with(&d.prefix(h)) && l.contains("started in "))
        })
    {
        backlog.extend(follow.drain(Duration::from_millis(200)));
    }
    for h in &d.hosts {
        let start = format!("{}started in {}", d.prefix(h), Deployed::root(h).display());
        assert!(
            backlog.iter().any(|l| l.starts_with(&start)),
            "no backlog line starting {start:?}: {backlog:#?}"
        );
    }

    // Lines written after the follow started, from both hosts, each under
    // the prefix of the host that wrote it.
    let tag = format!("after-the-follow-{}", std::process::id());
    let seen = say_until_every_host_logged(&d, &follow, &tag, None);
    for h in &d.hosts {
        let lines = &seen[&d.prefix(h)];
        for l in lines {
            assert!(
                l.starts_with(&d.prefix(h))
                    && l.contains(&format!(" in {}", Deployed::root(h).display())),
                "a line under the wrong host's prefix: {l}"
            );
        }
    }
    interrupt_and_check_nothing_is_left(&d, &mut follow);
}

#[test]
fn grep_keeps_only_matching_lines_of_every_host() {
    let d = Deployed::new();
    let mut follow =
        Running::spawn(d.p.command(&["logs", "-f", "-n", "0", "--grep", "keep-", "--json"]));
    let tag = format!("keep-{}", std::process::id());
    // Each request that is kept follows one that is not, on whichever host.
    let seen = say_until_every_host_logged(&d, &follow, &tag, Some("drop"));
    let mut events = Vec::new();
    for lines in seen.values() {
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            events.push(v);
        }
    }
    // Whatever else arrived in the meantime is matching too.
    for l in follow.drain(Duration::from_secs(2)) {
        events.push(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")));
    }
    for v in &events {
        assert_eq!(v["type"], "log_line", "{v}");
        assert_eq!(v["env"], "prod", "{v}");
        assert_eq!(v["service"], "hello", "{v}");
        let line = v["line"].as_str().unwrap();
        assert!(line.contains("keep-"), "--grep let through {v}");
        let host = v["host"].as_str().unwrap();
        let h = d
            .hosts
            .iter()
            .find(|h| host.ends_with(&format!(":{}", h.port)))
            .unwrap_or_else(|| panic!("no such host: {v}"));
        assert!(
            line.contains(&format!(" in {}", Deployed::root(h).display())),
            "a line under the wrong host: {v}"
        );
    }
    // The lines that were filtered out were written all the same.
    let written: String = d
        .hosts
        .iter()
        .map(|h| std::fs::read_to_string(d.log_file(h)).unwrap_or_default())
        .collect();
    assert!(written.contains("said drop-"), "{written}");
    interrupt_and_check_nothing_is_left(&d, &mut follow);
}
