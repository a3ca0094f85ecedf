//! The settings schema `describe` declares is derived from
//! [`Settings`](crate::settings::Settings); it must accept and refuse what
//! the hand-written schema it replaced did, and what the parser does.

use soar_sdk::prelude::*;

use crate::settings::Settings;

/// The hand-written schema the derived one replaced, kept as the reference.
fn before() -> Value {
    let duration = json!({"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}]});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "token_env": {"type": "string"},
            "ssh_key_name": {"type": "string"},
            "default_region": {"type": "string"},
            "default_size": {"type": "string"},
            "image": {"type": "string"},
            "regions": {"type": "array", "items": {"type": "string"}},
            "sizes": {"type": "array", "items": {"type": "string"}},
            "user_data": {"type": "string"},
            "wait_interval": duration.clone(),
            "wait_timeout": duration.clone(),
            "functions": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "namespace": {"type": "string"},
                    "region": {"type": "string"},
                    "name": {"type": "string"},
                    "runtime": {"type": "string"},
                    "main": {"type": "string"},
                    "memory": {"type": "integer", "minimum": 128, "maximum": 1024},
                    "timeout": duration,
                    "web": {"type": "boolean"},
                    "health": {"type": "string"},
                    "environment": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "hosts": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["role"],
                    "properties": {
                        "role": {"type": "string"},
                        "size": {"type": "string"},
                        "region": {"type": "string"}
                    }
                }
            }
        }
    })
}

fn derived() -> Value {
    let described = crate::DigitalOcean::describe().settings_schema;
    serde_json::from_str(&described).expect("the schema is JSON")
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("the host's validator takes the schema")
}

#[test]
fn the_derived_schema_accepts_and_refuses_what_the_old_one_did() {
    let (old, new) = (validator(&before()), validator(&derived()));
    let good = [
        json!({}),
        json!({"ssh_key_name": "deploy", "default_region": "nyc1", "default_size": "s-1vcpu-1gb",
            "hosts": {"app-1": {"role": "app"}, "db-1": {"role": "db", "size": "s-2vcpu-4gb", "region": "ams3"}}}),
        json!({"token_env": "DO_TOKEN", "image": "debian-12-x64", "regions": ["nyc1"], "sizes": [],
            "user_data": "#cloud-config\n", "wait_interval": "20ms", "wait_timeout": 30}),
        json!({"wait_timeout": 1.5, "wait_interval": 0}),
        json!({"functions": {"namespace": "ns", "region": "nyc1", "name": "hello", "runtime": "nodejs:18",
            "main": "main", "memory": 128, "timeout": "3s", "web": false, "health": "/health",
            "environment": {"GREETING": "hi"}}}),
        json!({"functions": {"memory": 1024}}),
        json!({"functions": {}}),
    ];
    let bad = [
        json!({"default_regoin": "ams3"}),
        json!({"ssh_key_name": 7}),
        json!({"regions": "nyc1"}),
        json!({"regions": [1]}),
        json!({"wait_timeout": -1}),
        json!({"wait_timeout": true}),
        json!({"hosts": {"app-1": {}}}),
        json!({"hosts": {"app-1": {"role": "app", "sise": "x"}}}),
        json!({"hosts": {"app-1": "app"}}),
        json!({"hosts": ["app-1"]}),
        json!({"functions": {"memory": 4096}}),
        json!({"functions": {"memory": 64}}),
        json!({"functions": {"memory": "256"}}),
        json!({"functions": {"web": "yes"}}),
        json!({"functions": {"environment": {"N": 1}}}),
        json!({"functions": {"runtimee": "nodejs:18"}}),
        json!({"functions": "yes"}),
        json!({"ssh_key_name": null}),
        json!([]),
    ];
    for s in &good {
        assert!(old.is_valid(s), "the old schema refuses {s}");
        assert!(new.is_valid(s), "the derived schema refuses {s}");
        assert!(
            serde_json::from_value::<Settings>(s.clone()).is_ok(),
            "the parser refuses {s}"
        );
    }
    for s in &bad {
        assert!(!old.is_valid(s), "the old schema accepts {s}");
        assert!(!new.is_valid(s), "the derived schema accepts {s}");
    }
}

#[test]
fn descriptions_and_defaults_come_from_the_struct() {
    let s = derived();
    let p = &s["properties"];
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(p["image"]["default"], crate::settings::DEFAULT_IMAGE);
    assert_eq!(
        p["token_env"]["default"],
        crate::settings::DEFAULT_TOKEN_ENV
    );
    assert!(
        p["ssh_key_name"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Soar does not create keys")),
        "{s:#}"
    );
    assert_eq!(p["functions"]["properties"]["memory"]["maximum"], 1024);
    assert_eq!(
        p["hosts"]["additionalProperties"]["required"],
        json!(["role"])
    );
    // The conformance harness and `soar plugin inspect` read plain types.
    assert_eq!(p["default_region"]["type"], "string");
}
