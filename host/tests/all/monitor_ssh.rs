//! Monitoring services on SSH hosts, through the built `soar` binary, on
//! real OpenSSH `sshd` hosts on loopback with systemd's stand-in
//! (`systemctl3.py`, see ssh_rollout.rs): `soar top` reads each host's
//! numbers over SSH, and `soar monitor` reports a host whose sshd went
//! away as one finding while the other host stays healthy.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use soar_tests::sshd::{
    ClientKey, SHARED_PORT_SERVER, SshHost, SshProject, python, require_peers, systemctl_py,
};

use crate::support::text;

/// A service whose /health answers 200.
fn write_app(dir: &Path) {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        [
            r#"import os, socket, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
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

/// Stops the service under each host's root when the test ends, passed
/// or failed.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for root in &self.0 {
            let _ = std::process::Command::new(python())
                .arg(systemctl_py())
                .arg(format!("--root={}", root.display()))
                .args(["stop", "hello"])
                .output();
        }
    }
}

/// A running `soar monitor --json`, read line by line on a thread.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    fn start(p: &SshProject) -> Self {
        let mut child = p
            .command(&["monitor", "--interval", "500ms", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting soar monitor");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next `health_check` events until `done` says enough, within
    /// `limit`; every one seen is returned.
    fn checks_until(&self, limit: Duration, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            eprintln!("monitor: {line}");
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["type"] != "health_check" {
                continue;
            }
            let stop = done(&v);
            seen.push(v);
            if stop {
                return seen;
            }
        }
        panic!("no such check within {limit:?}; saw {seen:#?}");
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `host` a check event is about (`user@address:port`).
fn host_of(check: &Value) -> String {
    check["host"].as_str().unwrap_or_default().to_string()
}

#[test]
fn ssh_hosts_have_numbers_and_a_host_that_goes_away_is_one_finding() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let mut gone = SshHost::start(&key).unwrap();
    let stays = SshHost::start(&key).unwrap();
    let _cleanup = Cleanup(vec![gone.root.clone(), stays.root.clone()]);
    let p = SshProject::with_deploy(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "hello",
        &[&gone, &stays],
        "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
        "",
    )
    .unwrap();
    write_app(p.dir.path());
    let out = p.soar(&["deploy", "--yes"]);
    assert!(out.status.success(), "deploy: {}", text(&out.stderr));

    // `soar top --once --json`: each host's numbers, read over SSH.
    let out = p.soar(&["top", "--once", "--json"]);
    assert!(out.status.success(), "top: {}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["type"] == "service_metrics")
        .collect();
    assert_eq!(rows.len(), 2, "one row per host: {rows:#?}");
    for row in &rows {
        let m = &row["metrics"];
        assert_eq!(m["up"], true, "{row:#}");
        assert!(m["pid"].as_u64().is_some_and(|p| p > 1), "{row:#}");
        assert!(
            m["rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20),
            "a Python service uses more than 1 MiB: {row:#}"
        );
        assert!(m["uptime_seconds"].as_u64().is_some(), "{row:#}");
    }
    let hosts: Vec<&str> = rows.iter().filter_map(|r| r["host"].as_str()).collect();
    assert!(
        hosts
            .iter()
            .any(|h| h.ends_with(&format!(":{}", gone.port)))
            && hosts
                .iter()
                .any(|h| h.ends_with(&format!(":{}", stays.port))),
        "{hosts:?}"
    );

    // `soar monitor`: both healthy, then one host's sshd goes away.
    let monitor = Monitor::start(&p);
    let mut healthy = std::collections::BTreeSet::new();
    monitor.checks_until(Duration::from_secs(30), |c| {
        let b = c;
        if b["reachable"] == true
            && b["services"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s["healthy"] == true))
        {
            healthy.insert(host_of(c));
        }
        healthy.len() == 2
    });
    // The host goes away: its open connections drop, and nothing accepts
    // new ones.
    gone.kill_sessions(false);
    gone.stop();
    let gone_port = format!(":{}", gone.port);
    let mut down = 0;
    let mut after = Vec::new();
    let seen = monitor.checks_until(Duration::from_secs(60), |c| {
        let b = c;
        if host_of(c).ends_with(&gone_port) && b["reachable"] == false {
            down += 1;
        } else if down > 0 && host_of(c).ends_with(&format!(":{}", stays.port)) {
            after.push(b.clone());
        }
        down >= 2 && !after.is_empty()
    });
    // One finding per check for the host that went away — never one per
    // service or per environment — naming why.
    let gone_checks: Vec<&Value> = seen
        .iter()
        .filter(|c| host_of(c).ends_with(&gone_port))
        .collect();
    for c in gone_checks.iter().rev().take(2) {
        let b = c;
        assert_eq!(b["reachable"], false, "{b:#}");
        assert!(
            b.get("services").is_none(),
            "one finding, not per service: {b:#}"
        );
        assert!(!b["detail"].as_str().unwrap_or("").is_empty(), "{b:#}");
    }
    // The other host is still healthy.
    for b in &after {
        assert_eq!(b["reachable"], true, "{b:#}");
        assert!(
            b["services"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s["healthy"] == true)),
            "{b:#}"
        );
    }
}
