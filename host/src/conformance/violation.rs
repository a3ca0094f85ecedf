//! Settings that break the plugin's own schema, for check 7 (errors are
//! typed): the author's valid settings with one thing made wrong, so the
//! plugin is asked about exactly one mistake a user could make.

use serde_json::{Map, Value, json};

/// A value of another type than the schema's `type` wants.
fn wrong_value(wanted: &str) -> Option<Value> {
    Some(match wanted {
        "string" => json!(42),
        "number" | "integer" => json!("not-a-number"),
        "boolean" => json!("not-a-boolean"),
        "object" => json!("not-an-object"),
        "array" => json!("not-an-array"),
        _ => return None,
    })
}

/// `settings` with one mistake `validator` rejects, and the mistake in
/// words; `None` when nothing tried breaks the schema (a schema that
/// accepts anything leaves no wrong settings to ask about).
///
/// Tried in order: each declared property given a value of the wrong type
/// (properties in name order, so runs are repeatable); an unknown key; the
/// settings as an array instead of an object.
pub fn violate(
    settings: &Value,
    schema: &Value,
    validator: &jsonschema::Validator,
) -> Option<(Value, String)> {
    let base = settings.as_object().cloned().unwrap_or_default();
    let mut candidates: Vec<(Value, String)> = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let mut names: Vec<&String> = props.keys().collect();
        names.sort();
        for name in names {
            let Some(wanted) = props[name].get("type").and_then(Value::as_str) else {
                continue;
            };
            let Some(wrong) = wrong_value(wanted) else {
                continue;
            };
            let mut s = base.clone();
            s.insert(name.clone(), wrong.clone());
            candidates.push((
                Value::Object(s),
                format!("`{name}` = {wrong} where the schema wants a {wanted}"),
            ));
        }
    }
    let mut unknown: Map<String, Value> = base;
    unknown.insert("soar-conformance-unknown-key".into(), json!(true));
    candidates.push((
        Value::Object(unknown),
        "an unknown key `soar-conformance-unknown-key`".into(),
    ));
    candidates.push((json!([]), "the settings as an array, not an object".into()));
    candidates.into_iter().find(|(s, _)| !validator.is_valid(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(schema: Value, settings: Value) -> Option<(Value, String)> {
        let v = jsonschema::validator_for(&schema).expect("schema");
        violate(&settings, &schema, &v)
    }

    #[test]
    fn a_typed_property_is_given_the_wrong_type() {
        let (bad, why) = run(
            json!({"type": "object", "properties": {"region": {"type": "string"}, "count": {"type": "integer"}}}),
            json!({"region": "nyc3", "count": 1}),
        )
        .expect("a violation");
        assert_eq!(bad, json!({"region": "nyc3", "count": "not-a-number"}));
        assert!(why.contains("`count`"), "{why}");
    }

    #[test]
    fn closed_objects_get_an_unknown_key_and_open_schemas_none() {
        let (bad, _) = run(
            json!({"type": "object", "additionalProperties": false}),
            json!({}),
        )
        .expect("a violation");
        assert_eq!(bad["soar-conformance-unknown-key"], json!(true));
        assert!(run(json!({}), json!({})).is_none());
    }
}
