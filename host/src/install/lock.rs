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
    pub name: String,
    pub version: String,
    /// Where it was installed from (URL or path; `bundled` for first-party).
    pub source: String,
    pub sha256: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct LockFile {
    #[serde(default = "one")]
    pub version: u32,
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

    /// The pin of `name`.
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.plugins.iter().find(|p| p.name == name)
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

/// Refuse a plugin whose digest differs from the project's pin; pin an
/// installed plugin the lock does not know yet (trust on first use).
/// Bundled plugins are pinned only when the lock already lists them (they
/// change with every soar release).
pub fn check(config_file: &Path, entry: &crate::catalog::Entry) -> anyhow::Result<()> {
    let path = path_for(config_file);
    let mut lock = LockFile::read(&path)?;
    match lock.get(&entry.name) {
        Some(pin) if pin.sha256 == entry.digest => Ok(()),
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
            version = pin.version,
            from = pin.source,
            file = FILE_NAME,
        ),
        None => {
            if let crate::catalog::Source::Installed { path: wasm } = &entry.source {
                let meta = super::InstallRecord::read(wasm.parent().unwrap_or(Path::new(".")));
                lock.set(Pin {
                    name: entry.name.clone(),
                    version: meta.as_ref().map(|m| m.version.clone()).unwrap_or_default(),
                    source: meta
                        .map(|m| m.source)
                        .unwrap_or_else(|| wasm.display().to_string()),
                    sha256: entry.digest.clone(),
                });
                lock.write(&path)?;
                eprintln!(
                    "{}: pinned plugin '{}' at sha256:{}",
                    path.display(),
                    entry.name,
                    &entry.digest[..12]
                );
            }
            Ok(())
        }
    }
}
