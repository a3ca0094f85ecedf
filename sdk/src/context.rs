//! Reading the call's [`Context`]: typed settings and resolved endpoints.

use serde::de::DeserializeOwned;

use crate::{Context, Diagnostic, PluginError, Severity};

/// Typed access to what the host passes with every call.
pub trait ContextExt {
    /// The provider's settings deserialized into `T`; a mismatch becomes an
    /// `invalid-config` error that names the field.
    fn settings<T: DeserializeOwned>(&self) -> Result<T, PluginError>;

    /// The effective base URL of a declared endpoint (after the user's
    /// override), without a trailing slash.
    fn endpoint(&self, name: &str) -> Result<String, PluginError>;
}

impl ContextExt for Context {
    fn settings<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(&self.settings).map_err(|e| {
            PluginError::InvalidConfig(vec![Diagnostic {
                severity: Severity::Error,
                message: format!("invalid provider settings: {e}"),
                field: None,
                hint: None,
            }])
        })
    }

    fn endpoint(&self, name: &str) -> Result<String, PluginError> {
        self.endpoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, url)| url.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                PluginError::Other(format!(
                    "endpoint '{name}' was not declared in describe(); the host only resolves declared endpoints"
                ))
            })
    }
}
