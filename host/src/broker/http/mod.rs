//! The HTTP broker: the one place a plugin's request is checked, shaped,
//! credentialed, sent, retried, bounded and recorded.
//!
//! Order of a request: parse (no userinfo) → header rules → allow-list
//! ([`policy`]) → planned body size → where secrets may go → body assembly
//! (artifact files read here, on the host) → signing/injection → send with
//! retries ([`retry`]) → redirects re-checked hop by hop → response read
//! under the size cap → addresses noted ([`SeenAddresses`]) → issued and
//! captured values taken from the raw answer and checked → secrets scrubbed.
//!
//! # What is scrubbed where
//!
//! Redaction must not be an oracle: if the host blanked every known secret
//! in every answer, a plugin could post guesses to an echo server it controls
//! and see which one comes back blanked. So an answer is scrubbed only of the
//! secrets its origin has seen — the declared credentials bound to it, the
//! service secrets spliced toward it, and the captured or issued values sent
//! to it or taken from it. A server that never received a secret cannot echo
//! it; if it returns one anyway, the plugin supplied it and learns nothing.
//! Everything the plugin cannot read (journal, logs, errors shown to the user)
//! is scrubbed of every secret.

mod body;
mod deadline;
pub mod error;
pub mod policy;
mod resolve;
mod retry;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use self::body::Prepared;
use self::deadline::{Expired, Timers, Watch};
use self::error::Error;
use self::policy::Policy;
use super::addresses::SeenAddresses;
use crate::artifact::ArtifactSource;
use crate::contract::TransportReason;
use crate::contract::soar::plugin::http::{
    BasicPointers, IssuedCredential, IssuedScheme, Method, Request, Response,
};
use crate::credentials::Origin;
use crate::credentials::{CredentialStore, Provenance, Redactor, Resolved, Secret, scrub_str};
use crate::journal::{Event, Journal, millis};

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
    /// Largest request body the host assembles (artifact files included),
    /// checked before anything is read.
    pub max_request_bytes: u64,
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
            max_request_bytes: 256 << 20,
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
    /// For every origin the user did not name: connects to public
    /// addresses only.
    client: LazyClient,
    /// For origins the user named in their config (an endpoint override):
    /// may connect to loopback and private addresses. Chosen per hop, by
    /// the exact origin (scheme, host, port) the policy allowed.
    user_named_client: LazyClient,
    policy: Policy,
    credentials: Arc<CredentialStore>,
    artifact: Option<Arc<ArtifactSource>>,
    journal: Arc<Journal>,
    limits: HttpLimits,
    /// Service secrets `secret` segments may splice in.
    service_secrets: BTreeMap<String, Secret>,
    /// Origins service secrets were spliced toward: their answers are
    /// scrubbed of service secrets.
    secrets_sent_to: std::sync::Mutex<HashSet<Origin>>,
    /// Addresses the provider's API named (for the SSH broker).
    seen: Arc<SeenAddresses>,
    /// Timers of the deadline and read timeout, kept between requests.
    timers: Timers,
}

/// A `reqwest::Client` built on its first request. Building one loads the
/// system's TLS root certificates, a fifth of the start-up of an offline
/// command such as `soar plugin inspect`, whose session never sends
/// anything; a command that does send pays it once, as before.
struct LazyClient {
    /// Hosts this client's resolver lets reach loopback and private
    /// addresses (see [`resolve::GuardedResolver`]).
    user_named: Vec<String>,
    connect_timeout: Duration,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl LazyClient {
    fn new(user_named: Vec<String>, connect_timeout: Duration) -> Self {
        Self {
            user_named,
            connect_timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The client, built now if this is the first request. A failure to
    /// build it (no usable TLS set-up) fails this and every later request.
    fn get(&self) -> Result<&reqwest::Client, Error> {
        self.client
            .get_or_init(|| {
                // No `read_timeout` here: the broker enforces it, with the
                // deadline, on one kept timer (see `deadline`).
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .connect_timeout(self.connect_timeout)
                    .dns_resolver(Arc::new(resolve::GuardedResolver::new(
                        self.user_named.clone(),
                    )))
                    .user_agent(concat!("soar/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| error::failed(format!("setting up the host's HTTP client failed: {e}")))
    }
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
    ) -> Self {
        crate::tls::install_crypto_provider();
        Self {
            plugin: plugin.to_string(),
            client: LazyClient::new(vec![], limits.connect_timeout),
            user_named_client: LazyClient::new(policy.user_named_hosts(), limits.connect_timeout),
            policy,
            credentials,
            artifact,
            journal,
            limits,
            service_secrets: BTreeMap::new(),
            secrets_sent_to: Default::default(),
            seen: Arc::default(),
            timers: Timers::default(),
        }
    }

    /// Addresses the provider's credential-bound API named in this command.
    pub fn seen_addresses(&self) -> Arc<SeenAddresses> {
        self.seen.clone()
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

    /// Every secret this broker holds, injected or captured so far: for
    /// scrubbing what the user sees (journal, logs, errors), never for what
    /// the plugin sees (see the module docs).
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
    /// When the request lists `issued` credentials, its answer's are kept
    /// on the host, each bound to the origin it names.
    pub async fn send(&self, mut req: Request) -> Result<Response, Error> {
        let issued = std::mem::take(&mut req.issued);
        let issued = &issued[..];
        let started = Instant::now();
        let method = method_name(req.method);
        // Parsed once, for the journal and the request.
        let url = Url::parse(&req.url);
        let shown_url = match &url {
            Ok(u) => {
                let mut u = u.clone();
                u.set_query(None);
                u.set_fragment(None);
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => req.url.chars().take(200).collect(),
        };
        let result = match url {
            Ok(url) => self.send_inner(req, url, issued).await,
            // The URL is not quoted back: it is the plugin's own text.
            Err(e) => Err(error::invalid(format!(
                "the request URL is not a valid URL: {e}"
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
        // The journal is the user's: scrubbed of every secret.
        let secrets = self.known_secrets();
        self.journal.record(Event::Http {
            plugin: self.plugin.clone(),
            method: method.to_string(),
            url: scrub_str(&shown_url, &secrets),
            status,
            attempts,
            millis: millis(started.elapsed()),
            sent,
            received,
            outcome: scrub_str(&outcome, &secrets),
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
            Err(Expired::Total) => Err(error::timeout(format!(
                "no complete response within {} ms",
                timeout.as_millis()
            ))),
            Err(Expired::Silence) => Err(error::timeout(format!(
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
        check_headers(&req.headers)?;
        if let Some(name) = &req.credential
            && !self.credentials.is_declared(name)
            && self.credentials.captured(name).is_none()
        {
            return Err(error::denied(format!(
                "plugin '{}' asked for credential '{name}', which it neither declared nor captured",
                self.plugin
            )));
        }
        // Where the request may go, before anything is assembled: a refused
        // request costs no memory, whatever its body references.
        self.policy.check(&url)?;
        let sources = body::Sources {
            artifact: self.artifact.as_deref(),
            secrets: &self.service_secrets,
        };
        let planned = body::planned_size(&req.body, sources);
        if planned > self.limits.max_request_bytes {
            return Err(error::invalid(format!(
                "the request body would be {planned} bytes, over the host's cap of {} bytes",
                self.limits.max_request_bytes
            )));
        }
        let carries_secret = body::carries_secret(&req.body);
        let first = Origin::of(&url).ok_or_else(|| error::invalid("the URL has no host".into()))?;
        if carries_secret {
            self.check_secret_destination(&first)?;
        }
        let mut method = req.method;
        let mut body = Prepared::build(&req.body, sources)?;
        let mut visited = HashSet::new();
        let mut attempts_total = 0;
        for hop in 0..=self.limits.max_redirects {
            let allowed = self.policy.check(&url)?;
            let origin =
                Origin::of(&url).ok_or_else(|| error::invalid("the URL has no host".into()))?;
            if carries_secret && !matches!(body, Prepared::Empty) {
                self.check_secret_destination(&origin)?;
                lock(&self.secrets_sent_to).insert(origin.clone());
            }
            let credential = self.credential_for(req.credential.as_deref(), &origin, hop == 0)?;
            if (credential.is_some() || self.is_credential_bound(&origin))
                && let Some((name, _)) = req
                    .headers
                    .iter()
                    .find(|(n, _)| AUTH_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            {
                return Err(error::denied(format!(
                    "plugin '{}' set its own '{}' header toward {origin}, a host bound to a credential; name the credential instead and the host injects it",
                    self.plugin,
                    name.to_ascii_lowercase(),
                )));
            }
            let client = if allowed.user_named {
                self.user_named_client.get()?
            } else {
                self.client.get()?
            };
            let (response, attempts, sent) = retry::send(
                self,
                client,
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
                    .map_err(|_| error::failed("redirect with a non-text Location".into()))?;
                let next = url
                    .join(location)
                    .map_err(|e| error::failed(format!("redirect to an invalid URL: {e}")))?;
                if !visited.insert(next.clone()) || next == url {
                    return Err(error::failed(format!(
                        "redirect loop at {origin}{}",
                        next.path()
                    )));
                }
                if status == 303 || (matches!(status, 301 | 302) && method == Method::Post) {
                    method = Method::Get;
                    body = Prepared::Empty;
                }
                url = next;
                continue;
            }
            let mut response = self.read(response, watch).await?;
            self.finish_response(&mut response, &req, issued, &origin)?;
            return Ok(Outcome {
                response,
                attempts: attempts_total,
                sent,
            });
        }
        Err(error::failed(format!(
            "more than {} redirects",
            self.limits.max_redirects
        )))
    }

    /// What happens to an answer before the plugin sees it: addresses noted,
    /// issued and captured values taken out of the raw body (so a token the
    /// API returns twice is captured as itself, not as `[redacted]`), then
    /// the secrets this origin has seen scrubbed from body and headers.
    fn finish_response(
        &self,
        response: &mut Response,
        req: &Request,
        issued: &[IssuedCredential],
        origin: &Origin,
    ) -> Result<(), Error> {
        let trusted = self.is_trusted(origin);
        if trusted {
            self.seen.record(&response.body);
        }
        let ok = (200..300).contains(&response.status);
        if ok && (!issued.is_empty() || req.capture.is_some()) {
            if !trusted {
                return Err(error::denied(format!(
                    "plugin '{}' may capture or keep issued credentials only from its provider's API (a host bound to a declared credential), not from {origin}",
                    self.plugin
                )));
            }
            let mut json: serde_json::Value = serde_json::from_slice(&response.body)
                .map_err(|_| error::invalid("the response to capture from is not JSON".into()))?;
            let mut kept = self.keep_issued(&mut json, issued)?;
            if let Some(capture) = &req.capture {
                kept.push(take_capture(
                    &mut json,
                    &capture.credential,
                    &capture.pointer,
                )?);
            }
            // A value that holds a secret the host already has is an echo,
            // not a credential: keeping it would send that secret wherever
            // the new credential goes. (A token this origin handed out
            // before may come again: it is its own.)
            let known = Redactor::cached(&self.secrets_not_from(origin));
            for k in &kept {
                if k.values().iter().any(|v| known.finds(v.as_bytes())) {
                    return Err(error::denied(format!(
                        "credential '{}' from {origin} holds a secret the host already has; an echoed value is not a credential",
                        k.name
                    )));
                }
            }
            for k in kept {
                let (bound, provenance) = match k.origin {
                    Some(o) => (o, Provenance::Issued),
                    None => (origin.clone(), Provenance::Captured),
                };
                self.credentials
                    .capture(&k.name, k.credential, bound, origin.clone(), provenance)
                    .map_err(error::invalid)?;
            }
            response.body = serde_json::to_vec(&json).map_err(|e| error::failed(e.to_string()))?;
        }
        let redactor = Redactor::cached(&self.secrets_seen_by(origin));
        redactor.scrub(&mut response.body);
        for (_, v) in response.headers.iter_mut() {
            redactor.scrub_string(v);
        }
        if trusted {
            mask_jwts(&mut response.body);
            for (_, v) in response.headers.iter_mut() {
                let mut bytes = std::mem::take(v).into_bytes();
                mask_jwts(&mut bytes);
                *v = String::from_utf8(bytes).unwrap_or_default();
            }
        }
        Ok(())
    }

    /// The secrets an answer from `origin` may legitimately carry: the
    /// declared credentials bound to it, the service secrets sent to it, and
    /// captured or issued values sent to it or taken from it.
    fn secrets_seen_by(&self, origin: &Origin) -> Vec<Secret> {
        let mut out = self.credentials.captured_secrets_seen_by(origin);
        for (name, secrets) in self.credentials.resolved_secrets() {
            if self
                .policy
                .credential_origins(&name)
                .is_some_and(|o| o.contains(origin))
            {
                out.extend(secrets);
            }
        }
        if lock(&self.secrets_sent_to).contains(origin) {
            out.extend(self.service_secrets.values().cloned());
        }
        out
    }

    /// Every secret the host holds except those `origin` itself issued.
    fn secrets_not_from(&self, origin: &Origin) -> Vec<Secret> {
        let mut out = self.credentials.captured_secrets_not_from(origin);
        for (_, secrets) in self.credentials.resolved_secrets() {
            out.extend(secrets);
        }
        out.extend(self.service_secrets.values().cloned());
        out
    }

    /// Whether `origin` is the provider's API as the user configured it: an
    /// origin a declared credential is bound to.
    fn is_trusted(&self, origin: &Origin) -> bool {
        self.policy.bound_origins().any(|o| o == origin)
    }

    /// Whether any credential (declared, captured or issued) is bound to
    /// `origin`: the plugin may not set its own authorization there.
    fn is_credential_bound(&self, origin: &Origin) -> bool {
        self.is_trusted(origin) || self.credentials.captured_origins().contains(origin)
    }

    /// Service secrets go only where the user's trust reaches: the origins
    /// of declared credentials (which the user saw at install) and origins
    /// those APIs issued credentials for. A capture grants nothing.
    fn check_secret_destination(&self, origin: &Origin) -> Result<(), Error> {
        if self.is_trusted(origin) || self.credentials.issued_origins().contains(origin) {
            return Ok(());
        }
        Err(error::denied(format!(
            "plugin '{}' may send service secrets only to its provider's API (a host bound to a declared credential), not to {origin}",
            self.plugin
        )))
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
                .map_err(error::credential_missing);
        }
        if first_hop {
            return Err(error::denied(format!(
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
            return Err(error::too_large(cap));
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
                return Err(error::too_large(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Take the credentials an answer of the provider's API issues for
    /// another origin out of `json`, leaving a marker in each secret's place.
    ///
    /// The origin each is bound to must pass the same allow-list as any
    /// request, so an issued secret only ever travels to a host the plugin
    /// declared and the user granted. Messages never quote a value of the
    /// answer: it may be a secret.
    fn keep_issued(
        &self,
        json: &mut serde_json::Value,
        issued: &[IssuedCredential],
    ) -> Result<Vec<Kept>, Error> {
        let mut kept = Vec::new();
        for want in &expand_issued(json, issued)? {
            let name = &want.credential;
            let base = text_at(json, &want.origin, name)?;
            let url = Url::parse(&base).map_err(|_| {
                error::invalid(format!(
                    "issued credential '{name}': the value at {} is not a URL",
                    want.origin
                ))
            })?;
            self.policy.check(&url).map_err(|e| {
                error::denied(format!(
                    "issued credential '{name}' is for a URL (at {}) that plugin '{}' may not reach: {e}",
                    want.origin, self.plugin
                ))
            })?;
            let origin = Origin::of(&url).ok_or_else(|| {
                error::invalid(format!(
                    "issued credential '{name}': the URL at {} has no host",
                    want.origin
                ))
            })?;
            let (credential, secret_pointer) = match &want.scheme {
                IssuedScheme::Bearer(p) => {
                    (Resolved::Bearer(Secret::new(text_at(json, p, name)?)), p)
                }
                IssuedScheme::Basic(b) => (
                    Resolved::Basic {
                        user: text_at(json, &b.user, name)?,
                        password: Secret::new(text_at(json, &b.password, name)?),
                    },
                    &b.password,
                ),
            };
            if let Some(slot) = json.pointer_mut(secret_pointer) {
                *slot = serde_json::Value::String(format!("[captured:{name}]"));
            }
            kept.push(Kept {
                name: name.clone(),
                credential,
                origin: Some(origin),
            });
        }
        Ok(kept)
    }
}

/// A credential taken from an answer, before it is stored.
struct Kept {
    name: String,
    credential: Resolved,
    /// The origin it is issued for; `None` for a capture (bound to the
    /// origin that answered).
    origin: Option<Origin>,
}

impl Kept {
    /// The values it would put on the wire.
    fn values(&self) -> Vec<&str> {
        match &self.credential {
            Resolved::Bearer(s) => vec![s.expose()],
            Resolved::Basic { user, password } => vec![user, password.expose()],
            Resolved::Aws { .. } => vec![],
        }
    }
}

/// The non-empty string at `pointer`, for issued credential `name`.
fn text_at(json: &serde_json::Value, pointer: &str, name: &str) -> Result<String, Error> {
    match json.pointer(pointer) {
        Some(serde_json::Value::String(v)) if !v.is_empty() => Ok(v.clone()),
        Some(_) => Err(error::invalid(format!(
            "credential '{name}': the value at {pointer} is not a non-empty string"
        ))),
        None => Err(error::invalid(format!(
            "credential '{name}': nothing at {pointer} in the response"
        ))),
    }
}

/// Move the token at `pointer` out of `json`, leaving the marker.
fn take_capture(json: &mut serde_json::Value, name: &str, pointer: &str) -> Result<Kept, Error> {
    let slot = json.pointer_mut(pointer).ok_or_else(|| {
        error::invalid(format!(
            "capture '{name}': nothing at {pointer} in the response"
        ))
    })?;
    let serde_json::Value::String(token) = std::mem::replace(
        slot,
        serde_json::Value::String(format!("[captured:{name}]")),
    ) else {
        return Err(error::invalid(format!(
            "capture '{name}': the value at {pointer} is not a string"
        )));
    };
    if token.is_empty() {
        return Err(error::invalid(format!(
            "capture '{name}': the value at {pointer} is empty"
        )));
    }
    Ok(Kept {
        name: name.to_string(),
        credential: Resolved::Bearer(Secret::new(token)),
        origin: None,
    })
}

/// Headers a plugin sets: names and values HTTP can carry, none of the
/// host's own. Each refusal names the header.
fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
            return Err(error::denied(format!(
                "the host sets the '{lower}' header itself; plugins may not"
            )));
        }
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(error::invalid(format!(
                "header name {:?} is not a valid HTTP header name",
                name.chars().take(64).collect::<String>()
            )));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(error::invalid(format!(
                "the value of header '{lower}' is not valid in HTTP (control characters or line breaks)"
            )));
        }
    }
    Ok(())
}

/// Replace JSON Web Tokens in an answer of the provider's API with a
/// marker. A JWT the API mints is a credential made with the user's
/// authority (Cloudflare's Pages upload token); a plugin that wants to use
/// one captures it, and then never sees it.
fn mask_jwts(body: &mut Vec<u8>) {
    static MARK: &[u8] = b"[jwt withheld: capture it]";
    let mut out: Option<Vec<u8>> = None;
    let mut from = 0;
    let mut i = 0;
    while let Some(at) = find_from(body, b"eyJ", i) {
        let end = jwt_end(&body[at..]).map(|n| at + n);
        match end {
            Some(end) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
                o.extend_from_slice(&body[from..at]);
                o.extend_from_slice(MARK);
                from = end;
                i = end;
            }
            None => i = at + 3,
        }
    }
    if let Some(mut o) = out {
        o.extend_from_slice(&body[from..]);
        *body = o;
    }
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The length of a JWT (`header.payload.signature`, base64url, the header
/// and payload JSON objects) at the start of `s`, if one is there.
fn jwt_end(s: &[u8]) -> Option<usize> {
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let mut parts = 0;
    let mut i = 0;
    let mut part_len = 0;
    while i < s.len() {
        let b = s[i];
        if b64(b) {
            part_len += 1;
        } else if b == b'.' && parts < 2 && part_len > 0 {
            parts += 1;
            part_len = 0;
        } else {
            break;
        }
        i += 1;
    }
    (parts == 2 && part_len > 0 && i >= 32 && s.get(..3) == Some(b"eyJ")).then_some(i)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            return Err(error::invalid(format!(
                "issued credential '{}': pointers with `*` need a name with `*` too (one credential per entry)",
                want.credential
            )));
        }
        let count = json
            .pointer(prefix)
            .and_then(serde_json::Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| {
                error::invalid(format!(
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

/// The journal's outcome of a failed request: the reason's word, then the
/// message.
fn describe_error(e: &Error) -> String {
    let m = &e.message;
    match e.reason {
        _ if error::is_refusal(e) => format!("denied: {m}"),
        TransportReason::Timeout => format!("timeout: {m}"),
        TransportReason::TooLarge => {
            format!("too large: over {} bytes", e.size_cap.unwrap_or_default())
        }
        TransportReason::Invalid => format!("invalid: {m}"),
        reason => format!("failed ({}): {m}", reason.as_str()),
    }
}

/// Map a reqwest failure to the contract's error, recognising the resolver's
/// refusal of private addresses as a denial.
fn transport_error(e: &reqwest::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(denied) = s.downcast_ref::<resolve::PrivateAddress>() {
            return error::denied(denied.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return error::timeout(without_url(e));
    }
    error::of(failure_reason(e), without_url(e))
}

/// Whether a failed connection failed at DNS, at TLS, or otherwise. The
/// resolver's and rustls' errors are found in the source chain (rustls'
/// inside the `io::Error` hyper wraps it in, which `source()` skips).
fn failure_reason(e: &reqwest::Error) -> TransportReason {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if s.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return TransportReason::Tls;
        }
        if s.to_string().starts_with("dns error") {
            return TransportReason::Dns;
        }
        source = s.source();
    }
    TransportReason::Connection
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
    use crate::contract::soar::plugin::http::Body;
    use crate::contract::{Capabilities, EndpointDecl};
    use crate::credentials::ProcessEnv;

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
        let broker = HttpBroker::new("test", policy, credentials, None, journal.clone(), limits);
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
            issued: vec![],
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
            matches!(&r, Err(e) if e.reason == TransportReason::Timeout && e.message.contains("read timeout")),
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
            matches!(&r, Err(e) if e.reason == TransportReason::Timeout && e.message.contains("read timeout")),
            "{r:?}"
        );
    }

    /// Building a client loads the system's TLS roots: a broker that sends
    /// nothing (an offline session) must not pay for it, and one that sends
    /// builds only the client its origin needs, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_are_built_on_first_use() {
        let zero = Duration::ZERO;
        let url = server(vec![(zero, HEAD.to_vec()), (zero, b"abcdef".to_vec())]);
        let (broker, _) = broker(&url, Duration::from_secs(5));
        let built = |c: &LazyClient| c.client.get().is_some();
        assert!(!built(&broker.client) && !built(&broker.user_named_client));
        for _ in 0..2 {
            let r = broker.send(get(&url, None)).await.unwrap();
            assert_eq!(r.body, b"abcdef");
        }
        // The loopback server is the user's endpoint override.
        assert!(built(&broker.user_named_client));
        assert!(!built(&broker.client));
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
            matches!(&r, Err(e) if e.reason == TransportReason::Timeout && e.message.contains("within 400 ms")),
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
            matches!(&r, Err(e) if e.reason == TransportReason::Timeout && e.message.contains("within 100 ms")),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let r = broker.send(get(&url, None)).await.unwrap();
        assert_eq!(r.body, b"abcdef");
    }
}
