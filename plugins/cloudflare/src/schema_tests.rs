//! The settings schema `describe` declares is derived from
//! [`Settings`](crate::Settings); it must accept and refuse what the
//! hand-written schema it replaced did, and what the parser does.

use soar_sdk::prelude::*;

use crate::{Cloudflare, Settings};

/// The hand-written schema the derived one replaced, kept as the reference.
fn before() -> Value {
    json!({
        "type": "object",
        "required": ["account_id"],
        "properties": {
            "token_env": {"type": "string"},
            "account_id": {"type": "string"},
            "script_name": {"type": "string"},
            "project_name": {"type": "string"},
            "compatibility_date": {"type": "string"},
            "compatibility_flags": {"type": "array", "items": {"type": "string"}},
            "main_module": {"type": "string"},
            "vars": {"type": "object", "additionalProperties": {"type": "string"}},
            "workers_dev": {"type": "boolean"},
            "routes": {"type": "array", "items": {
                "type": "object",
                "required": ["pattern", "zone_id"],
                "properties": {"pattern": {"type": "string"}, "zone_id": {"type": "string"}}
            }},
            "production_branch": {"type": "string"}
        }
    })
}

fn derived() -> Value {
    serde_json::from_str(&Cloudflare::describe().settings_schema).expect("the schema is JSON")
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("the host's validator takes the schema")
}

#[test]
fn the_derived_schema_accepts_and_refuses_what_the_old_one_did() {
    let (old, new) = (validator(&before()), validator(&derived()));
    let good = [
        json!({"account_id": "0123456789abcdef0123456789abcdef"}),
        json!({"account_id": "a", "token_env": "CF", "script_name": "w", "project_name": "p",
            "compatibility_date": "2024-09-23", "compatibility_flags": ["nodejs_compat"],
            "main_module": "index.js", "vars": {"GREETING": "hi"}, "workers_dev": false,
            "routes": [{"pattern": "example.com/*", "zone_id": "z"}], "production_branch": "prod"}),
        // Neither schema nor parser closes the table.
        json!({"account_id": "a", "something_else": 1}),
        json!({"account_id": "a", "routes": [{"pattern": "p", "zone_id": "z", "extra": 1}]}),
    ];
    let bad = [
        json!({}),
        json!({"script_name": "w"}),
        json!({"account_id": 7}),
        json!({"account_id": "a", "workers_dev": "yes"}),
        json!({"account_id": "a", "vars": {"N": 1}}),
        json!({"account_id": "a", "vars": ["N"]}),
        json!({"account_id": "a", "compatibility_flags": "nodejs_compat"}),
        json!({"account_id": "a", "routes": [{"pattern": "p"}]}),
        json!({"account_id": "a", "routes": [{"zone_id": "z"}]}),
        json!({"account_id": "a", "routes": {"pattern": "p", "zone_id": "z"}}),
        json!({"account_id": null}),
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
fn defaults_and_descriptions_come_from_the_struct() {
    let s = derived();
    let p = &s["properties"];
    assert_eq!(s["required"], json!(["account_id"]));
    assert_eq!(p["token_env"]["default"], "CLOUDFLARE_API_TOKEN");
    assert_eq!(
        p["compatibility_date"]["default"],
        crate::DEFAULT_COMPATIBILITY_DATE
    );
    assert_eq!(p["workers_dev"]["default"], true);
    assert_eq!(p["production_branch"]["default"], "main");
    assert_eq!(
        p["routes"]["items"]["required"],
        json!(["pattern", "zone_id"])
    );
    assert!(p["account_id"]["description"].is_string(), "{s:#}");
}
