//! The token never reaches the plugin.
//!
//! The hostile plugin's "echo" mode sends credentialed requests to a real
//! echo server that reflects the `Authorization` it received (in its JSON
//! body, in a field of its own and in a response header), then hands back
//! everything it could observe: every response header and body, its
//! environment, the claims of the credential. It also logs it, prints it, and
//! in one run panics with it. The test checks that the echo server DID get the
//! token (so injection works and there was something to leak), and then scans
//! everything the plugin returned, every journal event, every error message
//! and everything the plugin sent back out for the token's value.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use soar::broker::http::HttpLimits;
use soar::contract::{ChangePlan, Context};
use soar::journal::Journal;
use soar::runtime::{CallError, Limits, Plugin, Runtime};
use soar::session::{Session, SessionConfig};
use soar_tests::components;
use soar_tests::servers::{Recorded, Server};

use crate::support::{self, Vars};

/// A token unique to this run, shaped like a JWT so that the host's
/// `credential-claims` would decode it if it ever treated it as capturable.
/// Returns the token and the secret subject inside it.
fn unique_token() -> (String, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let subject = format!("soar-secret-subject-{}-{nanos:x}", std::process::id());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"none"}"#),
        b64.encode(json!({ "sub": subject }).to_string()),
        b64.encode(format!("sig-{nanos:x}")),
    );
    (token, subject)
}

/// The hostile plugin with its "api" endpoint on one echo server (the
/// credential's only endpoint) and "files" on another.
struct Fixture {
    plugin: Plugin,
    api: Server,
    files: Server,
    journal: Arc<Journal>,
    token: String,
    subject: String,
    /// Every error message the calls produced, for the final scan.
    errors: std::sync::Mutex<Vec<String>>,
    _runtime: Runtime,
}

impl Fixture {
    async fn new() -> Self {
        let runtime = support::runtime(Limits {
            memory_bytes: 64 << 20,
            compute_budget: Duration::from_secs(2),
            invocation_timeout: Duration::from_secs(30),
            log_records: 100,
            stdio_bytes: 64 << 10,
        });
        let plugin = runtime
            .load("hostile", components::hostile())
            .await
            .expect("load the hostile plugin");
        let (token, subject) = unique_token();
        Self {
            plugin,
            api: Server::start(),
            files: Server::start(),
            journal: Arc::new(Journal::default()),
            token,
            subject,
            errors: Default::default(),
            _runtime: runtime,
        }
    }

    fn session(&self) -> Arc<Session> {
        self.session_with(BTreeMap::new())
    }

    /// A session whose environment configures `service` secrets.
    fn session_with(&self, service: BTreeMap<String, String>) -> Arc<Session> {
        Arc::new(
            Session::new(
                self.plugin.description(),
                SessionConfig {
                    grants: support::grants(&[
                        ("api", self.api.url()),
                        ("files", self.files.url()),
                    ]),
                    credential_env: BTreeMap::new(),
                    secrets: Box::new(Vars::new([("SOAR_TEST_TOKEN", self.token.as_str())])),
                    artifact: None,
                    journal: self.journal.clone(),
                    http_limits: HttpLimits {
                        backoff_base: Duration::from_millis(10),
                        backoff_max: Duration::from_millis(100),
                        ..HttpLimits::default()
                    },
                },
            )
            .expect("session")
            .with_service_secrets(
                service
                    .into_iter()
                    .map(|(k, v)| (k, soar::credentials::Secret::new(v)))
                    .collect(),
            ),
        )
    }

    /// `plan` in `session`, remembering any error message.
    async fn plan_in(
        &self,
        session: &Arc<Session>,
        settings: Value,
    ) -> Result<ChangePlan, CallError> {
        let ctx = Context {
            app: "app".into(),
            environment: "test".into(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: None,
        };
        let r = self.plugin.plan(session.clone(), &ctx).await;
        if let Err(e) = &r {
            self.errors.lock().unwrap().push(e.to_string());
        }
        r
    }

    async fn plan(&self, settings: Value) -> Result<ChangePlan, CallError> {
        self.plan_in(&self.session(), settings).await
    }

    /// Fail if the token, or the secret inside it, is anywhere in `text`.
    fn assert_clean(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.token),
            "the token leaked into {what}:\n{text}"
        );
        assert!(
            !text.contains(&self.subject),
            "the token's claims leaked into {what}:\n{text}"
        );
    }

    /// The final scan: the journal (as the audit trail would persist it)
    /// and every error message.
    fn assert_journal_and_errors_clean(&self) {
        let events = serde_json::to_string(&self.journal.events()).expect("journal as JSON");
        self.assert_clean("the journal", &events);
        for e in self.errors.lock().unwrap().iter() {
            self.assert_clean("an error message", e);
        }
    }
}

/// What a server received, minus the one header the host is meant to inject.
fn without_authorization(r: &Recorded) -> String {
    let headers: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k != "authorization")
        .collect();
    format!(
        "{} {} {:?} {headers:?} {}",
        r.method,
        r.path,
        r.query,
        String::from_utf8_lossy(&r.body)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_the_plugin() {
    let f = Fixture::new().await;
    let url = format!("{}/echo", f.api.url());
    let plan = f
        .plan(json!({"mode": "echo", "url": url, "credential": "token", "body": "hello"}))
        .await
        .expect("echo mode");

    // Injection works: the API received the token, on both requests.
    let received = f.api.requests();
    assert_eq!(received.len(), 2, "{received:?}");
    let bearer = format!("Bearer {}", f.token);
    for r in &received {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()), "{r:?}");
        // Nothing else the server got carries it: in particular not the
        // second request's body, which is everything the plugin saw.
        f.assert_clean("a request the plugin sent", &without_authorization(r));
    }
    assert_eq!(received[0].body, b"hello");

    // The plugin saw the reflections, scrubbed.
    let seen: Value = serde_json::from_str(&plan.notes[0]).expect("echo returns JSON");
    let first = &seen["responses"][0];
    assert_eq!(first["status"], 200);
    let headers: BTreeMap<String, String> =
        serde_json::from_value::<Vec<(String, String)>>(first["headers"].clone())
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(headers["x-echo-authorization"], "Bearer [redacted]");
    let body: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["authorization"], "Bearer [redacted]");
    let reflected: BTreeMap<String, String> = body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().into(),
                kv[1].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(reflected["authorization"], "Bearer [redacted]");
    assert_eq!(seen["env"], json!({}), "the plugin has no environment");
    assert_eq!(
        seen["claims"],
        Value::Null,
        "declared credentials have no claims"
    );
    assert!(
        String::from_utf8_lossy(&received[1].body).contains("Bearer [redacted]"),
        "the plugin sent back what it saw"
    );

    // Everything the plugin returned.
    f.assert_clean("the plan", &format!("{plan:?}"));
    for c in &plan.changes {
        f.assert_clean("a change payload", &c.payload);
        f.assert_clean("a change reason", &c.reason);
    }

    // The journal holds its logs and prints, scrubbed.
    let events = serde_json::to_string(&f.journal.events()).unwrap();
    for expected in [
        "everything I saw",
        "[stdout] stdout:",
        "[stderr] stderr:",
        "/echo",
    ] {
        assert!(events.contains(expected), "{expected:?} not journaled");
    }
    f.assert_journal_and_errors_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_with_everything_seen_shows_no_token() {
    let f = Fixture::new().await;
    let err = f
        .plan(json!({
            "mode": "echo",
            "url": format!("{}/echo", f.api.url()),
            "credential": "token",
            "panic_after": true,
        }))
        .await
        .expect_err("the plugin panics")
        .to_string();
    assert!(err.contains("panicked"), "{err}");
    assert!(err.contains("Bearer [redacted]"), "{err}");
    assert_eq!(
        f.api.requests()[0].header("authorization"),
        Some(format!("Bearer {}", f.token).as_str())
    );
    f.assert_journal_and_errors_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_is_denied_toward_a_host_it_is_not_bound_to() {
    let f = Fixture::new().await;
    // "files" is declared and granted, but the token is bound to "api" only.
    let err = f
        .plan(json!({
            "mode": "fetch",
            "url": format!("{}/upload", f.files.url()),
            "credential": "token",
        }))
        .await
        .expect_err("denied")
        .to_string();
    for needle in [
        "credential 'token' of plugin 'hostile' is not bound to",
        f.files.url(),
        "only sent to the endpoints it was declared for",
    ] {
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    }
    assert!(f.files.requests().is_empty(), "the request was sent anyway");
    // An undeclared credential name is denied too.
    let err = f
        .plan(json!({
            "mode": "fetch",
            "url": format!("{}/echo", f.api.url()),
            "credential": "aws",
        }))
        .await
        .expect_err("denied")
        .to_string();
    assert!(err.contains("neither declared nor captured"), "{err}");
    assert!(f.api.requests().is_empty());
    f.assert_journal_and_errors_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_off_the_bound_host_drops_the_credential() {
    let f = Fixture::new().await;
    let landing = format!("{}/landing", f.files.url());
    let plan = f
        .plan(json!({
            "mode": "fetch",
            "url": format!("{}/redirect?to={landing}", f.api.url()),
            "credential": "token",
        }))
        .await
        .expect("the redirect to a declared endpoint is followed");
    f.assert_clean("the plan", &format!("{plan:?}"));
    let api = f.api.requests();
    assert_eq!(
        api[0].header("authorization"),
        Some(format!("Bearer {}", f.token).as_str())
    );
    let files = f.files.requests();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, "/landing");
    assert_eq!(
        files[0].header("authorization"),
        None,
        "the token followed the redirect to another host"
    );
    f.assert_journal_and_errors_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capturing_the_reflected_token_is_refused() {
    let f = Fixture::new().await;
    let session = f.session();
    // The echo reflects the Authorization at /authorization; a plugin that
    // captures it as a credential of its own would have the host send the
    // token wherever that credential goes. An echoed value is refused, and
    // the refusal quotes nothing.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "fetch",
                "url": format!("{}/echo", f.api.url()),
                "credential": "token",
                "capture": ["stolen", "/authorization"],
            }),
        )
        .await
        .expect_err("an echoed token is no credential")
        .to_string();
    assert!(err.contains("holds a secret the host already has"), "{err}");
    f.assert_clean("the error", &err);
    // Nothing was kept under that name.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "fetch",
                "url": format!("{}/echo", f.api.url()),
                "credential": "stolen",
            }),
        )
        .await
        .expect_err("no such credential")
        .to_string();
    assert!(err.contains("neither declared nor captured"), "{err}");
    assert_eq!(f.api.requests().len(), 1);
    f.assert_journal_and_errors_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_secrets_go_only_to_the_providers_api() {
    let f = Fixture::new().await;
    let value = format!("{}-service-secret", f.subject);
    let session = f.session_with(BTreeMap::from([("API_KEY".to_string(), value.clone())]));
    // Toward the credential-bound API the host splices the value in, and the
    // echo of it comes back to the plugin scrubbed.
    let plan = f
        .plan_in(
            &session,
            json!({
                "mode": "fetch",
                "method": "post",
                "url": format!("{}/store", f.api.url()),
                "credential": "token",
                "body": "key=",
                "secret": "API_KEY",
            }),
        )
        .await
        .expect("sent");
    let received = f.api.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, format!("key={value}").into_bytes());
    let seen = format!("{plan:?}");
    assert!(!seen.contains(&value), "the plugin saw the secret: {seen}");
    // Anywhere else it is refused before sending.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "fetch",
                "method": "post",
                "url": format!("{}/exfiltrate", f.files.url()),
                "secret": "API_KEY",
            }),
        )
        .await
        .expect_err("denied")
        .to_string();
    assert!(
        err.contains("may send service secrets only to its provider's API"),
        "{err}"
    );
    assert!(f.files.requests().is_empty());
    // Unknown names are explained.
    let err = f
        .plan_in(
            &session,
            json!({ "mode": "fetch", "method": "post", "url": format!("{}/x", f.api.url()), "secret": "NOPE" }),
        )
        .await
        .expect_err("invalid")
        .to_string();
    assert!(
        err.contains("does not configure") && err.contains("API_KEY"),
        "{err}"
    );
    assert!(
        !serde_json::to_string(&f.journal.events())
            .unwrap()
            .contains(&value)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_credentials_stay_on_the_host_and_go_only_where_allowed() {
    let f = Fixture::new().await;
    let session = f.session();
    let issue = json!([
        "ns",
        "/namespace/api_host",
        "/namespace/uuid",
        "/namespace/key"
    ]);
    // The provider's API hands out a Basic credential for another origin the
    // plugin may reach (`files`, like a Functions namespace's api_host); the
    // plugin then uses it there by name.
    let plan = f
        .plan_in(
            &session,
            json!({
                "mode": "issue",
                "url": format!("{}/issue?to={}", f.api.url(), f.files.url()),
                "credential": "token",
                "issue": issue,
                "then_url": format!("{}/echo", f.files.url()),
            }),
        )
        .await
        .expect("issue, then use");
    let key = f.api.issued_keys().pop().expect("the API issued a key");
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("issued-user:{key}"))
    );
    let seen: Value = serde_json::from_str(&plan.notes[0]).unwrap();
    assert_eq!(seen["namespace"]["key"], "[captured:ns]");
    assert_eq!(
        seen["namespace"]["uuid"], "issued-user",
        "the user stays readable"
    );
    assert_eq!(
        f.files.requests()[0].header("authorization"),
        Some(header.as_str()),
        "the host injected the issued credential"
    );
    let everything = format!("{plan:?}");
    assert!(!everything.contains(&key), "the key reached the plugin");
    assert!(
        !everything.contains(&header[6..]),
        "the reflected Basic header reached the plugin"
    );
    let events = serde_json::to_string(&f.journal.events()).unwrap();
    assert!(!events.contains(&key) && !events.contains(&header[6..]));

    // Only the provider's API (a credential-bound origin) may issue.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "issue",
                "url": format!("{}/issue?to={}", f.files.url(), f.api.url()),
                "issue": issue,
            }),
        )
        .await
        .expect_err("a host without a declared credential cannot issue");
    assert!(
        err.to_string().contains("only from its provider's API"),
        "{err}"
    );

    // An issued credential is bound only to an origin the plugin may reach.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "issue",
                "url": format!("{}/issue?to=https://collector.evil.example", f.api.url()),
                "credential": "token",
                "issue": issue,
            }),
        )
        .await
        .expect_err("an undeclared origin");
    assert!(err.to_string().contains("may not reach"), "{err}");

    // And it is sent nowhere but its origin.
    let err = f
        .plan_in(
            &session,
            json!({
                "mode": "issue",
                "url": format!("{}/issue?to={}", f.api.url(), f.files.url()),
                "credential": "token",
                "issue": issue,
                "then_url": format!("{}/echo", f.api.url()),
            }),
        )
        .await
        .expect_err("the issued credential toward another origin");
    assert!(err.to_string().contains("not bound to"), "{err}");
    f.assert_journal_and_errors_clean();
}
