//! `soar plugin ...`: what plugins exist and what each may reach.
//!
//! Versions, summaries and declared capabilities are the plugin's own words:
//! the text output escapes them with [`crate::terminal`] (and clips the long
//! ones), the JSON output goes through [`crate::terminal::json`].

use std::fmt::Write as _;

use clap::Subcommand;
use serde_json::json;

use super::args::{JsonArg, YesArg};
use crate::catalog::{Catalog, Entry};
use crate::contract::{ArtifactKind, CredentialScheme, Description};
use crate::report::{Event, Reporter};
use crate::runtime::described::{Described, Describer};
use crate::runtime::{Limits, Plugin, Runtime};
use crate::terminal::{clip, line};

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List available plugins: name, version, contract version, source, digest.
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show everything a plugin may reach: hosts, credentials, SSH, limits.
    Inspect {
        /// Plugin name, as in `soar plugin list`.
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Install a plugin from a URL or path: a `.wasm` component, or a JSON/TOML
    /// manifest naming one. Verifies its sha256, validates it, shows what it
    /// may reach and asks; inside a project, pins it in soar.lock.
    Install {
        /// `https://...`, or a local path (`file://` too).
        source: String,
        /// Expected sha256 of the component (hex, `sha256:` prefix allowed).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Do not ask (also accepts an unpinned digest: trust on first use).
        #[arg(short, long)]
        yes: bool,
        /// Allow plain http:// to non-loopback hosts (and redirects to them).
        #[arg(long)]
        allow_insecure_http: bool,
        /// Allow a plugin named like a bundled one to replace it on this
        /// machine (projects that pinned the bundled one refuse it until
        /// `soar plugin pin NAME` is run in them).
        #[arg(long)]
        override_bundled: bool,
    },
    /// Pin the plugin this machine now has under NAME in the project's
    /// soar.lock (after an installed plugin replaced a bundled one, or the
    /// other way round): shows what it may reach and asks.
    Pin {
        /// Plugin name, as in `soar plugin list`.
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Fetch an installed plugin again from the source it was installed from;
    /// shows how what it may reach changes before accepting.
    Update {
        /// Plugin name, as in `soar plugin list`.
        name: String,
        /// The sha256 the new component must have (checked before it is
        /// used, as for `install`).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        #[command(flatten)]
        yes: YesArg,
        /// Allow plain http:// to non-loopback hosts (and redirects to them).
        #[arg(long)]
        allow_insecure_http: bool,
    },
    /// Remove an installed plugin (a bundled one of the same name is used again).
    Remove {
        /// Plugin name, as in `soar plugin list`.
        name: String,
    },
    /// Scaffold a provider project: the WIT, a skeleton, a build script, a test.
    New {
        /// The plugin's name (also the directory's, unless --dir).
        name: String,
        /// The language of the skeleton.
        #[arg(long, value_enum)]
        lang: crate::install::scaffold::Lang,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Check that a provider keeps the contract, against your fake API: describe,
    /// read-only plans, determinism, idempotent apply, destroy, typed errors.
    Test(super::plugin_test::TestArgs),
}

fn plugins_dir() -> anyhow::Result<std::path::PathBuf> {
    crate::catalog::Catalog::default_dir().ok_or_else(|| {
        anyhow::anyhow!("no data directory for plugins: set SOAR_DATA_DIR (or HOME)")
    })
}

/// The project's soar.toml: `-c`, else found from the current directory up.
fn project(config: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    config.map(std::path::Path::to_path_buf).or_else(|| {
        std::env::current_dir()
            .ok()
            .and_then(|d| crate::config::find(&d))
    })
}

impl PluginCommand {
    /// Whether this subcommand was asked for `--json`.
    pub(super) fn json(&self) -> bool {
        match self {
            PluginCommand::List { json } | PluginCommand::Inspect { json, .. } => json.json,
            PluginCommand::Test(args) => args.json.json,
            _ => false,
        }
    }
}

/// Run a `soar plugin` subcommand; `config` is the global `-c`.
pub async fn run(
    config: Option<&std::path::Path>,
    cmd: PluginCommand,
    out: &Reporter,
) -> anyhow::Result<i32> {
    match cmd {
        PluginCommand::New { name, lang, dir } => new(&name, lang, dir.as_deref(), out),
        PluginCommand::Test(args) => super::plugin_test::run(args, out).await,
        PluginCommand::Remove { name } => remove(config, &name, out),
        PluginCommand::Install {
            source,
            sha256,
            yes,
            allow_insecure_http,
            override_bundled,
        } => {
            let opts = crate::install::InstallOptions {
                source,
                sha256,
                yes,
                fetch: crate::install::fetch::FetchPolicy {
                    allow_insecure_http,
                    ..Default::default()
                },
                project: project(config),
                override_bundled,
                out: out.clone(),
            };
            let (runtime, catalog) = super::environment()?;
            crate::install::install(&runtime, &catalog, &plugins_dir()?, &opts, None).await?;
            Ok(0)
        }
        PluginCommand::Update {
            name,
            sha256,
            yes,
            allow_insecure_http,
        } => {
            let opts = crate::install::InstallOptions {
                source: String::new(),
                sha256,
                yes: yes.yes,
                fetch: crate::install::fetch::FetchPolicy {
                    allow_insecure_http,
                    ..Default::default()
                },
                project: project(config),
                override_bundled: false,
                out: out.clone(),
            };
            let (runtime, catalog) = super::environment()?;
            crate::install::update(&runtime, &catalog, &plugins_dir()?, &name, opts).await?;
            Ok(0)
        }
        PluginCommand::Pin { name, yes } => pin(config, &name, yes.yes, out).await,
        PluginCommand::List { .. } => list(out).await,
        PluginCommand::Inspect { name, .. } => inspect(&name, out).await,
    }
}

/// `soar plugin new`: scaffold a provider project.
fn new(
    name: &str,
    lang: crate::install::scaffold::Lang,
    dir: Option<&std::path::Path>,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let (dir, files) = crate::install::scaffold::scaffold(name, lang, dir)?;
    let mut text = format!("Created {} ({} files):", dir.display(), files.len());
    for f in files {
        text.push_str(&format!("\n  {f}"));
    }
    text.push_str(&format!(
        "\nNext: cd {} && ./test.sh (builds plugin.wasm, installs it into a throwaway data dir)\n",
        dir.display()
    ));
    out.print(&text);
    Ok(0)
}

/// `soar plugin remove`: the plugin, and the project's pin of it.
fn remove(config: Option<&std::path::Path>, name: &str, out: &Reporter) -> anyhow::Result<i32> {
    out.print(&format!(
        "{}\n",
        crate::install::remove(&plugins_dir()?, name)?
    ));
    // The project's pin goes too: it named bytes this machine no longer
    // has (the next use pins what is there, a bundled plugin included).
    if let Some(config) = project(config) {
        let path = crate::install::lock::path_for(&config);
        if crate::install::lock::LockFile::update(&path, |lock| lock.remove(name))? {
            out.print(&format!("Unpinned {name} in {}.\n", path.display()));
        }
    }
    Ok(0)
}

/// `soar plugin pin`: show what the plugin may reach, ask, record it in
/// the project's soar.lock. The consent screen is printed whatever
/// `--quiet` says: it is what the user agrees to.
async fn pin(
    config: Option<&std::path::Path>,
    name: &str,
    yes: bool,
    out: &Reporter,
) -> anyhow::Result<i32> {
    let config = project(config).ok_or_else(|| {
        anyhow::anyhow!(
            "`soar plugin pin` records the plugin in a project's soar.lock: run it in the project, or pass -c PATH"
        )
    })?;
    let (runtime, catalog) = super::environment()?;
    let entry = catalog.get(name)?;
    let plugin = load(&runtime, entry).await?;
    let d = plugin.description();
    let mut screen = format!(
        "{} {} ({}, sha256:{})\nIt will be able to reach:\n",
        d.name,
        clip(&d.version, crate::install::consent::VERSION_MAX),
        entry.source,
        entry.digest
    );
    for l in crate::install::reach_lines(d) {
        screen.push_str(&format!("  {l}\n"));
    }
    for w in crate::install::consent::entry_warnings(&runtime, &catalog, entry, d).await {
        screen.push_str(&format!("{w}\n"));
    }
    out.print(&screen);
    crate::install::confirm(
        out,
        yes,
        &format!(
            "Pin this '{name}' in {}?",
            crate::install::lock::path_for(&config).display()
        ),
        "pinning a plugin needs confirmation of what it may reach",
    )?;
    let (path, changed) = crate::install::lock::pin(&config, entry)?;
    if changed {
        out.print(&format!(
            "Pinned {name} ({}) in {}.\n",
            entry.source,
            path.display()
        ));
    } else {
        out.print(&format!("{} already pins this '{name}'.\n", path.display()));
    }
    Ok(0)
}

/// `soar plugin list`: one row (or `plugin` event) per plugin; exits 1 when
/// one does not load.
async fn list(out: &Reporter) -> anyhow::Result<i32> {
    let catalog = Catalog::discover(Catalog::default_dir())?;
    let describer = describer();
    let mut rows = Vec::new();
    for entry in catalog.entries() {
        let described = describer
            .describe(&entry.name, &entry.bytes, &entry.digest)
            .await;
        rows.push((entry, described));
    }
    out.print(&format!(
        "{:<14} {:<9} {:<18} {:<10} DIGEST\n",
        "NAME", "VERSION", "WIT", "SOURCE"
    ));
    for (entry, plugin) in &rows {
        out.result(&list_event(entry, plugin), || list_row(entry, plugin));
    }
    Ok(if rows.iter().any(|(_, p)| p.is_err()) {
        1
    } else {
        0
    })
}

fn list_event<'a>(entry: &'a Entry, plugin: &'a anyhow::Result<Described>) -> Event<'a> {
    let (version, wit, summary, error) = match plugin {
        Ok(p) => (
            Some(p.description.version.as_str()),
            Some(format!(
                "{}@{}",
                crate::contract::version::PACKAGE,
                p.wit_version
            )),
            Some(p.description.summary.as_str()),
            None,
        ),
        Err(e) => (None, None, None, Some(format!("{e:#}"))),
    };
    Event::Plugin {
        name: &entry.name,
        version,
        wit,
        source: entry.source.to_string(),
        digest: format!("sha256:{}", entry.digest),
        summary,
        error,
    }
}

fn list_row(entry: &Entry, plugin: &anyhow::Result<Described>) -> String {
    let short = &entry.digest[..12];
    match plugin {
        Ok(p) => format!(
            "{:<14} {:<9} {:<18} {:<10} sha256:{short}",
            entry.name,
            clip(&p.description.version, 24),
            format!("soar:plugin@{}", p.wit_version),
            entry.source.to_string()
        ),
        Err(e) => format!(
            "{:<14} {:<9} {:<18} {:<10} sha256:{short}  error: {}",
            entry.name,
            "-",
            "-",
            entry.source.to_string(),
            line(&format!("{e:#}"))
        ),
    }
}

/// `soar plugin inspect`: everything the plugin may reach.
async fn inspect(name: &str, out: &Reporter) -> anyhow::Result<i32> {
    let catalog = Catalog::discover(Catalog::default_dir())?;
    let entry = catalog.get(name)?;
    let describer = describer();
    let plugin = describer
        .describe(&entry.name, &entry.bytes, &entry.digest)
        .await?;
    let limits = describer.limits();
    if out.is_json() {
        out.emit(&Event::PluginDetails(inspect_json(entry, &plugin, limits)));
        return Ok(0);
    }
    let mut text = inspect_text(entry, &plugin, limits);
    if entry.source != crate::catalog::Source::Bundled {
        let runtime = describer.runtime()?;
        for w in
            crate::install::consent::entry_warnings(runtime, &catalog, entry, &plugin.description)
                .await
        {
            text.push_str(&format!("{w}\n"));
        }
    }
    out.print(&text);
    Ok(0)
}

/// Descriptions for display, from the user's describe cache (beside the
/// compile cache) when it has them.
fn describer() -> Describer {
    Describer::new(super::runtime_config())
}

async fn load(runtime: &Runtime, entry: &Entry) -> anyhow::Result<Plugin> {
    runtime
        .load_digested(&entry.name, &entry.bytes, entry.digest.clone())
        .await
}

/// The config spelling of an artifact kind.
pub fn artifact_kind_name(k: ArtifactKind) -> &'static str {
    match k {
        ArtifactKind::Binary => "binary",
        ArtifactKind::Script => "script",
        ArtifactKind::Static => "static",
        ArtifactKind::Tarball => "tarball",
    }
}

fn scheme(s: &CredentialScheme) -> String {
    match s {
        CredentialScheme::Bearer => "bearer".into(),
        CredentialScheme::AwsSigv4(service) => format!("aws-sigv4 ({})", line(service)),
    }
}

fn inspect_json(entry: &Entry, plugin: &Described, limits: &Limits) -> serde_json::Value {
    let d: &Description = &plugin.description;
    let caps = &d.capabilities;
    json!({
        "name": d.name,
        "version": d.version,
        "summary": d.summary,
        "wit": format!("{}@{}", crate::contract::version::PACKAGE, plugin.wit_version),
        "source": entry.source,
        "digest": format!("sha256:{}", entry.digest),
        "artifacts": d.artifacts.iter().map(|k| artifact_kind_name(*k)).collect::<Vec<_>>(),
        "endpoints": caps.endpoints.iter().map(|e| json!({"name": e.name, "url": e.default_url})).collect::<Vec<_>>(),
        "extra_hosts": caps.extra_hosts,
        "credentials": caps.credentials.iter().map(|c| json!({
            "name": c.name, "scheme": scheme(&c.scheme), "env": c.env, "endpoints": c.endpoints,
        })).collect::<Vec<_>>(),
        "ssh": caps.ssh,
        "limits": {
            "memory_bytes": limits.memory_bytes,
            "compute_budget_ms": limits.compute_budget.as_millis() as u64,
            "invocation_timeout_s": limits.invocation_timeout.as_secs(),
            "log_records_per_call": limits.log_records,
            "stdio_bytes_per_call": limits.stdio_bytes,
        },
        "settings_schema": serde_json::from_str::<serde_json::Value>(&d.settings_schema).unwrap_or(serde_json::Value::Null),
    })
}

/// The inspect screen for people (plugin text escaped and clipped).
fn inspect_text(entry: &Entry, plugin: &Described, limits: &Limits) -> String {
    let mut text = String::new();
    let d = &plugin.description;
    let caps = &d.capabilities;
    let _ = writeln!(
        text,
        "{} {} — {}",
        d.name,
        clip(&d.version, crate::install::consent::VERSION_MAX),
        clip(&d.summary, crate::install::consent::SUMMARY_MAX)
    );
    let _ = writeln!(text, "  contract:    soar:plugin@{}", plugin.wit_version);
    let _ = writeln!(text, "  source:      {}", entry.source);
    let _ = writeln!(text, "  digest:      sha256:{}", entry.digest);
    let _ = writeln!(
        text,
        "  artifacts:   {}",
        d.artifacts
            .iter()
            .map(|k| artifact_kind_name(*k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(text, "May reach:");
    if caps.endpoints.is_empty() && caps.extra_hosts.is_empty() {
        let _ = writeln!(text, "  HTTP:        nothing");
    }
    for e in &caps.endpoints {
        let _ = writeln!(
            text,
            "  endpoint:    {} = {} (granted by choosing this provider; override with grants.endpoints.{})",
            line(&e.name),
            line(&e.default_url),
            line(&e.name)
        );
    }
    for h in &caps.extra_hosts {
        let _ = writeln!(
            text,
            "  host:        {} (only when granted in soar.toml)",
            line(h)
        );
    }
    for c in &caps.credentials {
        let hosts = crate::install::consent::credential_hosts(d, &c.endpoints);
        let _ = writeln!(
            text,
            "  credential:  {} ({}) from ${}, sent only to: {} ({}) — the plugin never sees it",
            line(&c.name),
            scheme(&c.scheme),
            line(&c.env.join(" / $")),
            line(&c.endpoints.join(", ")),
            line(&hosts.join(", "))
        );
    }
    let _ = writeln!(
        text,
        "  SSH:         {}",
        if caps.ssh {
            "hosts it creates or the config lists"
        } else {
            "no"
        }
    );
    let _ = writeln!(text, "Limits per call:");
    let _ = writeln!(
        text,
        "  memory {} MiB over all memories and tables, compute {} ms per call (host calls excluded), deadline {} s, {} log records, {} KiB stdout/stderr",
        limits.memory_bytes >> 20,
        limits.compute_budget.as_millis(),
        limits.invocation_timeout.as_secs(),
        limits.log_records,
        limits.stdio_bytes >> 10
    );
    text
}
