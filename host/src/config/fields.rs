//! Typed reads of one table's keys, each failure reported at the offending
//! key or value with the expected type and an example. The schema modules
//! describe *what* a section holds; this module is *how* a value is read.

use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::diagnostics::Report;
use super::duration::{FORMS, parse_duration};
use super::spans::join;
use super::spelling::closest;

/// A parsed TOML value with its byte span.
pub(crate) type Value<'a> = Spanned<DeValue<'a>>;

/// "a string", "an integer", ...: what the user wrote, for type errors.
pub(crate) fn found(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The integer a TOML integer literal denotes (any radix), if it fits.
pub(crate) fn integer(value: &DeValue<'_>) -> Option<i128> {
    match value {
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// Report that `value` at `path` has the wrong type.
pub(crate) fn wrong_type(
    r: &mut Report<'_>,
    value: &Value<'_>,
    path: &str,
    expected: &str,
    example: &str,
) {
    r.error(
        value.span().start,
        format!(
            "`{path}` must be {expected}, not {}",
            found(value.get_ref())
        ),
        Some(format!("for example: {example}")),
    );
}

/// One table being read: its dotted path (empty for the top level), its
/// entries and where to point when something in it is missing.
pub(crate) struct Section<'a> {
    path: String,
    table: &'a DeTable<'a>,
    at: usize,
}

impl<'a> Section<'a> {
    /// The whole document.
    pub(crate) fn root(table: &'a DeTable<'a>) -> Self {
        Self {
            path: String::new(),
            table,
            at: 0,
        }
    }

    /// The dotted path, e.g. `env.staging.deploy`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// How messages name the table: `[deploy]`.
    pub(crate) fn name(&self) -> String {
        if self.path.is_empty() {
            "the top level of soar.toml".to_string()
        } else {
            format!("[{}]", self.path)
        }
    }

    /// Dotted path of one of its keys.
    pub(crate) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Its entries, for sections whose keys are free-form.
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = (&'a Spanned<DeString<'a>>, &'a Value<'a>)> {
        self.table.iter()
    }

    /// The key and value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<(&'a Spanned<DeString<'a>>, &'a Value<'a>)> {
        self.table.get_key_value(key)
    }

    /// Report every key not in `allowed`, with the valid keys and the
    /// closest one.
    pub(crate) fn check_keys(&self, allowed: &[&str], r: &mut Report<'_>) {
        for (key, _) in self.table.iter() {
            if allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let hint = match closest(key.get_ref(), allowed) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "remove it, or check its spelling against the valid keys".to_string(),
            };
            r.error(
                key.span().start,
                format!(
                    "unknown key `{}` in {} (valid keys: {})",
                    key.get_ref(),
                    self.name(),
                    allowed.join(", ")
                ),
                Some(hint),
            );
        }
    }

    /// Report that a required `key` is missing, showing how to write it.
    /// Stays quiet when a misspelling of `key` is present: the unknown-key
    /// report for it already says "did you mean".
    pub(crate) fn missing(&self, key: &str, example: &str, r: &mut Report<'_>) {
        if self
            .table
            .iter()
            .any(|(k, _)| closest(k.get_ref(), &[key]).is_some())
        {
            return;
        }
        r.error(
            self.at,
            format!("missing `{key}` in {}", self.name()),
            Some(format!("add: {example}")),
        );
    }

    /// A nested table (a `[header]` table or an inline table).
    pub(crate) fn section(&self, key: &str, example: &str, r: &mut Report<'_>) -> Option<Self> {
        let (k, v) = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Self {
                path: self.key_path(key),
                table: t,
                at: k.span().start,
            }),
            _ => {
                wrong_type(r, v, &self.key_path(key), "a table", example);
                None
            }
        }
    }

    /// A non-empty string.
    pub(crate) fn string(
        &self,
        key: &str,
        example: &str,
        r: &mut Report<'_>,
    ) -> Option<Spanned<String>> {
        let (_, v) = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => {
                Some(Spanned::new(v.span(), s.to_string()))
            }
            DeValue::String(_) => {
                r.error(
                    v.span().start,
                    format!("`{}` is empty", self.key_path(key)),
                    Some(format!("remove the key, or write for example: {example}")),
                );
                None
            }
            _ => {
                wrong_type(r, v, &self.key_path(key), "a string", example);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn int_in(
        &self,
        key: &str,
        min: i128,
        max: i128,
        example: &str,
        r: &mut Report<'_>,
    ) -> Option<i128> {
        let (_, v) = self.get(key)?;
        if !matches!(v.get_ref(), DeValue::Integer(_)) {
            let expected = if matches!(v.get_ref(), DeValue::String(_)) {
                "an integer (without quotes)"
            } else {
                "an integer"
            };
            wrong_type(r, v, &self.key_path(key), expected, example);
            return None;
        }
        match integer(v.get_ref()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let range = if max >= i128::from(u32::MAX) {
                    format!("at least {min}")
                } else {
                    format!("from {min} to {max}")
                };
                r.error(
                    v.span().start,
                    format!(
                        "`{}` is out of range: it must be {range}",
                        self.key_path(key)
                    ),
                    Some(format!("for example: {example}")),
                );
                None
            }
        }
    }

    /// A TCP port, 1..=65535.
    pub(crate) fn port(&self, key: &str, r: &mut Report<'_>) -> Option<u16> {
        let example = format!("{key} = 8080");
        self.int_in(key, 1, 65535, &example, r)
            .and_then(|n| u16::try_from(n).ok())
    }

    /// A count of at least `min`.
    pub(crate) fn count(
        &self,
        key: &str,
        min: u32,
        example: &str,
        r: &mut Report<'_>,
    ) -> Option<u32> {
        self.int_in(key, i128::from(min), i128::from(u32::MAX), example, r)
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A positive duration: a string such as `"30s"` or integer seconds.
    pub(crate) fn duration(&self, key: &str, r: &mut Report<'_>) -> Option<Duration> {
        let (_, v) = self.get(key)?;
        let path = self.key_path(key);
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(_) => match integer(v.get_ref()) {
                Some(n) if n >= 0 => u64::try_from(n)
                    .map(Duration::from_secs)
                    .map_err(|_| "is too long a duration".to_string()),
                _ => Err(format!("must not be negative; write {FORMS}")),
            },
            _ => {
                wrong_type(r, v, &path, "a duration", &format!("{key} = \"30s\""));
                return None;
            }
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                r.error(
                    v.span().start,
                    format!("`{path}` must be longer than zero"),
                    Some(format!("for example: {key} = \"30s\"")),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                r.error(
                    v.span().start,
                    format!("`{path}`: {why}"),
                    Some(format!("for example: {key} = \"30s\"")),
                );
                None
            }
        }
    }

    /// A table of strings (`{ NAME = "value" }`), with each key's and
    /// value's position. Wrong-typed entries are reported and skipped.
    pub(crate) fn string_map(&self, key: &str, example: &str, r: &mut Report<'_>) -> Vec<MapEntry> {
        let Some(section) = self.section(key, example, r) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in section.table.iter() {
            match v.get_ref() {
                DeValue::String(s) => out.push(MapEntry {
                    key: k.get_ref().to_string(),
                    key_at: k.span().start,
                    value: s.to_string(),
                    value_at: v.span().start,
                }),
                _ => wrong_type(r, v, &section.key_path(k.get_ref()), "a string", example),
            }
        }
        out
    }
}

/// One entry of a string table, with positions for later checks.
#[derive(Debug, Clone)]
pub(crate) struct MapEntry {
    pub key: String,
    pub key_at: usize,
    pub value: String,
    pub value_at: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn with<T>(text: &str, f: impl FnOnce(&Section<'_>, &mut Report<'_>) -> T) -> (T, Vec<String>) {
        let (doc, errs) = DeTable::parse_recoverable(text);
        assert!(errs.is_empty());
        let mut r = Report::new(text, Path::new("soar.toml"));
        let section = Section::root(doc.get_ref());
        let out = f(&section, &mut r);
        let msgs = r.finish().iter().map(|d| d.to_string()).collect();
        (out, msgs)
    }

    #[test]
    fn unknown_keys_list_valid_ones_and_suggest() {
        let (_, msgs) = with("prot = 1\nzzz = 2\nport = 3", |s, r| {
            s.check_keys(&["port", "service"], r)
        });
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].starts_with("soar.toml:1:1: unknown key `prot`"));
        assert!(msgs[0].contains("valid keys: port, service"));
        assert!(msgs[0].contains("did you mean `port`?"));
        assert!(!msgs[1].contains("did you mean"));
    }

    #[test]
    fn ports_must_be_unquoted_and_in_range() {
        let (p, msgs) = with("a = \"80\"\nb = 0\nc = 70000\nd = 443", |s, r| {
            [
                s.port("a", r),
                s.port("b", r),
                s.port("c", r),
                s.port("d", r),
            ]
        });
        assert_eq!(p, [None, None, None, Some(443)]);
        assert!(msgs[0].contains("1:5: `a` must be an integer (without quotes), not a string"));
        assert!(msgs[1].contains("2:5: `b` is out of range: it must be from 1 to 65535"));
        assert!(msgs[2].contains("3:5: `c` is out of range"));
    }

    #[test]
    fn counts_reject_negatives() {
        let (n, msgs) = with("k = -1\nj = 3", |s, r| {
            (s.count("k", 1, "k = 5", r), s.count("j", 1, "j = 5", r))
        });
        assert_eq!(n, (None, Some(3)));
        assert!(msgs[0].contains("`k` is out of range: it must be at least 1"));
    }

    #[test]
    fn durations_from_strings_or_seconds() {
        let (d, msgs) = with(
            "a = \"500ms\"\nb = 10\nc = \"soon\"\nd = 0\ne = -3\nf = 1.5",
            |s, r| ["a", "b", "c", "d", "e", "f"].map(|k| s.duration(k, r)),
        );
        assert_eq!(d[0], Some(Duration::from_millis(500)));
        assert_eq!(d[1], Some(Duration::from_secs(10)));
        assert!(d[2..].iter().all(Option::is_none));
        assert_eq!(msgs.len(), 4);
        assert!(msgs[0].contains("3:5: `c`: 'soon' is not a duration"));
        assert!(msgs[1].contains("longer than zero"));
        assert!(msgs[2].contains("must not be negative"));
        assert!(msgs[3].contains("must be a duration, not a float"));
    }

    #[test]
    fn strings_and_maps() {
        let (got, msgs) = with(
            "a = \"\"\nb = 1\nm = { X = \"1\", Y = 2 }\nc = \"ok\"",
            |s, r| {
                (
                    s.string("a", "a = \"x\"", r),
                    s.string("b", "b = \"x\"", r),
                    s.string("c", "c = \"x\"", r).map(Spanned::into_inner),
                    s.string_map("m", "m = { X = \"1\" }", r).len(),
                )
            },
        );
        assert_eq!(
            (got.0, got.1, got.2, got.3),
            (None, None, Some("ok".to_string()), 1)
        );
        assert_eq!(msgs.len(), 3);
        assert!(msgs[0].contains("`a` is empty"));
        assert!(msgs[1].contains("`b` must be a string, not an integer"));
        assert!(msgs[2].contains("`m.Y` must be a string"));
    }
}
