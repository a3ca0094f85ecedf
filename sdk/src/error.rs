//! Building [`PluginError`]s that tell the user what to do.

use crate::{Diagnostic, PluginError, Severity};

/// Result of a provider step.
pub type PluginResult<T> = Result<T, PluginError>;

/// An `invalid-config` error about one setting, with the fix.
pub fn invalid_setting(
    field: &str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> PluginError {
    PluginError::InvalidConfig(vec![Diagnostic {
        severity: Severity::Error,
        message: message.into(),
        field: Some(field.to_string()),
        hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
    }])
}

impl From<crate::bindings::soar::plugin::http::Error> for PluginError {
    fn from(e: crate::bindings::soar::plugin::http::Error) -> Self {
        use crate::bindings::soar::plugin::http::Error as E;
        PluginError::Transport(match e {
            E::Denied(m) => format!("denied by the host: {m}"),
            E::Timeout(m) => format!("timed out: {m}"),
            E::TooLarge(n) => format!("response larger than the host's cap of {n} bytes"),
            E::Failed(m) => format!("request failed: {m}"),
            E::Invalid(m) => format!("invalid request: {m}"),
        })
    }
}
