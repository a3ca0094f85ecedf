//! The deployment engine: config → plugin plan → plan (with the host's
//! rollout step) → apply in parallel → rollout → health → state and audit.
//!
//! [`Workspace`] ties the pieces one command needs: the loaded project, the
//! plugin catalog and runtime, and the `.soar/` directory. The commands live
//! in their own modules ([`deploy`], [`destroy`], [`releases`], [`refresh`]);
//! the steps they share have one module each: [`prepare`] (plugin, session,
//! provider validation), [`plan`] and [`render`] (the plan and how it reads),
//! [`apply`] (provider changes in parallel), [`failure`] (whether a
//! failure is worth another attempt), [`targets`] and [`fanout`] (the
//! hosts a release goes to, in batches), [`hooks`], [`register`], and
//! [`trail`] (audit phases, progress, confirmation).

pub mod apply;
pub mod deploy;
pub mod destroy;
pub mod failure;
pub mod fanout;
pub mod hooks;
pub mod plan;
pub mod prepare;
pub mod refresh;
pub mod register;
pub mod releases;
pub mod render;
pub mod targets;
pub mod trail;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::artifact::ArtifactSource;
use crate::broker::http::HttpLimits;
use crate::catalog::Catalog;
use crate::config::{self, Environment, Project};
use crate::contract::Context;
use crate::credentials::ProcessEnv;
use crate::journal::Journal;
use crate::report::Reporter;
use crate::runtime::{Plugin, Runtime, RuntimeConfig, cache::CompileCache};
use crate::session::{Session, SessionConfig};
use crate::state::{HolderInfo, ProjectLock, StateLocation, StateStore};

/// Name of the project's state directory.
pub const STATE_DIR: &str = ".soar";

/// Everything one command works with.
pub struct Workspace {
    /// The loaded configuration.
    pub project: Project,
    /// The plugins this machine has.
    pub catalog: Catalog,
    /// What runs them.
    pub runtime: Runtime,
    /// Where the command's output goes (text or `--json` events).
    pub out: Reporter,
}

impl Workspace {
    /// Load `soar.toml` (given, or found from the current directory up), or
    /// synthesize a zero-config aws-spot project from `.spot/config.yaml`
    /// (see [`config::spot`]).
    pub fn open(config_path: Option<&Path>, out: Reporter) -> anyhow::Result<Self> {
        let located = match config_path {
            Some(p) => config::spot::Located::File(p.to_path_buf()),
            None => {
                let cwd = std::env::current_dir()?;
                config::spot::discover(&cwd).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no soar.toml (or .spot/config.yaml) in {} or its parents: run `soar init`, or pass -c PATH",
                        cwd.display()
                    )
                })?
            }
        };
        let catalog = Catalog::discover(Catalog::default_dir())?;
        let known: Vec<&str> = catalog.entries().iter().map(|e| e.name.as_str()).collect();
        let project = located.load(&known)?;
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: CompileCache::default_dir(),
            ..Default::default()
        })?;
        Ok(Self {
            project,
            catalog,
            runtime,
            out,
        })
    }

    /// `<project>/.soar`.
    pub fn state_dir(&self) -> PathBuf {
        self.project.root.join(STATE_DIR)
    }

    /// Where the state lives: `.soar/`, or the PostgreSQL database named by
    /// `--state`, `SOAR_STATE_URL` or `[state] url`.
    pub fn state_location(&self) -> StateLocation {
        StateLocation::choose(
            &self.state_dir(),
            self.project.state.url.as_deref(),
            &self.project.state.project,
        )
    }

    /// Open the state store.
    pub fn state(&self) -> anyhow::Result<StateStore> {
        StateStore::open_at(&self.state_location())
    }

    /// Take environment `env`'s lock where the state lives (the project
    /// lock shared, the environment's exclusive), waiting up to `timeout`:
    /// commands on other environments run meanwhile; see
    /// [`ProjectLock::acquire_env_at`].
    pub fn lock(
        &self,
        env: &str,
        timeout: Duration,
        holder: &HolderInfo,
    ) -> anyhow::Result<ProjectLock> {
        Ok(ProjectLock::acquire_env_at(
            &self.state_location(),
            env,
            timeout,
            holder,
        )?)
    }

    /// The environment named `name`, or the only one when none is named.
    pub fn environment(&self, name: Option<&str>) -> anyhow::Result<&Environment> {
        let envs = &self.project.environments;
        let names = || envs.keys().cloned().collect::<Vec<_>>().join(", ");
        match name {
            Some(n) => envs.get(n).ok_or_else(|| {
                anyhow::anyhow!(
                    "no environment '{n}' in {} (it has: {})",
                    self.project.file.display(),
                    names()
                )
            }),
            None if envs.len() == 1 => Ok(envs.values().next().expect("one environment")),
            None => anyhow::bail!(
                "{} has several environments ({}); choose one with --env",
                self.project.file.display(),
                names()
            ),
        }
    }

    /// Load the environment's provider plugin.
    ///
    /// Refused when the project's `soar.lock` pins another digest for it (an
    /// installed plugin not pinned yet is pinned now: trust on first use).
    pub async fn plugin(&self, env: &Environment) -> anyhow::Result<Arc<Plugin>> {
        let entry = self.catalog.get(&env.provider)?;
        crate::install::lock::check(&self.project.file, entry, &self.out)?;
        Ok(Arc::new(
            self.runtime
                .load_digested(&entry.name, &entry.bytes, entry.digest.clone())
                .await?,
        ))
    }

    /// What the plugin may reach in `env`, for one command.
    pub fn session(
        &self,
        plugin: &Plugin,
        env: &Environment,
        artifact: Option<Arc<ArtifactSource>>,
        journal: Arc<Journal>,
        service_secrets: BTreeMap<String, crate::credentials::Secret>,
    ) -> anyhow::Result<Arc<Session>> {
        Ok(Arc::new(
            Session::new(
                plugin.description(),
                SessionConfig {
                    grants: env.grants.clone(),
                    credential_env: env.credentials.clone(),
                    secrets: Box::new(ProcessEnv),
                    artifact,
                    journal,
                    http_limits: HttpLimits::default(),
                },
            )?
            .with_service_secrets(service_secrets),
        ))
    }

    /// The context every plugin call of this command receives.
    pub fn context(&self, env: &Environment, session: &Session) -> Context {
        Context {
            app: self.project.app.name.clone(),
            environment: env.name.clone(),
            settings: env.settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: session.artifact.as_ref().map(|a| a.describe()),
        }
    }

    /// Run the artifact's build command (if any), then scan the artifact.
    pub async fn build_artifact(&self) -> anyhow::Result<ArtifactSource> {
        let spec = &self.project.artifact;
        if let Some(build) = &spec.build {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(build)
                .current_dir(&self.project.root)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .with_context(|| format!("running the build command `{build}`"))?;
            if !out.status.success() {
                let tail = |b: &[u8]| {
                    let text = String::from_utf8_lossy(b);
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(30)..].join("\n")
                };
                anyhow::bail!(
                    "the build command `{build}` failed ({}):\n{}\n{}",
                    out.status,
                    tail(&out.stdout),
                    tail(&out.stderr)
                );
            }
        }
        if let Some(image) = &spec.docker.image {
            // The hosts pull it; a project that builds it has soar push it.
            let dir = self.state_dir().join("image");
            return crate::rollout::registry::release_artifact(image, spec.build.is_some(), &dir)
                .await;
        }
        ArtifactSource::scan(spec.kind, &spec.path).with_context(|| {
            format!(
                "reading the artifact at {}{}",
                spec.path.display(),
                if spec.build.is_some() {
                    " (after the build command)"
                } else {
                    ""
                }
            )
        })
    }

    /// Resolve `[deploy] secrets` from this process's environment.
    pub fn resolve_secrets(&self, env: &Environment) -> anyhow::Result<BTreeMap<String, String>> {
        env.deploy
            .secrets
            .iter()
            .map(|(var, source)| {
                std::env::var(source).map(|v| (var.clone(), v)).map_err(|_| {
                    anyhow::anyhow!(
                        "secret {var} of environment '{}': environment variable {source} is not set; export it before deploying",
                        env.name
                    )
                })
            })
            .collect()
    }
}
