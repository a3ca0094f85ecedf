//! Local provider: runs the artifact on this machine, so a newcomer can
//! deploy with no cloud account.
//!
//! The plugin owns the plan (one supervised service per environment); the
//! host's rollout puts the release in place over its local transport, the
//! same rollout code that runs over SSH for remote hosts.

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
            settings_schema: json!({
                "type": "object",
                "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}}
            })
            .to_string(),
            capabilities: Capabilities {
                endpoints: vec![],
                extra_hosts: vec![],
                credentials: vec![],
                ssh: false,
            },
        }
    }

    fn plan(ctx: &Context) -> Result<ChangePlan, PluginError> {
        let name = format!("{}-{}", ctx.app, ctx.environment);
        let digest = ctx
            .artifact
            .as_ref()
            .map(|a| a.digest.clone())
            .unwrap_or_default();
        Ok(ChangePlan {
            changes: vec![Change {
                action: ChangeAction::Create,
                kind: "local-service".into(),
                name,
                reason: "service runs the new release".into(),
                before: None,
                after: Some(json!({ "artifact": digest }).to_string()),
                payload: "{}".into(),
            }],
            diagnostics: vec![],
            notes: vec![],
        })
    }

    fn apply(_ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        Ok(Applied {
            resource: Some(ManagedResource {
                kind: change.kind.clone(),
                name: change.name.clone(),
                id: None,
                attributes: change.after.clone().unwrap_or_else(|| "{}".into()),
            }),
            endpoints: vec![Endpoint {
                kind: "local".into(),
                address: "127.0.0.1".into(),
                port: None,
                user: None,
            }],
            messages: vec![],
        })
    }

    fn plan_destroy(ctx: &Context) -> Result<ChangePlan, PluginError> {
        Ok(ChangePlan {
            changes: vec![Change {
                action: ChangeAction::Delete,
                kind: "local-service".into(),
                name: format!("{}-{}", ctx.app, ctx.environment),
                reason: "destroy requested".into(),
                before: None,
                after: None,
                payload: "{}".into(),
            }],
            diagnostics: vec![],
            notes: vec![],
        })
    }
}

soar_sdk::export_provider!(Local);
