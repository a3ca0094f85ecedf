//! `kind = "docker"` artifacts rolled out onto SSH hosts, end to end through
//! the built `soar` binary: a real OpenSSH `sshd` on loopback (the host) and
//! a real Docker engine (the host's engine; one engine serves every test, so
//! each test names its service uniquely and removes what it created, even
//! when it fails).
//!
//! Images are built `FROM scratch` around a static build of the example
//! service (no registry, no Internet). With `CI=true` a missing engine fails
//! these tests; elsewhere they are skipped with a loud message
//! (`soar_tests::dockerd::require_engine`). Config validation of the docker
//! keys is checked here too (it needs no engine).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use soar_tests::dockerd::{Engine, Leftovers, require_engine, unique_service, write_hello_image};
use soar_tests::sshd::{ClientKey, SshHost, available, free_port};

use crate::support::{soar_guarded, text};

const SECRET: &str = "d0cker-s3cret-that-must-not-leak";

struct Project {
    dir: tempfile::TempDir,
    port: u16,
    service: String,
    engine: &'static Engine,
    root: PathBuf,
}

impl Project {
    /// A project deploying `artifact` (the `[artifact]` keys after `kind`)
    /// to `host`, keeping 2 releases.
    fn new(engine: &'static Engine, host: &SshHost, service: &str, artifact: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        std::fs::write(dir.path().join("known_hosts"), host.known_hosts_line()).unwrap();
        std::fs::write(
            dir.path().join("soar.toml"),
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
keep_releases = 2
secrets = {{ API_TOKEN = "SOAR_DOCKER_TEST_TOKEN" }}
health = {{ path = "/health", timeout = "6s", interval = "200ms", retries = 30 }}

[env.prod]
provider = "local"

{ssh}"#,
                cli = engine.cli(),
                ssh = host.ssh_table("prod"),
            ),
        )
        .unwrap();
        Self {
            dir,
            port,
            service: service.to_string(),
            engine,
            root: host.root.join("opt").join(service),
        }
    }

    fn soar(&self, args: &[&str]) -> Output {
        soar_guarded(
            &self.dir.path().join("soar.toml"),
            args,
            &[("SOAR_DOCKER_TEST_TOKEN", SECRET)],
            &["SSH_AUTH_SOCK"],
            &[SECRET],
        )
    }

    fn deploy(&self) -> Output {
        self.soar(&["deploy", "--yes"])
    }

    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "-m", "3"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }

    /// The active release, from `soar status --json`.
    fn status(&self) -> serde_json::Value {
        let out = self.soar(&["status", "--json"]);
        assert!(out.status.success(), "status failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn container(&self) -> String {
        format!("soar-{}", self.service)
    }

    fn inspect(&self, format: &str) -> Option<String> {
        self.engine
            .stdout(&["inspect", "-f", format, &self.container()])
            .map(|s| s.trim().to_string())
    }

    /// Tags of the service's images on the engine, sorted.
    fn image_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .engine
            .stdout(&[
                "images",
                "--format",
                "{{.Tag}}",
                &format!("soar-{}", self.service),
            ])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        tags.sort();
        tags
    }

    /// Release directories on the host, sorted.
    fn release_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = std::fs::read_dir(self.root.join("releases"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

/// sshd is required (like the other SSH tests): fail with the package.
fn require_sshd() {
    assert!(
        available(),
        "Docker rollout tests need OpenSSH's sshd: apt-get install -y openssh-server"
    );
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn image_archive_deploy_redeploy_update_fail_rollback_logs_destroy() {
    let Some(engine) = require_engine() else {
        return;
    };
    require_sshd();
    let started = Instant::now();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let service = unique_service("arc");
    let build_tag = format!("{service}-build");
    let _cleanup = Leftovers::of_service(engine, &service).image(&build_tag);
    let cli = engine.cli();
    let p = Project::new(
        engine,
        &host,
        &service,
        &format!(
            "path = \"out/app.tar\"\nbuild = \"{cli} build -q -t {build_tag} image >/dev/null && mkdir -p out && {cli} save {build_tag} -o out/app.tar\""
        ),
    );
    let image_dir = p.dir.path().join("image");

    // First deploy: the archive is uploaded, loaded and run.
    write_hello_image(&image_dir, "v1", true);
    let out = p.deploy();
    assert!(out.status.success(), "first deploy failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v1\n"));
    assert_eq!(p.get("/health").as_deref(), Some("ok\n"));
    let status = p.status();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["hosts"][0]["running"], true, "{status}");
    let first = status["release"]["id"].as_str().unwrap().to_string();
    assert_eq!(p.image_tags(), vec![first.clone()], "one image per release");
    assert!(
        p.root
            .join("releases")
            .join(&first)
            .join("app.tar")
            .is_file()
    );
    assert!(
        p.root
            .join("releases")
            .join(&first)
            .join(".soar-digest")
            .is_file()
    );
    assert_eq!(
        p.inspect("{{.HostConfig.RestartPolicy.Name}}").as_deref(),
        Some("always")
    );
    assert_eq!(
        p.inspect("{{.Config.Image}}"),
        Some(format!("soar-{service}:{first}"))
    );
    // The secret reaches the container through the 0600 env file.
    let env = p.inspect("{{json .Config.Env}}").unwrap();
    assert!(
        env.contains(&format!("API_TOKEN={SECRET}")),
        "the container lacks API_TOKEN"
    );
    use std::os::unix::fs::PermissionsExt;
    let env_file = p.root.join("shared/env");
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the env file must be 0600");
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env_text.contains(&format!("API_TOKEN={SECRET}\n")),
        "the env file is in Docker's literal KEY=value format"
    );
    assert!(
        !p.root.join(".soar-lock").exists(),
        "the deploy lock was not released"
    );

    // Unchanged re-deploy: nothing is sent.
    let out = p.deploy();
    assert!(out.status.success());
    let said = text(&out.stderr) + &text(&out.stdout);
    assert!(
        said.contains("up to date") || said.contains("0 bytes sent"),
        "{said}"
    );

    // The container removed behind soar's back: the plan starts the release
    // again, which is still on the host (0 bytes sent, image reused).
    assert!(
        engine
            .docker(&["rm", "-f", &p.container()])
            .status
            .success()
    );
    assert_eq!(p.status()["running"], false);
    let out = p.deploy();
    assert!(out.status.success(), "restarting the release failed");
    let said = text(&out.stderr) + &text(&out.stdout);
    assert!(said.contains("is not running"), "{said}");
    assert!(said.contains("0 bytes sent"), "{said}");
    assert_eq!(p.get("/").as_deref(), Some("hello v1\n"));
    assert_eq!(p.image_tags(), vec![first.clone()]);

    // A new version.
    write_hello_image(&image_dir, "v2", true);
    let out = p.deploy();
    assert!(out.status.success(), "deploying v2 failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v2\n"));

    // A failing health check rolls back to v2's image automatically.
    write_hello_image(&image_dir, "v3", false);
    let out = p.deploy();
    assert!(!out.status.success(), "an unhealthy release must fail");
    let err = text(&out.stderr);
    assert!(err.contains("unhealthy"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(p.get("/").as_deref(), Some("hello v2\n"));

    // Manual rollback to v1.
    let out = p.soar(&["rollback"]);
    assert!(out.status.success(), "rollback failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v1\n"));
    assert_eq!(
        p.inspect("{{.Config.Image}}"),
        Some(format!("soar-{service}:{first}"))
    );

    // Logs are the container's.
    let out = p.soar(&["logs", "-n", "20"]);
    assert!(out.status.success(), "logs failed");
    assert!(
        text(&out.stdout).contains("hello: listening on http://0.0.0.0:"),
        "{}",
        text(&out.stdout)
    );

    // v4: release directories beyond keep_releases go, and their images
    // with them.
    write_hello_image(&image_dir, "v4", true);
    let out = p.deploy();
    assert!(out.status.success(), "deploying v4 failed");
    assert_eq!(p.get("/").as_deref(), Some("hello v4\n"));
    let dirs = p.release_dirs();
    assert!(dirs.len() <= 4, "{dirs:?}");
    assert!(dirs.contains(&first), "the previous release (v1) is kept");
    assert_eq!(p.image_tags(), dirs, "one image per kept release");

    // Every docker command went through the SSH broker into the audit trail.
    let store = soar::state::StateStore::open(&p.dir.path().join(".soar")).unwrap();
    let events: String = store
        .history(None, 50)
        .unwrap()
        .iter()
        .flat_map(|d| store.events(d.id).unwrap())
        .map(|e| e.event.to_string())
        .collect();
    assert!(events.contains("load -i"), "no docker load recorded");
    assert!(events.contains("run -d --name"), "no docker run recorded");
    assert!(!events.contains(SECRET), "the secret is in the audit trail");
    drop(store);

    // Destroy removes the container, the images and the service root.
    let out = p.soar(&["destroy", "--yes"]);
    assert!(out.status.success(), "destroy failed");
    assert!(
        p.inspect("{{.Id}}").is_none(),
        "the container is still there"
    );
    assert!(
        p.image_tags().is_empty(),
        "images left: {:?}",
        p.image_tags()
    );
    assert!(!p.root.exists(), "the service root is still on the host");
    assert!(p.get("/").is_none(), "the service still answers");
    eprintln!(
        "archive lifecycle took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn build_context_is_built_on_the_host() {
    let Some(engine) = require_engine() else {
        return;
    };
    require_sshd();
    let started = Instant::now();
    let key = ClientKey::generate().unwrap();
    let host = SshHost::start(&key).unwrap();
    let service = unique_service("ctx");
    let _cleanup = Leftovers::of_service(engine, &service);
    let p = Project::new(engine, &host, &service, "path = \"context\"");
    let context = p.dir.path().join("context");

    // An unhealthy first release has nothing to roll back to: its container
    // is stopped and stays stopped (no restart policy left to revive it).
    write_hello_image(&context, "c0", false);
    let out = p.deploy();
    assert!(!out.status.success(), "an unhealthy release must fail");
    let err = text(&out.stderr);
    assert!(err.contains("no previous release"), "{err}");
    assert_eq!(p.inspect("{{.State.Running}}").as_deref(), Some("false"));
    assert_eq!(
        p.inspect("{{.HostConfig.RestartPolicy.Name}}").as_deref(),
        Some("no")
    );

    write_hello_image(&context, "c1", true);
    let out = p.deploy();
    assert!(out.status.success(), "deploy failed");
    assert_eq!(p.get("/").as_deref(), Some("hello c1\n"));
    let id = p.status()["release"]["id"].as_str().unwrap().to_string();
    assert!(
        p.root
            .join("releases")
            .join(&id)
            .join("Dockerfile")
            .is_file()
    );
    assert!(p.image_tags().contains(&id));

    write_hello_image(&context, "c2", true);
    let out = p.deploy();
    assert!(out.status.success(), "second deploy failed");
    assert_eq!(p.get("/").as_deref(), Some("hello c2\n"));
    assert_eq!(p.image_tags(), p.release_dirs(), "one image per release");

    let out = p.soar(&["destroy", "--yes"]);
    assert!(out.status.success(), "destroy failed");
    assert!(p.inspect("{{.Id}}").is_none());
    assert!(p.image_tags().is_empty());
    eprintln!(
        "build-context lifecycle took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `[artifact]` validation for docker: every problem at its line, with
/// what to write instead. Needs no engine.
#[test]
fn docker_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("ctx/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image\n").unwrap();
    let file = dir.path().join("soar.toml");
    let known = ["local", "digitalocean"];
    let check = |artifact: &str, env: &str| {
        let text = format!("[app]\nname = \"web\"\n[artifact]\n{artifact}\n{env}");
        soar::config::parse(&text, &file, &known)
    };
    let hosts = "[env.prod]\nprovider = \"local\"\n[env.prod.ssh]\nhosts = [\"127.0.0.1\"]\n";

    // Valid: a context directory, with every docker key.
    let p = check(
        "kind = \"docker\"\npath = \"ctx\"\ndocker_command = \"sudo docker\"\npublish = \"127.0.0.1\"\ncontainer_port = 80",
        hosts,
    )
    .unwrap();
    assert_eq!(p.artifact.kind, soar::artifact::Kind::Docker);
    assert_eq!(p.artifact.docker.command, "sudo docker");
    assert_eq!(p.artifact.docker.publish, "127.0.0.1");
    assert_eq!(p.artifact.docker.container_port, Some(80));
    // Defaults; an archive that does not exist yet is fine with `build`.
    let p = check(
        "kind = \"docker\"\npath = \"out/app.tar\"\nbuild = \"docker save x -o out/app.tar\"",
        hosts,
    )
    .unwrap();
    assert_eq!(p.artifact.docker, soar::config::DockerSettings::default());
    assert_eq!(p.artifact.docker.publish, "0.0.0.0");

    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "kind = \"dockr\"\npath = \"ctx\"",
            hosts,
            4,
            "did you mean kind = \"docker\"?",
        ),
        (
            "kind = \"docker\"\npath = \"empty\"",
            hosts,
            5,
            "is a directory without a Dockerfile",
        ),
        (
            "kind = \"docker\"\npath = \"notes.txt\"",
            hosts,
            5,
            "is neither an image archive",
        ),
        (
            "kind = \"docker\"\npath = \"ctx\"\npublish = \"10.0.0.1\"",
            hosts,
            6,
            "\"0.0.0.0\", the default) or on the host alone (\"127.0.0.1\")",
        ),
        (
            "kind = \"docker\"\npath = \"ctx\"\ncontainer_port = 0",
            hosts,
            6,
            "container_port",
        ),
        (
            "kind = \"binary\"\npath = \"notes.txt\"\npublish = \"127.0.0.1\"",
            hosts,
            6,
            "`artifact.publish` only applies to kind = \"docker\"",
        ),
        (
            "kind = \"docker\"\npath = \"ctx\"",
            "[env.dev]\nprovider = \"local\"\n",
            4,
            "environment 'dev' (line 6) uses the local provider without any",
        ),
    ];
    for (artifact, env, line, fragment) in cases {
        let err = check(artifact, env).expect_err(artifact);
        let shown = err.to_string();
        assert_eq!(err.0.len(), 1, "{artifact}: {shown}");
        assert_eq!(err.0[0].line, *line, "{artifact}: {shown}");
        assert!(shown.contains(fragment), "{artifact}:\n{shown}");
        assert!(shown.contains("soar.toml:"), "{shown}");
    }
}
