//! What a client reads of the local soar.toml before it talks to a server:
//! the project's name and its environments, read leniently, only to name
//! things on the server (the server validates the project itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The local soar.toml's project name and environments (name → provider),
/// read leniently: only to name things on the server.
#[derive(Debug, Default)]
pub struct LocalNames {
    /// `[app] name`, if the file has one.
    pub app: Option<String>,
    /// Each `[env.NAME]` with its `provider` (empty when it names none).
    pub envs: BTreeMap<String, String>,
}

impl LocalNames {
    /// Read `config` (default: ./soar.toml); a missing default file is no
    /// names at all, a missing named one an error.
    pub fn read(config: Option<&Path>) -> anyhow::Result<Self> {
        let path = config.map_or_else(
            || PathBuf::from(crate::config::FILE_NAME),
            Path::to_path_buf,
        );
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.is_none() => {
                return Ok(Self::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let app = table
            .get("app")
            .and_then(|a| a.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let envs = table
            .get("env")
            .and_then(|e| e.as_table())
            .into_iter()
            .flatten()
            .map(|(name, env)| {
                let provider = env.get("provider").and_then(|p| p.as_str()).unwrap_or("");
                (name.clone(), provider.to_string())
            })
            .collect();
        Ok(Self { app, envs })
    }

    /// `-e ENV`, else the only environment; `None` when neither names one.
    pub fn only_env(&self, env: Option<&str>) -> Option<String> {
        env.map(str::to_string).or_else(|| {
            let mut names = self.envs.keys();
            match (names.next(), names.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        })
    }

    /// The provider to name in a drawn plan.
    pub fn provider(&self, env: &str) -> &str {
        self.envs
            .get(env)
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .unwrap_or("on the server")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_soar_toml_names_the_project_and_its_only_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soar.toml");
        std::fs::write(
            &path,
            "[app]\nname = \"shop\"\n[env.prod]\nprovider = \"local\"\n",
        )
        .unwrap();
        let local = LocalNames::read(Some(&path)).unwrap();
        assert_eq!(local.app.as_deref(), Some("shop"));
        assert_eq!(local.only_env(None).as_deref(), Some("prod"));
        assert_eq!(local.only_env(Some("dev")).as_deref(), Some("dev"));
        assert_eq!(local.provider("prod"), "local");
        assert!(LocalNames::read(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
