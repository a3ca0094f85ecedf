//! The `soar.toml` that `soar init` writes: a working local deploy out of
//! the box, with every other option shown commented out so the file
//! documents itself.

use super::identity::{check_name, suggest_name};

/// A commented `soar.toml` for `app_name`, targeting the local provider.
///
/// The result always validates: an `app_name` that breaks the naming rule
/// is replaced by [`suggest_name`]'s fix (check it with `check_name` first
/// to tell the user).
pub fn init_template(app_name: &str) -> String {
    let name = match check_name(app_name) {
        Ok(()) => app_name.to_string(),
        Err(_) => suggest_name(app_name),
    };
    format!(
        r#"# soar.toml: how to build and deploy {name}.
# Secrets never go in this file: put them in environment variables and
# reference their names (see `secrets` below).

[app]
# Names are 3-63 lowercase letters, digits and hyphens.
name = "{name}"

[artifact]
# binary | script | static | tarball | docker
kind = "binary"
# Relative to this file's directory.
path = "target/release/{name}"
# Run before packaging; produces `path`.
build = "cargo build --release"
# kind = "script":  command = "python3 app.py"
# kind = "tarball": sha256 = "<sha256sum of the tarball>", setup = "setup.sh"
# kind = "docker":  path = "app.tar" (`docker save -o`) or a directory with a Dockerfile

[deploy]
# Defaults for every environment; [env.<name>.deploy] overrides them.
# service = "{name}"
# port = 8080                       # absent: the local target picks one
# env = {{ GREETING = "hi" }}
# secrets = {{ API_KEY = "{upper}_API_KEY" }}   # service var -> host env var NAME
# keep_releases = 5
# health = {{ path = "/health", timeout = "30s", interval = "1s", retries = 30 }}
# rollout = {{ batch = 1 }}           # or batch = "25%"

# [hooks]
# pre_deploy = "./scripts/check.sh"
# post_deploy = "echo deployed"
# on_failure = "echo failed"
# timeout = "60s"

# [register]
# url = "http://127.0.0.1:9999/services"

[env.dev]
provider = "local"
# Other keys here are settings for the provider plugin.

# [env.dev.deploy]
# port = 9000

# [env.prod]
# provider = "digitalocean"
# default_region = "nyc1"
# [env.prod.credentials]
# digitalocean = "DIGITALOCEAN_TOKEN"   # env var NAME holding the token
"#,
        upper = name.to_ascii_uppercase().replace('-', "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn template_parses_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("soar.toml");
        let text = init_template("hello");
        let project = parse(&text, &file, &["local"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(project.app.name, "hello");
        assert_eq!(
            project.artifact.path,
            dir.path().join("target/release/hello")
        );
        assert_eq!(
            project.artifact.build.as_deref(),
            Some("cargo build --release")
        );
        let dev = &project.environments["dev"];
        assert_eq!(dev.provider, "local");
        assert_eq!(dev.deploy.service, "hello");
        assert_eq!(dev.settings, serde_json::json!({}));
    }

    #[test]
    fn uncommented_options_parse_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("soar.toml");
        let text: String = init_template("hello")
            .lines()
            .map(|l| {
                // Uncomment option lines (not prose) to check the examples.
                let body = l.strip_prefix("# ").unwrap_or(l);
                let option = body.contains(" = ") || body.starts_with('[');
                if l.starts_with("# ") && option && !body.starts_with("kind = \"") {
                    body.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let project = parse(&text, &file, &["local", "digitalocean"])
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        assert_eq!(project.environments.len(), 2);
        assert_eq!(project.environments["dev"].deploy.port, Some(9000));
        assert!(project.register.is_some());
    }

    #[test]
    fn bad_names_are_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let text = init_template("My_App");
        assert!(text.contains("name = \"my-app\""));
        parse(&text, &dir.path().join("soar.toml"), &["local"]).unwrap();
    }
}
