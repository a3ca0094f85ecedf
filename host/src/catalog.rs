//! Which plugins exist: the first-party ones embedded at build time, and
//! those the user installed. An installed plugin replaces a bundled one of
//! the same name only when it was installed with `--override-bundled` (its
//! `install.json` says so); a directory that merely has the name is ignored,
//! with a warning. Projects pin bundled plugins in `soar.lock` like installed
//! ones (checked by `soar.lock`'s pins at load), so such a replacement is
//! refused by every project that used the bundled one until it is re-pinned.

mod record;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use self::record::{InstallRecord, RECORD_FILE, valid_name};

/// `BUNDLED` (name, component bytes) and `BUNDLED_SHA256` (name, digest),
/// written by `host/build.rs`. The digests are computed there so that no
/// command hashes two megabytes of plugins it may not even load.
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
    Installed {
        /// The installed `plugin.wasm`.
        path: PathBuf,
    },
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
    /// The name projects use for it (`provider = "..."`).
    pub name: String,
    /// Bundled or installed; it decides how `soar.lock` pins it.
    pub source: Source,
    /// The component, read once and shared with every load. A bundled
    /// one's are the binary's own, not a copy: a command needs one plugin,
    /// and the catalog lists all of them.
    pub bytes: bytes::Bytes,
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
        let mut entries: Vec<Entry> = bundled_entries().collect();
        if let Some(dir) = plugins_dir.filter(|d| d.is_dir()) {
            let mut dirs: Vec<_> = std::fs::read_dir(&dir)?.filter_map(Result::ok).collect();
            dirs.sort_by_key(|d| d.file_name());
            for d in dirs {
                let name = d.file_name().to_string_lossy().into_owned();
                // `.store`, `.staging-*` (an install in progress or killed)
                // and anything that is not a plugin name are not plugins.
                if !valid_name(&name) {
                    continue;
                }
                // `<name>` is a symlink into `.store/` (see `install`), or a
                // plain directory made by hand.
                let path = d.path().join("plugin.wasm");
                if !path.is_file() {
                    continue;
                }
                if Self::is_bundled(&name)
                    && !InstallRecord::read(&d.path()).is_some_and(|r| r.overrides_bundled)
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
        let mut out: Vec<Entry> = bundled_entries().collect();
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
        bundled_entries().find(|e| e.name == name)
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

/// Every bundled plugin as an entry, with the digest computed at build time
/// (`BUNDLED_SHA256` lists the same plugins in the same order).
fn bundled_entries() -> impl Iterator<Item = Entry> {
    bundled::BUNDLED
        .iter()
        .zip(bundled::BUNDLED_SHA256)
        .map(|((name, bytes), (_, digest))| Entry {
            name: name.to_string(),
            source: Source::Bundled,
            bytes: bytes::Bytes::from_static(bytes),
            digest: digest.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build-time digests (computed by `soar-guest-build`'s own SHA-256)
    /// are what `sha2` computes over the embedded bytes, name by name: a
    /// wrong one would pin every project's `soar.lock` to nothing.
    #[test]
    fn bundled_digests_are_the_sha256_of_the_embedded_bytes() {
        assert_eq!(bundled::BUNDLED.len(), bundled::BUNDLED_SHA256.len());
        for ((name, bytes), (digest_name, digest)) in
            bundled::BUNDLED.iter().zip(bundled::BUNDLED_SHA256)
        {
            assert_eq!(
                name, digest_name,
                "the two tables list the same plugins in order"
            );
            assert_eq!(
                *digest,
                hex::encode(Sha256::digest(bytes)),
                "digest of {name}"
            );
        }
        let entries: Vec<Entry> = bundled_entries().collect();
        assert_eq!(entries.len(), bundled::BUNDLED.len());
        for e in entries {
            assert_eq!(
                e.digest,
                hex::encode(Sha256::digest(&e.bytes)),
                "{}",
                e.name
            );
        }
    }
}
