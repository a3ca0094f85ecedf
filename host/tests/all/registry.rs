//! `[artifact] image`: hosts pull a release's image from a real registry
//! instead of receiving an archive over SSH. End to end through the built
//! `soar` binary, with real parts only: Debian's `docker-registry` (the
//! Distribution registry) started on a loopback port with htpasswd (bcrypt)
//! auth, images pushed to it by the test with the local Docker engine, and
//! a deploy onto a real OpenSSH `sshd` on loopback whose Docker engine
//! pulls them (dockerd allows plain HTTP to 127.0.0.0/8 registries).
//!
//! The registry password must appear nowhere but in the variable it is
//! read from: not in soar's output, state, audit trail or on the host
//! afterwards; a wrong one is refused with one line naming the variable.
//! Without the registry or the engine the test is skipped loudly, and with
//! `CI=true` it fails instead (`.ci/run` installs both).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use soar_tests::dockerd::{Engine, Leftovers, require_engine, write_hello_image};
use soar_tests::files::walk;
use soar_tests::sshd::{ClientKey, SshHost, available, free_port};

use crate::support::leak_scan::assert_no_secret;
use crate::support::{soar_guarded, text};

const USER: &str = "deployer";
const PASSWORD: &str = "reg1stry-pa55word-never-shown";
const WRONG: &str = "wrong-pa55word-also-never-shown";
const PASSWORD_ENV: &str = "SOAR_TEST_REGISTRY_PASSWORD";

/// The Debian package of the Distribution registry, and its binary.
const REGISTRY_PACKAGE: &str = "docker-registry";
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` on a loopback port with htpasswd auth, killed
/// when dropped.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Start one, or say why it cannot start (`None`: skipped).
    fn start() -> Option<Self> {
        let missing = !Path::new(REGISTRY_BIN).exists() || !on_path("htpasswd");
        if missing {
            let why = format!(
                "the registry test needs {REGISTRY_BIN} and htpasswd: apt-get install -y {REGISTRY_PACKAGE} apache2-utils"
            );
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{why} (CI=true, so this is not skipped)"
            );
            let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {why}\n");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        // bcrypt (-B), the only scheme the registry accepts; the password on
        // stdin (-i), not on a command line.
        let mut h = Command::new("htpasswd")
            .args(["-Bin", USER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running htpasswd");
        h.stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        let out = h.wait_with_output().unwrap();
        assert!(out.status.success(), "htpasswd failed");
        std::fs::write(&htpasswd, &out.stdout).unwrap();
        let port = free_port().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: soar-test\n    path: {htpasswd}\n",
                data = dir.path().join("data").display(),
                htpasswd = htpasswd.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let registry = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on 127.0.0.1:{port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(registry)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Build `reference` and push it the way a CI job would (its own login,
/// in a throw-away docker config), then remove it from the engine so a
/// deploy has to pull it.
fn push_as_ci(engine: &Engine, registry: &Registry, dir: &Path, reference: &str) {
    let config = tempfile::tempdir().unwrap();
    let docker = |args: &[&str], stdin: Option<&str>| {
        let mut c = engine.command();
        c.arg("--config").arg(config.path()).args(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("running docker");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker {} failed: {}",
            args[0],
            text(&out.stderr)
        );
    };
    let dir = dir.to_string_lossy();
    docker(&["build", "-q", "-t", reference, &dir], None);
    let address = registry.address();
    docker(
        &["login", "-u", USER, "--password-stdin", &address],
        Some(PASSWORD),
    );
    docker(&["push", reference], None);
    docker(&["rmi", reference], None);
}

struct Project {
    dir: tempfile::TempDir,
    host: SshHost,
    /// The client key the host accepts (its file goes with it).
    _key: ClientKey,
    engine: &'static Engine,
    port: u16,
    service: String,
    printed: Vec<u8>,
}

impl Project {
    fn new(engine: &'static Engine, service: &str) -> Self {
        let key = ClientKey::generate().unwrap();
        let host = SshHost::start(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("known_hosts"), host.known_hosts_line()).unwrap();
        Self {
            dir,
            host,
            _key: key,
            engine,
            port: free_port().unwrap(),
            service: service.to_string(),
            printed: Vec::new(),
        }
    }

    /// soar.toml with `artifact` (the keys after `kind = "docker"`).
    fn configure(&self, artifact: &str) {
        std::fs::write(
            self.dir.path().join("soar.toml"),
            format!(
                r#"[app]
name = "{service}"

[artifact]
kind = "docker"
{artifact}
docker_command = "{cli}"
publish = "127.0.0.1"

[deploy]
port = {port}
health = {{ path = "/health", timeout = "10s", interval = "200ms", retries = 50 }}

[env.prod]
provider = "local"

{ssh}"#,
                service = self.service,
                cli = self.engine.cli(),
                port = self.port,
                ssh = self.host.ssh_table("prod"),
            ),
        )
        .unwrap();
    }

    /// `soar <args>` with the registry password in its variable (or not);
    /// the local `docker` CLI reaches the test's engine.
    fn soar(&mut self, args: &[&str], password: Option<&str>) -> Output {
        let docker_host = self.engine.host.clone().unwrap_or_default();
        let mut vars = vec![("DOCKER_HOST", docker_host.as_str())];
        if docker_host.is_empty() {
            vars.clear();
        }
        let mut unset = vec!["SSH_AUTH_SOCK"];
        match password {
            Some(p) => vars.push((PASSWORD_ENV, p)),
            None => unset.push(PASSWORD_ENV),
        }
        let out = soar_guarded(
            &self.dir.path().join("soar.toml"),
            args,
            &vars,
            &unset,
            &[PASSWORD, WRONG],
        );
        self.printed.extend_from_slice(&out.stdout);
        self.printed.extend_from_slice(&out.stderr);
        out
    }

    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "-m", "3"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }

    fn root(&self) -> PathBuf {
        self.host.root.join("opt").join(&self.service)
    }

    /// Nothing of a login is left on the host between deploys.
    fn assert_no_login_left(&self) {
        let root = self.root();
        assert!(
            !root.join("shared/.registry-password").exists(),
            "the password file is still on the host"
        );
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".soar-registry"))
            .collect();
        assert!(left.is_empty(), "login directories left: {left:?}");
    }

    /// No form of either password in anything soar printed or wrote: the
    /// project's state (with the audit trail), the host's service root.
    fn assert_no_password_anywhere(&self) {
        let secrets = [PASSWORD, WRONG];
        assert_no_secret("soar's output", &self.printed, &secrets);
        for file in walk(&self.dir.path().join(".soar"))
            .into_iter()
            .chain(walk(&self.root()))
        {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert_no_secret(&file.display().to_string(), &bytes, &secrets);
        }
        let store = soar::state::StateStore::open(&self.dir.path().join(".soar")).unwrap();
        let events: String = store
            .history(None, 50)
            .unwrap()
            .iter()
            .flat_map(|d| store.events(d.id).unwrap())
            .map(|e| e.event.to_string())
            .collect();
        assert!(
            events.contains("pull -q"),
            "no docker pull in the audit trail"
        );
        assert!(
            events.contains("--password-stdin"),
            "no docker login in the audit trail"
        );
        assert_no_secret("the audit trail", events.as_bytes(), &secrets);
    }
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn registry_pull_login_refusal_build_and_push() {
    let Some(engine) = require_engine() else {
        return;
    };
    assert!(
        available(),
        "the registry test needs OpenSSH's sshd: apt-get install -y openssh-server"
    );
    let Some(registry) = Registry::start() else {
        return;
    };
    let started = Instant::now();
    let service = format!("reg{}", std::process::id());
    let repository = format!("{}/soar-test/{service}", registry.address());
    let _cleanup = Leftovers::of_service(engine, &service).image(&repository);
    let mut p = Project::new(engine, &service);
    let images = p.dir.path().join("image");
    let login = format!("registry_user = \"{USER}\"\nregistry_password_env = \"{PASSWORD_ENV}\"");

    // v1, pushed by "CI": the host logs in and pulls it.
    write_hello_image(&images, "v1", true);
    push_as_ci(engine, &registry, &images, &format!("{repository}:v1"));
    p.configure(&format!("image = \"{repository}:v1\"\n{login}"));
    let out = p.soar(&["deploy", "--yes"], Some(PASSWORD));
    assert!(out.status.success(), "the first registry deploy failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v1\n"));
    let release = std::fs::read_dir(p.root().join("releases"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .next()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(release.join("image.ref")).unwrap(),
        format!("{repository}:v1\n"),
        "the release holds the reference, not an archive"
    );
    p.assert_no_login_left();

    // Unchanged: nothing to pull or send.
    let out = p.soar(&["deploy", "--yes"], Some(PASSWORD));
    assert!(out.status.success(), "the unchanged re-deploy failed");
    let said = text(&out.stderr) + &text(&out.stdout);
    assert!(
        said.contains("up to date") || said.contains("0 bytes sent"),
        "{said}"
    );

    // v2 with a wrong password: refused in one line naming the variable;
    // v1 keeps serving.
    write_hello_image(&images, "v2", true);
    push_as_ci(engine, &registry, &images, &format!("{repository}:v2"));
    p.configure(&format!("image = \"{repository}:v2\"\n{login}"));
    let out = p.soar(&["deploy", "--yes"], Some(WRONG));
    assert!(
        !out.status.success(),
        "a wrong password must fail the deploy"
    );
    let err = text(&out.stderr);
    let refusal: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error:") && l.contains("refused the login"))
        .collect();
    assert_eq!(
        refusal.len(),
        1,
        "one error line says the login was refused:\n{err}"
    );
    assert!(
        refusal[0].contains(USER) && refusal[0].contains(PASSWORD_ENV),
        "{}",
        refusal[0]
    );
    assert!(refusal[0].contains("401 Unauthorized"), "{}", refusal[0]);
    assert_eq!(p.get("/").as_deref(), Some("hello v1\n"));
    p.assert_no_login_left();

    // No password at all: said before anything changes.
    let out = p.soar(&["deploy", "--yes"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(PASSWORD_ENV) && err.contains("is not set"),
        "{err}"
    );

    // The right password: v2 is pulled.
    let out = p.soar(&["deploy", "--yes"], Some(PASSWORD));
    assert!(out.status.success(), "deploying v2 failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v2\n"));

    // The project builds v3 itself: soar pushes it and pins its digest.
    write_hello_image(&images, "v3", true);
    let cli = engine.cli();
    p.configure(&format!(
        "image = \"{repository}:v3\"\nbuild = \"{cli} build -q -t {repository}:v3 image >/dev/null\"\n{login}"
    ));
    let out = p.soar(&["deploy", "--yes"], Some(PASSWORD));
    assert!(out.status.success(), "build + push + pull failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v3\n"));
    let pinned = std::fs::read_to_string(p.dir.path().join(".soar/image/image.ref")).unwrap();
    assert!(
        pinned.starts_with(&format!("{repository}:v3@sha256:")),
        "{pinned}"
    );
    p.assert_no_login_left();

    // A rollback to v2 needs no registry: its image is on the host.
    let out = p.soar(&["rollback"], None);
    assert!(out.status.success(), "rollback failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v2\n"));

    p.assert_no_password_anywhere();
    let out = p.soar(&["destroy", "--yes"], None);
    assert!(out.status.success(), "destroy failed");
    eprintln!(
        "registry lifecycle took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `[artifact] image` validation: every problem at its line, with what to
/// write instead. Needs no registry.
#[test]
fn registry_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("ctx/Dockerfile"), "FROM scratch\n").unwrap();
    let file = dir.path().join("soar.toml");
    let check = |artifact: &str| {
        let text = format!(
            "[app]\nname = \"web\"\n[artifact]\n{artifact}\n[env.prod]\nprovider = \"local\"\n[env.prod.ssh]\nhosts = [\"127.0.0.1\"]\n"
        );
        soar::config::parse(&text, &file, &["local"])
    };

    let p =
        check("kind = \"docker\"\nimage = \"ghcr.io/acme/web:1.4\"\nregistry_user = \"deploy\"")
            .unwrap();
    let image = p.artifact.docker.image.unwrap();
    assert_eq!(image.registry, "ghcr.io");
    assert_eq!(image.user.as_deref(), Some("deploy"));
    assert_eq!(image.password_env, soar::config::DEFAULT_PASSWORD_ENV);
    let p = check("kind = \"docker\"\nimage = \"nginx\"").unwrap();
    assert_eq!(p.artifact.docker.image.unwrap().registry, "docker.io");

    let cases: &[(&str, usize, &str)] = &[
        (
            "kind = \"docker\"\nimage = \"ghcr.io/Acme/web\"",
            5,
            "is not a Docker repository name",
        ),
        (
            "kind = \"docker\"\npath = \"ctx\"\nimage = \"web:1\"",
            6,
            "both say where the image comes from",
        ),
        (
            "kind = \"binary\"\npath = \"ctx\"\nimage = \"web:1\"",
            6,
            "only applies to kind = \"docker\"",
        ),
        (
            "kind = \"docker\"\npath = \"ctx\"\nregistry_user = \"deploy\"",
            6,
            "there is no `image`",
        ),
        (
            "kind = \"docker\"\nimage = \"web:1\"\nregistry_password_env = \"REG_PW\"",
            6,
            "needs `registry_user`",
        ),
        (
            "kind = \"docker\"\nimage = \"web:1\"\nregistry_user = \"u\"\nregistry_password_env = \"hunter2!\"",
            7,
            "must name an environment variable",
        ),
    ];
    for (artifact, line, fragment) in cases {
        let err = check(artifact).expect_err(artifact);
        let shown = err.to_string();
        assert_eq!(err.0.len(), 1, "{artifact}: {shown}");
        assert_eq!(err.0[0].line, *line, "{artifact}: {shown}");
        assert!(shown.contains(fragment), "{artifact}:\n{shown}");
    }
}
