//! `soar exec` on five real OpenSSH hosts (five `sshd` on loopback): the
//! command runs in each host's current release with the service's
//! environment, every line comes back prefixed with its host, one host's
//! failure is reported with its status and makes the exit non-zero, the
//! service's secret is redacted from the output, `--interactive` gets a
//! pseudo-terminal, and the run is in the audit trail.

use std::path::Path;

use soar_tests::sshd::{ClientKey, SHARED_PORT_SERVER, SshHost, SshProject, require_peers};

use crate::support::text;

const SECRET: &str = "exec-secret-that-must-be-redacted";

#[test]
fn runs_on_every_host_reports_each_status_and_fails_when_one_fails() {
    require_peers();
    let client = ClientKey::generate().unwrap();
    let hosts: Vec<SshHost> = (0..5).map(|_| SshHost::start(&client).unwrap()).collect();
    let refs: Vec<&SshHost> = hosts.iter().collect();
    let project = SshProject::with_deploy(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "hello",
        &refs,
        "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
        "secrets = { API_TOKEN = \"SOAR_EXEC_TEST_TOKEN\" }",
    )
    .unwrap();
    let app = project.dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    // Five hosts on one machine share the service port: SO_REUSEPORT lets
    // every host's service bind it (as in ssh_rollout).
    std::fs::write(
        app.join("app.py"),
        [
            r#"import os, socket, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
"#,
            SHARED_PORT_SERVER,
        ]
        .concat(),
    )
    .unwrap();
    let soar = |args: &[&str]| {
        let out = project
            .command(args)
            .env("SOAR_EXEC_TEST_TOKEN", SECRET)
            .output()
            .unwrap();
        eprintln!(
            "$ soar {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
    // A deploy lays out `current` and `shared/env` on every host.
    let out = soar(&["deploy", "--yes"]);
    assert!(out.status.success(), "the deploy before exec failed");

    // Fails on the third host only: its release directory is under that
    // host's own root.
    let failing = hosts[2].root.canonicalize().unwrap();
    let command = format!(
        "echo \"in $(basename $(dirname $(pwd -P))) port=$PORT token=$API_TOKEN\"; \
         case \"$(pwd -P)\" in {}/*) echo boom >&2; exit 3;; esac",
        failing.display()
    );
    let started = std::time::Instant::now();
    let out = soar(&["exec", "--parallel", "3", "--", &command]);
    eprintln!("exec on 5 hosts: {:?}", started.elapsed());
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one host failed: exit 1");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the secret leaked"
    );
    for (i, h) in hosts.iter().enumerate() {
        let label = format!("{}@127.0.0.1:{}", soar_tests::sshd::user(), h.port);
        assert!(
            stdout.contains(&format!(
                "{label} | in releases port={} token=[redacted]",
                project.port
            )),
            "host {i}: {stdout}"
        );
        let status = if i == 2 { "exit 3" } else { "exit 0" };
        assert!(
            stdout.contains(&format!("{label}: {status}")),
            "host {i}: {stdout}"
        );
    }
    let failing_label = format!("{}@127.0.0.1:{}", soar_tests::sshd::user(), hosts[2].port);
    assert!(
        stdout.contains(&format!("{failing_label} ! boom")),
        "{stdout}"
    );

    // --host picks one; its status is the exit code.
    let out = soar(&["exec", "--host", &hosts[2].endpoint(), "--", &command]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout).matches(" | in releases").count(), 1);
    let out = soar(&["exec", "--host", "203.0.113.9", "--", "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a host of this environment"));

    // --interactive: a pseudo-terminal on the host (`script` gives this
    // test a terminal to run soar on); the host's status is the exit code.
    let toml = project.dir.path().join("soar.toml");
    let line = format!(
        "{} -c {} exec --interactive --host {} -- 'tty; echo TERM=$TERM; exit 4'",
        env!("CARGO_BIN_EXE_soar"),
        toml.display(),
        hosts[0].endpoint()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env("SOAR_EXEC_TEST_TOKEN", SECRET)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("script (util-linux)");
    let screen = text(&out.stdout);
    eprintln!("$ script -qec '{line}'\n{screen}");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("TERM=xterm"), "{screen}");
    assert_eq!(out.status.code(), Some(4), "{screen}");

    // Audited like a deploy.
    let out = soar(&["history"]);
    let history = text(&out.stdout);
    assert!(history.contains("exec"), "{history}");
    assert!(!history.contains(SECRET));
}
