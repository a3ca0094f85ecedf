//! The HTTP client of a `soar serve` server: which URLs it will send a
//! token to, the token itself, each route the CLI uses, and the errors
//! turned into one line saying what to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::sse;
use super::wire;

/// The environment variable the token is read from. Never a flag: a flag
/// lands in shell history and in `ps` output.
pub const TOKEN_ENV: &str = "SOAR_SERVER_TOKEN";

/// How long to wait for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence on a response. The server's event streams send a
/// keep-alive every 15 s, and status/history/logs answer within 60 s (the
/// server's own bound on them), so a longer silence means a dead link.
const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the server is and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's base URL (`https://host:port/`, maybe with a path
    /// prefix when behind a proxy).
    pub url: String,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca: Option<PathBuf>,
    /// Allow `http://` to a host that is not this machine.
    pub insecure_http: bool,
}

/// The bearer token, kept out of `Debug` and every message.
struct Token(HeaderValue);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A client of one server, with its token.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Token,
}

/// An error answer of the server, as one line: what it said, and its hint.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_error(.server, *.status, .body))]
pub struct ServerError {
    /// The server's base URL, for the message.
    pub server: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// What the server said.
    pub body: wire::ErrorBody,
}

fn render_error(server: &str, status: StatusCode, body: &wire::ErrorBody) -> String {
    let error = crate::terminal::line(&body.error);
    let mut text = match status {
        StatusCode::UNAUTHORIZED => format!(
            "the server at {server} refused the token in ${TOKEN_ENV} (unknown or revoked); \
             ask its admin for one (`soar serve token create --scope deploy`) and export it as ${TOKEN_ENV}"
        ),
        StatusCode::FORBIDDEN => format!(
            "the server at {server} does not allow this token to do that: {error}; {}",
            crate::terminal::line(&body.hint)
        ),
        _ if body.hint.is_empty() => format!("{error} (server {server}, HTTP {})", status.as_u16()),
        _ => format!(
            "{error} (server {server}, HTTP {}); {}",
            status.as_u16(),
            crate::terminal::line(&body.hint)
        ),
    };
    for d in &body.diagnostics {
        text.push_str("\n  ");
        text.push_str(&crate::terminal::line(d));
    }
    text
}

impl Endpoint {
    /// The base URL, checked: https anywhere; http only to this machine
    /// (127.0.0.0/8, ::1, localhost) unless `insecure_http`, so a token
    /// never crosses a network in clear text by accident.
    pub fn base(&self) -> anyhow::Result<Url> {
        let mut url = Url::parse(&self.url).with_context(|| {
            format!(
                "--server {:?} is not a URL; use e.g. https://deploy.example.com or http://127.0.0.1:8007",
                self.url
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            anyhow::bail!(
                "--server must not carry credentials in the URL (they would show in logs); put the token in ${TOKEN_ENV}"
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            anyhow::bail!(
                "--server {} has a query or fragment; give the server's base URL only",
                url
            );
        }
        match url.scheme() {
            "https" => {}
            "http" if self.insecure_http || is_loopback(&url) => {}
            "http" => anyhow::bail!(
                "refusing to send the token to {url} over plain http: it would cross the network in clear text. \
                 Serve TLS (`[tls]` in soar-server.toml) and use https://, or pass --insecure-http if the network is trusted"
            ),
            other => anyhow::bail!("--server {url}: the scheme {other:?} is not http or https"),
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }
}

/// Whether `url`'s host is this machine.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading --server-ca {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
        format!(
            "--server-ca {}: not PEM certificates (-----BEGIN CERTIFICATE-----)",
            path.display()
        )
    })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--server-ca {}: no certificate in it",
        path.display()
    );
    Ok(certs)
}

impl Client {
    /// A client of `endpoint`, with the token from `$SOAR_SERVER_TOKEN`.
    pub fn new(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let token = std::env::var(TOKEN_ENV).unwrap_or_default();
        Self::with_token(endpoint, token.trim())
    }

    /// A client of `endpoint` sending `token`.
    pub fn with_token(endpoint: &Endpoint, token: &str) -> anyhow::Result<Self> {
        let base = endpoint.base()?;
        if token.is_empty() {
            anyhow::bail!(
                "no token for {}: set ${TOKEN_ENV} to a token of that server (its admin makes one with `soar serve token create --scope deploy`)",
                base.as_str().trim_end_matches('/')
            );
        }
        let mut token = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("${TOKEN_ENV} holds characters a token never has"))?;
        token.set_sensitive(true);
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            // A redirect could carry the request, token and all, elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("soar/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&base) {
            builder = builder.no_proxy();
        }
        if let Some(ca) = &endpoint.ca {
            builder = builder.tls_certs_merge(read_ca(ca)?);
        }
        Ok(Self {
            http: builder.build().context("setting up the HTTP client")?,
            base,
            token: Token(token),
        })
    }

    /// The server's base URL, as the user gave it (for messages).
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + the path segments, each percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Send a request; the response when it is a success, else the
    /// server's error as a [`ServerError`] (or why it could not be reached).
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl serde::Serialize>,
        last_event: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.token.0.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(id) = last_event {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body =
            serde_json::from_str::<wire::ErrorBody>(&text).unwrap_or_else(|_| wire::ErrorBody {
                error: format!(
                    "{} answered {status} for {}, not a soar server error",
                    self.server(),
                    url.path()
                ),
                hint: "check that --server is the URL `soar serve` printed when it started".into(),
                diagnostics: Vec::new(),
            });
        Err(ServerError {
            server: self.server().to_string(),
            status,
            body,
        }
        .into())
    }

    /// A transport error as one line: what failed, and what to check.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let server = self.server();
        let mut causes = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            let text = s.to_string();
            if !causes.iter().any(|c: &String| c.contains(&text)) {
                causes.push(text);
            }
            source = s.source();
        }
        let detail = causes.join(": ");
        let what = if e.is_connect() && detail.contains("refused") {
            "connection refused: is `soar serve` running there? (check --server or $SOAR_SERVER)"
                .to_string()
        } else if e.is_timeout() {
            format!("timed out: {detail}")
        } else if detail.contains("certificate") || detail.contains("UnknownIssuer") {
            // The innermost cause says what is wrong with it; the outer
            // ones repeat the URL.
            let why = causes.last().map_or(detail.as_str(), String::as_str);
            format!(
                "its TLS certificate is not trusted ({why}); pass --server-ca FILE with the CA that signed it"
            )
        } else {
            detail
        };
        anyhow::anyhow!("cannot reach the soar server at {server}: {what}")
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&impl serde::Serialize>,
    ) -> anyhow::Result<T> {
        let url = self.url(segments, query);
        let response = self.send(method, url.clone(), body, None).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} answered {} with JSON this soar does not read; is it a soar server of the same version?",
                self.server(),
                url.path()
            )
        })
    }

    /// Queue a deploy.
    pub async fn submit(
        &self,
        request: &wire::DeployRequest<'_>,
    ) -> anyhow::Result<wire::Submitted> {
        self.json(Method::POST, &["v1", "deploys"], &[], Some(request))
            .await
    }

    /// Plan on the server, which keeps the plan.
    pub async fn plan(&self, request: &wire::PlanRequest<'_>) -> anyhow::Result<wire::SavedPlan> {
        self.json(Method::POST, &["v1", "plans"], &[], Some(request))
            .await
    }

    /// One job.
    pub async fn job(&self, id: &str) -> anyhow::Result<wire::Job> {
        self.json(Method::GET, &["v1", "deploys", id], &[], None::<&()>)
            .await
    }

    /// Cancel a job.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<wire::Cancelled> {
        self.json(
            Method::POST,
            &["v1", "deploys", id, "cancel"],
            &[],
            None::<&()>,
        )
        .await
    }

    /// Queue a rollback of an environment to its previous release.
    pub async fn rollback(&self, project: &str, env: &str) -> anyhow::Result<wire::Submitted> {
        self.json(
            Method::POST,
            &["v1", "environments", project, env, "rollback"],
            &[],
            None::<&()>,
        )
        .await
    }

    /// `soar status --json`'s object for one environment.
    pub async fn status(&self, project: &str, env: &str) -> anyhow::Result<serde_json::Value> {
        self.json(
            Method::GET,
            &["v1", "environments", project, env],
            &[],
            None::<&()>,
        )
        .await
    }

    /// The audit trail, newest first: of `env`, or (none named) of the
    /// project's only environment.
    pub async fn history(
        &self,
        project: &str,
        env: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let query = [("limit", limit.to_string())];
        self.json(
            Method::GET,
            &scoped(project, env, "history"),
            &query,
            None::<&()>,
        )
        .await
    }

    /// The service's last `lines` log lines: of `env`, or (none named) of
    /// the project's only environment.
    pub async fn logs(
        &self,
        project: &str,
        env: Option<&str>,
        lines: usize,
    ) -> anyhow::Result<wire::Logs> {
        let query = [("lines", lines.to_string())];
        self.json(
            Method::GET,
            &scoped(project, env, "logs"),
            &query,
            None::<&()>,
        )
        .await
    }

    /// The service's log as it is written, as Server-Sent Events (`start`,
    /// then `line` `{host, line}` each, backlog first; `end` `{error}`
    /// when the server's follow stopped by itself).
    pub async fn follow_logs(
        &self,
        project: &str,
        env: Option<&str>,
        lines: usize,
    ) -> anyhow::Result<Events> {
        let query = [("lines", lines.to_string()), ("follow", "1".to_string())];
        let url = self.url(&scoped(project, env, "logs"), &query);
        let response = self.send(Method::GET, url, None::<&()>, None).await?;
        Ok(Events {
            response,
            parser: sse::Parser::default(),
            ready: std::collections::VecDeque::new(),
        })
    }

    /// Job `id`'s event stream, from the start or after event `after`.
    pub async fn events(&self, id: &str, after: Option<&str>) -> anyhow::Result<Events> {
        let url = self.url(&["v1", "deploys", id, "events"], &[]);
        let response = self.send(Method::GET, url, None::<&()>, after).await?;
        Ok(Events {
            response,
            parser: sse::Parser::default(),
            ready: std::collections::VecDeque::new(),
        })
    }
}

/// A job's event stream, message by message.
#[derive(Debug)]
pub struct Events {
    response: reqwest::Response,
    parser: sse::Parser,
    ready: std::collections::VecDeque<sse::Message>,
}

impl Events {
    /// The next message; `None` when the server closed the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<sse::Message>> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Ok(Some(m));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .context("reading the server's event stream")?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            self.ready.extend(self.parser.feed(&chunk)?);
        }
    }
}

/// The path of an environment's `leaf` (`history`, `logs`): under
/// `/v1/environments/PROJECT/ENV`, or, with no environment named, under
/// `/v1/services/PROJECT`, which the server reads as the project's only one.
fn scoped<'a>(project: &'a str, env: Option<&'a str>, leaf: &'a str) -> Vec<&'a str> {
    match env {
        Some(env) => vec!["v1", "environments", project, env, leaf],
        None => vec!["v1", "services", project, leaf],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, insecure_http: bool) -> Endpoint {
        Endpoint {
            url: url.into(),
            ca: None,
            insecure_http,
        }
    }

    #[test]
    fn plain_http_only_to_this_machine_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8007",
            "http://127.9.9.9:1/",
            "http://[::1]:8007",
            "http://localhost:8007",
            "https://deploy.example.com",
            "https://10.0.0.5:8443/soar",
        ] {
            assert!(endpoint(ok, false).base().is_ok(), "{ok}");
        }
        for refused in [
            "http://deploy.example.com",
            "http://10.0.0.5:8007",
            "ftp://127.0.0.1",
            "https://user:pw@deploy.example.com",
            "https://deploy.example.com/?token=x",
            "deploy.example.com",
        ] {
            assert!(endpoint(refused, false).base().is_err(), "{refused}");
        }
        assert!(endpoint("http://10.0.0.5:8007", true).base().is_ok());
    }

    #[test]
    fn paths_keep_a_prefix_and_encode_each_segment() {
        let c = Client::with_token(&endpoint("https://h.example/soar", false), "t").unwrap();
        assert_eq!(
            c.url(
                &["v1", "environments", "a b", "x/y"],
                &[("limit", "3".into())]
            )
            .as_str(),
            "https://h.example/soar/v1/environments/a%20b/x%2Fy?limit=3"
        );
        assert_eq!(c.server(), "https://h.example/soar");
        assert!(
            !format!("{c:?}").contains("Bearer"),
            "the token shows in Debug"
        );
    }

    #[test]
    fn no_token_says_where_to_put_one() {
        let e = Client::with_token(&endpoint("http://127.0.0.1:1", false), "").unwrap_err();
        assert!(e.to_string().contains(TOKEN_ENV), "{e}");
    }
}
