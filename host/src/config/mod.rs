//! soar.toml: parsing and validation with file:line:col diagnostics.
//!
//! The file is the user-facing contract of soar, so every problem is
//! reported at the line to edit, says what is wrong and what to write
//! instead, and all problems are reported at once. Values are checked
//! before any plugin runs: names that become resource identities, ports,
//! durations, grants, and above all that no secret was pasted inline.
//!
//! Provider settings (every non-reserved key of `[env.<name>]`) are passed
//! through to the plugin as JSON untouched; the plugin validates them, and
//! [`locate`] maps the field a plugin complains about back to a position.

mod deploy;
mod diagnostics;
mod duration;
mod environment;
mod fields;
mod grants;
mod identity;
mod image;
mod schema;
mod secrets;
pub mod settings;
mod spans;
mod spelling;
pub mod spot;
mod ssh;
mod state;
mod switch;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use crate::artifact::Kind;
use crate::broker::http::policy::Grants;

pub use diagnostics::{ConfigError, Diagnostic};
pub use duration::parse_duration;
pub use identity::{RESERVED_NAMES, check_name, suggest_name};
pub use image::{DEFAULT_PASSWORD_ENV, RegistryImage, parse_reference};
pub use secrets::{credential_format, is_env_var_name, pasted_secret};
pub use spans::locate;
pub use ssh::ClientConfigChoice;
pub use state::StateSettings;
pub use switch::{ProxySwitch, Switch};
pub use template::init_template;

/// The file name soar looks for.
pub const FILE_NAME: &str = "soar.toml";

/// A validated `soar.toml`: everything the engine needs to deploy, with
/// defaults applied, so no later stage re-checks or re-defaults anything.
#[derive(Debug, Clone)]
pub struct Project {
    /// Absolute directory of `soar.toml`: relative paths, `build` and hooks
    /// run from here.
    pub root: PathBuf,
    /// The file as the user named it, so messages show the path they typed.
    pub file: PathBuf,
    /// `[app]`.
    pub app: App,
    /// `[artifact]`: what gets deployed.
    pub artifact: ArtifactSpec,
    /// `[hooks]`: commands around each deploy.
    pub hooks: Hooks,
    /// `[register]`: where to announce deployed services, if anywhere.
    pub register: Option<Register>,
    /// `[monitor]`: where `soar monitor` announces health transitions.
    pub monitor: MonitorSettings,
    /// `[state]`: where the state lives when a team shares it.
    pub state: StateSettings,
    /// `[env.<name>]` by name, each with `[deploy]` merged in.
    pub environments: BTreeMap<String, Environment>,
}

/// `[app]`: the identity every resource name derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Passes [`check_name`].
    pub name: String,
}

/// `[artifact]`: what to package and how to run it.
#[derive(Debug, Clone)]
pub struct ArtifactSpec {
    /// Which runner the target uses. The contract's kinds must be supported
    /// by the plugin; `docker` is the host's own (see [`Kind`]).
    pub kind: Kind,
    /// Absolute path of the file or directory to package.
    pub path: PathBuf,
    /// Shell command run in [`Project::root`] before packaging; when set,
    /// `path` need not exist until it has run.
    pub build: Option<String>,
    /// How to run a `script` artifact (e.g. `python3 app.py`).
    pub command: Option<String>,
    /// Expected SHA-256 (hex) of a `tarball`, checked before upload.
    pub sha256: Option<String>,
    /// Setup script inside a `tarball`; the runner defaults to `setup.sh`.
    pub setup: Option<String>,
    /// How a `docker` artifact runs on its hosts (defaults for other kinds).
    pub docker: DockerSettings,
}

/// `[artifact]` keys of a `docker` artifact: how the image runs on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The docker CLI as run on the hosts (`docker_command`, default
    /// `docker`), e.g. `sudo docker` or `docker -H unix:///run/x.sock`.
    /// Run through `sh`, so it is trusted like every other command line in
    /// soar.toml.
    pub command: String,
    /// Host address the service port is published on (`publish`):
    /// `0.0.0.0` (default) or `127.0.0.1`. All interfaces by default because
    /// the service's URL is `http://<host>:<port>` and a container, unlike a
    /// process, cannot choose its host-side address itself; `127.0.0.1`
    /// keeps it to the host (for a reverse proxy there). Either way the
    /// health check reaches it at 127.0.0.1 on the host. Note that Docker's
    /// published ports bypass host firewalls such as ufw.
    pub publish: String,
    /// The port the process inside the container listens on
    /// (`container_port`); `None` = the service port. When set, `PORT`
    /// inside the container is this port.
    pub container_port: Option<u16>,
    /// The registry image the hosts pull (`image`, with `registry_user`
    /// and `registry_password_env`); `None` when `path` holds an archive or
    /// a build context that travels over SSH.
    pub image: Option<RegistryImage>,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            command: "docker".into(),
            publish: "0.0.0.0".into(),
            container_port: None,
            image: None,
        }
    }
}

/// How the service runs in one environment: `[deploy]` merged with
/// `[env.<name>.deploy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySettings {
    /// Service name (defaults to the app name); passes [`check_name`].
    pub service: String,
    /// Port the service listens on; `None` lets the local target pick one.
    pub port: Option<u16>,
    /// Plain environment variables for the service.
    pub env: BTreeMap<String, String>,
    /// Service variable -> name of the host environment variable holding
    /// its value; the value itself is read only at deploy time.
    pub secrets: BTreeMap<String, String>,
    /// Releases kept for rollback (at least 1, default 5).
    pub keep_releases: u32,
    /// How a release is judged healthy before traffic moves to it.
    pub health: HealthCheck,
    /// How many hosts change at once.
    pub rollout: Rollout,
    /// How a new release takes over on a host (`switch`, `proxy`).
    pub switch: Switch,
}

/// An HTTP health check: `GET path` on `port` until it answers 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Request path, starting with `/` (default `/health`).
    pub path: String,
    /// Port to probe; defaults to the service port. `None` when neither is
    /// set: probe whatever port the target allocated.
    pub port: Option<u16>,
    /// Give up after this long (default 30s).
    pub timeout: Duration,
    /// Wait between attempts (default 1s).
    pub interval: Duration,
    /// Attempts before giving up (default 30).
    pub retries: u32,
    /// `health.monitor`: how often `soar monitor` checks the deployed
    /// service; `None` (the default) leaves it to `--interval`.
    pub monitor: Option<Duration>,
}

/// How a release moves across hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Hosts per batch; `None` means all at once.
    pub batch: Option<Batch>,
    /// Hosts prepared concurrently within a batch; `None` is the engine's
    /// default.
    pub parallelism: Option<usize>,
}

/// A rollout batch size, absolute or relative to the number of hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many hosts (at least 1).
    Count(usize),
    /// This percentage of hosts (1..=100), rounded up to at least one host.
    Percent(u8),
}

/// `[hooks]`: shell commands run in [`Project::root`] around a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Runs before anything changes; failing aborts the deploy.
    pub pre_deploy: Option<String>,
    /// Runs after a successful deploy.
    pub post_deploy: Option<String>,
    /// Runs after a failed deploy (for notifications).
    pub on_failure: Option<String>,
    /// Runs when `soar monitor` sees a healthy service become unhealthy.
    pub on_unhealthy: Option<String>,
    /// Each hook is killed after this long (default 60s).
    pub timeout: Duration,
}

/// `[monitor]`: announcements of `soar monitor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorSettings {
    /// An http(s) URL POSTed each health transition as JSON.
    pub webhook: Option<String>,
}

/// `[register]`: a service registry told about each deployed service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// An http(s) URL.
    pub url: String,
}

/// One `[env.<name>]`: a provider, its settings and everything the host
/// needs to run it there.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The environment name; passes [`check_name`].
    pub name: String,
    /// Plugin name, one of the known providers.
    pub provider: String,
    /// Every non-reserved key of the table, as a JSON object, for the
    /// plugin to validate against its own schema.
    pub settings: serde_json::Value,
    /// `[deploy]` with this environment's overrides applied.
    pub deploy: DeploySettings,
    /// `[env.<name>.grants]`, for the HTTP policy.
    pub grants: Grants,
    /// `[env.<name>.credentials]`: credential name -> name of the
    /// environment variable holding it.
    pub credentials: BTreeMap<String, String>,
    /// `[env.<name>.ssh]`: how to reach the environment's hosts.
    pub ssh: SshConfig,
    /// Line of the `[env.<name>]` header, for messages about the whole
    /// environment.
    pub line: usize,
}

/// `[env.<name>.ssh]` (see the `ssh` module for the keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    /// Hosts listed in the config (not created by the provider).
    pub hosts: Vec<(String, Option<u16>)>,
    /// The remote user; `None`: the provider's default, else root.
    pub user: Option<String>,
    /// The SSH port of hosts that name none; `None`: 22.
    pub port: Option<u16>,
    /// The private key to log in with; `None`: ssh-agent, then `~/.ssh/id_*`.
    pub identity_file: Option<PathBuf>,
    /// Soar's own known-hosts file (default `<project>/.soar/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Prefix of every remote path ("" in production); `{host}`, `{port}`.
    pub remote_prefix: String,
    /// The systemctl command (default `systemctl`); `{prefix}` expands.
    pub systemctl: Option<String>,
    /// Run the rollout's commands through `sudo -n` (for a non-root user).
    pub use_sudo: bool,
    /// `User=` of the unit: `None` = the service name, `""` = none.
    pub service_user: Option<String>,
    /// How long connecting to a host may take; `None`: the broker's 15 s.
    pub connect_timeout: Option<Duration>,
    /// address or address:port -> (address, port) actually connected to.
    pub address_map: BTreeMap<String, (String, Option<u16>)>,
    /// The SSH client config read for `Host` aliases (`config`).
    pub client_config: ClientConfigChoice,
    /// `user@host[:port]` bastions (comma-separated) every host of the
    /// environment is reached through; replaces any `ProxyJump`.
    pub bastion: Option<String>,
}

/// Read and validate the file at `path`; `known_providers` are the
/// installed plugin names a `provider` may name.
pub fn load(path: &Path, known_providers: &[&str]) -> Result<Project, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = (e.kind() == std::io::ErrorKind::NotFound)
            .then(|| "run `soar init` to create one".to_string());
        ConfigError(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read the file: {e}"),
            hint,
        }])
    })?;
    parse(&text, path, known_providers)
}

/// Validate `text` as if read from `file`: paths (and the artifact's
/// existence) are resolved against `file`'s directory. Separate from
/// [`load`] so tests and tools can check text that is not on disk.
pub fn parse(text: &str, file: &Path, known_providers: &[&str]) -> Result<Project, ConfigError> {
    let mut report = diagnostics::Report::new(text, file);
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // A document that does not parse yields partial values; checking
        // them would only report phantoms.
        for e in &errors {
            schema::syntax_error(e, &mut report);
        }
        return Err(ConfigError(report.finish()));
    }
    secrets::scan(doc.get_ref(), &mut report);
    let ctx = schema::Context {
        root: project_root(file),
        known_providers,
    };
    let project = schema::project(doc.get_ref(), &ctx, &mut report);
    if report.is_clean() {
        Ok(project)
    } else {
        Err(ConfigError(report.finish()))
    }
}

/// The absolute directory holding `file`.
fn project_root(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The `soar.toml` in `start` or the nearest parent directory, so commands
/// work from anywhere inside a project.
pub fn find(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_searches_parents() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(find(&nested), None);
        std::fs::write(dir.path().join(FILE_NAME), "").unwrap();
        assert_eq!(find(&nested), Some(dir.path().join(FILE_NAME)));
        assert_eq!(find(dir.path()), Some(dir.path().join(FILE_NAME)));
    }

    #[test]
    fn load_reports_a_missing_file() {
        let err = load(Path::new("/nonexistent/soar.toml"), &["local"]).unwrap_err();
        assert_eq!(err.0.len(), 1);
        let shown = err.to_string();
        assert!(shown.starts_with("/nonexistent/soar.toml: cannot read the file"));
        assert!(shown.contains("soar init"));
    }

    #[test]
    fn load_reads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, init_template("hello")).unwrap();
        let project = load(&file, &["local"]).unwrap();
        assert_eq!(project.root, dir.path());
        assert_eq!(project.app.name, "hello");
    }

    #[test]
    fn syntax_errors_are_reported_alone() {
        let err = parse(
            "[app]\nname = \"hello\nport = 80\nport = 81\n",
            Path::new("soar.toml"),
            &[],
        )
        .unwrap_err();
        assert!(err.0.iter().all(|d| d.message.starts_with("invalid TOML")));
        assert_eq!(err.0[0].line, 2);
    }
}
