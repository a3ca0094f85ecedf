//! One logical request, attempted until it gets an answer worth returning:
//! 429 and gateway errors are retried with exponential backoff and jitter,
//! waiting what `Retry-After` (or DigitalOcean's `ratelimit-reset`) asks when
//! the deadline allows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngExt as _;
use url::Url;

use super::body::Prepared;
use super::deadline::Watch;
use super::error::{self, Error};
use super::{HttpBroker, method_name, transport_error};
use crate::contract::soar::plugin::http::Method;
use crate::credentials::{Resolved, sign_sigv4};

/// Send with retries; returns the final response (possibly still 429/5xx
/// when the budget ran out), the attempts made and the body bytes sent.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one request, plus the client and the deadline watch it runs under"
)]
pub async fn send(
    broker: &HttpBroker,
    client: &reqwest::Client,
    method: Method,
    url: &Url,
    headers: &[(String, String)],
    body: &Prepared,
    credential: Option<&Resolved>,
    region: Option<&str>,
    watch: &Watch,
) -> Result<(reqwest::Response, u32, u64), Error> {
    let limits = &broker.limits;
    let idempotent = matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (request, sent) = build(client, method, url, headers, body, credential, region)?;
        // The read timeout runs from here to the response head.
        watch.waiting();
        let result = request.send().await;
        watch.idle();
        let last = attempt >= limits.max_attempts;
        let wait = match &result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // 429 and 503 mean the request was not processed; other 5xx
                // may hide a create that happened, so only idempotent
                // requests are resent on them.
                let retryable = matches!(status, 429 | 503)
                    || (idempotent && matches!(status, 500 | 502 | 504));
                if !retryable || last {
                    return Ok((result.expect("matched Ok"), attempt, sent));
                }
                server_delay(resp.headers())
                    .unwrap_or_else(|| backoff(limits.backoff_base, limits.backoff_max, attempt))
            }
            Err(e) => {
                // A refused or reset connection never reached the server's
                // logic, so even a POST is safe to resend.
                let retryable = e.is_connect() && !error::is_refusal(&transport_error(e));
                if !retryable || last {
                    return Err(transport_error(e));
                }
                backoff(limits.backoff_base, limits.backoff_max, attempt)
            }
        };
        let wait = wait.min(limits.backoff_max);
        if tokio::time::Instant::now() + wait >= watch.deadline() {
            // Waiting would overrun the deadline: hand back what we have.
            return match result {
                Ok(resp) => Ok((resp, attempt, sent)),
                Err(e) => Err(transport_error(&e)),
            };
        }
        tracing::debug!(target: "soar::http", plugin = %broker.plugin, attempt, wait_ms = wait.as_millis() as u64, "retrying {} {url}", method_name(method));
        drop(result);
        tokio::time::sleep(wait).await;
    }
}

/// One attempt's request, credential applied.
fn build(
    client: &reqwest::Client,
    method: Method,
    url: &Url,
    headers: &[(String, String)],
    body: &Prepared,
    credential: Option<&Resolved>,
    region: Option<&str>,
) -> Result<(reqwest::RequestBuilder, u64), Error> {
    let m = match method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    };
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if let Some(ct) = body.content_type()
        && !all.iter().any(|(k, _)| k == "content-type")
    {
        all.push(("content-type".into(), ct.into()));
    }
    match credential {
        None => {}
        Some(Resolved::Bearer(secret)) => all.push((
            "authorization".into(),
            format!("Bearer {}", secret.expose()),
        )),
        Some(Resolved::Basic { user, password }) => {
            use base64::Engine as _;
            let pair = format!("{user}:{}", password.expose());
            all.push((
                "authorization".into(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            ))
        }
        Some(Resolved::Aws { service, keys }) => {
            let payload = body.signable().ok_or_else(|| {
                error::invalid(
                    "multipart bodies cannot be SigV4-signed; send a form or bytes".into(),
                )
            })?;
            let region = region
                .map(str::to_string)
                .or_else(|| region_from_host(url.host_str().unwrap_or_default(), service))
                .ok_or_else(|| {
                    error::invalid(format!(
                        "SigV4 needs a region: set `region` on the request to {url}"
                    ))
                })?;
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_string(),
            };
            let mut to_sign = all.clone();
            to_sign.push(("host".into(), host));
            let signed = sign_sigv4(
                keys,
                service,
                &region,
                method_name(method),
                url.as_str(),
                &to_sign,
                payload,
            )
            .map_err(error::invalid)?;
            all.extend(signed);
        }
    }
    let mut rb = client.request(m, url.clone());
    for (k, v) in &all {
        // Plugin headers were checked on arrival; what fails here is a
        // value the host added, usually a credential read from an
        // environment variable with a trailing newline. Named, never shown.
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            error::invalid(format!("header name {k:?} is not a valid HTTP header name"))
        })?;
        let secret = matches!(
            k.as_str(),
            "authorization" | "x-amz-security-token" | "x-amz-content-sha256"
        );
        let mut value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
            error::invalid(if secret {
                format!(
                    "the credential injected as the '{k}' header is not a valid HTTP header value (a line break or other control character): check the environment variable it is read from (a trailing newline?)"
                )
            } else {
                format!(
                    "the value of header '{k}' is not a valid HTTP header value (control characters or line breaks)"
                )
            })
        })?;
        value.set_sensitive(secret);
        rb = rb.header(name, value);
    }
    body.attach(rb)
}

/// `ec2.us-east-1.amazonaws.com` → `us-east-1`.
fn region_from_host(host: &str, service: &str) -> Option<String> {
    let rest = host.strip_prefix(service)?.strip_prefix('.')?;
    let region = rest.strip_suffix(".amazonaws.com")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

/// The wait a server asked for: `Retry-After` seconds, else a
/// `ratelimit-reset` / `x-ratelimit-reset` epoch second.
fn server_delay(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let reset = get("ratelimit-reset")
        .or_else(|| get("x-ratelimit-reset"))?
        .parse::<u64>()
        .ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    // Small values are "seconds from now", large ones epoch seconds.
    Some(Duration::from_secs(if reset > 1_000_000_000 {
        reset.saturating_sub(now)
    } else {
        reset
    }))
}

/// Exponential backoff with jitter in [50%, 100%].
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16)).min(max);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_read_from_aws_host_names() {
        assert_eq!(
            region_from_host("ec2.eu-west-3.amazonaws.com", "ec2").as_deref(),
            Some("eu-west-3")
        );
        assert_eq!(region_from_host("127.0.0.1", "ec2"), None);
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(server_delay(&h), Some(Duration::from_secs(2)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("ratelimit-reset", "3".parse().unwrap());
        assert_eq!(server_delay(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = backoff(Duration::from_millis(100), Duration::from_secs(1), 3);
        assert!(b >= Duration::from_millis(200) && b <= Duration::from_millis(400));
        assert!(
            backoff(Duration::from_millis(100), Duration::from_secs(1), 30)
                <= Duration::from_secs(1)
        );
    }
}
