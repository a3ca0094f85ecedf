//! Small real HTTP servers on 127.0.0.1 for broker tests.
//!
//! Each server binds port 0 on loopback, runs on its own thread (with its own
//! Tokio runtime for the axum one), so it works the same from sync tests and
//! from any flavour of `#[tokio::test]`, and stops when dropped. Every request
//! is recorded, so a test can check what actually reached the server: that a
//! denied request never did, that the credential was injected.
//!
//! [`Server`] (axum) answers:
//! - `/redirect?to=<url>[&status=302]`: a redirect to any `Location`;
//! - `/flaky?fail=<n>`: `429` with `retry-after: 0` for the first `n` hits,
//!   then `200` with the hit count;
//! - `/issue?to=<base url>`: a credential for `to`, shaped like a DigitalOcean
//!   Functions namespace (`{"namespace": {"api_host", "uuid", "key"}}`), with
//!   a key the server makes up ([`Server::issued_keys`]);
//! - anything else: an echo, JSON of the method, path, query, every request
//!   header and the body, with the `Authorization` it got reflected again in
//!   an `authorization` field and in the `x-echo-authorization` response
//!   header (the broker must scrub all three before the plugin sees them).
//!
//! [`HugeServer`] (plain sockets, so the body is produced as it is written
//! rather than allocated) answers every path with 1 GiB: `/declared...` with
//! a `Content-Length` of 1 GiB, anything else chunked with no length.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::axum_thread::{Bound, ServerThread};

/// One request as the server received it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole request body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of a header (lowercase name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    flaky_hits: AtomicUsize,
    issued: Mutex<Vec<String>>,
}

/// The axum server: echo, redirect and 429-then-200 endpoints.
pub struct Server {
    shared: Arc<Shared>,
    server: ServerThread,
}

impl Server {
    /// Start on `127.0.0.1:0`.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = Bound::loopback().serve("soar-test-server", app);
        Self { shared, server }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// The token `/jwt` hands out.
    pub fn jwt(&self) -> String {
        jwt_for(self.url())
    }

    /// Keys `/issue` handed out, so a test can look for them where they
    /// must not be.
    pub fn issued_keys(&self) -> Vec<String> {
        lock(&self.shared.issued).clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Requests received so far whose path is `path`.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    lock(&shared.requests).push(rec.clone());
    let query = parse_query(rec.query.as_deref().unwrap_or(""));
    match rec.path.as_str() {
        "/redirect" => {
            let status = query
                .get("status")
                .and_then(|s| s.parse().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::FOUND);
            let to = query.get("to").cloned().unwrap_or_default();
            match HeaderValue::from_str(&to) {
                Ok(location) => (status, [(header::LOCATION, location)]).into_response(),
                Err(_) => (StatusCode::BAD_REQUEST, "bad `to`").into_response(),
            }
        }
        "/issue" => {
            let key = format!(
                "issued-key-{}-{}",
                std::process::id(),
                shared.flaky_hits.fetch_add(1, Ordering::SeqCst)
            );
            lock(&shared.issued).push(key.clone());
            axum::Json(serde_json::json!({
                "namespace": {
                    "api_host": query.get("to").cloned().unwrap_or_default(),
                    "uuid": "issued-user",
                    "key": key,
                }
            }))
            .into_response()
        }
        "/flaky" => {
            let fail: usize = query.get("fail").and_then(|s| s.parse().ok()).unwrap_or(1);
            let hit = shared.flaky_hits.fetch_add(1, Ordering::SeqCst) + 1;
            if hit <= fail {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "0")],
                    "slow down",
                )
                    .into_response()
            } else {
                axum::Json(serde_json::json!({ "hits": hit })).into_response()
            }
        }
        "/jwt" => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            // Another query, another token (`/jwt?fresh=1`).
            let query = rec
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let jwt = jwt_for(&format!("http://{host}{query}"));
            let mut resp = axum::Json(serde_json::json!({
                "result": { "jwt": jwt, "copy": jwt }
            }))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&jwt) {
                resp.headers_mut().insert("x-jwt", v);
            }
            resp
        }
        path => {
            let json = serde_json::json!({
                "method": rec.method,
                "path": rec.path,
                "query": rec.query,
                "params": query,
                "headers": rec.headers,
                "body": String::from_utf8_lossy(&rec.body),
                "authorization": rec.header("authorization"),
            });
            let mut resp = if path.starts_with("/echo-ascii") {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    ascii_json(&json),
                )
                    .into_response()
            } else {
                axum::Json(json).into_response()
            };
            if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
                resp.headers_mut()
                    .insert("x-echo-authorization", auth.clone());
            }
            resp
        }
    }
}

/// JSON with every non-ASCII character escaped as `\uXXXX` (UTF-16).
fn ascii_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A JWT-shaped token unique to one server (`header.payload.signature`).
fn jwt_for(base: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(serde_json::json!({ "sub": format!("upload-for-{base}"), "max_file_count_allowed": 20000 }).to_string()),
        b64.encode(format!("signature-of-{base}")),
    )
}

/// `a=1&b=x%2Fy` → `{a: 1, b: x/y}`.
fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Size of the huge bodies: 1 GiB.
pub const HUGE: u64 = 1 << 30;

/// A server whose every answer is 1 GiB, written chunk by chunk from one
/// small buffer until the client hangs up.
pub struct HugeServer {
    url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HugeServer {
    /// Start on `127.0.0.1:0`.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("soar-test-huge".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = std::thread::Builder::new()
                        .name("soar-test-huge-conn".into())
                        .spawn(move || serve_huge(conn));
                }
            })
            .expect("spawning the huge server thread");
        Self {
            url: format!("http://{addr}"),
            hits,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for HugeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer one request with 1 GiB, stopping at the first failed write.
fn serve_huge(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let declared = path.starts_with("/declared");
    let framing = if declared {
        format!("content-length: {HUGE}")
    } else {
        "transfer-encoding: chunked".to_string()
    };
    let response_head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n{framing}\r\nconnection: close\r\n\r\n"
    );
    if conn.write_all(response_head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0u64;
    while sent < HUGE {
        let r = if declared {
            conn.write_all(&chunk)
        } else {
            conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| conn.write_all(&chunk))
                .and_then(|()| conn.write_all(b"\r\n"))
        };
        if r.is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
    if !declared {
        let _ = conn.write_all(b"0\r\n\r\n");
    }
}
