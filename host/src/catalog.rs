//! Which plugins exist: the first-party ones embedded at build time, and
//! those the user installed. An installed plugin replaces a bundled one of
//! the same name only when it was installed with `--override-bundled` (its
//! `install.json` says so); a directory that merely has the name is ignored,
//! with a warning. Projects pin bundled plugins in `soar.lock` like installed
//! ones (see [`crate::install::lock::check`]), so such a replacement is
//! refused by every project that used the bundled one until it is re-pinned.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// Where a plugin's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Source {
    /// Built from `plugins/` into the soar binary.
    Bundled,
    /// Installed by the user into the data directory.
    Installed { path: PathBuf },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bundled => f.write_str("bundled"),
            Source::Installed { .. } => f.write_str("installed"),
        }
    }
}

/// A plugin known by name, not yet loaded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub source: Source,
    pub bytes: Arc<[u8]>,
    /// sha256 of `bytes`, lowercase hex.
    pub digest: String,
}

/// All plugins available to this process.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// Bundled plugins, then installed ones from `plugins_dir` (each as
    /// `<name>/plugin.wasm`) overriding bundled ones of the same name.
    pub fn discover(plugins_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut entries: Vec<Entry> = bundled::BUNDLED
            .iter()
            .map(|(name, bytes)| Entry {
                name: name.to_string(),
                source: Source::Bundled,
                bytes: Arc::from(*bytes),
                digest: hex::encode(Sha256::digest(bytes)),
            })
            .collect();
        if let Some(dir) = plugins_dir.filter(|d| d.is_dir()) {
            let mut dirs: Vec<_> = std::fs::read_dir(&dir)?.filter_map(Result::ok).collect();
            dirs.sort_by_key(|d| d.file_name());
            for d in dirs {
                let name = d.file_name().to_string_lossy().into_owned();
                // `.store`, `.staging-*` (an install in progress or killed)
                // and anything that is not a plugin name are not plugins.
                if !crate::install::valid_name(&name) {
                    continue;
                }
                // `<name>` is a symlink into `.store/` (see `install`), or a
                // plain directory made by hand.
                let path = d.path().join("plugin.wasm");
                if !path.is_file() {
                    continue;
                }
                if Self::is_bundled(&name)
                    && !crate::install::InstallRecord::read(&d.path())
                        .is_some_and(|r| r.overrides_bundled)
                {
                    tracing::warn!(
                        "ignoring {}: it would replace the bundled plugin '{name}' but was not installed with `soar plugin install --override-bundled`",
                        d.path().display()
                    );
                    continue;
                }
                let bytes = std::fs::read(&path)?;
                entries.retain(|e| e.name != name);
                entries.push(Entry {
                    name,
                    digest: hex::encode(Sha256::digest(&bytes)),
                    bytes: bytes.into(),
                    source: Source::Installed { path },
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { entries })
    }

    /// The default installed-plugins directory: `$SOAR_DATA_DIR/plugins`, else
    /// the user data dir.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SOAR_DATA_DIR")
            .map(|d| PathBuf::from(d).join("plugins"))
            .or_else(|| {
                directories::ProjectDirs::from("dev", "soar", "soar")
                    .map(|d| d.data_dir().join("plugins"))
            })
    }

    /// Whether a first-party plugin called `name` is built into this binary.
    pub fn is_bundled(name: &str) -> bool {
        bundled::BUNDLED.iter().any(|(n, _)| *n == name)
    }

    /// Every bundled plugin (also those an installed one replaces), then
    /// every installed entry: what other providers declare, for the install
    /// warnings.
    pub fn everything(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = bundled::BUNDLED
            .iter()
            .filter_map(|(name, _)| Self::bundled(name))
            .collect();
        out.extend(
            self.entries
                .iter()
                .filter(|e| e.source != Source::Bundled)
                .cloned(),
        );
        out
    }

    /// The bundled plugin called `name`, whether or not an installed one
    /// replaces it.
    pub fn bundled(name: &str) -> Option<Entry> {
        bundled::BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(name, bytes)| Entry {
                name: name.to_string(),
                source: Source::Bundled,
                bytes: Arc::from(*bytes),
                digest: hex::encode(Sha256::digest(bytes)),
            })
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`, with the list of known names otherwise.
    pub fn get(&self, name: &str) -> anyhow::Result<&Entry> {
        self.entries.iter().find(|e| e.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
            anyhow::anyhow!("no plugin named '{name}' (available: {}); install one with `soar plugin install <URL>`", known.join(", "))
        })
    }
}
