//! Bounding free text before it is stored, so one runaway error message or
//! plugin log cannot bloat the state database without limit. The
//! [`StateStore`](super::StateStore) bounds every text it is given before
//! either backend sees it.

/// Longest release detail, phase detail or deploy summary kept.
pub(crate) const MAX_DETAIL: usize = 4096;
/// Longest command name kept in the audit trail.
pub(crate) const MAX_COMMAND: usize = 64;
/// Longest actor kept in the audit trail.
pub(crate) const MAX_ACTOR: usize = 256;

/// `text` cut to at most `max` bytes (on a character boundary), with a note of
/// how much was dropped.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [truncated {} bytes]", &text[..cut], text.len() - cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched_and_long_text_is_cut_on_a_char_boundary() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdef", 3), "abc… [truncated 3 bytes]");
        // 'é' is two bytes; cutting at 1 would split it.
        assert_eq!(bounded("éé", 3), "é… [truncated 2 bytes]");
    }
}
