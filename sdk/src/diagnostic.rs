//! Building [`Diagnostic`]s: what is wrong, in which setting, and the fix.
//!
//! ```ignore
//! use soar_sdk::diagnostic::FieldPath;
//!
//! let field = FieldPath::new("regions").index(2).key("count");
//! let d = Diagnostic::error(format!("`{field}` must be a whole number"))
//!     .at(&field)
//!     .hint("count: 2");
//! ```
//!
//! The host prints the field beside the message and the hint under it, and
//! `soar validate --json` hands all three to editors, so a diagnostic that
//! names its field and says what to write is one the user can act on
//! without reading the plugin's documentation.

use std::fmt;

use crate::{Diagnostic, Severity};

impl Diagnostic {
    /// A problem that stops the operation.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    /// A problem worth knowing about that does not stop the operation.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    /// A diagnostic of any severity, with no field and no hint yet.
    pub fn new(severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            field: None,
            hint: None,
        }
    }

    /// The setting the problem is about, as a path into the provider's
    /// settings: `regions`, `regions[0].count` (see [`FieldPath`]).
    #[must_use]
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// What to write instead; an empty hint is left out.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into()).filter(|h| !h.is_empty());
        self
    }

    /// Whether this diagnostic stops the operation.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A path to a setting, written the way users see their settings:
/// `.` between keys, `[i]` for list items (`deployment.files[2].mode`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The path of `key` inside this one.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            return Self::new(key);
        }
        Self(format!("{}.{key}", self.0))
    }

    /// The path of item `index` of the list at this path.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The path as written in messages (`deployment.files[2].mode`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FieldPath> for String {
    fn from(path: FieldPath) -> Self {
        path.0
    }
}

impl From<&FieldPath> for String {
    fn from(path: &FieldPath) -> Self {
        path.0.clone()
    }
}

/// The hint for an unknown name: the known name it is probably a typo of
/// (`did you mean `regions`?`), else the whole list, introduced by `label`
/// (`known settings: regions, count, ...`).
pub fn did_you_mean(word: &str, known: &[&str], label: &str) -> String {
    match soar_text::closest(word, known) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("{label}: {}", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_the_settings() {
        let files = FieldPath::new("deployment").key("files");
        assert_eq!(
            files.index(2).key("mode").as_str(),
            "deployment.files[2].mode"
        );
        assert_eq!(FieldPath::default().key("regions").as_str(), "regions");
    }

    #[test]
    fn builds_every_part() {
        let d = Diagnostic::warning("both set")
            .at(FieldPath::new("public_key"))
            .hint("remove one");
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.field.as_deref(), Some("public_key"));
        assert_eq!(d.hint.as_deref(), Some("remove one"));
        assert!(!d.is_error());
        assert_eq!(Diagnostic::error("x").hint("").hint, None);
    }

    #[test]
    fn suggests_or_lists() {
        let known = ["regions", "count"];
        assert_eq!(
            did_you_mean("regoins", &known, "known settings"),
            "did you mean `regions`?"
        );
        assert_eq!(
            did_you_mean("zone", &known, "known settings"),
            "known settings: regions, count"
        );
    }
}
