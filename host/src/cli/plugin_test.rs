//! `soar plugin test PATH|NAME`: the conformance harness plugin authors run
//! in their CI, against their own fake API. The checks are
//! [`crate::conformance`]'s; this module turns the command line into its
//! inputs and its report into lines (or `--json` events) and an exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::args::JsonArg;
use crate::artifact::Kind;
use crate::broker::http::HttpLimits;
use crate::conformance::artifact::TestArtifact;
use crate::conformance::{self, Inputs, Outcome, Report};
use crate::contract::Description;
use crate::credentials::ProcessEnv;
use crate::report::{Event, Reporter};
use crate::runtime::Plugin;

/// `soar plugin test`'s arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A `.wasm` component file, or the name of a plugin in `soar plugin list`.
    pub plugin: String,
    /// `NAME=URL`: point the declared endpoint (or host pattern) NAME at your
    /// fake API for this run. Repeatable.
    #[arg(long = "endpoint", value_name = "NAME=URL")]
    pub endpoints: Vec<String>,
    /// The provider settings to plan with: a JSON file (`.json`) or TOML (the
    /// keys of an `[env.<name>]` table). Default: none (`{}`).
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// `NAME=ENVVAR`: read credential NAME's test token from ENVVAR instead
    /// of the variables the plugin declares. Repeatable. The plugin never
    /// sees it: the broker injects it, as always.
    #[arg(long = "credential", value_name = "NAME=ENVVAR")]
    pub credentials: Vec<String>,
    /// The artifact to plan and apply with. Default: a tiny built-in one of
    /// a kind the plugin declares.
    #[arg(long, value_name = "PATH")]
    pub artifact: Option<PathBuf>,
    /// The artifact's kind (binary, script, static, tarball). Default: the
    /// first kind the plugin declares.
    #[arg(long, value_name = "KIND")]
    pub artifact_kind: Option<String>,
    /// The environment name the plugin is told (resources are usually named
    /// after it).
    #[arg(
        long = "environment",
        value_name = "NAME",
        default_value = "conformance"
    )]
    pub environment: String,
    /// Allow --endpoint URLs off loopback (a staging API, say). The run
    /// creates and deletes resources wherever the endpoints point.
    #[arg(long)]
    pub allow_remote_endpoints: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Run `soar plugin test`: exit 0 when no check failed, 1 otherwise.
pub async fn run(args: TestArgs, out: &Reporter) -> anyhow::Result<i32> {
    let runtime = super::runtime()?;
    let plugin = Arc::new(load(&runtime, &args.plugin).await?);
    let d = plugin.description();
    let endpoints = endpoints(&args.endpoints, args.allow_remote_endpoints)?;
    let credential_env = credentials(&args.credentials, d)?;
    warn_missing_credentials(d, &credential_env, out);
    let artifact = artifact(&args, d)?;
    let inputs = Inputs {
        app: "soar-test".into(),
        environment: args.environment.clone(),
        settings: settings(args.settings.as_deref())?,
        endpoints,
        credential_env,
        secrets: Arc::new(ProcessEnv),
        artifact: artifact.as_ref().map(|a| Arc::new(a.source.clone())),
        http_limits: HttpLimits::default(),
    };
    out.note(|| {
        format!(
            "Testing {} {} against {}…",
            d.name,
            d.version,
            if inputs.endpoints.is_empty() {
                "its default endpoints".to_string()
            } else {
                inputs
                    .endpoints
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    });
    let report = conformance::run(plugin.clone(), &inputs).await?;
    show(&report, out);
    Ok(if report.failed() { 1 } else { 0 })
}

/// A `.wasm` file when `target` names one (or contains a path separator),
/// else the catalog's plugin of that name.
async fn load(runtime: &crate::runtime::Runtime, target: &str) -> anyhow::Result<Plugin> {
    let path = Path::new(target);
    if path.is_file() || target.ends_with(".wasm") || target.contains('/') {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the plugin component {}", path.display()))?;
        return runtime.load(target, &bytes).await;
    }
    let catalog = crate::catalog::Catalog::discover(crate::catalog::Catalog::default_dir())?;
    let entry = catalog.get(target)?;
    runtime
        .load_digested(&entry.name, &entry.bytes, entry.digest.clone())
        .await
}

/// `NAME=VALUE` pairs of a repeatable flag.
fn pairs(values: &[String], flag: &str, example: &str) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("{flag} {v:?}: expected {example}"),
        })
        .collect()
}

/// `--endpoint` overrides, loopback only unless the author allows more: a
/// conformance run creates and deletes resources, so it must not reach a
/// real cloud by a typo.
fn endpoints(values: &[String], allow_remote: bool) -> anyhow::Result<BTreeMap<String, String>> {
    let endpoints = pairs(
        values,
        "--endpoint",
        "NAME=URL, e.g. api=http://127.0.0.1:8080",
    )?;
    for (name, raw) in &endpoints {
        let url = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("--endpoint {name}={raw}: not a URL ({e})"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback && !allow_remote {
            anyhow::bail!(
                "--endpoint {name}={raw} is not on loopback: the run creates and deletes resources there. Point it at your fake API (http://127.0.0.1:PORT), or pass --allow-remote-endpoints if that is what you mean"
            );
        }
    }
    Ok(endpoints)
}

/// `--credential` choices, each naming a credential the plugin declares.
fn credentials(values: &[String], d: &Description) -> anyhow::Result<BTreeMap<String, String>> {
    let chosen = pairs(
        values,
        "--credential",
        "NAME=ENVVAR, e.g. digitalocean=FAKE_TOKEN",
    )?;
    let declared: Vec<&str> = d
        .capabilities
        .credentials
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for name in chosen.keys() {
        if !declared.contains(&name.as_str()) {
            anyhow::bail!(
                "--credential {name}=…: plugin '{}' declares no credential '{name}' (it declares: {})",
                d.name,
                if declared.is_empty() {
                    "none".into()
                } else {
                    declared.join(", ")
                }
            );
        }
    }
    Ok(chosen)
}

/// Say which credentials have no value, before requests fail for it.
fn warn_missing_credentials(d: &Description, chosen: &BTreeMap<String, String>, out: &Reporter) {
    for c in &d.capabilities.credentials {
        let vars: Vec<String> = match chosen.get(&c.name) {
            Some(v) => vec![v.clone()],
            None => c.env.clone(),
        };
        if !vars
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
        {
            out.warn(&format!(
                "credential '{}' has no value ({} unset): requests that need it will be refused; export a test token your fake accepts",
                c.name,
                vars.join(", ")
            ));
        }
    }
}

/// The provider settings: JSON, or TOML as the keys of an environment.
fn settings(path: Option<&Path>) -> anyhow::Result<Value> {
    let Some(path) = path else {
        return Ok(Value::Object(Default::default()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the settings file {}", path.display()))?;
    let value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
    } else {
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
        serde_json::to_value(table)?
    };
    anyhow::ensure!(
        value.is_object(),
        "{}: the settings must be an object (the keys of an [env.<name>] table)",
        path.display()
    );
    Ok(value)
}

/// The artifact every call is told of: `--artifact`, or a built-in one of
/// a kind the plugin declares; none for a plugin that declares no kind.
fn artifact(args: &TestArgs, d: &Description) -> anyhow::Result<Option<TestArtifact>> {
    let declared: Vec<Kind> = d.artifacts.iter().map(|k| Kind::from(*k)).collect();
    let kind = match &args.artifact_kind {
        Some(name) => {
            let kind = Kind::parse(name)
                .filter(|k| declared.contains(k))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--artifact-kind {name}: plugin '{}' deploys {}",
                        d.name,
                        declared
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            Some(kind)
        }
        None => declared.first().copied(),
    };
    match (kind, &args.artifact) {
        (None, Some(_)) => anyhow::bail!(
            "--artifact given, but plugin '{}' declares no artifact kind",
            d.name
        ),
        (None, None) => Ok(None),
        (Some(kind), Some(path)) => TestArtifact::at(path, kind).map(Some),
        (Some(kind), None) => TestArtifact::built_in(kind).map(Some),
    }
}

/// The report as lines (`✓`, `✗`, `-` per check, details indented, a
/// summary), or one `conformance_check` event per check and a summary.
fn show(report: &Report, out: &Reporter) {
    for c in &report.checks {
        out.emit(&Event::ConformanceCheck(crate::report::value(c)));
    }
    out.emit(&Event::ConformanceSummary {
        plugin: &report.plugin,
        version: &report.version,
        passed: report.count(Outcome::Pass),
        failed: report.count(Outcome::Fail),
        skipped: report.count(Outcome::Skip),
    });
    let mut text = format!(
        "{} {}\n",
        crate::terminal::line(&report.plugin),
        crate::terminal::line(&report.version)
    );
    for c in &report.checks {
        let mark = match c.outcome {
            Outcome::Pass => "✓",
            Outcome::Fail => "✗",
            Outcome::Skip => "-",
        };
        text.push_str(&format!(
            "  {mark} {}: {}\n",
            c.title,
            crate::terminal::line(&c.reason)
        ));
        for d in &c.details {
            text.push_str(&format!("      {}\n", crate::terminal::line(d)));
        }
    }
    text.push_str(&report.summary());
    text.push('\n');
    out.print(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn endpoints_stay_on_loopback_unless_allowed() {
        let ok = endpoints(
            &args(&[
                "api=http://127.0.0.1:8080",
                "files=http://[::1]:9000/v1",
                "*.cdn.example=http://localhost:81",
            ]),
            false,
        )
        .expect("loopback is fine");
        assert_eq!(ok["api"], "http://127.0.0.1:8080");
        let far = args(&["api=https://api.example.com"]);
        let err = endpoints(&far, false).unwrap_err().to_string();
        assert!(err.contains("--allow-remote-endpoints"), "{err}");
        assert!(endpoints(&far, true).is_ok());
        for bad in ["api", "=http://127.0.0.1", "api=", "api=not a url"] {
            assert!(endpoints(&args(&[bad]), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_json_or_toml_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = dir.path().join("s.toml");
        std::fs::write(&toml, "region = \"nyc3\"\n[hosts.web-1]\nrole = \"web\"\n").expect("write");
        let v = settings(Some(&toml)).expect("toml");
        assert_eq!(v["hosts"]["web-1"]["role"], "web");
        let json = dir.path().join("s.json");
        std::fs::write(&json, "[1]").expect("write");
        let err = settings(Some(&json)).unwrap_err().to_string();
        assert!(err.contains("must be an object"), "{err}");
        assert_eq!(settings(None).expect("none"), serde_json::json!({}));
    }
}
