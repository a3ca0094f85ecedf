//! A fake of the "VM API" the Python example provider
//! (`examples/python-provider`) deploys to: a real HTTP server on 127.0.0.1.
//!
//! - `GET /v1/vms[?name=N]` → `{"vms": [vm...]}`
//! - `POST /v1/vms` `{"name", "size", "tags"}` → `201 {"vm": vm}` (409 when the name exists,
//!   422 on a bad size)
//! - `PUT /v1/vms/{id}/files/{path}` raw bytes → 204
//! - `POST /v1/vms/{id}/release` `{"artifact_digest", "files"}` → `{"vm": vm}` (status `running`)
//! - `DELETE /v1/vms/{id}` → 204 (404 when unknown)
//! - `GET /vm/{id}/{path}`: the VM serving an uploaded file (`url` of a vm is `<base>/vm/{id}/`)
//!
//! Every `/v1` call needs `Authorization: Bearer <token>` (401 otherwise); errors are
//! `{"error": {"code", "message"}}` with an `x-request-id` header.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::axum_thread::{Bound, ServerThread};

/// One VM as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Vm {
    /// Assigned by the fake on create, counting up.
    pub id: u64,
    /// Unique among live VMs: a second create with it gets 409.
    pub name: String,
    /// `small`, `medium` or `large` (the create default is `small`); any
    /// other size gets 422.
    pub size: String,
    /// `new` until a release is posted, then `running`; only a running VM
    /// serves its files under `/vm/{id}/`.
    pub status: String,
    /// The `artifact_digest` of the latest release, so tests can check what
    /// the provider says it deployed.
    pub artifact_digest: Option<String>,
    /// The tags sent at create.
    pub tags: Vec<String>,
    /// Uploaded files by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

struct Shared {
    token: String,
    base: String,
    next: AtomicU64,
    vms: Mutex<BTreeMap<u64, Vm>>,
    calls: Mutex<Vec<String>>,
}

/// The running fake; stops when dropped.
pub struct VmApi {
    shared: Arc<Shared>,
    server: ServerThread,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VmApi {
    /// Start on `127.0.0.1:0`, accepting `token` as the bearer token.
    pub fn start(token: &str) -> Self {
        let bound = Bound::loopback();
        let shared = Arc::new(Shared {
            token: token.to_string(),
            base: bound.url().to_string(),
            next: AtomicU64::new(1001),
            vms: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = bound.serve("soar-fake-vmapi", app);
        Self { shared, server }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Every VM, by id.
    pub fn vms(&self) -> Vec<Vm> {
        lock(&self.shared.vms).values().cloned().collect()
    }

    /// `METHOD /path` of every `/v1` call, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.shared.calls).clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("x-request-id", "req-fake-vmapi")],
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn vm_json(base: &str, vm: &Vm) -> Value {
    json!({
        "id": vm.id,
        "name": vm.name,
        "size": vm.size,
        "status": vm.status,
        "artifact_digest": vm.artifact_digest,
        "tags": vm.tags,
        "files": vm.files.keys().collect::<Vec<_>>(),
        "url": format!("{base}/vm/{}/", vm.id),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();

    // The VMs themselves serve their files without authentication.
    if segs.first() == Some(&"vm") && parts.method == Method::GET {
        let id: u64 = segs.get(1).and_then(|i| i.parse().ok()).unwrap_or(0);
        let file = percent_decode(&segs[2.min(segs.len())..].join("/"));
        let vms = lock(&s.vms);
        let Some(vm) = vms.get(&id) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such VM");
        };
        let file = if file.is_empty() {
            vm.files.keys().next().cloned().unwrap_or_default()
        } else {
            file
        };
        return match vm.files.get(&file) {
            Some(bytes) if vm.status == "running" => bytes.clone().into_response(),
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such file"),
        };
    }

    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    }
    lock(&s.calls).push(format!("{} {}", parts.method, path));
    let json_body = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let mut vms = lock(&s.vms);
    match (&parts.method, segs.as_slice()) {
        (&Method::GET, ["v1", "vms"]) => {
            let name = parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("name="))
                    .map(percent_decode)
            });
            let list: Vec<Value> = vms
                .values()
                .filter(|v| name.as_ref().is_none_or(|n| &v.name == n))
                .map(|v| vm_json(&s.base, v))
                .collect();
            axum::Json(json!({ "vms": list })).into_response()
        }
        (&Method::POST, ["v1", "vms"]) => {
            let b = json_body();
            let Some(name) = b["name"].as_str().filter(|n| !n.is_empty()) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "name is required",
                );
            };
            let size = b["size"].as_str().unwrap_or("small").to_string();
            if !["small", "medium", "large"].contains(&size.as_str()) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_size",
                    &format!("unknown size {size}"),
                );
            }
            if vms.values().any(|v| v.name == name) {
                return error(StatusCode::CONFLICT, "exists", "a VM with this name exists");
            }
            let id = s.next.fetch_add(1, Ordering::SeqCst);
            let vm = Vm {
                id,
                name: name.to_string(),
                size,
                status: "new".into(),
                artifact_digest: None,
                tags: b["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                files: BTreeMap::new(),
            };
            let j = vm_json(&s.base, &vm);
            vms.insert(id, vm);
            (StatusCode::CREATED, axum::Json(json!({ "vm": j }))).into_response()
        }
        (&Method::PUT, ["v1", "vms", id, "files", rest @ ..]) => {
            let Some(vm) = id.parse().ok().and_then(|id: u64| vms.get_mut(&id)) else {
                return error(StatusCode::NOT_FOUND, "not_found", "no such VM");
            };
            vm.files.insert(percent_decode(&rest.join("/")), body);
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::POST, ["v1", "vms", id, "release"]) => {
            let Some(vm) = id.parse().ok().and_then(|id: u64| vms.get_mut(&id)) else {
                return error(StatusCode::NOT_FOUND, "not_found", "no such VM");
            };
            let b = json_body();
            if let Some(files) = b["files"].as_array() {
                for f in files.iter().filter_map(|f| f.as_str()) {
                    if !vm.files.contains_key(f) {
                        return error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "missing_file",
                            &format!("file {f} was not uploaded"),
                        );
                    }
                }
            }
            vm.artifact_digest = b["artifact_digest"].as_str().map(str::to_string);
            vm.status = "running".into();
            axum::Json(json!({ "vm": vm_json(&s.base, vm) })).into_response()
        }
        (&Method::DELETE, ["v1", "vms", id]) => {
            match id.parse().ok().and_then(|id: u64| vms.remove(&id)) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such VM"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}
