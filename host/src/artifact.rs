//! The artifact being deployed, as the host sees it: files on disk with their
//! sizes and digests. Plugins get the listing and read through the host; only
//! files in the listing can be read (no path leaves the artifact root).
//!
//! The host knows one more kind than the plugin contract: [`Kind::Docker`]
//! (see its documentation for why it is host-only).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};

use crate::contract::{Artifact, ArtifactFile, ArtifactKind};

/// Names never packaged from a directory artifact.
const SKIPPED: &[&str] = &[".git", "node_modules", ".DS_Store", ".soar"];

/// Most a plugin can read in one call.
pub const MAX_READ: u32 = 1 << 20;

/// What `[artifact] kind` names, as the host sees it.
///
/// The plugin contract's `artifact-kind` (wit/types.wit) lists the kinds a
/// provider may deploy itself. `docker` is deliberately not in it and must
/// not be added: a new case in a WIT enum breaks every plugin built against
/// the published contract. A docker image is something only the host rolls
/// out (onto SSH hosts, by the rollout's docker manager), so providers are
/// never shown it: a command deploying a docker artifact hands plugins no
/// artifact at all (`context.artifact` is `none`, the `artifacts` import
/// answers `none`), exactly as for `soar destroy`. Whether a provider suits
/// a docker artifact is judged by whether it has SSH hosts (declares the
/// `ssh` capability, or the config lists `[env.<name>.ssh] hosts`), not by
/// its `describe().artifacts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One executable file.
    Binary,
    /// A directory of scripts run by `artifact.command`.
    Script,
    /// A static site.
    Static,
    /// A `.tar.gz` with an optional setup script.
    Tarball,
    /// A Docker image: an archive from `docker save`, or a build context
    /// directory with a `Dockerfile`. Host-only (see above).
    Docker,
}

impl Kind {
    /// Every kind, in the order the config documents them.
    pub const ALL: [Kind; 5] = [
        Kind::Binary,
        Kind::Script,
        Kind::Static,
        Kind::Tarball,
        Kind::Docker,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Binary => "binary",
            Kind::Script => "script",
            Kind::Static => "static",
            Kind::Tarball => "tarball",
            Kind::Docker => "docker",
        }
    }

    /// The kind a config spelling names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The plugin contract's kind, or `None` for host-only kinds, which
    /// plugins are never shown.
    pub fn contract(self) -> Option<ArtifactKind> {
        Some(match self {
            Kind::Binary => ArtifactKind::Binary,
            Kind::Script => ArtifactKind::Script,
            Kind::Static => ArtifactKind::Static,
            Kind::Tarball => ArtifactKind::Tarball,
            Kind::Docker => return None,
        })
    }
}

impl From<ArtifactKind> for Kind {
    fn from(k: ArtifactKind) -> Self {
        match k {
            ArtifactKind::Binary => Kind::Binary,
            ArtifactKind::Script => Kind::Script,
            ArtifactKind::Static => Kind::Static,
            ArtifactKind::Tarball => Kind::Tarball,
        }
    }
}

/// So code written against the contract's kinds keeps comparing.
impl PartialEq<ArtifactKind> for Kind {
    fn eq(&self, other: &ArtifactKind) -> bool {
        self.contract() == Some(*other)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `path` can be a docker artifact: a build context directory with
/// a `Dockerfile` at its top, or an image archive (`docker save` writes a
/// tar; `docker load` also takes it gzip-, bzip2-, xz- or zstd-compressed).
/// Checked when the config is read (if the path exists then) and again
/// after the build command ran, so a wrong `path` fails before any upload.
pub fn check_docker_path(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.is_dir() {
        return if path.join("Dockerfile").is_file() {
            Ok(())
        } else {
            Err("is a directory without a Dockerfile at its top".into())
        };
    }
    let mut head = [0u8; 262];
    let n = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    m => n += m,
                }
            }
            Ok(n)
        })
        .map_err(|e| format!("cannot read it: {e}"))?;
    let head = &head[..n];
    let compressed: [&[u8]; 4] = [
        &[0x1f, 0x8b],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    let tar = head.len() >= 262 && &head[257..262] == b"ustar";
    if tar || compressed.iter().any(|m| head.starts_with(m)) {
        Ok(())
    } else {
        Err("is neither an image archive (the output of `docker save`) nor a directory with a Dockerfile".into())
    }
}

/// An artifact on the host's disk.
#[derive(Debug, Clone)]
pub struct ArtifactSource {
    kind: Kind,
    root: PathBuf,
    files: BTreeMap<String, ArtifactFile>,
    digest: String,
}

impl ArtifactSource {
    /// Scan `path` (a file, or a directory walked recursively) and hash it.
    /// A docker artifact is checked to be an image archive or a build
    /// context first ([`check_docker_path`]).
    pub fn scan(kind: impl Into<Kind>, path: &Path) -> anyhow::Result<Self> {
        let kind = kind.into();
        let meta = std::fs::metadata(path)
            .with_context(|| format!("artifact path {} does not exist", path.display()))?;
        if kind == Kind::Docker
            && let Err(why) = check_docker_path(path)
        {
            bail!(
                "the docker artifact at {} {why}: point `artifact.path` at the archive `docker save -o` writes, or at a directory with a Dockerfile",
                path.display()
            );
        }
        Self::scan_checked(kind, path, meta)
    }

    /// A docker artifact that names an image in a registry instead of
    /// holding one: `file` holds the image reference, and is the one file
    /// the hosts receive (they pull the image it names). Its digest is the
    /// reference's, so an unchanged reference is an unchanged release.
    pub fn image_reference(file: &Path) -> anyhow::Result<Self> {
        let meta = std::fs::metadata(file)
            .with_context(|| format!("image reference file {} does not exist", file.display()))?;
        Self::scan_checked(Kind::Docker, file, meta)
    }

    /// [`ArtifactSource::scan`] once the kind's own checks passed.
    fn scan_checked(kind: Kind, path: &Path, meta: std::fs::Metadata) -> anyhow::Result<Self> {
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

    /// The listing handed to plugins. A host-only kind ([`Kind::Docker`])
    /// is never handed to a plugin (the engine gives providers no artifact
    /// then); should one be described anyway it reads as `tarball`, the
    /// contract kind nearest to "files the host ships and unpacks".
    pub fn describe(&self) -> Artifact {
        Artifact {
            kind: self.kind.contract().unwrap_or(ArtifactKind::Tarball),
            digest: self.digest.clone(),
            files: self.files.values().cloned().collect(),
        }
    }

    /// The host-side kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether plugins may be shown this artifact (its kind is one of the
    /// contract's).
    pub fn for_plugins(&self) -> bool {
        self.kind.contract().is_some()
    }

    /// The artifact's files, sorted by path.
    pub fn files(&self) -> Vec<ArtifactFile> {
        self.files.values().cloned().collect()
    }

    /// The artifact's content digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The size of a listed file, from the scan (nothing is read).
    pub fn size_of(&self, rel: &str) -> Option<u64> {
        self.files.get(rel).map(|f| f.size)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::Docker.contract(), None);
        assert_eq!(Kind::from(ArtifactKind::Tarball), Kind::Tarball);
        assert!(Kind::Script == ArtifactKind::Script);
        assert!(Kind::Docker != ArtifactKind::Tarball);
    }

    #[test]
    fn docker_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        std::fs::write(p.join("image.tar"), &tar).unwrap();
        std::fs::write(p.join("image.tar.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
        std::fs::write(p.join("app"), "#!/bin/sh\n").unwrap();
        assert_eq!(check_docker_path(&p.join("image.tar")), Ok(()));
        assert_eq!(check_docker_path(&p.join("image.tar.gz")), Ok(()));
        assert!(check_docker_path(&p.join("app")).is_err());
        // A directory needs its Dockerfile.
        assert!(check_docker_path(p).is_err());
        std::fs::write(p.join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(check_docker_path(p), Ok(()));
        let scanned = ArtifactSource::scan(Kind::Docker, &p.join("image.tar")).unwrap();
        assert_eq!(scanned.kind(), Kind::Docker);
        assert!(!scanned.for_plugins());
        assert!(ArtifactSource::scan(Kind::Docker, &p.join("app")).is_err());
    }
}
