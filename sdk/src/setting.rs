//! Settings that keep parsing past a mistake, so one run reports them all,
//! and whose JSON Schema is derived from the same types
//! ([`settings_schema`](crate::settings_schema)).
//!
//! The wrappers here are invisible in a derived schema: [`Setting<T>`] and
//! [`Item<T>`] describe themselves as `T`, because the schema states what a
//! user should write, while the wrappers only let the parser go on past
//! what they should not have written.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use crate::Value;

/// One setting as written: its typed value when it has the expected shape,
/// or the value as written when it does not.
///
/// A settings struct that derives `Deserialize` with plain field types
/// stops at the first value of the wrong shape, so a user with three
/// mistakes learns about them one run at a time. Declare the fields as
/// `Setting<T>` (with `#[serde(default)]` on the struct) and deserializing
/// never fails on a value: the plugin reports each [`Setting::Invalid`] in
/// its own words, naming the field, and goes on checking the others.
///
/// `null` (a YAML key with no value) counts as [`Setting::Absent`].
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Setting<T> {
    /// Not written, or written as `null`.
    #[default]
    Absent,
    /// Written with the expected shape.
    Valid(T),
    /// Written with another shape; the value as written, for the message.
    Invalid(Value),
}

impl<T> Setting<T> {
    /// This setting when it is written (even wrongly), else `other`: for a
    /// key with an alias, where the first spelling wins when present.
    pub fn or(self, other: Self) -> Self {
        match self {
            Self::Absent => other,
            written => written,
        }
    }

    /// The typed value, if it was written with the expected shape.
    pub fn valid(self) -> Option<T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Absent | Self::Invalid(_) => None,
        }
    }

    /// Whether the setting was not written (or written as `null`).
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Setting<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.is_null() {
            return Ok(Self::Absent);
        }
        Ok(match T::deserialize(&value) {
            Ok(typed) => Self::Valid(typed),
            Err(_) => Self::Invalid(value),
        })
    }
}

/// One item of a list setting: typed when it has the expected shape, the
/// value as written otherwise. `Vec<Item<T>>` reads every item of a list
/// and lets the plugin report the bad ones by index.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Item<T> {
    /// The item had the expected shape.
    Valid(T),
    /// The item as written, for a diagnostic that quotes it.
    Invalid(Value),
}

impl<T> Item<T> {
    /// The typed value, if the item has the expected shape.
    pub fn valid(self) -> Option<T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Invalid(_) => None,
        }
    }
}

/// Schema of `T`: a setting is written as a `T`.
impl<T: JsonSchema> JsonSchema for Setting<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// Schema of `T`: an item is written as a `T`.
impl<T: JsonSchema> JsonSchema for Item<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A duration setting: seconds as a number (`5`, `0.5`) or text in the
/// host's own forms (`"5s"`, `"500ms"`, `"10m"`, `"1h"`), so `[env.<name>]`
/// reads durations as the rest of soar.toml does.
///
/// Its schema is `oneOf [number >= 0, string]`: a JSON Schema cannot say
/// which strings are durations, so [`DurationSetting::duration`] judges
/// the text and says what to write instead.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum DurationSetting {
    /// A number of seconds.
    Seconds(f64),
    /// Text such as `"30s"`, read by [`parse_duration`](crate::text::parse_duration).
    Text(String),
}

impl DurationSetting {
    /// The duration, or why this is not one, in the host's words (the
    /// caller adds which setting it is).
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            // `try_from`: a huge number of seconds (1e300) is refused rather
            // than panicking in `Duration::from_secs_f64`.
            Self::Seconds(s) if *s >= 0.0 => {
                Duration::try_from_secs_f64(*s).map_err(|_| format!("{s} is too long a duration"))
            }
            Self::Seconds(s) => Err(format!(
                "{s} is not a duration; write {}",
                crate::text::DURATION_FORMS
            )),
            Self::Text(t) => crate::text::parse_duration(t),
        }
    }
}

impl JsonSchema for DurationSetting {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn schema_id() -> Cow<'static, str> {
        "soar_sdk::setting::DurationSetting".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
            "description": "seconds, or a duration such as \"30s\", \"500ms\", \"10m\", \"1h\""
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Demo {
        count: Setting<u32>,
        name: Setting<String>,
        ports: Setting<Vec<Item<u16>>>,
    }

    #[test]
    fn every_field_is_read_whatever_its_neighbours_hold() {
        let d: Demo =
            serde_json::from_value(serde_json::json!({"count": "two", "ports": [22, "x"]}))
                .unwrap();
        assert_eq!(d.count, Setting::Invalid(serde_json::json!("two")));
        assert!(d.name.is_absent());
        let Setting::Valid(ports) = d.ports else {
            panic!("ports is a list")
        };
        assert_eq!(ports[0], Item::Valid(22));
        assert_eq!(ports[1], Item::Invalid(serde_json::json!("x")));
    }

    #[test]
    fn null_is_absent_and_aliases_fall_back() {
        let d: Demo = serde_json::from_value(serde_json::json!({"count": null})).unwrap();
        assert!(d.count.is_absent());
        assert_eq!(Setting::Absent.or(Setting::Valid(1)).valid(), Some(1));
        assert_eq!(
            Setting::<u8>::Invalid(Value::Null)
                .or(Setting::Valid(1))
                .valid(),
            None
        );
    }

    #[test]
    fn durations_read_as_the_host_reads_them() {
        let seconds = |s: f64| DurationSetting::Seconds(s).duration();
        assert_eq!(seconds(1.5), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds(0.0), Ok(Duration::ZERO));
        assert!(seconds(-1.0).unwrap_err().contains("is not a duration"));
        assert!(seconds(f64::NAN).unwrap_err().contains("is not a duration"));
        assert!(seconds(1e300).unwrap_err().contains("too long"));
        assert!(seconds(f64::INFINITY).unwrap_err().contains("too long"));
        let text = |t: &str| DurationSetting::Text(t.into()).duration();
        assert_eq!(text("10m"), Ok(Duration::from_secs(600)));
        assert!(text("5").unwrap_err().contains("no unit"));
        let read: DurationSetting = serde_json::from_value(serde_json::json!(5)).unwrap();
        assert_eq!(read, DurationSetting::Seconds(5.0));
    }
}
