//! Local provider: runs the artifact on this machine, so a newcomer can
//! deploy with no cloud account.
//!
//! The machine already exists, so the plugin plans no cloud changes; its
//! `status` names this machine as the one host to roll out to. The host's
//! rollout then puts the release in place over its local transport, the same
//! rollout code that runs over SSH for remote hosts.

use soar_sdk::prelude::*;

/// The local provider.
pub struct Local;

impl Provider for Local {
    fn describe() -> Description {
        Description {
            name: "local".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Runs the artifact on this machine as a supervised service".into(),
            artifacts: vec![
                ArtifactKind::Binary,
                ArtifactKind::Script,
                ArtifactKind::Static,
                ArtifactKind::Tarball,
            ],
            // Ports, env vars and health checks are deployment settings
            // (`[deploy]`), the same for every provider.
            settings_schema: json!({ "type": "object", "properties": {} }).to_string(),
            capabilities: Capabilities {
                endpoints: vec![],
                extra_hosts: vec![],
                credentials: vec![],
                ssh: false,
            },
        }
    }

    /// The local target has no cloud resources: the machine already exists.
    /// The release itself is the host's rollout step, planned by the engine.
    fn plan(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Ok(ChangePlan {
            changes: vec![],
            diagnostics: vec![],
            notes: vec![],
        })
    }

    fn apply(_ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        Err(PluginError::Other(format!(
            "local provider: it plans no changes, so it cannot apply '{} {}'",
            change.kind, change.name
        )))
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Ok(ChangePlan {
            changes: vec![],
            diagnostics: vec![],
            notes: vec![],
        })
    }

    /// One host: this machine, reached through the host's local transport.
    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        Ok(vec![ResourceStatus {
            resource: ManagedResource {
                kind: "machine".into(),
                name: "localhost".into(),
                id: None,
                attributes: json!({ "environment": ctx.environment }).to_string(),
            },
            state: soar_sdk::ResourceState::Running,
            endpoints: vec![Endpoint {
                kind: soar_sdk::EndpointKind::Local,
                address: "127.0.0.1".into(),
                port: None,
                user: None,
            }],
        }])
    }
}

soar_sdk::export_provider!(Local);
