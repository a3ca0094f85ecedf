//! The hostile-plugin suite: real components (built from `tests/plugins/` by
//! the `soar-tests` build script) that try to escape or exhaust the sandbox.
//! Each case must end with a clear, specific error (or a bound that held), and
//! the same [`Runtime`] must load and run a well-behaved call right after it:
//! a hostile plugin may fail its own call, never the host.
//!
//! The network cases only ever reach the loopback fakes of
//! `soar_tests::servers`; every other destination is refused by the broker
//! before any connection is made, which is what these tests assert.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use soar::broker::http::HttpLimits;
use soar::contract::{ChangePlan, Context};
use soar::journal::{Event, Journal};
use soar::runtime::{CallError, Limits, Plugin, Runtime};
use soar::session::{Session, SessionConfig};
use soar_tests::components;
use soar_tests::servers::{HugeServer, Server};
use soar_tests::sshd::free_port;

use crate::support::{self, Vars};

/// Response cap for these tests: small, so the 1 GiB cases end quickly.
const RESPONSE_CAP: u64 = 4 << 20;
/// Token the test secret source hands out (this suite never expects to see it).
const TOKEN: &str = "hostile-suite-token-3b9e41";

/// Tight limits, so the runaway cases end in about a second.
fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        compute_budget: Duration::from_millis(1500),
        invocation_timeout: Duration::from_secs(30),
        log_records: 50,
        stdio_bytes: 4096,
    }
}

fn http_limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        default_timeout: Duration::from_secs(20),
        max_timeout: Duration::from_secs(20),
        max_response_bytes: RESPONSE_CAP,
        max_request_bytes: 64 << 20,
        max_redirects: 5,
        max_attempts: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    }
}

/// One runtime with the hostile plugin loaded, an echo server for its "api"
/// endpoint, and the journal every session records into.
struct Harness {
    runtime: Runtime,
    plugin: Plugin,
    echo: Server,
    journal: Arc<Journal>,
}

impl Harness {
    async fn new() -> Self {
        Self::with_limits(limits()).await
    }

    async fn with_limits(limits: Limits) -> Self {
        let runtime = support::runtime(limits);
        let plugin = runtime
            .load("hostile", components::hostile())
            .await
            .expect("the hostile plugin loads: it only misbehaves in plan()");
        Self {
            runtime,
            plugin,
            echo: Server::start(),
            journal: Arc::new(Journal::default()),
        }
    }

    /// A session whose "api" endpoint is `api`.
    fn session(&self, api: &str) -> Arc<Session> {
        Arc::new(
            Session::new(
                self.plugin.description(),
                SessionConfig {
                    grants: support::grants(&[("api", api)]),
                    credential_env: BTreeMap::new(),
                    secrets: Box::new(Vars::new([("SOAR_TEST_TOKEN", TOKEN)])),
                    artifact: None,
                    journal: self.journal.clone(),
                    http_limits: http_limits(),
                },
            )
            .expect("session"),
        )
    }

    /// `plan` with `settings`, the "api" endpoint on the echo server.
    async fn plan(&self, settings: Value) -> Result<ChangePlan, CallError> {
        self.plan_with_api(self.echo.url(), settings).await
    }

    async fn plan_with_api(&self, api: &str, settings: Value) -> Result<ChangePlan, CallError> {
        let session = self.session(api);
        let ctx = Context {
            app: "app".into(),
            environment: "test".into(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: None,
        };
        self.plugin.plan(session, &ctx).await
    }

    /// The call must fail; its message.
    async fn failure(&self, settings: Value) -> String {
        failure_of(self.plan(settings).await)
    }

    /// The host keeps working after a hostile call: the same plugin answers
    /// a normal call, the runtime still loads components, and the broker
    /// still delivers a request.
    async fn assert_still_works(&self) {
        let plan = self
            .plan(json!({"mode": "ok"}))
            .await
            .expect("a normal call after a hostile one");
        assert_eq!(plan.notes, ["ok"]);
        let again = self
            .runtime
            .load("hostile-again", components::hostile())
            .await
            .expect("the runtime still loads components");
        assert_eq!(again.description().name, "hostile");
        let before = self.echo.hits("/still-works");
        let plan = self
            .plan(json!({
                "mode": "fetch",
                "url": format!("{}/still-works", self.echo.url()),
                "credential": "token",
            }))
            .await
            .expect("a brokered request after a hostile call");
        assert_eq!(fetched(&plan)["status"], 200);
        assert_eq!(self.echo.hits("/still-works"), before + 1);
    }

    /// HTTP events the broker recorded, with their outcome.
    fn http_outcomes(&self) -> Vec<String> {
        self.journal
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Http { url, outcome, .. } => Some(format!("{url}: {outcome}")),
                _ => None,
            })
            .collect()
    }
}

fn failure_of(r: Result<ChangePlan, CallError>) -> String {
    match r {
        Ok(plan) => panic!("the hostile call succeeded: {plan:?}"),
        Err(e) => e.to_string(),
    }
}

/// The response a "fetch" call returned, as JSON.
fn fetched(plan: &ChangePlan) -> Value {
    serde_json::from_str(&plan.notes[0]).expect("fetch returns its response as JSON")
}

fn assert_contains(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "expected {n:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_host_files_fails_and_reveals_nothing() {
    let h = Harness::new().await;
    let written = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-wrote-{}", std::process::id()));
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let err = h
        .failure(json!({
            "mode": "read-file",
            "paths": ["/etc/hostname", "/etc/passwd", "/", ".", manifest],
            "write": written,
        }))
        .await;
    assert_contains(&err, &["no file access", "read /etc/hostname", "write "]);
    // Whatever the host's files hold never reached the plugin.
    for secret_file in ["/etc/hostname", "/etc/passwd", manifest] {
        if let Ok(text) = std::fs::read_to_string(secret_file) {
            for line in text.lines().map(str::trim).filter(|l| l.len() >= 4) {
                assert!(!err.contains(line), "{secret_file} leaked: {line}");
            }
        }
    }
    assert!(
        !written.exists(),
        "the plugin created {}",
        written.display()
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_empty() {
    let h = Harness::new().await;
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has an environment"
    );
    let plan = h.plan(json!({"mode": "env"})).await.expect("env mode");
    assert_eq!(plan.notes[0], "vars={}", "{:?}", plan.notes);
    assert_eq!(plan.notes[1], "args=[]", "{:?}", plan.notes);
    assert!(!format!("{plan:?}").contains(TOKEN));
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_refused_and_nothing_connects() {
    let h = Harness::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    // Same port over UDP, when free, to see a datagram arrive if one did.
    let udp = std::net::UdpSocket::bind(addr).ok();
    let err = h
        .failure(json!({"mode": "socket", "addr": addr.to_string()}))
        .await;
    assert_contains(
        &err,
        &["no network", "tcp 127.0.0.1", "udp ", "dns localhost"],
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the plugin reached a local socket: {other:?}"),
    }
    if let Some(udp) = udp {
        udp.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            udp.recv_from(&mut buf).is_err(),
            "the plugin sent a datagram"
        );
    }
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_host_is_denied_before_connecting() {
    let h = Harness::new().await;
    let err = h
        .failure(json!({"mode": "fetch", "url": "https://evil.example.net/steal"}))
        .await;
    assert_contains(
        &err,
        &["denied by the host", "evil.example.net", "did not declare"],
    );
    let outcomes = h.http_outcomes();
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("evil.example.net") && o.contains("denied:")),
        "{outcomes:?}"
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_but_ungranted_host_names_the_grant_to_add() {
    let h = Harness::new().await;
    let err = h
        .failure(json!({"mode": "fetch", "url": "https://a1.cdn.hostile.example/x"}))
        .await;
    assert_contains(
        &err,
        &[
            "you have not granted it",
            "[env.test.grants] in soar.toml",
            "hosts = [\"a1.cdn.hostile.example\"]",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_undeclared_host_is_denied() {
    let h = Harness::new().await;
    let err = h
        .failure(json!({
            "mode": "fetch",
            "url": format!("{}/redirect?to=https://evil.example.net/collect", h.echo.url()),
            "credential": "token",
        }))
        .await;
    assert_contains(&err, &["evil.example.net", "did not declare"]);
    // The first hop was served; the second never left the broker.
    assert_eq!(h.echo.hits("/redirect"), 1);
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literals_are_denied_directly_and_through_redirects() {
    let h = Harness::new().await;
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "https://10.0.0.1/".to_string(),
        "http://[::1]:8080/".to_string(),
        // Same address as the granted override, another port: not granted.
        format!("http://127.0.0.1:{}/", free_port().expect("a free port")),
    ] {
        let err = h.failure(json!({"mode": "fetch", "url": url})).await;
        assert_contains(&err, &["IP address literals"]);
    }
    let err = h
        .failure(json!({
            "mode": "fetch",
            "url": format!("{}/redirect?to=http://169.254.169.254/latest/meta-data/", h.echo.url()),
        }))
        .await;
    assert_contains(&err, &["169.254.169.254", "IP address literals"]);
    h.assert_still_works().await;
}

/// A port nothing listens on (bound, then released).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_private_address_is_denied() {
    let h = Harness::new().await;
    // "internal" is declared as https://localhost: allowed by the policy, but
    // the user never named it, so the resolver refuses its loopback address
    // before any connection is attempted.
    let err = h
        .failure(json!({"mode": "fetch", "url": "https://localhost/admin"}))
        .await;
    assert_contains(
        &err,
        &[
            "denied by the host",
            "localhost resolves to",
            "private or local address",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_may_not_send_its_own_authorization_to_a_credential_bound_host() {
    let h = Harness::new().await;
    for (name, value) in [
        ("Authorization", "Bearer forged"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("Cookie", "session=stolen"),
    ] {
        let err = h
            .failure(json!({
                "mode": "fetch",
                "url": format!("{}/echo", h.echo.url()),
                "headers": [[name, value]],
            }))
            .await;
        let lower = name.to_ascii_lowercase();
        assert_contains(
            &err,
            &[
                &format!("set its own '{lower}' header"),
                "bound to a credential",
            ],
        );
    }
    assert_eq!(h.echo.hits("/echo"), 0, "a forged request reached the API");
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_may_not_set_the_host_header() {
    let h = Harness::new().await;
    let err = h
        .failure(json!({
            "mode": "fetch",
            "url": format!("{}/echo", h.echo.url()),
            "headers": [["Host", "evil.example.net"]],
        }))
        .await;
    assert_contains(&err, &["the host sets the 'host' header itself"]);
    assert_eq!(h.echo.hits("/echo"), 0);
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_by_the_compute_budget() {
    let h = Harness::new().await;
    let err = h.failure(json!({"mode": "loop"})).await;
    assert_contains(
        &err,
        &[
            "failed in plan",
            "computed for more than 1500 ms without returning to the host",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_ends_is_stopped_at_its_deadline() {
    // Sleeping on the host does not spend the compute budget; the wall-clock
    // deadline of the invocation ends it.
    let h = Harness::with_limits(Limits {
        invocation_timeout: Duration::from_secs(2),
        ..limits()
    })
    .await;
    let err = h.failure(json!({"mode": "sleep-forever"})).await;
    assert_contains(&err, &["failed in plan", "exceeded its deadline of 2 s"]);
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_cap() {
    let h = Harness::new().await;
    let err = h.failure(json!({"mode": "memory"})).await;
    assert_contains(
        &err,
        &["failed in plan", "exceeded its memory cap of 64 MiB"],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_exhausts_the_call_stack_not_the_host() {
    let h = Harness::new().await;
    let err = h.failure(json!({"mode": "recursion"})).await;
    assert_contains(&err, &["failed in plan", "exhausted its call stack"]);
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_1_gib_response_is_cut_at_the_cap() {
    let h = Harness::new().await;
    let huge = HugeServer::start();
    let err = failure_of(
        h.plan_with_api(
            huge.url(),
            json!({"mode": "fetch", "url": format!("{}/stream", huge.url())}),
        )
        .await,
    );
    assert_contains(
        &err,
        &[&format!(
            "response larger than the host's cap of {RESPONSE_CAP} bytes"
        )],
    );
    assert_eq!(huge.hits(), 1);
    let outcomes = h.http_outcomes();
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("/stream") && o.contains("too large")),
        "{outcomes:?}"
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_1_gib_response_is_refused_from_its_length() {
    let h = Harness::new().await;
    let huge = HugeServer::start();
    let err = failure_of(
        h.plan_with_api(
            huge.url(),
            json!({"mode": "fetch", "url": format!("{}/declared", huge.url())}),
        )
        .await,
    );
    assert_contains(
        &err,
        &[&format!(
            "response larger than the host's cap of {RESPONSE_CAP} bytes"
        )],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_bounded() {
    let h = Harness::new().await;
    let plan = h
        .plan(json!({"mode": "log-flood", "count": 5000}))
        .await
        .expect("flooding the log is not an error, only bounded");
    assert_eq!(plan.notes, ["logged 5000"]);
    let logs: Vec<(String, String)> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Log { level, message, .. } => Some((level, message)),
            _ => None,
        })
        .collect();
    let records = logs.iter().filter(|(_, m)| m.starts_with("flood ")).count();
    assert_eq!(records, 50, "the journal keeps Limits.log_records records");
    assert!(
        logs.iter().any(|(level, m)| level == "warn"
            && m == "4950 log records dropped: a call keeps at most 50"),
        "{logs:?}"
    );
    for stream in ["[stdout]", "[stderr]"] {
        // Line by line as written, at most Limits.log_records lines, then
        // the rest of the kept bytes with the note of what was dropped.
        let records: Vec<&String> = logs
            .iter()
            .filter(|(_, m)| m.starts_with(stream))
            .map(|(_, m)| m)
            .collect();
        assert!(
            (2..=51).contains(&records.len()),
            "{} {stream} records",
            records.len()
        );
        let kept: usize = records.iter().map(|m| m.len() - stream.len() - 1).sum();
        assert!(kept < 4096 + 200, "{stream} kept {kept} bytes");
        assert_contains(
            records.last().unwrap(),
            &["more bytes dropped: output is capped at 4096 bytes"],
        );
    }
    assert!(logs.len() <= 50 + 1 + 2 * 51, "{} log events", logs.len());
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_with_its_message() {
    let h = Harness::new().await;
    let err = h.failure(json!({"mode": "panic"})).await;
    assert_contains(
        &err,
        &[
            "plugin 'hostile'",
            "failed in plan",
            "panicked",
            "hostile plugin panicked on purpose",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_exit_ends_the_call_not_the_host() {
    let h = Harness::new().await;
    let err = h.failure(json!({"mode": "exit"})).await;
    // The guest's exit(3) becomes a WASI error exit (status 1).
    assert_contains(
        &err,
        &[
            "failed in plan",
            "called exit (status 1) instead of returning a result",
        ],
    );
    assert!(!err.contains("wasm backtrace"), "{err}");
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_to_an_ungranted_host_is_denied() {
    let h = Harness::new().await;
    let err = h
        .failure(json!({"mode": "ssh", "addr": "203.0.113.7:22"}))
        .await;
    assert_contains(
        &err,
        &[
            "denied by the host",
            "may not reach 203.0.113.7:22 over SSH",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_for_an_unknown_contract_version_is_refused_at_load() {
    let h = Harness::new().await;
    let err = match h.runtime.load("future", components::future_wit()).await {
        Ok(_) => panic!("a soar:plugin@9.0.0 component loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert_contains(
        &err,
        &[
            "plugin 'future'",
            "built for soar:plugin@9.0.0",
            "this soar supports soar:plugin@0.2.x, soar:plugin@0.1.x",
        ],
    );
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_components_are_refused_at_load() {
    let h = Harness::new().await;
    assert_contains(
        &load_error(&h.runtime, b"#!/bin/sh\nrm -rf /\n").await,
        &["not a WebAssembly file"],
    );
    assert_contains(
        &load_error(&h.runtime, b"\0asm\x01\0\0\0").await,
        &["core WebAssembly module, not a component"],
    );
    let truncated = &components::hostile()[..components::hostile().len() / 2];
    assert_contains(
        &load_error(&h.runtime, truncated).await,
        &["not a valid component"],
    );
    h.assert_still_works().await;
}

async fn load_error(runtime: &Runtime, bytes: &[u8]) -> String {
    match runtime.load("broken", bytes).await {
        Ok(_) => panic!("a malformed component loaded"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runtime_survives_every_case_in_a_row() {
    // The cases above each use a fresh runtime; here one runtime and one
    // loaded plugin take them back to back, with a normal call after each.
    let h = Harness::new().await;
    for settings in [
        json!({"mode": "read-file"}),
        json!({"mode": "socket", "addr": "127.0.0.1:9"}),
        json!({"mode": "fetch", "url": "https://evil.example.net/"}),
        json!({"mode": "fetch", "url": "https://localhost/"}),
        json!({"mode": "loop"}),
        json!({"mode": "memory"}),
        json!({"mode": "recursion"}),
        json!({"mode": "panic"}),
        json!({"mode": "exit"}),
    ] {
        let err = h.failure(settings.clone()).await;
        assert!(!err.is_empty(), "{settings}");
        let plan = h
            .plan(json!({"mode": "ok"}))
            .await
            .unwrap_or_else(|e| panic!("normal call after {settings}: {e}"));
        assert_eq!(plan.notes, ["ok"]);
    }
    h.assert_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_429_then_200_is_retried_by_the_broker() {
    // Not hostile: proves the fakes and the broker's retry work, so the
    // denials above are the policy's doing and not a broken setup.
    let h = Harness::new().await;
    let plan = h
        .plan(json!({"mode": "fetch", "url": format!("{}/flaky?fail=2", h.echo.url())}))
        .await
        .expect("retried until 200");
    let resp = fetched(&plan);
    assert_eq!(resp["status"], 200);
    assert_eq!(
        serde_json::from_str::<Value>(resp["body"].as_str().unwrap()).unwrap()["hits"],
        3
    );
    assert_eq!(h.echo.hits("/flaky"), 3);
}
