//! SSH round trips of a single-host rollout, counted from the audit trail
//! (every command and upload the rollout sends is one brokered SSH event),
//! through the built `soar` binary onto a real OpenSSH `sshd` on loopback
//! with systemd's stand-in `systemctl3.py`. The figures are printed, not
//! asserted (they are what the rollout costs, for the record); what is
//! asserted is that a re-deploy of the release already running, forced by
//! a lost state, leaves the service alone instead of restarting it.

use std::path::Path;
use std::process::Command;

use soar_tests::sshd::{ClientKey, SshHost, SshProject, python, require_peers, systemctl_py};

use crate::support::text;

/// An app answering "version <v>" and 200 on /health.
fn write_app(dir: &Path, version: &str) {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        format!(
            r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"version {version}"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
        ),
    )
    .unwrap();
}

/// Every SSH command of every deploy the project's state holds.
fn ssh_commands(project: &Path) -> Vec<String> {
    let store = soar::state::StateStore::open(&project.join(".soar")).unwrap();
    store
        .history(None, 100)
        .unwrap()
        .iter()
        .flat_map(|d| store.events(d.id).unwrap())
        // The journal's events are recorded as `{"plugin": <event>}`.
        .map(|e| e.event["plugin"].clone())
        .filter(|e| e["event"] == "ssh")
        .map(|e| e["command"].as_str().unwrap_or_default().to_string())
        .collect()
}

struct StopService<'a>(&'a SshHost);
impl Drop for StopService<'_> {
    fn drop(&mut self) {
        let _ = Command::new(python())
            .arg(systemctl_py())
            .arg(format!("--root={}", self.0.root.display()))
            .args(["stop", "hello"])
            .output();
    }
}

#[test]
fn single_host_rollout_round_trips() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let _stop = StopService(&host);
    let p = SshProject::new(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "hello",
        &[&host],
        "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
    )
    .unwrap();
    let dir = p.dir.path();
    let deploy = |what: &str| {
        let before = ssh_commands(dir).len();
        let out = p.soar(&["deploy", "--yes"]);
        assert!(
            out.status.success(),
            "{what} failed:\n{}",
            text(&out.stderr)
        );
        let commands = ssh_commands(dir);
        let new = commands[before..].to_vec();
        eprintln!("ROUND TRIPS {what}: {}", new.len());
        for c in &new {
            eprintln!("    {c}");
        }
        new
    };

    write_app(dir, "v1");
    deploy("first release");
    assert_eq!(p.get("/").as_deref(), Some("version v1"));
    write_app(dir, "v2");
    deploy("new release");
    assert_eq!(p.get("/").as_deref(), Some("version v2"));

    // The state is lost: the plan sees a first release, the host already
    // runs it with the same environment, so nothing restarts.
    std::fs::remove_dir_all(dir.join(".soar")).unwrap();
    let pid = |p: &SshProject| {
        let out = p.systemctl(&host, &["show", "-p", "MainPID", "hello"]);
        text(&out.stdout).trim().to_string()
    };
    let before = pid(&p);
    let commands = deploy("forced re-deploy of the running release");
    assert_eq!(p.get("/").as_deref(), Some("version v2"));
    assert!(
        !commands.iter().any(|c| c.contains(" restart ")),
        "the running release was restarted: {commands:#?}"
    );
    assert_eq!(pid(&p), before, "the service process changed");
}
