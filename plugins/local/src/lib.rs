//! Local provider: runs the artifact on this machine, so a newcomer can
//! deploy with no cloud account.
//!
//! The machine already exists, so the plugin plans no cloud changes; its
//! `status` names this machine as the one host to roll out to. The host's
//! rollout then puts the release in place over its local transport, the same
//! rollout code that runs over SSH for remote hosts.

use schemars::JsonSchema;
use soar_sdk::prelude::*;

/// The local provider.
pub struct Local;

/// The local provider has no settings of its own: ports, env vars and
/// health checks are deployment settings (`[deploy]`), the same for every
/// provider.
// Open (no `deny_unknown_fields`), as it always was: the plugin reads no
// key, so none is refused.
#[derive(JsonSchema)]
pub struct Settings {}

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
            settings_schema: soar_sdk::settings_schema::<Settings>(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived schema accepts and refuses what the hand-written
    /// `{"type": "object", "properties": {}}` did: any table, nothing else.
    #[test]
    fn the_schema_takes_any_table_and_only_a_table() {
        let before = json!({ "type": "object", "properties": {} });
        let derived: Value = serde_json::from_str(&Local::describe().settings_schema).unwrap();
        let old = jsonschema::validator_for(&before).unwrap();
        let new = jsonschema::validator_for(&derived).expect("the host's validator takes it");
        for good in [json!({}), json!({"anything": 1, "port": "8080"})] {
            assert!(old.is_valid(&good) && new.is_valid(&good), "{good}");
        }
        for bad in [json!([]), json!("x"), json!(3)] {
            assert!(!old.is_valid(&bad) && !new.is_valid(&bad), "{bad}");
        }
        assert_eq!(derived["type"], "object", "{derived:#}");
    }
}
