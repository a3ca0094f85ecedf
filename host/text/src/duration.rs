//! Durations as people write them in a config file: `"250ms"`, `"30s"`,
//! `"10m"`, `"1h"`, or a bare integer number of seconds.
//!
//! Deliberately small: whole numbers and one unit. Fractions (`"1.5s"`) and
//! compound forms (`"1h30m"`) are refused rather than guessed at; `"90m"`
//! says the same thing unambiguously. A bare integer in the file (`30`, not
//! `"30"`) is seconds, but that is the caller's business: this function
//! reads text, and text without a unit is refused with the fix, because
//! `"30"` is as likely to mean milliseconds as seconds.

use std::time::Duration;

/// The accepted forms, for messages that explain a refused value.
pub const DURATION_FORMS: &str = r#""250ms", "30s", "10m", "1h" or an integer number of seconds"#;

/// Parse a duration string; the error explains the accepted forms so the
/// user can fix the value without looking anything up.
///
/// Whitespace around the value and between number and unit is allowed
/// (`" 5 s "`); units are `ms`, `s`, `m` and `h`, lower case.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(soar_text::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(soar_text::parse_duration("30").unwrap_err().contains("no unit"));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let bad = || format!("'{text}' is not a duration; write {DURATION_FORMS}");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "'{text}' has no unit; write \"{n}s\" (or the integer {n} without quotes) for seconds"
            ));
        }
        _ => return Err(bad()),
    };
    n.checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 5 s "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else_naming_the_forms() {
        for bad in ["", "s", "1.5s", "30 seconds", "10d", "-1s", "abc", "1h30m"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"30s\""), "{bad}: {err}");
        }
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("99999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
    }
}
