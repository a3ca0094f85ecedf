//! The plugin manifest: a small JSON or TOML document that names a
//! component, pins its digest and states the contract range it implements.
//!
//! ```toml
//! name = "vmapi"
//! version = "0.1.0"
//! description = "VMs on the VM API"
//! url = "vmapi-0.1.0.wasm"          # absolute, or relative to the manifest
//! sha256 = "3f1c..."                # of the component
//! wit = "^0.1"                      # soar:plugin versions it implements (semver range)
//! mirrors = ["https://mirror.example.com/vmapi-0.1.0.wasm"]
//! ```

use crate::contract::version as contract;

/// A parsed manifest.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name; must match the name the component describes.
    pub name: String,
    /// The plugin's version, as shown and recorded in `soar.lock`.
    pub version: String,
    /// One line for humans; optional.
    #[serde(default)]
    pub description: String,
    /// The component's URL (or a path relative to the manifest).
    pub url: String,
    /// sha256 of the component, lowercase hex (`sha256:` prefix allowed).
    pub sha256: String,
    /// Semver range of `soar:plugin` versions the component implements.
    pub wit: String,
    /// Further places with the same bytes, tried in order when `url` fails.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// Largest manifest read (it is a few lines).
pub const MAX_BYTES: usize = 64 << 10;

impl Manifest {
    /// Parse JSON (starting with `{`) or TOML.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() > MAX_BYTES {
            anyhow::bail!("too large for a plugin manifest ({} bytes)", bytes.len());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!(
                "neither a WebAssembly component (no \\0asm header) nor a text manifest"
            )
        })?;
        let mut m: Manifest = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("not a valid JSON plugin manifest: {e}"))?
        } else {
            toml::from_str(text)
                .map_err(|e| anyhow::anyhow!("neither a WebAssembly component (no \\0asm header) nor a valid TOML plugin manifest: {e}"))?
        };
        m.sha256 = normalize_sha256(&m.sha256)
            .map_err(|e| anyhow::anyhow!("manifest field `sha256`: {e}"))?;
        if m.url.trim().is_empty() {
            anyhow::bail!("manifest field `url` is empty");
        }
        Ok(m)
    }

    /// Check `wit` against the contract versions this host supports, before
    /// anything is downloaded.
    pub fn check_wit(&self) -> anyhow::Result<()> {
        let req = semver::VersionReq::parse(&self.wit).map_err(|e| {
            anyhow::anyhow!(
                "manifest field `wit` = {:?} is not a semver range: {e}",
                self.wit
            )
        })?;
        let ok = contract::SUPPORTED
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .any(|v| req.matches(&v));
        if !ok {
            anyhow::bail!(
                "plugin '{}' {} implements {}@{}, but this soar supports {}; look for a release of the plugin built for a supported version, or upgrade soar",
                self.name,
                self.version,
                contract::PACKAGE,
                self.wit,
                supported_range()
            );
        }
        Ok(())
    }
}

/// `soar:plugin@0.1.x` (and any others), for messages.
pub fn supported_range() -> String {
    contract::SUPPORTED
        .iter()
        .map(|v| {
            let mut p = v.split('.');
            match (p.next(), p.next()) {
                (Some("0"), Some(minor)) => format!("{}@0.{minor}.x", contract::PACKAGE),
                (Some(major), _) => format!("{}@{major}.x", contract::PACKAGE),
                _ => format!("{}@{v}", contract::PACKAGE),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sha256:ABC...` or `abc...` → `abc...` (64 lowercase hex digits).
pub fn normalize_sha256(s: &str) -> Result<String, String> {
    let h = s.trim();
    let h = h.strip_prefix("sha256:").unwrap_or(h).to_ascii_lowercase();
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h)
    } else {
        Err(format!(
            "{s:?} is not a sha256 digest (64 hex digits, optionally prefixed with `sha256:`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "3f1c000000000000000000000000000000000000000000000000000000000abc";

    #[test]
    fn json_and_toml() {
        let j = format!(
            r#"{{"name":"vm","version":"1.0.0","url":"vm.wasm","sha256":"sha256:{}","wit":"^0.1"}}"#,
            D.to_uppercase()
        );
        let m = Manifest::parse(j.as_bytes()).unwrap();
        assert_eq!(m.sha256, D);
        m.check_wit().unwrap();
        let t = format!(
            "name = \"vm\"\nversion = \"1.0.0\"\nurl = \"vm.wasm\"\nsha256 = \"{D}\"\nwit = \">=9.0.0\"\n"
        );
        let m = Manifest::parse(t.as_bytes()).unwrap();
        let e = m.check_wit().unwrap_err().to_string();
        assert!(e.contains("soar:plugin@0.1.x"), "{e}");
        assert!(Manifest::parse(b"name = 1").is_err());
    }
}
