//! `soar plugin ...`: what plugins exist and what each may reach.

use clap::Subcommand;
use serde_json::json;

use crate::catalog::Entry;
use crate::runtime::bindings::{ArtifactKind, CredentialScheme, Description};
use crate::runtime::{Plugin, Runtime};

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List available plugins: name, version, contract version, source, digest.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show everything a plugin may reach: hosts, credentials, SSH, limits.
    Inspect {
        /// Plugin name, as in `soar plugin list`.
        name: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
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
    },
    /// Fetch an installed plugin again from the source it was installed from;
    /// shows how what it may reach changes before accepting.
    Update {
        name: String,
        #[arg(short, long)]
        yes: bool,
        #[arg(long)]
        allow_insecure_http: bool,
    },
    /// Remove an installed plugin (a bundled one of the same name is used again).
    Remove { name: String },
    /// Scaffold a provider project: the WIT, a skeleton, a build script, a test.
    New {
        name: String,
        #[arg(long, value_enum)]
        lang: crate::install::scaffold::Lang,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
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

/// Run a `soar plugin` subcommand; `config` is the global `-c`.
pub async fn run(config: Option<&std::path::Path>, cmd: PluginCommand) -> anyhow::Result<i32> {
    if let PluginCommand::New { name, lang, dir } = &cmd {
        let (dir, files) = crate::install::scaffold::scaffold(name, *lang, dir.as_deref())?;
        println!("Created {} ({} files):", dir.display(), files.len());
        for f in files {
            println!("  {f}");
        }
        println!(
            "Next: cd {} && ./test.sh (builds plugin.wasm, installs it into a throwaway data dir)",
            dir.display()
        );
        return Ok(0);
    }
    if let PluginCommand::Remove { name } = &cmd {
        println!("{}", crate::install::remove(&plugins_dir()?, name)?);
        return Ok(0);
    }
    let (runtime, catalog) = super::environment()?;
    match cmd {
        PluginCommand::New { .. } | PluginCommand::Remove { .. } => unreachable!("handled above"),
        PluginCommand::Install {
            source,
            sha256,
            yes,
            allow_insecure_http,
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
            };
            crate::install::install(&runtime, &catalog, &plugins_dir()?, &opts, None).await?;
            Ok(0)
        }
        PluginCommand::Update {
            name,
            yes,
            allow_insecure_http,
        } => {
            let opts = crate::install::InstallOptions {
                source: String::new(),
                sha256: None,
                yes,
                fetch: crate::install::fetch::FetchPolicy {
                    allow_insecure_http,
                    ..Default::default()
                },
                project: project(config),
            };
            crate::install::update(&runtime, &catalog, &plugins_dir()?, &name, opts).await?;
            Ok(0)
        }
        PluginCommand::List { json } => {
            let mut rows = Vec::new();
            for entry in catalog.entries() {
                rows.push((entry, load(&runtime, entry).await));
            }
            if json {
                for (entry, plugin) in &rows {
                    let line = match plugin {
                        Ok(p) => json!({
                            "name": entry.name, "version": p.description().version,
                            "wit": format!("{}@{}", crate::runtime::contract::PACKAGE, p.wit_version()),
                            "source": entry.source.to_string(), "digest": format!("sha256:{}", entry.digest),
                            "summary": p.description().summary,
                        }),
                        Err(e) => {
                            json!({"name": entry.name, "source": entry.source.to_string(), "digest": format!("sha256:{}", entry.digest), "error": format!("{e:#}")})
                        }
                    };
                    println!("{line}");
                }
            } else {
                println!(
                    "{:<14} {:<9} {:<18} {:<10} DIGEST",
                    "NAME", "VERSION", "WIT", "SOURCE"
                );
                for (entry, plugin) in &rows {
                    let short = &entry.digest[..12];
                    match plugin {
                        Ok(p) => println!(
                            "{:<14} {:<9} {:<18} {:<10} sha256:{short}",
                            entry.name,
                            p.description().version,
                            format!("soar:plugin@{}", p.wit_version()),
                            entry.source.to_string()
                        ),
                        Err(e) => println!(
                            "{:<14} {:<9} {:<18} {:<10} sha256:{short}  error: {e:#}",
                            entry.name,
                            "-",
                            "-",
                            entry.source.to_string()
                        ),
                    }
                }
            }
            Ok(if rows.iter().any(|(_, p)| p.is_err()) {
                1
            } else {
                0
            })
        }
        PluginCommand::Inspect { name, json } => {
            let entry = catalog.get(&name)?;
            let plugin = load(&runtime, entry).await?;
            let report = inspect_json(entry, &plugin);
            if json {
                println!("{report}");
            } else {
                print_inspect(entry, &plugin);
            }
            Ok(0)
        }
    }
}

async fn load(runtime: &Runtime, entry: &Entry) -> anyhow::Result<Plugin> {
    runtime.load(&entry.name, &entry.bytes).await
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
        CredentialScheme::AwsSigv4(service) => format!("aws-sigv4 ({service})"),
    }
}

fn inspect_json(entry: &Entry, plugin: &Plugin) -> serde_json::Value {
    let d: &Description = plugin.description();
    let caps = &d.capabilities;
    let limits = plugin.limits();
    json!({
        "name": d.name,
        "version": d.version,
        "summary": d.summary,
        "wit": format!("{}@{}", crate::runtime::contract::PACKAGE, plugin.wit_version()),
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

fn print_inspect(entry: &Entry, plugin: &Plugin) {
    let d = plugin.description();
    let caps = &d.capabilities;
    let limits = plugin.limits();
    println!("{} {} — {}", d.name, d.version, d.summary);
    println!("  contract:    soar:plugin@{}", plugin.wit_version());
    println!("  source:      {}", entry.source);
    println!("  digest:      sha256:{}", entry.digest);
    println!(
        "  artifacts:   {}",
        d.artifacts
            .iter()
            .map(|k| artifact_kind_name(*k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("May reach:");
    if caps.endpoints.is_empty() && caps.extra_hosts.is_empty() {
        println!("  HTTP:        nothing");
    }
    for e in &caps.endpoints {
        println!(
            "  endpoint:    {} = {} (granted by choosing this provider; override with grants.endpoints.{})",
            e.name, e.default_url, e.name
        );
    }
    for h in &caps.extra_hosts {
        println!("  host:        {h} (only when granted in soar.toml)");
    }
    for c in &caps.credentials {
        println!(
            "  credential:  {} ({}) from ${}, sent only to: {} — the plugin never sees it",
            c.name,
            scheme(&c.scheme),
            c.env.join(" / $"),
            c.endpoints.join(", ")
        );
    }
    println!(
        "  SSH:         {}",
        if caps.ssh {
            "hosts it creates or the config lists"
        } else {
            "no"
        }
    );
    println!("Limits per call:");
    println!(
        "  memory {} MiB, compute {} ms between host calls, deadline {} s, {} log records, {} KiB stdout/stderr",
        limits.memory_bytes >> 20,
        limits.compute_budget.as_millis(),
        limits.invocation_timeout.as_secs(),
        limits.log_records,
        limits.stdio_bytes >> 10
    );
}
