//! Getting one environment ready to plan: its plugin loaded, a session
//! opened with the right grants, credentials and artifact, and the
//! provider's own validation run against the user's soar.toml.

use std::sync::Arc;

use super::Workspace;
use super::targets;
use crate::artifact::ArtifactSource;
use crate::config::Environment;
use crate::contract::{Context, Severity};
use crate::journal::Journal;
use crate::runtime::Plugin;
use crate::session::Session;

/// Everything prepared for planning one environment.
pub(crate) struct Prepared<'w> {
    pub env: &'w Environment,
    pub plugin: Arc<Plugin>,
    pub session: Arc<Session>,
    pub ctx: Context,
    pub artifact: Option<Arc<ArtifactSource>>,
    pub journal: Arc<Journal>,
}

impl Workspace {
    /// Load the plugin and open its session for `env`, to deploy `artifact`:
    /// service secrets are resolved (a deploy may hand them to the
    /// provider's API, e.g. Workers secret bindings).
    pub(crate) async fn prepare(
        &self,
        env: &str,
        artifact: Option<ArtifactSource>,
    ) -> anyhow::Result<Prepared<'_>> {
        let secrets = artifact.is_some();
        self.prepare_with(env, artifact, secrets).await
    }

    /// For commands that deploy nothing (destroy, status, refresh, logs):
    /// the artifact as it is on disk, if it exists, without building it, so
    /// providers that keep their configuration in the project (aws-spot's
    /// `.spot/`) can still read it; no service secrets.
    pub(crate) async fn prepare_existing(&self, env: &str) -> anyhow::Result<Prepared<'_>> {
        let spec = &self.project.artifact;
        // A docker artifact is never shown to plugins: not worth hashing here.
        let artifact = (spec.kind.contract().is_some() && spec.path.exists())
            .then(|| ArtifactSource::scan(spec.kind, &spec.path).ok())
            .flatten();
        self.prepare_with(env, artifact, false).await
    }

    async fn prepare_with(
        &self,
        env: &str,
        artifact: Option<ArtifactSource>,
        with_secrets: bool,
    ) -> anyhow::Result<Prepared<'_>> {
        let env = self.environment(Some(env))?;
        let plugin = self.plugin(env).await?;
        let journal = Arc::new(Journal::default());
        let secrets = if with_secrets {
            self.resolve_secrets(env)?
                .into_iter()
                .map(|(k, v)| (k, crate::credentials::Secret::new(v)))
                .collect()
        } else {
            Default::default()
        };
        let artifact = artifact.map(Arc::new);
        // Plugins see only artifacts of the contract's kinds; a docker image
        // is the host's to roll out (see `artifact::Kind`).
        let shown = artifact.clone().filter(|a| a.for_plugins());
        let session = self.session(&plugin, env, shown, journal.clone(), secrets)?;
        targets::configure_ssh(self, env, &session.ssh)?;
        let ctx = self.context(env, &session);
        Ok(Prepared {
            env,
            plugin,
            session,
            ctx,
            artifact,
            journal,
        })
    }
}

/// The provider's `validate`; errors point at the environment in soar.toml.
pub(crate) async fn validate_env(ws: &Workspace, p: &Prepared<'_>) -> anyhow::Result<()> {
    let env = p.env;
    let validation = p.plugin.validate(p.session.clone(), &p.ctx).await?;
    let errors: Vec<String> = validation
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let mut line = format!(
                "{}: {}",
                env_location(ws, env, d.field.as_deref()),
                crate::terminal::line(&d.message)
            );
            if let Some(h) = &d.hint {
                line.push_str(&format!(" ({})", crate::terminal::line(h)));
            }
            line
        })
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "provider '{}' rejected environment '{}':\n  {}",
            env.provider,
            env.name,
            errors.join("\n  ")
        );
    }
    Ok(())
}

fn env_location(ws: &Workspace, env: &Environment, field: Option<&str>) -> String {
    let file = ws.project.file.display();
    let located = field.and_then(|f| {
        let text = std::fs::read_to_string(&ws.project.file).ok()?;
        crate::config::locate(&text, &format!("env.{}.{f}", env.name))
    });
    match located {
        Some((line, col)) => format!("{file}:{line}:{col}"),
        None => format!("{file}:{}", env.line),
    }
}
