//! Who is looking at the dashboard: a token entered once in the login form
//! becomes a server-side session whose random id is the only thing the
//! browser keeps, in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when
//! the server speaks TLS). The token itself never goes back to the browser.
//!
//! Every request re-checks the session's token against the token store, so
//! `soar serve token revoke` ends a dashboard session at its next click.
//! Sessions live in memory: a restarted server asks for the token again.
//!
//! # CSRF
//!
//! `SameSite=Strict` keeps other *sites* from sending the cookie, but a
//! site is the registrable domain without its port: a service deployed on
//! the same host (another port of `127.0.0.1`, say) is same-site and its
//! pages could still post a form that carries the cookie. So every
//! state-changing request must also carry the session's own random CSRF
//! token (a synchronizer token, rendered into the page's forms), compared
//! in constant time. An `Origin` check was not chosen: behind a reverse
//! proxy the server cannot tell which origin is its own.
//!
//! The login form has no session yet; it carries a one-time value that
//! must match a short-lived pre-login cookie (double submit), so another
//! page cannot log the browser in with a token of its choosing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest as _, Sha256};

use crate::serve::store::random_hex;

/// The session cookie's name.
pub const COOKIE: &str = "soar_session";
/// The pre-login cookie's name (see the module documentation).
pub const LOGIN_COOKIE: &str = "soar_login";
/// How long a session lasts after the login, whatever happens meanwhile.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a login form stays usable.
const LOGIN_LIFETIME: Duration = Duration::from_secs(3600);
/// Most sessions kept at once; past it the oldest is dropped first.
const MAX_SESSIONS: usize = 1024;

/// One logged-in browser.
#[derive(Clone)]
pub struct Session {
    /// The API token it logged in with, checked again at every request.
    pub token: String,
    /// The value its forms must send back (see the module documentation).
    pub csrf: String,
    created: Instant,
}

/// The live sessions, keyed by the SHA-256 of their cookie value (so the
/// map's lookups reveal nothing about a guessed id, whatever their timing).
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Sessions {
    /// Open a session for `token` (already verified); returns the cookie
    /// value.
    pub fn open(&self, token: &str) -> String {
        let id = random_hex(32);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.created.elapsed() < LIFETIME);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            key(&id),
            Session {
                token: token.to_string(),
                csrf: random_hex(32),
                created: Instant::now(),
            },
        );
        id
    }

    /// The live session whose id the request's cookie carries.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&key(&id))
            .filter(|s| s.created.elapsed() < LIFETIME)
            .cloned()
    }

    /// End the session whose id the request's cookie carries.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.remove(&key(&id));
        }
    }
}

/// The value of cookie `name` in the request, if it sent one.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, for the whole
/// server, `Secure` over TLS; `max_age` zero deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    // Names are ours and values hex: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A fresh pre-login value and its cookie.
pub fn login_challenge(secure: bool) -> (String, HeaderValue) {
    let value = random_hex(16);
    let cookie = set_cookie(LOGIN_COOKIE, &value, LOGIN_LIFETIME, secure);
    (value, cookie)
}

/// Whether a form's `sent` value proves it came from our own page: equal
/// to `expected`, compared without an early exit.
pub fn proves(sent: Option<&str>, expected: &str) -> bool {
    let Some(sent) = sent else {
        return false;
    };
    sent.len() == expected.len()
        && !expected.is_empty()
        && sent
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open("soar_abc_secret");
        assert_eq!(id.len(), 64);
        let h = with_cookie(&format!("theme=dark; {COOKIE}={id}; other=1"));
        let s = sessions.find(&h).expect("the session");
        assert_eq!(s.token, "soar_abc_secret");
        assert_eq!(s.csrf.len(), 64);
        assert!(
            sessions
                .find(&with_cookie(&format!("{COOKIE}=x{id}")))
                .is_none()
        );
        assert!(sessions.find(&HeaderMap::new()).is_none());
        sessions.close(&h);
        assert!(sessions.find(&h).is_none());
    }

    #[test]
    fn cookie_attributes() {
        let plain = set_cookie(COOKIE, "ab", LIFETIME, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("soar_session=ab; Path=/;"), "{plain}");
        assert!(plain.contains("; HttpOnly") && plain.contains("; SameSite=Strict"));
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = set_cookie(COOKIE, "ab", LIFETIME, true);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn proofs() {
        assert!(proves(Some("abc"), "abc"));
        assert!(!proves(Some("abd"), "abc"));
        assert!(!proves(Some("ab"), "abc"));
        assert!(!proves(None, "abc"));
        assert!(!proves(Some(""), ""));
    }
}
