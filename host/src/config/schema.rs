//! The shape of `soar.toml`: which sections and keys exist, which are
//! required, and how each becomes part of a [`Project`]. Sections read here
//! are the small ones; `[deploy]` and `[env.*]` have their own modules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::diagnostics::Report;
use super::fields::Section;
use super::grants::{UrlProblem, check_http_url};
use super::identity::{check_name, suggest_name};
use super::spelling::closest;
use super::{
    App, ArtifactSpec, DockerSettings, Hooks, MonitorSettings, Project, Register, deploy,
    environment,
};
use crate::artifact::{Kind, check_docker_path};

/// What validation needs besides the document.
pub(crate) struct Context<'a> {
    /// Absolute directory of the file.
    pub root: PathBuf,
    /// Installed plugin names.
    pub known_providers: &'a [&'a str],
}

const TOP_KEYS: &[&str] = &[
    "app", "artifact", "deploy", "hooks", "register", "monitor", "state", "env",
];
const APP_KEYS: &[&str] = &["name"];
const ARTIFACT_KEYS: &[&str] = &[
    "kind",
    "path",
    "build",
    "command",
    "sha256",
    "setup",
    "docker_command",
    "publish",
    "container_port",
    "image",
    "registry_user",
    "registry_password_env",
];
/// The plugin contract's kinds, then `docker` (host-only, last).
const ARTIFACT_KINDS: &[&str] = &["binary", "script", "static", "tarball", "docker"];
/// Where a docker artifact's port may be published: the health check
/// probes 127.0.0.1 on the host, which both reach.
const PUBLISH_ADDRESSES: &[&str] = &["0.0.0.0", "127.0.0.1"];
const HOOK_KEYS: &[&str] = &[
    "pre_deploy",
    "post_deploy",
    "on_failure",
    "on_unhealthy",
    "timeout",
];
const MONITOR_KEYS: &[&str] = &["webhook"];
const REGISTER_KEYS: &[&str] = &["url"];

/// Report a TOML syntax error at its position, with a hint for the common
/// ones.
pub(crate) fn syntax_error(e: &toml::de::Error, r: &mut Report<'_>) {
    let message = e.message().trim();
    let hint = if message.contains("must be quoted") {
        "put quotes around text values, e.g. name = \"hello\""
    } else if message.contains("duplicate key") {
        "each key may appear once per table; remove or rename one of them"
    } else if message.contains("string") {
        "close the string with the same quote it opens with, on the same line"
    } else {
        "see https://toml.io for the syntax; the position is where reading stopped"
    };
    r.error(
        e.span().map_or(0, |s| s.start),
        format!("invalid TOML: {message}"),
        Some(hint.to_string()),
    );
}

/// Check the whole document and build the project; problems go to `r`
/// (the returned value is only meaningful when `r` stays clean).
pub(crate) fn project(doc: &DeTable<'_>, ctx: &Context<'_>, r: &mut Report<'_>) -> Project {
    let top = Section::root(doc);
    for (key, value) in top.entries() {
        if TOP_KEYS.contains(&key.get_ref().as_ref()) {
            continue;
        }
        // `[staging]` with a provider is an environment missing its `env.`.
        let provider_table =
            matches!(value.get_ref(), DeValue::Table(t) if t.contains_key("provider"));
        let hint = match closest(key.get_ref(), TOP_KEYS) {
            Some(c) => format!("did you mean `{c}`?"),
            None if provider_table => {
                format!("environments go under `env`: write [env.{}]", key.get_ref())
            }
            None => "remove it, or check its spelling against the valid keys".to_string(),
        };
        r.error(
            key.span().start,
            format!(
                "unknown key `{}` at the top level of soar.toml (valid keys: {})",
                key.get_ref(),
                TOP_KEYS.join(", ")
            ),
            Some(hint),
        );
    }

    let app = app(&top, r);
    let artifact = artifact(&top, &ctx.root, r);
    let hooks = hooks(&top, r);
    let register = register(&top, r);
    let monitor = monitor(&top, r);
    let state = super::state::read(&top, &app.name, r);
    let defaults = match top.section("deploy", "[deploy] with service = \"hello\"", r) {
        Some(s) => deploy::read(&s, r),
        None => deploy::Layer::default(),
    };
    let environments = environment::read_all(&top, &defaults, &app.name, ctx, r);
    if artifact.kind == Kind::Docker {
        docker_needs_hosts(&top, &environments, r);
    }
    Project {
        root: ctx.root.clone(),
        file: r.file().to_path_buf(),
        app,
        artifact,
        hooks,
        register,
        monitor,
        state,
        environments,
    }
}

/// A required section, reporting its absence with an example.
fn required<'a>(
    top: &Section<'a>,
    key: &str,
    example: &str,
    r: &mut Report<'_>,
) -> Option<Section<'a>> {
    if top.get(key).is_none() {
        r.error(
            0,
            format!("missing [{key}] section"),
            Some(format!("add:\n{example}")),
        );
        return None;
    }
    top.section(key, example, r)
}

fn app(top: &Section<'_>, r: &mut Report<'_>) -> App {
    let Some(s) = required(top, "app", "[app]\nname = \"hello\"", r) else {
        return App {
            name: String::new(),
        };
    };
    s.check_keys(APP_KEYS, r);
    let name = match s.string("name", "name = \"hello\"", r) {
        Some(n) => n,
        None => {
            if s.get("name").is_none() {
                s.missing("name", "name = \"hello\"", r);
            }
            return App {
                name: String::new(),
            };
        }
    };
    if let Err(why) = check_name(name.get_ref()) {
        r.error(
            name.span().start,
            format!(
                "app name '{}' is not a valid name: it {why}",
                name.get_ref()
            ),
            Some(format!("try: name = \"{}\"", suggest_name(name.get_ref()))),
        );
    }
    App {
        name: name.into_inner(),
    }
}

/// A docker artifact runs on SSH hosts only: an environment of the `local`
/// provider (whose one host is this machine, run by Soar's supervisor)
/// needs `[env.<name>.ssh] hosts`. Other providers are judged at deploy
/// time, by whether they declare SSH (the config cannot know).
fn docker_needs_hosts(
    top: &Section<'_>,
    environments: &std::collections::BTreeMap<String, super::Environment>,
    r: &mut Report<'_>,
) {
    let Some((_, kind)) = top.get("artifact").and_then(|(_, v)| match v.get_ref() {
        DeValue::Table(t) => t.get_key_value("kind"),
        _ => None,
    }) else {
        return;
    };
    for env in environments.values() {
        if env.provider == "local" && env.ssh.hosts.is_empty() {
            r.error(
                kind.span().start,
                format!(
                    "kind = \"docker\" runs images on SSH hosts, but environment '{}' (line {}) uses the local provider without any",
                    env.name, env.line
                ),
                Some(format!(
                    "list the machines in [env.{}.ssh] hosts = [\"203.0.113.4\"] (this machine works too: \"127.0.0.1\"), or use another kind for the local target",
                    env.name
                )),
            );
        }
    }
}

fn artifact(top: &Section<'_>, root: &Path, r: &mut Report<'_>) -> ArtifactSpec {
    let mut spec = ArtifactSpec {
        kind: Kind::Binary,
        path: root.to_path_buf(),
        build: None,
        command: None,
        sha256: None,
        setup: None,
        docker: DockerSettings::default(),
    };
    let example = "[artifact]\nkind = \"binary\"\npath = \"target/release/hello\"\nbuild = \"cargo build --release\"";
    let Some(s) = required(top, "artifact", example, r) else {
        return spec;
    };
    s.check_keys(ARTIFACT_KEYS, r);

    let kind_name = s.string("kind", "kind = \"binary\"", r);
    let kind_name = match kind_name {
        Some(k) => match Kind::parse(k.get_ref()) {
            Some(parsed) => {
                spec.kind = parsed;
                Some(k.into_inner())
            }
            None => {
                let hint = match closest(k.get_ref(), ARTIFACT_KINDS) {
                    Some(c) => format!("did you mean kind = \"{c}\"?"),
                    None => format!("use one of: {}", ARTIFACT_KINDS.join(", ")),
                };
                r.error(
                    k.span().start,
                    // The contract's kinds, then the host's own.
                    format!(
                        "unknown artifact kind '{}' (valid kinds: {}), or docker for an image the host runs on SSH hosts",
                        k.get_ref(),
                        ARTIFACT_KINDS[..ARTIFACT_KINDS.len() - 1].join(", ")
                    ),
                    Some(hint),
                );
                None
            }
        },
        None => {
            if s.get("kind").is_none() {
                s.missing(
                    "kind",
                    &format!("kind = \"binary\" (one of: {})", ARTIFACT_KINDS.join(", ")),
                    r,
                );
            }
            None
        }
    };

    spec.build = s
        .string("build", "build = \"cargo build --release\"", r)
        .map(|b| b.into_inner());
    match s.string("path", "path = \"target/release/hello\"", r) {
        Some(p) => {
            spec.path = root.join(p.get_ref());
            if spec.build.is_none() && !spec.path.exists() {
                r.error(
                    p.span().start,
                    format!(
                        "artifact path '{}' does not exist (relative to {}); set `build` to produce it or fix the path",
                        p.get_ref(),
                        root.display()
                    ),
                    Some("for example: build = \"cargo build --release\"".to_string()),
                );
            } else if spec.build.is_none()
                && spec.kind == Kind::Docker
                && let Err(why) = check_docker_path(&spec.path)
            {
                r.error(
                    p.span().start,
                    format!("docker artifact path '{}' {why}", p.get_ref()),
                    Some(
                        "point `path` at the archive `docker save -o` writes (e.g. build = \"docker build -t app . && docker save app -o target/app.tar\", path = \"target/app.tar\"), or at a directory with a Dockerfile".to_string(),
                    ),
                );
            }
        }
        None => {
            // A docker artifact may name a registry image instead.
            if s.get("path").is_none() && s.get("image").is_none() {
                s.missing("path", "path = \"target/release/hello\"", r);
            }
        }
    }

    // Keys that only mean something for one kind.
    let only_for = |key: &str, wanted: &str, r: &mut Report<'_>| {
        if let (Some(kind), Some((k, _))) = (&kind_name, s.get(key))
            && kind != wanted
        {
            r.error(
                k.span().start,
                format!("`artifact.{key}` only applies to kind = \"{wanted}\", and this artifact is \"{kind}\""),
                Some(format!("remove `{key}`, or set kind = \"{wanted}\"")),
            );
        }
    };
    only_for("command", "script", r);
    only_for("sha256", "tarball", r);
    only_for("setup", "tarball", r);
    only_for("docker_command", "docker", r);
    only_for("publish", "docker", r);
    only_for("container_port", "docker", r);
    if let Some(c) = s.string("docker_command", "docker_command = \"sudo docker\"", r) {
        spec.docker.command = c.into_inner();
    }
    if let Some(p) = s.string("publish", "publish = \"127.0.0.1\"", r) {
        if PUBLISH_ADDRESSES.contains(&p.get_ref().trim()) {
            spec.docker.publish = p.get_ref().trim().to_string();
        } else {
            r.error(
                p.span().start,
                format!(
                    "`artifact.publish` = \"{}\" is not supported: publish the service port on all interfaces (\"0.0.0.0\", the default) or on the host alone (\"127.0.0.1\")",
                    p.get_ref()
                ),
                Some(
                    "the health check probes 127.0.0.1 on the host, which only these two reach; write publish = \"127.0.0.1\" or remove the key".to_string(),
                ),
            );
        }
    }
    spec.docker.container_port = s.port("container_port", r);
    super::image::read(&s, kind_name.as_deref(), &mut spec, r);
    spec.command = s
        .string("command", "command = \"python3 app.py\"", r)
        .map(|c| c.into_inner());
    spec.setup = s
        .string("setup", "setup = \"setup.sh\"", r)
        .map(|c| c.into_inner());
    if let Some(sum) = s.string(
        "sha256",
        "sha256 = \"<64 hex characters from sha256sum>\"",
        r,
    ) {
        let hex = sum.get_ref().trim().to_ascii_lowercase();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            spec.sha256 = Some(hex);
        } else {
            r.error(
                sum.span().start,
                "`artifact.sha256` must be 64 hexadecimal characters",
                Some("use the first column of `sha256sum <tarball>`".to_string()),
            );
        }
    }
    spec
}

fn hooks(top: &Section<'_>, r: &mut Report<'_>) -> Hooks {
    let mut hooks = Hooks {
        pre_deploy: None,
        post_deploy: None,
        on_failure: None,
        on_unhealthy: None,
        timeout: Duration::from_secs(60),
    };
    let Some(s) = top.section(
        "hooks",
        "[hooks] with pre_deploy = \"./scripts/check.sh\"",
        r,
    ) else {
        return hooks;
    };
    s.check_keys(HOOK_KEYS, r);
    let command = |key: &str, r: &mut Report<'_>| {
        s.string(key, &format!("{key} = \"./scripts/{key}.sh\""), r)
            .map(|c| c.into_inner())
    };
    hooks.pre_deploy = command("pre_deploy", r);
    hooks.post_deploy = command("post_deploy", r);
    hooks.on_failure = command("on_failure", r);
    hooks.on_unhealthy = command("on_unhealthy", r);
    if let Some(t) = s.duration("timeout", r) {
        hooks.timeout = t;
    }
    hooks
}

/// `[monitor]`: its webhook is an http(s) URL without a password, like
/// `[register] url`.
fn monitor(top: &Section<'_>, r: &mut Report<'_>) -> MonitorSettings {
    let example = "webhook = \"http://127.0.0.1:9999/alerts\"";
    let mut settings = MonitorSettings::default();
    let Some(s) = top.section("monitor", &format!("[monitor] with {example}"), r) else {
        return settings;
    };
    s.check_keys(MONITOR_KEYS, r);
    let Some(url) = s.string("webhook", example, r) else {
        return settings;
    };
    match check_http_url(url.get_ref()) {
        Ok(()) => settings.webhook = Some(url.into_inner()),
        Err(UrlProblem::Password) => r.secret(
            url.span().start,
            "`monitor.webhook` contains a password; secrets never go in soar.toml",
            Some(
                "remove the user:password@ part; use a URL the receiver accepts without it"
                    .to_string(),
            ),
        ),
        Err(UrlProblem::Invalid(why)) => r.error(
            url.span().start,
            format!("`monitor.webhook` {why}"),
            Some(format!("for example: {example}")),
        ),
    }
    settings
}

fn register(top: &Section<'_>, r: &mut Report<'_>) -> Option<Register> {
    let example = "url = \"http://127.0.0.1:9999/services\"";
    let s = top.section("register", &format!("[register] with {example}"), r)?;
    s.check_keys(REGISTER_KEYS, r);
    let Some(url) = s.string("url", example, r) else {
        if s.get("url").is_none() {
            s.missing("url", example, r);
        }
        return None;
    };
    match check_http_url(url.get_ref()) {
        Ok(()) => Some(Register {
            url: url.into_inner(),
        }),
        Err(UrlProblem::Password) => {
            r.secret(
                url.span().start,
                "`register.url` contains a password; secrets never go in soar.toml",
                Some("remove the user:password@ part; the registry must accept the service without it".to_string()),
            );
            None
        }
        Err(UrlProblem::Invalid(why)) => {
            r.error(
                url.span().start,
                format!("`register.url` {why}"),
                Some(format!("for example: {example}")),
            );
            None
        }
    }
}
