//! Byte offsets to `line:col`, and dotted key paths to positions, so any
//! problem found in a value (by the host or by a plugin) can point at the
//! line the user must edit.

use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of byte offset `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// `path.key`, quoting `key` when it is not a bare TOML key, so the result
/// can be pasted back into [`locate`] and read as TOML.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("\"{}\"", key.replace('"', "\\\""))
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// One step of a dotted path.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Split `env.staging."my.key".hosts[0]` into steps. Quoted segments may
/// contain dots; `[n]` indexes arrays.
fn steps(dotted: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut chars = dotted.trim().chars().peekable();
    let mut key = String::new();
    let mut quoted_key = false;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    key.push(q);
                }
                quoted_key = true;
            }
            '.' => {
                if !key.is_empty() || quoted_key {
                    out.push(Step::Key(std::mem::take(&mut key)));
                }
                quoted_key = false;
            }
            '[' => {
                if !key.is_empty() || quoted_key {
                    out.push(Step::Key(std::mem::take(&mut key)));
                }
                quoted_key = false;
                let mut digits = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    digits.push(d);
                }
                out.push(Step::Index(digits.trim().parse().ok()?));
            }
            c => key.push(c),
        }
    }
    if !key.is_empty() || quoted_key {
        out.push(Step::Key(key));
    }
    (!out.is_empty()).then_some(out)
}

/// Position (1-based line, column) of the key named by a dotted path such as
/// `env.staging.hosts.app-1.size`, so a plugin's complaint about a settings
/// field can be shown at `soar.toml:line:col`.
///
/// Array elements are addressed as `hosts[0]` or `hosts.0`. When the path
/// goes deeper than the file (a plugin reporting a missing field), the
/// position of the deepest part that exists is returned, so the message
/// still lands in the right table. `None` when the text does not parse or
/// not even the first key exists.
pub fn locate(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return None;
    }
    let steps = steps(dotted)?;
    let mut found: Option<usize> = None;
    let mut current: Option<&DeValue<'_>> = None;
    let root = doc.get_ref();
    for step in steps {
        let next = match (current, &step) {
            (None, Step::Key(k)) => root.get_key_value(k.as_str()).map(|(k, v)| (k.span(), v)),
            (Some(DeValue::Table(t)), Step::Key(k)) => {
                t.get_key_value(k.as_str()).map(|(k, v)| (k.span(), v))
            }
            (Some(DeValue::Array(a)), Step::Key(k)) => k
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .map(|v| (v.span(), v)),
            (Some(DeValue::Array(a)), Step::Index(i)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        match next {
            Some((span, value)) => {
                found = Some(span.start);
                current = Some(value.get_ref());
            }
            None => break,
        }
    }
    found.map(|at| line_col(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_positions() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'é' is two bytes; the column counts characters.
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 100), (3, 2));
    }

    #[test]
    fn crlf_does_not_shift_columns() {
        assert_eq!(line_col("a\r\nbc", 4), (2, 2));
    }

    #[test]
    fn joins_paths_quoting_odd_keys() {
        assert_eq!(join("", "env"), "env");
        assert_eq!(join("env", "staging"), "env.staging");
        assert_eq!(join("env.staging", "my.key"), "env.staging.\"my.key\"");
    }

    #[test]
    fn splits_paths() {
        assert_eq!(
            steps(r#"env."my.env".hosts[2].size"#).unwrap(),
            vec![
                Step::Key("env".into()),
                Step::Key("my.env".into()),
                Step::Key("hosts".into()),
                Step::Index(2),
                Step::Key("size".into()),
            ]
        );
        assert!(steps("").is_none());
        assert!(steps("a[x]").is_none());
    }

    const DOC: &str = r#"[app]
name = "hello"

[env.staging]
provider = "digitalocean"
hosts = { app-1 = { role = "app", size = "s-1vcpu-1gb" } }
regions = ["nyc1", "sfo3"]

[env.staging.deploy]
port = 9000
"#;

    #[test]
    fn locates_keys_in_headers_inline_tables_and_arrays() {
        assert_eq!(locate(DOC, "app.name"), Some((2, 1)));
        assert_eq!(locate(DOC, "env.staging"), Some((4, 6)));
        assert_eq!(locate(DOC, "env.staging.hosts.app-1.size"), Some((6, 35)));
        assert_eq!(locate(DOC, "env.staging.regions[1]"), Some((7, 20)));
        assert_eq!(locate(DOC, "env.staging.regions.0"), Some((7, 12)));
        assert_eq!(locate(DOC, "env.staging.deploy.port"), Some((10, 1)));
    }

    #[test]
    fn missing_fields_point_at_their_table() {
        assert_eq!(locate(DOC, "env.staging.ssh_key_name"), Some((4, 6)));
        assert_eq!(locate(DOC, "nothing.here"), None);
        assert_eq!(locate("a = ", "a"), None);
    }
}
