//! Rollout over SSH onto real OpenSSH `sshd` hosts on loopback, through the
//! built `soar` binary. The remote service manager is systemd's stand-in
//! `systemctl3.py --root=<prefix>` from docker-systemctl-replacement (the
//! sandbox has no systemd), so every host keeps its files under its own
//! prefix and nothing touches the real /etc or /opt.
//!
//! Needs `/usr/sbin/sshd` (Debian `openssh-server`) and
//! `target/test-peers/venv/bin/systemctl3.py` (or `SOAR_SYSTEMCTL_PY`).

use std::path::Path;
use std::process::{Command, Output};

use soar_tests::sshd::{
    ClientKey, SHARED_PORT_SERVER, SshHost, SshProject, python, require_peers, systemctl_py, user,
};

use crate::support::text;

const SECRET: &str = "s3cr3t-value-that-must-not-leak";

/// An app whose /health answers 200, or 500 when built `healthy = false`.
fn write_app(dir: &Path, version: &str, healthy: bool) {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        format!(
            r#"import os, socket, http.server
VERSION = "{version}"
HEALTHY = {healthy}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if (HEALTHY or self.path != "/health") else 500
        body = ("version " + VERSION + " token-set=" + str(bool(os.environ.get("API_TOKEN")))).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
print("starting version", VERSION, flush=True)
{serve}"#,
            healthy = if healthy { "True" } else { "False" },
            serve = SHARED_PORT_SERVER,
        ),
    )
    .unwrap();
}

/// The shared SSH project, with this suite's app, secret and batch.
struct Project {
    inner: SshProject,
}

impl std::ops::Deref for Project {
    type Target = SshProject;
    fn deref(&self) -> &SshProject {
        &self.inner
    }
}

impl Project {
    fn new(hosts: &[&SshHost], batch: Option<&str>) -> Self {
        let batch = batch
            .map(|b| format!("rollout = {{ batch = {b} }}"))
            .unwrap_or_default();
        let inner = SshProject::with_deploy(
            Path::new(env!("CARGO_BIN_EXE_soar")),
            "hello",
            hosts,
            "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
            &format!("secrets = {{ API_TOKEN = \"SOAR_SSH_TEST_TOKEN\" }}\n{batch}"),
        )
        .unwrap();
        write_app(inner.dir.path(), "v1", true);
        Self { inner }
    }

    fn soar(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .env("SOAR_SSH_TEST_TOKEN", SECRET)
            .output()
            .unwrap();
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert!(
            !o.contains(SECRET) && !e.contains(SECRET),
            "the secret leaked into soar's output:\n{o}\n{e}"
        );
        eprintln!("$ soar {}\n{o}\n{e}", args.join(" "));
        out
    }

    fn deploy(&self, extra: &[&str]) -> Output {
        let mut args = vec!["deploy", "--yes"];
        args.extend_from_slice(extra);
        self.soar(&args)
    }

    fn get(&self) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "-m", "3"])
            .arg(format!("http://127.0.0.1:{}/", self.port))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }
}

fn stop_services(hosts: &[&SshHost]) {
    for h in hosts {
        let _ = Command::new(python())
            .arg(systemctl_py())
            .arg(format!("--root={}", h.root.display()))
            .args(["stop", "hello"])
            .output();
        let link = h
            .root
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join(format!("{}-root", h.port));
        let _ = std::fs::remove_file(link);
    }
}

struct Cleanup<'a>(Vec<&'a SshHost>);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        stop_services(&self.0);
    }
}

#[test]
fn deploy_redeploy_update_fail_rollback_and_logs() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let _cleanup = Cleanup(vec![&host]);
    let p = Project::new(&[&host], None);

    // First deploy.
    let out = p.deploy(&[]);
    assert!(out.status.success(), "first deploy failed");
    assert!(p.get().unwrap().contains("version v1 token-set=True"));
    let root = host.root.join("opt/hello");

    // `soar status` asks the host's service manager.
    let out = p.soar(&["status", "--json"]);
    assert!(out.status.success(), "status failed: {}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["hosts"][0]["running"], true, "{status}");

    let unit = std::fs::read_to_string(host.root.join("etc/systemd/system/hello.service")).unwrap();
    assert!(unit.contains("Restart=always"), "{unit}");
    assert!(
        unit.contains("EnvironmentFile=/opt/hello/shared/env"),
        "{unit}"
    );
    assert!(
        unit.contains("WorkingDirectory=/opt/hello/current"),
        "{unit}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("shared/env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the env file must be 0600");
    assert!(
        !root.join(".soar-lock").exists(),
        "the deploy lock was not released"
    );

    // Unchanged re-deploy: nothing sent.
    let out = p.deploy(&[]);
    assert!(out.status.success());
    let stderr = text(&out.stderr) + &text(&out.stdout);
    assert!(
        stderr.contains("up to date") || stderr.contains("0 bytes sent"),
        "{stderr}"
    );

    // A new version.
    write_app(p.dir.path(), "v2", true);
    let out = p.deploy(&[]);
    assert!(out.status.success());
    assert!(p.get().unwrap().contains("version v2"));

    // A failing health check rolls back automatically; v2 answers again.
    write_app(p.dir.path(), "v3", false);
    let out = p.deploy(&[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unhealthy"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(p.get().unwrap().contains("version v2"));

    // Manual rollback to v1.
    let out = p.soar(&["rollback"]);
    assert!(out.status.success(), "rollback failed");
    assert!(p.get().unwrap().contains("version v1"));

    // Logs over SSH; the secret is not in them.
    let out = p.soar(&["logs", "-n", "50"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("starting version"),
        "{}",
        text(&out.stdout)
    );

    // Every command went through the broker and is in the audit trail.
    let out = p.soar(&["history", "--json", "-n", "20"]);
    assert!(text(&out.stdout).contains("ssh"), "no ssh event recorded");
}

#[test]
fn host_key_mismatch_is_refused_with_both_fingerprints() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let other = SshHost::start(&key).unwrap();
    let _cleanup = Cleanup(vec![&host]);
    let p = Project::new(&[&host], None);
    // Record the other host's key for this host's address.
    std::fs::write(
        p.dir.path().join("known_hosts"),
        format!("[{}]:{} {}\n", host.addr, host.port, other.host_key),
    )
    .unwrap();
    let out = p.deploy(&[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("MISMATCH"), "{err}");
    assert!(err.contains(&host.host_key_fingerprint), "{err}");
    assert!(err.contains(&other.host_key_fingerprint), "{err}");
    assert!(!host.root.join("opt").exists(), "nothing may be written");

    // An unknown host (not created by Soar) is refused too.
    std::fs::write(p.dir.path().join("known_hosts"), "").unwrap();
    let out = p.deploy(&[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a known host"));
}

#[test]
fn stale_lock_needs_force_unlock() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let _cleanup = Cleanup(vec![&host]);
    let p = Project::new(&[&host], None);
    let root = host.root.join("opt/hello");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(".soar-lock"), "someone pid 1 at yesterday\n").unwrap();
    let out = p.deploy(&[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--force-unlock"), "{err}");
    assert!(err.contains("someone pid 1"), "{err}");
    let out = p.deploy(&["--force-unlock"]);
    assert!(out.status.success());
    assert!(!root.join(".soar-lock").exists());
    assert!(p.get().unwrap().contains("version v1"));

    // Destroy removes the unit and the service root from the host.
    let out = p.soar(&["destroy", "--yes"]);
    assert!(
        out.status.success(),
        "destroy failed: {}",
        text(&out.stderr)
    );
    assert!(!root.exists(), "the service root is still on the host");
    assert!(!host.root.join("etc/systemd/system/hello.service").exists());
    assert!(p.get().is_none(), "the service still answers");
}

#[test]
fn fan_out_to_five_hosts_with_one_failing() {
    require_peers();
    let key = ClientKey::generate().unwrap();
    let hosts: Vec<SshHost> = (0..5).map(|_| SshHost::start(&key).unwrap()).collect();
    let refs: Vec<&SshHost> = hosts.iter().collect();
    let _cleanup = Cleanup(refs.clone());
    // All healthy, batches of 2 after a canary.
    let p = Project::new(&refs, Some("2"));
    let out = p.deploy(&[]);
    assert!(out.status.success());
    for h in &hosts {
        assert!(
            h.root.join("opt/hello/current").exists(),
            "{} not deployed",
            h.port
        );
    }
    // Host #2 (in the second batch) cannot be written to: its rollout fails,
    // the third batch is never started.
    write_app(p.dir.path(), "v2", true);
    let blocked = hosts[1].root.join("opt/hello/releases");
    std::fs::remove_dir_all(&blocked).unwrap();
    std::fs::write(&blocked, "not a directory").unwrap();
    let out = p.deploy(&[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("failed on 1 of 5"), "{err}");
    assert!(
        err.contains(&format!("✗ {}@127.0.0.1:{}", user(), hosts[1].port)),
        "{err}"
    );
    assert!(err.contains("not started"), "{err}");
    for h in &hosts[3..] {
        assert!(
            err.contains(&format!("- {}@127.0.0.1:{}: not started", user(), h.port)),
            "{err}"
        );
    }
}
