//! The HTTP broker: the one place a plugin's request is checked, shaped,
//! credentialed, sent, retried, bounded and recorded.
//!
//! Order of a request: parse → allow-list ([`policy`]) → header rules →
//! credential binding → body assembly (artifact files read here, on the host)
//! → signing/injection → send with retries ([`retry`]) → redirects re-checked
//! hop by hop → response read under the size cap → secrets scrubbed → capture.

mod body;
mod deadline;
pub mod policy;
mod resolve;
mod retry;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use self::body::Prepared;
use self::deadline::{Expired, Timers, Watch};
use self::policy::{Origin, Policy};
use crate::artifact::ArtifactSource;
use crate::credentials::{CredentialStore, Resolved, Secret, scrub, scrub_string};
use crate::journal::{Event, Journal, millis};
use crate::runtime::bindings::soar::plugin::http::{
    BasicPointers, Error, IssuedCredential, IssuedScheme, Method, Request, Response,
};

/// Bounds on brokered HTTP.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the first byte or the next chunk.
    pub read_timeout: Duration,
    /// Total deadline of a request when the plugin names none.
    pub default_timeout: Duration,
    /// The most a plugin may ask for as a total deadline.
    pub max_timeout: Duration,
    /// Largest response body handed to a plugin.
    pub max_response_bytes: u64,
    /// Redirect hops followed before giving up.
    pub max_redirects: u32,
    /// Attempts for a request answered 429/5xx (first try included).
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest single wait, `Retry-After` included.
    pub backoff_max: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(10 * 60),
            max_response_bytes: 64 << 20,
            max_redirects: 5,
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Headers a plugin may never set: they would let it lie about where a
/// request goes or how the answer is framed. `accept-encoding` is the host's
/// too: a compressed body could carry a reflected secret past the scrubber.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "accept-encoding",
];
/// Headers refused toward credential-bound hosts: they carry credentials of
/// the plugin's own making. `range` is among them because a reflected secret
/// fetched in pieces would slip past the scrubber.
const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-auth-key",
    "x-auth-email",
    "x-amz-security-token",
    "x-amz-date",
    "cookie",
    "range",
];

/// Brokered HTTP for one plugin in one command.
pub struct HttpBroker {
    plugin: String,
    client: reqwest::Client,
    policy: Policy,
    credentials: Arc<CredentialStore>,
    artifact: Option<Arc<ArtifactSource>>,
    journal: Arc<Journal>,
    limits: HttpLimits,
    /// Service secrets `secret` segments may splice in.
    service_secrets: BTreeMap<String, Secret>,
    /// Timers of the deadline and read timeout, kept between requests.
    timers: Timers,
}

/// What one attempt chain produced.
struct Outcome {
    response: Response,
    attempts: u32,
    sent: u64,
}

impl HttpBroker {
    /// A broker enforcing `policy` with `credentials`.
    pub fn new(
        plugin: &str,
        policy: Policy,
        credentials: Arc<CredentialStore>,
        artifact: Option<Arc<ArtifactSource>>,
        journal: Arc<Journal>,
        limits: HttpLimits,
    ) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let resolver = resolve::GuardedResolver::new(policy.user_named_hosts());
        // No `read_timeout` here: the broker enforces it, with the deadline,
        // on one kept timer (see `deadline`).
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("soar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            plugin: plugin.to_string(),
            client,
            policy,
            credentials,
            artifact,
            journal,
            limits,
            service_secrets: BTreeMap::new(),
            timers: Timers::default(),
        })
    }

    /// Give the broker the service secrets `secret` segments may splice in
    /// (resolved by the engine from `[deploy] secrets`).
    pub fn set_service_secrets(&mut self, secrets: BTreeMap<String, Secret>) {
        self.service_secrets = secrets;
    }

    /// Names of the service secrets (never their values).
    pub fn secret_names(&self) -> Vec<String> {
        self.service_secrets.keys().cloned().collect()
    }

    /// The effective base URL of each declared endpoint.
    pub fn endpoints(&self) -> &[(String, String)] {
        self.policy.endpoints()
    }

    /// Every secret this broker has injected or captured so far.
    pub fn known_secrets(&self) -> Vec<Secret> {
        let mut all = self.credentials.known_secrets();
        all.extend(
            self.service_secrets
                .values()
                .filter(|s| s.expose().len() >= 4)
                .cloned(),
        );
        all
    }

    /// JWT claims of a captured credential.
    pub fn credential_claims(&self, name: &str) -> Option<String> {
        use base64::Engine as _;
        let (Resolved::Bearer(secret), _) = self.credentials.captured(name)? else {
            return None;
        };
        let payload = secret.expose().split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        claims.is_object().then(|| claims.to_string())
    }

    /// Broker one request for the plugin.
    pub async fn send(&self, req: Request) -> Result<Response, Error> {
        self.send_issuing(req, &[]).await
    }

    /// Broker one request, then keep the credentials its answer issues
    /// (`http.send-issuing`).
    pub async fn send_issuing(
        &self,
        req: Request,
        issued: &[IssuedCredential],
    ) -> Result<Response, Error> {
        let started = Instant::now();
        let method = method_name(req.method);
        // Parsed once, for the journal and the request.
        let url = Url::parse(&req.url);
        let shown_url = match &url {
            Ok(u) if u.query().is_none() => u.to_string(),
            Ok(u) => {
                let mut u = u.clone();
                u.set_query(None);
                u.to_string()
            }
            Err(_) => req.url.chars().take(200).collect(),
        };
        let result = match url {
            Ok(url) => self.send_inner(req, url, issued).await,
            Err(e) => Err(Error::Invalid(format!(
                "'{}' is not a valid URL: {e}",
                req.url
            ))),
        };
        let (status, attempts, sent, received, outcome) = match &result {
            Ok(o) => (
                Some(o.response.status),
                o.attempts,
                o.sent,
                o.response.body.len() as u64,
                "ok".to_string(),
            ),
            Err(e) => (None, 1, 0, 0, describe_error(e)),
        };
        self.journal.record(Event::Http {
            plugin: self.plugin.clone(),
            method: method.to_string(),
            url: shown_url,
            status,
            attempts,
            millis: millis(started.elapsed()),
            sent,
            received,
            outcome,
        });
        result.map(|o| o.response)
    }

    async fn send_inner(
        &self,
        req: Request,
        url: Url,
        issued: &[IssuedCredential],
    ) -> Result<Outcome, Error> {
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.limits.default_timeout)
            .min(self.limits.max_timeout);
        let watch = Watch::new(timeout, self.limits.read_timeout);
        // Pinned here, so the (large) request future is not copied again.
        let follow = std::pin::pin!(self.follow(req, url, issued, &watch));
        match self.timers.run(&watch, follow).await {
            Ok(r) => r,
            Err(Expired::Total) => Err(Error::Timeout(format!(
                "no complete response within {} ms",
                timeout.as_millis()
            ))),
            Err(Expired::Silence) => Err(Error::Timeout(format!(
                "the server sent nothing for {} ms (read timeout)",
                self.limits.read_timeout.as_millis()
            ))),
        }
    }

    /// Send, following redirects; every hop passes the allow-list again.
    async fn follow(
        &self,
        req: Request,
        mut url: Url,
        issued: &[IssuedCredential],
        watch: &Watch,
    ) -> Result<Outcome, Error> {
        for (name, _) in &req.headers {
            let lower = name.to_ascii_lowercase();
            if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
                return Err(Error::Denied(format!(
                    "the host sets the '{lower}' header itself; plugins may not"
                )));
            }
        }
        if let Some(name) = &req.credential
            && !self.credentials.is_declared(name)
            && self.credentials.captured(name).is_none()
        {
            return Err(Error::Denied(format!(
                "plugin '{}' asked for credential '{name}', which it neither declared nor captured",
                self.plugin
            )));
        }
        let mut method = req.method;
        let (mut body, carries_secret) = Prepared::build(
            &req.body,
            body::Sources {
                artifact: self.artifact.as_deref(),
                secrets: &self.service_secrets,
            },
        )?;
        let mut visited = HashSet::new();
        let mut attempts_total = 0;
        for hop in 0..=self.limits.max_redirects {
            self.policy.check(&url).map_err(Error::Denied)?;
            let origin =
                Origin::of(&url).ok_or_else(|| Error::Invalid(format!("'{url}' has no host")))?;
            if carries_secret && !self.is_credential_bound(&origin) {
                return Err(Error::Denied(format!(
                    "plugin '{}' may send service secrets only to its provider's API (a host bound to a declared credential), not to {origin}",
                    self.plugin
                )));
            }
            let credential = self.credential_for(req.credential.as_deref(), &origin, hop == 0)?;
            if (credential.is_some() || self.is_credential_bound(&origin))
                && let Some((name, _)) = req
                    .headers
                    .iter()
                    .find(|(n, _)| AUTH_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            {
                return Err(Error::Denied(format!(
                    "plugin '{}' set its own '{}' header toward {}, a host bound to a credential; name the credential instead and the host injects it",
                    self.plugin,
                    name.to_ascii_lowercase(),
                    origin.host
                )));
            }
            let (response, attempts, sent) = retry::send(
                self,
                method,
                &url,
                &req.headers,
                &body,
                credential.as_ref(),
                req.region.as_deref(),
                watch,
            )
            .await?;
            attempts_total += attempts;
            let status = response.status().as_u16();
            if let (301 | 302 | 303 | 307 | 308, Some(location)) =
                (status, response.headers().get(reqwest::header::LOCATION))
            {
                let location = location
                    .to_str()
                    .map_err(|_| Error::Failed("redirect with a non-text Location".into()))?;
                let next = url.join(location).map_err(|e| {
                    Error::Failed(format!("redirect to an invalid URL '{location}': {e}"))
                })?;
                if !visited.insert(next.clone()) || next == url {
                    return Err(Error::Failed(format!("redirect loop at {next}")));
                }
                if status == 303 || (matches!(status, 301 | 302) && method == Method::Post) {
                    method = Method::Get;
                    body = Prepared::Empty;
                }
                url = next;
                continue;
            }
            let mut response = self.read(response, watch).await?;
            // Before scrubbing: an issued value may equal one known already
            // (the same namespace read twice in one command).
            if !issued.is_empty() && (200..300).contains(&response.status) {
                self.keep_issued(&mut response, issued, &origin)?;
            }
            let secrets = self.known_secrets();
            scrub(&mut response.body, &secrets);
            for (_, v) in response.headers.iter_mut() {
                scrub_string(v, &secrets);
            }
            if let Some(capture) = &req.capture
                && (200..300).contains(&response.status)
            {
                self.capture(&mut response, &capture.credential, &capture.pointer, origin)?;
            }
            return Ok(Outcome {
                response,
                attempts: attempts_total,
                sent,
            });
        }
        Err(Error::Failed(format!(
            "more than {} redirects",
            self.limits.max_redirects
        )))
    }

    /// Whether any credential (declared or captured) is bound to `origin`.
    fn is_credential_bound(&self, origin: &Origin) -> bool {
        self.policy.bound_origins().any(|o| o == origin)
            || self.credentials.captured_origins().contains(origin)
    }

    /// The credential to inject toward `origin`. On the first hop a credential
    /// the plugin names must be bound to the origin; after a redirect it is
    /// silently dropped unless still bound (never sent to another host).
    fn credential_for(
        &self,
        name: Option<&str>,
        origin: &Origin,
        first_hop: bool,
    ) -> Result<Option<Resolved>, Error> {
        let Some(name) = name else { return Ok(None) };
        if let Some((credential, bound)) = self.credentials.captured(name) {
            if &bound == origin {
                return Ok(Some(credential));
            }
        } else if self
            .policy
            .credential_origins(name)
            .is_some_and(|o| o.contains(origin))
        {
            return self
                .credentials
                .resolve(name)
                .map(Some)
                .map_err(Error::Denied);
        }
        if first_hop {
            return Err(Error::Denied(format!(
                "credential '{name}' of plugin '{}' is not bound to {origin}; it is only sent to the endpoints it was declared for",
                self.plugin
            )));
        }
        Ok(None)
    }

    /// Read a response body under the size cap, each chunk within the read
    /// timeout of the one before.
    async fn read(
        &self,
        mut response: reqwest::Response,
        watch: &Watch,
    ) -> Result<Response, Error> {
        let cap = self.limits.max_response_bytes;
        if let Some(len) = response.content_length()
            && len > cap
        {
            return Err(Error::TooLarge(cap));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                // Visible ASCII (nearly every value) needs no lossy pass.
                let value = match v.to_str() {
                    Ok(text) => text.to_owned(),
                    Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                };
                (k.as_str().to_owned(), value)
            })
            .collect();
        let mut body =
            Vec::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
        watch.waiting();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
            watch.waiting();
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(Error::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Keep the credentials an answer of the provider's API issues for
    /// another origin, replacing their secrets in the body with a marker.
    ///
    /// Two checks make this safe: only an origin bound to a declared
    /// credential (the provider's authenticated API) may issue credentials,
    /// and the origin each is bound to must pass the same allow-list as any
    /// request, so an issued secret can only ever travel to a host the plugin
    /// declared and the user granted.
    fn keep_issued(
        &self,
        response: &mut Response,
        issued: &[IssuedCredential],
        from: &Origin,
    ) -> Result<(), Error> {
        if !self.policy.bound_origins().any(|o| o == from) {
            return Err(Error::Denied(format!(
                "plugin '{}' may keep issued credentials only from its provider's API (a host bound to a declared credential), not from {from}",
                self.plugin
            )));
        }
        let mut json: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|_| Error::Invalid("send-issuing: the response is not JSON".into()))?;
        let mut kept = Vec::new();
        for want in &expand_issued(&json, issued)? {
            let name = &want.credential;
            let text = |json: &serde_json::Value, pointer: &str| -> Result<String, Error> {
                match json.pointer(pointer) {
                    Some(serde_json::Value::String(v)) if !v.is_empty() => Ok(v.clone()),
                    Some(_) => Err(Error::Invalid(format!(
                        "issued credential '{name}': the value at {pointer} is not a non-empty string"
                    ))),
                    None => Err(Error::Invalid(format!(
                        "issued credential '{name}': nothing at {pointer} in the response"
                    ))),
                }
            };
            let base = text(&json, &want.origin)?;
            let url = Url::parse(&base).map_err(|e| {
                Error::Invalid(format!(
                    "issued credential '{name}': '{base}' at {} is not a URL: {e}",
                    want.origin
                ))
            })?;
            self.policy.check(&url).map_err(|e| {
                Error::Denied(format!(
                    "issued credential '{name}' is for {base}, which plugin '{}' may not reach: {e}",
                    self.plugin
                ))
            })?;
            let origin =
                Origin::of(&url).ok_or_else(|| Error::Invalid(format!("'{base}' has no host")))?;
            let (credential, secret_pointer) = match &want.scheme {
                IssuedScheme::Bearer(p) => (Resolved::Bearer(Secret::new(text(&json, p)?)), p),
                IssuedScheme::Basic(b) => (
                    Resolved::Basic {
                        user: text(&json, &b.user)?,
                        password: Secret::new(text(&json, &b.password)?),
                    },
                    &b.password,
                ),
            };
            if let Some(slot) = json.pointer_mut(secret_pointer) {
                *slot = serde_json::Value::String(format!("[captured:{name}]"));
            }
            kept.push((name.clone(), credential, origin));
        }
        for (name, credential, origin) in kept {
            self.credentials
                .capture(&name, credential, origin)
                .map_err(Error::Invalid)?;
        }
        // The caller scrubs the body next: the same values may appear
        // elsewhere in the answer.
        response.body = serde_json::to_vec(&json).map_err(|e| Error::Failed(e.to_string()))?;
        Ok(())
    }

    /// Move the token at `pointer` into the credential store.
    fn capture(
        &self,
        response: &mut Response,
        name: &str,
        pointer: &str,
        origin: Origin,
    ) -> Result<(), Error> {
        let mut json: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|_| Error::Invalid(format!("capture '{name}': the response is not JSON")))?;
        let slot = json.pointer_mut(pointer).ok_or_else(|| {
            Error::Invalid(format!(
                "capture '{name}': nothing at {pointer} in the response"
            ))
        })?;
        let serde_json::Value::String(token) = std::mem::replace(
            slot,
            serde_json::Value::String(format!("[captured:{name}]")),
        ) else {
            return Err(Error::Invalid(format!(
                "capture '{name}': the value at {pointer} is not a string"
            )));
        };
        self.credentials
            .capture(name, Resolved::Bearer(Secret::new(token)), origin)
            .map_err(Error::Invalid)?;
        response.body = serde_json::to_vec(&json).map_err(|e| Error::Failed(e.to_string()))?;
        Ok(())
    }
}

/// Expand issued credentials whose pointers hold a `*` segment over the
/// array it stands for (a list of namespaces, each with its own key):
/// `functions-*` at `/namespaces/*/key` becomes `functions-0`, `functions-1`...
/// so a list answer gives away none of its secrets either.
fn expand_issued(
    json: &serde_json::Value,
    issued: &[IssuedCredential],
) -> Result<Vec<IssuedCredential>, Error> {
    let mut out = Vec::new();
    for want in issued {
        let Some((prefix, _)) = want.origin.split_once("/*") else {
            out.push(want.clone());
            continue;
        };
        if !want.credential.contains('*') {
            return Err(Error::Invalid(format!(
                "issued credential '{}': pointers with `*` need a name with `*` too (one credential per entry)",
                want.credential
            )));
        }
        let count = json
            .pointer(prefix)
            .and_then(serde_json::Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "issued credential '{}': nothing to expand at {prefix}",
                    want.credential
                ))
            })?;
        let at = |s: &str, i: usize| s.replacen('*', &i.to_string(), 1);
        for i in 0..count {
            out.push(IssuedCredential {
                credential: at(&want.credential, i),
                origin: at(&want.origin, i),
                scheme: match &want.scheme {
                    IssuedScheme::Bearer(p) => IssuedScheme::Bearer(at(p, i)),
                    IssuedScheme::Basic(b) => IssuedScheme::Basic(BasicPointers {
                        user: at(&b.user, i),
                        password: at(&b.password, i),
                    }),
                },
            });
        }
    }
    Ok(out)
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

fn describe_error(e: &Error) -> String {
    match e {
        Error::Denied(m) => format!("denied: {m}"),
        Error::Timeout(m) => format!("timeout: {m}"),
        Error::TooLarge(n) => format!("too large: over {n} bytes"),
        Error::Failed(m) => format!("failed: {m}"),
        Error::Invalid(m) => format!("invalid: {m}"),
    }
}

/// Map a reqwest failure to the contract's error, recognising the resolver's
/// refusal of private addresses as a denial.
fn transport_error(e: &reqwest::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<resolve::PrivateAddress>() {
            return Error::Denied(denied.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return Error::Timeout(without_url(e));
    }
    Error::Failed(without_url(e))
}

/// reqwest's message, with the error chain but without the URL (which the
/// journal records separately).
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;
    use crate::credentials::ProcessEnv;
    use crate::runtime::bindings::soar::plugin::http::Body;
    use crate::runtime::bindings::{Capabilities, EndpointDecl};

    /// A loopback server that answers each request with `script` (bytes to
    /// write, each after a pause), except those for `/stall`, which it never
    /// answers.
    fn server(script: Vec<(Duration, Vec<u8>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        if buf[..n].starts_with(b"GET /stall") {
                            continue;
                        }
                        for (pause, bytes) in &script {
                            std::thread::sleep(*pause);
                            if conn.write_all(bytes).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        url
    }

    fn broker(url: &str, read_timeout: Duration) -> (HttpBroker, Arc<Journal>) {
        let caps = Capabilities {
            endpoints: vec![EndpointDecl {
                name: "api".into(),
                default_url: "https://api.example.com".into(),
            }],
            extra_hosts: vec![],
            credentials: vec![],
            ssh: false,
        };
        let grants = policy::Grants {
            endpoints: [("api".to_string(), url.to_string())].into(),
            hosts: vec![],
            section: "[env.test.grants]".into(),
        };
        let policy = Policy::new("test", &caps, &grants).unwrap();
        let credentials = Arc::new(CredentialStore::new(
            "test",
            &[],
            BTreeMap::new(),
            Box::new(ProcessEnv),
        ));
        let journal = Arc::new(Journal::default());
        let limits = HttpLimits {
            read_timeout,
            default_timeout: Duration::from_secs(5),
            max_attempts: 1,
            ..HttpLimits::default()
        };
        let broker =
            HttpBroker::new("test", policy, credentials, None, journal.clone(), limits).unwrap();
        (broker, journal)
    }

    fn get(url: &str, timeout_ms: Option<u32>) -> Request {
        Request {
            method: Method::Get,
            url: format!("{url}/x"),
            headers: vec![],
            body: Body::Empty,
            credential: None,
            capture: None,
            timeout_ms,
            region: None,
        }
    }

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_server_hits_the_read_timeout() {
        let url = server(vec![]);
        let (broker, journal) = broker(&url, Duration::from_millis(300));
        let started = Instant::now();
        let r = broker.send(get(&url, None)).await;
        let took = started.elapsed();
        assert!(
            matches!(&r, Err(Error::Timeout(m)) if m.contains("read timeout")),
            "{r:?}"
        );
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3));
        let events = journal.events();
        assert!(
            matches!(&events[..], [Event::Http { outcome, .. }] if outcome.starts_with("timeout:")),
            "{events:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_stops_hits_the_read_timeout() {
        let zero = Duration::ZERO;
        let url = server(vec![(zero, HEAD.to_vec()), (zero, b"abc".to_vec())]);
        let (broker, _) = broker(&url, Duration::from_millis(300));
        let r = broker.send(get(&url, None)).await;
        assert!(
            matches!(&r, Err(Error::Timeout(m)) if m.contains("read timeout")),
            "{r:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_but_steady_answer_is_read_whole() {
        // Nothing is silent for 300 ms, though the whole takes ~700 ms.
        let step = Duration::from_millis(100);
        let mut script = vec![(step, HEAD.to_vec())];
        script.extend((0..6).map(|i| (step, vec![b'a' + i])));
        let url = server(script);
        let (broker, _) = broker(&url, Duration::from_millis(300));
        let r = broker.send(get(&url, None)).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdef"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_trickle_still_hits_the_total_deadline() {
        let step = Duration::from_millis(100);
        let mut script = vec![(step, HEAD.to_vec())];
        script.extend((0..6).map(|i| (step, vec![b'a' + i])));
        let url = server(script);
        let (broker, _) = broker(&url, Duration::from_millis(300));
        let started = Instant::now();
        let r = broker.send(get(&url, Some(400))).await;
        assert!(
            matches!(&r, Err(Error::Timeout(m)) if m.contains("within 400 ms")),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_kept_timer_serves_request_after_request() {
        let zero = Duration::ZERO;
        let url = server(vec![(zero, HEAD.to_vec()), (zero, b"abcdef".to_vec())]);
        let (broker, _) = broker(&url, Duration::from_millis(300));
        for _ in 0..3 {
            let r = broker.send(get(&url, None)).await.unwrap();
            assert_eq!(r.body, b"abcdef");
        }
        // Then a deadline earlier than the one the kept timer was set to.
        let started = Instant::now();
        let r = broker.send(get(&format!("{url}/stall"), Some(100))).await;
        assert!(
            matches!(&r, Err(Error::Timeout(m)) if m.contains("within 100 ms")),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let r = broker.send(get(&url, None)).await.unwrap();
        assert_eq!(r.body, b"abcdef");
    }
}
