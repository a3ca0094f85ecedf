//! The artifact a conformance run plans and applies with: the author's own
//! (`--artifact PATH`), or a tiny built-in one of a kind the plugin
//! declares, written to a temporary directory that lives as long as the run.

use std::path::Path;

use anyhow::Context as _;

use crate::artifact::{ArtifactSource, Kind};

/// The built-in service: a shell script that serves nothing and says so.
const SCRIPT: &str =
    "#!/bin/sh\n# soar plugin test: the built-in artifact\necho 'soar conformance artifact'\n";

/// An artifact and the directory holding it (removed on drop).
pub struct TestArtifact {
    /// The scanned artifact, as the engine hands it to sessions.
    pub source: ArtifactSource,
    /// Keeps the built-in artifact's files alive; `None` for the author's.
    _dir: Option<tempfile::TempDir>,
}

impl TestArtifact {
    /// The author's artifact at `path`, of `kind`.
    pub fn at(path: &Path, kind: Kind) -> anyhow::Result<Self> {
        Ok(Self {
            source: ArtifactSource::scan(kind, path)?,
            _dir: None,
        })
    }

    /// A tiny artifact of `kind`: an executable script (binary), a
    /// directory with `run.sh` (script), an `index.html` (static), or a
    /// `.tar.gz` holding `run.sh` (tarball).
    pub fn built_in(kind: Kind) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("soar-plugin-test-")
            .tempdir()
            .context("creating a directory for the built-in artifact")?;
        let root = dir.path();
        let path = match kind {
            Kind::Binary => executable(&root.join("app"))?,
            Kind::Script => {
                std::fs::create_dir(root.join("app"))?;
                executable(&root.join("app/run.sh"))?;
                root.join("app")
            }
            Kind::Static => {
                std::fs::create_dir(root.join("site"))?;
                std::fs::write(
                    root.join("site/index.html"),
                    "<!doctype html><title>soar</title><p>soar conformance artifact</p>\n",
                )?;
                root.join("site")
            }
            Kind::Tarball => tarball(&root.join("app.tar.gz"))?,
            Kind::Docker => anyhow::bail!(
                "a docker artifact is the host's to roll out, never a plugin's: pass --artifact-kind with a kind the plugin declares"
            ),
        };
        Ok(Self {
            source: ArtifactSource::scan(kind, &path)?,
            _dir: Some(dir),
        })
    }
}

fn executable(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::write(path, SCRIPT).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path.to_path_buf())
}

fn tarball(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(SCRIPT.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    tar.append_data(&mut header, "run.sh", SCRIPT.as_bytes())?;
    tar.into_inner()?.finish()?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_kind_has_a_built_in_artifact() {
        for kind in [Kind::Binary, Kind::Script, Kind::Static, Kind::Tarball] {
            let a = TestArtifact::built_in(kind).expect("built");
            assert_eq!(a.source.kind(), kind);
            assert_eq!(a.source.files().len(), 1, "{kind}");
        }
        assert!(TestArtifact::built_in(Kind::Docker).is_err());
    }
}
