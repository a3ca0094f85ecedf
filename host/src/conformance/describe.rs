//! Check 1: the plugin's `describe` is well-formed — what install, `plugin
//! inspect` and every session are built from. Each finding names the field
//! and what a valid one looks like.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::settings::MAX_SCHEMA_BYTES;
use crate::contract::Description;

/// What the description check found.
pub struct DescribeFindings {
    /// Each problem, one sentence.
    pub problems: Vec<String>,
    /// The settings schema, compiled, when it is usable.
    pub schema: Option<(Value, jsonschema::Validator)>,
}

/// Check `d`: a catalog name, a semver version, a settings schema that is
/// JSON Schema of an object, unique endpoint and credential names, https
/// default URLs, and credentials bound only to declared endpoints.
pub fn check(d: &Description) -> DescribeFindings {
    let mut problems = Vec::new();
    if !crate::catalog::valid_name(&d.name) {
        problems.push(format!(
            "name {:?} is not a plugin name: use 1-63 of a-z, 0-9 and '-', not starting or ending with '-'",
            d.name
        ));
    }
    if let Err(e) = semver::Version::parse(&d.version) {
        problems.push(format!(
            "version {:?} is not semver ({e}): use MAJOR.MINOR.PATCH, e.g. 0.1.0",
            d.version
        ));
    }
    if d.artifacts.is_empty() {
        problems.push(
            "declares no artifact kind: list the kinds it deploys (binary, script, static, tarball)"
                .into(),
        );
    }
    let schema = check_schema(&d.settings_schema, &mut problems);
    check_capabilities(d, &mut problems);
    DescribeFindings { problems, schema }
}

fn check_schema(text: &str, problems: &mut Vec<String>) -> Option<(Value, jsonschema::Validator)> {
    if text.len() > MAX_SCHEMA_BYTES {
        problems.push(format!(
            "settings-schema is {} bytes, more than the {MAX_SCHEMA_BYTES} soar reads",
            text.len()
        ));
        return None;
    }
    let schema: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!(
                "settings-schema is not JSON ({e}): it must be a JSON Schema document"
            ));
            return None;
        }
    };
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!(
                "settings-schema is not a usable JSON Schema: {}",
                crate::terminal::clip(&e.to_string(), 300)
            ));
            return None;
        }
    };
    // Settings are the keys of a TOML table: always an object.
    if let Some(t) = schema
        .get("type")
        .filter(|t| t.is_string() && *t != "object")
    {
        problems.push(format!(
            "settings-schema has type {t}: settings are the keys of [env.<name>], so the type must be \"object\""
        ));
    }
    Some((schema, validator))
}

fn check_capabilities(d: &Description, problems: &mut Vec<String>) {
    let caps = &d.capabilities;
    let mut endpoints = BTreeSet::new();
    for e in &caps.endpoints {
        if e.name.is_empty() {
            problems.push("an endpoint has an empty name".into());
        } else if !endpoints.insert(e.name.as_str()) {
            problems.push(format!("endpoint '{}' is declared twice", e.name));
        }
        match url::Url::parse(&e.default_url) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            Ok(_) => problems.push(format!(
                "endpoint '{}' defaults to {:?}: a declared endpoint must be an https URL with a host",
                e.name, e.default_url
            )),
            Err(err) => problems.push(format!(
                "endpoint '{}' defaults to {:?}, which is not a URL ({err})",
                e.name, e.default_url
            )),
        }
    }
    for h in &caps.extra_hosts {
        if h.trim().is_empty() || h.contains('/') || h.contains(':') {
            problems.push(format!(
                "extra host {h:?} is not a host name pattern (e.g. *.cdn.example.com)"
            ));
        }
    }
    let mut credentials = BTreeSet::new();
    for c in &caps.credentials {
        if !credentials.insert(c.name.as_str()) {
            problems.push(format!("credential '{}' is declared twice", c.name));
        }
        if c.env.is_empty() {
            problems.push(format!(
                "credential '{}' names no environment variable: users could set it only through [env.<name>.credentials]",
                c.name
            ));
        }
        if c.endpoints.is_empty() {
            problems.push(format!(
                "credential '{}' is bound to no endpoint, so it can never be sent",
                c.name
            ));
        }
        for e in &c.endpoints {
            if !endpoints.contains(e.as_str()) {
                problems.push(format!(
                    "credential '{}' is bound to endpoint '{e}', which is not declared (declared: {})",
                    c.name,
                    endpoints.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Capabilities, Credential, CredentialScheme, EndpointDecl};

    fn description() -> Description {
        Description {
            name: "acme".into(),
            version: "0.1.0".into(),
            summary: "Acme Cloud".into(),
            artifacts: vec![crate::contract::ArtifactKind::Binary],
            settings_schema: r#"{"type":"object","properties":{"region":{"type":"string"}}}"#
                .into(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: "https://api.acme.example".into(),
                }],
                extra_hosts: vec![],
                credentials: vec![Credential {
                    name: "acme".into(),
                    scheme: CredentialScheme::Bearer,
                    env: vec!["ACME_TOKEN".into()],
                    endpoints: vec!["api".into()],
                }],
                ssh: false,
            },
        }
    }

    #[test]
    fn a_good_description_passes() {
        let f = check(&description());
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(f.schema.is_some());
    }

    #[test]
    fn each_fault_is_named() {
        let mut d = description();
        d.name = "Acme!".into();
        d.version = "one".into();
        d.settings_schema = r#"{"type": 7}"#.into();
        d.capabilities.endpoints[0].default_url = "http://api.acme.example".into();
        d.capabilities.credentials[0].endpoints = vec!["files".into()];
        let f = check(&d);
        let all = f.problems.join("\n");
        for needle in [
            "is not a plugin name",
            "is not semver",
            "not a usable JSON Schema",
            "must be an https URL",
            "endpoint 'files', which is not declared",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
    }
}
