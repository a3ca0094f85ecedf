//! Fixtures shared by the suites of this binary, each written once here
//! instead of once per suite: how a test runs the `soar` binary in a sandbox
//! ([`soar`], [`Home`]), how it builds an in-process [`Runtime`] with the
//! bundled or test plugins ([`runtime`], [`bundled`], [`grants`],
//! [`Vars`]), and the AWS ([`aws`]), end-to-end ([`e2e`]) and secret-scan
//! ([`leak_scan`]) harnesses.
//!
//! Support that needs neither the `soar` binary nor the host library (fakes
//! of cloud APIs, loopback servers, launchers for sshd, moto and dockerd)
//! lives in the `soar-tests` crate instead.

pub mod aws;
pub mod browser;
pub mod e2e;
pub mod examples;
pub mod leak_scan;
pub mod postgres;
pub mod rss;
pub mod running;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use soar::broker::http::policy::Grants;
use soar::catalog::Catalog;
use soar::credentials::SecretSource;
use soar::runtime::{Limits, Plugin, Runtime, RuntimeConfig};

/// The `soar` binary under test.
pub const SOAR: &str = env!("CARGO_BIN_EXE_soar");

/// The compile cache of every test, in-process runtimes and `soar` children
/// alike: entries are keyed by the component's digest and written
/// atomically, so the parallel tests share it safely and each component is
/// compiled once per build of the host, not once per suite.
pub fn compile_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soar-compile-cache")
}

/// `soar`, not yet started, run in `cwd` with the isolated environment of
/// the sandbox directory `sandbox`: `HOME` is `<sandbox>/home` and the data
/// directory (installed plugins, credentials) `<sandbox>/data`; the compile
/// cache is the shared [`compile_cache`]; `SOAR_LOG` from the shell running
/// the tests is dropped; stdin is closed. The caller adds its arguments and
/// the variables its project's `[env.*.credentials]` name.
pub fn soar(sandbox: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(SOAR);
    cmd.current_dir(cwd)
        .env("HOME", sandbox.join("home"))
        .env("SOAR_DATA_DIR", sandbox.join("data"))
        .env("SOAR_CACHE_DIR", compile_cache())
        .env_remove("SOAR_LOG")
        .stdin(Stdio::null());
    // A developer's shell may point soar at a server or a shared state
    // store; the tests use neither unless they say so.
    for var in ["SOAR_SERVER", "SOAR_SERVER_TOKEN", "SOAR_STATE_URL"] {
        cmd.env_remove(var);
    }
    cmd
}

/// A `soar serve` that has said where it listens.
pub struct Listening {
    /// The server process.
    pub child: std::process::Child,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
}

/// Start `serve` (a `soar serve ...` command) with its stderr in `log`, and
/// wait for its `soar serve: listening on SCHEME://ADDR` line; the lines a
/// worker of a shared queue prints first are skipped. Panics with the log
/// when the server says anything else or exits.
pub fn listening(mut serve: Command, log: &Path) -> Listening {
    use std::io::{BufRead as _, BufReader};
    let mut child = serve
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting soar serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    while first.is_empty() || first.starts_with("soar serve: worker ") {
        first.clear();
        if stdout.read_line(&mut first).unwrap() == 0 {
            break;
        }
    }
    let rest = first.trim().strip_prefix("soar serve: listening on ");
    let (scheme, addr) = match rest.and_then(|r| r.split_once("://")) {
        Some(("https", a)) => ("https", a),
        Some(("http", a)) => ("http", a),
        _ => panic!(
            "unexpected first line {first:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    };
    Listening {
        child,
        scheme,
        addr: addr.parse().unwrap(),
    }
}

/// `soar -c <config> <args>` with `vars` set and `unset` removed from the
/// environment, run to completion and echoed to stderr with its wall time.
/// Panics when any of `secrets` is in what it printed: a project's
/// credentials and secrets must never reach the output.
pub fn soar_guarded(
    config: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    unset: &[&str],
    secrets: &[&str],
) -> Output {
    let started = Instant::now();
    let mut cmd = Command::new(SOAR);
    cmd.arg("-c")
        .arg(config)
        .args(args)
        .envs(vars.iter().copied());
    for name in unset {
        cmd.env_remove(name);
    }
    let out = cmd.output().expect("running soar");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    eprintln!(
        "$ soar {} ({:.1} s)\n{o}\n{e}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            !o.contains(secret) && !e.contains(secret),
            "secret #{i} leaked into the output of soar {}",
            args.join(" ")
        );
    }
    out
}

/// The first ```` ```lang ```` block under README's `### heading`: what
/// README documents (a policy, a scope list), read from README itself so a
/// test and the document cannot drift apart.
pub fn readme_block(heading: &str, lang: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let section = readme
        .split_once(&format!("### {heading}\n"))
        .unwrap_or_else(|| panic!("README has no \"### {heading}\" section"))
        .1;
    let block = section
        .split_once(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("README's \"{heading}\" holds no {lang} block"))
        .1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

/// The exit code, stdout and stderr of a finished command, labelled, for
/// assertion messages.
pub fn transcript(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Bytes a command printed, as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Write `bytes` to `dir/rel`, creating the directories on the way; the
/// file's path.
pub fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    let parent = path.parent().expect("a relative path names a file");
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// The libtest name of the test `name` declared in `module` (pass
/// `module_path!()`): what a test hands to this same binary, with `--exact`,
/// to re-run one test in a child process of its own.
///
/// `module_path!()` starts with the crate (`all::state_lock`); libtest names
/// leave the crate out (`state_lock::child_process_entry`).
pub fn this_test(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

// ---------------------------------------------------------------------------
// In-process runtimes.
// ---------------------------------------------------------------------------

/// A runtime with `limits`, compiling through the shared [`compile_cache`].
pub fn runtime(limits: Limits) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(compile_cache()),
        limits,
    })
    .expect("a runtime")
}

/// The bundled plugin `name` (`cloudflare`, `digitalocean`, `aws-spot`...)
/// loaded into `runtime`.
pub async fn bundled(runtime: &Runtime, name: &str) -> Plugin {
    let catalog = Catalog::discover(None).expect("the bundled plugins");
    let entry = catalog
        .get(name)
        .unwrap_or_else(|e| panic!("bundled plugin {name}: {e:#}"));
    runtime
        .load(name, &entry.bytes)
        .await
        .unwrap_or_else(|e| panic!("loading the bundled {name} plugin: {e:#}"))
}

/// The grants of a test environment, `[env.test.grants]`: base URLs for the
/// plugin's endpoints, by name (the tests point them at fakes), and no
/// extra hosts.
pub fn grants(endpoints: &[(&str, &str)]) -> Grants {
    Grants {
        endpoints: endpoints
            .iter()
            .map(|(name, url)| (name.to_string(), url.to_string()))
            .collect(),
        hosts: vec![],
        section: "[env.test.grants] in soar.toml".into(),
    }
}

/// The variables a session reads credentials from, given by the test: the
/// tests of this binary share one process environment, so none of them
/// reads or sets it.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    /// Exactly these variables.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// No variables at all.
    pub fn none() -> Self {
        Self::default()
    }
}

impl SecretSource for Vars {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

// ---------------------------------------------------------------------------
// `soar` with a sealed environment.
// ---------------------------------------------------------------------------

/// A throwaway `HOME`, holding the data directory (`data/`) and the
/// projects of a test. Its commands see nothing of the environment running
/// the tests but `PATH`: only this `HOME`, its data directory, the shared
/// compile cache and the variables given to [`Home::with_var`].
pub struct Home {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Default for Home {
    fn default() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary HOME"),
            vars: Vec::new(),
        }
    }
}

impl Home {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every command also gets `name=value`.
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where `soar plugin install` puts plugins.
    pub fn plugins(&self) -> PathBuf {
        self.path().join("data/plugins")
    }

    /// Write `bytes` to `rel` under this HOME; the file's path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        write(self.path(), rel, bytes)
    }

    /// `soar` in `cwd` with this HOME's sealed environment, not yet started.
    pub fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(SOAR);
        cmd.current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("SOAR_DATA_DIR", self.path().join("data"))
            .env("SOAR_CACHE_DIR", compile_cache())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// `soar <args>` in `cwd`, run to completion.
    pub fn soar_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let out = self.command(cwd).args(args).output().expect("running soar");
        Run::from(out)
    }

    /// `soar <args>` in this HOME, run to completion.
    pub fn soar(&self, args: &[&str]) -> Run {
        self.soar_in(self.path(), args)
    }
}

/// What one `soar` run printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// stdout then stderr, as written (not decoded).
    pub raw: Vec<u8>,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        let mut raw = out.stdout.clone();
        raw.extend_from_slice(&out.stderr);
        Self {
            code: out.status.code(),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
            raw,
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Assert that `soar` succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "soar failed:\n{self:#?}");
        self
    }

    /// Assert that `soar` failed, saying `needle` on stdout or stderr.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Self {
        assert_ne!(self.code, Some(0), "soar should have failed:\n{self:#?}");
        assert!(
            self.stderr.contains(needle) || self.stdout.contains(needle),
            "expected {needle:?} in the output:\n{self:#?}"
        );
        self
    }
}
