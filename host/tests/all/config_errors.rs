//! soar.toml diagnostics as the user sees them: each broken file yields one
//! diagnostic at the exact line, saying what is wrong (and never repeating
//! a pasted secret), and a valid file yields the expected project.

use std::path::{Path, PathBuf};
use std::time::Duration;

use soar::config::{Batch, ConfigError, Project, locate, parse};

const KNOWN: &[&str] = &["local", "digitalocean", "cloudflare", "aws-spot"];

/// A project directory holding the artifact `bin/hello`.
fn project_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/hello"), "#!/bin/sh\n").unwrap();
    dir
}

fn check(text: &str) -> (Result<Project, ConfigError>, PathBuf, tempfile::TempDir) {
    let dir = project_dir();
    let file = dir.path().join("soar.toml");
    (parse(text, &file, KNOWN), file, dir)
}

/// The valid minimum the broken cases start from (7 lines).
const BASE: &str = r#"[app]
name = "hello"
[artifact]
kind = "binary"
path = "bin/hello"
[env.dev]
provider = "local"
"#;

struct Case {
    name: &'static str,
    toml: String,
    line: usize,
    /// Must appear in the rendered diagnostic (message or hint).
    fragment: &'static str,
    /// A pasted secret that must not appear anywhere in the error.
    secret: &'static str,
}

fn case(name: &'static str, toml: impl Into<String>, line: usize, fragment: &'static str) -> Case {
    Case {
        name,
        toml: toml.into(),
        line,
        fragment,
        secret: "",
    }
}

fn secret(
    name: &'static str,
    toml: impl Into<String>,
    line: usize,
    fragment: &'static str,
    secret: &'static str,
) -> Case {
    Case {
        secret,
        ..case(name, toml, line, fragment)
    }
}

fn base_with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

#[allow(
    clippy::too_many_lines,
    reason = "a table of cases, one per broken config"
)]
fn cases() -> Vec<Case> {
    vec![
        case(
            "syntax error",
            "[app]\nname = \"hello\n[artifact]\n",
            2,
            "invalid TOML",
        ),
        case(
            "unquoted string",
            "[app]\nname = hello\n",
            2,
            "put quotes around text values",
        ),
        case(
            "unknown top-level key",
            base_with("[hook]\npre_deploy = \"x\"\n"),
            8,
            "unknown key `hook` at the top level of soar.toml (valid keys: app, artifact, deploy, hooks, register, monitor, state, env)\n  hint: did you mean `hooks`?",
        ),
        case(
            "environment without env.",
            base_with("[staging]\nprovider = \"local\"\n"),
            8,
            "environments go under `env`: write [env.staging]",
        ),
        case(
            "unknown key in [deploy] with did-you-mean",
            base_with("[deploy]\nprot = 8080\n"),
            9,
            "unknown key `prot` in [deploy] (valid keys: service, port, env, secrets, keep_releases, health, rollout, switch, proxy)\n  hint: did you mean `port`?",
        ),
        case(
            "unknown key in [env.dev.deploy]",
            base_with("[env.dev.deploy]\nkeep_release = 3\n"),
            9,
            "did you mean `keep_releases`?",
        ),
        case(
            "unknown key in health",
            base_with("[deploy]\nhealth = { path = \"/h\", retry = 3 }\n"),
            9,
            "unknown key `retry` in [deploy.health] (valid keys: path, port, timeout, interval, retries, monitor)\n  hint: did you mean `retries`?",
        ),
        case(
            "wrong type: quoted port",
            base_with("[deploy]\nport = \"80\"\n"),
            9,
            "`deploy.port` must be an integer (without quotes), not a string\n  hint: for example: port = 8080",
        ),
        case(
            "port out of range",
            base_with("[deploy]\nport = 70000\n"),
            9,
            "`deploy.port` is out of range: it must be from 1 to 65535",
        ),
        case(
            "health port out of range",
            base_with("[env.dev.deploy]\nhealth = { port = 0 }\n"),
            9,
            "`env.dev.deploy.health.port` is out of range",
        ),
        case(
            "negative keep_releases",
            base_with("[deploy]\nkeep_releases = -1\n"),
            9,
            "`deploy.keep_releases` is out of range: it must be at least 1",
        ),
        case(
            "bad app name",
            BASE.replace("\"hello\"", "\"Hello_World\""),
            2,
            "app name 'Hello_World' is not a valid name: it contains uppercase letters (names use lowercase letters, digits and hyphens)\n  hint: try: name = \"hello-world\"",
        ),
        case(
            "reserved app name",
            BASE.replace("\"hello\"", "\"admin\""),
            2,
            "app name 'admin' is not a valid name: it is reserved",
        ),
        case(
            "short app name",
            BASE.replace("\"hello\"", "\"ab\""),
            2,
            "it is 2 characters long (names have 3 to 63)",
        ),
        case(
            "uppercase service",
            base_with("[deploy]\nservice = \"MyService\"\n"),
            9,
            "service name 'MyService' in `deploy.service` is not a valid name: it contains uppercase letters",
        ),
        case(
            "missing [app]",
            "[artifact]\nkind = \"binary\"\npath = \"bin/hello\"\n[env.dev]\nprovider = \"local\"\n",
            1,
            "missing [app] section\n  hint: add:\n        [app]\n        name = \"hello\"",
        ),
        case(
            "missing app name",
            BASE.replace("name = \"hello\"", "nmae = \"hello\""),
            2,
            "unknown key `nmae` in [app] (valid keys: name)\n  hint: did you mean `name`?",
        ),
        case(
            "missing artifact path",
            BASE.replace("path = \"bin/hello\"\n", ""),
            3,
            "missing `path` in [artifact]",
        ),
        case(
            "missing artifact kind",
            BASE.replace("kind = \"binary\"\n", ""),
            3,
            "missing `kind` in [artifact]",
        ),
        case(
            "missing artifact file without build",
            BASE.replace("bin/hello", "bin/nope"),
            5,
            "artifact path 'bin/nope' does not exist (relative to ",
        ),
        case(
            "unknown artifact kind",
            BASE.replace("\"binary\"", "\"jar\""),
            4,
            "unknown artifact kind 'jar' (valid kinds: binary, script, static, tarball)",
        ),
        case(
            "misspelt artifact kind",
            BASE.replace("\"binary\"", "\"binry\""),
            4,
            "did you mean kind = \"binary\"?",
        ),
        case(
            "script-only key on a binary",
            BASE.replace(
                "path = \"bin/hello\"",
                "path = \"bin/hello\"\ncommand = \"./hello\"",
            ),
            6,
            "`artifact.command` only applies to kind = \"script\"",
        ),
        case(
            "unknown provider",
            BASE.replace("\"local\"", "\"digitalocen\""),
            7,
            "unknown provider 'digitalocen' in [env.dev]\n  hint: did you mean provider = \"digitalocean\"? (installed providers: local, digitalocean, cloudflare, aws-spot)",
        ),
        case(
            "misspelt provider key",
            BASE.replace("provider =", "provder ="),
            7,
            "missing `provider` in [env.dev]\n  hint: did you mean `provider` instead of `provder`?",
        ),
        case(
            "missing provider",
            BASE.replace("provider = \"local\"", "region = \"nyc1\""),
            6,
            "missing `provider` in [env.dev]",
        ),
        case(
            "no environments",
            "[app]\nname = \"hello\"\n[artifact]\nkind = \"binary\"\npath = \"bin/hello\"\n",
            1,
            "no environments: soar.toml needs at least one [env.<name>] table",
        ),
        case(
            "bad environment name",
            BASE.replace("[env.dev]", "[env.QA]"),
            6,
            "environment name 'QA' is not a valid name: it contains uppercase letters",
        ),
        secret(
            "DigitalOcean token in settings",
            base_with("token = \"dop_v1_0123456789abcdef0123456789abcdef\"\n"),
            8,
            "`env.dev.token` looks like a secret pasted inline (a DigitalOcean token); secrets never go in soar.toml\n  hint: put it in an environment variable and reference its name, e.g. `secrets = { API_KEY = \"HELLO_API_KEY\" }` / `token_env = \"DIGITALOCEAN_TOKEN\"`",
            "0123456789abcdef",
        ),
        secret(
            "AWS key inline",
            base_with("access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\n"),
            8,
            "looks like a secret pasted inline (an AWS access key ID)",
            "IOSFODNN7EXAMPLE",
        ),
        secret(
            "JWT inline in a hook",
            base_with(&format!(
                "[hooks]\npost_deploy = \"curl -H 'Authorization: Bearer {JWT}' https://x\"\n"
            )),
            9,
            "`hooks.post_deploy` looks like a secret pasted inline (a JSON Web Token)",
            "dozjgNryP4J3jVmNHl0w5N",
        ),
        secret(
            "private key inline",
            base_with(
                "region = \"nyc1\"\nssh_key = \"\"\"\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n\"\"\"\n",
            ),
            9,
            "looks like a secret pasted inline (a private key)",
            "b3BlbnNzaC1rZXktdjEAAAA",
        ),
        secret(
            "password in the service environment",
            base_with("[deploy]\nenv = { DB_PASSWORD = \"hunter2\" }\n"),
            9,
            "hint: put it in an environment variable and reference its name from `secrets` instead of `env`: secrets = { DB_PASSWORD = \"DB_PASSWORD\" }",
            "hunter2",
        ),
        secret(
            "secret value in deploy.secrets",
            base_with("[deploy]\nsecrets = { API_KEY = \"sk_live_abc123\" }\n"),
            9,
            "`deploy.secrets.API_KEY` looks like a secret pasted inline",
            "sk_live_abc123",
        ),
        secret(
            "password in a grant URL",
            base_with(
                "[env.dev.grants]\nendpoints = { api = \"https://me:pa55word@api.example.com\" }\n",
            ),
            9,
            "`env.dev.grants.endpoints.api` contains a password",
            "pa55word",
        ),
        case(
            "bad secrets env-name",
            base_with("[deploy]\nsecrets = { DATABASE_URL = \"database-url\" }\n"),
            9,
            "`deploy.secrets.DATABASE_URL` must be the NAME of the host environment variable holding the secret",
        ),
        case(
            "bad credential env-name",
            base_with("[env.dev.credentials]\ndigitalocean = \"my-token-var\"\n"),
            9,
            "`env.dev.credentials.digitalocean` must be the NAME of the environment variable holding the credential",
        ),
        case(
            "bad duration",
            base_with("[hooks]\ntimeout = \"30 seconds\"\n"),
            9,
            "`hooks.timeout`: '30 seconds' is not a duration; write \"250ms\", \"30s\", \"10m\", \"1h\" or an integer number of seconds",
        ),
        case(
            "bad health interval",
            base_with("[deploy]\nhealth = { interval = \"1.5s\" }\n"),
            9,
            "`deploy.health.interval`: '1.5s' is not a duration",
        ),
        case(
            "bad batch percent",
            base_with("[deploy]\nrollout = { batch = \"150%\" }\n"),
            9,
            "`deploy.rollout.batch` = \"150%\" is not a batch size: use a positive number of hosts or a percentage from 1% to 100%",
        ),
        case(
            "zero batch",
            base_with("[env.dev.deploy]\nrollout = { batch = 0 }\n"),
            9,
            "`env.dev.deploy.rollout.batch` = 0 is not a batch size",
        ),
        case(
            "bad grant URL",
            base_with("[env.dev.grants]\nendpoints = { api = \"localhost:8080\" }\n"),
            9,
            "`env.dev.grants.endpoints.api` must be an http:// or https:// URL",
        ),
        case(
            "grant host written as a URL",
            base_with("[env.dev.grants]\nhosts = [\"https://faas-nyc1-abc.doserverless.co/\"]\n"),
            9,
            "is a URL; hosts are bare host names: write \"faas-nyc1-abc.doserverless.co\"",
        ),
        case(
            "empty grant host",
            base_with("[env.dev.grants]\nhosts = [\"\"]\n"),
            9,
            "is empty; write a host name",
        ),
        case(
            "register URL not http",
            base_with("[register]\nurl = \"ftp://registry.example.com\"\n"),
            9,
            "`register.url` must be an http:// or https:// URL",
        ),
        case(
            "health path without slash",
            base_with("[deploy]\nhealth = { path = \"health\" }\n"),
            9,
            "`deploy.health.path` must start with '/'\n  hint: write: path = \"/health\"",
        ),
        case(
            "env table of the wrong type",
            base_with("[deploy]\nenv = \"GREETING=hi\"\n"),
            9,
            "`deploy.env` must be a table, not a string",
        ),
    ]
}

#[test]
fn every_broken_config_reports_one_diagnostic_at_its_line() {
    let cases = cases();
    assert!(cases.len() >= 22);
    let mut failures = Vec::new();
    for c in &cases {
        let (result, file, _dir) = check(&c.toml);
        let err = match result {
            Ok(_) => {
                failures.push(format!("{}: parsed without error", c.name));
                continue;
            }
            Err(e) => e,
        };
        let rendered = err.to_string();
        if err.0.len() != 1 {
            failures.push(format!(
                "{}: expected 1 diagnostic, got:\n{rendered}",
                c.name
            ));
            continue;
        }
        let d = &err.0[0];
        let shown = d.to_string();
        let prefix = format!("{}:{}:", file.display(), c.line);
        if d.line != c.line || !shown.starts_with(&prefix) {
            failures.push(format!(
                "{}: expected line {}, got:\n{shown}",
                c.name, c.line
            ));
        }
        if !shown.contains(c.fragment) {
            failures.push(format!(
                "{}: expected\n{}\nin:\n{shown}",
                c.name, c.fragment
            ));
        }
        if d.hint.is_none() {
            failures.push(format!("{}: no hint in:\n{shown}", c.name));
        }
        if !c.secret.is_empty()
            && (rendered.contains(c.secret) || format!("{err:?}").contains(c.secret))
        {
            failures.push(format!("{}: the secret leaked into:\n{rendered}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = r#"[app]
name = "Hello"
[artifact]
kind = "jar"
path = "bin/hello"
[deploy]
port = "80"
keep_releases = 0
[env.dev]
provider = "nope"
token = "dop_v1_abcdef"
"#;
    let (result, _, _dir) = check(text);
    let err = result.unwrap_err();
    let lines: Vec<usize> = err.0.iter().map(|d| d.line).collect();
    assert_eq!(lines, [2, 4, 7, 8, 10, 11], "{err}");
    assert!(!err.to_string().contains("abcdef"));
}

#[test]
fn file_is_shown_as_given() {
    let text = "[app]\nname = \"x\"\n[artifact]\nkind = \"binary\"\npath = \"out\"\nbuild = \"make\"\n[env.dev]\nprovider = \"local\"\n";
    let err = parse(text, Path::new("soar.toml"), KNOWN).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("soar.toml:2:8: app name 'x' is not a valid name"),
        "{shown}"
    );
}

#[test]
fn an_artifact_with_build_need_not_exist_yet() {
    let (result, _, dir) = check(&BASE.replace(
        "path = \"bin/hello\"",
        "path = \"target/release/hello\"\nbuild = \"cargo build --release\"",
    ));
    let project = result.unwrap();
    assert_eq!(
        project.artifact.path,
        dir.path().join("target/release/hello")
    );
}

const FULL: &str = r#"[app]
name = "hello"

[artifact]
kind = "tarball"
path = "bin/hello"
sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
setup = "install.sh"

[deploy]
service = "hello-web"
port = 8080
env = { GREETING = "hi", WORKERS = 4 }
secrets = { API_KEY = "HELLO_API_KEY" }
keep_releases = 3
health = { path = "/health", timeout = "30s", interval = "500ms", retries = 10 }
rollout = { batch = 2 }

[hooks]
pre_deploy = "./scripts/check.sh"
post_deploy = "echo done"
on_failure = "notify-send failed"
timeout = 90

[register]
url = "http://127.0.0.1:9999/services"

[env.dev]
provider = "local"

[env.staging]
provider = "digitalocean"
default_region = "nyc1"
ssh_key_name = "deploy"
token_env = "STAGING_DO_TOKEN"
hosts = { app-1 = { role = "app", size = "s-1vcpu-1gb" } }

[env.staging.deploy]
port = 9000
env = { GREETING = "hello from staging" }
health = { retries = 5 }
rollout = { batch = "50%", parallelism = 2 }

[env.staging.grants]
endpoints = { api = "http://127.0.0.1:8080" }
hosts = ["faas-nyc1-abc.doserverless.co", "*.doserverless.co"]

[env.staging.credentials]
digitalocean = "MY_DO_TOKEN"
"#;

#[test]
fn a_full_config_parses_into_the_expected_project() {
    let (result, file, dir) = check(FULL);
    let p = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.root, dir.path());
    assert_eq!(p.file, file);
    assert_eq!(p.app.name, "hello");
    assert_eq!(p.artifact.path, dir.path().join("bin/hello"));
    assert_eq!(
        p.artifact.sha256.as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(p.artifact.setup.as_deref(), Some("install.sh"));
    assert_eq!(p.hooks.pre_deploy.as_deref(), Some("./scripts/check.sh"));
    assert_eq!(p.hooks.timeout, Duration::from_secs(90));
    assert_eq!(
        p.register.as_ref().map(|r| r.url.as_str()),
        Some("http://127.0.0.1:9999/services")
    );
    assert_eq!(
        p.environments.keys().collect::<Vec<_>>(),
        ["dev", "staging"]
    );

    let dev = &p.environments["dev"];
    assert_eq!(dev.line, 28);
    assert_eq!(dev.settings, serde_json::json!({}));
    assert_eq!(dev.deploy.service, "hello-web");
    assert_eq!(dev.deploy.port, Some(8080));
    assert_eq!(dev.deploy.env["GREETING"], "hi");
    assert_eq!(dev.deploy.env["WORKERS"], "4");
    assert_eq!(dev.deploy.keep_releases, 3);
    assert_eq!(dev.deploy.health.port, Some(8080));
    assert_eq!(dev.deploy.health.retries, 10);
    assert_eq!(dev.deploy.health.interval, Duration::from_millis(500));
    assert_eq!(dev.deploy.rollout.batch, Some(Batch::Count(2)));
    assert!(dev.grants.endpoints.is_empty() && dev.grants.hosts.is_empty());
    assert_eq!(
        dev.grants.section,
        format!("[env.dev.grants] in {}", file.display())
    );

    let st = &p.environments["staging"];
    assert_eq!(st.name, "staging");
    assert_eq!(st.provider, "digitalocean");
    assert_eq!(st.line, 31);
    assert_eq!(
        st.settings,
        serde_json::json!({
            "default_region": "nyc1",
            "ssh_key_name": "deploy",
            "token_env": "STAGING_DO_TOKEN",
            "hosts": { "app-1": { "role": "app", "size": "s-1vcpu-1gb" } }
        })
    );
    // Overrides win; everything else comes from [deploy].
    assert_eq!(st.deploy.service, "hello-web");
    assert_eq!(st.deploy.port, Some(9000));
    assert_eq!(st.deploy.env["GREETING"], "hello from staging");
    assert_eq!(st.deploy.env["WORKERS"], "4");
    assert_eq!(st.deploy.secrets["API_KEY"], "HELLO_API_KEY");
    assert_eq!(st.deploy.keep_releases, 3);
    assert_eq!(st.deploy.health.path, "/health");
    assert_eq!(st.deploy.health.port, Some(9000));
    assert_eq!(st.deploy.health.timeout, Duration::from_secs(30));
    assert_eq!(st.deploy.health.retries, 5);
    assert_eq!(st.deploy.rollout.batch, Some(Batch::Percent(50)));
    assert_eq!(st.deploy.rollout.parallelism, Some(2));
    assert_eq!(st.grants.endpoints["api"], "http://127.0.0.1:8080");
    assert_eq!(
        st.grants.hosts,
        ["faas-nyc1-abc.doserverless.co", "*.doserverless.co"]
    );
    assert_eq!(
        st.grants.section,
        format!("[env.staging.grants] in {}", file.display())
    );
    assert_eq!(st.credentials["digitalocean"], "MY_DO_TOKEN");

    // A plugin's complaint about a settings field maps back to the file.
    assert_eq!(locate(FULL, "env.staging.hosts.app-1.size"), Some((36, 35)));
    assert_eq!(locate(FULL, "env.staging.region"), Some((31, 6)));
}
