//! Project bundles: a project uploaded as a tar.gz (`POST /v1/bundles`),
//! unpacked into a directory the server owns, `<data dir>/bundles/<NAME>`.
//!
//! An archive is untrusted input, so it is checked entry by entry before
//! anything is written, and capped three ways (the compressed upload by the
//! route's body limit, then the unpacked bytes and the entry count here) so
//! a small gzip cannot fill the disk. Refused outright:
//!
//! - absolute paths, `..` components, and anything under `.soar/` (the
//!   project's state, which the server keeps across uploads);
//! - devices, FIFOs and other special files;
//! - symlinks and hard links that point outside the bundle, judged both on
//!   the link text and, once everything is unpacked, on where each symlink
//!   really resolves (so a chain of links cannot sneak out either).
//!
//! The tar crate's `unpack_in` adds its own guard: it refuses to write an
//! entry through a link that leads out of the destination.

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

/// Caps on one upload (`[bundles]` in soar-server.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The compressed upload, in bytes (the route's body limit).
    pub max_bytes: u64,
    /// Every file's size added up, in bytes.
    pub max_unpacked_bytes: u64,
    /// Files, directories and links.
    pub max_entries: u64,
}

impl Limits {
    /// The configured caps, each defaulting when absent: 32 MiB compressed,
    /// 256 MiB unpacked, 10 000 entries.
    pub fn from_config(
        max_bytes: Option<u64>,
        max_unpacked_bytes: Option<u64>,
        max_entries: Option<u64>,
    ) -> Self {
        Self {
            max_bytes: max_bytes.unwrap_or(32 << 20).max(1),
            max_unpacked_bytes: max_unpacked_bytes.unwrap_or(256 << 20).max(1),
            max_entries: max_entries.unwrap_or(10_000).max(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(None, None, None)
    }
}

/// Why a bundle was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive breaks a rule (a path, a link, a file type, its format).
    #[error("{0}")]
    Refused(String),
    /// The archive is over a cap.
    #[error("{0}")]
    TooLarge(String),
    /// The server could not write it (its disk, its permissions).
    #[error("writing the bundle: {0}")]
    Io(#[from] std::io::Error),
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Their sizes added up.
    pub bytes: u64,
}

/// The project's state directory: kept by the server across uploads, so a
/// bundle may not bring its own.
const STATE_DIR: &str = ".soar";

/// Unpack the tar.gz `archive` into `dest` (an existing, empty directory),
/// checking every entry against the rules above and `limits`.
pub fn unpack(archive: &[u8], dest: &Path, limits: &Limits) -> Result<Unpacked, BundleError> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz);
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(true);
    let mut done = Unpacked::default();
    let mut entries_seen = 0u64;
    let not_tar = |e: std::io::Error| {
        BundleError::Refused(format!(
            "the upload is not a readable tar.gz ({e}); make one with `tar czf bundle.tgz -C DIR .`"
        ))
    };
    for entry in tar.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(BundleError::TooLarge(format!(
                "the bundle has more than {} entries, the most this server unpacks",
                limits.max_entries
            )));
        }
        let path = entry.path().map_err(not_tar)?.into_owned();
        let shown = crate::terminal::clip(&path.to_string_lossy(), 120);
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let relative = inside(&path).ok_or_else(|| {
            BundleError::Refused(format!(
                "entry {shown:?} is an absolute path or climbs out with '..'"
            ))
        })?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        if relative.starts_with(STATE_DIR) {
            return Err(BundleError::Refused(format!(
                "entry {shown:?} is under .soar/, the project's state, which the server keeps"
            )));
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                done.files += 1;
                done.bytes = done.bytes.saturating_add(entry.size());
                if done.bytes > limits.max_unpacked_bytes {
                    return Err(BundleError::TooLarge(format!(
                        "the bundle unpacks to more than {} bytes, the most this server takes",
                        limits.max_unpacked_bytes
                    )));
                }
            }
            tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(not_tar)?.unwrap_or_default();
                let base = relative.parent().unwrap_or(Path::new(""));
                if target.is_absolute() || inside(&base.join(&target)).is_none() {
                    return Err(BundleError::Refused(format!(
                        "symlink {shown:?} points outside the bundle (to {:?})",
                        crate::terminal::clip(&target.to_string_lossy(), 120)
                    )));
                }
            }
            tar::EntryType::Link => {
                let target = entry.link_name().map_err(not_tar)?.unwrap_or_default();
                if target.is_absolute() || inside(&target).is_none() {
                    return Err(BundleError::Refused(format!(
                        "hard link {shown:?} points outside the bundle"
                    )));
                }
            }
            other => {
                return Err(BundleError::Refused(format!(
                    "entry {shown:?} is a {other:?} entry; a bundle holds only files, directories and links within it"
                )));
            }
        }
        if !entry.unpack_in(dest)? {
            return Err(BundleError::Refused(format!(
                "entry {shown:?} would be written outside the bundle"
            )));
        }
    }
    // Whatever a chain of links adds up to, each must land inside.
    check_links(dest)?;
    // Drain what gzip holds after the tar's end so a bad checksum shows.
    let mut rest = Vec::new();
    tar.into_inner().read_to_end(&mut rest).map_err(not_tar)?;
    Ok(done)
}

/// `path` with `.` dropped, if it stays inside its root: relative, and no
/// `..` climbs above where it started.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Every symlink under `root` resolves to a path under `root`.
fn check_links(root: &Path) -> Result<(), BundleError> {
    let real_root = std::fs::canonicalize(root)?;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_symlink() {
                let shown = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                match std::fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(&real_root) => {}
                    Ok(_) => {
                        return Err(BundleError::Refused(format!(
                            "symlink {shown:?} resolves outside the bundle"
                        )));
                    }
                    Err(_) => {
                        return Err(BundleError::Refused(format!(
                            "symlink {shown:?} points to nothing in the bundle"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Move the freshly unpacked `fresh` into place as `target`, carrying the
/// previous upload's `.soar/` state over so releases, history and locks
/// survive a new upload. `fresh` and `target` share a parent directory.
///
/// On an error the previous upload is put back as it was (its state
/// included), so the caller may delete `fresh`.
pub fn replace(fresh: &Path, target: &Path) -> std::io::Result<()> {
    if !target.exists() {
        return std::fs::rename(fresh, target);
    }
    let state = target.join(STATE_DIR);
    let carried = fresh.join(STATE_DIR);
    let has_state = state.exists();
    if has_state {
        std::fs::rename(&state, &carried)?;
    }
    let put_state_back = || {
        if has_state {
            let _ = std::fs::rename(&carried, &state);
        }
    };
    let old = target.with_file_name(format!(".old-{}", super::store::random_hex(6)));
    if let Err(e) = std::fs::rename(target, &old) {
        put_state_back();
        return Err(e);
    }
    if let Err(e) = std::fs::rename(fresh, target) {
        let _ = std::fs::rename(&old, target);
        put_state_back();
        return Err(e);
    }
    if let Err(e) = std::fs::remove_dir_all(&old) {
        // The new upload is in place; only a leftover remains, which the
        // server clears when it next starts.
        tracing::warn!("removing the previous upload {}: {e}", old.display());
    }
    Ok(())
}

/// Clear what an interrupted upload left in the bundles directory `dir`
/// (`.upload-*` being unpacked, `.old-*` being removed).
pub fn clear_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".upload-") || name.starts_with(".old-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar.gz of `entries`: (path, kind, data or link target). Headers are
    /// written raw, so paths the tar crate's builder refuses can be made.
    fn archive(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            let body: &[u8] = if kind.is_symlink() || kind.is_hard_link() {
                h.set_link_name(data).unwrap();
                b""
            } else {
                data.as_bytes()
            };
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn try_unpack(entries: &[(&str, tar::EntryType, &str)]) -> Result<Unpacked, BundleError> {
        let dir = tempfile::tempdir().unwrap();
        unpack(&archive(entries), dir.path(), &Limits::default())
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn a_plain_bundle_unpacks_with_inner_links() {
        let dir = tempfile::tempdir().unwrap();
        let got = unpack(
            &archive(&[
                ("soar.toml", Regular, "[app]\n"),
                ("./bin/", Directory, ""),
                ("bin/app", Regular, "#!/bin/sh\n"),
                ("bin/current", Symlink, "app"),
                ("up", Symlink, "bin/../soar.toml"),
                ("copy", Link, "bin/app"),
            ]),
            dir.path(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            got,
            Unpacked {
                files: 2,
                bytes: 16
            }
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bin/current")).unwrap(),
            "#!/bin/sh\n"
        );
    }

    #[test]
    fn escapes_and_special_files_are_refused() {
        for (entries, needle) in [
            (vec![("../evil", Regular, "x")], "climbs out"),
            (vec![("a/../../evil", Regular, "x")], "climbs out"),
            (vec![("/etc/evil", Regular, "x")], "absolute"),
            (vec![("out", Symlink, "/etc/passwd")], "outside"),
            (vec![("a/out", Symlink, "../../etc")], "outside"),
            (vec![("hard", Link, "../x")], "outside"),
            (vec![(".soar/state.db", Regular, "x")], ".soar"),
            (vec![("fifo", tar::EntryType::Fifo, "")], "Fifo"),
            (vec![("dev", tar::EntryType::Char, "")], "Char"),
            (vec![("dangling", Symlink, "nothing")], "points to nothing"),
            // Each link stays inside on its own text; together they do not.
            (
                vec![("d", Symlink, "."), ("e", Symlink, "d/d/d/..")],
                "resolves outside",
            ),
        ] {
            let err = try_unpack(&entries).unwrap_err();
            assert!(
                matches!(err, BundleError::Refused(_)) && err.to_string().contains(needle),
                "{entries:?}: {err}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(b"not gzip at all", dir.path(), &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("tar.gz"), "{e}");
    }

    #[test]
    fn caps_on_bytes_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        let small = Limits {
            max_bytes: 1 << 20,
            max_unpacked_bytes: 10,
            max_entries: 2,
        };
        let big = archive(&[("a", Regular, "0123456789x")]);
        let e = unpack(&big, dir.path(), &small).unwrap_err();
        assert!(matches!(e, BundleError::TooLarge(_)), "{e}");
        let many = archive(&[("a", Regular, ""), ("b", Regular, ""), ("c", Regular, "")]);
        let e = unpack(&many, tempfile::tempdir().unwrap().path(), &small).unwrap_err();
        assert!(e.to_string().contains("entries"), "{e}");
    }

    #[test]
    fn a_new_upload_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app");
        std::fs::create_dir_all(target.join(".soar")).unwrap();
        std::fs::write(target.join(".soar/state.db"), "s").unwrap();
        std::fs::write(target.join("old"), "o").unwrap();
        let fresh = dir.path().join(".upload");
        std::fs::create_dir(&fresh).unwrap();
        std::fs::write(fresh.join("soar.toml"), "t").unwrap();
        replace(&fresh, &target).unwrap();
        assert!(target.join(".soar/state.db").exists());
        assert!(target.join("soar.toml").exists() && !target.join("old").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A failed swap puts the previous upload back, state and all.
        let missing = dir.path().join(".upload-gone");
        assert!(replace(&missing, &target).is_err());
        assert!(target.join(".soar/state.db").exists() && target.join("soar.toml").exists());
        std::fs::create_dir(dir.path().join(".old-abc")).unwrap();
        clear_leftovers(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
