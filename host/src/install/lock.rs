//! `soar.lock`: the plugins a project uses, pinned by digest, next to
//! `soar.toml`. Written by `soar plugin install` and `soar plugin update`
//! run in the project (and, on first use, by the commands that load a plugin
//! not pinned yet); checked before a plugin is loaded for `plan`, `deploy`,
//! `destroy`...

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// File name, next to `soar.toml`.
pub const FILE_NAME: &str = "soar.lock";

const HEADER: &str = "# soar.lock: the provider plugins this project uses, pinned by sha256.\n\
# Written by `soar plugin install` and `soar plugin update`; commit it.\n\n";

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Pin {
    /// The plugin's declared name; at most one pin per name.
    pub name: String,
    /// Its version when pinned (soar's own version for a bundled plugin);
    /// informational, used in messages — the digest is what is enforced.
    pub version: String,
    /// Where it was installed from (URL or path; `bundled` for first-party).
    pub source: String,
    /// Lowercase hex sha256 of the component; the project refuses to run other
    /// bytes under this name (except a bundled plugin that changed with soar,
    /// which is re-pinned with a note).
    pub sha256: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct LockFile {
    /// The file format version; always written as 1.
    #[serde(default = "one")]
    pub version: u32,
    /// The pins, one `[[plugin]]` table each, written sorted by name.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<Pin>,
}

fn one() -> u32 {
    1
}

/// `soar.lock` next to `config_file`.
pub fn path_for(config_file: &Path) -> PathBuf {
    config_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(FILE_NAME)
}

impl LockFile {
    /// Read `path`; an absent file is an empty lock.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid lock file: {e}; fix it, or delete it and run `soar plugin install` again",
                path.display()
            )
        })
    }

    /// Write atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut me = self.clone();
        me.version = 1;
        me.plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let body = toml::to_string(&me)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::write(tmp.path(), format!("{HEADER}{body}"))?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Change the lock file at `path` with `change` (which says whether it
    /// changed anything), read and written under an exclusive `flock` on
    /// its directory, so two soar processes pinning at once (deploys of two
    /// environments, which no longer share a lock) do not lose each other's
    /// pin. The directory, not the file, is locked: the file is replaced
    /// by a rename on every write, and a lock on the old inode would not
    /// hold the next writer; no lock file is left beside `soar.lock`.
    /// Returns whether anything changed (and was written).
    pub fn update(path: &Path, change: impl FnOnce(&mut LockFile) -> bool) -> anyhow::Result<bool> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let guard = std::fs::File::open(dir)
            .with_context(|| format!("opening {} to lock {FILE_NAME}", dir.display()))?;
        guard
            .lock()
            .with_context(|| format!("locking {} to update {FILE_NAME}", dir.display()))?;
        let mut lock = Self::read(path)?;
        let changed = change(&mut lock);
        if changed {
            lock.write(path)?;
        }
        // Unlocked when `guard` closes.
        Ok(changed)
    }

    /// The pin of `name`.
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Drop the pin of `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.plugins.len();
        self.plugins.retain(|p| p.name != name);
        self.plugins.len() != before
    }

    /// Add or replace the pin of `pin.name`; whether anything changed.
    pub fn set(&mut self, pin: Pin) -> bool {
        match self.plugins.iter_mut().find(|p| p.name == pin.name) {
            Some(p) if *p == pin => false,
            Some(p) => {
                *p = pin;
                true
            }
            None => {
                self.plugins.push(pin);
                true
            }
        }
    }
}

/// The `source` of a bundled plugin's pin.
pub const BUNDLED_SOURCE: &str = "bundled";

/// The pin recording `entry` as it is now: its install record's version and
/// source for an installed plugin, `bundled` (and this soar's version) for a
/// bundled one.
pub fn pin_of(entry: &crate::catalog::Entry) -> Pin {
    match &entry.source {
        crate::catalog::Source::Installed { path: wasm } => {
            let meta = crate::catalog::InstallRecord::read(wasm.parent().unwrap_or(Path::new(".")));
            Pin {
                name: entry.name.clone(),
                version: meta.as_ref().map(|m| m.version.clone()).unwrap_or_default(),
                source: meta
                    .map(|m| m.source)
                    .unwrap_or_else(|| wasm.display().to_string()),
                sha256: entry.digest.clone(),
            }
        }
        crate::catalog::Source::Bundled => Pin {
            name: entry.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            source: BUNDLED_SOURCE.to_string(),
            sha256: entry.digest.clone(),
        },
    }
}

/// Record `entry` as the project's pin of its name (`soar plugin pin`).
/// Returns the lock file's path and whether anything changed.
pub fn pin(config_file: &Path, entry: &crate::catalog::Entry) -> anyhow::Result<(PathBuf, bool)> {
    let path = path_for(config_file);
    let changed = LockFile::update(&path, |lock| lock.set(pin_of(entry)))?;
    Ok((path, changed))
}

/// Refuse a plugin the project did not pin: another digest, or a switch
/// between the bundled plugin and an installed one of the same name (an
/// installed `digitalocean` must not silently replace the bundled one in a
/// project that used it). A plugin the lock does not list yet is pinned now
/// (trust on first use), bundled ones included.
///
/// One change is followed without asking: a bundled plugin pinned as
/// `bundled` whose digest changed while it is still the bundled one. It
/// comes with the soar binary itself (an upgrade of soar), which is the
/// trust root of every other check; the new digest is recorded and said.
pub fn check(
    config_file: &Path,
    entry: &crate::catalog::Entry,
    out: &crate::report::Reporter,
) -> anyhow::Result<()> {
    use crate::catalog::Source;
    let path = path_for(config_file);
    let lock = LockFile::read(&path)?;
    let bundled = entry.source == Source::Bundled;
    let installed_at = match &entry.source {
        Source::Installed { path } => path.display().to_string(),
        Source::Bundled => BUNDLED_SOURCE.to_string(),
    };
    match lock.get(&entry.name) {
        Some(pin) if pin.sha256 == entry.digest && (pin.source == BUNDLED_SOURCE) == bundled => {
            Ok(())
        }
        Some(pin) if pin.source == BUNDLED_SOURCE && bundled => {
            let old = pin.sha256.clone();
            write_bundled_pin(entry, &path);
            out.notice(&format!(
                "{}: the bundled plugin '{}' changed with this soar (sha256:{} -> sha256:{}); pinned the new one",
                path.display(),
                entry.name,
                &old[..old.len().min(12)],
                &entry.digest[..12]
            ));
            Ok(())
        }
        Some(pin) if pin.source == BUNDLED_SOURCE => anyhow::bail!(
            "{lock} pins the bundled plugin '{name}', but on this machine an installed plugin replaces it ({installed_at}, sha256:{got}); refusing to switch this project to it. To use the installed one in this project, run `soar plugin pin {name}` here (it shows what it may reach and records it in {file}); to use the bundled one again everywhere, run `soar plugin remove {name}`",
            lock = path.display(),
            name = entry.name,
            got = entry.digest,
            file = FILE_NAME,
        ),
        Some(pin) if bundled => anyhow::bail!(
            "{lock} pins an installed plugin '{name}' (sha256:{want}, {version} from {from}), but this machine has only the bundled '{name}' (sha256:{got}); refusing to switch this project to it. To get the pinned one back, run `soar plugin install {from} --sha256 {want} --override-bundled`; to use the bundled one in this project, run `soar plugin pin {name}` here",
            lock = path.display(),
            name = entry.name,
            want = pin.sha256,
            version = crate::terminal::line(&pin.version),
            from = pin.source,
            got = entry.digest,
        ),
        Some(pin) => anyhow::bail!(
            "plugin '{name}' is sha256:{got} ({source}), but {lock} pins sha256:{want} ({version} from {from}); \
             refusing to run a plugin the project did not pin. If the change is expected, run `soar plugin update {name}` \
             (it shows what the new plugin may reach and records it in {file}); to get the pinned one back, run \
             `soar plugin install {from} --sha256 {want}`",
            name = entry.name,
            got = entry.digest,
            source = entry.source,
            lock = path.display(),
            want = pin.sha256,
            version = crate::terminal::line(&pin.version),
            from = pin.source,
            file = FILE_NAME,
        ),
        None => {
            if bundled {
                write_bundled_pin(entry, &path);
            } else {
                LockFile::update(&path, |lock| lock.set(pin_of(entry)))?;
            }
            if !bundled && crate::catalog::Catalog::is_bundled(&entry.name) {
                out.warn(&format!(
                    "this project now uses the installed '{name}' ({installed_at}), which replaces the \
                     bundled '{name}' on this machine; {lock} pins it at sha256:{digest}",
                    name = entry.name,
                    lock = path.display(),
                    digest = &entry.digest[..12],
                ));
            } else {
                out.notice(&format!(
                    "{}: pinned plugin '{}' ({}) at sha256:{}",
                    path.display(),
                    entry.name,
                    entry.source,
                    &entry.digest[..12]
                ));
            }
            Ok(())
        }
    }
}

/// A bundled plugin's pin is written when possible: a project whose
/// directory is read-only still plans and deploys with the bundled plugin
/// (it cannot be switched by an install anyway without this pin, which is
/// said).
fn write_bundled_pin(entry: &crate::catalog::Entry, path: &Path) {
    if let Err(e) = LockFile::update(path, |lock| lock.set(pin_of(entry))) {
        tracing::warn!(
            "cannot record the bundled plugin in {}: {e:#}; an installed plugin of the same name would not be refused in this project",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str) -> Pin {
        Pin {
            name: name.into(),
            version: "1.0.0".into(),
            source: "bundled".into(),
            sha256: "ab".repeat(32),
        }
    }

    /// Many writers at once (deploys of several environments pinning on
    /// first use): every pin is kept, none lost to another's rename.
    #[test]
    fn concurrent_updates_keep_every_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    LockFile::update(&path, |l| l.set(pin(&format!("plugin-{i:02}")))).unwrap()
                })
            })
            .collect();
        for w in writers {
            assert!(w.join().unwrap(), "each writer added its pin");
        }
        let lock = LockFile::read(&path).unwrap();
        assert_eq!(lock.plugins.len(), 16, "{lock:?}");
        assert!(
            !LockFile::update(&path, |l| l.set(pin("plugin-03"))).unwrap(),
            "an unchanged pin is not written again"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            [FILE_NAME],
            "no lock or temp file is left beside it"
        );
    }
}
