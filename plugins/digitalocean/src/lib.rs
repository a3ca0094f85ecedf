//! DigitalOcean provider: droplets per environment, or a script deployed to
//! DigitalOcean Functions (an environment with a `functions` table).
//!
//! - Settings come from `[env.<name>]` (see [`settings`]); the API token is
//!   the host's: the plugin names credential `digitalocean` and the host
//!   injects `Authorization: Bearer` from `DIGITALOCEAN_TOKEN` or the variable
//!   named in `[env.<name>.credentials]`.
//! - `plan` lists the droplets tagged `soar-env:<env>` (200 a page), checks the
//!   SSH key, sizes and regions, and returns create / replace / delete / no-op
//!   changes sorted by name, with monthly prices as notes.
//! - `apply` carries out one change idempotently: it looks for the droplet by
//!   name before creating, treats a 404 on delete as done, and waits on the
//!   host's clock until droplets are `active` (or gone).
//! - Functions ([`functions`]): the namespace's `uuid`/`key` are kept by the
//!   host (`send-issuing`) and bound to the namespace's `api_host`; the
//!   plugin deploys the script through the OpenWhisk actions API there.

mod api;
mod droplets;
mod functions;
mod paging;
#[cfg(test)]
mod schema_tests;
mod settings;
#[cfg(test)]
mod tests;

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
            // Derived from the struct that reads them: one truth.
            settings_schema: soar_sdk::settings_schema::<settings::Settings>(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: "https://api.digitalocean.com".into(),
                }],
                extra_hosts: vec!["*.doserverless.co".into()],
                credentials: vec![Credential {
                    name: api::CREDENTIAL.into(),
                    scheme: CredentialScheme::Bearer,
                    env: vec![settings::DEFAULT_TOKEN_ENV.into()],
                    endpoints: vec!["api".into()],
                }],
                ssh: true,
            },
        }
    }

    fn validate(ctx: &Context) -> Vec<Diagnostic> {
        let c = match settings::check(ctx) {
            Ok(c) => c,
            Err(e) => return diagnostics(e),
        };
        let mut out = c.warnings.clone();
        let Ok(base) = ctx.endpoint("api") else {
            return out;
        };
        if c.functions.is_some() {
            return out;
        }
        if let Err(e) = droplets::find_key(&base, &c.ssh_key_name) {
            out.extend(diagnostics(e));
            return out;
        }
        let sizes = match api::list(
            &base,
            &format!("/v2/sizes?per_page={}", api::PER_PAGE),
            "sizes",
        ) {
            Ok(s) => s,
            Err(e) => {
                out.extend(diagnostics(e));
                return out;
            }
        };
        if let Err(e) = droplets::check_placement(&base, &c, &sizes, true) {
            out.extend(diagnostics(e));
        }
        out
    }

    fn plan(ctx: &Context) -> Result<ChangePlan, PluginError> {
        match settings::check(ctx)?.functions {
            Some(f) => functions::plan(ctx, &f),
            None => droplets::plan(ctx),
        }
    }

    fn apply(ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        if change.kind == functions::KIND {
            return functions::apply(ctx, change);
        }
        if change.kind != droplets::KIND {
            return Err(PluginError::Other(format!(
                "digitalocean provider: cannot apply a change of kind '{}'",
                change.kind
            )));
        }
        droplets::apply(ctx, change)
    }

    fn plan_destroy(ctx: &Context) -> Result<ChangePlan, PluginError> {
        match settings::check(ctx)?.functions {
            Some(f) => functions::plan_destroy(ctx, &f),
            None => droplets::plan_destroy(ctx),
        }
    }

    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        match settings::check(ctx)?.functions {
            Some(f) => functions::status(ctx, &f),
            None => droplets::status(ctx),
        }
    }
}

/// A plugin error as diagnostics, for `validate`.
fn diagnostics(e: PluginError) -> Vec<Diagnostic> {
    let one = |message: String| vec![Diagnostic::error(message)];
    match e {
        PluginError::InvalidConfig(d) => d,
        PluginError::Api(a) => one(format!(
            "digitalocean provider: API error: {} {}: {}{}",
            a.status,
            a.code,
            a.message,
            a.request_id
                .map(|r| format!(" (request id {r})"))
                .unwrap_or_default()
        )),
        PluginError::Transport(t) => one(t.message),
        PluginError::Other(m) => one(m),
    }
}

soar_sdk::export_provider!(DigitalOcean);
