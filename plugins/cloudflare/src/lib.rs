//! Cloudflare provider: Workers scripts (artifact kind `script`) and Pages
//! direct uploads (artifact kind `static`).
//!
//! - The API token is the host's: requests name the `cloudflare` credential,
//!   bound to the `api` endpoint. The Pages upload JWT is captured by the
//!   host (`pages-upload`) and only its claims are read here.
//! - File contents never pass through this plugin: Worker modules are
//!   `Segment::File` parts, Pages assets `Segment::FileBase64` pieces of a
//!   JSON body, and Pages hashes are computed by the host.
//! - The account id comes from the `account_id` setting only (a plugin
//!   cannot read environment variables).
//!
//! Each environment owns one resource: a `worker-script` or a `pages-site`
//! (project + its production deployment). One change per resource keeps
//! `apply` self-contained, since the engine applies changes in parallel.

mod api;
mod mime;
mod pages;
#[cfg(test)]
mod schema_tests;
mod workers;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use soar_sdk::prelude::*;

/// The Cloudflare provider.
pub struct Cloudflare;

/// The settings of a Cloudflare environment (`[env.<name>]` minus Soar's
/// own keys): a Worker for a `script` artifact, a Pages site for `static`.
// The schema `describe` declares, which `soar validate` checks offline, is
// derived from this struct, doc comments included, so they are written for
// users.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
// `account_id` is optional to the parser, which reports it with a hint, and
// required by the schema, so `soar validate` says so before any plan. (Said
// here: with `#[serde(default)]` on the struct, a field's
// `#[schemars(required)]` is overridden.)
#[schemars(extend("required" = ["account_id"]))]
pub(crate) struct Settings {
    /// The account's id (the dashboard shows it under Workers & Pages).
    pub account_id: Option<String>,
    /// Documentation only: the host reads the token; name another variable with [env.<name>.credentials] cloudflare = "VAR".
    #[allow(
        dead_code,
        reason = "read by the host from the settings JSON, never by the plugin"
    )]
    #[schemars(extend("default" = "CLOUDFLARE_API_TOKEN"))]
    pub token_env: Option<String>,
    /// Name of the Worker (default `{app}-{env}`).
    pub script_name: Option<String>,
    /// Name of the Pages project (default `{app}-{env}`).
    pub project_name: Option<String>,
    /// The Worker's compatibility date.
    #[schemars(extend("default" = DEFAULT_COMPATIBILITY_DATE))]
    pub compatibility_date: Option<String>,
    /// The Worker's compatibility flags.
    pub compatibility_flags: Vec<String>,
    /// The module the Worker runs (default: the artifact's main file).
    pub main_module: Option<String>,
    /// Plain-text bindings (`vars`).
    pub vars: BTreeMap<String, String>,
    /// Report the `workers.dev` URL.
    #[schemars(extend("default" = true))]
    pub workers_dev: Option<bool>,
    /// Routes of the Worker in your zones.
    pub routes: Vec<Route>,
    /// Pages production branch.
    #[schemars(extend("default" = "main"))]
    pub production_branch: Option<String>,
}

/// One route of a Worker: `{ pattern = "example.com/*", zone_id = "..." }`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
pub(crate) struct Route {
    /// The URL pattern, e.g. `example.com/api/*`.
    pub pattern: String,
    /// The zone the pattern is in.
    pub zone_id: String,
}

/// A default compatibility date for Workers when none is set.
pub(crate) const DEFAULT_COMPATIBILITY_DATE: &str = "2024-09-23";

impl Settings {
    pub fn load(ctx: &Context) -> PluginResult<Self> {
        ctx.settings()
    }

    pub fn account_id(&self) -> PluginResult<&str> {
        match self.account_id.as_deref() {
            Some(a) if !a.trim().is_empty() => Ok(a.trim()),
            _ => Err(invalid_setting(
                "account_id",
                "cloudflare provider: `account_id` is not set",
                "add `account_id = \"<32-hex account id>\"` to the environment (the dashboard shows it under Workers & Pages; the plugin cannot read CLOUDFLARE_ACCOUNT_ID)",
            )),
        }
    }
}

/// `{app}-{environment}`, lowercased, made of `[a-z0-9-]`.
pub(crate) fn default_name(ctx: &Context) -> String {
    let raw = format!("{}-{}", ctx.app, ctx.environment).to_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_matches('-').chars().take(58).collect()
}

fn artifact_kind(ctx: &Context) -> PluginResult<ArtifactKind> {
    match &ctx.artifact {
        Some(a) => match a.kind {
            ArtifactKind::Script | ArtifactKind::Static => Ok(a.kind),
            other => Err(PluginError::Other(format!(
                "cloudflare provider deploys `script` (Workers) and `static` (Pages) artifacts, not {other:?}"
            ))),
        },
        None => Err(PluginError::Other(
            "cloudflare provider: this command has no artifact; set `[artifact]` in soar.toml"
                .into(),
        )),
    }
}

impl Provider for Cloudflare {
    fn describe() -> Description {
        Description {
            name: "cloudflare".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Workers scripts and Pages sites".into(),
            artifacts: vec![ArtifactKind::Script, ArtifactKind::Static],
            // Derived from the struct that reads them: one truth.
            settings_schema: soar_sdk::settings_schema::<Settings>(),
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

    fn validate(ctx: &Context) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let settings = match Settings::load(ctx) {
            Ok(s) => s,
            Err(PluginError::InvalidConfig(d)) => return d,
            Err(_) => return out,
        };
        if let Err(PluginError::InvalidConfig(d)) = settings.account_id() {
            out.extend(d);
        }
        out
    }

    fn plan(ctx: &Context) -> PluginResult<ChangePlan> {
        let settings = Settings::load(ctx)?;
        match artifact_kind(ctx)? {
            ArtifactKind::Script => workers::plan(ctx, &settings),
            _ => pages::plan(ctx, &settings),
        }
    }

    fn apply(ctx: &Context, change: &Change) -> PluginResult<Applied> {
        let settings = Settings::load(ctx)?;
        match change.kind.as_str() {
            workers::KIND => workers::apply(ctx, &settings, change),
            pages::KIND => pages::apply(ctx, &settings, change),
            other => Err(PluginError::Other(format!(
                "cloudflare provider: unknown change kind '{other}'"
            ))),
        }
    }

    fn plan_destroy(ctx: &Context) -> PluginResult<ChangePlan> {
        let settings = Settings::load(ctx)?;
        let mut changes = Vec::new();
        let kind = ctx.artifact.as_ref().map(|a| a.kind);
        // Without an artifact, look for both kinds under their names.
        if kind != Some(ArtifactKind::Static) {
            changes.extend(workers::plan_destroy(ctx, &settings)?);
        }
        if kind != Some(ArtifactKind::Script) {
            changes.extend(pages::plan_destroy(ctx, &settings)?);
        }
        Ok(ChangePlan {
            changes,
            diagnostics: vec![],
            notes: vec![],
        })
    }

    fn status(ctx: &Context) -> PluginResult<Vec<ResourceStatus>> {
        let settings = Settings::load(ctx)?;
        let mut out = Vec::new();
        let kind = ctx.artifact.as_ref().map(|a| a.kind);
        if kind != Some(ArtifactKind::Static) {
            out.extend(workers::status(ctx, &settings)?);
        }
        if kind != Some(ArtifactKind::Script) {
            out.extend(pages::status(ctx, &settings)?);
        }
        Ok(out)
    }
}

soar_sdk::export_provider!(Cloudflare);
