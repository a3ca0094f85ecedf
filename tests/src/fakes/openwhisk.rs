//! A fake of the OpenWhisk REST API, as DigitalOcean Functions serves it at
//! a namespace's `api_host`.
//!
//! A stateful, real HTTP server on `127.0.0.1` (axum on its own thread, like
//! [`super::digitalocean::DigitalOceanFake`], which starts one and points the
//! `api_host` of every Functions namespace at it), so Soar's DigitalOcean
//! plugin can deploy a script and tests can call the deployed function:
//!
//! - HTTP Basic `uuid:key` of a registered namespace on every
//!   `/api/v1/namespaces/...` call (`401` otherwise); the path namespace is
//!   `_` (the credentials' own) or the namespace id (`fn-...`; another one is
//!   `403`);
//! - `GET /api/v1/namespaces`, `GET /api/v1/namespaces/{ns}/actions`
//!   (`limit`, `skip`), `PUT|GET|DELETE|POST /api/v1/namespaces/{ns}/actions/{name}`
//!   (`overwrite`, `code`, `blocking`, `result`);
//! - web actions at `/api/v1/web/{ns}/default/{name}[.http|.json][/rest]`
//!   (no auth, `web-export`, `raw-http`, `final`, `require-whisk-auth`
//!   annotations): the action really runs, `nodejs:*` under `node` and
//!   `python:*` under `python3`, source text or a base64 zip;
//! - errors as `{"error": "...", "code": "<32 hex>"}`, the messages OpenWhisk
//!   sends.
//!
//! Switches inject failures and latency; every call is counted per templated
//! endpoint (`"PUT /api/v1/namespaces/{ns}/actions/{name}"`) and every run is
//! recorded (params, result, logs) so tests can assert them.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::axum_thread::{Bound, ServerThread};

/// The runtime kinds the fake accepts in `exec.kind` (DigitalOcean's, plus
/// `nodejs:20`); `nodejs:default` and `python:default` resolve to
/// `nodejs:18` and `python:3.11` as the platform does. Only `nodejs:*` and
/// `python:*` actions can run; the others are stored but answer `501` when
/// invoked.
pub const KINDS: &[&str] = &[
    "nodejs:14",
    "nodejs:18",
    "nodejs:20",
    "python:3.9",
    "python:3.11",
    "go:1.20",
    "php:8.2",
];

/// The longest an invocation may run before it is killed, unless changed
/// with [`OpenWhiskFake::set_invocation_timeout`]. Action `limits.timeout`
/// is stored but not enforced, so a loaded test machine cannot make a short
/// platform limit flaky.
pub const DEFAULT_INVOCATION_TIMEOUT: Duration = Duration::from_secs(10);

/// An action as the fake stores it.
#[derive(Debug, Clone)]
pub struct FakeAction {
    /// The namespace id (`fn-...`).
    pub namespace: String,
    /// The action name (no package: the fake serves the default package).
    pub name: String,
    /// `0.0.1`, bumped (patch) on every overwrite.
    pub version: String,
    /// `exec.kind`, with `:default` resolved.
    pub kind: String,
    /// `exec.code`: source text, or base64 of a zip when `binary`.
    pub code: String,
    /// `exec.binary`: `code` is a base64 zip.
    pub binary: bool,
    /// `exec.main`, the entry point (`main` when absent).
    pub main: Option<String>,
    /// `parameters` as `(key, value)`, in order.
    pub parameters: Vec<(String, Value)>,
    /// `annotations` as `(key, value)`, in order (the fake adds `exec`).
    pub annotations: Vec<(String, Value)>,
    /// `{"timeout": ms, "memory": MB, "logs": MB, "concurrency": n}`.
    pub limits: Value,
    /// Milliseconds since the epoch of the last write.
    pub updated: u64,
}

impl FakeAction {
    /// The value of annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The value of parameter `key`, if set.
    pub fn parameter(&self, key: &str) -> Option<&Value> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether the action answers at its web URL (`web-export` is `true`).
    pub fn is_web(&self) -> bool {
        truthy(self.annotation("web-export"))
    }
}

/// One run of an action, recorded for assertions.
#[derive(Debug, Clone)]
pub struct FakeInvocation {
    /// 32 hex digits, also sent as `x-openwhisk-activation-id`.
    pub activation_id: String,
    /// The namespace id (`fn-...`).
    pub namespace: String,
    /// The action name.
    pub action: String,
    /// Through the web URL (`true`) or `POST .../actions/{name}` (`false`).
    pub web: bool,
    /// The parameters `main` was called with (`__ow_*` included for web).
    pub params: Value,
    /// `main`'s result, or the HTTP status and message of the failure
    /// (`502` crash, throw or timeout; `501` a kind the fake cannot run).
    pub outcome: Result<Value, (u16, String)>,
    /// The process's stdout then stderr.
    pub logs: String,
    /// Wall time of the run, process start-up included.
    pub duration: Duration,
}

struct Inner {
    url: String,
    /// Namespace id → (uuid, key).
    namespaces: BTreeMap<String, (String, String)>,
    actions: BTreeMap<(String, String), FakeAction>,
    fail_left: u32,
    fail_status: u16,
    latency: Duration,
    timeout: Duration,
    calls: BTreeMap<String, usize>,
    invocations: Vec<FakeInvocation>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle on the fake's namespaces that the DigitalOcean fake's server
/// thread keeps, so namespaces created through `/v2/functions/namespaces`
/// can authenticate here.
#[derive(Clone)]
pub(super) struct Registry {
    inner: Shared,
}

impl Registry {
    pub(super) fn url(&self) -> String {
        lock(&self.inner).url.clone()
    }

    pub(super) fn register(&self, namespace: &str, uuid: &str, key: &str) {
        lock(&self.inner)
            .namespaces
            .insert(namespace.into(), (uuid.into(), key.into()));
    }

    pub(super) fn unregister(&self, namespace: &str) {
        let mut s = lock(&self.inner);
        s.namespaces.remove(namespace);
        s.actions.retain(|(ns, _), _| ns != namespace);
    }
}

/// The fake OpenWhisk server; stops when dropped (runs in progress are
/// killed).
pub struct OpenWhiskFake {
    inner: Shared,
    server: ServerThread,
}

impl OpenWhiskFake {
    /// Start on `127.0.0.1:0` with no namespace: register one with
    /// [`OpenWhiskFake::add_namespace`], or let the DigitalOcean fake do it.
    pub fn start() -> Self {
        let bound = Bound::loopback();
        let inner = Arc::new(Mutex::new(Inner {
            url: bound.url().to_string(),
            namespaces: BTreeMap::new(),
            actions: BTreeMap::new(),
            fail_left: 0,
            fail_status: 500,
            latency: Duration::ZERO,
            timeout: DEFAULT_INVOCATION_TIMEOUT,
            calls: BTreeMap::new(),
            invocations: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = bound.serve("soar-fake-openwhisk", app);
        Self { inner, server }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash: the `api_host`
    /// of the namespaces it serves.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    pub(super) fn registry(&self) -> Registry {
        Registry {
            inner: self.inner.clone(),
        }
    }

    /// Accept Basic `uuid:key` for namespace id `namespace` (`fn-...`), as
    /// creating a namespace does on the platform.
    pub fn add_namespace(&self, namespace: &str, uuid: &str, key: &str) {
        self.registry().register(namespace, uuid, key);
    }

    /// Forget a namespace, its credentials and its actions.
    pub fn remove_namespace(&self, namespace: &str) {
        self.registry().unregister(namespace);
    }

    /// The public URL of web action `name` in namespace id `namespace`
    /// (`{url}/api/v1/web/{namespace}/default/{name}`), as the platform
    /// shows it.
    pub fn web_url(&self, namespace: &str, name: &str) -> String {
        format!("{}/api/v1/web/{namespace}/default/{name}", self.url())
    }

    /// Every stored action, by namespace then name.
    pub fn actions(&self) -> Vec<FakeAction> {
        lock(&self.inner).actions.values().cloned().collect()
    }

    /// One stored action.
    pub fn action(&self, namespace: &str, name: &str) -> Option<FakeAction> {
        lock(&self.inner)
            .actions
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Delete action `name` of namespace id `namespace` behind Soar's back,
    /// as the control panel would; `true` if it existed.
    pub fn remove_action(&self, namespace: &str, name: &str) -> bool {
        lock(&self.inner)
            .actions
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some()
    }

    /// How many runs completed (web and API, successful or not).
    pub fn invocations(&self) -> usize {
        lock(&self.inner).invocations.len()
    }

    /// Every completed run, oldest first.
    pub fn invocation_log(&self) -> Vec<FakeInvocation> {
        lock(&self.inner).invocations.clone()
    }

    /// The next `count` requests (any endpoint, web included) answer
    /// `status` (500, 503, 429...) without doing anything.
    pub fn fail_next(&self, count: u32, status: u16) {
        let mut s = lock(&self.inner);
        s.fail_left = count;
        s.fail_status = status;
    }

    /// Delay before every answer.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.inner).latency = d;
    }

    /// Kill runs after `d` (default [`DEFAULT_INVOCATION_TIMEOUT`]) and
    /// answer `502`.
    pub fn set_invocation_timeout(&self, d: Duration) {
        lock(&self.inner).timeout = d;
    }

    /// Calls per templated endpoint, e.g.
    /// `"PUT /api/v1/namespaces/{ns}/actions/{name}"` → 2 (failed calls
    /// included). Web calls count as
    /// `"GET /api/v1/web/{ns}/{package}/{name}"`.
    pub fn calls(&self) -> BTreeMap<String, usize> {
        lock(&self.inner).calls.clone()
    }

    /// Calls to one templated endpoint.
    pub fn calls_to(&self, endpoint: &str) -> usize {
        lock(&self.inner).calls.get(endpoint).copied().unwrap_or(0)
    }

    /// All calls.
    pub fn total_calls(&self) -> usize {
        lock(&self.inner).calls.values().sum()
    }

    /// Forget the call counters (not the invocation log).
    pub fn reset_calls(&self) {
        lock(&self.inner).calls.clear();
    }
}

// ---------------------------------------------------------------------------
// Helpers shared with the DigitalOcean fake.

static SEQ: AtomicU64 = AtomicU64::new(0);

fn random_bytes(n: usize) -> Vec<u8> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut h = blake3::Hasher::new();
    h.update(&RandomState::new().hash_one(seq).to_le_bytes());
    h.update(
        &SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(&seq.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let mut out = vec![0; n];
    h.finalize_xof().fill(&mut out);
    out
}

/// `len` random lowercase letters and digits, like a namespace key.
pub(super) fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(len)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A random version-4 UUID.
pub(super) fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn random_hex(n_bytes: usize) -> String {
    random_bytes(n_bytes)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn pct_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k, true), pct_decode(v, true))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Answers.

fn ow_error(status: u16, message: impl Into<Value>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({ "error": message.into(), "code": random_hex(16) })),
    )
        .into_response()
}

const NOT_FOUND: &str = "The requested resource does not exist.";

fn not_found() -> Response {
    ow_error(404, NOT_FOUND)
}

fn bad_request(message: impl Into<String>) -> Response {
    ow_error(400, message.into())
}

fn pairs_json(pairs: &[(String, Value)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// The action as the API shows it: `full` with `exec` (and `code` when
/// `code`) and `parameters`, else the list form.
fn action_json(a: &FakeAction, full: bool, code: bool) -> Value {
    let mut exec = Map::new();
    exec.insert("kind".into(), a.kind.clone().into());
    if full && code {
        exec.insert("code".into(), a.code.clone().into());
    }
    exec.insert("binary".into(), a.binary.into());
    if full && let Some(m) = &a.main {
        exec.insert("main".into(), m.clone().into());
    }
    let mut v = json!({
        "namespace": a.namespace,
        "name": a.name,
        "version": a.version,
        "publish": false,
        "exec": exec,
        "annotations": pairs_json(&a.annotations),
        "limits": a.limits,
        "updated": a.updated,
    });
    if full {
        v["parameters"] = pairs_json(&a.parameters);
    }
    v
}

// ---------------------------------------------------------------------------
// Requests.

/// What a request leads to once routed under the lock.
enum Plan {
    Done(Response),
    Web {
        run: Run,
        json_ext: bool,
        cors: bool,
    },
    Invoke {
        run: Run,
        blocking: bool,
        result_only: bool,
    },
}

/// Everything a run needs, taken out of the state so the lock is not held
/// while the action runs.
#[derive(Clone)]
struct Run {
    activation_id: String,
    namespace: String,
    name: String,
    version: String,
    kind: String,
    code: String,
    binary: bool,
    entry: String,
    limits: Value,
    params: Map<String, Value>,
    api_host: String,
    timeout: Duration,
    web: bool,
}

impl Run {
    fn of(s: &Inner, a: &FakeAction, params: Map<String, Value>, web: bool) -> Self {
        Self {
            activation_id: random_hex(16),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            version: a.version.clone(),
            kind: a.kind.clone(),
            code: a.code.clone(),
            binary: a.binary,
            entry: a.main.clone().unwrap_or_else(|| "main".into()),
            limits: a.limits.clone(),
            params,
            api_host: s.url.clone(),
            timeout: s.timeout,
            web,
        }
    }
}

/// The endpoint a request counts under.
fn endpoint(method: &str, path: &str, segs: &[String]) -> String {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let templ = match s.as_slice() {
        ["api", "v1", "namespaces"] => "/api/v1/namespaces".to_string(),
        ["api", "v1", "namespaces", _] => "/api/v1/namespaces/{ns}".to_string(),
        ["api", "v1", "namespaces", _, coll] => format!("/api/v1/namespaces/{{ns}}/{coll}"),
        ["api", "v1", "namespaces", _, coll, ..] => {
            format!("/api/v1/namespaces/{{ns}}/{coll}/{{name}}")
        }
        ["api", "v1", "web", _, _, _, ..] => "/api/v1/web/{ns}/{package}/{name}".to_string(),
        _ => path.to_string(),
    };
    format!("{method} {templ}")
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let raw_segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let segs: Vec<String> = raw_segs.iter().map(|p| pct_decode(p, false)).collect();

    let (latency, failing) = {
        let mut s = lock(&shared);
        *s.calls.entry(endpoint(&method, &path, &segs)).or_default() += 1;
        let failing = (s.fail_left > 0).then(|| {
            s.fail_left -= 1;
            s.fail_status
        });
        (s.latency, failing)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(st) = failing {
        let message = match st {
            429 => "Too many requests in the last minute (injected by the fake).",
            503 => {
                "The server is currently unavailable (because it is overloaded or down for maintenance)."
            }
            _ => "The server encountered an unexpected error (injected by the fake).",
        };
        return ow_error(st, message);
    }

    let plan = {
        let mut s = lock(&shared);
        route(
            &mut s,
            &method,
            &raw_segs,
            &segs,
            &raw_query,
            &parts.headers,
            &body,
        )
    };
    match plan {
        Plan::Done(r) => r,
        Plan::Web {
            run,
            json_ext,
            cors,
        } => {
            let (outcome, _) = execute_and_record(&shared, run.clone()).await;
            web_response(&run, outcome, json_ext, cors)
        }
        Plan::Invoke {
            run,
            blocking,
            result_only,
        } => {
            if !blocking {
                let id = run.activation_id.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = execute_and_record(&shared, run).await;
                });
                return (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({ "activationId": id })),
                )
                    .into_response();
            }
            let (outcome, record) = execute_and_record(&shared, run.clone()).await;
            activation_response(&run, &outcome, &record, result_only)
        }
    }
}

fn route(
    s: &mut Inner,
    method: &str,
    raw_segs: &[&str],
    segs: &[String],
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Plan {
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["api", "v1", "web", ..] => web(s, method, raw_segs, segs, raw_query, headers, body),
        ["api", "v1", "namespaces", rest @ ..] => {
            let rest: Vec<&str> = rest.iter().copied().filter(|p| !p.is_empty()).collect();
            let own = match authenticate(s, headers) {
                Ok(ns) => ns,
                Err(m) => return Plan::Done(ow_error(401, m)),
            };
            if rest.is_empty() {
                return Plan::Done(if method == "GET" {
                    axum::Json(json!([own])).into_response()
                } else {
                    ow_error(405, "HTTP method not allowed, supported methods: GET")
                });
            }
            let ns = rest[0];
            if ns != "_" && ns != own {
                return Plan::Done(ow_error(
                    403,
                    format!("The supplied authentication is not authorized to access '{ns}'."),
                ));
            }
            let q: BTreeMap<String, String> = query_pairs(raw_query).into_iter().collect();
            Plan::Done(match (method, &rest[1..]) {
                ("GET", ["actions"]) => list_actions(s, &own, &q),
                ("PUT", ["actions", name]) => put_action(s, &own, name, &q, body),
                ("GET", ["actions", name]) => match s.actions.get(&(own.clone(), name.to_string()))
                {
                    Some(a) => {
                        let code = q.get("code").is_none_or(|c| c != "false");
                        axum::Json(action_json(a, true, code)).into_response()
                    }
                    None => not_found(),
                },
                ("DELETE", ["actions", name]) => {
                    match s.actions.remove(&(own.clone(), name.to_string())) {
                        Some(a) => axum::Json(action_json(&a, true, true)).into_response(),
                        None => not_found(),
                    }
                }
                ("POST", ["actions", name]) => {
                    let Some(a) = s.actions.get(&(own.clone(), name.to_string())) else {
                        return Plan::Done(not_found());
                    };
                    let mut params: Map<String, Value> = a.parameters.iter().cloned().collect();
                    if !body.is_empty() {
                        match serde_json::from_slice::<Value>(body) {
                            Ok(Value::Object(m)) => params.extend(m),
                            _ => {
                                return Plan::Done(bad_request(
                                    "The request content was malformed: the parameters must be a JSON object.",
                                ));
                            }
                        }
                    }
                    let run = Run::of(s, a, params, false);
                    return Plan::Invoke {
                        run,
                        blocking: q.get("blocking").is_some_and(|b| b == "true"),
                        result_only: q.get("result").is_some_and(|b| b == "true"),
                    };
                }
                (_, ["actions"] | ["actions", _]) => ow_error(
                    405,
                    "HTTP method not allowed, supported methods: GET, PUT, DELETE, POST",
                ),
                _ => not_found(),
            })
        }
        _ => Plan::Done(not_found()),
    }
}

const NO_AUTH: &str =
    "The resource requires authentication, which was not supplied with the request";
const BAD_AUTH: &str = "The supplied authentication is invalid";

/// The namespace id whose Basic credentials the request carries, or the
/// `401` message.
fn authenticate(s: &Inner, headers: &HeaderMap) -> Result<String, &'static str> {
    let Some(h) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return Err(NO_AUTH);
    };
    let (scheme, cred) = h.trim().split_once(' ').ok_or(BAD_AUTH)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BAD_AUTH);
    }
    let cred = B64
        .decode(cred.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(BAD_AUTH)?;
    let (uuid, key) = cred.split_once(':').ok_or(BAD_AUTH)?;
    s.namespaces
        .iter()
        .find(|(_, (u, k))| u == uuid && k == key)
        .map(|(ns, _)| ns.clone())
        .ok_or(BAD_AUTH)
}

fn list_actions(s: &Inner, ns: &str, q: &BTreeMap<String, String>) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 30,
        Some(Ok(0)) => 200,
        Some(Ok(n)) if n <= 200 => n,
        Some(_) => {
            return bad_request(format!(
                "The value '{}' is not in the range of 0 to 200.",
                q["limit"]
            ));
        }
    };
    let skip = match q.get("skip").map(|l| l.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request(format!("The value '{}' is not a number.", q["skip"])),
    };
    let mut items: Vec<&FakeAction> = s.actions.values().filter(|a| a.namespace == ns).collect();
    // Most recently updated first, as OpenWhisk lists.
    items.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.name.cmp(&b.name)));
    let list: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(|a| action_json(a, false, false))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 256
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.' | '-' | ' '))
        && !n.ends_with(' ')
}

/// `[{key, value}]` → pairs, or a message.
fn pairs_of(v: &Value, what: &str) -> Result<Vec<(String, Value)>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "The request content was malformed: {what} must be an array of {{key, value}}."
        ));
    };
    items
        .iter()
        .map(
            |i| match (i.get("key").and_then(Value::as_str), i.get("value")) {
                (Some(k), value) => Ok((k.to_string(), value.cloned().unwrap_or(Value::Null))),
                _ => Err(format!(
                    "The request content was malformed: every entry of {what} needs a string key."
                )),
            },
        )
        .collect()
}

fn bump(version: &str) -> String {
    let mut parts: Vec<u64> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    parts.resize(3, 0);
    format!("{}.{}.{}", parts[0], parts[1], parts[2] + 1)
}

fn put_action(
    s: &mut Inner,
    ns: &str,
    name: &str,
    q: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    if !name_ok(name) {
        return bad_request("The name of the entity contains illegal characters.");
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return bad_request("The request content was malformed: the action must be an object.");
        }
        Err(e) => return bad_request(format!("The request content was malformed: {e}")),
    };
    let key = (ns.to_string(), name.to_string());
    let existing = s.actions.get(&key);
    let overwrite = q.get("overwrite").is_some_and(|o| o == "true");
    if existing.is_some() && !overwrite {
        return ow_error(409, "resource already exists");
    }

    let (kind, code, binary, main) = match (v.get("exec"), existing) {
        (None | Some(Value::Null), Some(a)) => {
            (a.kind.clone(), a.code.clone(), a.binary, a.main.clone())
        }
        (None | Some(Value::Null), None) => {
            return bad_request("The request content was malformed: 'exec' is required.");
        }
        (Some(exec), _) => {
            let Some(kind) = exec.get("kind").and_then(Value::as_str) else {
                return bad_request("The request content was malformed: 'exec.kind' is required.");
            };
            let kind = match kind {
                "nodejs:default" => "nodejs:18",
                "python:default" => "python:3.11",
                k => k,
            };
            if !KINDS.contains(&kind) {
                return bad_request(format!("kind '{kind}' not in Set({})", KINDS.join(", ")));
            }
            let code = match exec.get("code").and_then(Value::as_str) {
                Some(c) if !c.trim().is_empty() => c.to_string(),
                _ => {
                    return bad_request(
                        "The request content was malformed: 'exec.code' must be a non-empty string.",
                    );
                }
            };
            let decoded = B64.decode(code.trim()).ok();
            let binary = match exec.get("binary") {
                Some(Value::Bool(b)) => *b,
                // As the CLI does: a base64 zip is binary.
                None | Some(Value::Null) => decoded.as_ref().is_some_and(|d| d.starts_with(b"PK")),
                Some(_) => {
                    return bad_request(
                        "The request content was malformed: 'exec.binary' must be a boolean.",
                    );
                }
            };
            if binary && decoded.is_none() {
                return bad_request(
                    "The request content was malformed: binary 'exec.code' must be base64.",
                );
            }
            let main = match exec.get("main") {
                None | Some(Value::Null) => None,
                Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
                Some(_) => {
                    return bad_request(
                        "The request content was malformed: 'exec.main' must be a non-empty string.",
                    );
                }
            };
            (kind.to_string(), code, binary, main)
        }
    };
    let parameters = match v.get("parameters") {
        None | Some(Value::Null) => existing.map(|a| a.parameters.clone()).unwrap_or_default(),
        Some(p) => match pairs_of(p, "parameters") {
            Ok(p) => p,
            Err(m) => return bad_request(m),
        },
    };
    let mut annotations = match v.get("annotations") {
        None | Some(Value::Null) => existing.map(|a| a.annotations.clone()).unwrap_or_default(),
        Some(p) => match pairs_of(p, "annotations") {
            Ok(p) => p,
            Err(m) => return bad_request(m),
        },
    };
    annotations.retain(|(k, _)| k != "exec");
    annotations.push(("exec".into(), kind.clone().into()));

    let mut limits = existing
        .map(|a| a.limits.clone())
        .unwrap_or_else(|| json!({ "timeout": 3000, "memory": 256, "logs": 16, "concurrency": 1 }));
    match v.get("limits") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => {
            for (k, lo, hi, unit) in [
                ("timeout", 100u64, 900_000u64, "milliseconds"),
                ("memory", 128, 1024, "MB"),
                ("logs", 0, 16, "MB"),
                ("concurrency", 1, 1, ""),
            ] {
                match l.get(k) {
                    None | Some(Value::Null) => {}
                    Some(x) => match x.as_u64() {
                        Some(n) if (lo..=hi).contains(&n) => limits[k] = n.into(),
                        _ => {
                            return bad_request(format!(
                                "The {k} limit {x} is not in the allowed range [{lo}, {hi}] {unit}."
                            ));
                        }
                    },
                }
            }
        }
        Some(_) => {
            return bad_request("The request content was malformed: 'limits' must be an object.");
        }
    }
    let version = existing.map_or_else(|| "0.0.1".to_string(), |a| bump(&a.version));
    let action = FakeAction {
        namespace: ns.to_string(),
        name: name.to_string(),
        version,
        kind,
        code,
        binary,
        main,
        parameters,
        annotations,
        limits,
        updated: now_ms(),
    };
    let body = action_json(&action, true, true);
    s.actions.insert(key, action);
    axum::Json(body).into_response()
}

// ---------------------------------------------------------------------------
// Web actions.

fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
}

fn web(
    s: &Inner,
    method: &str,
    raw_segs: &[&str],
    segs: &[String],
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Plan {
    // api / v1 / web / {ns} / {package} / {name}[.ext] / rest...
    if segs.len() < 6 || segs[5].is_empty() {
        return Plan::Done(not_found());
    }
    let ns = segs[3].as_str();
    if !s.namespaces.contains_key(ns) || segs[4] != "default" {
        return Plan::Done(not_found());
    }
    let (name, json_ext) = match segs[5].rsplit_once('.') {
        Some((n, "http")) => (n, false),
        Some((n, "json")) => (n, true),
        _ => (segs[5].as_str(), false),
    };
    let Some(a) = s
        .actions
        .get(&(ns.to_string(), name.to_string()))
        .filter(|a| a.is_web())
    else {
        return Plan::Done(not_found());
    };
    let custom_options = truthy(a.annotation("web-custom-options"));
    if method == "OPTIONS" && !custom_options {
        let mut r = StatusCode::OK.into_response();
        cors_headers(r.headers_mut());
        return Plan::Done(r);
    }
    match a.annotation("require-whisk-auth") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => {}
        Some(Value::Bool(true)) => {
            if authenticate(s, headers).ok().as_deref() != Some(ns) {
                return Plan::Done(ow_error(401, NO_AUTH));
            }
        }
        Some(secret) => {
            let want = match secret {
                Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            let got = headers
                .get("x-require-whisk-auth")
                .and_then(|h| h.to_str().ok());
            if got != Some(want.as_str()) {
                return Plan::Done(ow_error(401, NO_AUTH));
            }
        }
    }

    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body_value = |b: &[u8]| -> Value {
        match std::str::from_utf8(b) {
            Ok(t) if is_text(&content_type) => t.into(),
            _ => B64.encode(b).into(),
        }
    };
    let mut request = Map::new();
    if truthy(a.annotation("raw-http")) {
        request.insert("__ow_query".into(), raw_query.into());
        if !body.is_empty() {
            request.insert("__ow_body".into(), body_value(body));
        }
    } else {
        let mut from_request: Vec<(String, Value)> = query_pairs(raw_query)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        if !body.is_empty() {
            if content_type == "application/json" {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(m)) => from_request.extend(m),
                    Ok(_) => from_request.push(("__ow_body".into(), body_value(body))),
                    Err(_) => {
                        return Plan::Done(bad_request(
                            "The request content was malformed: the body is not JSON.",
                        ));
                    }
                }
            } else if content_type == "application/x-www-form-urlencoded" {
                from_request.extend(
                    query_pairs(&String::from_utf8_lossy(body))
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v))),
                );
            } else {
                from_request.push(("__ow_body".into(), body_value(body)));
            }
        }
        let is_final = truthy(a.annotation("final"));
        for (k, v) in from_request {
            let reserved = k.starts_with("__ow_") && k != "__ow_body";
            if reserved || (is_final && a.parameter(&k).is_some()) {
                return Plan::Done(bad_request(
                    "Request defines parameters that are not allowed (e.g., reserved properties).",
                ));
            }
            request.insert(k, v);
        }
    }
    let mut params: Map<String, Value> = a.parameters.iter().cloned().collect();
    params.extend(request);
    let mut hs = Map::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match hs.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                hs.insert(k.as_str().to_string(), v.into());
            }
        }
    }
    let rest = if raw_segs.len() > 6 {
        format!("/{}", raw_segs[6..].join("/"))
    } else {
        String::new()
    };
    params.insert("__ow_method".into(), method.to_ascii_lowercase().into());
    params.insert("__ow_headers".into(), Value::Object(hs));
    params.insert("__ow_path".into(), rest.into());
    let run = Run::of(s, a, params, true);
    Plan::Web {
        run,
        json_ext,
        cors: !custom_options,
    }
}

fn cors_headers(h: &mut HeaderMap) {
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
        ),
    );
}

fn web_response(
    run: &Run,
    outcome: Result<Value, (u16, String)>,
    json_ext: bool,
    cors: bool,
) -> Response {
    let mut r = match outcome {
        Err((st, m)) => ow_error(st, m),
        Ok(result) => match result.get("error") {
            // An application error: an HTTP-shaped error is the answer,
            // anything else a 400 carrying it.
            Some(e) if !json_ext && is_http_shaped(e) => http_result(e),
            Some(e) => ow_error(400, e.clone()),
            None if json_ext => axum::Json(result).into_response(),
            None if is_http_shaped(&result) => http_result(&result),
            // A result without statusCode/headers/body is answered as JSON.
            None => axum::Json(result).into_response(),
        },
    };
    let h = r.headers_mut();
    if cors {
        let mut c = HeaderMap::new();
        cors_headers(&mut c);
        for (k, v) in &c {
            if !h.contains_key(k) {
                h.insert(k.clone(), v.clone());
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&run.activation_id) {
        h.insert("x-openwhisk-activation-id", v);
    }
    r
}

fn is_http_shaped(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        ["statusCode", "headers", "body"]
            .iter()
            .any(|k| m.contains_key(*k))
    })
}

/// `{statusCode, headers, body}` → the HTTP answer, as OpenWhisk's `.http`.
fn http_result(v: &Value) -> Response {
    let invalid = |why: &str| {
        ow_error(
            502,
            format!("The action did not produce a valid HTTP response: {why}"),
        )
    };
    let mut headers = HeaderMap::new();
    match v.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
                    return invalid(&format!("bad header name {k:?}"));
                };
                let values: Vec<String> = match val {
                    Value::Array(a) => a.iter().map(scalar_text).collect(),
                    other => vec![scalar_text(other)],
                };
                for x in values {
                    let Ok(hv) = HeaderValue::from_str(&x) else {
                        return invalid(&format!("bad value for header {k}"));
                    };
                    headers.append(name.clone(), hv);
                }
            }
        }
        Some(_) => return invalid("headers must be an object"),
    }
    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let body: Option<Vec<u8>> = match v.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => {
            match &content_type {
                Some(ct) if !is_text(ct) => {
                    // Binary content types carry base64, as on the platform.
                    Some(
                        B64.decode(t.trim())
                            .unwrap_or_else(|_| t.clone().into_bytes()),
                    )
                }
                Some(_) => Some(t.clone().into_bytes()),
                None => {
                    headers.insert(
                        "content-type",
                        HeaderValue::from_static("text/html; charset=UTF-8"),
                    );
                    Some(t.clone().into_bytes())
                }
            }
        }
        Some(other) => {
            if content_type.is_none() {
                headers.insert("content-type", HeaderValue::from_static("application/json"));
            }
            Some(other.to_string().into_bytes())
        }
    };
    let status = match v.get("statusCode") {
        None | Some(Value::Null) => {
            if body.is_some() {
                200
            } else {
                204
            }
        }
        Some(x) => match x
            .as_u64()
            .or_else(|| x.as_str().and_then(|t| t.parse().ok()))
        {
            Some(n) if (100..=599).contains(&n) => n as u16,
            _ => return invalid(&format!("statusCode {x} is not an HTTP status")),
        },
    };
    let mut r = Response::new(Body::from(body.unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    *r.headers_mut() = headers;
    r
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn activation_response(
    run: &Run,
    outcome: &Result<Value, (u16, String)>,
    record: &FakeInvocation,
    result_only: bool,
) -> Response {
    let (status, status_code, result) = match outcome {
        Ok(r) if r.get("error").is_some() => ("application error", 1, r.clone()),
        Ok(r) => ("success", 0, r.clone()),
        Err((_, m)) => ("action developer error", 2, json!({ "error": m })),
    };
    let success = status_code == 0;
    let http = if success {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    if result_only {
        return (http, axum::Json(result)).into_response();
    }
    let end = now_ms();
    let duration = record.duration.as_millis() as u64;
    let logs: Vec<Value> = record
        .logs
        .lines()
        .map(|l| {
            Value::String(format!(
                "{} stdout: {l}",
                super::digitalocean::rfc3339(SystemTime::now())
            ))
        })
        .collect();
    let timed_out = matches!(outcome, Err((_, m)) if m.contains("exceeded its time limits"));
    (
        http,
        axum::Json(json!({
            "activationId": run.activation_id,
            "namespace": run.namespace,
            "name": run.name,
            "version": run.version,
            "publish": false,
            "start": end.saturating_sub(duration),
            "end": end,
            "duration": duration,
            "response": {
                "status": status,
                "statusCode": status_code,
                "success": success,
                "result": result,
            },
            "logs": logs,
            "annotations": [
                {"key": "path", "value": format!("{}/{}", run.namespace, run.name)},
                {"key": "kind", "value": run.kind},
                {"key": "limits", "value": run.limits},
                {"key": "timeout", "value": timed_out},
            ],
        })),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Running actions.

async fn execute_and_record(
    shared: &Shared,
    run: Run,
) -> (Result<Value, (u16, String)>, FakeInvocation) {
    let started = Instant::now();
    let (outcome, logs) = match tokio::time::timeout(run.timeout, run_process(&run)).await {
        Ok(r) => r,
        Err(_) => (
            Err((
                502,
                format!(
                    "The action exceeded its time limits of {} milliseconds.",
                    run.timeout.as_millis()
                ),
            )),
            String::new(),
        ),
    };
    let record = FakeInvocation {
        activation_id: run.activation_id.clone(),
        namespace: run.namespace.clone(),
        action: run.name.clone(),
        web: run.web,
        params: Value::Object(run.params.clone()),
        outcome: outcome.clone(),
        logs,
        duration: started.elapsed(),
    };
    lock(shared).invocations.push(record.clone());
    (outcome, record)
}

const NODE_WRAPPER: &str = r#"(() => {
  'use strict';
  const fs = require('fs');
  const path = require('path');
  const Module = require('module');
  const env = process.env;
  const report = (value) => {
    let text;
    try { text = JSON.stringify(value); }
    catch (e) { text = JSON.stringify({ error: 'The action did not return a JSON-serialisable result: ' + e.message }); }
    fs.writeFileSync(env.OW_FAKE_RESULT, text);
    process.exit(0);
  };
  const load = (file, entry) => {
    if (env.OW_FAKE_ZIP === '1') {
      const exported = require(file);
      return exported && exported[entry];
    }
    const src = fs.readFileSync(file, 'utf8');
    const mod = new Module(file, null);
    mod.filename = file;
    mod.paths = Module._nodeModulePaths(path.dirname(file));
    const probe = /^[A-Za-z_$][\w$]*$/.test(entry)
      ? `\n;return typeof ${entry} === 'function' ? ${entry} : undefined;`
      : '\n;return undefined;';
    const local = new Function('exports', 'require', 'module', '__filename', '__dirname', src + probe)
      .call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
    const ex = mod.exports;
    if (ex && typeof ex[entry] === 'function') return ex[entry];
    if (typeof ex === 'function' && entry === 'main') return ex;
    return local;
  };
  (async () => {
    const entry = env.OW_FAKE_ENTRY || 'main';
    const params = JSON.parse(fs.readFileSync(env.OW_FAKE_PARAMS, 'utf8'));
    const main = load(env.OW_FAKE_FILE, entry);
    if (typeof main !== 'function') throw new Error(`Action entrypoint '${entry}' is not a function.`);
    let result = await main(params);
    if (result === undefined || result === null) result = {};
    if (typeof result !== 'object' || Array.isArray(result)) throw new Error('The action did not return a dictionary.');
    report({ result });
  })().catch((e) => {
    console.error(e && e.stack ? e.stack : e);
    report({ error: 'An error has occurred: ' + (e instanceof Error ? String(e) : JSON.stringify(e)) });
  });
})();
"#;

const PYTHON_WRAPPER: &str = r#"
def _ow_fake_run():
    import json, os, sys, traceback
    env = os.environ
    def report(value):
        try:
            text = json.dumps(value)
        except Exception as e:
            text = json.dumps({"error": "The action did not return a JSON-serialisable result: %s" % e})
        with open(env["OW_FAKE_RESULT"], "w") as f:
            f.write(text)
    try:
        entry = env.get("OW_FAKE_ENTRY") or "main"
        with open(env["OW_FAKE_PARAMS"]) as f:
            params = json.load(f)
        path = env["OW_FAKE_FILE"]
        sys.path.insert(0, os.path.dirname(path))
        with open(path) as f:
            source = f.read()
        scope = {"__name__": "main__", "__file__": path, "__builtins__": __builtins__}
        exec(compile(source, path, "exec"), scope)
        fn = scope.get(entry)
        if not callable(fn):
            raise Exception("Action entrypoint '%s' is not a function." % entry)
        result = fn(params)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise Exception("The action did not return a dictionary.")
        report({"result": result})
    except BaseException as e:
        traceback.print_exc()
        report({"error": "An error has occurred: %s: %s" % (type(e).__name__, e)})
_ow_fake_run()
"#;

/// Run the action in a fresh temporary directory; the result, or a status
/// and message, and the logs.
async fn run_process(run: &Run) -> (Result<Value, (u16, String)>, String) {
    match run_process_inner(run).await {
        Ok((result, logs)) => (result, logs),
        Err(e) => (Err(e), String::new()),
    }
}

type RunResult = (Result<Value, (u16, String)>, String);

async fn run_process_inner(run: &Run) -> Result<RunResult, (u16, String)> {
    let node = run.kind.starts_with("nodejs:");
    let python = run.kind.starts_with("python:");
    if !node && !python {
        return Err((
            501,
            format!(
                "The fake OpenWhisk cannot run actions of kind {}: only nodejs:* and python:*.",
                run.kind
            ),
        ));
    }
    let io = |e: std::io::Error| {
        (
            502,
            format!("The fake OpenWhisk could not prepare the run: {e}"),
        )
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let root = dir.path();
    let file = if run.binary {
        let zip = B64
            .decode(run.code.trim())
            .map_err(|e| (502, format!("The action code is not base64: {e}")))?;
        let archive = root.join("action.zip");
        std::fs::write(&archive, zip).map_err(io)?;
        let target = root.join("action");
        let out = tokio::process::Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&archive)
            .arg(&target)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(io)?;
        if !out.status.success() {
            return Err((
                502,
                format!(
                    "Unable to unzip the action: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        if node {
            if !target.join("package.json").is_file() && !target.join("index.js").is_file() {
                return Err((
                    502,
                    "Zipped actions must contain either package.json or index.js at the root."
                        .into(),
                ));
            }
            target
        } else {
            let main = target.join("__main__.py");
            if !main.is_file() {
                return Err((
                    502,
                    "Zipped actions must contain __main__.py at the root.".into(),
                ));
            }
            main
        }
    } else {
        let f = root.join(if node { "index.js" } else { "__main__.py" });
        std::fs::write(&f, &run.code).map_err(io)?;
        f
    };
    let params = root.join("params.json");
    std::fs::write(&params, Value::Object(run.params.clone()).to_string()).map_err(io)?;
    let result_file = root.join("result.json");

    let mut cmd = if node {
        let mut c = tokio::process::Command::new("node");
        c.arg("-e").arg(NODE_WRAPPER);
        c
    } else {
        let mut c = tokio::process::Command::new("python3");
        c.arg("-c").arg(PYTHON_WRAPPER);
        c
    };
    let deadline = now_ms() + run.timeout.as_millis() as u64;
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("LANG", "C.UTF-8")
        .env("OW_FAKE_FILE", &file)
        .env("OW_FAKE_PARAMS", &params)
        .env("OW_FAKE_RESULT", &result_file)
        .env("OW_FAKE_ENTRY", &run.entry)
        .env("OW_FAKE_ZIP", if run.binary && node { "1" } else { "0" })
        .env("__OW_API_HOST", &run.api_host)
        .env("__OW_NAMESPACE", &run.namespace)
        .env(
            "__OW_ACTION_NAME",
            format!("/{}/{}", run.namespace, run.name),
        )
        .env("__OW_ACTION_VERSION", &run.version)
        .env("__OW_ACTIVATION_ID", &run.activation_id)
        .env("__OW_DEADLINE", deadline.to_string())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(|e| {
        (
            502,
            format!("The fake OpenWhisk could not start the runtime: {e}"),
        )
    })?;
    let mut logs = String::from_utf8_lossy(&out.stdout).into_owned();
    logs.push_str(&String::from_utf8_lossy(&out.stderr));
    let reported = std::fs::read(&result_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let result = match reported {
        Some(Value::Object(mut m)) => match (m.remove("result"), m.remove("error")) {
            (Some(r), _) => Ok(r),
            (None, Some(e)) => Err((502, scalar_text(&e))),
            (None, None) => Err((502, "The action did not produce a valid response.".into())),
        },
        _ => {
            let tail: String = {
                let e = String::from_utf8_lossy(&out.stderr);
                let e = e.trim();
                e.chars()
                    .rev()
                    .take(500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect()
            };
            Err((
                502,
                format!(
                    "The action did not produce a valid response and exited unexpectedly ({}). {tail}",
                    out.status
                ),
            ))
        }
    };
    Ok((result, logs))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::digitalocean::DigitalOceanFake;
    use super::*;

    const TOKEN: &str = "dop_v1_fake_token_for_openwhisk_tests";

    /// An HTTP answer, read whole.
    pub(in super::super) struct Answer {
        pub status: u16,
        pub headers: reqwest::header::HeaderMap,
        pub body: String,
    }

    impl Answer {
        pub fn json(&self) -> Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
        }
    }

    /// Send one request built by `build` and read the answer (a blocking
    /// wrapper around the async client the crate already depends on).
    pub(in super::super) fn send(
        build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Answer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        // When this crate is tested together with `soar`, cargo unifies
        // reqwest's features to rustls without a built-in crypto provider
        // (the host installs ring itself); do the same here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let req = build(&client).timeout(Duration::from_secs(30));
        rt.block_on(async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.text().await.expect("body");
            Answer {
                status,
                headers,
                body,
            }
        })
    }

    /// A DigitalOcean fake with one namespace created through the API.
    fn namespace() -> (DigitalOceanFake, Value) {
        let fake = DigitalOceanFake::start(TOKEN);
        let a = send(|c| {
            c.post(format!("{}/v2/functions/namespaces", fake.url()))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(json!({"region": "nyc1", "label": "soar-tests"}).to_string())
        });
        assert_eq!(a.status, 200, "{}", a.body);
        let ns = a.json()["namespace"].clone();
        (fake, ns)
    }

    fn s<'a>(ns: &'a Value, k: &str) -> &'a str {
        ns[k].as_str().expect(k)
    }

    fn put(ns: &Value, name: &str, query: &str, action: &Value) -> Answer {
        send(|c| {
            c.put(format!(
                "{}/api/v1/namespaces/_/actions/{name}?{query}",
                s(ns, "api_host")
            ))
            .basic_auth(s(ns, "uuid"), Some(s(ns, "key")))
            .header("content-type", "application/json")
            .body(action.to_string())
        })
    }

    fn web_action(kind: &str, code: &str) -> Value {
        json!({
            "exec": {"kind": kind, "code": code, "binary": false},
            "parameters": [{"key": "greeting", "value": "hello"}],
            "annotations": [{"key": "web-export", "value": true}],
            "limits": {"timeout": 3000, "memory": 256},
        })
    }

    const NODE_SCRIPT: &str = r#"
function main(params) {
  console.log('called with', params.__ow_method);
  return {
    statusCode: 201,
    headers: { 'content-type': 'text/plain', 'x-soar': 'yes' },
    body: `${params.greeting} ${params.name} via ${params.__ow_method} ${params.__ow_path}`,
  };
}
"#;

    #[test]
    fn a_node_script_deploys_and_runs_at_its_web_url() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let id = s(&ns, "namespace");
        assert_eq!(s(&ns, "api_host"), ow.url());

        let a = put(
            &ns,
            "hello",
            "overwrite=false",
            &web_action("nodejs:18", NODE_SCRIPT),
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        assert_eq!(v["name"], "hello");
        assert_eq!(v["namespace"], id);
        assert_eq!(v["version"], "0.0.1");
        assert_eq!(v["publish"], false);
        assert_eq!(v["exec"]["kind"], "nodejs:18");
        assert_eq!(v["exec"]["code"], NODE_SCRIPT);
        assert_eq!(v["limits"]["timeout"], 3000);

        let r = send(|c| c.get(format!("{}/a/b?name=soar", ow.web_url(id, "hello"))));
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body, "hello soar via get /a/b");
        assert_eq!(r.headers["x-soar"], "yes");
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(ow.invocations(), 1);
        let log = &ow.invocation_log()[0];
        assert!(log.logs.contains("called with get"), "{}", log.logs);
        assert!(log.params["__ow_headers"]["host"].as_str().is_some());

        // Overwrite bumps the version; overwrite=false on an existing action
        // is a conflict.
        let module = r#"module.exports.main = async (p) => ({ body: { sum: Number(p.a) + Number(p.b), method: p.__ow_method } });"#;
        let a = put(
            &ns,
            "hello",
            "overwrite=true",
            &web_action("nodejs:20", module),
        );
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["version"], "0.0.2");
        let a = put(
            &ns,
            "hello",
            "overwrite=false",
            &web_action("nodejs:20", module),
        );
        assert_eq!(a.status, 409, "{}", a.body);
        assert_eq!(a.json()["error"], "resource already exists");
        assert!(a.json()["code"].is_string());

        let r = send(|c| {
            c.post(ow.web_url(id, "hello"))
                .header("content-type", "application/json")
                .body(r#"{"a": 2, "b": 3}"#)
        });
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.json(), json!({"sum": 5, "method": "post"}));

        // Listing shows no code; GET shows it unless code=false.
        let auth = (s(&ns, "uuid").to_string(), s(&ns, "key").to_string());
        let get = |path: &str| {
            send(|c| {
                c.get(format!("{}/api/v1/namespaces/{id}/{path}", ow.url()))
                    .basic_auth(&auth.0, Some(&auth.1))
            })
        };
        let list = get("actions").json();
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert!(list[0]["exec"].get("code").is_none());
        assert_eq!(get("actions/hello").json()["exec"]["code"], module);
        assert!(
            get("actions/hello?code=false").json()["exec"]
                .get("code")
                .is_none()
        );

        // Delete answers the action; afterwards everything is 404.
        let d = send(|c| {
            c.delete(format!("{}/api/v1/namespaces/_/actions/hello", ow.url()))
                .basic_auth(&auth.0, Some(&auth.1))
        });
        assert_eq!(d.status, 200, "{}", d.body);
        assert_eq!(d.json()["name"], "hello");
        let g = get("actions/hello");
        assert_eq!(g.status, 404);
        assert_eq!(g.json()["error"], "The requested resource does not exist.");
        assert_eq!(send(|c| c.get(ow.web_url(id, "hello"))).status, 404);
        assert!(ow.actions().is_empty());

        assert_eq!(ow.calls_to("PUT /api/v1/namespaces/{ns}/actions/{name}"), 3);
        assert_eq!(ow.calls_to("GET /api/v1/web/{ns}/{package}/{name}"), 2);
        assert_eq!(ow.calls_to("POST /api/v1/web/{ns}/{package}/{name}"), 1);
        assert_eq!(
            ow.calls_to("DELETE /api/v1/namespaces/{ns}/actions/{name}"),
            1
        );
    }

    #[test]
    fn credentials_and_namespaces_are_checked() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let url = format!("{}/api/v1/namespaces/_/actions", ow.url());
        let a = send(|c| c.get(&url).basic_auth(s(&ns, "uuid"), Some("wrong-key")));
        assert_eq!(a.status, 401);
        assert_eq!(a.json()["error"], "The supplied authentication is invalid");
        assert!(a.json()["code"].is_string());
        assert_eq!(send(|c| c.get(&url)).status, 401);

        // Another namespace's path is forbidden with these credentials.
        let other = fake.add_namespace("other", "ams3");
        let a = send(|c| {
            c.get(format!(
                "{}/api/v1/namespaces/{}/actions",
                ow.url(),
                s(&other, "namespace")
            ))
            .basic_auth(s(&ns, "uuid"), Some(s(&ns, "key")))
        });
        assert_eq!(a.status, 403, "{}", a.body);
        let a = send(|c| c.get(&url).basic_auth(s(&ns, "uuid"), Some(s(&ns, "key"))));
        assert_eq!((a.status, a.json()), (200, json!([])));

        // Deleting the namespace at DigitalOcean revokes its credentials.
        let d = send(|c| {
            c.delete(format!(
                "{}/v2/functions/namespaces/{}",
                fake.url(),
                s(&ns, "namespace")
            ))
            .bearer_auth(TOKEN)
        });
        assert_eq!(d.status, 204);
        let a = send(|c| c.get(&url).basic_auth(s(&ns, "uuid"), Some(s(&ns, "key"))));
        assert_eq!(a.status, 401);
    }

    #[test]
    fn actions_are_validated() {
        let (_fake, ns) = namespace();
        for (action, why) in [
            (web_action("ruby:3.2", "def main(a) {} end"), "kind"),
            (web_action("nodejs:18", ""), "code"),
            (json!({"exec": {"kind": "nodejs:18"}}), "code"),
            (json!({"annotations": []}), "exec"),
            (
                json!({"exec": {"kind": "nodejs:18", "code": "x"}, "limits": {"memory": 4096}}),
                "memory",
            ),
        ] {
            let a = put(&ns, "bad", "", &action);
            assert_eq!(a.status, 400, "{why}: {}", a.body);
            assert!(a.json()["error"].is_string(), "{why}");
        }
        let a = put(&ns, "bad name!", "", &web_action("nodejs:18", NODE_SCRIPT));
        assert_eq!(a.status, 400, "{}", a.body);
        // `:default` resolves to a concrete kind.
        let a = put(
            &ns,
            "ok",
            "",
            &web_action("python:default", "def main(a): return {}"),
        );
        assert_eq!(a.json()["exec"]["kind"], "python:3.11");
    }

    #[test]
    fn a_python_action_runs_and_non_web_actions_stay_private() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let id = s(&ns, "namespace");
        let code = "import json\n\ndef main(args):\n    print('hi from python')\n    return {'body': {'greeting': args['greeting'], 'q': args.get('q'), 'path': args.get('__ow_path')}}\n";
        assert_eq!(
            put(&ns, "py", "", &web_action("python:3.11", code)).status,
            200
        );
        let r = send(|c| c.get(format!("{}/x?q=1", ow.web_url(id, "py"))));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"greeting": "hello", "q": "1", "path": "/x"})
        );
        assert!(ow.invocation_log()[0].logs.contains("hi from python"));

        let mut private = web_action("python:3.11", code);
        private["annotations"] = json!([]);
        assert_eq!(put(&ns, "private", "", &private).status, 200);
        assert_eq!(send(|c| c.get(ow.web_url(id, "private"))).status, 404);
        // Blocking invocation through the API still runs it.
        let r = send(|c| {
            c.post(format!(
                "{}/api/v1/namespaces/_/actions/private?blocking=true&result=true",
                ow.url()
            ))
            .basic_auth(s(&ns, "uuid"), Some(s(&ns, "key")))
            .header("content-type", "application/json")
            .body(r#"{"q": "api"}"#)
        });
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["body"]["q"], "api");
    }

    #[test]
    fn a_zipped_node_action_runs() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"name": "fn", "main": "lib/app.js"}"#,
        )
        .expect("package.json");
        std::fs::create_dir(dir.path().join("lib")).expect("lib");
        std::fs::write(
            dir.path().join("lib/app.js"),
            "const helper = require('./helper');\nexports.main = (p) => ({ body: helper(p.greeting) });\n",
        )
        .expect("app.js");
        std::fs::write(
            dir.path().join("lib/helper.js"),
            "module.exports = (g) => g + ' from a zip';\n",
        )
        .expect("helper.js");
        let st = std::process::Command::new("python3")
            .args(["-m", "zipfile", "-c", "fn.zip", "package.json", "lib"])
            .current_dir(dir.path())
            .status()
            .expect("python3 zipfile");
        assert!(st.success());
        let zip = B64.encode(std::fs::read(dir.path().join("fn.zip")).expect("zip"));
        let mut action = web_action("nodejs:18", &zip);
        action["exec"]["binary"] = true.into();
        assert_eq!(put(&ns, "zipped", "", &action).status, 200);
        let r = send(|c| c.get(ow.web_url(s(&ns, "namespace"), "zipped")));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "hello from a zip");
    }

    #[test]
    fn web_annotations_are_honoured() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let id = s(&ns, "namespace");
        let echo = "function main(p) { return { body: { greeting: p.greeting, q: p.__ow_query, b: p.__ow_body } }; }";
        let mut action = web_action("nodejs:18", echo);
        action["annotations"] = json!([
            {"key": "web-export", "value": true},
            {"key": "final", "value": true},
            {"key": "require-whisk-auth", "value": "s3cret"},
        ]);
        assert_eq!(put(&ns, "guarded", "", &action).status, 200);
        let url = ow.web_url(id, "guarded");
        assert_eq!(send(|c| c.get(&url)).status, 401);
        let r = send(|c| c.get(&url).header("x-require-whisk-auth", "s3cret"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["greeting"], "hello");
        // A final parameter cannot be overridden by the request.
        let r = send(|c| {
            c.get(format!("{url}?greeting=hijack"))
                .header("x-require-whisk-auth", "s3cret")
        });
        assert_eq!(r.status, 400, "{}", r.body);

        action["annotations"] = json!([
            {"key": "web-export", "value": true},
            {"key": "raw-http", "value": true},
        ]);
        assert_eq!(put(&ns, "raw", "", &action).status, 200);
        let r = send(|c| {
            c.post(format!("{}?a=1&b=2", ow.web_url(id, "raw")))
                .header("content-type", "text/plain")
                .body("raw body")
        });
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({"greeting": "hello", "q": "a=1&b=2", "b": "raw body"})
            )
        );
        assert_eq!(r.headers["access-control-allow-origin"], "*");
        let r = send(|c| c.request(reqwest::Method::OPTIONS, ow.web_url(id, "raw")));
        assert_eq!(r.status, 200);
        assert!(r.headers.contains_key("access-control-allow-methods"));
        assert_eq!(ow.invocations(), 2);
    }

    #[test]
    fn failures_answer_502_and_switches_inject_errors() {
        let (fake, ns) = namespace();
        let ow = fake.openwhisk();
        let id = s(&ns, "namespace");
        let throws = "function main() { throw new Error('boom'); }";
        assert_eq!(
            put(&ns, "throws", "", &web_action("nodejs:18", throws)).status,
            200
        );
        let r = send(|c| c.get(ow.web_url(id, "throws")));
        assert_eq!(r.status, 502, "{}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("boom"))
        );

        ow.set_invocation_timeout(Duration::from_millis(700));
        let hangs = "function main() { return new Promise(() => setInterval(() => {}, 1000)); }";
        assert_eq!(
            put(&ns, "hangs", "", &web_action("nodejs:18", hangs)).status,
            200
        );
        let r = send(|c| c.get(ow.web_url(id, "hangs")));
        assert_eq!(r.status, 502, "{}", r.body);
        assert!(r.body.contains("exceeded its time limits"), "{}", r.body);

        ow.fail_next(1, 503);
        let r = send(|c| c.get(ow.web_url(id, "throws")));
        assert_eq!(r.status, 503);
        assert!(r.json()["error"].is_string());
        assert_eq!(ow.invocations(), 2);
    }
}
