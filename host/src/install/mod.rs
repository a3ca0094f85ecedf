//! `soar plugin install / update / remove`: getting third-party components
//! onto this machine safely.
//!
//! An install runs in this order, and stops at the first failure with the
//! previous state untouched:
//!
//! 1. **fetch** the source (a `.wasm` component, or a JSON/TOML
//!    [`manifest`] naming one) under [`fetch`]'s rules: HTTPS only (plain
//!    http to loopback or with `--allow-insecure-http`), redirects re-checked
//!    before they are followed, size cap, timeouts;
//! 2. **verify the sha256** (`--sha256`, or the manifest's) before the bytes
//!    are parsed or compiled; with neither, show the digest and record it
//!    (trust on first use), which needs a terminal or `--yes`;
//! 3. **validate**: a component (not a core module), a supported contract
//!    version, `describe` answers with a valid name (`[a-z0-9-]`: it becomes
//!    a directory name). This compiles the component into the compile cache,
//!    so the first `plan` after an install is as fast as any later one;
//! 4. **show what the plugin will be able to reach** (hosts, credentials
//!    and the hosts each is sent to, SSH), loud warnings about credentials
//!    that read another provider's or a well-known secret variable (see
//!    [`consent`]), and what it replaces, and ask (`--yes` skips). A plugin
//!    named like a bundled one is refused unless `--override-bundled` is
//!    given; every string it supplied is escaped and clipped first;
//! 5. **stage** the files in a temporary directory inside the plugins
//!    directory, then **switch atomically**: `<plugins>/<name>` is a symlink
//!    to `.store/<name>-<id>/`, replaced with one `rename(2)`; the old
//!    version is deleted afterwards;
//! 6. **pin** it in the project's `soar.lock` when run inside a project.

pub mod consent;
pub mod fetch;
pub mod lock;
pub mod manifest;
pub mod scaffold;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use self::fetch::{FetchError, FetchPolicy, Fetched, Location};
use self::manifest::{Manifest, normalize_sha256};
use crate::catalog::{Catalog, InstallRecord, RECORD_FILE, Source, valid_name};
use crate::contract::Description;
use crate::report::Reporter;
use crate::runtime::Runtime;
use crate::runtime::cache::CacheOutcome;
use crate::terminal::clip;

pub use self::consent::reach_lines;

const STORE_DIR: &str = ".store";
const STAGING_PREFIX: &str = ".staging-";

/// Options of one install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// URL or path of a component or manifest.
    pub source: String,
    /// Expected sha256 of the component.
    pub sha256: Option<String>,
    /// Do not ask.
    pub yes: bool,
    /// How the component (and manifest) may be downloaded.
    pub fetch: FetchPolicy,
    /// The project's `soar.toml`, whose `soar.lock` records the plugin.
    pub project: Option<PathBuf>,
    /// Allow replacing the bundled plugin of the same name (for every
    /// project on this machine; projects that pinned the bundled one refuse
    /// the replacement until re-pinned with `soar plugin pin`).
    pub override_bundled: bool,
    /// Where the consent screen, the question and what was done are shown.
    pub out: Reporter,
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The plugin's declared name.
    pub name: String,
    /// Its version, as the component describes itself.
    pub version: String,
    /// Lowercase hex sha256 of the installed component.
    pub sha256: String,
    /// Where it now lives: `<plugins dir>/<name>`.
    pub dir: PathBuf,
    /// Time to validate (compile + describe).
    pub validate_time: Duration,
    /// Whether validation found the component already compiled in the cache.
    pub cache: CacheOutcome,
    /// Whether nothing changed (same digest already installed).
    pub unchanged: bool,
}

fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fetch_error(e: FetchError) -> anyhow::Error {
    anyhow::anyhow!("{e}; nothing was installed")
}

/// Ask `question` on the terminal; `--yes` answers for the user. Without a
/// terminal and without `--yes`, refuse with `why`.
pub fn confirm(out: &Reporter, yes: bool, question: &str, why: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{why}: run it in a terminal to answer, or pass --yes");
    }
    out.prompt_stderr(&format!("{question} [y/N] "))?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("cancelled; nothing was changed")
    }
}

/// `+`/`-` lines between two capability listings (unchanged ones indented).
pub fn reach_diff(old: &Description, new: &Description) -> (bool, Vec<String>) {
    let (a, b) = (reach_lines(old), reach_lines(new));
    let mut out = Vec::new();
    let mut changed = false;
    for l in &a {
        if !b.contains(l) {
            changed = true;
            out.push(format!("  - {l}"));
        }
    }
    for l in &b {
        if a.contains(l) {
            out.push(format!("    {l}"));
        } else {
            changed = true;
            out.push(format!("  + {l}"));
        }
    }
    (changed, out)
}

/// The component bytes of `source`, verified against the expected digest.
/// Returns the fetched component, the manifest if one was used, and the
/// expected digest (None: unpinned).
async fn obtain(
    opts: &InstallOptions,
) -> anyhow::Result<(Fetched, Option<Manifest>, Option<String>)> {
    let loc = Location::parse(&opts.source)?;
    let cli_pin = opts
        .sha256
        .as_deref()
        .map(normalize_sha256)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--sha256: {e}"))?;
    let first = fetch::fetch(&loc, &opts.fetch).await.map_err(fetch_error)?;
    if is_wasm(&first.bytes) {
        if let Some(want) = &cli_pin
            && *want != first.sha256
        {
            anyhow::bail!(
                "checksum mismatch for {loc}: expected sha256:{want}, got sha256:{}; nothing was installed",
                first.sha256
            );
        }
        return Ok((first, None, cli_pin));
    }
    let m =
        Manifest::parse(&first.bytes).with_context(|| format!("{loc}: nothing was installed"))?;
    if !valid_name(&m.name) {
        anyhow::bail!(
            "{loc}: manifest name {:?} is not a valid plugin name (lowercase letters, digits, inner hyphens); nothing was installed",
            m.name
        );
    }
    m.check_wit()
        .map_err(|e| anyhow::anyhow!("{e}; nothing was installed"))?;
    if let Some(want) = &cli_pin
        && *want != m.sha256
    {
        anyhow::bail!(
            "--sha256 {want} disagrees with the manifest's sha256 {} ({loc}); nothing was installed",
            m.sha256
        );
    }
    let mut failures = Vec::new();
    for candidate in std::iter::once(&m.url).chain(&m.mirrors) {
        let at = loc.join(candidate)?;
        match fetch::fetch(&at, &opts.fetch).await {
            Ok(f) if f.sha256 == m.sha256 => {
                let want = Some(m.sha256.clone());
                return Ok((f, Some(m), want));
            }
            Ok(f) => failures.push(format!(
                "checksum mismatch for {at}: the manifest pins sha256:{}, got sha256:{}",
                m.sha256, f.sha256
            )),
            Err(FetchError::Refused(e)) => return Err(fetch_error(FetchError::Refused(e))),
            Err(e) => failures.push(e.to_string()),
        }
    }
    anyhow::bail!(
        "could not get plugin '{}' {} from {} place(s):\n  {}\nnothing was installed",
        m.name,
        m.version,
        failures.len(),
        failures.join("\n  ")
    )
}

/// The previous installed version, for `update`.
#[derive(Debug, Clone)]
pub struct Previous {
    /// What it declared, so the consent screen can show the capability diff.
    pub description: Description,
    /// Its digest; an update to the same digest changes nothing.
    pub sha256: String,
}

/// Install (or replace) a plugin. `previous` makes it an update: the change
/// of capabilities is shown.
///
/// The steps, in order: fetch and verify the bytes; compile and check what
/// the component says it is; show what it may reach and ask; write it with
/// one rename; pin it in the project. Nothing is written before the answer.
pub async fn install(
    runtime: &Runtime,
    catalog: &Catalog,
    plugins_dir: &Path,
    opts: &InstallOptions,
    previous: Option<&Previous>,
) -> anyhow::Result<Installed> {
    let (fetched, manifest, pinned) = obtain(opts).await?;
    let digest = fetched.sha256.clone();
    announce_fetch(opts, &fetched, pinned.is_some())?;
    let (plugin, validate_time) = load_checked(runtime, opts, &fetched, manifest.as_ref()).await?;
    let d = plugin.description().clone();
    let bundled_name = Catalog::is_bundled(&d.name);
    if bundled_name && !opts.override_bundled {
        anyhow::bail!(
            "this plugin is called '{name}', like the plugin bundled into soar: installing it would replace \
             the bundled '{name}' for every project on this machine. If that is what you want, pass \
             --override-bundled (projects that pinned the bundled one keep refusing it until you run \
             `soar plugin pin {name}` in them); nothing was installed",
            name = d.name
        );
    }
    let shown = Shown {
        version: clip(&d.version, consent::VERSION_MAX),
        summary: clip(&d.summary, consent::SUMMARY_MAX),
        wit: plugin.wit_version().to_string(),
        digest: digest.clone(),
        bundled_name,
    };
    if show_reach(&opts.out, &d, &shown, previous) {
        return Ok(Installed {
            name: d.name,
            version: d.version,
            sha256: digest,
            dir: plugins_dir.join(&plugin.description().name),
            validate_time,
            cache: plugin.cache_outcome(),
            unchanged: true,
        });
    }
    warn_and_confirm(runtime, catalog, &d, &shown, previous, opts).await?;

    let record = InstallRecord {
        name: d.name.clone(),
        version: d.version.clone(),
        summary: d.summary.clone(),
        wit: shown.wit.clone(),
        sha256: digest.clone(),
        source: opts.source.clone(),
        component: manifest
            .as_ref()
            .map(|_| fetched.final_location.to_string()),
        installed_at_ms: now_ms(),
        overrides_bundled: bundled_name,
    };
    let dir = commit(plugins_dir, &d.name, &fetched.bytes, &record)?;
    opts.out.print(&format!(
        "Installed {} {} into {} (validated and compiled in {} ms; the first run uses the compiled form).\n",
        d.name,
        shown.version,
        dir.display(),
        validate_time.as_millis()
    ));
    pin_in_project(opts, &d, &digest)?;
    Ok(Installed {
        name: d.name,
        version: d.version,
        sha256: digest,
        dir,
        validate_time,
        cache: plugin.cache_outcome(),
        unchanged: false,
    })
}

/// What the consent screen shows of a plugin, escaped and clipped: every
/// string the plugin chose is quoted through [`clip`], so none can act on
/// the terminal or push the capability lines away.
struct Shown {
    version: String,
    summary: String,
    wit: String,
    digest: String,
    bundled_name: bool,
}

/// Say what was fetched and whether its digest was verified; refuse an
/// unpinned install nobody can confirm.
fn announce_fetch(opts: &InstallOptions, fetched: &Fetched, pinned: bool) -> anyhow::Result<()> {
    let digest = &fetched.sha256;
    let out = &opts.out;
    out.print(&format!(
        "Fetched {} ({} bytes)\n",
        opts.source,
        fetched.bytes.len()
    ));
    if pinned {
        out.print(&format!("  sha256:{digest} (verified)\n"));
        return Ok(());
    }
    out.print(&format!(
        "  sha256:{digest} (not pinned: no --sha256 and no manifest; this digest will be recorded, trust on first use)\n"
    ));
    if !opts.yes && !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to install {} unpinned without confirmation: check the digest and pass `--sha256 {digest}`, or pass --yes; nothing was installed",
            opts.source
        );
    }
    Ok(())
}

/// Compile (into the cache) and describe the component before anything is
/// written, and check that the name it gives itself is usable and agrees
/// with its manifest. Returns the plugin and how long that took.
async fn load_checked(
    runtime: &Runtime,
    opts: &InstallOptions,
    fetched: &Fetched,
    manifest: Option<&Manifest>,
) -> anyhow::Result<(crate::runtime::Plugin, Duration)> {
    let label = manifest
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "(downloaded)".to_string());
    let started = Instant::now();
    let plugin = runtime.load(&label, &fetched.bytes).await.map_err(|e| {
        anyhow::anyhow!(
            "{} cannot be installed: {e:#}; nothing was installed",
            opts.source
        )
    })?;
    let validate_time = started.elapsed();
    let d = plugin.description();
    if !valid_name(&d.name) {
        anyhow::bail!(
            "the plugin calls itself {:?}, which is not a valid name; nothing was installed",
            d.name
        );
    }
    if let Some(m) = manifest
        && m.name != d.name
    {
        anyhow::bail!(
            "the manifest names the plugin '{}' but the component describes itself as '{}'; nothing was installed",
            m.name,
            d.name
        );
    }
    Ok((plugin, validate_time))
}

/// Show the plugin and what it may reach (for an update: what changes).
/// Returns true when an update has nothing to do (same digest).
/// The consent screen is printed whatever `--quiet` says: it is what the
/// user agrees to.
fn show_reach(out: &Reporter, d: &Description, shown: &Shown, previous: Option<&Previous>) -> bool {
    let mut screen = format!(
        "\n{} {} — {}\n  contract:  soar:plugin@{}\n",
        d.name, shown.version, shown.summary, shown.wit
    );
    let Some(prev) = previous else {
        screen.push_str("It will be able to reach:\n");
        for l in reach_lines(d) {
            screen.push_str(&format!("  {l}\n"));
        }
        out.print(&screen);
        return false;
    };
    if prev.sha256 == shown.digest {
        screen.push_str("  already installed with this digest; nothing to update\n");
        out.print(&screen);
        return true;
    }
    screen.push_str(&format!(
        "  update:    {} sha256:{} -> {} sha256:{}\n",
        clip(&prev.description.version, consent::VERSION_MAX),
        &prev.sha256[..12],
        shown.version,
        &shown.digest[..12]
    ));
    let (changed, lines) = reach_diff(&prev.description, d);
    screen.push_str(&format!(
        "What it may reach {}:\n",
        if changed { "CHANGES" } else { "(unchanged)" }
    ));
    for l in lines {
        screen.push_str(&format!("{l}\n"));
    }
    out.print(&screen);
    false
}

/// Print the warnings last, right above the question, so nothing the
/// plugin printed can scroll them away; then ask.
async fn warn_and_confirm(
    runtime: &Runtime,
    catalog: &Catalog,
    d: &Description,
    shown: &Shown,
    previous: Option<&Previous>,
    opts: &InstallOptions,
) -> anyhow::Result<()> {
    let others = consent::other_providers(runtime, catalog, &shown.digest).await;
    let warnings = consent::warnings(d, &others);
    let out = &opts.out;
    match catalog.entries().iter().find(|e| e.name == d.name) {
        Some(_) if shown.bundled_name => out.print(&format!(
            "WARNING: this replaces the bundled plugin '{}' for every project on this machine (`soar plugin remove {}` brings the bundled one back); projects that pinned the bundled one refuse it until `soar plugin pin {}` is run in them.\n",
            d.name, d.name, d.name
        )),
        Some(e) if previous.is_none() => out.print(&format!(
            "This replaces the installed '{}' (sha256:{}).\n",
            d.name,
            &e.digest[..12]
        )),
        _ => {}
    }
    for w in &warnings {
        out.print(&format!("{w}\n"));
    }
    let question = if warnings.is_empty() {
        format!("Install {} {}?", d.name, shown.version)
    } else {
        format!(
            "Install {} {} despite the {} WARNING(S) above?",
            d.name,
            shown.version,
            warnings.len()
        )
    };
    confirm(
        out,
        opts.yes,
        &question,
        "installing a plugin needs confirmation of what it may reach",
    )
}

/// Record the installed digest in the project's `soar.lock`, when the
/// install was made for a project.
fn pin_in_project(opts: &InstallOptions, d: &Description, digest: &str) -> anyhow::Result<()> {
    let Some(config) = &opts.project else {
        return Ok(());
    };
    let path = lock::path_for(config);
    let pin = lock::Pin {
        name: d.name.clone(),
        version: d.version.clone(),
        source: opts.source.clone(),
        sha256: digest.to_string(),
    };
    if lock::LockFile::update(&path, |l| l.set(pin))? {
        opts.out
            .print(&format!("Pinned {} in {}.\n", d.name, path.display()));
    }
    Ok(())
}

/// Stage `bytes` and `record`, then switch `<plugins>/<name>` to them with
/// one rename. Returns the plugin's directory.
fn commit(
    plugins_dir: &Path,
    name: &str,
    bytes: &[u8],
    record: &InstallRecord,
) -> anyhow::Result<PathBuf> {
    if !valid_name(name) {
        anyhow::bail!("invalid plugin name {name:?}");
    }
    std::fs::create_dir_all(plugins_dir.join(STORE_DIR))
        .with_context(|| format!("creating {}", plugins_dir.display()))?;
    clean_stale(plugins_dir);
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(plugins_dir)
        .with_context(|| format!("creating a staging directory in {}", plugins_dir.display()))?;
    let write = |file: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut f = std::fs::File::create(staging.path().join(file))?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(())
    };
    write("plugin.wasm", bytes)?;
    write(
        RECORD_FILE,
        serde_json::to_string_pretty(record)?.as_bytes(),
    )?;
    let id = staging
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(STAGING_PREFIX))
        .unwrap_or("x")
        .to_string();
    let stored_rel = Path::new(STORE_DIR).join(format!("{name}-{id}"));
    let stored = plugins_dir.join(&stored_rel);
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &stored) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).context("moving the staged plugin into the store");
    }
    let target = plugins_dir.join(name);
    let old = std::fs::symlink_metadata(&target).ok();
    let old_store = match &old {
        Some(m) if m.file_type().is_symlink() => std::fs::read_link(&target)
            .ok()
            .map(|t| plugins_dir.join(t)),
        Some(_) => {
            // A plain directory (installed by hand): move it aside first.
            let aside = plugins_dir.join(STORE_DIR).join(format!("{name}-old-{id}"));
            std::fs::rename(&target, &aside).context("moving the previous version aside")?;
            Some(aside)
        }
        None => None,
    };
    let link_tmp = plugins_dir.join(format!(".link-{name}-{id}"));
    let switched = (|| -> std::io::Result<()> {
        #[cfg(unix)]
        std::os::unix::fs::symlink(&stored_rel, &link_tmp)?;
        #[cfg(not(unix))]
        return Err(std::io::Error::other("plugin install needs a unix system"));
        #[cfg(unix)]
        std::fs::rename(&link_tmp, &target)
    })();
    if let Err(e) = switched {
        let _ = std::fs::remove_file(&link_tmp);
        let _ = std::fs::remove_dir_all(&stored);
        return Err(e).context("switching to the new version");
    }
    if let Some(old) = old_store
        && old != stored
    {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(target)
}

/// Remove leftovers of installs that were killed (older than an hour, so a
/// concurrent install is left alone).
fn clean_stale(plugins_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(plugins_dir) else {
        return;
    };
    let old = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600))
    };
    let mut live = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        if (n.starts_with(STAGING_PREFIX) || n.starts_with(".link-")) && old(&p) {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        } else if let Ok(t) = std::fs::read_link(&p) {
            live.push(plugins_dir.join(t));
        }
    }
    if let Ok(rd) = std::fs::read_dir(plugins_dir.join(STORE_DIR)) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if !live.contains(&p) && old(&p) {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}

/// Remove an installed plugin. Returns what to tell the user.
pub fn remove(plugins_dir: &Path, name: &str) -> anyhow::Result<String> {
    if !valid_name(name) {
        anyhow::bail!("{name:?} is not a plugin name");
    }
    let target = plugins_dir.join(name);
    let bundled = Catalog::is_bundled(name);
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(_) if bundled => anyhow::bail!(
            "'{name}' is bundled into soar and cannot be removed (only installed plugins can)"
        ),
        Err(_) => anyhow::bail!(
            "no installed plugin named '{name}' (in {}); `soar plugin list` shows what is installed",
            plugins_dir.display()
        ),
    };
    if meta.file_type().is_symlink() {
        let stored = std::fs::read_link(&target)
            .ok()
            .map(|t| plugins_dir.join(t));
        std::fs::remove_file(&target).with_context(|| format!("removing {}", target.display()))?;
        if let Some(s) = stored {
            let _ = std::fs::remove_dir_all(s);
        }
    } else {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("removing {}", target.display()))?;
    }
    Ok(if bundled {
        format!("Removed the installed '{name}'; the bundled '{name}' is used again.")
    } else {
        format!("Removed plugin '{name}'.")
    })
}

/// Re-fetch `name` from the source recorded at install (or in the
/// project's lock), show the change of capabilities, and install it.
pub async fn update(
    runtime: &Runtime,
    catalog: &Catalog,
    plugins_dir: &Path,
    name: &str,
    mut opts: InstallOptions,
) -> anyhow::Result<Installed> {
    let record = InstallRecord::read(&plugins_dir.join(name));
    let pinned_source = opts.project.as_ref().and_then(|c| {
        lock::LockFile::read(&lock::path_for(c))
            .ok()
            .and_then(|l| l.get(name).map(|p| p.source.clone()))
    });
    let source = record
        .as_ref()
        .map(|r| r.source.clone())
        .or(pinned_source)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "'{name}' has no recorded source (it is bundled, or was not installed by `soar plugin install`); install it with `soar plugin install <URL>`"
            )
        })?;
    let entry = catalog.get(name)?;
    let current = runtime
        .load_digested(&entry.name, &entry.bytes, entry.digest.clone())
        .await
        .with_context(|| format!("loading the installed '{name}'"))?;
    let previous = Previous {
        description: current.description().clone(),
        sha256: entry.digest.clone(),
    };
    opts.out
        .message(|| format!("Updating {name} from {source}"));
    // It already replaces the bundled plugin (it could not otherwise be
    // installed under that name): updating it keeps doing so.
    opts.override_bundled |= matches!(entry.source, Source::Installed { .. });
    opts.source = source;
    let installed = install(runtime, catalog, plugins_dir, &opts, Some(&previous)).await?;
    if installed.name != name {
        anyhow::bail!(
            "{} now describes itself as '{}', not '{name}'",
            opts.source,
            installed.name
        );
    }
    if installed.unchanged
        && let Some(config) = &opts.project
    {
        let path = lock::path_for(config);
        let pin = lock::Pin {
            name: name.to_string(),
            version: installed.version.clone(),
            source: opts.source.clone(),
            sha256: installed.sha256.clone(),
        };
        if lock::LockFile::update(&path, |l| l.set(pin))? {
            opts.out
                .print(&format!("Pinned {name} in {}.\n", path.display()));
        }
    }
    Ok(installed)
}
