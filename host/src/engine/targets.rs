//! Where a release runs: the hosts a provider reports, turned into rollout
//! targets (this machine through the local transport; remote hosts over SSH).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::Workspace;
use crate::config::Environment;
use crate::rollout::service::ServiceSpec;
use crate::runtime::Plugin;
use crate::runtime::bindings::Context;
use crate::session::Session;
use crate::state::{ResourceRecord, StateStore, now_ms};

/// The state record that remembers a service's allocated port.
pub const SERVICE_KIND: &str = "service";

/// One host a release goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This machine, supervised by `soar __supervise`.
    Local(ServiceSpec),
}

impl Target {
    /// The service definition on that host.
    pub fn spec(&self) -> &ServiceSpec {
        match self {
            Target::Local(s) => s,
        }
    }

    /// Where the service answers, for people.
    pub fn url(&self) -> String {
        match self {
            Target::Local(s) => format!("http://127.0.0.1:{}", s.port),
        }
    }
}

/// `<project>/.soar/local/<env>/<service>`: everything the local target
/// writes lives under the project's state directory.
pub fn local_root(ws: &Workspace, env: &Environment) -> PathBuf {
    ws.state_dir()
        .join("local")
        .join(&env.name)
        .join(&env.deploy.service)
}

/// The service's port if it is settled: configured, or allocated by an
/// earlier deploy. Planning uses this and never allocates (plans are free of
/// side effects and deterministic).
pub fn known_port(store: &StateStore, env: &Environment) -> anyhow::Result<Option<u16>> {
    if let Some(p) = env.deploy.port {
        return Ok(Some(p));
    }
    Ok(store
        .resources(&env.name)?
        .into_iter()
        .find(|r| r.kind == SERVICE_KIND && r.name == env.deploy.service)
        .and_then(|r| r.attributes.get("port").and_then(|p| p.as_u64()))
        .and_then(|p| u16::try_from(p).ok()))
}

/// The service's port: configured, or allocated once (at the first deploy)
/// and remembered in state.
pub fn service_port(store: &StateStore, env: &Environment) -> anyhow::Result<u16> {
    if let Some(p) = known_port(store, env)? {
        return Ok(p);
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    store.upsert_resource(&ResourceRecord {
        env: env.name.clone(),
        provider: env.provider.clone(),
        kind: SERVICE_KIND.into(),
        name: env.deploy.service.clone(),
        id: None,
        attributes: json!({ "port": port }),
        updated_at: now_ms(),
    })?;
    Ok(port)
}

/// The targets of `env`, from the provider's `status`.
pub async fn resolve(
    ws: &Workspace,
    env: &Environment,
    plugin: &Plugin,
    session: Arc<Session>,
    ctx: &Context,
    port: u16,
    command: &str,
) -> anyhow::Result<Vec<Target>> {
    let statuses = plugin.status(session, ctx).await?;
    let mut targets = Vec::new();
    for status in statuses {
        for ep in status.endpoints {
            match ep.kind.as_str() {
                "local" => {
                    let t = Target::Local(ServiceSpec {
                        name: env.deploy.service.clone(),
                        root: local_root(ws, env).to_string_lossy().into_owned(),
                        command: command.to_string(),
                        port,
                    });
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                "ssh" => anyhow::bail!(
                    "provider '{}' reports SSH host {} for {}, but this soar cannot roll out over SSH yet",
                    env.provider,
                    ep.address,
                    status.resource.name
                ),
                _ => {}
            }
        }
    }
    Ok(targets)
}
