//! Downloading plugins and manifests: host code with its own rules, not the
//! plugin-facing broker.
//!
//! - `https://` only; plain `http://` only to loopback (tests, local
//!   mirrors) or with `--allow-insecure-http`.
//! - Redirects are re-checked hop by hop *before* they are followed: a hop to
//!   plain http is refused (loopback → loopback excepted), so a refused
//!   destination is never contacted.
//! - Connect, read and total timeouts; a size cap checked against
//!   `Content-Length` first and against the bytes as they arrive.
//! - The sha256 is computed while streaming; callers verify it before the
//!   bytes are parsed, compiled or moved anywhere.
//! - 404 is "not found", not a checksum error.

use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use url::Url;

/// Limits and rules of one download.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Permit plain `http://` to non-loopback hosts, redirects included
    /// (`--allow-insecure-http`); loopback is always allowed, for tests.
    pub allow_insecure_http: bool,
    /// Largest download accepted, in bytes; checked against the declared
    /// length up front and against the bytes as they arrive.
    pub max_bytes: u64,
    /// Limit on establishing the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for each read, so a stalled server fails fast.
    pub read_timeout: Duration,
    /// Limit on the whole request, body included.
    pub total_timeout: Duration,
    /// Redirects followed before giving up; each hop obeys the scheme rule.
    pub max_redirects: usize,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            // An interpreter-based component (Python) is ~20 MB.
            max_bytes: 128 << 20,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(600),
            max_redirects: 5,
            progress: true,
        }
    }
}

/// Where bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Fetched over `https://`, `http://` or `file://`.
    Url(Url),
    /// Read from the local file system.
    Path(PathBuf),
}

impl Location {
    /// A URL (`https://`, `http://`, `file://`) or a local path.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if s.contains("://") {
            let url = Url::parse(s).with_context(|| format!("'{s}' is not a valid URL"))?;
            return match url.scheme() {
                "https" | "http" => Ok(Location::Url(url)),
                "file" => url
                    .to_file_path()
                    .map(Location::Path)
                    .map_err(|_| anyhow::anyhow!("'{s}' is not a local file URL")),
                other => anyhow::bail!(
                    "'{s}': unsupported scheme {other}: give an https:// URL or a local path"
                ),
            };
        }
        Ok(Location::Path(std::path::absolute(s)?))
    }

    /// `reference` (absolute, or relative to this location, as a manifest's
    /// `url` may be).
    pub fn join(&self, reference: &str) -> anyhow::Result<Self> {
        if reference.contains("://") {
            return Self::parse(reference);
        }
        match self {
            Location::Url(u) => Ok(Location::Url(u.join(reference).with_context(|| {
                format!("'{reference}' relative to {u} is not a valid URL")
            })?)),
            Location::Path(p) => Ok(Location::Path(
                p.parent().unwrap_or(Path::new("/")).join(reference),
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Url(u) => write!(f, "{u}"),
            Location::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What was fetched.
#[derive(Debug)]
pub struct Fetched {
    /// The whole body, at most [`FetchPolicy::max_bytes`] long.
    pub bytes: Vec<u8>,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
    /// Where the bytes finally came from (after redirects).
    pub final_location: Location,
}

/// Why a fetch failed, so callers can try a mirror on some failures only.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Refused by the rules (scheme, redirect, size): no mirror changes that.
    #[error("{0}")]
    Refused(String),
    /// 404 / missing file.
    #[error("{0}")]
    NotFound(String),
    /// Network, timeout, interrupted body, other HTTP status.
    #[error("{0}")]
    Failed(String),
}

/// Whether `url`'s host is a loopback address (or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// The scheme rule for a URL we are about to contact.
pub fn check_url(url: &Url, policy: &FetchPolicy) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) || policy.allow_insecure_http => Ok(()),
        "http" => Err(FetchError::Refused(format!(
            "refusing to download {url} over plain http: plugins are fetched over HTTPS only (plain http is allowed to loopback addresses, or with --allow-insecure-http)"
        ))),
        other => Err(FetchError::Refused(format!(
            "refusing to download {url}: unsupported scheme {other}"
        ))),
    }
}

#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

fn client(policy: &FetchPolicy) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    let allow_http = policy.allow_insecure_http;
    let max = policy.max_redirects;
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            let msg = format!("more than {max} redirects");
            return attempt.error(RedirectRefused(msg));
        }
        let to = attempt.url().clone();
        let from = attempt.previous().last().cloned();
        let from_text = from.as_ref().map(|u| u.to_string()).unwrap_or_default();
        match to.scheme() {
            "https" => attempt.follow(),
            "http" if allow_http => attempt.follow(),
            "http" if is_loopback(&to) && attempt.previous().iter().all(is_loopback) => {
                attempt.follow()
            }
            _ => {
                let msg = format!(
                    "refused the redirect from {from_text} to {to}: plugins are fetched over HTTPS only, and a redirect may not downgrade to plain http (it was not followed)"
                );
                attempt.error(RedirectRefused(msg))
            }
        }
    });
    Ok(reqwest::Client::builder()
        .redirect(redirect)
        .no_proxy()
        .connect_timeout(policy.connect_timeout)
        .read_timeout(policy.read_timeout)
        .timeout(policy.total_timeout)
        .user_agent(concat!("soar/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The innermost useful message of a reqwest error.
fn describe(e: &reqwest::Error) -> (bool, String) {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    let mut parts = Vec::new();
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<RedirectRefused>() {
            return (true, r.0.clone());
        }
        let text = s.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    let mut msg = parts.join(": ");
    if e.is_timeout() {
        msg = format!("timed out: {msg}");
    }
    (false, msg)
}

/// Fetch `location` into memory under `policy`, hashing as it arrives.
pub async fn fetch(location: &Location, policy: &FetchPolicy) -> Result<Fetched, FetchError> {
    match location {
        Location::Path(p) => {
            let meta = std::fs::metadata(p).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    FetchError::NotFound(format!("not found: {} does not exist", p.display()))
                } else {
                    FetchError::Failed(format!("reading {}: {e}", p.display()))
                }
            })?;
            if meta.len() > policy.max_bytes {
                return Err(FetchError::Refused(format!(
                    "{} is {} bytes, over the {} MiB limit for plugins",
                    p.display(),
                    meta.len(),
                    policy.max_bytes >> 20
                )));
            }
            let bytes = std::fs::read(p)
                .map_err(|e| FetchError::Failed(format!("reading {}: {e}", p.display())))?;
            Ok(Fetched {
                sha256: hex::encode(Sha256::digest(&bytes)),
                bytes,
                final_location: location.clone(),
            })
        }
        Location::Url(url) => fetch_url(url, policy).await,
    }
}

async fn fetch_url(url: &Url, policy: &FetchPolicy) -> Result<Fetched, FetchError> {
    check_url(url, policy)?;
    let client = client(policy).map_err(|e| FetchError::Failed(format!("{e:#}")))?;
    let mut resp = client.get(url.clone()).send().await.map_err(|e| {
        let (refused, msg) = describe(&e);
        if refused {
            FetchError::Refused(msg)
        } else {
            FetchError::Failed(format!("downloading {url} failed: {msg}"))
        }
    })?;
    let status = resp.status();
    let final_url = resp.url().clone();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Err(FetchError::NotFound(format!(
            "not found: {final_url} answered {status}; check the URL"
        )));
    }
    if !status.is_success() {
        return Err(FetchError::Failed(format!(
            "downloading {final_url} failed: the server answered {status}"
        )));
    }
    let declared = resp.content_length();
    if let Some(len) = declared
        && len > policy.max_bytes
    {
        return Err(FetchError::Refused(format!(
            "{final_url} is {len} bytes, over the {} MiB limit for plugins; nothing was downloaded",
            policy.max_bytes >> 20
        )));
    }
    let bar = progress_bar(policy, declared, &final_url);
    let mut hasher = Sha256::new();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(policy.max_bytes) as usize);
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                bar.abandon();
                let (_, msg) = describe(&e);
                return Err(FetchError::Failed(format!(
                    "the download of {final_url} was interrupted after {} of {} bytes: {msg}",
                    bytes.len(),
                    declared.map_or("?".to_string(), |d| d.to_string())
                )));
            }
        };
        if bytes.len() as u64 + chunk.len() as u64 > policy.max_bytes {
            bar.abandon();
            return Err(FetchError::Refused(format!(
                "{final_url} is larger than the {} MiB limit for plugins; the download was stopped",
                policy.max_bytes >> 20
            )));
        }
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
        bar.set_position(bytes.len() as u64);
    }
    if let Some(len) = declared
        && len != bytes.len() as u64
    {
        bar.abandon();
        return Err(FetchError::Failed(format!(
            "the download of {final_url} was interrupted after {} of {len} bytes",
            bytes.len()
        )));
    }
    bar.finish_and_clear();
    Ok(Fetched {
        bytes,
        sha256: hex::encode(hasher.finalize()),
        final_location: Location::Url(final_url),
    })
}

fn progress_bar(policy: &FetchPolicy, len: Option<u64>, url: &Url) -> indicatif::ProgressBar {
    if !policy.progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => indicatif::ProgressBar::new(l),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    let name = url
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .unwrap_or_else(|| url.to_string());
    bar.set_message(format!("downloading {name}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_rules() {
        let p = FetchPolicy::default();
        assert!(check_url(&Url::parse("https://example.com/a.wasm").unwrap(), &p).is_ok());
        assert!(check_url(&Url::parse("http://127.0.0.1:9/a.wasm").unwrap(), &p).is_ok());
        assert!(check_url(&Url::parse("http://[::1]:9/a.wasm").unwrap(), &p).is_ok());
        assert!(check_url(&Url::parse("http://example.com/a.wasm").unwrap(), &p).is_err());
        let insecure = FetchPolicy {
            allow_insecure_http: true,
            ..p
        };
        assert!(check_url(&Url::parse("http://example.com/a.wasm").unwrap(), &insecure).is_ok());
    }

    #[test]
    fn relative_references() {
        let m = Location::parse("https://example.com/p/vm.json").unwrap();
        assert_eq!(
            m.join("vm.wasm").unwrap(),
            Location::Url(Url::parse("https://example.com/p/vm.wasm").unwrap())
        );
        let f = Location::Path(PathBuf::from("/x/y/vm.toml"));
        assert_eq!(
            f.join("vm.wasm").unwrap(),
            Location::Path(PathBuf::from("/x/y/vm.wasm"))
        );
    }
}
