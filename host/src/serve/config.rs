//! `soar-server.toml`: where the server listens, the projects it deploys
//! (by NAME, each a directory holding a `soar.toml`) and its queue limits.
//!
//! ```toml
//! listen = "127.0.0.1:8007"
//! [queue]
//! per_provider = 2            # jobs running at once per provider
//! shutdown_timeout = "60s"    # on SIGTERM: how long running jobs may finish
//! max_queued = 1000           # jobs waiting at once; more are refused (429)
//! retries = 2                 # further attempts after a transient failure
//! backoff = "2s"              # wait before the first retry, doubled each time...
//! max_backoff = "60s"         # ...up to this
//! url = "postgres://soar@db:5432/soar"  # optional: one queue shared by every
//!                             # server pointed at it (password: PGPASSWORD/~/.pgpass)
//! lease = "30s"               # a worker silent this long loses its job
//! [bundles]                   # projects uploaded as tar.gz (POST /v1/bundles)
//! max_bytes = 33554432        # compressed upload (32 MiB)
//! max_unpacked_bytes = 268435456   # all files together once unpacked (256 MiB)
//! max_entries = 10000         # files, directories and links
//! [secrets]                   # NAME a deploy request may use -> the server's env var
//! DATABASE_URL = "PROD_DATABASE_URL"
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
    #[serde(default)]
    bundles: RawBundles,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundles {
    max_bytes: Option<u64>,
    max_unpacked_bytes: Option<u64>,
    max_entries: Option<u64>,
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
    retries: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
    url: Option<String>,
    lease: Option<String>,
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
    /// How transient failures are retried.
    pub retry: super::retry::Policy,
    /// Caps on uploaded bundles.
    pub bundles: super::bundle::Limits,
    /// Secret NAME a request may give -> the server's environment variable
    /// holding its value (`[secrets]`). Requests carry only the NAME.
    pub secrets: BTreeMap<String, String>,
    /// `[queue] url` and `lease`: the PostgreSQL database whose queue this
    /// server works with every other server pointed at it, and how long a
    /// silent worker keeps a job; none: this server's own queue.
    pub shared_queue: Option<(String, std::time::Duration)>,
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
        let duration = |key: &str, value: Option<&str>, default: u64| match value {
            None => Ok(std::time::Duration::from_secs(default)),
            Some(t) => crate::config::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("{}: [queue] {key}: {e}", file.display())),
        };
        let shutdown_timeout = duration(
            "shutdown_timeout",
            raw.queue.shutdown_timeout.as_deref(),
            60,
        )?;
        let defaults = super::retry::Policy::default();
        let retry = super::retry::Policy {
            retries: raw.queue.retries.unwrap_or(defaults.retries),
            backoff: duration(
                "backoff",
                raw.queue.backoff.as_deref(),
                defaults.backoff.as_secs(),
            )?,
            max_backoff: duration(
                "max_backoff",
                raw.queue.max_backoff.as_deref(),
                defaults.max_backoff.as_secs(),
            )?,
        };
        anyhow::ensure!(
            retry.retries <= 10 && retry.backoff <= retry.max_backoff,
            "{}: [queue] retries must be 0-10 and backoff at most max_backoff ({:?} > {:?})",
            file.display(),
            retry.backoff,
            retry.max_backoff
        );
        let lease = duration(
            "lease",
            raw.queue.lease.as_deref(),
            super::shared_queue::DEFAULT_LEASE.as_secs(),
        )?;
        anyhow::ensure!(
            lease >= std::time::Duration::from_secs(1),
            "{}: [queue] lease must be at least 1s",
            file.display()
        );
        let shared_queue = raw.queue.url.map(|url| (url, lease));
        let bundles = super::bundle::Limits::from_config(
            raw.bundles.max_bytes,
            raw.bundles.max_unpacked_bytes,
            raw.bundles.max_entries,
        );
        for (name, var) in &raw.secrets {
            anyhow::ensure!(
                crate::config::is_env_var_name(name) && crate::config::is_env_var_name(var),
                "{}: [secrets] {name} = {var:?}: both the NAME and the variable it names must look like A_NAME (A-Z, 0-9, _)",
                file.display()
            );
        }
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
            retry,
            bundles,
            secrets: raw.secrets,
            shared_queue,
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
        assert_eq!(c.retry, crate::serve::retry::Policy::default());
        let retry = ServerConfig::parse(
            "[queue]\nretries = 1\nbackoff = \"100ms\"\n[secrets]\nDB = \"PROD_DB\"\n",
            &file,
        )
        .unwrap();
        assert_eq!(retry.retry.retries, 1);
        assert_eq!(retry.retry.backoff.as_millis(), 100);
        assert_eq!(retry.secrets["DB"], "PROD_DB");
        assert!(ServerConfig::parse("[queue]\nbackoff = \"2m\"\n", &file).is_err());
        assert!(ServerConfig::parse("[secrets]\ndb = \"x y\"\n", &file).is_err());
        assert_eq!(c.projects["app"], dir.path().join("app"));
        assert_eq!(c.data_dir, dir.path().join(DATA_DIR));
        assert!(ServerConfig::parse("[projects.x]\npath = \"nope\"\n", &file).is_err());
        assert!(ServerConfig::parse("listen = \"here\"\n", &file).is_err());
        assert!(ServerConfig::parse("bogus = 1\n", &file).is_err());
        assert!(ServerConfig::parse("[projects.\"A/b\"]\npath = \"app\"\n", &file).is_err());
    }
}
