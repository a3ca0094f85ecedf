//! What plugins say of themselves, without starting an engine when it is
//! already known.
//!
//! `soar plugin list` and `soar plugin inspect` only need each plugin's
//! `describe` answer. Loading a plugin for that costs an engine, a linker,
//! reading and checking the compiled component and an instantiation (about
//! ten milliseconds, most of `inspect`'s time). The answer is a function of
//! the component's bytes, so it is cached beside the compiled component,
//! keyed by the component's sha256 and this soar's version: a plugin that
//! changes has another digest, and a soar that validates descriptions
//! differently has another version.
//!
//! The cache only ever serves **display**. Every command that enforces a
//! plugin's capabilities (plan, deploy, install consent, …) loads the plugin
//! and uses the description it gives in that process. A cache entry is
//! written only after a load whose description passed validation, and is
//! validated again when read.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Runtime, RuntimeConfig};
use crate::contract::Description;

/// Bumped when [`Described`]'s JSON shape changes.
const FORMAT: u32 = 1;

/// A plugin's description and the contract version it was built against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Described {
    /// Its `describe` answer, validated.
    pub description: Description,
    /// The `soar:plugin` version its exports match (e.g. `0.1.0`).
    pub wit_version: String,
}

/// Descriptions from the describe cache, or by loading the plugin (and
/// caching what it said). The runtime is started on the first miss only.
pub struct Describer {
    config: RuntimeConfig,
    runtime: OnceLock<Runtime>,
}

impl Describer {
    /// A describer whose cache lives in `config.cache_dir` (none: every
    /// description is asked for).
    pub fn new(config: RuntimeConfig) -> Self {
        Self {
            config,
            runtime: OnceLock::new(),
        }
    }

    /// The budgets plugins run under (shown by `soar plugin inspect`).
    pub fn limits(&self) -> &super::Limits {
        &self.config.limits
    }

    /// The runtime, started now if no description needed it yet.
    pub fn runtime(&self) -> anyhow::Result<&Runtime> {
        if let Some(r) = self.runtime.get() {
            return Ok(r);
        }
        let started = Runtime::new(self.config.clone())?;
        Ok(self.runtime.get_or_init(|| started))
    }

    /// What the plugin `label` with these `bytes` (whose sha256 is
    /// `digest`) says of itself.
    pub async fn describe(
        &self,
        label: &str,
        bytes: &[u8],
        digest: &str,
    ) -> anyhow::Result<Described> {
        if let Some(cached) = lookup(self.config.cache_dir.as_deref(), label, digest) {
            return Ok(cached);
        }
        self.runtime()?.describe(label, bytes, digest).await
    }
}

impl Runtime {
    /// What a plugin says of itself, from the describe cache when this
    /// runtime's cache directory has it, else by loading it (and caching the
    /// answer). For display only: see the [module](self) documentation.
    pub async fn describe(
        &self,
        label: &str,
        bytes: &[u8],
        digest: &str,
    ) -> anyhow::Result<Described> {
        let dir = self.cache.dir();
        if let Some(cached) = lookup(dir, label, digest) {
            return Ok(cached);
        }
        let plugin = self.load_digested(label, bytes, digest.to_string()).await?;
        let described = Described {
            description: plugin.description().clone(),
            wit_version: plugin.wit_version().to_string(),
        };
        if let Some(path) = dir.map(|d| entry_path(d, digest))
            && let Err(e) = write(&path, &described)
        {
            tracing::debug!("describe cache not written ({}): {e:#}", path.display());
        }
        Ok(described)
    }
}

fn lookup(dir: Option<&Path>, label: &str, digest: &str) -> Option<Described> {
    read(label, &entry_path(dir?, digest))
}

/// `<cache>/<digest>.describe-<format>-<soar version>.json`.
fn entry_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join(format!(
        "{digest}.describe-{FORMAT}-{}.json",
        env!("CARGO_PKG_VERSION")
    ))
}

/// A cached entry, if present, readable and still valid. Anything else is a
/// miss: the plugin is asked again and the entry rewritten.
fn read(label: &str, path: &Path) -> Option<Described> {
    let bytes = std::fs::read(path).ok()?;
    let described: Described = serde_json::from_slice(&bytes).ok()?;
    super::validate_description(label, &described.description).ok()?;
    Some(described)
}

fn write(path: &Path, described: &Described) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), serde_json::to_vec(described)?)?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal description: no capabilities, an empty settings schema.
    fn plugin(name: &str, summary: &str) -> Described {
        Described {
            description: Description {
                name: name.into(),
                version: "1.0.0".into(),
                summary: summary.into(),
                artifacts: vec![],
                settings_schema: "{}".into(),
                capabilities: crate::contract::Capabilities {
                    endpoints: vec![],
                    extra_hosts: vec![],
                    credentials: vec![],
                    ssh: false,
                },
            },
            wit_version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_corrupt_or_foreign_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_path(dir.path(), "ab");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read("p", &path).is_none());
        // Well-formed, but the description fails validation (no name).
        let nameless = plugin("", "");
        write(&path, &nameless).unwrap();
        assert!(read("p", &path).is_none());
    }

    /// A hit is served from the file alone: the runtime is never started
    /// (the bytes here are not even a component).
    #[tokio::test]
    async fn a_hit_starts_no_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let described = plugin("cached", "from the cache");
        write(&entry_path(dir.path(), "cd"), &described).unwrap();
        let describer = Describer::new(RuntimeConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        });
        let got = describer
            .describe("cached", b"not wasm", "cd")
            .await
            .unwrap();
        assert_eq!(got.description.summary, "from the cache");
        assert!(describer.runtime.get().is_none());
        // A miss does load (and fails here, naming the plugin).
        let err = describer
            .describe("other", b"not wasm", "ef")
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("'other' is not a WebAssembly file"),
            "{err:#}"
        );
    }
}
