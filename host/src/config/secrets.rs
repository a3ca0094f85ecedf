//! Secrets never go in `soar.toml`: the file is committed, copied and shown
//! in diffs. This module recognises a secret pasted inline (by the key it
//! sits under or by its well-known format) so the mistake is caught before
//! anything is deployed, without ever repeating the value.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::Report;
use super::spans::join;

/// Substrings of a key that mark its value as secret.
const SECRET_KEY_MARKERS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
];

/// Whether `name` can be an environment variable name as soar.toml expects
/// them (`^[A-Z_][A-Z0-9_]*$`): the indirection that keeps secrets out of
/// the file.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Whether a value under `key` is meant to be secret. Keys ending in `_env`
/// name the variable holding the secret, and `_file`/`_path` keys name a
/// file holding it: both are the right way to refer to one.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    if k.ends_with("_env") || k.ends_with("_file") || k.ends_with("_path") {
        return false;
    }
    SECRET_KEY_MARKERS.iter().any(|m| k.contains(m))
}

/// The kind of credential `value` contains, if it contains one in a
/// well-known format, whatever key it sits under.
pub fn credential_format(value: &str) -> Option<&'static str> {
    if value.contains("-----BEGIN") && value.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    let delimiters = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '=' | ',' | ';' | ':' | '(' | ')' | '<' | '>' | '&' | '?' | '/'
            )
    };
    value.split(delimiters).find_map(token_format)
}

fn token_format(token: &str) -> Option<&'static str> {
    if ["dop_v1_", "doo_v1_", "dor_v1_"]
        .iter()
        .any(|p| token.starts_with(p) && token.len() > p.len())
    {
        return Some("a DigitalOcean token");
    }
    if (token.starts_with("AKIA") || token.starts_with("ASIA"))
        && token.len() == 20
        && token[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Some("an AWS access key ID");
    }
    if token.starts_with("eyJ") {
        let parts: Vec<&str> = token.split('.').collect();
        let b64url = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=')
        };
        if parts.len() == 3
            && !parts[0].is_empty()
            && !parts[1].is_empty()
            && parts.iter().all(|p| b64url(p))
        {
            return Some("a JSON Web Token");
        }
    }
    None
}

/// Why `value` (under `key`, if any) looks like a secret pasted inline, or
/// `None` when it looks harmless.
pub fn pasted_secret(key: Option<&str>, value: &str) -> Option<&'static str> {
    if let Some(kind) = credential_format(value) {
        return Some(kind);
    }
    match key {
        Some(k) if is_secret_key(k) && !value.trim().is_empty() && !is_env_var_name(value) => {
            Some("its key names a secret and the value is not an environment variable name")
        }
        _ => None,
    }
}

/// The hint for a secret found at `path`: a service variable moves to
/// `secrets`, anything else becomes a reference to an environment variable.
fn hint(path: &[String]) -> String {
    let in_service_env = path.len() >= 2
        && path[path.len() - 2] == "env"
        && path.iter().rev().skip(2).any(|p| p == "deploy");
    match path.last() {
        Some(var) if in_service_env && super::deploy::is_service_var_name(var) => format!(
            "put it in an environment variable and reference its name from `secrets` instead of `env`: \
             secrets = {{ {var} = \"{host}\" }}, then `export {host}=...` before running soar",
            host = var.to_ascii_uppercase()
        ),
        _ => "put it in an environment variable and reference its name, e.g. \
              `secrets = { API_KEY = \"HELLO_API_KEY\" }` / `token_env = \"DIGITALOCEAN_TOKEN\"`"
            .to_string(),
    }
}

/// Report every string in the document that looks like a pasted secret.
pub(crate) fn scan(doc: &DeTable<'_>, r: &mut Report<'_>) {
    let mut path = Vec::new();
    for (k, v) in doc.iter() {
        path.push(k.get_ref().to_string());
        walk(v, Some(k.get_ref()), &mut path, r);
        path.pop();
    }
}

fn walk(
    value: &Spanned<DeValue<'_>>,
    key: Option<&str>,
    path: &mut Vec<String>,
    r: &mut Report<'_>,
) {
    match value.get_ref() {
        DeValue::String(s) => {
            if let Some(why) = pasted_secret(key, s) {
                let shown = path.iter().fold(String::new(), |acc, p| join(&acc, p));
                r.secret(
                    value.span().start,
                    format!(
                        "`{shown}` looks like a secret pasted inline ({why}); secrets never go in soar.toml"
                    ),
                    Some(hint(path)),
                );
            }
        }
        DeValue::Array(items) => {
            for item in items.iter() {
                walk(item, key, path, r);
            }
        }
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                path.push(k.get_ref().to_string());
                walk(v, Some(k.get_ref()), path, r);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn env_var_names() {
        for ok in ["HELLO_API_KEY", "_X", "A1"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "hello", "1ABC", "A-B", "A B", "Ab"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }

    #[test]
    fn secret_keys() {
        for k in [
            "token",
            "api_token",
            "API_KEY",
            "apiKey",
            "db-password",
            "passwd",
            "client_secret",
            "ssh_private_key",
            "aws_access_key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "token_env",
            "region",
            "ssh_key_name",
            "private_key_path",
            "password_file",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn credential_formats() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            credential_format("dop_v1_0123456789abcdef"),
            Some("a DigitalOcean token")
        );
        assert_eq!(
            credential_format("AKIAIOSFODNN7EXAMPLE"),
            Some("an AWS access key ID")
        );
        assert_eq!(
            credential_format("ASIAIOSFODNN7EXAMPLE"),
            Some("an AWS access key ID")
        );
        assert_eq!(credential_format(jwt), Some("a JSON Web Token"));
        assert_eq!(
            credential_format(&format!("curl -H 'Authorization: Bearer {jwt}' x")),
            Some("a JSON Web Token")
        );
        assert_eq!(
            credential_format(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
            ),
            Some("a private key")
        );
        for harmless in [
            "AKIA",
            "AKIAshort",
            "AKIAIOSFODNN7EXAMPLEX",
            "eyJ",
            "eyJabc.def",
            "dop_v1_",
            "-----BEGIN CERTIFICATE-----",
            "https://api.digitalocean.com/v2",
            "cargo build --release",
        ] {
            assert_eq!(credential_format(harmless), None, "{harmless}");
        }
    }

    #[test]
    fn pasted_secrets_by_key_or_format() {
        assert!(pasted_secret(Some("token"), "abc123").is_some());
        assert!(pasted_secret(Some("token"), "MY_TOKEN").is_none());
        assert!(pasted_secret(Some("token_env"), "abc123").is_none());
        assert!(pasted_secret(Some("token_env"), "dop_v1_abc").is_some());
        assert!(pasted_secret(Some("region"), "nyc1").is_none());
        assert!(pasted_secret(None, "AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(pasted_secret(Some("password"), "").is_none());
    }

    #[test]
    fn scan_reports_position_without_the_value() {
        let text = "[env.prod]\nprovider = \"digitalocean\"\nhosts = [\"a\", \"dop_v1_deadbeef\"]\n\n[deploy]\nenv = { DB_PASSWORD = \"hunter2\" }\n";
        let (doc, errs) = DeTable::parse_recoverable(text);
        assert!(errs.is_empty());
        let mut r = Report::new(text, Path::new("soar.toml"));
        scan(doc.get_ref(), &mut r);
        let d = r.finish();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].line, d[0].col), (3, 15));
        assert!(d[0].message.contains("`env.prod.hosts`"));
        assert!(d[0].message.contains("a DigitalOcean token"));
        assert_eq!(d[1].line, 6);
        assert!(d[1].message.contains("`deploy.env.DB_PASSWORD`"));
        assert!(
            d[1].hint
                .as_deref()
                .unwrap()
                .contains("secrets = { DB_PASSWORD")
        );
        for diag in &d {
            let shown = diag.to_string();
            assert!(!shown.contains("hunter2") && !shown.contains("deadbeef"));
        }
    }
}
