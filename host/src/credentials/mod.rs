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
    secret: Secret,
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

    /// Keep a secret a response returned, bound to the origin that issued it.
    pub fn capture(&self, name: &str, secret: Secret, origin: Origin) -> Result<(), String> {
        if self.is_declared(name) {
            return Err(format!(
                "capture name '{name}' is a declared credential; pick another name"
            ));
        }
        lock(&self.captured).insert(name.to_string(), Captured { secret, origin });
        Ok(())
    }

    /// A captured secret and the origin it is bound to.
    pub fn captured(&self, name: &str) -> Option<(Secret, Origin)> {
        lock(&self.captured)
            .get(name)
            .map(|c| (c.secret.clone(), c.origin.clone()))
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
            .map(|c| c.secret.clone())
            .collect();
        for r in lock(&self.resolved).values() {
            match r {
                Resolved::Bearer(s) => out.push(s.clone()),
                Resolved::Aws { keys, .. } => {
                    out.push(keys.secret_access_key.clone());
                    out.extend(keys.session_token.clone());
                }
            }
        }
        out.retain(|s| s.expose().len() >= 4);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replace every occurrence of a secret in `bytes` with `[redacted]`.
pub fn scrub(bytes: &mut Vec<u8>, secrets: &[Secret]) {
    for s in secrets {
        let needle = s.expose().as_bytes();
        if needle.is_empty() || bytes.len() < needle.len() {
            continue;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        let mut changed = false;
        while i < bytes.len() {
            if bytes[i..].starts_with(needle) {
                out.extend_from_slice(b"[redacted]");
                i += needle.len();
                changed = true;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        if changed {
            *bytes = out;
        }
    }
}

/// [`scrub`] for text.
pub fn scrub_str(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "[redacted]");
        }
    }
    out
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
}
