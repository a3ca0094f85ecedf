//! Secrets: resolved by the host, injected by the host, never handed to a
//! plugin, never written to logs, state or errors.
//!
//! A plugin declares credentials by name and scheme; the user may name the
//! environment variable that holds each one. Secrets a response returns (an
//! upload token) are captured here too, bound to the origin that issued them.

mod aws_profile;
mod sigv4;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use sigv4::sign as sign_sigv4;

use crate::broker::http::policy::Origin;
use crate::runtime::bindings::{Credential, CredentialScheme};

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value read from the environment or a response.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that injects it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// AWS keys as the SigV4 signer needs them.
#[derive(Debug, Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// A credential ready to inject.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// `Authorization: Bearer ...`.
    Bearer(Secret),
    /// SigV4 signing for `service`.
    Aws { service: String, keys: AwsKeys },
    /// `Authorization: Basic base64(user:password)`: only ever issued by a
    /// provider's API (a Functions namespace key), never declared.
    Basic { user: String, password: Secret },
}

impl Resolved {
    /// The secret values this credential puts on the wire, in every form a
    /// server could echo back, for scrubbing.
    fn secrets(&self) -> Vec<Secret> {
        match self {
            Resolved::Bearer(s) => vec![s.clone()],
            Resolved::Aws { keys, .. } => {
                let mut out = vec![keys.secret_access_key.clone()];
                out.extend(keys.session_token.clone());
                out
            }
            Resolved::Basic { user, password } => {
                use base64::Engine as _;
                let header = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                vec![password.clone(), Secret::new(header)]
            }
        }
    }
}

/// Where secrets come from, so tests and `soar` itself can differ.
pub trait SecretSource: Send + Sync {
    /// The value of an environment variable.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment, plus `~/.aws/credentials` for AWS.
#[derive(Debug, Default)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

struct Captured {
    credential: Resolved,
    origin: Origin,
}

/// The credentials one plugin may use in one command.
pub struct CredentialStore {
    plugin: String,
    declared: BTreeMap<String, Credential>,
    /// User's choice of environment variable per credential (`token_env`).
    env_overrides: BTreeMap<String, String>,
    source: Box<dyn SecretSource>,
    resolved: Mutex<BTreeMap<String, Resolved>>,
    captured: Mutex<BTreeMap<String, Captured>>,
}

impl CredentialStore {
    /// Credentials `plugin` declared, read lazily from `source`.
    pub fn new(
        plugin: &str,
        declared: &[Credential],
        env_overrides: BTreeMap<String, String>,
        source: Box<dyn SecretSource>,
    ) -> Self {
        Self {
            plugin: plugin.to_string(),
            declared: declared
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
            env_overrides,
            source,
            resolved: Mutex::default(),
            captured: Mutex::default(),
        }
    }

    /// Whether `name` is a declared credential (as opposed to captured).
    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.contains_key(name)
    }

    /// Resolve a declared credential, reading the environment once.
    pub fn resolve(&self, name: &str) -> Result<Resolved, String> {
        if let Some(r) = lock(&self.resolved).get(name) {
            return Ok(r.clone());
        }
        let cred = self.declared.get(name).ok_or_else(|| {
            format!(
                "plugin '{}' asked for credential '{name}', which it did not declare",
                self.plugin
            )
        })?;
        let resolved = match &cred.scheme {
            CredentialScheme::Bearer => {
                let vars: Vec<String> = match self.env_overrides.get(name) {
                    Some(v) => vec![v.clone()],
                    None => cred.env.clone(),
                };
                let value = vars.iter().find_map(|v| self.source.var(v)).ok_or_else(|| {
                    format!(
                        "{} provider: API token missing from environment variable {}; export it before running soar (tokens are never stored in soar.toml)",
                        self.plugin,
                        vars.join(" or ")
                    )
                })?;
                Resolved::Bearer(Secret::new(value))
            }
            CredentialScheme::AwsSigv4(service) => Resolved::Aws {
                service: service.clone(),
                keys: aws_profile::resolve(self.source.as_ref(), &self.plugin)?,
            },
        };
        lock(&self.resolved).insert(name.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// Keep a credential a response returned, bound to `origin` (the one
    /// that issued it, or the one it was issued for).
    pub fn capture(&self, name: &str, credential: Resolved, origin: Origin) -> Result<(), String> {
        if self.is_declared(name) {
            return Err(format!(
                "capture name '{name}' is a declared credential; pick another name"
            ));
        }
        lock(&self.captured).insert(name.to_string(), Captured { credential, origin });
        Ok(())
    }

    /// A captured credential and the origin it is bound to.
    pub fn captured(&self, name: &str) -> Option<(Resolved, Origin)> {
        lock(&self.captured)
            .get(name)
            .map(|c| (c.credential.clone(), c.origin.clone()))
    }

    /// Origins that captured credentials are bound to.
    pub fn captured_origins(&self) -> Vec<Origin> {
        lock(&self.captured)
            .values()
            .map(|c| c.origin.clone())
            .collect()
    }

    /// Every secret value known so far, to scrub from anything a plugin or a
    /// log could see.
    pub fn known_secrets(&self) -> Vec<Secret> {
        let mut out: Vec<Secret> = lock(&self.captured)
            .values()
            .flat_map(|c| c.credential.secrets())
            .collect();
        for r in lock(&self.resolved).values() {
            out.extend(r.secrets());
        }
        out.retain(|s| s.expose().len() >= 4);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a scrubbed secret becomes.
const REDACTED: &[u8] = b"[redacted]";

/// Replace every occurrence of a secret in `bytes` with `[redacted]`.
///
/// Secrets are replaced one after the other, each in the result of the ones
/// before. A secret that does not occur costs one linear scan and no copy.
pub fn scrub(bytes: &mut Vec<u8>, secrets: &[Secret]) {
    for s in secrets {
        if let Some(scrubbed) = replaced(bytes, s.expose().as_bytes()) {
            *bytes = scrubbed;
        }
    }
}

/// [`scrub`] for text.
pub fn scrub_str(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    scrub_string(&mut out, secrets);
    out
}

/// [`scrub`] for text, in place: nothing is copied unless a secret occurs.
pub fn scrub_string(text: &mut String, secrets: &[Secret]) {
    for s in secrets {
        if let Some(scrubbed) = replaced(text.as_bytes(), s.expose().as_bytes()) {
            // Whole UTF-8 sequences were replaced by ASCII: still UTF-8.
            *text = String::from_utf8(scrubbed).expect("scrubbing keeps UTF-8 valid");
        }
    }
}

/// `hay` with every (non-overlapping, leftmost-first) occurrence of `needle`
/// replaced by [`REDACTED`], or `None` when there is none.
fn replaced(hay: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let mut at = find(hay, needle, 0)?;
    let mut out = Vec::with_capacity(hay.len());
    let mut from = 0;
    loop {
        out.extend_from_slice(&hay[from..at]);
        out.extend_from_slice(REDACTED);
        from = at + needle.len();
        match find(hay, needle, from) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(&hay[from..]);
    Some(out)
}

/// Position of the first `needle` in `hay` at or after `from`. An empty
/// needle is never found.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    // The last position a match can start at.
    let last = hay.len().checked_sub(needle.len())?;
    let mut i = from;
    while i <= last {
        // Candidates by their first byte, then the rest compared.
        let at = i + hay[i..=last].iter().position(|&b| b == first)?;
        if &hay[at + 1..at + needle.len()] == rest {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_occurrence() {
        let mut b = b"a TOKEN b TOKENTOKEN".to_vec();
        scrub(&mut b, &[Secret::new("TOKEN")]);
        assert_eq!(b, b"a [redacted] b [redacted][redacted]");
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret([redacted])");
    }

    /// The byte-by-byte scrubber this one replaced: the reference.
    fn reference(bytes: &[u8], secrets: &[Secret]) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        for s in secrets {
            let needle = s.expose().as_bytes();
            if needle.is_empty() || bytes.len() < needle.len() {
                continue;
            }
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(needle) {
                    out.extend_from_slice(b"[redacted]");
                    i += needle.len();
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            bytes = out;
        }
        bytes
    }

    #[test]
    fn scrub_matches_the_reference_on_edge_cases() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"", &["abcd"]),
            (b"abc", &["abcd"]),
            (b"abcd", &["abcd"]),
            (b"xabcdabcdx", &["abcd"]),
            (b"aaaaaaa", &["aaa"]),
            (b"abababab", &["abab", "ab"]),
            (b"TOKEN-and-TOK", &["TOKEN", "TOK"]),
            (b"the [redacted] word", &["redacted", "acted"]),
            (b"\xff\x00secret\xffsecre", &["secret"]),
            (b"tail secre", &["secret"]),
            (b"abc", &[""]),
            (
                "caf\u{e9} secr\u{e9}t caf\u{e9}".as_bytes(),
                &["secr\u{e9}t", "\u{e9}"],
            ),
        ];
        for (hay, names) in cases {
            let secrets: Vec<Secret> = names.iter().map(|n| Secret::new(*n)).collect();
            let mut got = hay.to_vec();
            scrub(&mut got, &secrets);
            assert_eq!(
                got,
                reference(hay, &secrets),
                "{:?} {names:?}",
                String::from_utf8_lossy(hay)
            );
            if let Ok(text) = std::str::from_utf8(hay) {
                assert_eq!(scrub_str(text, &secrets).as_bytes(), got.as_slice());
            }
        }
    }

    #[test]
    fn scrub_without_a_match_keeps_the_buffer() {
        let mut b = b"nothing to see here".to_vec();
        let before = b.as_ptr();
        scrub(&mut b, &[Secret::new("TOKEN"), Secret::new("hidden")]);
        assert_eq!(b, b"nothing to see here");
        assert_eq!(b.as_ptr(), before);
    }
}
