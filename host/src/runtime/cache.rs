//! The on-disk cache of compiled components.
//!
//! Compiling a component costs 50 ms (Rust) to seconds (Python); loading the
//! precompiled form costs well under a millisecond. Entries are keyed by the
//! component's sha256 and the engine's compatibility hash, written atomically
//! with a sidecar checksum, and only deserialized when the checksum matches:
//! Soar never deserializes bytes it did not write itself.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load hit the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The compiled component was on disk, verified, and loaded without
    /// compiling.
    Hit,
    /// It was compiled now (and stored for the next load, when writable).
    Compiled,
    /// No cache directory is configured.
    Disabled,
}

/// Compiled components on disk.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir` (created on first write), or none.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The default location: `$SOAR_CACHE_DIR`, else the user cache dir.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SOAR_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                directories::ProjectDirs::from("dev", "soar", "soar")
                    .map(|d| d.cache_dir().join("components"))
            })
    }

    /// The cache's directory, if there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether a compiled entry for `digest` is on disk (not yet verified:
    /// [`CompileCache::load_or_compile`] still checks it), so a caller can
    /// skip work that only matters before a compile.
    pub fn holds(&self, engine: &Engine, digest: &str) -> bool {
        self.dir.as_ref().is_some_and(|dir| {
            let (artifact, sidecar) = entry_paths(dir, engine, digest);
            artifact.is_file() && sidecar.is_file()
        })
    }

    /// The compiled component for `bytes` whose sha256 is `digest`.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Disabled));
        };
        let (artifact, sidecar) = entry_paths(dir, engine, digest);
        if let Some(component) = read_verified(engine, &artifact, &sidecar) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = write(dir, &artifact, &sidecar, &component) {
            tracing::warn!(
                "could not write the compile cache in {}: {e:#}",
                dir.display()
            );
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// The compiled form of `digest` for this engine, and its checksum file.
fn entry_paths(dir: &Path, engine: &Engine, digest: &str) -> (PathBuf, PathBuf) {
    let key = format!("{digest}-{:016x}", engine_hash(engine));
    (
        dir.join(format!("{key}.cwasm")),
        dir.join(format!("{key}.sha256")),
    )
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    h.finish()
}

fn read_verified(engine: &Engine, artifact: &Path, sidecar: &Path) -> Option<Component> {
    let expected = std::fs::read_to_string(sidecar).ok()?;
    let bytes = std::fs::read(artifact).ok()?;
    if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
        tracing::warn!(
            "compile cache entry {} does not match its checksum; recompiling",
            artifact.display()
        );
        return None;
    }
    // SAFETY: the bytes are exactly what `Component::serialize` produced in
    // `write` below (checked by the sidecar digest written after them, in a
    // directory only this user can write), for an engine with the same
    // compatibility hash (part of the file name).
    unsafe { Component::deserialize(engine, &bytes) }.ok()
}

fn write(dir: &Path, artifact: &Path, sidecar: &Path, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let bytes = component.serialize()?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), &bytes)?;
    tmp.persist(artifact)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), digest)?;
    tmp.persist(sidecar)?;
    Ok(())
}
