//! Secrets: resolved by the host, injected by the host, never handed to a
//! plugin, never written to logs, state or errors.
//!
//! A plugin declares credentials by name and scheme; the user may name the
//! environment variable that holds each one. Secrets a response returns (an
//! upload token) are captured here too, bound to the origin that issued them.

mod aws_profile;
mod origin;
pub mod redact;
mod sigv4;

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use origin::Origin;
pub use redact::Redactor;
pub use sigv4::sign as sign_sigv4;

use crate::contract::{Credential, CredentialScheme};

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
    /// The public half (`AKIA...`/`ASIA...`); not a secret, so not redacted.
    pub access_key_id: String,
    /// The signing key; it never leaves the host.
    pub secret_access_key: Secret,
    /// The token of temporary credentials (STS), sent as
    /// `X-Amz-Security-Token`.
    pub session_token: Option<Secret>,
}

/// A credential ready to inject.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// `Authorization: Bearer ...`.
    Bearer(Secret),
    /// SigV4 signing for `service`.
    Aws {
        /// The SigV4 service name (`ec2`, `sts`, ...), part of the scope.
        service: String,
        /// The keys to sign with.
        keys: AwsKeys,
    },
    /// `Authorization: Basic base64(user:password)`: only ever issued by a
    /// provider's API (a Functions namespace key), never declared.
    Basic {
        /// The user name: not secret alone, so redacted only as part of the
        /// encoded header.
        user: String,
        /// The password, redacted wherever a response could echo it.
        password: Secret,
    },
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

/// How a host-held credential came from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// `capture`: a token an answer returns for use at the same origin.
    Captured,
    /// `request.issued`: a credential the provider's API hands out for
    /// another origin (which passed the allow-list).
    Issued,
}

struct Captured {
    credential: Resolved,
    /// Where the host sends it.
    origin: Origin,
    /// The answer it came from: it may come back from there too.
    source: Origin,
    provenance: Provenance,
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

    /// Keep a credential a response from `source` returned, bound to
    /// `origin` (`source` itself for a capture, the origin it was issued for
    /// otherwise).
    pub fn capture(
        &self,
        name: &str,
        credential: Resolved,
        origin: Origin,
        source: Origin,
        provenance: Provenance,
    ) -> Result<(), String> {
        if self.is_declared(name) {
            return Err(format!(
                "capture name '{name}' is a declared credential; pick another name"
            ));
        }
        lock(&self.captured).insert(
            name.to_string(),
            Captured {
                credential,
                origin,
                source,
                provenance,
            },
        );
        Ok(())
    }

    /// A captured credential and the origin it is bound to.
    pub fn captured(&self, name: &str) -> Option<(Resolved, Origin)> {
        lock(&self.captured)
            .get(name)
            .map(|c| (c.credential.clone(), c.origin.clone()))
    }

    /// Origins that captured or issued credentials are bound to.
    pub fn captured_origins(&self) -> Vec<Origin> {
        lock(&self.captured)
            .values()
            .map(|c| c.origin.clone())
            .collect()
    }

    /// Origins of credentials the provider's API issued (`request.issued`):
    /// besides the declared credentials' origins, the only ones service
    /// secrets may go to.
    pub fn issued_origins(&self) -> Vec<Origin> {
        lock(&self.captured)
            .values()
            .filter(|c| c.provenance == Provenance::Issued)
            .map(|c| c.origin.clone())
            .collect()
    }

    /// Secrets of captured and issued credentials that an answer from
    /// `origin` may carry: those sent there and those that came from there.
    pub fn captured_secrets_seen_by(&self, origin: &Origin) -> Vec<Secret> {
        lock(&self.captured)
            .values()
            .filter(|c| &c.origin == origin || &c.source == origin)
            .flat_map(|c| c.credential.secrets())
            .collect()
    }

    /// Secrets of captured and issued credentials that did not come from
    /// `origin`: a value `origin` hands out again is its own, anything else
    /// it returns is an echo.
    pub fn captured_secrets_not_from(&self, origin: &Origin) -> Vec<Secret> {
        lock(&self.captured)
            .values()
            .filter(|c| &c.source != origin)
            .flat_map(|c| c.credential.secrets())
            .collect()
    }

    /// Secrets of the declared credentials resolved so far, by name.
    pub fn resolved_secrets(&self) -> Vec<(String, Vec<Secret>)> {
        lock(&self.resolved)
            .iter()
            .map(|(name, r)| (name.clone(), r.secrets()))
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
        out.retain(|s| s.expose().len() >= redact::MIN_SECRET_LEN);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replace every occurrence of a secret, in every form [`redact`]
/// recognises, in `bytes` with `[redacted]`.
pub fn scrub(bytes: &mut Vec<u8>, secrets: &[Secret]) {
    if secrets.is_empty() {
        return;
    }
    Redactor::cached(secrets).scrub(bytes);
}

/// [`scrub`] for text.
pub fn scrub_str(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    scrub_string(&mut out, secrets);
    out
}

/// [`scrub`] for text, in place: nothing is copied unless a secret occurs.
pub fn scrub_string(text: &mut String, secrets: &[Secret]) {
    if secrets.is_empty() {
        return;
    }
    Redactor::cached(secrets).scrub_string(text);
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

    #[test]
    fn overlapping_secrets_redact_the_longest() {
        let mut b = b"xx TOKEN-LONG yy TOKEN".to_vec();
        scrub(&mut b, &[Secret::new("TOKEN"), Secret::new("TOKEN-LONG")]);
        assert_eq!(b, b"xx [redacted] yy [redacted]");
        let mut t = "caf\u{e9} secr\u{e9}t".to_string();
        scrub_string(&mut t, &[Secret::new("secr\u{e9}t")]);
        assert_eq!(t, "caf\u{e9} [redacted]");
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
