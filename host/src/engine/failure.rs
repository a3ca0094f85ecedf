//! Whether a failed command may pass if run again a little later: the
//! verdict `soar serve` retries on, and what the `error` event's
//! `transient` field says to any other caller.
//!
//! A failure is *transient* when the same request may well succeed a
//! little later: a rate limit, a 5xx answer, a timeout, a refused or reset
//! connection. Anything else — a validation error, a denial, a 4xx, a plan
//! or config error, an unhealthy release — is permanent: repeating it
//! cannot change the outcome.
//!
//! The verdict comes from types wherever the failure has them: a plugin's
//! error ([`CallError::transient`]: its `api-error` status or its
//! `transport-error` reason, never its words) or the provider changes
//! that failed ([`ChangesFailed`]). Only failures without a type — a
//! hook's exit, a rollout's SSH step — are judged from their text, by the
//! word lists below.

use crate::runtime::CallError;

/// Why `e` is transient, or `None` when it is permanent: the first typed
/// verdict in its chain of causes, else its text's.
pub fn transient(e: &anyhow::Error) -> Option<&'static str> {
    for cause in e.chain() {
        if let Some(call) = cause.downcast_ref::<CallError>() {
            return call.transient();
        }
        if let Some(changes) = cause.downcast_ref::<ChangesFailed>() {
            return changes.transient;
        }
    }
    by_text(&format!("{e:#}"))
}

/// One provider change's failure: what it says, and its typed verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeError {
    /// The rendered error, safe to print.
    pub text: String,
    /// [`CallError::transient`] of the call that failed.
    pub transient: Option<&'static str>,
}

impl From<CallError> for ChangeError {
    fn from(e: CallError) -> Self {
        let transient = e.transient();
        let text = match e {
            CallError::Plugin { error, .. } => crate::runtime::render_plugin_error(&error),
            other => other.to_string(),
        };
        Self { text, transient }
    }
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Some provider changes failed: `message` lists them. Transient only when
/// every one of them failed transiently (one permanent failure will fail
/// again however often the rest is retried); the first one's reason.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChangesFailed {
    /// Which changes failed and which completed, and what to do.
    pub message: String,
    /// [`ChangesFailed::verdict`] over the failed changes.
    pub transient: Option<&'static str>,
}

impl ChangesFailed {
    /// The verdict over the failures `errors`.
    pub fn verdict<'a>(mut errors: impl Iterator<Item = &'a ChangeError>) -> Option<&'static str> {
        let first = errors.next()?.transient?;
        errors.all(|e| e.transient.is_some()).then_some(first)
    }
}

/// Words that mark a failure as one a retry cannot fix, even when the text
/// also mentions something transient (a denied host that timed out, an
/// invalid configuration reported by a provider's 503 page...).
const PERMANENT: &[&str] = &[
    "denied",
    "invalid configuration",
    "rejected environment",
    "is not set",
    "unauthorized",
    "forbidden",
    "host key",
    // The new release itself failed its health check: the service is
    // broken, and deploying it again would fail the same way.
    "is unhealthy",
];

/// Phrases of a transient failure, and the reason recorded for each.
const TRANSIENT: &[(&str, &str)] = &[
    ("rate limit", "rate limited"),
    ("too many requests", "rate limited"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("connection refused", "connection refused"),
    ("connection reset", "connection reset"),
    ("broken pipe", "connection reset"),
    ("service unavailable", "server error (5xx)"),
    ("bad gateway", "server error (5xx)"),
];

/// Words after which a number is an HTTP status: `API error 503`,
/// `answered 502`, `returned error: 429`, `HTTP 500`, `status 504`.
const STATUS_PREFIXES: &[&str] = &["error", "answered", "returned", "http", "status", "code"];

/// Why the failure described by `error` (a message and its causes) is
/// transient, or `None` when it is not (or there is no text): for the
/// failures that carry no typed verdict.
fn by_text(error: &str) -> Option<&'static str> {
    let text = error.to_ascii_lowercase();
    if PERMANENT.iter().any(|p| text.contains(p)) {
        return None;
    }
    if let Some(status) = http_status(&text) {
        return match status {
            429 => Some("rate limited (HTTP 429)"),
            500..=599 => Some("server error (5xx)"),
            _ => None,
        };
    }
    TRANSIENT
        .iter()
        .find(|(phrase, _)| text.contains(phrase))
        .map(|(_, reason)| *reason)
}

/// The first HTTP status the (lowercased) text reports, as in `API error
/// 503 ...`: a 3-digit word in 100..=599 right after one of
/// [`STATUS_PREFIXES`] (punctuation around either ignored).
fn http_status(text: &str) -> Option<u16> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '/')
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|pair| {
        let status: u16 = pair[1].parse().ok()?;
        (pair[1].len() == 3 && (100..=599).contains(&status) && STATUS_PREFIXES.contains(&pair[0]))
            .then_some(status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{ApiError, PluginError, TransportError, TransportReason};
    use crate::runtime::PluginIdent;

    fn plugin_error(error: PluginError) -> CallError {
        CallError::Plugin {
            plugin: PluginIdent {
                name: "p".into(),
                version: "1.0.0".into(),
            },
            error: Box::new(error),
        }
    }

    fn api(status: u16, message: &str) -> CallError {
        plugin_error(PluginError::Api(ApiError {
            status,
            code: "c".into(),
            message: message.into(),
            request_id: None,
        }))
    }

    fn transport(reason: TransportReason, message: &str) -> CallError {
        plugin_error(PluginError::Transport(TransportError {
            reason,
            message: message.into(),
            size_cap: None,
        }))
    }

    #[test]
    fn a_plugin_error_is_judged_by_its_type_not_its_words() {
        for (e, want) in [
            (api(429, "slow down"), Some("rate limited (HTTP 429)")),
            (api(503, "unavailable"), Some("server error (5xx)")),
            // A 4xx is permanent whatever its words say.
            (api(404, "timed out waiting; service unavailable"), None),
            (
                transport(TransportReason::Timeout, "no answer"),
                Some("timed out"),
            ),
            (
                transport(TransportReason::Connection, "reset"),
                Some("connection failed"),
            ),
            (transport(TransportReason::Denied, "timeout"), None),
            (
                plugin_error(PluginError::Other("timed out, 503".into())),
                None,
            ),
        ] {
            let text = e.to_string();
            let wrapped = anyhow::Error::new(e).context("cannot plan").context("dev");
            assert_eq!(transient(&wrapped), want, "{text}");
        }
    }

    #[test]
    fn changes_are_transient_only_when_all_of_them_are() {
        let e = |t: Option<&'static str>| ChangeError {
            text: "x".into(),
            transient: t,
        };
        let (slow, bad) = (e(Some("timed out")), e(None));
        assert_eq!(
            ChangesFailed::verdict([&slow, &slow].into_iter()),
            Some("timed out")
        );
        assert_eq!(ChangesFailed::verdict([&slow, &bad].into_iter()), None);
        assert_eq!(ChangesFailed::verdict([].into_iter()), None);
        let failed = anyhow::Error::new(ChangesFailed {
            message: "1 of 2 changes failed: API error 503".into(),
            transient: None,
        });
        // The typed verdict wins over the text's status.
        assert_eq!(transient(&failed), None);
    }

    #[test]
    fn untyped_failures_are_told_apart_by_their_words() {
        for (text, want) in [
            (
                "error: cannot apply: digitalocean 0.1.0: API error 503 unavailable: try later",
                Some("server error (5xx)"),
            ),
            (
                "error: cannot plan: API error 429 too_many_requests: slow down",
                Some("rate limited (HTTP 429)"),
            ),
            (
                "error: pre_deploy hook `curl -f x` failed (exit 22): curl: (22) The requested URL returned error: 502",
                Some("server error (5xx)"),
            ),
            (
                "error: pre_deploy hook failed (exit 1): ConnectionRefusedError: [Errno 111] Connection refused",
                Some("connection refused"),
            ),
            (
                "error: ssh 10.0.0.5:22: Connection reset by peer",
                Some("connection reset"),
            ),
            (
                "error: digitalocean: GET https://api/droplets timed out after 30s",
                Some("timed out"),
            ),
            // A client error names a status too, but a retry cannot fix it.
            ("error: API error 422 unprocessable: bad size", None),
            ("error: API error 404 not_found: no such droplet", None),
            // Denials and configuration errors never retry.
            (
                "error: http: denied: host 10.0.0.1 timed out is not declared",
                None,
            ),
            (
                "error: provider 'local' rejected environment 'dev': invalid configuration: port",
                None,
            ),
            (
                "error: secret API_KEY of environment 'dev': environment variable X is not set",
                None,
            ),
            ("error: no environment 'prod' in soar.toml", None),
            (
                "error: release r1 on local is unhealthy: GET /health answered 503",
                None,
            ),
            // A number that is not a status, and no error text at all.
            ("error: release 503 of 600 failed its health check", None),
            ("", None),
        ] {
            assert_eq!(by_text(text), want, "{text}");
        }
    }
}
