//! `[env.<name>.grants]`: the user's half of a plugin's network policy.
//! Checked here for form (URLs are URLs, hosts are host names) so that the
//! policy, which intersects them with what the plugin declares, only has
//! to report mismatches.

use url::Url;

use super::diagnostics::Report;
use super::fields::{Section, wrong_type};
use super::spans::join;
use crate::broker::http::policy::Grants;

const KEYS: &[&str] = &["endpoints", "hosts"];

/// Why a URL was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Carries `user:password@`: a secret in the file.
    Password,
    /// Anything else, as words following the key name.
    Invalid(String),
}

/// Accept absolute `http://` and `https://` URLs with a host.
pub(crate) fn check_http_url(text: &str) -> Result<(), UrlProblem> {
    let invalid = |why: &str| Err(UrlProblem::Invalid(why.to_string()));
    let Ok(url) = Url::parse(text.trim()) else {
        return invalid("is not a valid URL; write an http:// or https:// URL");
    };
    if url.password().is_some() {
        return Err(UrlProblem::Password);
    }
    if !matches!(url.scheme(), "http" | "https") {
        return invalid("must be an http:// or https:// URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return invalid("has no host name");
    }
    Ok(())
}

/// Check a granted host name or pattern (`*` stands for one label);
/// the error is words following the value.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    let h = host.trim();
    if h.is_empty() {
        return Err("is empty; write a host name such as api.example.com".to_string());
    }
    if let Ok(url) = Url::parse(h)
        && let Some(name) = url.host_str()
        && h.contains("://")
    {
        return Err(format!(
            "is a URL; hosts are bare host names: write \"{name}\""
        ));
    }
    if h.contains(['/', ':', '@', ' ']) {
        return Err("is not a host name: no scheme, port, path or spaces".to_string());
    }
    for label in h.trim_end_matches('.').split('.') {
        let ok = label == "*"
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if !ok {
            return Err(format!(
                "has an invalid label '{label}' (labels are letters, digits and hyphens, or * for any one label)"
            ));
        }
    }
    Ok(())
}

/// Read a grants table; `section_name` is what the policy will call it in
/// messages.
pub(crate) fn read(s: &Section<'_>, section_name: String, r: &mut Report<'_>) -> Grants {
    let mut grants = Grants {
        section: section_name,
        ..Grants::default()
    };
    s.check_keys(KEYS, r);
    let endpoint_example = "endpoints = { api = \"http://127.0.0.1:8080\" }";
    for e in s.string_map("endpoints", endpoint_example, r) {
        let path = join(&s.key_path("endpoints"), &e.key);
        match check_http_url(&e.value) {
            Ok(()) => {
                grants.endpoints.insert(e.key, e.value.trim().to_string());
            }
            Err(UrlProblem::Password) => r.secret(
                e.value_at,
                format!("`{path}` contains a password; secrets never go in soar.toml"),
                Some(
                    "remove the user:password@ part; the plugin's credential is injected by soar"
                        .to_string(),
                ),
            ),
            Err(UrlProblem::Invalid(why)) => r.error(
                e.value_at,
                format!("`{path}` {why}"),
                Some(format!(
                    "for example: {} = \"http://127.0.0.1:8080\"",
                    e.key
                )),
            ),
        }
    }
    if let Some((_, v)) = s.get("hosts") {
        let example = "hosts = [\"faas-nyc1-abc.doserverless.co\"]";
        let path = s.key_path("hosts");
        match v.get_ref().as_array() {
            None => wrong_type(r, v, &path, "an array of host names", example),
            Some(items) => {
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        None => wrong_type(r, item, &path, "an array of strings", example),
                        Some(h) => match check_host(h) {
                            Ok(()) => grants.hosts.push(h.trim().to_string()),
                            Err(why) => r.error(
                                item.span().start,
                                format!("grant host '{h}' in `{path}` {why}"),
                                Some(format!("for example: {example}")),
                            ),
                        },
                    }
                }
            }
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(check_http_url("http://127.0.0.1:8080"), Ok(()));
        assert_eq!(check_http_url("https://api.example.com/v2"), Ok(()));
        assert_eq!(
            check_http_url("https://u:p@api.example.com"),
            Err(UrlProblem::Password)
        );
        for bad in ["localhost:8080", "ftp://x.org", "not a url", "file:///etc"] {
            assert!(
                matches!(check_http_url(bad), Err(UrlProblem::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "faas-nyc1-abc.doserverless.co",
            "*.doserverless.co",
            "localhost",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        assert!(
            check_host("https://x.org/a")
                .unwrap_err()
                .contains("write \"x.org\"")
        );
        for bad in ["", "x.org:443", "a..b", "-a.org", "a b"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
