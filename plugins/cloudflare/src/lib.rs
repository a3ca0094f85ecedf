//! Cloudflare provider: Workers scripts and Pages direct uploads.
//!
//! This slice declares what the plugin may reach; planning and applying
//! Workers and Pages is built on top of it (see the Cloudflare issue).

use soar_sdk::prelude::*;

/// The Cloudflare provider.
pub struct Cloudflare;

impl Provider for Cloudflare {
    fn describe() -> Description {
        Description {
            name: "cloudflare".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Workers scripts and Pages sites".into(),
            artifacts: vec![ArtifactKind::Script, ArtifactKind::Static],
            settings_schema: json!({
                "type": "object",
                "properties": {
                    "token_env": {"type": "string", "default": "CLOUDFLARE_API_TOKEN"},
                    "account_id": {"type": "string"},
                    "script_name": {"type": "string"},
                    "project_name": {"type": "string"},
                    "compatibility_date": {"type": "string"}
                }
            })
            .to_string(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: "https://api.cloudflare.com/client/v4".into(),
                }],
                extra_hosts: vec![],
                credentials: vec![Credential {
                    name: "cloudflare".into(),
                    scheme: CredentialScheme::Bearer,
                    env: vec!["CLOUDFLARE_API_TOKEN".into()],
                    endpoints: vec!["api".into()],
                }],
                ssh: false,
            },
        }
    }

    fn plan(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "cloudflare provider: planning Workers and Pages is not implemented in this version"
                .into(),
        ))
    }

    fn apply(_ctx: &Context, _change: &Change) -> Result<Applied, PluginError> {
        Err(PluginError::Other(
            "cloudflare provider: applying changes is not implemented in this version".into(),
        ))
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "cloudflare provider: destroy is not implemented in this version".into(),
        ))
    }
}

soar_sdk::export_provider!(Cloudflare);
