//! The artifact being deployed, as the host sees it: files on disk with their
//! sizes and digests. Plugins get the listing and read through the host; only
//! files in the listing can be read (no path leaves the artifact root).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};

use crate::runtime::bindings::{Artifact, ArtifactFile, ArtifactKind};

/// Names never packaged from a directory artifact.
const SKIPPED: &[&str] = &[".git", "node_modules", ".DS_Store", ".soar"];

/// Most a plugin can read in one call.
pub const MAX_READ: u32 = 1 << 20;

/// An artifact on the host's disk.
#[derive(Debug, Clone)]
pub struct ArtifactSource {
    kind: ArtifactKind,
    root: PathBuf,
    files: BTreeMap<String, ArtifactFile>,
    digest: String,
}

impl ArtifactSource {
    /// Scan `path` (a file, or a directory walked recursively) and hash it.
    pub fn scan(kind: ArtifactKind, path: &Path) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("artifact path {} does not exist", path.display()))?;
        let (root, rels) = if meta.is_file() {
            let name = path
                .file_name()
                .context("artifact file has no name")?
                .to_string_lossy()
                .into_owned();
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                vec![name],
            )
        } else {
            let mut rels = Vec::new();
            walk(path, path, &mut rels)?;
            (path.to_path_buf(), rels)
        };
        let mut files = BTreeMap::new();
        for rel in rels {
            let full = root.join(&rel);
            let mut f = std::fs::File::open(&full)
                .with_context(|| format!("reading {}", full.display()))?;
            let mut hasher = Sha256::new();
            let size = std::io::copy(&mut f, &mut hasher)?;
            let sha256 = hex::encode(hasher.finalize());
            files.insert(
                rel.clone(),
                ArtifactFile {
                    path: rel,
                    size,
                    sha256,
                },
            );
        }
        let mut whole = Sha256::new();
        for f in files.values() {
            whole.update(f.path.as_bytes());
            whole.update([0]);
            whole.update(f.sha256.as_bytes());
            whole.update([b'\n']);
        }
        Ok(Self {
            kind,
            root,
            files,
            digest: hex::encode(whole.finalize()),
        })
    }

    /// The listing handed to plugins.
    pub fn describe(&self) -> Artifact {
        Artifact {
            kind: self.kind,
            digest: self.digest.clone(),
            files: self.files.values().cloned().collect(),
        }
    }

    /// The artifact's content digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Where a listed file lives on disk.
    pub fn path_of(&self, rel: &str) -> anyhow::Result<PathBuf> {
        if !self.files.contains_key(rel) {
            bail!("'{rel}' is not a file of the artifact");
        }
        Ok(self.root.join(rel))
    }

    /// Read up to `len` bytes at `offset` of a listed file.
    pub fn read(&self, rel: &str, offset: u64, len: u32) -> anyhow::Result<Vec<u8>> {
        let mut f = std::fs::File::open(self.path_of(rel)?)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len.min(MAX_READ) as usize);
        f.take(len.min(MAX_READ) as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The whole content of a listed file.
    pub fn read_all(&self, rel: &str) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(self.path_of(rel)?)?)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path
                .strip_prefix(root)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(rel);
        }
        // Symlinks are not followed: an artifact cannot smuggle in files from
        // outside its root.
    }
    Ok(())
}
