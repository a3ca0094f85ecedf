//! The projects a server deploys, by NAME: those its config lists
//! (`[projects.NAME] path`) and those uploaded as bundles, which live in
//! `<data dir>/bundles/<NAME>` and are found there again after a restart.
//! A request names a project only by NAME, so it can never point the server
//! at another directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Where uploaded bundles are unpacked, under the server's data directory.
pub const BUNDLES_DIR: &str = "bundles";

/// Configured and uploaded projects.
#[derive(Debug)]
pub struct Projects {
    configured: BTreeMap<String, PathBuf>,
    uploaded: RwLock<BTreeMap<String, PathBuf>>,
    bundles_dir: PathBuf,
}

impl Projects {
    /// The `configured` projects, and the bundles already under
    /// `<data_dir>/bundles` (each a directory with a `soar.toml`).
    pub fn new(configured: BTreeMap<String, PathBuf>, data_dir: &Path) -> Self {
        let bundles_dir = data_dir.join(BUNDLES_DIR);
        let mut uploaded = BTreeMap::new();
        for entry in std::fs::read_dir(&bundles_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if super::config::valid_name(&name)
                && !configured.contains_key(&name)
                && path.join("soar.toml").is_file()
            {
                uploaded.insert(name, path);
            }
        }
        Self {
            configured,
            uploaded: RwLock::new(uploaded),
            bundles_dir,
        }
    }

    /// The directory of project `name`, if the server has it.
    pub fn get(&self, name: &str) -> Option<PathBuf> {
        self.configured.get(name).cloned().or_else(|| {
            self.uploaded
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned()
        })
    }

    /// Every project: NAME -> directory.
    pub fn all(&self) -> BTreeMap<String, PathBuf> {
        let mut all = self
            .uploaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.extend(self.configured.clone());
        all
    }

    /// Every project's NAME, sorted.
    pub fn names(&self) -> Vec<String> {
        self.all().into_keys().collect()
    }

    /// Whether `name` is one of the server config's own projects (which an
    /// upload may not replace).
    pub fn is_configured(&self, name: &str) -> bool {
        self.configured.contains_key(name)
    }

    /// `<data dir>/bundles`.
    pub fn bundles_dir(&self) -> &Path {
        &self.bundles_dir
    }

    /// Record the bundle `name`, unpacked at `<bundles dir>/<name>`.
    pub fn add_uploaded(&self, name: &str) {
        self.uploaded
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), self.bundles_dir.join(name));
    }
}
