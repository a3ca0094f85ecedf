//! Which failed attempts are worth another one, and how long to wait first.
//!
//! A job's deploy runs in a child process (see [`super::queue`]), so the
//! engine's typed errors reach the server only as the text of the `error`
//! event the child prints last (its message and chain of causes). That text
//! is classified here, in one place: a rate limit, a timeout, a 5xx answer
//! or a refused/reset connection is *transient* (the same request may well
//! succeed a little later); anything else — a validation error, a denial,
//! a 4xx, a plan or config error — fails the job at once, since repeating
//! it cannot change the outcome.
//!
//! Only the error event is classified, never the deploy's warnings on
//! stderr: a warning about a slow registry must not turn a config error
//! into a retry.

use std::time::Duration;

/// How a server retries transient failures (`[queue] retries`, `backoff`,
/// `max_backoff` in soar-server.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Further attempts after the first one fails transiently (0: none).
    pub retries: u32,
    /// The wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The wait after failed attempt number `attempt` (1 = the first):
    /// `backoff * 2^(attempt-1)`, at most `max_backoff`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// Whether a job that has made `attempts` attempts may make another.
    pub fn allows_another(&self, attempts: u32) -> bool {
        attempts <= self.retries
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

/// Why the failure `error` (a deploy's error event: message and causes) is
/// transient, or `None` when it is not (or there is no error text).
pub fn transient(error: &str) -> Option<&'static str> {
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

    #[test]
    fn transient_failures_are_told_from_permanent_ones() {
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
            assert_eq!(transient(text), want, "{text}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = Policy {
            retries: 3,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (1..=4).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 5, 5]);
        assert_eq!(p.delay(200), Duration::from_secs(5));
        assert!(p.allows_another(1) && p.allows_another(3) && !p.allows_another(4));
        let none = Policy {
            retries: 0,
            ..Policy::default()
        };
        assert!(!none.allows_another(1));
    }
}
