//! The provider settings of `[env.<name>]` and their local checks.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use soar_sdk::prelude::*;
use soar_sdk::setting::DurationSetting;

/// The image droplets boot when `image` is not set.
pub const DEFAULT_IMAGE: &str = "ubuntu-24-04-x64";
/// The variable the host reads the token from unless `[env.X.credentials]` names another.
pub const DEFAULT_TOKEN_ENV: &str = "DIGITALOCEAN_TOKEN";

/// The settings of a DigitalOcean environment (`[env.<name>]` minus Soar's
/// own keys): droplets from `hosts`, or a script on DigitalOcean Functions
/// with a `functions` table.
// This struct is the one truth about the settings: it reads them, and the
// schema `describe` declares (which `soar validate` checks offline) is
// derived from it, doc comments included, so they are written for users.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Documentation only: the host reads the token; name another variable with [env.<name>.credentials] digitalocean = "VAR".
    #[schemars(extend("default" = DEFAULT_TOKEN_ENV))]
    pub token_env: Option<String>,
    /// An SSH key that exists in the account (Soar does not create keys).
    pub ssh_key_name: Option<String>,
    /// Region of hosts that name none, e.g. "nyc3".
    pub default_region: Option<String>,
    /// Size of hosts that name none, e.g. "s-1vcpu-1gb".
    pub default_size: Option<String>,
    /// The image droplets boot.
    #[schemars(extend("default" = DEFAULT_IMAGE))]
    pub image: Option<String>,
    /// Regions the hosts may use; any the API offers when empty.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Sizes the hosts may use; any the API offers when empty.
    #[serde(default)]
    pub sizes: Vec<String>,
    /// cloud-init user data passed to every droplet at creation.
    pub user_data: Option<String>,
    /// How often to look whether droplets are ready (default 5s).
    pub wait_interval: Option<DurationSetting>,
    /// How long to wait for droplets to be ready (default 10m).
    pub wait_timeout: Option<DurationSetting>,
    /// The droplets, by name: hosts = { app-1 = { role = "app" } }.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostSetting>,
    /// Deploy the script artifact to DigitalOcean Functions instead of droplets.
    pub functions: Option<FunctionsSetting>,
}

/// The `functions` table: where and how the script runs.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionsSetting {
    /// Label of the namespace; created when missing. Default `{app}-{env}`,
    /// which Soar owns (and removes on destroy).
    pub namespace: Option<String>,
    /// Region of a namespace Soar creates (default: `default_region`).
    pub region: Option<String>,
    /// Action name (default: the app's name).
    pub name: Option<String>,
    /// `nodejs:18`, `python:3.11`... (default from the main file's extension).
    pub runtime: Option<String>,
    /// The function the runtime calls (default `main`).
    pub main: Option<String>,
    /// Memory limit in MB (default 256).
    #[schemars(range(min = 128, max = 1024))]
    pub memory: Option<u32>,
    /// Time limit per invocation (default 3s).
    pub timeout: Option<DurationSetting>,
    /// Reachable over HTTP as a web action (default true).
    pub web: Option<bool>,
    /// Path checked over the web URL after each deploy, e.g. `/health`.
    pub health: Option<String>,
    /// Plain parameters the function receives (its environment).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// One `hosts.<name>` entry: a droplet named `{environment}-{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSetting {
    /// What the host is for (app, db, gateway, ...); a droplet tag.
    // Optional to the parser, which then reports it with a hint; required
    // by the schema, so `soar validate` says so before any plan.
    #[schemars(required)]
    pub role: Option<String>,
    /// The droplet's size (default: `default_size`).
    pub size: Option<String>,
    /// The droplet's region (default: `default_region`).
    pub region: Option<String>,
}

/// `d` as a duration, or an invalid-config error naming `field`.
pub fn duration(d: &DurationSetting, field: &str) -> PluginResult<Duration> {
    d.duration().map_err(|e| {
        invalid_setting(
            field,
            format!("digitalocean provider: invalid config: {field}: {e}"),
            "write seconds (5) or a duration such as \"5s\", \"500ms\", \"10m\"",
        )
    })
}

/// A droplet as the settings want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// `{environment}-{host}`.
    pub name: String,
    pub host: String,
    pub role: String,
    pub size: String,
    pub region: String,
}

/// Settings checked locally (no API calls).
#[derive(Debug)]
pub struct Checked {
    pub ssh_key_name: String,
    pub image: String,
    pub allowed_regions: Vec<String>,
    pub allowed_sizes: Vec<String>,
    pub user_data: Option<String>,
    pub wait_interval: Duration,
    pub wait_timeout: Duration,
    /// Sorted by name.
    pub desired: Vec<Desired>,
    /// Warnings that do not stop planning.
    pub warnings: Vec<Diagnostic>,
    /// Set when the environment deploys to Functions rather than droplets.
    pub functions: Option<crate::functions::Desired>,
}

/// Whether `s` may appear in a tag (`^[a-zA-Z0-9_\-:]+$`, at most 255 characters).
pub fn tag_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
}

/// Whether `s` is a valid droplet name (`^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`).
fn droplet_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The environment's tag, listed to find its droplets.
pub fn env_tag(env: &str) -> String {
    format!("soar-env:{env}")
}

pub const MANAGED_TAG: &str = "managed-by:soar";

/// What the token setting means, as a diagnostic when it needs one.
pub fn token_env_diagnostic(token_env: Option<&str>, env: &str) -> Option<Diagnostic> {
    let v = token_env?;
    let valid = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        // DigitalOcean tokens (`dop_v1_...`, `doo_v1_...`) look like names.
        && !["dop_v1_", "doo_v1_", "dor_v1_"].iter().any(|p| v.starts_with(p))
        && v.len() < 64;
    if !valid {
        return Some(Diagnostic::error(format!(
                "digitalocean provider: invalid config: token_env must name an environment variable, not hold a token (got {} characters)",
                v.len()
            ))
            .at("token_env")
            .hint(format!(
                "put the token in an environment variable and write [env.{env}.credentials] digitalocean = \"VAR\""
            )));
    }
    if v == DEFAULT_TOKEN_ENV {
        return None;
    }
    Some(
        Diagnostic::warning(format!(
            "token_env = \"{v}\" is documentation only: the host reads the token, from {DEFAULT_TOKEN_ENV} unless [env.{env}.credentials] names another variable"
        ))
            .at("token_env")
            .hint(format!(
            "write [env.{env}.credentials] digitalocean = \"{v}\" so the host reads {v}"
        )),
    )
}

/// Read and check the settings, without calling the API.
pub fn check(ctx: &Context) -> PluginResult<Checked> {
    let s: Settings = ctx.settings().map_err(|e| match e {
        PluginError::InvalidConfig(mut d) => {
            for x in &mut d {
                x.message = format!("digitalocean provider: {}", x.message);
            }
            PluginError::InvalidConfig(d)
        }
        other => other,
    })?;
    let env = &ctx.environment;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if let Some(d) = token_env_diagnostic(s.token_env.as_deref(), env) {
        match d.severity {
            Severity::Error => errors.push(d),
            _ => warnings.push(d),
        }
    }
    if !tag_safe(&format!("soar-env:{env}")) {
        errors.push(Diagnostic::error(format!(
                "digitalocean provider: invalid config: environment name '{env}' cannot be used in a DigitalOcean tag (letters, digits, '-', '_' and ':' only)"
            )));
    }
    let functions = match &s.functions {
        Some(f) => {
            if !s.hosts.is_empty() {
                errors.push(
                    Diagnostic::error(
                        "digitalocean provider: invalid config: an environment deploys either to Functions or to droplets (`hosts`), not both",
                    )
                    .at("functions")
                    .hint("move the Functions settings to an environment of their own"),
                );
            }
            Some(crate::functions::desired(
                ctx,
                f,
                s.default_region.as_deref(),
                &mut errors,
            ))
        }
        None => None,
    };
    let ssh_key_name = match s.ssh_key_name.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => k.to_string(),
        _ if functions.is_some() => String::new(),
        _ => {
            errors.push(
                Diagnostic::error(
                    "digitalocean provider: invalid config: ssh_key_name is required",
                )
                .at("ssh_key_name")
                .hint("add ssh_key_name = \"<name of an SSH key in your DigitalOcean account>\" (Soar does not create keys)"),
            );
            String::new()
        }
    };
    if s.hosts.is_empty() && functions.is_none() {
        errors.push(
            Diagnostic::error(
                "digitalocean provider: invalid config: hosts configuration is required",
            )
            .at("hosts")
            .hint("add hosts = { app-1 = { role = \"app\" } }"),
        );
    }
    let mut desired = Vec::new();
    for (host, h) in &s.hosts {
        let field = |f: &str| format!("hosts.{host}.{f}");
        let name = format!("{env}-{host}");
        if !droplet_name_ok(&name) {
            errors.push(Diagnostic::error(format!(
                    "digitalocean provider: invalid config: droplet name '{name}' is not valid (letters, digits, '.' and '-', starting and ending with a letter or digit)"
                ))
                .at(format!("hosts.{host}")));
        }
        let role = h.role.clone().unwrap_or_default();
        if role.is_empty() {
            errors.push(
                Diagnostic::error(format!(
                    "digitalocean provider: invalid config: host '{host}' has no role"
                ))
                .at(field("role"))
                .hint("add role = \"app\" (or db, gateway, ...)"),
            );
        } else if !tag_safe(&format!("soar-role:{role}")) {
            errors.push(Diagnostic::error(format!(
                    "digitalocean provider: invalid config: role '{role}' cannot be used in a DigitalOcean tag (letters, digits, '-', '_' and ':' only)"
                ))
                .at(field("role")));
        }
        let size = h.size.clone().or(s.default_size.clone());
        let region = h.region.clone().or(s.default_region.clone());
        if size.is_none() {
            errors.push(
                Diagnostic::error(format!(
                    "digitalocean provider: invalid config: host '{host}' has no size and there is no default_size"
                ))
                .at(field("size"))
                .hint("add default_size = \"s-1vcpu-1gb\" or a size to the host"),
            );
        }
        if region.is_none() {
            errors.push(
                Diagnostic::error(format!(
                    "digitalocean provider: invalid config: host '{host}' has no region and there is no default_region"
                ))
                .at(field("region"))
                .hint("add default_region = \"nyc3\" or a region to the host"),
            );
        }
        desired.push(Desired {
            name,
            host: host.clone(),
            role,
            size: size.unwrap_or_default(),
            region: region.unwrap_or_default(),
        });
    }
    desired.sort_by(|a, b| a.name.cmp(&b.name));
    let wait_interval = match &s.wait_interval {
        Some(d) => duration(d, "wait_interval")?,
        None => Duration::from_secs(5),
    };
    let wait_timeout = match &s.wait_timeout {
        Some(d) => duration(d, "wait_timeout")?,
        None => Duration::from_secs(600),
    };
    if !errors.is_empty() {
        return Err(PluginError::InvalidConfig(errors));
    }
    Ok(Checked {
        ssh_key_name,
        image: s.image.unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        allowed_regions: s.regions,
        allowed_sizes: s.sizes,
        user_data: s.user_data,
        wait_interval: wait_interval.max(Duration::from_millis(10)),
        wait_timeout,
        desired,
        warnings,
        functions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: PluginError) -> String {
        match e {
            PluginError::InvalidConfig(d) => d[0].message.clone(),
            other => panic!("not a config error: {other:?}"),
        }
    }

    #[test]
    fn durations_read_as_the_host_reads_them() {
        let get = |d: DurationSetting| duration(&d, "wait_timeout");
        assert_eq!(
            get(DurationSetting::Seconds(1.5)).unwrap(),
            Duration::from_millis(1500)
        );
        let text = |t: &str| get(DurationSetting::Text(t.into()));
        assert_eq!(text("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(text("10m").unwrap(), Duration::from_secs(600));
        let err = message(text("2 minutes").unwrap_err());
        assert!(
            err.starts_with("digitalocean provider: invalid config: wait_timeout: '2 minutes' is not a duration; write \"250ms\""),
            "{err}"
        );
        assert!(message(text("5").unwrap_err()).contains("no unit"));
        let err = message(get(DurationSetting::Seconds(-1.0)).unwrap_err());
        assert!(
            err.starts_with(
                "digitalocean provider: invalid config: wait_timeout: -1 is not a duration"
            ),
            "{err}"
        );
        assert!(message(get(DurationSetting::Seconds(1e300)).unwrap_err()).contains("too long"));
    }
}
