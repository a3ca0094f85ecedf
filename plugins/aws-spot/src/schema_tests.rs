//! The settings schema `describe` declares is derived from the types that
//! read the settings (`settings::Written`). Each case below is checked
//! against the parser, the derived schema and the hand-written schema it
//! replaced: the derived schema agrees with the parser on every one, and
//! where the old schema did not, the case says so.

use soar_sdk::prelude::*;

use crate::settings::{parse, schema};

/// The hand-written schema the derived one replaced, kept as the reference.
fn before() -> Value {
    json!({
        "type": "object",
        "properties": {
            "regions": {"type": "array", "items": {"anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {
                    "name": {"type": "string"}, "count": {"type": "integer"},
                    "instance_types": {"type": "array", "items": {"type": "string"}},
                    "ami": {"type": "string"}}}
            ]}},
            "instance_types": {"type": "array", "items": {"type": "string"}},
            "count": {"type": "integer", "minimum": 1},
            "max_price": {"type": "string"},
            "ami": {"type": "string"},
            "public_key": {"type": "string"},
            "key_name": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "integer"}},
            "service_port": {"type": "integer"},
            "ingress_cidr": {"type": "string"},
            "wait_timeout": {"type": "integer"},
            "user": {"type": "string"}
        }
    })
}

/// What the old schema said about a case the parser accepts or refuses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Old {
    /// The same as the parser (and the derived schema).
    Agreed,
    /// The opposite: the drift the derived schema removes.
    Drifted,
}

/// `(settings, the parser accepts them, what the old schema said)`; the
/// settings get `regions = ["us-east-1"]` unless they name regions.
fn cases() -> Vec<(Value, bool, Old)> {
    use Old::{Agreed, Drifted};
    vec![
        (json!({}), true, Agreed),
        (
            json!({"regions": ["us-east-1", {"name": "eu-west-1", "count": 2,
                "instance_types": ["t3.small"], "ami": "ami-1"}],
                "instance_types": ["t3.micro"], "count": 3, "max_price": "0.05",
                "ami": "ami-0123", "public_key": "ssh-ed25519 AAAA me", "ports": [8080],
                "service_port": 443, "ingress_cidr": "10.0.0.0/8", "wait_timeout": 600,
                "user": "admin"}),
            true,
            Agreed,
        ),
        (
            json!({"regions": [{"us-east-1": {"count": 2}}]}),
            true,
            Agreed,
        ),
        (
            json!({"key_name": "mine", "total_instances": 2, "instance_type": "t3.small", "poll_interval_ms": 50}),
            true,
            Agreed,
        ),
        (json!({"regions": [5]}), false, Agreed),
        (json!({"count": 0}), false, Agreed),
        (json!({"count": "x"}), false, Agreed),
        (json!({"ports": ["x"]}), false, Agreed),
        (json!({"service_port": "http"}), false, Agreed),
        (json!({"instance_types": [1]}), false, Agreed),
        (json!({"user": 7}), false, Agreed),
        (
            json!({"regions": [{"name": "us-east-1", "count": "many"}]}),
            false,
            Agreed,
        ),
        // The parser took these; the old schema refused them.
        (json!({"regions": "us-east-1"}), true, Drifted),
        (json!({"instance_types": "t3.micro"}), true, Drifted),
        (json!({"max_price": 0.05}), true, Drifted),
        (json!({"wait_timeout": "10m"}), true, Drifted),
        (json!({"wait_timeout": 1.5}), true, Drifted),
        (
            json!({"regions": [{"name": "us-east-1", "count": "auto"}]}),
            true,
            Drifted,
        ),
        // The parser refused these; the old schema let them through.
        (json!({"regoins": ["us-east-1"]}), false, Drifted),
        (json!({"count": 5000}), false, Drifted),
        (json!({"total_instances": "two"}), false, Drifted),
        (json!({"ports": [70000]}), false, Drifted),
        (json!({"service_port": 0}), false, Drifted),
        (json!({"wait_timeout": -1}), false, Drifted),
        (json!({"poll_interval_ms": "fast"}), false, Drifted),
    ]
}

#[test]
fn the_derived_schema_accepts_and_refuses_what_the_parser_does() {
    let derived: Value = serde_json::from_str(&schema()).expect("the schema is JSON");
    let new = jsonschema::validator_for(&derived).expect("the host's validator takes it");
    let old = jsonschema::validator_for(&before()).unwrap();
    for (case, accepted, was) in cases() {
        let mut settings = json!({"regions": ["us-east-1"]});
        for (k, v) in case.as_object().unwrap() {
            settings[k] = v.clone();
        }
        let (parsed, d) = parse(&settings, false);
        let errors: Vec<&str> = d
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            parsed.is_some(),
            accepted,
            "parser on {settings}: {errors:?}"
        );
        assert_eq!(
            new.is_valid(&settings),
            accepted,
            "derived schema on {settings}"
        );
        let old_agrees = old.is_valid(&settings) == accepted;
        assert_eq!(old_agrees, was == Old::Agreed, "old schema on {settings}");
    }
    assert!(!new.is_valid(&json!([])));
}

#[test]
fn the_schema_closes_the_table_and_keeps_its_descriptions() {
    let s: Value = serde_json::from_str(&schema()).unwrap();
    assert_eq!(s["additionalProperties"], false, "{s:#}");
    assert!(
        s["description"]
            .as_str()
            .is_some_and(|d| d.contains(".spot/config.yaml")),
        "{s:#}"
    );
    let p = &s["properties"];
    assert!(
        p.get("unknown").is_none() && p.get("aws").is_some(),
        "{s:#}"
    );
    assert_eq!(p["count"]["maximum"], 1000);
    assert_eq!(p["user"]["default"], "ubuntu");
    assert_eq!(p["ingress_cidr"]["type"], "string");
}
