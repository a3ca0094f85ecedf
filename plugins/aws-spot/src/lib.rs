//! AWS spot provider: portable spot deployments on the EC2 Query API.
//!
//! This slice declares what the plugin may reach and checks the account's
//! credentials with a signed `DescribeRegions` call (the host signs it with
//! SigV4; the plugin never sees a key). Planning and applying spot instances
//! build on it (see the AWS spot issue).

mod ec2;

use serde::Deserialize;
use soar_sdk::prelude::*;

/// The provider settings in `[env.<name>]`.
#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default)]
    regions: Vec<String>,
}

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

    fn validate(ctx: &Context) -> Vec<Diagnostic> {
        let settings: Settings = match ctx.settings() {
            Ok(s) => s,
            Err(PluginError::InvalidConfig(d)) => return d,
            Err(e) => return vec![diagnostic(format!("{e:?}"), None)],
        };
        let Some(region) = settings.regions.first() else {
            return vec![diagnostic("no regions configured".into(), Some("regions"))];
        };
        match ec2::call(ctx, region, "DescribeRegions", &[]) {
            Ok(_) => vec![],
            Err(e) => vec![diagnostic(
                format!(
                    "aws-spot provider: cannot use the EC2 API in {region}: {}",
                    ec2::render(&e)
                ),
                None,
            )],
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

fn diagnostic(message: String, field: Option<&str>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        message,
        field: field.map(str::to_string),
        hint: None,
    }
}

soar_sdk::export_provider!(AwsSpot);
