//! The naming rule for everything that becomes part of a resource's
//! identity (app, service and environment names): they end up in host
//! names, unit names and cloud resource names, so they must be valid in all
//! of them.

/// Names kept for the platform: they collide with well-known host names.
pub const RESERVED_NAMES: &[&str] = &["api", "www", "admin", "root", "mail", "ftp"];

/// Shortest name allowed: shorter ones collide too easily across projects.
pub const MIN_LEN: usize = 3;

/// Longest name allowed: a DNS label holds at most 63 characters.
pub const MAX_LEN: usize = 63;

/// Check `name` against the identity rule; the error says which part of the
/// rule is broken (in words that follow "is not a valid name: it ...").
///
/// Public so every command that accepts a name (`soar init`, the engine)
/// applies the same rule as the configuration.
pub fn check_name(name: &str) -> Result<(), String> {
    const RULE: &str = "names use lowercase letters, digits and hyphens";
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("contains uppercase letters ({RULE})"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let shown = if c.is_whitespace() {
            "a space".to_string()
        } else {
            format!("'{c}'")
        };
        return Err(format!("contains {shown} ({RULE})"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("starts or ends with a hyphen".to_string());
    }
    let len = name.chars().count();
    if len < MIN_LEN {
        return Err(format!(
            "is {len} character{} long (names have {MIN_LEN} to {MAX_LEN})",
            if len == 1 { "" } else { "s" }
        ));
    }
    if len > MAX_LEN {
        return Err(format!(
            "is {len} characters long (names have {MIN_LEN} to {MAX_LEN})"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "is reserved ({} are kept for the platform)",
            RESERVED_NAMES.join(", ")
        ));
    }
    Ok(())
}

/// A name close to `name` that passes [`check_name`], for "try ..." hints:
/// lowercased, other characters turned into hyphens, trimmed to length and
/// padded (`-app`) when too short or reserved.
pub fn suggest_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(MAX_LEN);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        return "my-app".to_string();
    }
    if out.len() < MIN_LEN || RESERVED_NAMES.contains(&out.as_str()) {
        out.push_str("-app");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_names() {
        for n in ["hello", "my-app-2", "abc", &"a".repeat(63), "0ab"] {
            assert_eq!(check_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn says_which_rule_is_broken() {
        let cases = [
            ("Hello", "uppercase"),
            ("my_app", "contains '_'"),
            ("my app", "contains a space"),
            ("café", "contains 'é'"),
            ("-app", "hyphen"),
            ("app-", "hyphen"),
            ("ab", "is 2 characters long"),
            ("a", "is 1 character long"),
            ("", "is 0 characters long"),
            ("admin", "reserved"),
            ("www", "reserved"),
        ];
        for (name, fragment) in cases {
            let err = check_name(name).unwrap_err();
            assert!(err.contains(fragment), "{name}: {err}");
        }
        let long = "a".repeat(64);
        assert!(check_name(&long).unwrap_err().contains("64 characters"));
    }

    #[test]
    fn suggestions_follow_the_rule() {
        let cases = [
            ("Hello_World", "hello-world"),
            ("My  App!", "my-app"),
            ("admin", "admin-app"),
            ("QA", "qa-app"),
            ("--", "my-app"),
            ("-x-", "x-app"),
        ];
        for (name, want) in cases {
            assert_eq!(suggest_name(name), want);
            assert_eq!(check_name(want), Ok(()));
        }
        let long = suggest_name(&format!("{}-b", "a".repeat(62)));
        assert_eq!(long, "a".repeat(62));
        assert_eq!(check_name(&long), Ok(()));
    }
}
