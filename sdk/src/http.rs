//! HTTP through the host broker: a small builder, JSON helpers and error
//! mapping. The host enforces the allow-list, retries, limits and credential
//! injection; this module only shapes requests.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::bindings::soar::plugin::http::{
    BasicPointers, Body, Capture, IssuedCredential, IssuedScheme, Method, Part, Segment,
};
use crate::host::http as wit;
use crate::{ApiError, PluginError};

/// Names of the service secrets the user configured for this environment.
/// Their values never reach the plugin: put `Segment::Secret(name)` (or
/// `Segment::SecretJson(name)` inside JSON) in a body to the provider's API
/// and the host splices the value in.
pub fn secret_names() -> Vec<String> {
    wit::secret_names()
}

/// The claims (a JSON object) of a credential the host captured from an
/// answer (`Request::capture`), e.g. a JWT's expiry; never its value.
pub fn credential_claims(credential: &str) -> Option<String> {
    wit::credential_claims(credential)
}

/// A request under construction.
#[derive(Debug)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    /// A request with `method` to the absolute `url`.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            inner: wit::Request {
                method,
                url: url.into(),
                headers: Vec::new(),
                body: Body::Empty,
                credential: None,
                capture: None,
                issued: Vec::new(),
                timeout_ms: None,
                region: None,
            },
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Add a header. `Authorization` toward a credential-bound host is refused
    /// by the host: name a credential instead.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Ask the host to inject the named credential.
    pub fn credential(mut self, name: &str) -> Self {
        self.inner.credential = Some(name.to_string());
        self
    }

    /// Keep the token at `pointer` of the response body on the host as
    /// credential `name` (see `capture` in the WIT).
    pub fn capture(mut self, name: &str, pointer: &str) -> Self {
        self.inner.capture = Some(Capture {
            credential: name.into(),
            pointer: pointer.into(),
        });
        self
    }

    /// The answer hands out a user/password pair for the service at the base
    /// URL found at `origin`: the host keeps it as Basic credential `name`,
    /// bound to that origin, and the plugin only ever sees the user name
    /// (see `request.issued` in the WIT). DigitalOcean Functions namespaces
    /// work this way.
    pub fn issues_basic(mut self, name: &str, origin: &str, user: &str, password: &str) -> Self {
        self.inner.issued.push(IssuedCredential {
            credential: name.into(),
            scheme: IssuedScheme::Basic(BasicPointers {
                user: user.into(),
                password: password.into(),
            }),
            origin: origin.into(),
        });
        self
    }

    /// The answer hands out a bearer token (at `token`) for the service at
    /// the base URL found at `origin`; kept on the host as credential `name`.
    pub fn issues_bearer(mut self, name: &str, origin: &str, token: &str) -> Self {
        self.inner.issued.push(IssuedCredential {
            credential: name.into(),
            scheme: IssuedScheme::Bearer(token.into()),
            origin: origin.into(),
        });
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        let bytes = serde_json::to_vec(value).expect("serializing a JSON body cannot fail");
        self.inner.body = Body::Segments(vec![Segment::Bytes(bytes)]);
        self.header("content-type", "application/json")
    }

    /// A raw body made of literal bytes and artifact file references.
    pub fn segments(mut self, segments: Vec<Segment>) -> Self {
        self.inner.body = Body::Segments(segments);
        self
    }

    /// A form-encoded body.
    pub fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.inner.body = Body::Form(fields);
        self
    }

    /// A multipart body.
    pub fn multipart(mut self, parts: Vec<Part>) -> Self {
        self.inner.body = Body::Multipart(parts);
        self
    }

    /// Override the host's default deadline for this request.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Signing region for AWS SigV4 credentials.
    pub fn region(mut self, region: &str) -> Self {
        self.inner.region = Some(region.to_string());
        self
    }

    /// Send through the host and return whatever status came back.
    pub fn send(self) -> Result<Response, PluginError> {
        let r = wit::send(&self.inner)?;
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
            url: self.inner.url,
        })
    }

    /// Send, and turn a non-2xx status into [`PluginError::Api`].
    pub fn send_ok(self) -> Result<Response, PluginError> {
        self.send()?.error_for_status()
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code of the final answer (after redirects).
    pub status: u16,
    /// Lowercase header names.
    pub headers: Vec<(String, String)>,
    /// The body as received, already scrubbed of secrets by the host.
    pub body: Vec<u8>,
    /// The URL requested, for error messages.
    pub url: String,
}

impl Response {
    /// First value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PluginError::Other(format!(
                "unexpected response from {} (status {}): not the JSON expected: {e}",
                self.url, self.status
            ))
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Ok(self)` on 2xx, otherwise an [`ApiError`] read from the common error
    /// bodies: DigitalOcean `{id, message, request_id}`, Cloudflare
    /// `{errors: [{code, message}]}`. Other bodies become the message, cut
    /// to 500 characters; XML APIs parse their own errors.
    pub fn error_for_status(self) -> Result<Self, PluginError> {
        if self.is_success() {
            return Ok(self);
        }
        Err(PluginError::Api(self.api_error()))
    }

    /// The response read as an API error (see [`Response::error_for_status`]).
    pub fn api_error(&self) -> ApiError {
        let mut err = ApiError {
            status: self.status,
            code: String::new(),
            message: String::new(),
            request_id: self.header("x-request-id").map(str::to_string),
        };
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            let s = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let Some(first) = v.get("errors").and_then(|e| e.get(0)) {
                err.code = first.get("code").and_then(s).unwrap_or_default();
                err.message = first.get("message").and_then(s).unwrap_or_default();
            } else {
                err.code = v
                    .get("id")
                    .or(v.get("code"))
                    .and_then(s)
                    .unwrap_or_default();
                err.message = v.get("message").and_then(s).unwrap_or_default();
            }
            if let Some(id) = v.get("request_id").and_then(s) {
                err.request_id = Some(id);
            }
        } else {
            // Not JSON (an HTML error page, or XML that the plugin parses itself).
            err.message = self.text().chars().take(500).collect();
        }
        if err.code.is_empty() {
            err.code = format!("http_{}", self.status);
        }
        if err.message.is_empty() {
            err.message = format!("{} answered {}", self.url, self.status);
        }
        err
    }
}
