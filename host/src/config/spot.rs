//! Zero-config projects: a directory with `.spot/config.yaml` (the Portable
//! Spot Deployer layout) and no `soar.toml` is deployed as if it had this
//! `soar.toml`, synthesized in memory:
//!
//! ```toml
//! [app]
//! name = "<directory name, through suggest_name>"
//!
//! [artifact]
//! kind = "script"
//! path = "."
//!
//! [env.default]
//! provider = "aws-spot"
//! ```
//!
//! The environment is always called [`ENVIRONMENT`] (`default`): the plugin
//! reads every setting from `.spot/config.yaml` itself and rejects keys it
//! does not know, so the file has no place for an environment name. There
//! are no provider settings, no grants and no `[credentials]`: the plugin's
//! own endpoint (the real EC2 API) is used, signed with `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` or `AWS_PROFILE`.
//!
//! Found nearest first from the current directory up; in one directory
//! `soar.toml` wins over `.spot/` (it can still say `provider = "aws-spot"`).
//!
//! Dev/test override: with no `soar.toml` there is nowhere to write
//! `[env.<name>.grants] endpoints`, so a zero-config project takes endpoint
//! base-URL overrides from `SOAR_ENDPOINT_AWS_SPOT_<NAME>` environment
//! variables (`SOAR_ENDPOINT_AWS_SPOT_EC2=http://127.0.0.1:5000` points the
//! `ec2` endpoint at a local fake such as moto). They are exactly the
//! `grants.endpoints` of a `soar.toml`: only endpoints the plugin declares
//! can be redirected, nothing else is granted, and each one in effect is
//! announced on stderr. They are ignored when a `soar.toml` is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::grants::{UrlProblem, check_http_url};
use super::{ConfigError, Diagnostic, FILE_NAME, Project};

/// The file that makes a directory a zero-config project.
pub const CONFIG_PATH: &str = ".spot/config.yaml";
/// The provider of a zero-config project.
pub const PROVIDER: &str = "aws-spot";
/// The one environment of a zero-config project.
pub const ENVIRONMENT: &str = "default";
/// Prefix of the endpoint override variables (dev/test only).
pub const ENDPOINT_PREFIX: &str = "SOAR_ENDPOINT_AWS_SPOT_";

/// What a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A `soar.toml`.
    File(PathBuf),
    /// A directory with `.spot/config.yaml` and no `soar.toml`.
    ZeroConfig(PathBuf),
}

impl Located {
    /// Load the project; `known_providers` as for [`super::load`].
    pub fn load(&self, known_providers: &[&str]) -> Result<Project, ConfigError> {
        match self {
            Self::File(path) => super::load(path, known_providers),
            Self::ZeroConfig(dir) => synthesize(dir, known_providers)
                .unwrap_or_else(|| super::load(&dir.join(FILE_NAME), known_providers)),
        }
    }
}

/// The nearest `soar.toml` or zero-config directory in `start` or above; in
/// one directory `soar.toml` wins.
pub fn discover(start: &Path) -> Option<Located> {
    let start = std::path::absolute(start).ok()?;
    start.ancestors().find_map(|dir| {
        let file = dir.join(FILE_NAME);
        if file.is_file() {
            Some(Located::File(file))
        } else if dir.join(CONFIG_PATH).is_file() {
            Some(Located::ZeroConfig(dir.to_path_buf()))
        } else {
            None
        }
    })
}

/// The project of the zero-config directory `dir`, with endpoint overrides
/// from this process's `SOAR_ENDPOINT_AWS_SPOT_*` variables; `None` when
/// `dir` has a `soar.toml` or no `.spot/config.yaml`.
pub fn synthesize(dir: &Path, known_providers: &[&str]) -> Option<Result<Project, ConfigError>> {
    if dir.join(FILE_NAME).is_file() || !dir.join(CONFIG_PATH).is_file() {
        return None;
    }
    let overrides: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(ENDPOINT_PREFIX))
        .collect();
    let project = synthesize_with(dir, known_providers, &overrides);
    if project.is_ok() {
        for (var, url) in &overrides {
            eprintln!(
                "soar: {var}={} overrides an aws-spot endpoint (zero-config dev/test override)",
                url.trim()
            );
        }
    }
    Some(project)
}

/// [`synthesize`] with the override variables given (name -> value).
pub fn synthesize_with(
    dir: &Path,
    known_providers: &[&str],
    overrides: &BTreeMap<String, String>,
) -> Result<Project, ConfigError> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let config = dir.join(CONFIG_PATH);
    let problem = |message: String, hint: Option<String>| Diagnostic {
        file: config.clone(),
        line: 0,
        col: 0,
        message,
        hint,
    };

    let mut endpoints = BTreeMap::new();
    let mut problems = Vec::new();
    for (var, url) in overrides {
        let name = var
            .strip_prefix(ENDPOINT_PREFIX)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let example = format!("for example: {var}=http://127.0.0.1:5000");
        if name.is_empty() {
            problems.push(problem(
                format!("{var} names no endpoint"),
                Some(format!("write {ENDPOINT_PREFIX}EC2=http://127.0.0.1:5000")),
            ));
            continue;
        }
        match check_http_url(url) {
            Ok(()) => {
                endpoints.insert(name, url.trim().to_string());
            }
            // Not shown: it carries a password.
            Err(UrlProblem::Password) => problems.push(problem(
                format!("{var} contains a password; endpoint overrides never carry credentials"),
                Some("remove the user:password@ part; AWS keys come from AWS_* variables".into()),
            )),
            Err(UrlProblem::Invalid(why)) => problems.push(problem(
                format!("{var} (endpoint override) {why}"),
                Some(example),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError(problems));
    }

    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let name = super::suggest_name(&raw);
    let mut env = toml::Table::new();
    env.insert("provider".into(), PROVIDER.into());
    let mut envs = toml::Table::new();
    envs.insert(ENVIRONMENT.into(), env.into());
    let mut app = toml::Table::new();
    app.insert("name".into(), name.into());
    let mut artifact = toml::Table::new();
    artifact.insert("kind".into(), "script".into());
    artifact.insert("path".into(), ".".into());
    let mut doc = toml::Table::new();
    doc.insert("app".into(), app.into());
    doc.insert("artifact".into(), artifact.into());
    doc.insert("env".into(), envs.into());
    let text = toml::to_string(&doc).expect("a table of strings serializes");

    // Parsed as a soar.toml of `dir` so every default is the usual one.
    let mut project = super::parse(&text, &dir.join(FILE_NAME), known_providers).map_err(|e| {
        ConfigError(
            e.0.into_iter()
                .map(|d| {
                    problem(
                        format!("zero-config project (no soar.toml): {}", d.message),
                        d.hint,
                    )
                })
                .collect(),
        )
    })?;
    // Messages name the file the project comes from; soar.lock (next to it)
    // lands in .spot/.
    project.file = config.clone();
    for env in project.environments.values_mut() {
        env.line = 0;
        env.grants.endpoints = endpoints.clone();
        env.grants.section = if endpoints.is_empty() {
            format!(
                "the zero-config project {} (no soar.toml, no grants)",
                dir.display()
            )
        } else {
            format!("the {ENDPOINT_PREFIX}* endpoint overrides (zero-config dev/test override)")
        };
    }
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ArtifactKind;

    fn spot_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join(".spot")).unwrap();
        std::fs::write(dir.join(CONFIG_PATH), "regions: [us-east-1]\n").unwrap();
        (tmp, dir)
    }

    #[test]
    fn synthesizes_the_conventional_project() {
        let (_tmp, dir) = spot_dir("My Spot_Project");
        let p = synthesize(&dir, &[PROVIDER]).unwrap().unwrap();
        assert_eq!(p.app.name, "my-spot-project");
        assert_eq!(p.root, dir);
        assert_eq!(p.file, dir.join(CONFIG_PATH));
        assert_eq!(p.artifact.kind, ArtifactKind::Script);
        assert_eq!(p.artifact.path, dir.join("."));
        assert_eq!(p.environments.len(), 1);
        let env = &p.environments[ENVIRONMENT];
        assert_eq!(env.provider, PROVIDER);
        assert_eq!(env.settings, serde_json::json!({}));
        assert!(env.grants.endpoints.is_empty() && env.grants.hosts.is_empty());
        assert!(env.credentials.is_empty());
        assert_eq!(env.deploy.service, "my-spot-project");
    }

    #[test]
    fn soar_toml_wins() {
        let (_tmp, dir) = spot_dir("proj");
        assert_eq!(
            discover(&dir.join(".spot")),
            Some(Located::ZeroConfig(dir.clone()))
        );
        std::fs::write(dir.join(FILE_NAME), "").unwrap();
        assert!(synthesize(&dir, &[PROVIDER]).is_none());
        assert_eq!(discover(&dir), Some(Located::File(dir.join(FILE_NAME))));
        // The nearest wins: a zero-config subdirectory of a soar.toml project.
        let sub = dir.join("sub");
        std::fs::create_dir_all(sub.join(".spot")).unwrap();
        std::fs::write(sub.join(CONFIG_PATH), "").unwrap();
        assert_eq!(discover(&sub), Some(Located::ZeroConfig(sub.clone())));
    }

    #[test]
    fn no_spot_config_is_not_a_project() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(synthesize(tmp.path(), &[PROVIDER]).is_none());
        std::fs::create_dir(tmp.path().join(".spot")).unwrap();
        assert!(synthesize(tmp.path(), &[PROVIDER]).is_none());
    }

    #[test]
    fn endpoint_overrides_become_grants() {
        let (_tmp, dir) = spot_dir("proj");
        let vars = BTreeMap::from([(
            "SOAR_ENDPOINT_AWS_SPOT_EC2".to_string(),
            " http://127.0.0.1:5000 ".to_string(),
        )]);
        let p = synthesize_with(&dir, &[PROVIDER], &vars).unwrap();
        let g = &p.environments[ENVIRONMENT].grants;
        assert_eq!(g.endpoints["ec2"], "http://127.0.0.1:5000");
        assert!(g.hosts.is_empty());
        assert!(g.section.contains("SOAR_ENDPOINT_AWS_SPOT_"));
    }

    #[test]
    fn bad_overrides_name_the_variable_and_hide_passwords() {
        let (_tmp, dir) = spot_dir("proj");
        let vars = BTreeMap::from([
            ("SOAR_ENDPOINT_AWS_SPOT_EC2".to_string(), "moto".to_string()),
            (
                "SOAR_ENDPOINT_AWS_SPOT_X".to_string(),
                "http://u:hunter2@127.0.0.1".to_string(),
            ),
        ]);
        let err = synthesize_with(&dir, &[PROVIDER], &vars).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.0.len(), 2, "{shown}");
        assert!(shown.contains("SOAR_ENDPOINT_AWS_SPOT_EC2 (endpoint override)"));
        assert!(shown.contains("SOAR_ENDPOINT_AWS_SPOT_X contains a password"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn an_unknown_provider_is_reported_against_the_spot_config() {
        let (_tmp, dir) = spot_dir("proj");
        let err = synthesize_with(&dir, &["local"], &BTreeMap::new()).unwrap_err();
        let d = &err.0[0];
        assert_eq!(d.file, dir.join(CONFIG_PATH));
        assert!(
            d.message
                .starts_with("zero-config project (no soar.toml): ")
        );
        assert!(d.message.contains("aws-spot"), "{}", d.message);
    }
}
