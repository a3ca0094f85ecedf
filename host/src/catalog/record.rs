//! The plugins directory as the catalog reads it and `soar plugin install`
//! writes it: which directory names are plugins, and the record each
//! install leaves beside its component.
//!
//! Here, below `install`, because discovery needs both to decide what is
//! installed; `install` only writes what this module defines.

use std::path::Path;

/// File next to `plugin.wasm` recording where it came from.
pub const RECORD_FILE: &str = "install.json";

/// What `install.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InstallRecord {
    /// The plugin's name as it describes itself; also its directory's name.
    pub name: String,
    /// The version the plugin described at install time.
    pub version: String,
    /// Its one-line summary, for `plugin list` (empty in older records).
    #[serde(default)]
    pub summary: String,
    /// `soar:plugin` version it implements.
    pub wit: String,
    /// sha256 of `plugin.wasm` as installed, lowercase hex.
    pub sha256: String,
    /// What the user gave: the manifest or the component (URL or path).
    pub source: String,
    /// Where the component itself came from, when `source` is a manifest.
    #[serde(default)]
    pub component: Option<String>,
    /// When it was installed, in Unix milliseconds.
    pub installed_at_ms: u64,
    /// Installed with `--override-bundled`: it replaces the bundled plugin of
    /// the same name. Without it, the catalog ignores a plugin directory
    /// named like a bundled plugin.
    #[serde(default)]
    pub overrides_bundled: bool,
}

impl InstallRecord {
    /// The record in a plugin's directory, if any.
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Plugin names become directory names: `[a-z0-9-]`, 1-63, no leading or
/// trailing hyphen.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
