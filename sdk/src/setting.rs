//! Settings that keep parsing past a mistake, so one run reports them all.

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
}
