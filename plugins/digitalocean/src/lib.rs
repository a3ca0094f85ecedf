//! DigitalOcean provider: droplets per environment and Functions.
//!
//! This slice declares what the plugin may reach; planning and applying
//! droplets is built on top of it (see the DigitalOcean issue).

use soar_sdk::prelude::*;

/// The DigitalOcean provider.
pub struct DigitalOcean;

impl Provider for DigitalOcean {
    fn describe() -> Description {
        Description {
            name: "digitalocean".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Droplets per environment and DigitalOcean Functions".into(),
            artifacts: vec![
                ArtifactKind::Binary,
                ArtifactKind::Tarball,
                ArtifactKind::Script,
            ],
            settings_schema: json!({
                "type": "object",
                "properties": {
                    "token_env": {"type": "string", "default": "DIGITALOCEAN_TOKEN"},
                    "ssh_key_name": {"type": "string"},
                    "default_region": {"type": "string"},
                    "default_size": {"type": "string"},
                    "image": {"type": "string", "default": "ubuntu-24-04-x64"},
                    "hosts": {"type": "object"}
                }
            })
            .to_string(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: "https://api.digitalocean.com".into(),
                }],
                extra_hosts: vec!["*.doserverless.co".into()],
                credentials: vec![Credential {
                    name: "digitalocean".into(),
                    scheme: CredentialScheme::Bearer,
                    env: vec!["DIGITALOCEAN_TOKEN".into()],
                    endpoints: vec!["api".into()],
                }],
                ssh: true,
            },
        }
    }

    fn plan(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "digitalocean provider: planning droplets is not implemented in this version".into(),
        ))
    }

    fn apply(_ctx: &Context, _change: &Change) -> Result<Applied, PluginError> {
        Err(PluginError::Other(
            "digitalocean provider: applying changes is not implemented in this version".into(),
        ))
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "digitalocean provider: destroy is not implemented in this version".into(),
        ))
    }
}

soar_sdk::export_provider!(DigitalOcean);
