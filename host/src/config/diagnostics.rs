//! What a broken `soar.toml` reports: each problem as `file:line:col`, what
//! is wrong and what to write instead, all of them at once so one edit pass
//! fixes the file.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::spans::line_col;

/// One problem in a configuration file.
///
/// Positions are 1-based so editors and terminals can jump to them; a
/// `line` of 0 means the problem concerns the file as a whole (it could not
/// be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it, so the message shows the path they typed.
    pub file: PathBuf,
    /// 1-based line, or 0 for the whole file.
    pub line: usize,
    /// 1-based column in characters.
    pub col: usize,
    /// What is wrong. Never contains a secret value.
    pub message: String,
    /// What to write instead, when there is a concrete fix to suggest.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            for (i, line) in hint.lines().enumerate() {
                if i == 0 {
                    write!(f, "\n  hint: {line}")?;
                } else {
                    write!(f, "\n        {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Every problem found in a configuration file, in file order.
///
/// A single error type carrying all diagnostics lets the CLI print the lot
/// and lets tests assert on each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Diagnostic>);

impl ConfigError {
    /// The diagnostics, for callers that render or filter them themselves.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects diagnostics while a document is checked, turning byte offsets
/// into positions.
pub(crate) struct Report<'t> {
    text: &'t str,
    file: PathBuf,
    diagnostics: Vec<Diagnostic>,
    /// Offsets of values already reported as pasted secrets: any further
    /// complaint about the same value would only distract from (or, worse,
    /// describe) the secret.
    secrets: BTreeSet<usize>,
}

impl<'t> Report<'t> {
    pub(crate) fn new(text: &'t str, file: &Path) -> Self {
        Self {
            text,
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
            secrets: BTreeSet::new(),
        }
    }

    /// The file as given, for messages that mention it.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The 1-based line of byte offset `at`.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        line_col(self.text, at).0
    }

    /// Record a problem at byte offset `at`.
    pub(crate) fn error(&mut self, at: usize, message: impl Into<String>, hint: Option<String>) {
        if self.secrets.contains(&at) {
            return;
        }
        self.push(at, message.into(), hint);
    }

    /// Record a pasted secret at byte offset `at`; it supersedes every other
    /// complaint about the same value.
    pub(crate) fn secret(&mut self, at: usize, message: impl Into<String>, hint: Option<String>) {
        if self.secrets.insert(at) {
            self.push(at, message.into(), hint);
        }
    }

    fn push(&mut self, at: usize, message: String, hint: Option<String>) {
        let (line, col) = line_col(self.text, at);
        let d = Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message,
            hint,
        };
        // The same defaults are merged into every environment, so the same
        // problem can be found more than once.
        if !self.diagnostics.contains(&d) {
            self.diagnostics.push(d);
        }
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The diagnostics in file order (stable for equal positions).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|d| (d.line, d.col));
        self.diagnostics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, hint: Option<&str>) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("soar.toml"),
            line,
            col: 7,
            message: "something is wrong".into(),
            hint: hint.map(str::to_string),
        }
    }

    #[test]
    fn renders_position_message_and_hint() {
        assert_eq!(
            diag(12, Some("write this\nor that")).to_string(),
            "soar.toml:12:7: something is wrong\n  hint: write this\n        or that"
        );
        assert_eq!(
            diag(3, None).to_string(),
            "soar.toml:3:7: something is wrong"
        );
        assert_eq!(diag(0, None).to_string(), "soar.toml: something is wrong");
    }

    #[test]
    fn error_lists_every_diagnostic() {
        let e = ConfigError(vec![diag(1, None), diag(2, Some("h"))]);
        assert_eq!(
            e.to_string(),
            "soar.toml:1:7: something is wrong\n\nsoar.toml:2:7: something is wrong\n  hint: h"
        );
    }

    #[test]
    fn report_sorts_dedupes_and_lets_secrets_win() {
        let text = "a = 1\nb = 2\n";
        let mut r = Report::new(text, Path::new("soar.toml"));
        r.error(6, "second", None);
        r.error(0, "first", None);
        r.error(6, "second", None);
        r.secret(10, "secret", None);
        r.error(10, "type", None);
        let d = r.finish();
        let got: Vec<(usize, usize, &str)> = d
            .iter()
            .map(|d| (d.line, d.col, d.message.as_str()))
            .collect();
        assert_eq!(got, [(1, 1, "first"), (2, 1, "second"), (2, 5, "secret")]);
    }
}
