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
        if let Err(e) = scoped(droplets::find_key(&base, &c.ssh_key_name), DROPLET_SCOPES) {
            out.extend(diagnostics(e));
            return out;
        }
        let sizes = match scoped(
            api::list(
                &base,
                &format!("/v2/sizes?per_page={}", api::PER_PAGE),
                "sizes",
            ),
            DROPLET_SCOPES,
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
            Some(f) => scoped(functions::plan(ctx, &f), FUNCTION_SCOPES),
            None => scoped(droplets::plan(ctx), DROPLET_SCOPES),
        }
    }

    fn apply(ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        if change.kind == functions::KIND {
            return scoped(functions::apply(ctx, change), FUNCTION_SCOPES);
        }
        if change.kind != droplets::KIND {
            return Err(PluginError::Other(format!(
                "digitalocean provider: cannot apply a change of kind '{}'",
                change.kind
            )));
        }
        scoped(droplets::apply(ctx, change), DROPLET_SCOPES)
    }

    fn plan_destroy(ctx: &Context) -> Result<ChangePlan, PluginError> {
        match settings::check(ctx)?.functions {
            Some(f) => scoped(functions::plan_destroy(ctx, &f), FUNCTION_SCOPES),
            None => scoped(droplets::plan_destroy(ctx), DROPLET_SCOPES),
        }
    }

    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        match settings::check(ctx)?.functions {
            Some(f) => scoped(functions::status(ctx, &f), FUNCTION_SCOPES),
            None => scoped(droplets::status(ctx), DROPLET_SCOPES),
        }
    }
}

/// The custom scopes a token needs for droplets (plan, create, status,
/// re-tag, destroy), as README's "DigitalOcean token scopes" lists them.
const DROPLET_SCOPES: &str = "droplet:create droplet:read droplet:delete ssh_key:read sizes:read regions:read tag:create tag:delete";

/// The custom scopes a token needs for Functions (the namespace calls; the
/// function itself goes with the namespace's key).
const FUNCTION_SCOPES: &str = "function:read function:create function:delete";

/// A `403` says which scopes the token needs: the API's own message only
/// says it lacks permission, which leaves a least-privilege user guessing.
fn scoped<T>(r: Result<T, PluginError>, scopes: &str) -> Result<T, PluginError> {
    r.map_err(|e| match e {
        PluginError::Api(mut a) if a.status == 403 => {
            a.message = format!(
                "{} (a token with custom scopes needs all of: {scopes})",
                a.message
            );
            PluginError::Api(a)
        }
        other => other,
    })
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
