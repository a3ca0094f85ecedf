//! AWS spot provider: portable spot deployments on the EC2 Query API.
//!
//! This slice declares what the plugin may reach; planning and applying
//! droplets is built on top of it (see the Cloudflare issue).

use soar_sdk::prelude::*;

/// The AWS spot provider.
pub struct AwsSpot;

impl Provider for AwsSpot {
    fn describe() -> Description {
        Description {
            name: "aws-spot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Spot instances across regions, set up by cloud-init".into(),
            artifacts: vec![ArtifactKind::Tarball, ArtifactKind::Binary],
            settings_schema: json!({
                "type": "object",
                "properties": {
                    "token_env": {"type": "string", "default": "CLOUDFLARE_API_TOKEN"},
                    "regions": {"type": "array", "items": {"type": "string"}},
                    "instance_types": {"type": "array", "items": {"type": "string"}},
                    "count": {"type": "integer", "minimum": 1}
                }
            })
            .to_string(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "ec2".into(),
                    default_url: "https://ec2.us-east-1.amazonaws.com".into(),
                }],
                extra_hosts: vec!["ec2.*.amazonaws.com".into()],
                credentials: vec![Credential {
                    name: "aws".into(),
                    scheme: CredentialScheme::AwsSigv4("ec2".into()),
                    env: vec![
                        "AWS_ACCESS_KEY_ID".into(),
                        "AWS_SECRET_ACCESS_KEY".into(),
                        "AWS_SESSION_TOKEN".into(),
                    ],
                    endpoints: vec!["ec2".into()],
                }],
                ssh: true,
            },
        }
    }

    fn plan(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "aws-spot provider: planning spot instances is not implemented in this version".into(),
        ))
    }

    fn apply(_ctx: &Context, _change: &Change) -> Result<Applied, PluginError> {
        Err(PluginError::Other(
            "aws-spot provider: applying changes is not implemented in this version".into(),
        ))
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Err(PluginError::Other(
            "aws-spot provider: destroy is not implemented in this version".into(),
        ))
    }
}

soar_sdk::export_provider!(AwsSpot);
