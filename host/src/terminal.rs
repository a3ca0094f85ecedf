//! Text a plugin supplied, made safe to print on a terminal.
//!
//! A plugin controls many strings the host shows: its version and summary,
//! the kinds, names and reasons of planned changes, diagnostics, error
//! messages and log records. Printed raw, an escape sequence in any of them
//! can redraw the screen: a `- destroy` drawn as `+ create harmless`, the
//! consent screen's capability lines erased by the version string printed
//! below them, the window title changed, text reordered by a bidi override.
//! So every such string goes through this module before it reaches stdout or
//! stderr, and what would act on the terminal is shown as visible text
//! instead:
//!
//! - C0 controls (U+0000–U+001F, including ESC), DEL and C1 controls
//!   (U+0080–U+009F, which some terminals obey as CSI, OSC...) become
//!   `\n`, `\r`, `\t`, `\x1b`, `\x7f`, `\u{9b}`;
//! - Unicode bidi overrides, embeddings and isolates (U+202A–U+202E,
//!   U+2066–U+2069) and the invisible direction marks (U+200E, U+200F,
//!   U+061C), and the line/paragraph separators U+2028/U+2029, become
//!   `\u{202e}` and the like.
//!
//! Everything else, backslashes included, is left exactly as it was, so
//! ordinary text prints unchanged (see the property tests below).
//!
//! Which function to use:
//!
//! - [`line`] for a value shown on one line (a name, a version, a reason, a
//!   log message): newlines are escaped too, so a plugin cannot forge the
//!   next line of the output;
//! - [`text`] for a multi-line message assembled by the host (the error
//!   chain `main` prints), where the host's own line breaks must stay;
//! - [`clip`] for a value that must also stay short (the consent screen, so a
//!   long summary cannot scroll the capability lines out of sight);
//! - [`json`] for `--json` output: JSON already escapes C0 controls, and
//!   this escapes the rest as `\uXXXX`, which decodes to the same value.
//!
//! Where it is enforced: at print time, once per output path (plan text in
//! `engine::render`, plugin errors in `runtime::CallError`'s `Display` and
//! `render_plugin_error`, the consent/list/inspect screens in `install` and
//! `cli::plugin`, tracing records in `main`'s field formatter, and the
//! top-level error printer in `main` as a backstop). Not at the runtime
//! boundary: kinds and names identify resources in the state and plan files,
//! and rewriting them there would change what they refer to; escaping is a
//! matter of display.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` may act on a terminal (or reorder what is shown) instead of
/// being printed as itself.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if bad(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` for one line of output: every control character, newlines included,
/// shown escaped.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` for a multi-line message: like [`line`], but `\n` stays a line break.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// `s` as [`line`], cut to at most `max` characters of the escaped text
/// (ending in `…` when cut), for values that must not crowd out what is
/// printed around them.
pub fn clip(s: &str, max: usize) -> String {
    let escaped = line(s);
    if escaped.chars().count() <= max {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A value as one line of JSON with no character a terminal would act on:
/// `serde_json` escapes C0 controls; DEL, C1 controls and bidi controls (which
/// it leaves raw) are escaped here as `\uXXXX`. The result parses back to the
/// same value.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let raw = serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot serialize: {e}") }).to_string()
    });
    if !raw.chars().any(is_unsafe) {
        return raw;
    }
    // Such characters can only occur inside JSON strings, where `\uXXXX`
    // means the same character (all of them are in the BMP).
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_acts_on_a_terminal() {
        assert_eq!(line("a\x1b[2Kb"), "a\\x1b[2Kb");
        assert_eq!(line("x\ny\r\t"), "x\\ny\\r\\t");
        assert_eq!(text("x\ny\r"), "x\ny\\r");
        assert_eq!(line("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(line("\u{7f}"), "\\x7f");
        assert_eq!(line("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(line("\u{2066}"), "\\u{2066}");
        assert_eq!(
            line("\x1b]0;owned\x07"),
            "\\x1b]0;owned\\x07",
            "an OSC window title"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for s in ["plain", "naïve → café ✓ 日本", "back\\slash", "", "a  b"] {
            assert!(matches!(line(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(line(s), s);
        }
    }

    #[test]
    fn clips_long_values() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(clip("\x1b[2A", 100), "\\x1b[2A");
    }

    #[test]
    fn json_escapes_c1_and_bidi_losslessly() {
        let v = serde_json::json!({ "v": "a\u{9b}b\u{202e}c\x1bd\u{7f}" });
        let s = json(&v);
        assert!(!s.chars().any(is_unsafe), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }

    /// Strings mixing ordinary text with every kind of character escaped.
    fn hostile_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(String::from),
            (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap().to_string()),
            (0x7fu32..0xa0).prop_map(|c| char::from_u32(c).unwrap().to_string()),
            (0x2066u32..0x206a).prop_map(|c| char::from_u32(c).unwrap().to_string()),
            (0x202au32..0x202f).prop_map(|c| char::from_u32(c).unwrap().to_string()),
            Just("\x1b[2A\x1b[J".to_string()),
            Just("\x1b]0;title\x07".to_string()),
            "[ -~]{0,8}",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn line_output_has_no_control_characters(s in hostile_string()) {
            let out = line(&s);
            prop_assert!(!out.chars().any(is_unsafe), "{:?} -> {:?}", s, out);
            prop_assert!(!out.bytes().any(|b| b < 0x20 || b == 0x7f), "{:?}", out);
        }

        #[test]
        fn text_output_keeps_only_newlines(s in hostile_string()) {
            let out = text(&s);
            prop_assert!(!out.chars().any(|c| is_unsafe(c) && c != '\n'), "{:?}", out);
            prop_assert_eq!(out.matches('\n').count(), s.matches('\n').count());
        }

        #[test]
        fn printable_text_is_unchanged(s in any::<String>()) {
            let printable: String = s.chars().filter(|c| !is_unsafe(*c)).collect();
            prop_assert_eq!(line(&printable), printable.as_str());
            prop_assert_eq!(text(&printable), printable.as_str());
        }

        #[test]
        fn json_is_safe_and_lossless(s in hostile_string()) {
            let v = serde_json::json!({ "s": s });
            let out = json(&v);
            prop_assert!(!out.chars().any(is_unsafe), "{:?}", out);
            prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), v);
        }

        #[test]
        fn clip_is_bounded_and_safe(s in hostile_string(), max in 1usize..40) {
            let out = clip(&s, max);
            prop_assert!(out.chars().count() <= max);
            prop_assert!(!out.chars().any(is_unsafe));
        }
    }
}
