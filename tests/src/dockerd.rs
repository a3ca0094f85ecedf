//! A real Docker engine for tests, and a static build of the example
//! service that runs in a `FROM scratch` image (no registry, no Internet).
//!
//! [`engine`] finds a reachable engine: `DOCKER_HOST` or the default
//! socket when `docker info` answers there, else one this module starts as
//! root with its own `--data-root`, `--exec-root`, `--pidfile` and unix
//! socket under `$TMPDIR/soar-test-dockerd` (reused by later runs; it uses
//! the default `docker0` bridge, so it can only start when no other engine
//! runs on the machine, in which case `docker info` would have answered).
//! One engine is shared by every test: tests name their services uniquely
//! and remove what they create.
//!
//! [`require_engine`] is what tests call: with `CI=true` a missing engine
//! fails the test; elsewhere the test is skipped with a loud message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The Debian package that provides `dockerd` and `docker`.
pub const PACKAGE: &str = "docker.io";

/// A reachable Docker engine.
#[derive(Debug, Clone)]
pub struct Engine {
    /// `unix:///...` of an engine started here; `None` for the engine the
    /// environment points at (`DOCKER_HOST` or the default socket).
    pub host: Option<String>,
}

impl Engine {
    /// The CLI line that reaches this engine, for `sh` and soar.toml's
    /// `artifact.docker_command`: `docker` or `docker -H unix:///...`.
    pub fn cli(&self) -> String {
        match &self.host {
            Some(h) => format!("docker -H {h}"),
            None => match std::env::var("DOCKER_HOST") {
                // SSH sessions do not inherit this process's environment.
                Ok(h) if !h.is_empty() => format!("docker -H {h}"),
                _ => "docker".into(),
            },
        }
    }

    /// `docker` with the arguments that reach this engine.
    pub fn command(&self) -> Command {
        let mut c = Command::new("docker");
        if let Some(h) = &self.host {
            c.args(["-H", h]);
        }
        c
    }

    /// Run `docker <args>` against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    /// `docker <args>`'s stdout, when it succeeds.
    pub fn stdout(&self, args: &[&str]) -> Option<String> {
        let out = self.docker(args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Write a build context in `dir` for a `FROM scratch` image of the
/// static hello ([`static_hello`]) answering "hello <version>"; an
/// unhealthy one listens on the container's 127.0.0.1 only, which a
/// published port cannot reach. Panics when the binary cannot be built.
pub fn write_hello_image(dir: &Path, version: &str, healthy: bool) {
    std::fs::create_dir_all(dir).expect("creating the build context");
    let bin = static_hello().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&bin, dir.join("hello")).expect("copying the static hello");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY hello /hello\nENV GREETING=\"hello {version}\"\n{}ENTRYPOINT [\"/hello\"]\n",
            if healthy { "ENV BIND_ADDR=0.0.0.0\n" } else { "" }
        ),
    )
    .expect("writing the Dockerfile");
}

/// A service name no other test (or run) uses on the shared engine:
/// `dk<tag>-<pid>-<n>`.
pub fn unique_service(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "dk{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// What a test made on the shared engine, removed when it is dropped —
/// the test passed or failed: containers, and every tag of some image
/// repositories (or single references).
pub struct Leftovers {
    engine: &'static Engine,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Leftovers {
    /// A docker service's container and image repository, both
    /// `soar-<service>` as a rollout names them.
    pub fn of_service(engine: &'static Engine, service: &str) -> Self {
        let name = format!("soar-{service}");
        Self {
            engine,
            containers: vec![name.clone()],
            images: vec![name],
        }
    }

    /// Also a container (a colour of the proxy switch, say).
    pub fn container(mut self, name: impl Into<String>) -> Self {
        self.containers.push(name.into());
        self
    }

    /// Also every tag of an image repository (or one `repo:tag`), such as
    /// the test's own build tag.
    pub fn image(mut self, repository: impl Into<String>) -> Self {
        self.images.push(repository.into());
        self
    }

    /// Every `repo:tag` the engine holds of the images named.
    pub fn image_tags(&self) -> Vec<String> {
        self.images
            .iter()
            .flat_map(|repository| {
                self.engine
                    .stdout(&["images", "--format", "{{.Repository}}:{{.Tag}}", repository])
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.engine.docker(&["rm", "-f", c]);
        }
        for image in self.image_tags() {
            let _ = self.engine.docker(&["rmi", "-f", &image]);
        }
    }
}

/// Whether `docker info` answers through `host` (or the default).
fn answers(host: Option<&str>) -> bool {
    let mut c = Command::new("docker");
    if let Some(h) = host {
        c.args(["-H", h]);
    }
    c.arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        || Path::new("/usr/sbin").join(program).is_file()
}

/// The directory of the engine this module starts.
fn own_dir() -> PathBuf {
    std::env::temp_dir().join("soar-test-dockerd")
}

/// Find or start an engine (once per process).
pub fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| find_or_start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn find_or_start() -> anyhow::Result<Engine> {
    anyhow::ensure!(
        on_path("docker") && on_path("dockerd"),
        "the Docker engine is not installed: apt-get install -y {PACKAGE}"
    );
    if answers(None) {
        return Ok(Engine { host: None });
    }
    let dir = own_dir();
    let host = format!("unix://{}", dir.join("docker.sock").display());
    if answers(Some(&host)) {
        return Ok(Engine { host: Some(host) });
    }
    let uid = Command::new("id").arg("-u").output()?;
    anyhow::ensure!(
        String::from_utf8_lossy(&uid.stdout).trim() == "0",
        "no Docker engine answers (`docker info` fails) and only root can start one: \
         start dockerd (package {PACKAGE}) or set DOCKER_HOST"
    );
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("dockerd.log"))?;
    let mut cmd = Command::new("dockerd");
    cmd.arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .args(["-H", &host])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: it outlives this test process, and later
    // runs reuse it.
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut child = cmd.spawn().context("starting dockerd")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if answers(Some(&host)) {
            return Ok(Engine { host: Some(host) });
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "dockerd exited ({status}) before answering; its log:\n{}",
                tail(&dir.join("dockerd.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!(
        "dockerd did not answer within 60 s; its log:\n{}",
        tail(&dir.join("dockerd.log"))
    )
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The engine for a test that needs one. With `CI=true` a missing engine
/// fails the test (CI installs and starts it: `.ci/run`); elsewhere the
/// test is skipped, saying so loudly.
pub fn require_engine() -> Option<&'static Engine> {
    match engine() {
        Ok(e) => Some(e),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Docker tests need a Docker engine (CI=true, so this is not skipped): {why}")
        }
        Err(why) => {
            // Straight to stderr, not `eprintln!`: the test harness captures
            // that for passing tests, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!\n!!! SKIPPED (no Docker engine): {why}\n!!! install and start one (apt-get install -y {PACKAGE}; dockerd &); with CI=true this fails instead\n!!!!!!!!"
            );
            None
        }
    }
}

/// The example service (`examples/hello`) linked statically, so it runs in
/// a `FROM scratch` image: built once per process with
/// `-C target-feature=+crt-static` into `target/docker-hello` (its own
/// target dir, so the different RUSTFLAGS never invalidate the shared one).
pub fn static_hello() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_static_hello().map_err(|e| format!("{e:#}")))
        .clone()
}

fn build_static_hello() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target_dir = workspace.join("target/docker-hello");
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--quiet", "-p", "soar-example-hello", "--target"])
        .arg(&triple)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .context("running cargo build")?;
    anyhow::ensure!(
        out.status.success(),
        "building the static hello failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target_dir.join(&triple).join("debug/hello");
    anyhow::ensure!(bin.is_file(), "cargo built no {}", bin.display());
    Ok(bin)
}
