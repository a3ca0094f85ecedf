//! `[deploy]` and `[env.<name>.deploy]`: read each as a layer of optional
//! values, then merge an environment's layer over the defaults key by key
//! (tables such as `env`, `secrets`, `health` and `rollout` merge entry by
//! entry), so an environment states only what differs.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeValue;

use super::diagnostics::Report;
use super::fields::{Section, integer, wrong_type};
use super::identity::{check_name, suggest_name};
use super::secrets::is_env_var_name;
use super::spans::join;
use super::switch::{self, SwitchLayer};
use super::{Batch, DeploySettings, HealthCheck, Rollout};

/// Keys of a deploy table.
pub(crate) const KEYS: &[&str] = &[
    "service",
    "port",
    "env",
    "secrets",
    "keep_releases",
    "health",
    "rollout",
    "switch",
    "proxy",
];
const HEALTH_KEYS: &[&str] = &["path", "port", "timeout", "interval", "retries", "monitor"];
const ROLLOUT_KEYS: &[&str] = &["batch", "parallelism"];

/// Whether `name` can name a variable in the service's environment.
pub(crate) fn is_service_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One deploy table's values, before defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    service: Option<String>,
    port: Option<u16>,
    env: BTreeMap<String, String>,
    /// Service variable -> (host variable, offset of the key).
    secrets: BTreeMap<String, (String, usize)>,
    keep_releases: Option<u32>,
    health_path: Option<String>,
    health_port: Option<u16>,
    health_timeout: Option<Duration>,
    health_interval: Option<Duration>,
    health_retries: Option<u32>,
    health_monitor: Option<Duration>,
    batch: Option<Batch>,
    parallelism: Option<usize>,
    switch: SwitchLayer,
}

/// Read one deploy table, reporting every problem.
pub(crate) fn read(s: &Section<'_>, r: &mut Report<'_>) -> Layer {
    s.check_keys(KEYS, r);
    let mut layer = Layer::default();
    if let Some(service) = s.string("service", "service = \"hello\"", r) {
        match check_name(service.get_ref()) {
            Ok(()) => layer.service = Some(service.into_inner()),
            Err(why) => r.error(
                service.span().start,
                format!(
                    "service name '{}' in `{}` is not a valid name: it {why}",
                    service.get_ref(),
                    s.key_path("service")
                ),
                Some(format!(
                    "try: service = \"{}\"",
                    suggest_name(service.get_ref())
                )),
            ),
        }
    }
    layer.port = s.port("port", r);
    layer.keep_releases = s.count("keep_releases", 1, "keep_releases = 5", r);
    layer.env = read_env(s, r);
    layer.secrets = read_secrets(s, r);
    let health_example = "health = { path = \"/health\", timeout = \"30s\" }";
    if let Some(h) = s.section("health", health_example, r) {
        h.check_keys(HEALTH_KEYS, r);
        if let Some(path) = h.string("path", "path = \"/health\"", r) {
            if path.get_ref().starts_with('/') {
                layer.health_path = Some(path.into_inner());
            } else {
                r.error(
                    path.span().start,
                    format!("`{}` must start with '/'", h.key_path("path")),
                    Some(format!("write: path = \"/{}\"", path.get_ref())),
                );
            }
        }
        layer.health_port = h.port("port", r);
        layer.health_timeout = h.duration("timeout", r);
        layer.health_interval = h.duration("interval", r);
        layer.health_retries = h.count("retries", 1, "retries = 10", r);
        layer.health_monitor = h.duration("monitor", r);
    }
    if let Some(ro) = s.section("rollout", "rollout = { batch = 2 }", r) {
        ro.check_keys(ROLLOUT_KEYS, r);
        layer.batch = batch(&ro, r);
        layer.parallelism = ro
            .count("parallelism", 1, "parallelism = 4", r)
            .and_then(|n| usize::try_from(n).ok());
    }
    layer.switch = switch::read(s, r);
    layer
}

fn bad_var_name(s: &Section<'_>, table: &str, key: &str, at: usize, r: &mut Report<'_>) {
    r.error(
        at,
        format!(
            "'{key}' in `{}` is not a valid environment variable name",
            s.key_path(table)
        ),
        Some(
            "use letters, digits and underscores, not starting with a digit, e.g. GREETING"
                .to_string(),
        ),
    );
}

/// `env = { NAME = "value" }`; numbers and booleans are written as text.
fn read_env(s: &Section<'_>, r: &mut Report<'_>) -> BTreeMap<String, String> {
    let example = "env = { GREETING = \"hi\" }";
    let mut out = BTreeMap::new();
    let Some(t) = s.section("env", example, r) else {
        return out;
    };
    for (k, v) in t.entries() {
        let key = k.get_ref().to_string();
        if !is_service_var_name(&key) {
            bad_var_name(s, "env", &key, k.span().start, r);
            continue;
        }
        let value = match v.get_ref() {
            DeValue::String(x) => x.to_string(),
            DeValue::Integer(i) => i.to_string(),
            DeValue::Float(f) => f.to_string(),
            DeValue::Boolean(b) => b.to_string(),
            _ => {
                wrong_type(r, v, &t.key_path(&key), "a string", "GREETING = \"hi\"");
                continue;
            }
        };
        out.insert(key, value);
    }
    out
}

/// `secrets = { SERVICE_VAR = "HOST_VAR" }`: names only, never values.
fn read_secrets(s: &Section<'_>, r: &mut Report<'_>) -> BTreeMap<String, (String, usize)> {
    let example = "secrets = { API_KEY = \"HELLO_API_KEY\" }";
    let mut out = BTreeMap::new();
    for e in s.string_map("secrets", example, r) {
        if !is_service_var_name(&e.key) {
            bad_var_name(s, "secrets", &e.key, e.key_at, r);
            continue;
        }
        if !is_env_var_name(&e.value) {
            // The value is not shown: it may well be the secret itself.
            r.error(
                e.value_at,
                format!(
                    "`{}` must be the NAME of the host environment variable holding the secret \
                     (uppercase letters, digits and underscores), not the secret itself",
                    join(&s.key_path("secrets"), &e.key)
                ),
                Some(format!(
                    "for example: {key} = \"{host}\", then `export {host}=...` before running soar",
                    key = e.key,
                    host = e.key.to_ascii_uppercase()
                )),
            );
            continue;
        }
        out.insert(e.key, (e.value, e.key_at));
    }
    out
}

/// `batch = 2` or `batch = "25%"`.
fn batch(s: &Section<'_>, r: &mut Report<'_>) -> Option<Batch> {
    let (_, v) = s.get("batch")?;
    let path = s.key_path("batch");
    let example = "batch = 2 or batch = \"25%\"";
    let parsed = match v.get_ref() {
        DeValue::Integer(_) => integer(v.get_ref())
            .filter(|n| *n >= 1)
            .and_then(|n| usize::try_from(n).ok())
            .map(Batch::Count),
        DeValue::String(text) => text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<u8>().ok())
            .filter(|n| (1..=100).contains(n))
            .map(Batch::Percent),
        _ => {
            wrong_type(r, v, &path, "a number of hosts or a percentage", example);
            return None;
        }
    };
    if parsed.is_none() {
        let written = match v.get_ref() {
            DeValue::String(t) => format!("\"{t}\""),
            other => integer(other).map_or_else(String::new, |n| n.to_string()),
        };
        r.error(
            v.span().start,
            format!(
                "`{path}` = {written} is not a batch size: use a positive number of hosts or a percentage from 1% to 100%"
            ),
            Some(format!("for example: {example}")),
        );
    }
    parsed
}

/// Merge `over` (an environment's layer) over `base` (`[deploy]`) and
/// apply defaults. Also reports a variable set in both `env` and `secrets`.
pub(crate) fn merge(
    base: &Layer,
    over: &Layer,
    app_name: &str,
    r: &mut Report<'_>,
) -> DeploySettings {
    let mut env = base.env.clone();
    env.extend(over.env.clone());
    let mut secrets = base.secrets.clone();
    secrets.extend(over.secrets.clone());
    for (key, (_, at)) in &secrets {
        if env.contains_key(key) {
            r.error(
                *at,
                format!("`{key}` is set in both `env` and `secrets`"),
                Some(format!("keep `{key}` in `secrets` only")),
            );
        }
    }
    let port = over.port.or(base.port);
    DeploySettings {
        service: over
            .service
            .clone()
            .or_else(|| base.service.clone())
            .unwrap_or_else(|| app_name.to_string()),
        port,
        env,
        secrets: secrets.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        keep_releases: over.keep_releases.or(base.keep_releases).unwrap_or(5),
        health: HealthCheck {
            path: over
                .health_path
                .clone()
                .or_else(|| base.health_path.clone())
                .unwrap_or_else(|| "/health".to_string()),
            port: over.health_port.or(base.health_port).or(port),
            timeout: over
                .health_timeout
                .or(base.health_timeout)
                .unwrap_or(Duration::from_secs(30)),
            interval: over
                .health_interval
                .or(base.health_interval)
                .unwrap_or(Duration::from_secs(1)),
            retries: over.health_retries.or(base.health_retries).unwrap_or(30),
            monitor: over.health_monitor.or(base.health_monitor),
        },
        rollout: Rollout {
            batch: over.batch.or(base.batch),
            parallelism: over.parallelism.or(base.parallelism),
        },
        switch: switch::merge(&base.switch, &over.switch, port, r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use toml::de::DeTable;

    /// Read `[deploy]` and `[over]` from `text`, merge, and return the
    /// result with the rendered diagnostics.
    fn merged(text: &str) -> (DeploySettings, Vec<String>) {
        let (doc, errs) = DeTable::parse_recoverable(text);
        assert!(errs.is_empty());
        let mut r = Report::new(text, Path::new("soar.toml"));
        let top = Section::root(doc.get_ref());
        let base = top
            .section("deploy", "", &mut r)
            .map(|s| read(&s, &mut r))
            .unwrap_or_default();
        let over = top
            .section("over", "", &mut r)
            .map(|s| read(&s, &mut r))
            .unwrap_or_default();
        let out = merge(&base, &over, "hello", &mut r);
        (out, r.finish().iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn defaults() {
        let (d, msgs) = merged("");
        assert!(msgs.is_empty());
        assert_eq!(
            d,
            DeploySettings {
                service: "hello".into(),
                port: None,
                env: BTreeMap::new(),
                secrets: BTreeMap::new(),
                keep_releases: 5,
                health: HealthCheck {
                    path: "/health".into(),
                    port: None,
                    timeout: Duration::from_secs(30),
                    interval: Duration::from_secs(1),
                    retries: 30,
                    monitor: None,
                },
                rollout: Rollout::default(),
                switch: crate::config::Switch::Restart,
            }
        );
    }

    #[test]
    fn overrides_merge_key_by_key() {
        let (d, msgs) = merged(
            r#"[deploy]
service = "web"
port = 8080
env = { A = "1", B = "2" }
secrets = { API_KEY = "HELLO_API_KEY" }
health = { path = "/up", timeout = "5s" }
rollout = { batch = "25%" }

[over]
port = 9000
env = { B = "3", N = 7, T = true }
health = { retries = 3 }
rollout = { parallelism = 2 }
"#,
        );
        assert!(msgs.is_empty(), "{msgs:?}");
        assert_eq!(d.service, "web");
        assert_eq!(d.port, Some(9000));
        let env: Vec<(&str, &str)> = d
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "3"), ("N", "7"), ("T", "true")]);
        assert_eq!(d.secrets["API_KEY"], "HELLO_API_KEY");
        assert_eq!(d.health.path, "/up");
        assert_eq!(
            d.health.port,
            Some(9000),
            "health port follows the service port"
        );
        assert_eq!(d.health.timeout, Duration::from_secs(5));
        assert_eq!(d.health.retries, 3);
        assert_eq!(d.rollout.batch, Some(Batch::Percent(25)));
        assert_eq!(d.rollout.parallelism, Some(2));
    }

    #[test]
    fn batches() {
        for (text, want) in [
            ("2", Some(Batch::Count(2))),
            ("\"100%\"", Some(Batch::Percent(100))),
        ] {
            let (d, msgs) = merged(&format!("[deploy]\nrollout = {{ batch = {text} }}"));
            assert!(msgs.is_empty());
            assert_eq!(d.rollout.batch, want);
        }
        for bad in ["0", "-1", "\"0%\"", "\"150%\"", "\"half\"", "\"25\""] {
            let (_, msgs) = merged(&format!("[deploy]\nrollout = {{ batch = {bad} }}"));
            assert_eq!(msgs.len(), 1, "{bad}");
            assert!(msgs[0].contains("is not a batch size"), "{}", msgs[0]);
        }
    }

    #[test]
    fn problems() {
        let (_, msgs) = merged(
            r#"[deploy]
service = "Web_1"
keep_releases = 0
env = { 1BAD = "x", OK = [1] }
secrets = { API_KEY = "not a name", OTHER = "OTHER_VAR", OK2 = "X" }
health = { path = "health" }

[over]
env = { OTHER = "x" }
"#,
        );
        let expect = [
            "2:11: service name 'Web_1' in `deploy.service` is not a valid name: it contains uppercase",
            "3:17: `deploy.keep_releases` is out of range",
            "4:9: '1BAD' in `deploy.env` is not a valid environment variable name",
            "4:26: `deploy.env.OK` must be a string, not an array",
            "5:23: `deploy.secrets.API_KEY` must be the NAME",
            "5:37: `OTHER` is set in both `env` and `secrets`",
            "6:19: `deploy.health.path` must start with '/'",
        ];
        assert_eq!(msgs.len(), expect.len(), "{msgs:#?}");
        for (m, e) in msgs.iter().zip(expect) {
            assert!(m.contains(e), "{m}\n  does not contain {e}");
        }
        assert!(!msgs.iter().any(|m| m.contains("not a name")));
    }
}
