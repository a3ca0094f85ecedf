//! `[env.<name>]`: where to deploy. The reserved keys (`provider`,
//! `deploy`, `grants`, `credentials`) are the host's; every other key is a
//! provider setting, passed to the plugin as JSON without interpretation
//! so the host stays generic across providers.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value as Json};
use toml::de::DeValue;

use super::diagnostics::Report;
use super::fields::{Section, Value, integer};
use super::identity::{check_name, suggest_name};
use super::schema::Context;
use super::secrets::is_env_var_name;
use super::spans::join;
use super::spelling::closest;
use super::{Environment, deploy, grants, ssh};

/// Keys of an environment table that are not provider settings.
pub(crate) const RESERVED: &[&str] = &["provider", "deploy", "grants", "credentials", "ssh"];

const EXAMPLE: &str = "[env.dev]\nprovider = \"local\"";

/// Read every environment, merging `defaults` into each.
pub(crate) fn read_all(
    top: &Section<'_>,
    defaults: &deploy::Layer,
    app_name: &str,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) -> BTreeMap<String, Environment> {
    let mut out = BTreeMap::new();
    let Some((env_key, _)) = top.get("env") else {
        r.error(
            0,
            "no environments: soar.toml needs at least one [env.<name>] table",
            Some(format!("add:\n{EXAMPLE}")),
        );
        return out;
    };
    let Some(envs) = top.section("env", EXAMPLE, r) else {
        return out;
    };
    if envs.entries().next().is_none() {
        r.error(
            env_key.span().start,
            "no environments: [env] has no [env.<name>] tables",
            Some(format!("add:\n{EXAMPLE}")),
        );
        return out;
    }
    for (key, _) in envs.entries() {
        let name = key.get_ref().to_string();
        let example = format!("[env.{}]\nprovider = \"local\"", suggest_name(&name));
        let Some(s) = envs.section(&name, &example, r) else {
            continue;
        };
        if let Err(why) = check_name(&name) {
            r.error(
                key.span().start,
                format!("environment name '{name}' is not a valid name: it {why}"),
                Some(format!("rename it: [env.{}]", suggest_name(&name))),
            );
        }
        let env = read_one(&s, &name, defaults, app_name, ctx, r);
        out.insert(
            name,
            Environment {
                line: r.line_of(key.span().start),
                ..env
            },
        );
    }
    out
}

fn read_one(
    s: &Section<'_>,
    name: &str,
    defaults: &deploy::Layer,
    app_name: &str,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) -> Environment {
    let provider = provider(s, ctx, r);
    let layer = match s.section("deploy", "[env.<name>.deploy] with port = 9000", r) {
        Some(d) => deploy::read(&d, r),
        None => deploy::Layer::default(),
    };
    let section_name = format!("[{}.grants] in {}", s.path(), r.file().display());
    let grants = match s.section("grants", "[env.<name>.grants] with hosts = [\"...\"]", r) {
        Some(g) => grants::read(&g, section_name, r),
        None => crate::broker::http::policy::Grants {
            section: section_name,
            ..Default::default()
        },
    };
    let mut credentials = BTreeMap::new();
    let cred_example = "digitalocean = \"MY_DO_TOKEN\"";
    for e in s.string_map("credentials", cred_example, r) {
        if is_env_var_name(&e.value) {
            credentials.insert(e.key, e.value);
        } else {
            // Not shown: it may be the credential itself.
            r.error(
                e.value_at,
                format!(
                    "`{}` must be the NAME of the environment variable holding the credential \
                     (uppercase letters, digits and underscores)",
                    join(&s.key_path("credentials"), &e.key)
                ),
                Some(format!(
                    "for example: {} = \"MY_TOKEN\", then `export MY_TOKEN=...` before running soar",
                    e.key
                )),
            );
        }
    }
    let ssh = match s.section("ssh", "[env.<name>.ssh] with hosts = [\"203.0.113.10\"]", r) {
        Some(x) => ssh::read(&x, &ctx.root, r),
        None => Default::default(),
    };
    let mut settings = Map::new();
    for (k, v) in s.entries() {
        if !RESERVED.contains(&k.get_ref().as_ref()) {
            let path = s.key_path(k.get_ref());
            settings.insert(k.get_ref().to_string(), to_json(v, &path, r));
        }
    }
    Environment {
        name: name.to_string(),
        provider,
        settings: Json::Object(settings),
        deploy: deploy::merge(defaults, &layer, app_name, r),
        grants,
        credentials,
        ssh,
        line: 0,
    }
}

fn provider(s: &Section<'_>, ctx: &Context<'_>, r: &mut Report<'_>) -> String {
    let known = ctx.known_providers;
    let installed = if known.is_empty() {
        "no provider plugins are installed".to_string()
    } else {
        format!("installed providers: {}", known.join(", "))
    };
    let Some(p) = s.string("provider", "provider = \"local\"", r) else {
        if s.get("provider").is_none() {
            // A misspelt `provider` is a setting now; point at it.
            let typo = s
                .entries()
                .map(|(k, _)| k)
                .find(|k| closest(k.get_ref(), &["provider"]).is_some());
            match typo {
                Some(k) => r.error(
                    k.span().start,
                    format!("missing `provider` in {}", s.name()),
                    Some(format!(
                        "did you mean `provider` instead of `{}`?",
                        k.get_ref()
                    )),
                ),
                None => s.missing(
                    "provider",
                    &format!("provider = \"local\" ({installed})"),
                    r,
                ),
            }
        }
        return String::new();
    };
    if !known.contains(&p.get_ref().as_str()) {
        let hint = match closest(p.get_ref(), known) {
            Some(c) => format!("did you mean provider = \"{c}\"? ({installed})"),
            None => installed.clone(),
        };
        r.error(
            p.span().start,
            format!("unknown provider '{}' in {}", p.get_ref(), s.name()),
            Some(hint),
        );
    }
    p.into_inner()
}

/// A TOML value as JSON for the plugin; date-times become RFC 3339
/// strings. Values JSON cannot hold (NaN, huge integers) are reported.
fn to_json(v: &Value<'_>, path: &str, r: &mut Report<'_>) -> Json {
    match v.get_ref() {
        DeValue::String(s) => Json::String(s.to_string()),
        DeValue::Boolean(b) => Json::Bool(*b),
        DeValue::Datetime(d) => Json::String(d.to_string()),
        DeValue::Integer(_) => {
            let n = integer(v.get_ref());
            let num = n
                .and_then(|n| i64::try_from(n).ok().map(Number::from))
                .or_else(|| n.and_then(|n| u64::try_from(n).ok().map(Number::from)));
            num.map(Json::Number).unwrap_or_else(|| {
                r.error(
                    v.span().start,
                    format!("`{path}` is too large an integer for a provider setting"),
                    None,
                );
                Json::Null
            })
        }
        DeValue::Float(f) => {
            let n = f.as_str().parse::<f64>().ok().and_then(Number::from_f64);
            n.map(Json::Number).unwrap_or_else(|| {
                r.error(
                    v.span().start,
                    format!("`{path}` is not a finite number, which a provider setting must be"),
                    Some("write a number such as 1.5".to_string()),
                );
                Json::Null
            })
        }
        DeValue::Array(items) => Json::Array(items.iter().map(|i| to_json(i, path, r)).collect()),
        DeValue::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| {
                    let p = join(path, k.get_ref());
                    (k.get_ref().to_string(), to_json(v, &p, r))
                })
                .collect(),
        ),
    }
}
