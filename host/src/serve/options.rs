//! The options a deploy request may add to a project's soar.toml:
//! `auto_register` (skip or require the project's `[register]`) and
//! `secrets` (extra service variables, each the NAME of a secret the server
//! holds: `[secrets] NAME = "SERVER_VAR"` in soar-server.toml).
//!
//! Values never travel: the request, the job record and its events carry
//! NAMEs; the deploy child inherits the server's environment and resolves
//! `SERVER_VAR` itself, exactly as a CLI deploy resolves `[deploy] secrets`.
//!
//! The deploy path reads everything from soar.toml, so a job with options
//! runs on a copy of it with the options applied, written next to the
//! original (`.soar-serve-<job>.toml`, so relative paths, the `.soar/`
//! state and the plugin lock stay the project's) and removed when the
//! attempt ends. The copy names only variables, never their values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::error::ApiError;
use super::jobs::{Job, Options};
use crate::config::{Environment, Project};

/// Check `options` for a deploy of `project`'s `env` against the server's
/// `[secrets]`: every NAME configured and set, every variable new.
pub fn check(
    options: &Options,
    project: &Project,
    env: &Environment,
    secrets: &BTreeMap<String, String>,
    plan: Option<&str>,
) -> Result<(), ApiError> {
    if plan.is_some() && !options.is_empty() {
        return Err(ApiError::bad_request(
            "a saved plan is applied exactly as planned: `auto_register` and `secrets` cannot change it",
            "deploy without \"plan\" to use them (the deploy then plans and applies)",
        ));
    }
    if options.auto_register == Some(true) && project.register.is_none() {
        return Err(ApiError::bad_request(
            "auto_register is true but the project has no [register] url",
            "add `[register] url = \"...\"` to its soar.toml, or leave auto_register out",
        ));
    }
    let names = || {
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        if names.is_empty() {
            "this server configures none ([secrets] in soar-server.toml)".to_string()
        } else {
            format!("the server's secrets: {}", names.join(", "))
        }
    };
    for (var, name) in &options.secrets {
        let shown = crate::terminal::clip(var, 64);
        if !crate::config::is_env_var_name(var) {
            return Err(ApiError::bad_request(
                format!("secrets: {shown:?} is not a variable name"),
                "name each variable like API_KEY (A-Z, 0-9, _; not starting with a digit)",
            ));
        }
        if env.deploy.env.contains_key(var) || env.deploy.secrets.contains_key(var) {
            return Err(ApiError::bad_request(
                format!(
                    "secrets: {shown} is already set by the project's soar.toml for {}",
                    env.name
                ),
                "choose another variable, or change soar.toml",
            ));
        }
        let Some(server_var) = secrets.get(name) else {
            return Err(ApiError::bad_request(
                format!(
                    "secrets: no server secret named {:?}",
                    crate::terminal::clip(name, 64)
                ),
                names(),
            ));
        };
        if std::env::var_os(server_var).is_none_or(|v| v.is_empty()) {
            return Err(ApiError::bad_request(
                format!("secrets: the server secret {name} has no value on this server"),
                "the server's operator must set it in the server's environment and restart it",
            ));
        }
    }
    Ok(())
}

/// The soar.toml a job's attempt runs with: the project's own, or a copy
/// with the job's options applied (removed when this is dropped).
#[derive(Debug)]
pub struct Derived {
    path: PathBuf,
    temporary: bool,
}

impl Derived {
    /// The file to pass to `soar -c`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The soar.toml `job` runs with in the project at `root`; `secrets` is the
/// server's `[secrets]` (NAME -> server variable).
pub fn derive(
    root: &Path,
    job: &Job,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<Derived> {
    let original = root.join("soar.toml");
    if job.options.is_empty() {
        return Ok(Derived {
            path: original,
            temporary: false,
        });
    }
    let text = std::fs::read_to_string(&original)
        .with_context(|| format!("reading {}", original.display()))?;
    let text = apply(&text, &job.environment, &job.options, secrets)?;
    let path = root.join(format!(".soar-serve-{}.toml", job.id));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Derived {
        path,
        temporary: true,
    })
}

/// soar.toml `text` with `options` applied to environment `env`.
fn apply(
    text: &str,
    env: &str,
    options: &Options,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(text).context("parsing soar.toml")?;
    if options.auto_register == Some(false) {
        doc.remove("register");
    }
    if !options.secrets.is_empty() {
        let envs = doc
            .get_mut("env")
            .and_then(toml::Value::as_table_mut)
            .context("soar.toml has no [env] table")?;
        let deploy = envs
            .get_mut(env)
            .and_then(toml::Value::as_table_mut)
            .with_context(|| format!("soar.toml has no [env.{env}]"))?
            .entry("deploy")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("[env.{env}] deploy in soar.toml is not a table"))?;
        let extra = deploy
            .entry("secrets")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("[env.{env}.deploy] secrets in soar.toml is not a table"))?;
        for (var, name) in &options.secrets {
            let server_var = secrets.get(name).with_context(|| {
                format!("the server secret {name:?} is no longer in soar-server.toml")
            })?;
            extra.insert(var.clone(), toml::Value::String(server_var.clone()));
        }
    }
    Ok(toml::to_string(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_rewrite_register_and_secrets() {
        let text = "[app]\nname = \"web\"\n[deploy]\nsecrets = { A = \"HOST_A\" }\n[register]\nurl = \"http://r\"\n[env.dev]\nprovider = \"local\"\n";
        let secrets = BTreeMap::from([("DB".to_string(), "SERVER_DB_URL".to_string())]);
        let options = Options {
            auto_register: Some(false),
            secrets: BTreeMap::from([("DATABASE_URL".to_string(), "DB".to_string())]),
        };
        let out: toml::Table =
            toml::from_str(&apply(text, "dev", &options, &secrets).unwrap()).unwrap();
        assert!(!out.contains_key("register"));
        assert_eq!(
            out["env"]["dev"]["deploy"]["secrets"]["DATABASE_URL"].as_str(),
            Some("SERVER_DB_URL")
        );
        // The project's own secrets stay where they were.
        assert_eq!(out["deploy"]["secrets"]["A"].as_str(), Some("HOST_A"));
        let keep = Options {
            auto_register: Some(true),
            ..Options::default()
        };
        let out: toml::Table =
            toml::from_str(&apply(text, "dev", &keep, &secrets).unwrap()).unwrap();
        assert!(out.contains_key("register"));
        let gone = Options {
            secrets: BTreeMap::from([("X".to_string(), "NOPE".to_string())]),
            ..Options::default()
        };
        assert!(apply(text, "dev", &gone, &secrets).is_err());
        assert!(apply(text, "prod", &options, &secrets).is_err());
    }
}
