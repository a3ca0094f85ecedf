//! Upload byte progress: `soar deploy` of a multi-MiB artifact to two SSH
//! hosts (real OpenSSH `sshd` on loopback) draws a bar per host and one for
//! the fleet on a terminal, each ending at the bytes really sent; a piped
//! run, `--quiet` and `--json` draw none.
//!
//! The terminal is a real pseudo-terminal: util-linux `script` runs the
//! built `soar` on one and copies what it drew to its own stdout, escape
//! sequences and all.

use std::path::Path;
use std::process::{Command, Stdio};

use soar_tests::sshd::{ClientKey, SHARED_PORT_SERVER, SshHost, SshProject, require_peers};

/// The release's exact size: 6 MiB, shown by the bars as `6.00 MiB`.
const SIZE: usize = 6 << 20;

/// The release of `version` into `dir/app`: a service answering its
/// version (both hosts' services share the loopback port, hence
/// `SO_REUSEPORT`) and a blob of random bytes (nothing to compress) that
/// brings the two files to exactly [`SIZE`] bytes: the bars and the plan
/// cover the whole release, not one file.
fn write_release(dir: &Path, version: &str) {
    let app = format!(
        r#"import os, socket, http.server
VERSION = "{version}"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
{serve}"#,
        serve = SHARED_PORT_SERVER
    );
    let dir = dir.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), &app).unwrap();
    // xorshift64: random enough that nothing on the way could compress it.
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ version.len() as u64;
    let blob: Vec<u8> = (0..SIZE - app.len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("blob.bin"), blob).unwrap();
}

/// Single-quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Run `soar <args>` for `project` on a pseudo-terminal; what it drew.
fn on_a_terminal(project: &SshProject, args: &[&str]) -> (bool, String) {
    let mut line = vec![
        "env".to_string(),
        "-u".into(),
        "SSH_AUTH_SOCK".into(),
        "TERM=xterm-256color".into(),
        sh_quote(env!("CARGO_BIN_EXE_soar")),
        "-c".into(),
        sh_quote(&project.dir.path().join("soar.toml").display().to_string()),
    ];
    line.extend(args.iter().map(|a| sh_quote(a)));
    let out = Command::new("script")
        .args(["-qfec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("running util-linux script");
    let drawn = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ script soar {} -> {}\n{drawn}",
        args.join(" "),
        out.status
    );
    (out.status.success(), drawn)
}

/// Whether `text` holds a drawn upload bar (its `sent/total` bytes).
fn has_bar(text: &str) -> bool {
    text.contains(" MiB/") || text.contains(" KiB/")
}

#[test]
fn a_fleet_upload_draws_byte_bars_on_a_terminal_only() {
    if !soar_tests::sshd::available() || !Path::new("/usr/bin/script").exists() {
        eprintln!("skipping: needs sshd and util-linux script");
        return;
    }
    require_peers();
    let key = ClientKey::generate().unwrap();
    let hosts = [SshHost::start(&key).unwrap(), SshHost::start(&key).unwrap()];
    let project = SshProject::new(
        Path::new(env!("CARGO_BIN_EXE_soar")),
        "bars",
        &[&hosts[0], &hosts[1]],
        "kind = \"script\"\npath = \"app\"\ncommand = \"python3 app.py\"",
    )
    .unwrap();
    let dir = project.dir.path();

    write_release(dir, "v1");
    let (ok, drawn) = on_a_terminal(&project, &["deploy", "--yes"]);
    assert!(ok, "the deploy on a terminal failed:\n{drawn}");
    // Each host's bar ends at the whole file, the fleet's at both.
    for h in &hosts {
        let name = format!("ssh {}@127.0.0.1:{}", soar_tests::sshd::user(), h.port);
        // The last drawing of this host's bar: from its name to the next
        // escape sequence, line end or bar.
        let (_, last) = drawn
            .rsplit_once(name.as_str())
            .unwrap_or_else(|| panic!("no bar for {name} in:\n{drawn}"));
        let bar = last
            .split(['\x1b', '\r', '\n'])
            .next()
            .and_then(|b| b.split(" ssh ").next())
            .unwrap_or_default();
        assert!(
            bar.contains("6.00 MiB/6.00 MiB"),
            "{name}'s last bar: {bar}"
        );
    }
    assert!(
        drawn.contains("all 2 hosts") && drawn.contains("12.00 MiB/12.00 MiB"),
        "no fleet bar at 12 MiB in:\n{drawn}"
    );
    assert!(
        drawn.contains(&format!("{SIZE} bytes sent")),
        "the per-host lines report the same bytes:\n{drawn}"
    );

    // Piped: the plain lines only.
    write_release(dir, "v2");
    let out = project.soar(&["deploy", "--yes"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !has_bar(&err) && !err.contains('\x1b'),
        "a piped run drew a bar:\n{err}"
    );
    assert!(err.contains(&format!("{SIZE} bytes sent")), "{err}");

    // On a terminal but --quiet, or --json: no bar either.
    for (v, flag) in [("v3", "--quiet"), ("v4", "--json")] {
        write_release(dir, v);
        let (ok, drawn) = on_a_terminal(&project, &["deploy", "--yes", flag]);
        assert!(ok, "the {flag} deploy failed:\n{drawn}");
        assert!(!has_bar(&drawn), "{flag} drew a bar:\n{drawn}");
    }
    assert_eq!(project.get("/").as_deref().map(str::trim), Some("v4"));
}
