//! The frame every page shares, the login and error pages, and the small
//! pieces the pages are built of.
//!
//! Markup is written with `maud`: every `(expr)` spliced into a template is
//! HTML-escaped unless wrapped in `PreEscaped`, which this module never
//! does with anything but its own constants, so text from plugins, state
//! or logs can only ever show as text. Attribute values are escaped the
//! same way; a URL from state becomes a link only when it is `http(s)`.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::serve::monitoring::Watched;
use crate::serve::tokens::{Principal, Scope};

/// Who the page is for: shown in the header, and what its forms carry.
pub struct Viewer<'a> {
    /// The token's principal.
    pub who: &'a Principal,
    /// The session's CSRF value, for the page's forms.
    pub csrf: &'a str,
}

impl Viewer<'_> {
    /// Whether the deploy and rollback buttons are shown (the handlers
    /// check again).
    pub fn can_deploy(&self) -> bool {
        self.who.scope >= Scope::Deploy
    }
}

/// A whole page: `title`, the header (with the viewer and the logout
/// button when logged in), `body`.
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Soar" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Soar" }
                    @if let Some(v) = viewer {
                        span.who {
                            (v.who.name) " · " (v.who.scope)
                            @if let Some(p) = &v.who.project { " · " (p) }
                        }
                        form.inline method="post" action="/ui/logout" {
                            (csrf_field(v.csrf))
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(value: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(value); }
}

/// The login page: nothing but the form (and why the last try failed).
pub fn login(challenge: &str, problem: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            section.card.login {
                h1 { "Log in" }
                p.muted { "Paste an API token of this server (" code { "soar serve token create" } "). The server keeps it; the browser gets only a session cookie." }
                @if let Some(p) = problem { p.problem role="alert" { (p) } }
                form #login method="post" action="/ui/login" {
                    input type="hidden" name="login" value=(challenge);
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// A page saying what went wrong and what to do.
pub fn error(viewer: Option<&Viewer<'_>>, what: &str, hint: &str) -> Markup {
    page(
        "Error",
        viewer,
        html! {
            section.card {
                h1 { "That did not work" }
                p.problem role="alert" { (what) }
                p.muted { (hint) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}

/// The colour a status word gets: `ok`, `bad`, `warn` or `idle`.
pub fn tone(status: &str) -> &'static str {
    match status {
        "succeeded" | "ok" | "healthy" | "recovered" | "active" => "ok",
        "failed" | "interrupted" | "down" | "unhealthy" | "error" => "bad",
        "running" | "queued" | "retrying" | "cancelled" => "warn",
        _ => "idle",
    }
}

/// A status word as a coloured badge.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (tone(status)) } { (status) } }
}

/// `u` as a link when it is an `http(s)` URL, else as text (a
/// `javascript:` URL from a plugin must not become a link).
pub fn url(u: &str) -> Markup {
    let linkable = u.starts_with("http://") || u.starts_with("https://");
    html! {
        @if linkable { a href=(u) rel="noopener noreferrer" target="_blank" { (u) } }
        @else { (u) }
    }
}

/// Unix milliseconds (a JSON number) as `2026-12-07 08:50:44 UTC`.
pub fn when(ms: &Value) -> String {
    ms.as_i64()
        .map(crate::state::format_utc)
        .unwrap_or_default()
}

/// An RFC 3339 time of the job store as `2026-12-07 08:50:44`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339
        .replacen('T', " ", 1)
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The health word of an environment: the server's monitor's verdict
/// when it watches the environment (`unhealthy` if any service failed its
/// last check), else what `soar status` saw of the process: `healthy` when
/// it runs, `down` when a release should run but does not, else
/// `not deployed`.
pub fn health(status: &Value, watched: &[Watched]) -> &'static str {
    if !watched.is_empty() {
        if watched.iter().all(|w| w.healthy) {
            "healthy"
        } else {
            "unhealthy"
        }
    } else if status["running"] == true {
        "healthy"
    } else if status["release"].is_object() {
        "down"
    } else {
        "not deployed"
    }
}

/// The monitor's last look at each watched service: a badge, the host,
/// the check's answer and when.
pub fn watched(list: &[Watched]) -> Markup {
    html! {
        @for w in list {
            dt { "Monitor" }
            dd.watched {
                (badge(if w.healthy { "healthy" } else { "unhealthy" })) " "
                (w.service) "@" (w.host) ": " (w.detail)
                span.muted { " (checked " (short_time(&w.checked_at)) ")" }
            }
        }
    }
}

/// A `soar status` metrics object in one line (`up, pid 42, ...`).
pub fn metrics(m: &Value) -> Option<String> {
    serde_json::from_value::<crate::monitor::metrics::Metrics>(m.clone())
        .ok()
        .map(|m| m.summary())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn untrusted_text_is_escaped_everywhere() {
        let evil = "<script>alert(1)</script>\"'&";
        let html = error(None, evil, evil).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;"),
            "{html}"
        );
        let link = url("javascript:alert(1)").into_string();
        assert!(!link.contains("<a"), "{link}");
        let link = url("http://x/\"><script>").into_string();
        assert!(
            link.contains("href=\"http://x/&quot;&gt;&lt;script&gt;\""),
            "{link}"
        );
        let b = badge("<i>").into_string();
        assert!(b.contains("badge idle") && b.contains("&lt;i&gt;"), "{b}");
    }

    #[test]
    fn words_of_a_status() {
        assert_eq!(health(&json!({"running": true}), &[]), "healthy");
        assert_eq!(
            health(&json!({"running": false, "release": {}}), &[]),
            "down"
        );
        assert_eq!(
            health(&json!({"running": false, "release": null}), &[]),
            "not deployed"
        );
        let seen = |healthy| Watched {
            project: "web".into(),
            environment: "dev".into(),
            service: "web".into(),
            host: "local".into(),
            healthy,
            detail: "<i>GET /health answered 500</i>".into(),
            metrics: None,
            checked_at: "2026-12-07T08:50:44.123Z".into(),
            last_change: None,
        };
        // The monitor's verdict wins over the process merely running.
        assert_eq!(
            health(&json!({"running": true}), &[seen(true), seen(false)]),
            "unhealthy"
        );
        assert_eq!(health(&json!({"running": false}), &[seen(true)]), "healthy");
        let shown = watched(&[seen(false)]).into_string();
        assert!(
            shown.contains("&lt;i&gt;GET /health answered 500"),
            "{shown}"
        );
        assert_eq!(
            short_time("2026-12-07T08:50:44.123Z"),
            "2026-12-07 08:50:44"
        );
        assert_eq!(
            metrics(&json!({"up": true, "pid": 7})).as_deref(),
            Some("up, pid 7")
        );
        assert_eq!(tone("succeeded"), "ok");
        assert_eq!(tone("weird"), "idle");
    }
}
