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

/// A broker's refusal or failure passes on unchanged: the host words it for
/// the user from its reason, and a plugin that wants to branch does so on
/// [`TransportError::reason`](crate::TransportError), never on the text.
impl From<crate::TransportError> for PluginError {
    fn from(e: crate::TransportError) -> Self {
        PluginError::Transport(e)
    }
}
