//! A plugin's settings JSON Schema, derived from its settings types.
//!
//! `describe` declares the JSON Schema of the provider's settings, and
//! `soar validate` checks every `[env.<name>]` against it offline, with the
//! `file:line:col` of each mistake. A schema written by hand next to the
//! parser drifts from it (a key added to one and not the other, a type
//! widened in the parser only), and then `soar validate` refuses what the
//! plugin accepts, or passes what it refuses. Deriving the schema from the
//! very struct that reads the settings leaves one truth:
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// Settings of `[env.<name>]`.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     /// Region of the servers.
//!     region: String,
//!     /// How many.
//!     #[schemars(range(min = 1))]
//!     count: Option<u32>,
//! }
//!
//! let schema: serde_json::Value =
//!     serde_json::from_str(&soar_sdk::settings_schema::<Settings>()).unwrap();
//! assert_eq!(schema["additionalProperties"], false);
//! assert_eq!(schema["required"], serde_json::json!(["region"]));
//! assert_eq!(schema["properties"]["count"]["type"], "integer");
//! assert_eq!(schema["properties"]["region"]["description"], "Region of the servers.");
//! ```
//!
//! What the derive reads: doc comments become `description`s,
//! `#[serde(deny_unknown_fields)]` becomes `additionalProperties: false`,
//! `#[serde(rename, default, flatten, untagged)]` shape the schema as they
//! shape parsing, and `#[schemars(range(..), required,
//! extend("default" = ..))]` add what the type alone cannot say. The SDK's
//! [`Setting`](crate::setting::Setting) and [`Item`](crate::setting::Item)
//! wrappers describe themselves as the type they wrap.

use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// The JSON Schema (draft 2020-12, the draft `soar validate` reads by
/// default) of settings type `S`, as the text `describe` returns.
///
/// Shaped for the host and for people reading `soar plugin inspect`:
/// every subschema is inlined (no `$defs`/`$ref`, so the host's "did you
/// mean" finds the `properties` next to an unknown key at any depth), the
/// root has no `title` (the Rust type's name means nothing to a user),
/// `null` is neither offered where an `Option` would take it nor given as
/// a default (settings are TOML, which has no null, and `{"type":
/// "string"}` says more than `{"type": ["string", "null"]}`), and a doc
/// comment's lines are joined into sentences (paragraphs stay apart).
pub fn settings_schema<S: JsonSchema>() -> String {
    let mut schema = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .with_transform(Tidy)
        .into_generator()
        .into_root_schema_for::<S>();
    schema.remove("title");
    schema.as_value().to_string()
}

/// Drops the `null` alternative schemars adds for `Option<T>` (keeping
/// `T`) and a `null` default, and joins the lines of descriptions.
#[derive(Debug, Clone)]
struct Tidy;

impl Transform for Tidy {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(obj) = schema.as_object_mut() {
            if obj.get("default").is_some_and(Value::is_null) {
                obj.remove("default");
            }
            if let Some(Value::String(text)) = obj.get_mut("description") {
                *text = text
                    .split("\n\n")
                    .map(|paragraph| {
                        paragraph
                            .split('\n')
                            .map(str::trim)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            if let Some(Value::Array(types)) = obj.get_mut("type")
                && types.iter().any(|t| t != "null")
            {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    obj.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(values)) = obj.get_mut("enum")
                && values.iter().any(|v| !v.is_null())
            {
                values.retain(|v| !v.is_null());
            }
            // `anyOf: [T, {"type": "null"}]` (an Option of a schema with
            // subschemas, such as a `oneOf`) becomes T itself; the field's
            // own keys (its description) win over T's.
            let null = serde_json::json!({"type": "null"});
            if let Some(Value::Array(any)) = obj.get_mut("anyOf")
                && any.len() > 1
                && any.contains(&null)
            {
                any.retain(|s| *s != null);
                if let [Value::Object(only)] = any.as_slice() {
                    let only = only.clone();
                    obj.remove("anyOf");
                    for (k, v) in only {
                        obj.entry(k).or_insert(v);
                    }
                }
            }
        }
        transform_subschemas(self, schema);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::settings_schema;
    use crate::setting::{DurationSetting, Item, Setting};

    /// Settings of a demo
    /// provider.
    ///
    /// Second paragraph.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only the schema is looked at")]
    struct Strict {
        /// Where the servers run.
        #[schemars(extend("default" = "nyc1"))]
        region: Option<String>,
        #[schemars(range(min = 128, max = 1024))]
        memory: Option<u32>,
        wait: Option<DurationSetting>,
        #[serde(default)]
        hosts: BTreeMap<String, Host>,
        #[serde(default)]
        tags: Vec<String>,
    }

    /// One host.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only the schema is looked at")]
    struct Host {
        #[schemars(required)]
        role: Option<String>,
        size: Option<String>,
    }

    /// Lenient settings: the SDK wrappers.
    #[derive(Debug, Default, Deserialize, JsonSchema)]
    #[serde(default)]
    #[allow(dead_code, reason = "only the schema is looked at")]
    struct Lenient {
        count: Setting<u64>,
        ports: Setting<Vec<Item<u16>>>,
        timeout: Setting<DurationSetting>,
    }

    fn schema<S: JsonSchema>() -> Value {
        serde_json::from_str(&settings_schema::<S>()).expect("JSON")
    }

    /// The validator `soar validate` builds, with the host's features.
    fn valid<S: JsonSchema>(settings: Value) -> bool {
        let schema = schema::<S>();
        jsonschema::validator_for(&schema)
            .expect("the host's validator takes the schema")
            .is_valid(&settings)
    }

    #[test]
    fn the_schema_is_plain_inlined_and_says_what_the_struct_says() {
        let s = schema::<Strict>();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(s.get("title").is_none(), "{s:#}");
        assert!(s.get("$defs").is_none(), "inlined: {s:#}");
        assert!(!s.to_string().contains("null"), "no null: {s:#}");
        assert_eq!(
            s["description"],
            "Settings of a demo provider.\n\nSecond paragraph."
        );
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        let p = &s["properties"];
        assert_eq!(p["region"]["type"], "string");
        assert_eq!(p["region"]["default"], "nyc1");
        assert_eq!(p["region"]["description"], "Where the servers run.");
        assert_eq!(p["memory"]["minimum"], 128);
        assert_eq!(
            p["wait"]["oneOf"],
            json!([{"type": "number", "minimum": 0}, {"type": "string"}])
        );
        let host = &p["hosts"]["additionalProperties"];
        assert_eq!(host["additionalProperties"], false);
        assert_eq!(host["required"], json!(["role"]));
        assert!(s.get("required").is_none(), "{s:#}");
    }

    #[test]
    fn the_hosts_validator_accepts_and_refuses_as_the_parser_does() {
        let good = json!({"region": "ams3", "memory": 256, "wait": "5s",
            "hosts": {"a": {"role": "app", "size": "s"}}, "tags": ["x"]});
        assert!(valid::<Strict>(good.clone()));
        assert!(serde_json::from_value::<Strict>(good).is_ok());
        for bad in [
            json!({"regoin": "ams3"}),
            json!({"memory": 4096}),
            json!({"memory": "big"}),
            json!({"wait": -1}),
            json!({"wait": true}),
            json!({"hosts": {"a": {"size": "s"}}}),
            json!({"hosts": {"a": {"role": "app", "sise": "s"}}}),
            json!({"tags": "x"}),
        ] {
            assert!(!valid::<Strict>(bad.clone()), "accepted {bad}");
        }
        assert!(valid::<Strict>(json!({})));
    }

    #[test]
    fn wrappers_are_invisible() {
        let s = schema::<Lenient>();
        let p = &s["properties"];
        assert_eq!(
            p["count"],
            json!({"type": "integer", "format": "uint64", "minimum": 0})
        );
        assert_eq!(p["ports"]["type"], "array");
        assert_eq!(p["ports"]["items"]["type"], "integer");
        assert_eq!(p["ports"]["items"]["maximum"], 65535);
        assert!(p["timeout"].get("oneOf").is_some(), "{s:#}");
        assert!(valid::<Lenient>(
            json!({"count": 2, "ports": [22], "timeout": 1.5})
        ));
        assert!(!valid::<Lenient>(json!({"ports": [22, "x"]})));
        assert!(
            valid::<Lenient>(json!({"unknown": 1})),
            "no deny_unknown_fields"
        );
        // `#[serde(default)]` on the struct: schemars gives each field's
        // default, except a null one.
        assert!(p["count"].get("default").is_none(), "{s:#}");
    }
}
