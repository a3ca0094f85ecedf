//! The service's environment file (`shared/env`, mode 0600), in the format
//! systemd's `EnvironmentFile=` reads, so local and remote hosts share it.

use std::path::Path;

/// Render `KEY="value"` lines. Values may not contain newlines (systemd could
/// not read them back); keys must be shell-style names.
pub fn render(vars: &[(String, String)]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (k, v) in vars {
        if k.is_empty()
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || k.as_bytes()[0].is_ascii_digit()
        {
            anyhow::bail!(
                "environment variable name {k:?} is not valid: use letters, digits and underscores"
            );
        }
        if v.contains('\n') || v.contains('\r') {
            anyhow::bail!(
                "environment variable {k} has a newline in its value, which an env file cannot hold"
            );
        }
        out.push_str(&format!(
            "{k}=\"{}\"\n",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
        ));
    }
    Ok(out)
}

/// Read back what [`render`] wrote.
pub fn read(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once('=')?;
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Some((k.trim().to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let vars = vec![
            ("A".to_string(), r#"x "y" \z $HOME"#.to_string()),
            ("PORT".into(), "8080".into()),
        ];
        let text = render(&vars).unwrap();
        let parsed: Vec<_> = text.lines().filter_map(parse_line).collect();
        assert_eq!(parsed, vars);
        assert!(render(&[("A".into(), "a\nb".into())]).is_err());
        assert!(render(&[("1A".into(), "x".into())]).is_err());
    }
}
