//! A stateful fake of the Cloudflare v4 API, as a real HTTP server on
//! 127.0.0.1, shaped after `../shared/apis/cloudflare-openapi.json`:
//! every answer is the `{success, errors, messages, result}` envelope.
//!
//! Served under `/client/v4` (so [`Cloudflare::url`] is a drop-in for
//! `https://api.cloudflare.com/client/v4`):
//! - Workers: `PUT|GET|DELETE /accounts/{a}/workers/scripts/{name}` (PUT
//!   multipart: `metadata` + module parts), `GET .../scripts` (list),
//!   `GET .../scripts/{name}/settings`, `GET /accounts/{a}/workers/subdomain`,
//!   `GET|POST /zones/{z}/workers/routes`, `PUT|DELETE .../routes/{id}`.
//! - Pages: `GET|POST /accounts/{a}/pages/projects`, `GET|DELETE
//!   .../projects/{p}`, `GET .../upload-token` (a JWT with `exp` and
//!   `max_file_count_allowed`), `GET|POST .../deployments` (POST multipart:
//!   `manifest`, `branch`, `commit_message`, and `_headers`, `_redirects`,
//!   `_routes.json` as file parts that must carry a Content-Type, as
//!   wrangler's do), `GET|DELETE .../deployments/{id}`, and
//!   the asset endpoints that are not in the document, as wrangler uses
//!   them: `POST /pages/assets/check-missing`, `/upload`, `/upsert-hashes`.
//!
//! Authentication: the account endpoints take only `Bearer <API token>`;
//! the asset endpoints take only a live upload JWT this fake issued
//! (401 otherwise, as an expired JWT gets).
//!
//! Switches: [`Cloudflare::rate_limit`] (429 storms), [`Cloudflare::fail_next`]
//! (5xx), [`Cloudflare::expire_tokens_after_uploads`] (JWT expiry mid-upload),
//! [`Cloudflare::set_latency`], [`Cloudflare::set_max_files`]. Counters say
//! what was uploaded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::axum_thread::{Bound, ServerThread};

/// A Worker script as uploaded.
#[derive(Debug, Clone)]
pub struct Script {
    /// The upload's `metadata` part (`main_module`, `bindings`,
    /// `compatibility_date`…), with bindings named in `keep_bindings`
    /// carried over from the previous version as the API does.
    pub metadata: Value,
    /// Part name → (content type, bytes).
    pub modules: BTreeMap<String, (String, Vec<u8>)>,
    /// A digest of modules and metadata, so an identical re-upload keeps
    /// its etag as with the real API.
    pub etag: String,
    /// RFC 3339 time of the first upload; kept across re-uploads.
    pub created_on: String,
    /// RFC 3339 time of the latest upload.
    pub modified_on: String,
}

/// One Pages deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The deployment's UUID-shaped id, as in `/deployments/{id}`.
    pub id: String,
    /// Its first eight hex digits: the API's `short_id`, also the preview
    /// subdomain.
    pub short_id: String,
    /// `https://<short_id>.<project>.pages.dev`, as the API reports it (never
    /// fetched: nothing serves it).
    pub url: String,
    /// The `branch` field of the upload, or the project's production branch
    /// when it was absent or empty.
    pub branch: String,
    /// The `commit_message` field of the upload (empty when absent).
    pub commit_message: String,
    /// `/path` → hash.
    pub manifest: BTreeMap<String, String>,
    /// The `_headers` file part, when sent.
    pub headers: Option<Vec<u8>>,
    /// The `_redirects` file part, when sent.
    pub redirects: Option<Vec<u8>>,
    /// Part name → its Content-Type as sent (`None` for a text field).
    pub part_types: BTreeMap<String, Option<String>>,
    /// RFC 3339 creation time.
    pub created_on: String,
}

#[derive(Debug, Clone)]
struct Project {
    id: String,
    name: String,
    production_branch: String,
    created_on: String,
    deployments: Vec<Deployment>,
}

#[derive(Debug, Clone)]
struct Route {
    id: String,
    pattern: String,
    script: String,
}

/// Counters of what reached the fake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Worker script PUTs accepted.
    pub script_uploads: usize,
    /// Module bytes in those PUTs.
    pub script_bytes: u64,
    /// `/pages/assets/upload` requests accepted.
    pub upload_requests: usize,
    /// Asset files received (decoded).
    pub files_uploaded: usize,
    /// Asset bytes received (decoded).
    pub bytes_uploaded: u64,
    /// Upload JWTs issued.
    pub tokens_issued: usize,
    /// Requests refused for a bad or expired JWT.
    pub jwt_refusals: usize,
    /// 429s answered by the rate-limit switch.
    pub rate_limited: usize,
    /// Deployments created.
    pub deployments: usize,
}

/// A request as it arrived (bodies are not kept: uploads are large).
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method.
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    /// The `Authorization` header as sent, to assert which credential (API
    /// token or upload JWT) went where.
    pub authorization: Option<String>,
    /// Body length in bytes; 0 for multipart uploads, which are parsed as a
    /// stream and not buffered.
    pub body_len: usize,
}

#[derive(Default)]
struct Switches {
    /// 429s left in the storm, and how many in a row before one passes.
    storm_left: usize,
    storm_burst: usize,
    storm_streak: usize,
    /// Statuses to answer the next requests with.
    fail_next: Vec<u16>,
    /// Revoke every JWT once this many uploads were accepted.
    expire_after_uploads: Option<usize>,
    latency: Duration,
}

struct Inner {
    token: String,
    account: String,
    subdomain: String,
    max_files: u64,
    jwt_ttl: Duration,
    scripts: BTreeMap<String, Script>,
    routes: BTreeMap<String, Vec<Route>>,
    projects: BTreeMap<String, Project>,
    /// hash → (content type, bytes).
    assets: HashMap<String, (String, Vec<u8>)>,
    upserted: BTreeSet<String>,
    /// Live JWTs: token → exp (seconds).
    jwts: HashMap<String, u64>,
    counters: Counters,
    switches: Switches,
    seen: Vec<Seen>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake; stops when dropped.
pub struct Cloudflare {
    url: String,
    inner: Shared,
    /// Only held, for its `Drop`: stops the server along with the fake.
    _server: ServerThread,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn timestamp() -> String {
    // RFC 3339-ish, good enough for a fake.
    format!("{}", now_secs())
}

impl Cloudflare {
    /// Start on `127.0.0.1:0`, accepting `token` for account `account`.
    pub fn start(token: &str, account: &str) -> Self {
        let bound = Bound::loopback();
        let url = format!("{}/client/v4", bound.url());
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            account: account.to_string(),
            subdomain: "soar-fake".into(),
            max_files: 20_000,
            jwt_ttl: Duration::from_secs(300),
            scripts: BTreeMap::new(),
            routes: BTreeMap::new(),
            projects: BTreeMap::new(),
            assets: HashMap::new(),
            upserted: BTreeSet::new(),
            jwts: HashMap::new(),
            counters: Counters::default(),
            switches: Switches::default(),
            seen: Vec::new(),
            next_id: 1,
        }));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(256 << 20))
            .with_state(inner.clone());
        let server = bound.serve_multi_thread("soar-fake-cloudflare", 2, app);
        Self {
            url,
            inner,
            _server: server,
        }
    }

    /// `http://127.0.0.1:<port>/client/v4`: the `api` endpoint override.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What has reached the fake since start or the last
    /// [`Cloudflare::reset_counters`].
    pub fn counters(&self) -> Counters {
        lock(&self.inner).counters.clone()
    }

    /// Zero the counters, to measure one step of a test on its own.
    pub fn reset_counters(&self) {
        lock(&self.inner).counters = Counters::default();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.inner).seen.clone()
    }

    /// The Worker script `name` as last uploaded, if it exists.
    pub fn script(&self, name: &str) -> Option<Script> {
        lock(&self.inner).scripts.get(name).cloned()
    }

    /// Routes of a zone: `(pattern, script)`.
    pub fn routes(&self, zone: &str) -> Vec<(String, String)> {
        lock(&self.inner)
            .routes
            .get(zone)
            .into_iter()
            .flatten()
            .map(|r| (r.pattern.clone(), r.script.clone()))
            .collect()
    }

    /// Whether Pages project `name` exists (it is created by a POST or
    /// [`Cloudflare::add_project`], and gone after a DELETE).
    pub fn project_exists(&self, name: &str) -> bool {
        lock(&self.inner).projects.contains_key(name)
    }

    /// Create Pages project `name` (production branch `main`), as the
    /// dashboard or `wrangler pages project create` would.
    pub fn add_project(&self, name: &str) {
        let mut i = lock(&self.inner);
        let id = format!("{:032x}", i.next_id);
        i.next_id += 1;
        i.projects.insert(
            name.into(),
            Project {
                id,
                name: name.into(),
                production_branch: "main".into(),
                created_on: timestamp(),
                deployments: vec![],
            },
        );
    }

    /// Delete Pages project `name` behind Soar's back (as the dashboard
    /// would); `true` if it existed.
    pub fn remove_project(&self, name: &str) -> bool {
        lock(&self.inner).projects.remove(name).is_some()
    }

    /// Delete Worker script `name` behind Soar's back; `true` if it existed.
    pub fn remove_script(&self, name: &str) -> bool {
        lock(&self.inner).scripts.remove(name).is_some()
    }

    /// Deployments of a project, newest last.
    pub fn deployments(&self, project: &str) -> Vec<Deployment> {
        lock(&self.inner)
            .projects
            .get(project)
            .map(|p| p.deployments.clone())
            .unwrap_or_default()
    }

    /// Content of a stored asset.
    pub fn asset(&self, hash: &str) -> Option<Vec<u8>> {
        lock(&self.inner).assets.get(hash).map(|a| a.1.clone())
    }

    /// Answer the next `total` requests with 429, `burst` in a row at most
    /// before one passes (so a client that retries gets through).
    pub fn rate_limit(&self, total: usize, burst: usize) {
        let mut i = lock(&self.inner);
        i.switches.storm_left = total;
        i.switches.storm_burst = burst.max(1);
        i.switches.storm_streak = 0;
    }

    /// Answer the next requests with these statuses (500, 502, 503...).
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.inner).switches.fail_next = statuses.iter().rev().copied().collect();
    }

    /// Revoke every upload JWT once `n` more upload requests were accepted.
    pub fn expire_tokens_after_uploads(&self, n: usize) {
        let mut i = lock(&self.inner);
        let done = i.counters.upload_requests;
        i.switches.expire_after_uploads = Some(done + n);
    }

    /// Delay every answer.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.inner).switches.latency = d;
    }

    /// The `max_file_count_allowed` claim of new JWTs.
    pub fn set_max_files(&self, n: u64) {
        lock(&self.inner).max_files = n;
    }

    /// Lifetime of new JWTs.
    pub fn set_jwt_ttl(&self, d: Duration) {
        lock(&self.inner).jwt_ttl = d;
    }
}

fn envelope(status: StatusCode, result: Value) -> Response {
    (
        status,
        axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result})),
    )
        .into_response()
}

fn ok(result: Value) -> Response {
    envelope(StatusCode::OK, result)
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "success": false,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": null
        })),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// A fake JWT: `header.claims.signature`, base64url without padding.
fn make_jwt(exp: u64, max_files: u64, project: &str, n: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(
            json!({"exp": exp, "max_file_count_allowed": max_files, "sub": project, "jti": n})
                .to_string()
        ),
        b64.encode(format!("fake-signature-{n}-{}", now_secs()))
    )
}

async fn handle(State(inner): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (latency, injected) = {
        let mut i = lock(&inner);
        let s = &mut i.switches;
        let mut injected = s.fail_next.pop().map(|st| (st, false));
        if injected.is_none() && s.storm_left > 0 {
            if s.storm_streak < s.storm_burst {
                s.storm_streak += 1;
                s.storm_left -= 1;
                injected = Some((429, true));
            } else {
                s.storm_streak = 0;
            }
        }
        if injected.is_some_and(|(_, rl)| rl) {
            i.counters.rate_limited += 1;
        }
        (i.switches.latency, injected)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    // Multipart bodies are parsed by axum; everything else is read whole.
    let (body, multipart) = if is_multipart {
        match Multipart::from_request(req, &()).await {
            Ok(m) => (Vec::new(), Some(m)),
            Err(e) => return error(StatusCode::BAD_REQUEST, 10001, &e.to_string()),
        }
    } else {
        let b = axum::body::to_bytes(req.into_body(), 256 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (b, None)
    };
    lock(&inner).seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        authorization: auth,
        body_len: body.len(),
    });
    if let Some((status, rate_limited)) = injected {
        let st = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = if rate_limited {
            error(
                st,
                971,
                "Please wait and consider throttling your request speed",
            )
        } else {
            error(st, 10002, "Unexpected internal server error")
        };
        if rate_limited {
            r.headers_mut()
                .insert(header::RETRY_AFTER, "0".parse().unwrap());
        }
        return r;
    }
    let Some(rest) = path.strip_prefix("/client/v4") else {
        return error(StatusCode::NOT_FOUND, 7000, "No route for that URI");
    };
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();

    // The asset endpoints take the upload JWT, everything else the token.
    if segs.first() == Some(&"pages") && segs.get(1) == Some(&"assets") {
        let mut i = lock(&inner);
        let live = bearer(&headers)
            .and_then(|t| i.jwts.get(&t).copied())
            .is_some_and(|exp| exp > now_secs());
        if !live {
            i.counters.jwt_refusals += 1;
            return error(
                StatusCode::UNAUTHORIZED,
                8000013,
                "Authorization failed: JWT expired or invalid",
            );
        }
        drop(i);
        return assets(&inner, segs.get(2).copied().unwrap_or(""), &method, &body);
    }
    {
        let i = lock(&inner);
        if bearer(&headers).as_deref() != Some(i.token.as_str()) {
            return error(StatusCode::BAD_REQUEST, 10000, "Authentication error");
        }
    }
    match segs.as_slice() {
        ["accounts", a, rest @ ..] => {
            if *a != lock(&inner).account {
                return error(StatusCode::FORBIDDEN, 10000, "Authentication error");
            }
            match rest {
                ["workers", "scripts"] if method == Method::GET => list_scripts(&inner),
                ["workers", "scripts", name] => script(&inner, &method, name, multipart).await,
                ["workers", "scripts", name, "settings"] if method == Method::GET => {
                    script_settings(&inner, name)
                }
                ["workers", "subdomain"] if method == Method::GET => {
                    ok(json!({"subdomain": lock(&inner).subdomain}))
                }
                ["pages", "projects"] => projects(&inner, &method, &body),
                ["pages", "projects", p] => project(&inner, &method, p),
                ["pages", "projects", p, "upload-token"] if method == Method::GET => {
                    upload_token(&inner, p)
                }
                ["pages", "projects", p, "deployments"] => {
                    deployments(&inner, &method, p, &query, multipart).await
                }
                ["pages", "projects", p, "deployments", id] => deployment(&inner, &method, p, id),
                _ => error(StatusCode::NOT_FOUND, 7003, "Could not route to that path"),
            }
        }
        ["zones", z, "workers", "routes", rest @ ..] => routes(&inner, &method, z, rest, &body),
        _ => error(StatusCode::NOT_FOUND, 7003, "Could not route to that path"),
    }
}

fn list_scripts(inner: &Shared) -> Response {
    let i = lock(inner);
    ok(Value::Array(
        i.scripts
            .iter()
            .map(|(n, s)| {
                json!({"id": n, "etag": s.etag, "created_on": s.created_on, "modified_on": s.modified_on, "usage_model": "standard"})
            })
            .collect(),
    ))
}

fn script_not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        10007,
        "This Worker does not exist on your account.",
    )
}

#[expect(
    clippy::too_many_lines,
    reason = "GET, PUT and DELETE of one script resource side by side, as the API documents them; the PUT validates a multipart upload step by step"
)]
async fn script(
    inner: &Shared,
    method: &Method,
    name: &str,
    multipart: Option<Multipart>,
) -> Response {
    match *method {
        Method::GET => {
            let i = lock(inner);
            let Some(s) = i.scripts.get(name) else {
                return script_not_found();
            };
            let main = s.metadata["main_module"].as_str().unwrap_or_default();
            let body = s.modules.get(main).map(|m| m.1.clone()).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/javascript")], body).into_response()
        }
        Method::DELETE => {
            let mut i = lock(inner);
            match i.scripts.remove(name) {
                Some(_) => ok(json!({"id": name})),
                None => script_not_found(),
            }
        }
        Method::PUT => {
            let Some(mut mp) = multipart else {
                return error(
                    StatusCode::BAD_REQUEST,
                    10001,
                    "Unsupported or unexpected Content Type",
                );
            };
            let mut metadata = None;
            let mut modules = BTreeMap::new();
            loop {
                match mp.next_field().await {
                    Ok(Some(f)) => {
                        let pname = f.name().unwrap_or_default().to_string();
                        let ct = f.content_type().unwrap_or("").to_string();
                        let bytes = match f.bytes().await {
                            Ok(b) => b.to_vec(),
                            Err(e) => return error(StatusCode::BAD_REQUEST, 10006, &e.to_string()),
                        };
                        if pname == "metadata" {
                            match serde_json::from_slice::<Value>(&bytes) {
                                Ok(v) => metadata = Some(v),
                                Err(e) => {
                                    return error(
                                        StatusCode::BAD_REQUEST,
                                        10021,
                                        &format!("metadata is not JSON: {e}"),
                                    );
                                }
                            }
                        } else {
                            modules.insert(pname, (ct, bytes));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return error(StatusCode::BAD_REQUEST, 10006, &e.to_string()),
                }
            }
            let Some(mut metadata) = metadata else {
                return error(
                    StatusCode::BAD_REQUEST,
                    10021,
                    "No metadata part in the multipart upload",
                );
            };
            let Some(main) = metadata["main_module"].as_str().map(str::to_string) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    10021,
                    "metadata has no main_module (service-worker uploads are not supported by this fake)",
                );
            };
            match modules.get(&main) {
                Some((ct, _)) if ct.contains("javascript+module") => {}
                Some((ct, _)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        10021,
                        &format!(
                            "main module '{main}' has content type '{ct}', not application/javascript+module"
                        ),
                    );
                }
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        10021,
                        &format!("No such module '{main}' in the upload"),
                    );
                }
            }
            let mut i = lock(inner);
            // keep_bindings: carry over bindings of the listed types.
            if let Some(old) = i.scripts.get(name) {
                let keep: Vec<String> = metadata["keep_bindings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                let new_names: BTreeSet<String> = metadata["bindings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["name"].as_str().map(str::to_string))
                    .collect();
                let kept: Vec<Value> = old.metadata["bindings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|b| {
                        b["type"]
                            .as_str()
                            .is_some_and(|t| keep.iter().any(|k| k == t))
                            && b["name"].as_str().is_some_and(|n| !new_names.contains(n))
                    })
                    .cloned()
                    .collect();
                if let Some(arr) = metadata["bindings"].as_array_mut() {
                    arr.extend(kept);
                }
            }
            let bytes: u64 = modules.values().map(|m| m.1.len() as u64).sum();
            let mut h = blake3::Hasher::new();
            for (n, (ct, b)) in &modules {
                h.update(n.as_bytes());
                h.update(ct.as_bytes());
                h.update(b);
            }
            h.update(metadata.to_string().as_bytes());
            let etag = h.finalize().to_hex()[..64].to_string();
            let created = i
                .scripts
                .get(name)
                .map(|s| s.created_on.clone())
                .unwrap_or_else(timestamp);
            i.counters.script_uploads += 1;
            i.counters.script_bytes += bytes;
            let s = Script {
                metadata,
                modules,
                etag: etag.clone(),
                created_on: created.clone(),
                modified_on: timestamp(),
            };
            let out = json!({
                "id": name, "etag": etag, "created_on": created, "modified_on": s.modified_on,
                "handlers": ["fetch"], "logpush": false, "usage_model": "standard", "startup_time_ms": 1
            });
            i.scripts.insert(name.to_string(), s);
            ok(out)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

fn script_settings(inner: &Shared, name: &str) -> Response {
    let i = lock(inner);
    let Some(s) = i.scripts.get(name) else {
        return script_not_found();
    };
    // Secret values are never returned.
    let bindings: Vec<Value> = s.metadata["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let mut b = b.clone();
            if b["type"] == "secret_text"
                && let Some(o) = b.as_object_mut()
            {
                o.remove("text");
            }
            b
        })
        .collect();
    ok(json!({
        "bindings": bindings,
        "compatibility_date": s.metadata["compatibility_date"],
        "compatibility_flags": s.metadata.get("compatibility_flags").cloned().unwrap_or(json!([])),
        "logpush": false,
        "placement": {},
        "tags": s.metadata.get("tags").cloned().unwrap_or(json!([])),
        "tail_consumers": [],
        "usage_model": "standard"
    }))
}

fn routes(inner: &Shared, method: &Method, zone: &str, rest: &[&str], body: &[u8]) -> Response {
    let mut i = lock(inner);
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let show = |r: &Route| json!({"id": r.id, "pattern": r.pattern, "script": r.script});
    match (method.clone(), rest) {
        (Method::GET, []) => ok(Value::Array(
            i.routes.get(zone).into_iter().flatten().map(show).collect(),
        )),
        (Method::POST, []) => {
            let Some(pattern) = body["pattern"].as_str() else {
                return error(StatusCode::BAD_REQUEST, 10020, "pattern is required");
            };
            if i.routes
                .get(zone)
                .into_iter()
                .flatten()
                .any(|r| r.pattern == pattern)
            {
                return error(
                    StatusCode::CONFLICT,
                    10020,
                    "A route with the same pattern already exists",
                );
            }
            let id = format!("{:032x}", i.next_id);
            i.next_id += 1;
            let r = Route {
                id,
                pattern: pattern.into(),
                script: body["script"].as_str().unwrap_or_default().into(),
            };
            let out = show(&r);
            i.routes.entry(zone.into()).or_default().push(r);
            ok(out)
        }
        (Method::PUT, [id]) => {
            let Some(r) = i
                .routes
                .get_mut(zone)
                .into_iter()
                .flatten()
                .find(|r| r.id == *id)
            else {
                return error(StatusCode::NOT_FOUND, 10019, "Route not found");
            };
            if let Some(p) = body["pattern"].as_str() {
                r.pattern = p.into();
            }
            r.script = body["script"].as_str().unwrap_or_default().into();
            ok(show(r))
        }
        (Method::DELETE, [id]) => {
            let list = i.routes.entry(zone.into()).or_default();
            let before = list.len();
            list.retain(|r| r.id != *id);
            if list.len() == before {
                return error(StatusCode::NOT_FOUND, 10019, "Route not found");
            }
            ok(json!({"id": id}))
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

/// A project as `pages_projects` in the document describes it, with the
/// `deployment_configs` and `build_config` the real API always returns
/// (wrangler reads `deployment_configs` before it deploys).
fn project_json(p: &Project) -> Value {
    let configs = json!({
        "compatibility_date": "2024-09-23",
        "compatibility_flags": [],
        "env_vars": {},
        "fail_open": true,
        "always_use_latest_compatibility_date": false,
        "usage_model": "standard",
    });
    json!({
        "id": p.id,
        "name": p.name,
        "subdomain": format!("{}.pages.dev", p.name),
        "domains": [format!("{}.pages.dev", p.name)],
        "production_branch": p.production_branch,
        "created_on": p.created_on,
        "build_config": {
            "build_caching": false, "build_command": "", "destination_dir": "",
            "root_dir": "", "web_analytics_tag": null, "web_analytics_token": null,
        },
        "deployment_configs": { "preview": configs, "production": configs },
        "source": null,
        "latest_deployment": p.deployments.last().map(|d| deployment_json(p, d)),
        "canonical_deployment": p.deployments.last().map(|d| deployment_json(p, d)),
    })
}

fn deployment_json(p: &Project, d: &Deployment) -> Value {
    let stages: Vec<Value> = ["queued", "initialize", "clone_repo", "build", "deploy"]
        .iter()
        .map(|n| json!({"name": n, "status": "success", "started_on": d.created_on, "ended_on": d.created_on}))
        .collect();
    let environment = if d.branch == p.production_branch {
        "production"
    } else {
        "preview"
    };
    json!({
        "id": d.id,
        "short_id": d.short_id,
        "project_id": p.id,
        "project_name": p.name,
        "url": d.url,
        "environment": environment,
        "env_vars": {},
        "build_config": null,
        "source": null,
        "is_skipped": false,
        "created_on": d.created_on,
        "modified_on": d.created_on,
        "aliases": [format!("https://{}.{}.pages.dev", d.branch, p.name)],
        "deployment_trigger": {
            "type": "ad_hoc",
            "metadata": {"branch": d.branch, "commit_hash": "", "commit_message": d.commit_message}
        },
        "latest_stage": {"name": "deploy", "status": "success", "started_on": d.created_on, "ended_on": d.created_on},
        "stages": stages,
    })
}

fn project_not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        8000007,
        "Project not found. The specified project name does not match any of your existing projects.",
    )
}

fn projects(inner: &Shared, method: &Method, body: &[u8]) -> Response {
    let mut i = lock(inner);
    match *method {
        Method::GET => ok(Value::Array(
            i.projects.values().map(project_json).collect(),
        )),
        Method::POST => {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(name) = body["name"].as_str() else {
                return error(StatusCode::BAD_REQUEST, 8000000, "name is required");
            };
            if i.projects.contains_key(name) {
                return error(
                    StatusCode::CONFLICT,
                    8000002,
                    "A project with this name already exists. Choose a different project name.",
                );
            }
            let id = format!("{:032x}", i.next_id);
            i.next_id += 1;
            let p = Project {
                id,
                name: name.into(),
                production_branch: body["production_branch"].as_str().unwrap_or("main").into(),
                created_on: timestamp(),
                deployments: vec![],
            };
            let out = project_json(&p);
            i.projects.insert(name.into(), p);
            ok(out)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

fn project(inner: &Shared, method: &Method, name: &str) -> Response {
    let mut i = lock(inner);
    match *method {
        Method::GET => match i.projects.get(name) {
            Some(p) => ok(project_json(p)),
            None => project_not_found(),
        },
        Method::DELETE => match i.projects.remove(name) {
            Some(_) => ok(Value::Null),
            None => project_not_found(),
        },
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

fn upload_token(inner: &Shared, project: &str) -> Response {
    let mut i = lock(inner);
    if !i.projects.contains_key(project) {
        return project_not_found();
    }
    let n = i.next_id;
    i.next_id += 1;
    let exp = now_secs() + i.jwt_ttl.as_secs();
    let jwt = make_jwt(exp, i.max_files, project, n);
    i.jwts.insert(jwt.clone(), exp);
    i.counters.tokens_issued += 1;
    ok(json!({"jwt": jwt}))
}

fn hashes_of(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["hashes"]
        .as_array()?
        .iter()
        .map(|h| h.as_str().map(str::to_string))
        .collect()
}

fn assets(inner: &Shared, what: &str, method: &Method, body: &[u8]) -> Response {
    if *method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed");
    }
    let mut i = lock(inner);
    match what {
        "check-missing" => {
            let Some(hashes) = hashes_of(body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    "Invalid request body: expected {hashes: [...]}",
                );
            };
            let missing: Vec<String> = hashes
                .into_iter()
                .filter(|h| !i.assets.contains_key(h))
                .collect();
            ok(json!(missing))
        }
        "upload" => {
            let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    "Invalid request body: expected a JSON array",
                );
            };
            if items.len() > 2_000 {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    "Too many files in one upload (2,000 at most)",
                );
            }
            let mut decoded = Vec::new();
            for it in &items {
                let (Some(key), Some(value)) = (it["key"].as_str(), it["value"].as_str()) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        8000096,
                        "each file needs key and value",
                    );
                };
                if it["base64"] != Value::Bool(true) {
                    return error(StatusCode::BAD_REQUEST, 8000096, "values must be base64");
                }
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        8000096,
                        &format!("value of {key} is not valid base64"),
                    );
                };
                let ct = it["metadata"]["contentType"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                decoded.push((key.to_string(), ct, bytes));
            }
            let total: u64 = decoded.iter().map(|d| d.2.len() as u64).sum();
            if total > 40 << 20 {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    8000096,
                    "Upload bucket larger than 40 MiB",
                );
            }
            i.counters.upload_requests += 1;
            i.counters.files_uploaded += decoded.len();
            i.counters.bytes_uploaded += total;
            for (k, ct, b) in decoded {
                i.assets.insert(k, (ct, b));
            }
            if let Some(after) = i.switches.expire_after_uploads
                && i.counters.upload_requests >= after
            {
                i.jwts.clear();
                i.switches.expire_after_uploads = None;
            }
            ok(json!({"successful_key_count": items.len(), "unsuccessful_keys": []}))
        }
        "upsert-hashes" => {
            let Some(hashes) = hashes_of(body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    "Invalid request body: expected {hashes: [...]}",
                );
            };
            i.upserted.extend(hashes);
            ok(Value::Null)
        }
        _ => error(StatusCode::NOT_FOUND, 7003, "Could not route to that path"),
    }
}

/// `GET|DELETE .../deployments/{deployment_id}` (wrangler polls the GET for
/// `latest_stage` after it deploys).
fn deployment(inner: &Shared, method: &Method, project: &str, id: &str) -> Response {
    let mut i = lock(inner);
    let Some(p) = i.projects.get_mut(project) else {
        return project_not_found();
    };
    let Some(at) = p
        .deployments
        .iter()
        .position(|d| d.id == id || d.short_id == id)
    else {
        return error(
            StatusCode::NOT_FOUND,
            8000009,
            "The deployment ID you have specified does not exist. Update the deployment ID and try again.",
        );
    };
    match *method {
        Method::GET => ok(deployment_json(p, &p.deployments[at])),
        Method::DELETE => {
            p.deployments.remove(at);
            ok(Value::Null)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

/// The deployment parts wrangler sends as files (`new File([...], name)`),
/// each labelled with a Content-Type by fetch's FormData.
const FILE_PARTS: &[&str] = &[
    "_headers",
    "_redirects",
    "_routes.json",
    "_worker.bundle",
    "functions-filepath-routing-config.json",
];

/// Why a deployment part is refused, as a strict multipart parser would:
/// a file part must say its Content-Type (every client of the API sends one).
fn part_fault(name: &str, file_name: Option<&str>, content_type: Option<&str>) -> Option<String> {
    let is_file = file_name.is_some() || FILE_PARTS.contains(&name);
    if is_file && file_name.is_none() {
        return Some(format!(
            "part '{name}' must be a file part (Content-Disposition with a filename)"
        ));
    }
    if is_file && content_type.is_none_or(str::is_empty) {
        return Some(format!(
            "part '{name}' (file '{}') has no Content-Type; send the file's media type (wrangler sends application/octet-stream)",
            file_name.unwrap_or(name)
        ));
    }
    None
}

async fn deployments(
    inner: &Shared,
    method: &Method,
    project: &str,
    query: &str,
    multipart: Option<Multipart>,
) -> Response {
    match *method {
        Method::GET => {
            let i = lock(inner);
            let Some(p) = i.projects.get(project) else {
                return project_not_found();
            };
            let per_page: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("per_page="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(25);
            // result_info, as the document's paginated answers carry.
            let count = p.deployments.len();
            let list: Vec<Value> = p
                .deployments
                .iter()
                .rev()
                .take(per_page)
                .map(|d| deployment_json(p, d))
                .collect();
            axum::Json(json!({"success": true, "errors": [], "messages": [],
                "result": list,
                "result_info": {"page": 1, "per_page": per_page, "count": count.min(per_page), "total_count": count}}))
            .into_response()
        }
        Method::POST => {
            let Some(mut mp) = multipart else {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000000,
                    "Expected multipart/form-data",
                );
            };
            let mut fields: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut part_types = BTreeMap::new();
            loop {
                match mp.next_field().await {
                    Ok(Some(f)) => {
                        let name = f.name().unwrap_or_default().to_string();
                        if let Some(why) = part_fault(&name, f.file_name(), f.content_type()) {
                            return error(StatusCode::BAD_REQUEST, 8000000, &why);
                        }
                        part_types.insert(name.clone(), f.content_type().map(str::to_string));
                        match f.bytes().await {
                            Ok(b) => {
                                fields.insert(name, b.to_vec());
                            }
                            Err(e) => {
                                return error(StatusCode::BAD_REQUEST, 8000000, &e.to_string());
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return error(StatusCode::BAD_REQUEST, 8000000, &e.to_string()),
                }
            }
            let Some(manifest) = fields
                .get("manifest")
                .and_then(|m| serde_json::from_slice::<BTreeMap<String, String>>(m).ok())
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    "A manifest part mapping paths to hashes is required",
                );
            };
            let mut i = lock(inner);
            if let Some(missing) = manifest.values().find(|h| !i.assets.contains_key(*h)) {
                return error(
                    StatusCode::BAD_REQUEST,
                    8000096,
                    &format!("Manifest references asset {missing}, which was never uploaded"),
                );
            }
            let n = i.next_id;
            i.next_id += 1;
            let text = |k: &str| {
                fields
                    .get(k)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let Some(p) = i.projects.get_mut(project) else {
                return project_not_found();
            };
            let id = format!("{n:08x}-0000-4000-8000-{:012x}", now_secs());
            let short_id = format!("{n:08x}");
            let d = Deployment {
                url: format!("https://{short_id}.{}.pages.dev", p.name),
                id,
                short_id,
                branch: Some(text("branch"))
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| p.production_branch.clone()),
                commit_message: text("commit_message"),
                manifest,
                headers: fields.get("_headers").cloned(),
                redirects: fields.get("_redirects").cloned(),
                part_types,
                created_on: timestamp(),
            };
            let out = deployment_json(p, &d);
            p.deployments.push(d);
            i.counters.deployments += 1;
            ok(out)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, 10000, "Method not allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the Pages deployment parser refuses, as a strict one would:
    /// the special files as untyped or non-file parts (what Soar once sent).
    #[test]
    fn deployment_file_parts_need_a_content_type() {
        let octet = Some("application/octet-stream");
        assert_eq!(part_fault("_headers", Some("_headers"), octet), None);
        assert_eq!(part_fault("manifest", None, None), None, "a text field");
        let untyped = part_fault("_headers", Some("_headers"), None).unwrap();
        assert!(untyped.contains("no Content-Type"), "{untyped}");
        assert!(part_fault("_routes.json", Some("_routes.json"), Some("")).is_some());
        let not_a_file = part_fault("_redirects", None, octet).unwrap();
        assert!(not_a_file.contains("must be a file part"), "{not_a_file}");
    }
}
