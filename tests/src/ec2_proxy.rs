//! A reverse proxy in front of moto that injects EC2 errors.
//!
//! moto cannot be told to run out of spot capacity, so tests put this proxy
//! on 127.0.0.1 between the plugin and moto. It forwards every request
//! verbatim — including the ORIGINAL `Host` header, which the SigV4
//! signature covers, so moto still verifies the host's signature against
//! the host name the plugin called (the proxy's) — and answers the requests
//! matching a [`Fault`] with an EC2 error document instead.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One injected error.
#[derive(Debug, Clone)]
pub struct Fault {
    /// EC2 action (`RunInstances`).
    pub action: String,
    /// Only in this signing region (from the credential scope), if set.
    pub region: Option<String>,
    /// Only for this `InstanceType`, if set.
    pub instance_type: Option<String>,
    /// HTTP status of the error (EC2 uses 400 for most, 500 for capacity, 503 for throttling).
    pub status: u16,
    /// EC2 error code.
    pub code: String,
    /// The error's `<Message>`; [`Fault::new`] says it was injected, so a
    /// test failure shows where the error came from.
    pub message: String,
    /// Answer this many matching requests, then let them through; `None` = always.
    pub times: Option<u32>,
}

impl Fault {
    /// `action` fails with `code` for `instance_type` in `region` (None = any).
    pub fn new(
        action: &str,
        region: Option<&str>,
        instance_type: Option<&str>,
        status: u16,
        code: &str,
    ) -> Self {
        Self {
            action: action.into(),
            region: region.map(str::to_string),
            instance_type: instance_type.map(str::to_string),
            status,
            code: code.into(),
            message: format!("injected by the test proxy: {code}"),
            times: None,
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The EC2 `Action` parameter (`DescribeInstances`).
    pub action: String,
    /// The signing region from the credential scope, when the request was
    /// signed.
    pub region: Option<String>,
    /// The form parameters as sent, in order, for asserting what the
    /// provider asked for.
    pub params: Vec<(String, String)>,
    /// The injected error code, when the proxy answered itself.
    pub injected: Option<String>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    faults: Arc<Mutex<Vec<Fault>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running proxy; stops when dropped.
pub struct Ec2Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Ec2Proxy {
    /// Proxy to `upstream` (moto's URL) on a free loopback port.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let faults = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().no_proxy().build()?,
            faults: faults.clone(),
            seen: seen.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            faults,
            seen,
            task,
        })
    }

    /// Add an error to inject.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Ec2Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The region of `Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
fn signing_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    cred.split('/').nth(2).map(str::to_string)
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = form_pairs(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let action = get("Action").unwrap_or_default();
    let region = signing_region(&headers);
    let itype = get("InstanceType");
    let hit = {
        let mut faults = s.faults.lock().unwrap();
        let found = faults.iter_mut().find(|f| {
            f.action == action
                && f.region.as_ref().is_none_or(|r| Some(r) == region.as_ref())
                && f.instance_type
                    .as_ref()
                    .is_none_or(|t| Some(t) == itype.as_ref())
                && f.times != Some(0)
        });
        found.map(|f| {
            if let Some(n) = &mut f.times {
                *n -= 1;
            }
            f.clone()
        })
    };
    s.seen.lock().unwrap().push(Seen {
        action: action.clone(),
        region: region.clone(),
        params: params.clone(),
        injected: hit.as_ref().map(|f| f.code.clone()),
    });
    if let Some(f) = hit {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>proxy-{}</RequestID></Response>",
            f.code,
            f.message,
            s.seen.lock().unwrap().len()
        );
        return (
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST),
            [("content-type", "text/xml")],
            xml,
        )
            .into_response();
    }

    // Forward verbatim, Host included (the signature covers it).
    let url = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut rb = s.client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        &url,
    );
    for (name, value) in &headers {
        let n = name.as_str();
        if matches!(n, "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        rb = rb.header(n, value.as_bytes());
    }
    let resp = match rb.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = Vec::new();
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if matches!(n, "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out_headers.push((n.to_string(), v.to_string()));
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut response = (status, bytes.to_vec()).into_response();
    for (n, v) in out_headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(n.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// Decode an `application/x-www-form-urlencoded` body.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
