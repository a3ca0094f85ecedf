//! Finding secrets in bytes in every form a server or a log could carry them,
//! and replacing them.
//!
//! A secret that an API echoes rarely comes back byte for byte: JSON escapes
//! its quotes and (in some serializers) every non-ASCII character, a query
//! string percent-encodes it, a Basic header or a JSON upload base64-encodes
//! it somewhere in the middle of a longer value. A [`Redactor`] searches for
//! all of those forms at once (one Aho-Corasick pass, leftmost-longest) and
//! replaces each occurrence with `[redacted]`.
//!
//! Which secrets a [`Redactor`] holds is the caller's decision, and it is a
//! security decision: see `HttpBroker` for why a response is scrubbed only of
//! the secrets its origin has seen.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;

use super::Secret;

/// What a scrubbed secret becomes.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: they would match by
/// coincidence everywhere (and are no secret worth the name).
pub const MIN_SECRET_LEN: usize = 4;

/// Encoded forms shorter than this are not searched for (the fully
/// determined part of a base64 form of a short secret can be 3 characters).
const MIN_FORM_LEN: usize = 6;

/// Every form of `secret` that [`Redactor`] recognises, deduplicated, longest
/// first: raw, JSON-escaped (serde's, ASCII-only with lower- and upper-case
/// `\u` escapes, with `\/`), percent-encoded (every reserved byte, upper and
/// lower hex, `+` for spaces), hex, and base64 (standard and URL-safe, at each
/// of the three byte alignments it can have inside a longer encoded value).
pub fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    if secret.len() < MIN_SECRET_LEN {
        return out;
    }
    let mut push = |f: Vec<u8>| {
        if f.len() >= MIN_FORM_LEN.min(secret.len()) && !out.contains(&f) {
            out.push(f);
        }
    };
    push(secret.as_bytes().to_vec());
    for json in json_forms(secret) {
        push(json.clone().into_bytes());
        if json.contains('/') {
            push(json.replace('/', "\\/").into_bytes());
        }
    }
    for upper in [true, false] {
        let pct = percent(secret, upper, false);
        push(pct.clone().into_bytes());
        push(percent(secret, upper, true).into_bytes());
        let hex = if upper {
            hex::encode_upper(secret)
        } else {
            hex::encode(secret)
        };
        push(hex.into_bytes());
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let core = base64_core(secret.as_bytes(), shift, engine);
            if core.len() >= MIN_FORM_LEN.max(8) {
                push(core.into_bytes());
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out
}

/// JSON string contents (no quotes) as different serializers write them.
fn json_forms(secret: &str) -> Vec<String> {
    let serde = serde_json::to_string(secret).unwrap_or_default();
    let serde = serde[1..serde.len().saturating_sub(1).max(1)].to_string();
    let mut ascii_lower = String::new();
    let mut ascii_upper = String::new();
    for c in serde.chars() {
        if c.is_ascii() {
            ascii_lower.push(c);
            ascii_upper.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            ascii_lower.push_str(&format!("\\u{u:04x}"));
            ascii_upper.push_str(&format!("\\u{u:04X}"));
        }
    }
    vec![serde, ascii_lower, ascii_upper]
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set.
fn percent(secret: &str, upper: bool, plus_for_space: bool) -> String {
    let mut out = String::new();
    for &b in secret.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if b == b' ' && plus_for_space {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The base64 characters that depend on `secret`'s bytes alone when it
/// starts `shift` bytes into an encoded value: whatever precedes or follows
/// it, an encoding of a value containing the secret at that alignment
/// contains this string.
fn base64_core(secret: &[u8], shift: usize, engine: &base64::engine::GeneralPurpose) -> String {
    let mut buf = vec![0u8; shift];
    buf.extend_from_slice(secret);
    let encoded = engine.encode(&buf);
    // Character i covers bits [6i, 6i + 6); the secret covers
    // [8 shift, 8 (shift + n)).
    let start_bit = 8 * shift;
    let end_bit = 8 * (shift + secret.len());
    encoded
        .char_indices()
        .filter(|(i, _)| 6 * i >= start_bit && 6 * i + 6 <= end_bit)
        .map(|(_, c)| c)
        .collect()
}

/// A compiled search for the forms of a set of secrets.
pub struct Redactor {
    search: Option<AhoCorasick>,
}

impl Redactor {
    /// The redactor for `secrets`, built once per distinct set and kept:
    /// the broker scrubs every answer and journal line with one of a few
    /// sets, and compiling the search per call would cost more than the
    /// search. At most 32 sets are kept.
    pub fn cached(secrets: &[Secret]) -> Arc<Redactor> {
        type Entry = (Vec<Secret>, Arc<Redactor>);
        static CACHE: Mutex<Option<HashMap<u64, Entry>>> = Mutex::new(None);
        let mut h = std::hash::DefaultHasher::new();
        for s in secrets {
            s.expose().hash(&mut h);
        }
        let key = h.finish();
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let map = cache.get_or_insert_with(HashMap::new);
        // The values are compared too: a hash collision must not hand out
        // another set's redactor.
        if let Some((set, r)) = map.get(&key)
            && set.as_slice() == secrets
        {
            return r.clone();
        }
        if map.len() >= 32 {
            map.clear();
        }
        let r = Arc::new(Redactor::new(secrets));
        map.insert(key, (secrets.to_vec(), r.clone()));
        r
    }

    /// A redactor for `secrets` (every form of each).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for s in secrets {
            for f in forms(s.expose()) {
                if !patterns.contains(&f) {
                    patterns.push(f);
                }
            }
        }
        let search = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("literal patterns always compile")
        });
        Self { search }
    }

    /// Whether `bytes` holds any form of any secret.
    pub fn finds(&self, bytes: &[u8]) -> bool {
        self.search.as_ref().is_some_and(|s| s.is_match(bytes))
    }

    /// `bytes` with every form of every secret replaced; `None` when there
    /// was none (nothing is copied then).
    pub fn replaced(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let search = self.search.as_ref()?;
        if !search.is_match(bytes) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len());
        search.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
            dst.extend_from_slice(REDACTED.as_bytes());
            true
        });
        Some(out)
    }

    /// Scrub `bytes` in place.
    pub fn scrub(&self, bytes: &mut Vec<u8>) {
        if let Some(out) = self.replaced(bytes) {
            *bytes = out;
        }
    }

    /// Scrub text in place. A match may end inside a multi-byte character
    /// (a form's first or last byte can be any byte), so the result is
    /// re-validated, lossily.
    pub fn scrub_string(&self, text: &mut String) {
        if let Some(out) = self.replaced(text.as_bytes()) {
            *text = match String::from_utf8(out) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scrubbed(text: &str, secret: &str) -> String {
        let mut t = text.to_string();
        Redactor::new(&[Secret::new(secret)]).scrub_string(&mut t);
        t
    }

    #[test]
    fn json_escaped_forms_are_found() {
        let secret = "p\u{e4}ss\"w/rd-1";
        let serde = serde_json::to_string(&json_wrap(secret)).unwrap();
        assert!(!scrubbed(&serde, secret).contains("ss\\\"w"), "{serde}");
        let ascii = r#"{"v":"p\u00e4ss\"w\/rd-1"}"#;
        assert_eq!(scrubbed(ascii, secret), r#"{"v":"[redacted]"}"#);
        let upper = r#"{"v":"p\u00E4ss\"w/rd-1"}"#;
        assert_eq!(scrubbed(upper, secret), r#"{"v":"[redacted]"}"#);
    }

    fn json_wrap(s: &str) -> serde_json::Value {
        serde_json::json!({ "echo": s })
    }

    #[test]
    fn percent_and_hex_forms_are_found() {
        let secret = "a b/c?d=e&f";
        assert_eq!(scrubbed("q=a%20b%2Fc%3Fd%3De%26f", secret), "q=[redacted]");
        assert_eq!(scrubbed("q=a+b%2fc%3fd%3de%26f", secret), "q=[redacted]");
        assert_eq!(
            scrubbed(&format!("x{}", hex::encode(secret)), secret),
            "x[redacted]"
        );
    }

    #[test]
    fn base64_inside_a_longer_value_is_found() {
        let secret = "s3cr3t-service-value";
        for prefix in ["", "u:", "us:", "user:"] {
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                let encoded = engine.encode(format!("{prefix}{secret}!tail"));
                let out = scrubbed(&encoded, secret);
                assert!(out.contains(REDACTED), "{prefix:?} {encoded} -> {out}");
            }
        }
    }

    #[test]
    fn short_secrets_are_not_searched() {
        assert!(forms("abc").is_empty());
        assert_eq!(scrubbed("abc abc", "abc"), "abc abc");
    }

    proptest! {
        /// Whatever the secret and whatever surrounds it, every recognised
        /// encoding of it is gone after scrubbing.
        #[test]
        fn no_encoding_survives(
            secret in "[ -~\u{a0}-\u{17f}]{8,24}",
            before in "[ -~]{0,12}",
            after in "[ -~]{0,12}",
        ) {
            let r = Redactor::new(&[Secret::new(&secret)]);
            let b64 = base64::engine::general_purpose::STANDARD;
            let encodings = [
                secret.clone(),
                serde_json::to_string(&secret).unwrap(),
                percent(&secret, true, false),
                percent(&secret, false, true),
                hex::encode(&secret),
                b64.encode(format!("{before}{secret}{after}")),
            ];
            for enc in encodings {
                let text = format!("{before}{enc}{after}");
                let mut out = text.clone().into_bytes();
                r.scrub(&mut out);
                let out = String::from_utf8_lossy(&out);
                prop_assert!(out.contains(REDACTED), "{text} -> {out}");
                prop_assert!(!out.contains(secret.as_str()), "{text} -> {out}");
            }
        }
    }
}
