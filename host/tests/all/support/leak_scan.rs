//! The scan behind the secret tests: a secret must be absent in every form
//! the host's redaction recognises, not only byte for byte.

use soar::credentials::redact;
use soar_tests::files::contains;

/// Panics when `bytes` (from `place`) hold any recognised form of any of
/// `secrets`, naming the place and the form (never the secret itself).
pub fn assert_no_secret(place: &str, bytes: &[u8], secrets: &[&str]) {
    for (i, secret) in secrets.iter().enumerate() {
        for form in redact::forms(secret) {
            assert!(
                !contains(bytes, &form),
                "{place} holds secret #{i} in one of its encoded forms ({} bytes)",
                form.len()
            );
        }
    }
}
