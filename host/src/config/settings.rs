//! Provider settings checked against the provider's own schema, offline.
//!
//! Every plugin declares the JSON Schema of its settings (`describe`'s
//! `settings-schema`); the keys of `[env.<name>]` that are not Soar's are
//! those settings. `soar validate` checks them here, before any plugin
//! call and without a network, and reports each violation at the
//! `file:line:col` of the key, with the schema's reason.
//!
//! The schema is the plugin's text, so it is treated as untrusted: it is
//! bounded in size, and a `$ref` to anything outside the document (a URL,
//! a file) is not followed — the validator is built without resolvers, so
//! a plugin cannot use `soar validate` to make the host read a file or
//! send a request.

use std::path::Path;

use serde_json::Value;

use super::Environment;
use super::diagnostics::Diagnostic;
use super::spans::locate;

/// Largest schema read: a settings schema is a few KiB; anything much
/// larger is not one.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// Most violations reported per environment: the first ones point at the
/// mistake, hundreds more would bury it.
const MAX_REPORTED: usize = 50;

/// Check `env`'s settings (from `file`, whose text is `text`) against the
/// JSON Schema `schema` its provider declared. Each violation becomes a
/// diagnostic at the offending key; a schema that cannot be used is one
/// diagnostic at the environment's header naming the plugin.
pub fn check(text: &str, file: &Path, env: &Environment, schema: &str) -> Vec<Diagnostic> {
    let at_env = |message: String, hint: Option<String>| Diagnostic {
        file: file.to_path_buf(),
        line: env.line,
        col: 1,
        message,
        hint,
    };
    let plugin = crate::terminal::line(&env.provider);
    if schema.len() > MAX_SCHEMA_BYTES {
        return vec![at_env(
            format!(
                "provider '{plugin}' declares a settings schema of {} bytes (more than {MAX_SCHEMA_BYTES}); its settings were not checked",
                schema.len()
            ),
            None,
        )];
    }
    let schema: Value = match serde_json::from_str(schema) {
        Ok(s) => s,
        Err(e) => {
            return vec![at_env(
                format!(
                    "provider '{plugin}' declares a settings schema that is not JSON ({e}); its settings were not checked"
                ),
                Some("this is a fault of the plugin: report it to its author".into()),
            )];
        }
    };
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![at_env(
                format!(
                    "provider '{plugin}' declares a settings schema soar cannot use ({}); its settings were not checked",
                    crate::terminal::clip(&e.to_string(), 300)
                ),
                Some("this is a fault of the plugin: report it to its author".into()),
            )];
        }
    };
    validator
        .iter_errors(&env.settings)
        .take(MAX_REPORTED)
        .map(|e| {
            let pointer = e.instance_path().to_string();
            let (dotted, key) = dotted_path(&env.name, &pointer, &e);
            let (line, col) = locate(text, &dotted).unwrap_or((env.line, 1));
            let shown = if key.is_empty() {
                format!("[env.{}]", env.name)
            } else {
                format!("`{key}` in [env.{}]", env.name)
            };
            Diagnostic {
                file: file.to_path_buf(),
                line,
                col,
                message: format!(
                    "{shown}: {} (provider '{plugin}' settings schema)",
                    crate::terminal::clip(&e.to_string(), 300)
                ),
                hint: hint(&e, &schema),
            }
        })
        .collect()
}

/// The dotted path `locate` understands for a violation at JSON pointer
/// `pointer` in environment `env`, and the settings key as a user reads it
/// (`hosts[0].size`). An unexpected property is reported at that property.
fn dotted_path(env: &str, pointer: &str, e: &jsonschema::ValidationError<'_>) -> (String, String) {
    let mut key = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(&part);
        }
    }
    if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } = e.kind()
        && let Some(first) = unexpected.first()
    {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(first);
    }
    let dotted = if key.is_empty() {
        format!("env.{env}")
    } else {
        format!("env.{env}.{key}")
    };
    (dotted, key)
}

/// "did you mean" for an unexpected property the schema nearly knows.
fn hint(e: &jsonschema::ValidationError<'_>, schema: &Value) -> Option<String> {
    let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } = e.kind()
    else {
        return None;
    };
    // The properties known where the error is (the schema path ends in
    // `additionalProperties`; its parent object holds `properties`).
    let parent = e
        .schema_path()
        .to_string()
        .trim_end_matches("/additionalProperties")
        .to_string();
    let known: Vec<&str> = schema
        .pointer(&parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let word = unexpected.first()?;
    soar_text::closest(word, &known).map(|k| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "region": { "type": "string", "enum": ["nyc1", "ams3"] },
            "size": { "type": "string" },
            "count": { "type": "integer", "minimum": 1 },
            "hosts": { "type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": { "name": { "type": "string" } } } }
        }
    }"#;

    fn project(toml: &str) -> (crate::config::Project, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soar.toml");
        std::fs::write(&path, toml).unwrap();
        let p = crate::config::parse(toml, &path, &["digitalocean"]).unwrap();
        (p, path)
    }

    const TOML: &str = "[app]\nname = \"web\"\n\n[artifact]\nkind = \"binary\"\npath = \"app\"\nbuild = \"true\"\n\n[env.prod]\nprovider = \"digitalocean\"\nregion = \"lon1\"\ncount = 0\nsise = \"s-1vcpu-1gb\"\nhosts = [{ nam = \"a\" }]\n";

    #[test]
    fn each_violation_is_reported_at_its_key() {
        let (p, path) = project(TOML);
        let env = &p.environments["prod"];
        let found = check(TOML, &path, env, SCHEMA);
        let shown: Vec<String> = found
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.col, d.message))
            .collect();
        let at = |needle: &str| {
            found
                .iter()
                .find(|d| d.message.contains(needle))
                .unwrap_or_else(|| panic!("{needle} not in {shown:#?}"))
        };
        assert_eq!(at("`region`").line, 11, "{shown:#?}");
        assert!(
            at("`region`").message.contains("\"lon1\" is not one of"),
            "{shown:#?}"
        );
        assert_eq!(at("`count`").line, 12, "{shown:#?}");
        let typo = at("`sise`");
        assert_eq!((typo.line, typo.col), (13, 1), "{shown:#?}");
        assert_eq!(typo.hint.as_deref(), Some("did you mean `size`?"));
        assert_eq!(at("`hosts[0]`").line, 14, "{shown:#?}");
        assert!(
            at("`hosts[0]`")
                .message
                .contains("\"name\" is a required property")
        );
    }

    #[test]
    fn valid_settings_pass() {
        let toml = TOML
            .replace("region = \"lon1\"", "region = \"ams3\"")
            .replace("count = 0", "count = 2")
            .replace("sise", "size")
            .replace("nam =", "name =");
        let (p, path) = project(&toml);
        assert_eq!(check(&toml, &path, &p.environments["prod"], SCHEMA), vec![]);
    }

    #[test]
    fn a_schema_cannot_make_the_host_fetch_or_read() {
        let (p, path) = project(TOML);
        let env = &p.environments["prod"];
        for reference in ["http://127.0.0.1:9/schema.json", "file:///etc/passwd"] {
            let schema = format!(r#"{{"$ref": "{reference}"}}"#);
            let found = check(TOML, &path, env, &schema);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(found[0].message.contains("cannot use"), "{found:#?}");
            assert!(!found[0].message.contains("root:"), "{found:#?}");
        }
    }

    #[test]
    fn a_broken_schema_is_the_plugins_fault() {
        let (p, path) = project(TOML);
        let found = check(TOML, &path, &p.environments["prod"], "{not json");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 9);
        assert!(found[0].message.contains("not JSON"), "{found:#?}");
    }
}
