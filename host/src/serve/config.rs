//! `soar-server.toml`: where the server listens, the projects it deploys
//! (by NAME, each a directory holding a `soar.toml`) and its queue limits.
//!
//! ```toml
//! listen = "127.0.0.1:8007"
//! [queue]
//! per_provider = 2            # jobs running at once per provider
//! shutdown_timeout = "60s"    # on SIGTERM: how long running jobs may finish
//! max_queued = 1000           # jobs waiting at once; more are refused (429)
//! [tls]                       # optional: HTTPS (else plain HTTP, e.g. behind a proxy)
//! cert = "server.crt"         # PEM chain, relative to this file
//! key = "server.key"          # PEM private key
//! [projects.hello]
//! path = "examples/hello"     # relative to this file
//! ```
//!
//! Requests name projects only by these NAMEs, so no request can point the
//! server at any other directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The file `soar serve` reads from the current directory by default.
pub const FILE: &str = "soar-server.toml";
/// The deployer spec's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8007";
/// The server's own state directory, next to its config file.
pub const DATA_DIR: &str = ".soar-server";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    projects: BTreeMap<String, RawProject>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    per_provider: Option<usize>,
    shutdown_timeout: Option<String>,
    max_queued: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    path: PathBuf,
}

/// A loaded, checked server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `soar-server.toml` this was read from, for messages.
    pub file: PathBuf,
    /// `<dir of file>/.soar-server`: tokens, jobs, events.
    pub data_dir: PathBuf,
    /// The address the API listens on.
    pub listen: SocketAddr,
    /// Jobs running at once for one provider.
    pub per_provider: usize,
    /// On SIGTERM/SIGINT: how long running jobs may take to finish.
    pub shutdown_timeout: std::time::Duration,
    /// Most jobs queued at once; a submission beyond is refused (429).
    pub max_queued: i64,
    /// NAME -> absolute project directory.
    pub projects: BTreeMap<String, PathBuf>,
    /// (certificate chain, private key) PEM files, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl ServerConfig {
    /// Read `path` (default `./soar-server.toml`).
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::current_dir()?.join(FILE),
        };
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "cannot read the server config {} (write one with `listen = \"{DEFAULT_LISTEN}\"` and `[projects.NAME] path = \"DIR\"`, or pass --server-config PATH)",
                file.display()
            )
        })?;
        Self::parse(&text, &file)
    }

    /// Check `text` as if read from `file`.
    pub fn parse(text: &str, file: &Path) -> anyhow::Result<Self> {
        let raw: Raw = toml::from_str(text).with_context(|| format!("in {}", file.display()))?;
        let file = std::path::absolute(file)?;
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().with_context(|| {
            format!(
                "{}: listen = {listen:?} is not an address:port (e.g. \"{DEFAULT_LISTEN}\")",
                file.display()
            )
        })?;
        let per_provider = raw.queue.per_provider.unwrap_or(2);
        anyhow::ensure!(
            per_provider >= 1,
            "{}: [queue] per_provider must be at least 1",
            file.display()
        );
        let shutdown_timeout = match raw.queue.shutdown_timeout.as_deref() {
            None => std::time::Duration::from_secs(60),
            Some(t) => crate::config::parse_duration(t).map_err(|e| {
                anyhow::anyhow!("{}: [queue] shutdown_timeout: {e}", file.display())
            })?,
        };
        let mut projects = BTreeMap::new();
        for (name, p) in raw.projects {
            anyhow::ensure!(
                valid_name(&name),
                "{}: project name {name:?}: use 1-63 of a-z, 0-9, '-' and '_'",
                file.display()
            );
            let path = dir.join(&p.path);
            anyhow::ensure!(
                path.join("soar.toml").is_file(),
                "{}: [projects.{name}] path {}: no soar.toml there",
                file.display(),
                path.display()
            );
            projects.insert(name, std::path::absolute(path)?);
        }
        Ok(Self {
            data_dir: dir.join(DATA_DIR),
            file,
            listen,
            per_provider,
            shutdown_timeout,
            max_queued: raw.queue.max_queued.unwrap_or(1000).max(1),
            projects,
            tls: raw.tls.map(|t| (dir.join(t.cert), dir.join(t.key))),
        })
    }
}

/// A project NAME as requests may spell it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_projects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/soar.toml"), "").unwrap();
        let file = dir.path().join(FILE);
        let c = ServerConfig::parse("[projects.app]\npath = \"app\"\n", &file).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.per_provider, 2);
        assert_eq!(c.shutdown_timeout.as_secs(), 60);
        let short = ServerConfig::parse("[queue]\nshutdown_timeout = \"5s\"\n", &file).unwrap();
        assert_eq!(short.shutdown_timeout.as_secs(), 5);
        assert!(ServerConfig::parse("[queue]\nshutdown_timeout = \"soon\"\n", &file).is_err());
        assert_eq!(c.projects["app"], dir.path().join("app"));
        assert_eq!(c.data_dir, dir.path().join(DATA_DIR));
        assert!(ServerConfig::parse("[projects.x]\npath = \"nope\"\n", &file).is_err());
        assert!(ServerConfig::parse("listen = \"here\"\n", &file).is_err());
        assert!(ServerConfig::parse("bogus = 1\n", &file).is_err());
        assert!(ServerConfig::parse("[projects.\"A/b\"]\npath = \"app\"\n", &file).is_err());
    }
}
