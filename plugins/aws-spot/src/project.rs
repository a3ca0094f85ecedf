//! The deployment: what goes onto each instance, from the project directory
//! the host hands over as the artifact (the plugin cannot read files itself).
//!
//! Two modes:
//! - **manifest**: `.spot/deployment.yaml` (`version: 1`) lists packages,
//!   files, scripts, services and a tarball explicitly; it replaces the
//!   conventions entirely.
//! - **convention**: everything under `deployment/`: `setup.sh` (or `init.sh`)
//!   is the main script, `scripts/` and `configs/` are installed next to it,
//!   `services/*.service` become systemd units that are enabled and started,
//!   and `secrets/` (in `deployment/` or at the project root) is installed
//!   with mode 0600 and never shown.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use soar_sdk::diagnostic::did_you_mean;
use soar_sdk::prelude::*;
use soar_sdk::setting::{Item, Setting};

/// Where the deployment lives on the instance.
pub const REMOTE_ROOT: &str = "/opt/deployment";
/// The manifest.
pub const MANIFEST_PATH: &str = ".spot/deployment.yaml";
const MANIFEST_KEYS: &[&str] = &[
    "version",
    "deployment",
    "packages",
    "files",
    "uploads",
    "scripts",
    "services",
    "tarball",
];

/// The artifact's listing, with reads through the host.
pub struct Files {
    pub files: BTreeMap<String, (u64, String)>,
}

impl Files {
    pub fn from_ctx(ctx: &Context) -> Self {
        let files = ctx
            .artifact
            .as_ref()
            .map(|a| {
                a.files
                    .iter()
                    .map(|f| (f.path.clone(), (f.size, f.sha256.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Self { files }
    }

    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        soar_sdk::artifact::read_to_end(path).map_err(|e| crate::ec2::render(&e))
    }

    /// Files under `dir/` (recursive), sorted.
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.files.keys().filter(move |k| k.starts_with(&prefix))
    }

    pub fn sha256(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.1.as_str())
    }
}

/// One file installed on the instance.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Path in the artifact.
    pub source: String,
    /// Absolute path on the instance.
    pub dest: String,
    pub mode: u32,
    /// Under a `secrets/` directory: 0600, never shown.
    pub secret: bool,
}

/// One command run in order at boot.
#[derive(Debug, Clone)]
pub struct Script {
    pub command: String,
    pub working_dir: String,
}

/// A systemd unit enabled and started after the scripts.
#[derive(Debug, Clone)]
pub struct Service {
    /// Unit name, `api.service`.
    pub name: String,
    /// Unit file in the artifact, when it is installed from the project.
    pub source: Option<String>,
}

/// Where the tarball comes from.
#[derive(Debug, Clone)]
pub enum TarballSource {
    Url(String),
    /// A file of the artifact, sent inline in the user data.
    Local(String),
}

#[derive(Debug, Clone)]
pub struct Tarball {
    pub source: TarballSource,
    pub sha256: String,
    pub extract_to: String,
}

/// How the deployment was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Convention,
    Manifest,
}

/// What goes onto each instance.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub mode: Mode,
    pub packages: Vec<String>,
    pub files: Vec<FileSpec>,
    pub scripts: Vec<Script>,
    pub services: Vec<Service>,
    pub tarball: Option<Tarball>,
}

impl Deployment {
    /// One line for the plan: what was found, secrets only counted.
    pub fn summary(&self) -> String {
        let secrets = self.files.iter().filter(|f| f.secret).count();
        let plain = self.files.len() - secrets;
        let mut parts = vec![
            format!(
                "{} (from {})",
                match self.mode {
                    Mode::Convention => "conventions",
                    Mode::Manifest => "manifest",
                },
                match self.mode {
                    Mode::Convention => "deployment/",
                    Mode::Manifest => MANIFEST_PATH,
                }
            ),
            format!("{plain} file(s)"),
        ];
        if secrets > 0 {
            parts.push(format!(
                "{secrets} secret file(s), contents hidden, mode 0600"
            ));
        }
        parts.push(format!("{} package(s)", self.packages.len()));
        parts.push(format!("{} script(s)", self.scripts.len()));
        parts.push(format!(
            "{} service(s){}",
            self.services.len(),
            if self.services.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    self.services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
        if let Some(t) = &self.tarball {
            parts.push(match &t.source {
                TarballSource::Url(u) => format!("tarball {u} -> {}", t.extract_to),
                TarballSource::Local(p) => format!("tarball {p} -> {}", t.extract_to),
            });
        }
        format!("deployment: {}", parts.join(", "))
    }

    /// What the plan shows: paths and modes, never contents.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "mode": match self.mode { Mode::Convention => "convention", Mode::Manifest => "manifest" },
            "packages": self.packages,
            "files": self.files.iter().map(|f| {
                if f.secret {
                    json!({ "dest": f.dest, "mode": format!("{:04o}", f.mode), "secret": true })
                } else {
                    json!({ "source": f.source, "dest": f.dest, "mode": format!("{:04o}", f.mode) })
                }
            }).collect::<Vec<_>>(),
            "scripts": self.scripts.iter().map(|s| json!({ "command": s.command, "working_dir": s.working_dir })).collect::<Vec<_>>(),
            "services": self.services.iter().map(|s| json!({ "name": s.name, "unit_file": s.source })).collect::<Vec<_>>(),
            "tarball": self.tarball.as_ref().map(|t| json!({
                "source": match &t.source { TarballSource::Url(u) => u.clone(), TarballSource::Local(p) => p.clone() },
                "sha256": t.sha256,
                "extract_to": t.extract_to,
            })),
        })
    }
}

fn is_secret_path(path: &str) -> bool {
    path.starts_with("secrets/") || path.starts_with("deployment/secrets/")
}

/// Find the deployment in the artifact; diagnostics explain structure problems.
pub fn load(files: &Files) -> (Option<Deployment>, Vec<Diagnostic>) {
    if files.files.is_empty() {
        return (
            None,
            vec![
                Diagnostic::error(
                    "the aws-spot provider found no project files: it reads `.spot/` and `deployment/` from the artifact",
                )
                .hint("set [artifact] kind = \"script\" and path = \".\" in soar.toml so the project directory is the artifact"),
            ],
        );
    }
    if files.has(MANIFEST_PATH) {
        manifest(files)
    } else {
        conventions(files)
    }
}

fn conventions(files: &Files) -> (Option<Deployment>, Vec<Diagnostic>) {
    let mut d = Vec::new();
    let mut out = Deployment {
        mode: Mode::Convention,
        packages: vec![],
        files: vec![],
        scripts: vec![],
        services: vec![],
        tarball: None,
    };
    let main = ["deployment/setup.sh", "deployment/init.sh"]
        .into_iter()
        .find(|p| files.has(p));
    if files.has("deployment/setup.sh") && files.has("deployment/init.sh") {
        d.push(
            Diagnostic::warning(
                "both deployment/setup.sh and deployment/init.sh exist: only setup.sh runs",
            )
            .at("deployment/init.sh")
            .hint("call init.sh from setup.sh, or remove one"),
        );
    }
    let deployment_files: Vec<&String> = files.under("deployment").collect();
    if main.is_none() && deployment_files.is_empty() && files.under("secrets").next().is_none() {
        d.push(
            Diagnostic::error(
                "nothing to deploy: no deployment/setup.sh (or init.sh) and no .spot/deployment.yaml",
            )
            .at("deployment/setup.sh")
            .hint("create deployment/setup.sh with the commands that set up an instance (run as root by cloud-init), or write .spot/deployment.yaml; `soar init --provider aws-spot` makes both"),
        );
        return (None, d);
    }
    if main.is_none() {
        d.push(
            Diagnostic::warning(
                "no deployment/setup.sh (or init.sh): files are installed but no script runs",
            )
            .at("deployment/setup.sh")
            .hint("add deployment/setup.sh to start your application"),
        );
    }
    for path in deployment_files {
        let rel = path.trim_start_matches("deployment/");
        if let Some(unit) = rel.strip_prefix("services/") {
            if unit.ends_with(".service") && !unit.contains('/') {
                out.files.push(FileSpec {
                    source: path.clone(),
                    dest: format!("/etc/systemd/system/{unit}"),
                    mode: 0o644,
                    secret: false,
                });
                out.services.push(Service {
                    name: unit.to_string(),
                    source: Some(path.clone()),
                });
            } else {
                d.push(
                    Diagnostic::warning(format!(
                        "{path} is not a systemd unit (services/NAME.service): not installed"
                    ))
                    .at(path)
                    .hint("rename it to end in .service, or move it to deployment/configs/"),
                );
            }
            continue;
        }
        let secret = is_secret_path(path);
        let mode = if secret {
            0o600
        } else if rel.starts_with("scripts/") || rel.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        out.files.push(FileSpec {
            source: path.clone(),
            dest: format!("{REMOTE_ROOT}/{rel}"),
            mode,
            secret,
        });
    }
    for path in files.under("secrets") {
        out.files.push(FileSpec {
            source: path.clone(),
            dest: format!("{REMOTE_ROOT}/{path}"),
            mode: 0o600,
            secret: true,
        });
    }
    if let Some(main) = main {
        let name = main.trim_start_matches("deployment/");
        out.scripts.push(Script {
            command: format!("bash ./{name}"),
            working_dir: REMOTE_ROOT.into(),
        });
    }
    (Some(out), d)
}

/// Resolve a manifest path: relative to the project root, or to `deployment/`.
fn resolve(files: &Files, path: &str) -> Option<String> {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    if files.has(p) {
        return Some(p.to_string());
    }
    let under = format!("deployment/{p}");
    if files.has(&under) {
        return Some(under);
    }
    None
}

fn is_dir(files: &Files, path: &str) -> Option<String> {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    [p.to_string(), format!("deployment/{p}")]
        .into_iter()
        .find(|cand| files.under(cand).next().is_some())
}

/// Where a project file lands when the manifest only names it.
fn default_dest(source: &str) -> String {
    format!(
        "{REMOTE_ROOT}/{}",
        source.strip_prefix("deployment/").unwrap_or(source)
    )
}

fn parse_mode(v: &Value) -> Option<u32> {
    let digits = match v {
        Value::String(s) => s.trim().trim_start_matches("0o").to_string(),
        Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(&digits, 8).ok()
}

/// `.spot/deployment.yaml` as written, once the keys under `deployment:`
/// are hoisted to the top. Every field is a [`Setting`] of [`Item`]s, so
/// one malformed entry does not hide the problems in the others.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Manifest {
    /// Checked at the top level before the hoisting (see [`version`]).
    #[serde(rename = "version")]
    _version: IgnoredAny,
    packages: Setting<Vec<Item<String>>>,
    files: Setting<Vec<Item<FileEntry>>>,
    /// Another name for `files`, appended to it.
    uploads: Setting<Vec<Item<FileEntry>>>,
    scripts: Setting<Vec<Item<ScriptEntry>>>,
    services: Setting<Vec<Item<ServiceEntry>>>,
    tarball: Setting<TarballTable>,
    /// Every other key: reported as unknown, with a suggestion.
    #[serde(flatten)]
    unknown: serde_json::Map<String, Value>,
}

/// A `files` entry: a project path, or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Source(String),
    Table(FileTable),
}

/// `{source, dest, mode}`; `destination` and `permissions` are the names
/// other tools use.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileTable {
    source: Setting<String>,
    dest: Setting<String>,
    destination: Setting<String>,
    /// Kept as written for the message when it is not a mode.
    mode: Setting<Value>,
    permissions: Setting<Value>,
}

/// A `scripts` entry: a command line, or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScriptEntry {
    Command(String),
    Table(ScriptTable),
}

/// `{command, working_dir}`, also spelt `{run, cwd}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScriptTable {
    command: Setting<String>,
    run: Setting<String>,
    working_dir: Setting<String>,
    cwd: Setting<String>,
}

/// A `services` entry: a unit file of the project or a unit name, or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ServiceEntry {
    Source(String),
    Table(ServiceTable),
}

/// `{name, source}` (`file` for `source`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServiceTable {
    name: Setting<String>,
    source: Setting<String>,
    file: Setting<String>,
}

/// `tarball`: where from (`url` or `path`, also spelt `source`), its
/// checksum (`sha256` for `checksum`) and where it is unpacked.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TarballTable {
    url: Setting<String>,
    path: Setting<String>,
    source: Setting<String>,
    checksum: Setting<String>,
    sha256: Setting<String>,
    extract_to: Setting<String>,
}

fn manifest(files: &Files) -> (Option<Deployment>, Vec<Diagnostic>) {
    let m = MANIFEST_PATH;
    match files.read(m) {
        Ok(text) => manifest_from(&text, files),
        Err(e) => (
            None,
            vec![Diagnostic::error(format!("cannot read {m}: {e}")).at(m)],
        ),
    }
}

/// The field path of a manifest key: `deployment.<key>`, wherever in the
/// file the key was written.
fn manifest_field(key: &str) -> FieldPath {
    FieldPath::new("deployment").key(key)
}

/// Parse the manifest's text; diagnostics explain every problem found.
pub(crate) fn manifest_from(text: &[u8], files: &Files) -> (Option<Deployment>, Vec<Diagnostic>) {
    let m = MANIFEST_PATH;
    let doc: Value = match serde_yaml_ng::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            let d = Diagnostic::error(format!("{m} is not valid YAML: {e}")).at(m);
            return (None, vec![d]);
        }
    };
    let Value::Object(mut top) = doc else {
        let d = Diagnostic::error(format!("{m} must be a mapping starting with `version: 1`"))
            .at(m)
            .hint("version: 1\ndeployment:\n  packages: [nginx]\n  scripts: [\"bash setup.sh\"]");
        return (None, vec![d]);
    };
    let mut d = Vec::new();
    version(top.get("version"), &mut d);
    // Keys may sit at the top or under `deployment:`.
    if let Some(Value::Object(inner)) = top.remove("deployment") {
        top.extend(inner);
    }
    let body = Manifest::deserialize(Value::Object(top)).unwrap_or_default();
    for k in body.unknown.keys() {
        d.push(
            Diagnostic::error(format!("{m}: unknown key `{k}`"))
                .at(manifest_field(k))
                .hint(did_you_mean(k, MANIFEST_KEYS, "known keys")),
        );
    }
    let mut out = Deployment {
        mode: Mode::Manifest,
        packages: packages(list("packages", body.packages, &mut d), &mut d),
        files: vec![],
        scripts: vec![],
        services: vec![],
        tarball: None,
    };
    let mut file_items = list("files", body.files, &mut d);
    file_items.extend(list("uploads", body.uploads, &mut d));
    manifest_files(files, file_items, &mut out, &mut d);
    manifest_scripts(
        files,
        list("scripts", body.scripts, &mut d),
        &mut out,
        &mut d,
    );
    manifest_services(
        files,
        list("services", body.services, &mut d),
        &mut out,
        &mut d,
    );
    match body.tarball {
        Setting::Absent => {}
        Setting::Valid(t) => out.tarball = tarball(files, t, &mut d),
        Setting::Invalid(_) => d.push(
            Diagnostic::error(format!("{m}: `tarball` must be a mapping"))
                .at(manifest_field("tarball"))
                .hint(TARBALL_EXAMPLE),
        ),
    }
    let has_error = |d: &[Diagnostic]| d.iter().any(Diagnostic::is_error);
    if out.files.is_empty()
        && out.scripts.is_empty()
        && out.packages.is_empty()
        && out.services.is_empty()
        && out.tarball.is_none()
        && !has_error(&d)
    {
        d.push(
            Diagnostic::error(format!(
                "{m} deploys nothing: it lists no packages, files, scripts, services or tarball"
            ))
            .at("deployment")
            .hint("add `scripts: [\"bash setup.sh\"]`, or delete the manifest to use the deployment/ conventions"),
        );
    }
    if has_error(&d) {
        return (None, d);
    }
    (Some(out), d)
}

/// The top-level `version`, which must be 1 (`1` or `"1"`).
fn version(written: Option<&Value>, d: &mut Vec<Diagnostic>) {
    let m = MANIFEST_PATH;
    match written {
        Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => {}
        Some(v) => d.push(
            Diagnostic::error(format!(
                "{m}: unsupported version {v}; this soar reads version 1"
            ))
            .at("version")
            .hint("version: 1"),
        ),
        None => d.push(
            Diagnostic::error(format!("{m} has no `version`"))
                .at("version")
                .hint("start the file with `version: 1`"),
        ),
    }
}

/// The items of a list key; another shape is reported and reads as empty.
fn list<T>(key: &str, written: Setting<Vec<Item<T>>>, d: &mut Vec<Diagnostic>) -> Vec<Item<T>> {
    match written {
        Setting::Absent => Vec::new(),
        Setting::Valid(items) => items,
        Setting::Invalid(_) => {
            d.push(
                Diagnostic::error(format!("{MANIFEST_PATH}: `{key}` must be a list"))
                    .at(manifest_field(key)),
            );
            Vec::new()
        }
    }
}

/// `packages`: apt package names (with an optional `=version`).
fn packages(items: Vec<Item<String>>, d: &mut Vec<Diagnostic>) -> Vec<String> {
    let apt_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.:=_~".contains(c))
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.valid() {
            Some(s) if apt_name(&s) => out.push(s),
            _ => d.push(
                Diagnostic::error(format!(
                    "{MANIFEST_PATH}: packages[{i}] is not an apt package name"
                ))
                .at(manifest_field("packages").index(i))
                .hint("packages: [nginx, python3-venv]"),
            ),
        }
    }
    out
}

/// `files` and `uploads`: project files and directories to install.
fn manifest_files(
    files: &Files,
    items: Vec<Item<FileEntry>>,
    out: &mut Deployment,
    d: &mut Vec<Diagnostic>,
) {
    let m = MANIFEST_PATH;
    for (i, item) in items.into_iter().enumerate() {
        let field = manifest_field("files").index(i);
        let (source, dest, mode) = match item {
            Item::Valid(FileEntry::Source(s)) => (s, None, Setting::Absent),
            Item::Valid(FileEntry::Table(t)) => (
                t.source.valid().unwrap_or_default(),
                t.dest.or(t.destination).valid(),
                t.mode.or(t.permissions),
            ),
            Item::Invalid(_) => (String::new(), None, Setting::Absent),
        };
        if source.is_empty() {
            d.push(
                Diagnostic::error(format!("{m}: files[{i}] has no `source`"))
                    .at(&field)
                    .hint("- source: deployment/configs/app.conf\n  dest: /etc/app/app.conf\n  mode: \"0644\""),
            );
            continue;
        }
        let mode = match mode.valid() {
            None => None,
            Some(v) => match parse_mode(&v) {
                Some(mode) => Some(mode),
                None => {
                    d.push(
                        Diagnostic::error(format!(
                            "{m}: files[{i}].mode {v} is not an octal file mode"
                        ))
                        .at(field.key("mode"))
                        .hint("mode: \"0644\" (quote it so YAML keeps the leading zero)"),
                    );
                    continue;
                }
            },
        };
        if let Some(dest) = &dest
            && !dest.starts_with('/')
        {
            d.push(
                Diagnostic::error(format!(
                    "{m}: files[{i}].dest `{dest}` is not an absolute path"
                ))
                .at(field.key("dest"))
                .hint("dest: /etc/myapp/config.yaml"),
            );
            continue;
        }
        if !install(files, &source, dest, mode, out) {
            d.push(
                Diagnostic::error(format!(
                    "{m}: files[{i}].source `{source}` is not a file or directory of the project"
                ))
                .at(field.key("source"))
                .hint("paths are relative to the project root (the directory with .spot/)"),
            );
        }
    }
}

/// Add the project file or directory `source` to the deployment, at
/// `dest` (default: under [`REMOTE_ROOT`]); false when there is no such
/// file or directory. Secrets get mode 0600 whatever the manifest says.
fn install(
    files: &Files,
    source: &str,
    dest: Option<String>,
    mode: Option<u32>,
    out: &mut Deployment,
) -> bool {
    let mode_of = |path: &str| {
        let secret = is_secret_path(path);
        (if secret { 0o600 } else { mode.unwrap_or(0o644) }, secret)
    };
    if let Some(src) = resolve(files, source) {
        let (mode, secret) = mode_of(&src);
        out.files.push(FileSpec {
            dest: dest.unwrap_or_else(|| default_dest(&src)),
            mode,
            secret,
            source: src,
        });
    } else if let Some(dir) = is_dir(files, source) {
        let dest_root = dest.unwrap_or_else(|| default_dest(&dir));
        for f in files.under(&dir) {
            let rel = &f[dir.len() + 1..];
            let (mode, secret) = mode_of(f);
            out.files.push(FileSpec {
                source: f.clone(),
                dest: format!("{}/{rel}", dest_root.trim_end_matches('/')),
                mode,
                secret,
            });
        }
    } else {
        return false;
    }
    true
}

/// `scripts`: commands run in order; one that starts with a project file
/// installs that file and runs it from there.
fn manifest_scripts(
    files: &Files,
    items: Vec<Item<ScriptEntry>>,
    out: &mut Deployment,
    d: &mut Vec<Diagnostic>,
) {
    let m = MANIFEST_PATH;
    for (i, item) in items.into_iter().enumerate() {
        let field = manifest_field("scripts").index(i);
        let (command, wd) = match item {
            Item::Valid(ScriptEntry::Command(s)) => (s, None),
            Item::Valid(ScriptEntry::Table(t)) => (
                t.command.or(t.run).valid().unwrap_or_default(),
                t.working_dir.or(t.cwd).valid(),
            ),
            Item::Invalid(_) => (String::new(), None),
        };
        if command.trim().is_empty() {
            d.push(
                Diagnostic::error(format!("{m}: scripts[{i}] has no `command`"))
                    .at(&field)
                    .hint("- command: ./install.sh\n  working_dir: /opt/myapp"),
            );
            continue;
        }
        if let Some(w) = &wd
            && !w.starts_with('/')
        {
            d.push(
                Diagnostic::error(format!(
                    "{m}: scripts[{i}].working_dir `{w}` is not an absolute path"
                ))
                .at(field.key("working_dir"))
                .hint("working_dir: /opt/myapp"),
            );
            continue;
        }
        // A script that is a project file is installed and run from there.
        let first = command.split_whitespace().next().unwrap_or_default();
        let command = match resolve(files, first) {
            Some(src) if !first.starts_with('/') => {
                let dest = default_dest(&src);
                if !out.files.iter().any(|f| f.source == src) {
                    out.files.push(FileSpec {
                        source: src.clone(),
                        dest: dest.clone(),
                        mode: 0o755,
                        secret: false,
                    });
                }
                let rest = &command[command.find(first).unwrap_or(0) + first.len()..];
                format!("bash {}{rest}", crate::cloudinit::quote(&dest))
            }
            _ => command,
        };
        out.scripts.push(Script {
            command,
            working_dir: wd.unwrap_or_else(|| REMOTE_ROOT.into()),
        });
    }
}

/// `services`: systemd units to enable and start, installed from the
/// project or already on the instance (from a package or the tarball).
fn manifest_services(
    files: &Files,
    items: Vec<Item<ServiceEntry>>,
    out: &mut Deployment,
    d: &mut Vec<Diagnostic>,
) {
    let m = MANIFEST_PATH;
    let unit_name = |name: String| {
        if name.contains('.') {
            name
        } else {
            format!("{name}.service")
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let field = manifest_field("services").index(i);
        let (name, source) = match item {
            Item::Valid(ServiceEntry::Source(s)) => (None, Some(s)),
            Item::Valid(ServiceEntry::Table(t)) => (t.name.valid(), t.source.or(t.file).valid()),
            Item::Invalid(_) => (None, None),
        };
        let found = source.as_deref().and_then(|s| resolve(files, s));
        match (found, name, source) {
            (Some(src), name, _) => {
                if !src.ends_with(".service") && name.is_none() {
                    d.push(
                        Diagnostic::error(format!(
                            "{m}: services[{i}] `{src}` is not a systemd unit file (NAME.service)"
                        ))
                        .at(&field)
                        .hint("rename the file to end in .service"),
                    );
                    continue;
                }
                let unit = unit_name(
                    name.unwrap_or_else(|| src.rsplit('/').next().unwrap_or(&src).to_string()),
                );
                out.files.push(FileSpec {
                    source: src.clone(),
                    dest: format!("/etc/systemd/system/{unit}"),
                    mode: 0o644,
                    secret: false,
                });
                out.services.push(Service {
                    name: unit,
                    source: Some(src),
                });
            }
            (None, Some(name), _) | (None, None, Some(name)) if !name.contains('/') => {
                // A unit installed by a package or the tarball.
                out.services.push(Service {
                    name: unit_name(name),
                    source: None,
                });
            }
            (None, _, Some(s)) => d.push(
                Diagnostic::error(format!(
                    "{m}: services[{i}] `{s}` is not a file of the project"
                ))
                .at(&field)
                .hint("name a unit file such as deployment/services/api.service, or a unit name such as nginx"),
            ),
            _ => d.push(
                Diagnostic::error(format!("{m}: services[{i}] names no unit"))
                    .at(&field)
                    .hint("- deployment/services/api.service"),
            ),
        }
    }
}

const TARBALL_EXAMPLE: &str = "tarball:\n  url: https://example.com/app.tar.gz\n  checksum: \"sha256:<64 hex characters>\"\n  extract_to: /opt/myapp";

/// `tarball`: downloaded (`url`) or sent from the project (`path`), always
/// checked against its sha256.
fn tarball(files: &Files, t: TarballTable, d: &mut Vec<Diagnostic>) -> Option<Tarball> {
    let m = MANIFEST_PATH;
    let field = manifest_field("tarball");
    let sha = tarball_checksum(t.checksum.or(t.sha256).valid(), d)?;
    let extract_to = t.extract_to.valid().unwrap_or_else(|| REMOTE_ROOT.into());
    if !extract_to.starts_with('/') {
        d.push(
            Diagnostic::error(format!(
                "{m}: tarball extract_to `{extract_to}` is not an absolute path"
            ))
            .at(field.key("extract_to"))
            .hint("extract_to: /opt/myapp"),
        );
        return None;
    }
    let source = match (t.url.valid(), t.path.or(t.source).valid()) {
        (Some(u), None) => {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                d.push(
                    Diagnostic::error(format!("{m}: tarball url `{u}` is not an http(s) URL"))
                        .at(field.key("url"))
                        .hint(TARBALL_EXAMPLE),
                );
                return None;
            }
            TarballSource::Url(u)
        }
        (None, Some(p)) => {
            let Some(found) = resolve(files, &p) else {
                d.push(
                    Diagnostic::error(format!(
                        "{m}: tarball path `{p}` is not a file of the project"
                    ))
                    .at(field.key("path"))
                    .hint("paths are relative to the project root"),
                );
                return None;
            };
            let actual = files.sha256(&found).unwrap_or_default();
            if actual != sha {
                d.push(
                    Diagnostic::error(format!(
                        "{m}: tarball {found} has sha256 {actual}, but the manifest's checksum is sha256:{sha}; refusing to deploy a tarball that does not match"
                    ))
                    .at(field.key("checksum"))
                    .hint(format!("if the new tarball is the one you mean, set checksum: \"sha256:{actual}\"")),
                );
                return None;
            }
            TarballSource::Local(found)
        }
        _ => {
            d.push(
                Diagnostic::error(format!(
                    "{m}: the tarball needs exactly one of `url` and `path`"
                ))
                .at(field)
                .hint(TARBALL_EXAMPLE),
            );
            return None;
        }
    };
    Some(Tarball {
        source,
        sha256: sha,
        extract_to,
    })
}

/// The tarball's sha256 in lower-case hex, from `sha256:<hex>` or `<hex>`.
fn tarball_checksum(written: Option<String>, d: &mut Vec<Diagnostic>) -> Option<String> {
    let m = MANIFEST_PATH;
    let field = manifest_field("tarball").key("checksum");
    let Some(c) = written else {
        d.push(
            Diagnostic::error(format!(
                "{m}: the tarball has no checksum; instances refuse unverified downloads"
            ))
            .at(field)
            .hint("checksum: \"sha256:<first column of sha256sum app.tar.gz>\""),
        );
        return None;
    };
    let hex = c
        .trim()
        .strip_prefix("sha256:")
        .unwrap_or(c.trim())
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(hex);
    }
    d.push(
        Diagnostic::error(format!(
            "{m}: tarball checksum `{c}` is not `sha256:` followed by 64 hex characters"
        ))
        .at(field)
        .hint("checksum: \"sha256:$(sha256sum app.tar.gz | cut -d' ' -f1)\""),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "abababababababababababababababababababababababababababababababab";

    fn project() -> Files {
        let files = [
            ("deployment/setup.sh", "11"),
            ("deployment/configs/app.conf", "22"),
            ("deployment/configs/nginx/site.conf", "33"),
            ("secrets/api.env", "44"),
            ("deployment/services/api.service", "55"),
            ("dist/app.tar.gz", SHA),
            ("deployment/units/web", "77"),
        ];
        Files {
            files: files
                .into_iter()
                .map(|(p, sha)| (p.to_string(), (10, sha.to_string())))
                .collect(),
        }
    }

    fn parse(yaml: &str) -> (Option<Deployment>, Vec<Diagnostic>) {
        manifest_from(yaml.as_bytes(), &project())
    }

    /// `field: message` of each diagnostic, without the file name prefix.
    fn problems(d: &[Diagnostic]) -> Vec<String> {
        d.iter()
            .map(|d| {
                let message = d.message.trim_start_matches(MANIFEST_PATH);
                format!("{}:{message}", d.field.as_deref().unwrap_or("-"))
            })
            .collect()
    }

    #[test]
    fn keys_under_deployment_are_read_and_typos_named() {
        let (dep, d) = parse(
            "version: 1\ndeployment:\n  packages: [nginx, 'bad pkg']\n  pakages: []\n  scripts: x\n",
        );
        assert!(dep.is_none());
        assert_eq!(
            problems(&d),
            [
                "deployment.pakages:: unknown key `pakages`",
                "deployment.packages[1]:: packages[1] is not an apt package name",
                "deployment.scripts:: `scripts` must be a list",
            ]
        );
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `packages`?"));
        let (_, d) = parse("packages: [nginx]\n");
        assert_eq!(problems(&d), ["version: has no `version`"]);
        let (_, d) = parse("version: 2\npackages: [nginx]\n");
        assert_eq!(
            problems(&d),
            ["version:: unsupported version 2; this soar reads version 1"]
        );
        let (_, d) = parse("- a\n");
        assert_eq!(
            problems(&d),
            [".spot/deployment.yaml: must be a mapping starting with `version: 1`"]
        );
        let (_, d) = parse("version: 1\n");
        assert_eq!(
            problems(&d),
            [
                "deployment: deploys nothing: it lists no packages, files, scripts, services or tarball"
            ]
        );
    }

    #[test]
    fn files_report_each_bad_entry_by_index() {
        let (dep, d) = parse(concat!(
            "version: 1\n",
            "files:\n",
            "  - source: configs/app.conf\n    destination: /etc/app.conf\n    permissions: '0640'\n",
            "  - source: configs/app.conf\n    mode: '0999'\n",
            "  - source: configs/app.conf\n    dest: rel/path\n",
            "  - dest: /x\n",
            "  - source: nope\n",
            "uploads:\n",
            "  - secrets\n",
        ));
        assert!(dep.is_none());
        assert_eq!(
            problems(&d),
            [
                "deployment.files[1].mode:: files[1].mode \"0999\" is not an octal file mode",
                "deployment.files[2].dest:: files[2].dest `rel/path` is not an absolute path",
                "deployment.files[3]:: files[3] has no `source`",
                "deployment.files[4].source:: files[4].source `nope` is not a file or directory of the project",
            ]
        );

        let (dep, d) = parse(
            "version: 1\nfiles:\n  - source: configs/app.conf\n    permissions: 600\n  - source: deployment/configs\n    dest: /etc/cfg/\nuploads: [secrets]\n",
        );
        assert!(d.is_empty(), "{:?}", problems(&d));
        let files: Vec<_> = dep
            .unwrap()
            .files
            .into_iter()
            .map(|f| (f.source, f.dest, f.mode, f.secret))
            .collect();
        assert_eq!(
            files,
            [
                (
                    "deployment/configs/app.conf".into(),
                    "/opt/deployment/configs/app.conf".into(),
                    0o600,
                    false
                ),
                (
                    "deployment/configs/app.conf".into(),
                    "/etc/cfg/app.conf".into(),
                    0o644,
                    false
                ),
                (
                    "deployment/configs/nginx/site.conf".into(),
                    "/etc/cfg/nginx/site.conf".into(),
                    0o644,
                    false
                ),
                (
                    "secrets/api.env".into(),
                    "/opt/deployment/secrets/api.env".into(),
                    0o600,
                    true
                ),
            ]
        );
    }

    #[test]
    fn scripts_and_services() {
        let (dep, d) = parse(concat!(
            "version: 1\n",
            "scripts:\n  - setup.sh --flag\n  - run: /usr/bin/env true\n    cwd: /srv\n",
            "services:\n  - deployment/services/api.service\n  - nginx\n",
            "  - name: web\n    file: deployment/units/web\n",
        ));
        assert!(d.is_empty(), "{:?}", problems(&d));
        let dep = dep.unwrap();
        let scripts: Vec<_> = dep
            .scripts
            .iter()
            .map(|s| (s.command.as_str(), s.working_dir.as_str()))
            .collect();
        assert_eq!(
            scripts,
            [
                ("bash /opt/deployment/setup.sh --flag", REMOTE_ROOT),
                ("/usr/bin/env true", "/srv"),
            ]
        );
        let services: Vec<_> = dep
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.source.as_deref()))
            .collect();
        assert_eq!(
            services,
            [
                ("api.service", Some("deployment/services/api.service")),
                ("nginx.service", None),
                ("web.service", Some("deployment/units/web")),
            ]
        );

        let (_, d) = parse(concat!(
            "version: 1\n",
            "scripts:\n  - command: ''\n  - command: echo\n    working_dir: rel\n",
            "services:\n  - deployment/units/web\n  - missing/thing\n  - {}\n",
        ));
        assert_eq!(
            problems(&d),
            [
                "deployment.scripts[0]:: scripts[0] has no `command`",
                "deployment.scripts[1].working_dir:: scripts[1].working_dir `rel` is not an absolute path",
                "deployment.services[0]:: services[0] `deployment/units/web` is not a systemd unit file (NAME.service)",
                "deployment.services[1]:: services[1] `missing/thing` is not a file of the project",
                "deployment.services[2]:: services[2] names no unit",
            ]
        );
    }

    #[test]
    fn tarballs_are_checked_against_their_checksum() {
        let (dep, d) = parse(&format!(
            "version: 1\ntarball:\n  path: dist/app.tar.gz\n  checksum: sha256:{}\n",
            SHA.to_uppercase()
        ));
        assert!(d.is_empty(), "{:?}", problems(&d));
        let t = dep.unwrap().tarball.unwrap();
        assert!(matches!(t.source, TarballSource::Local(ref p) if p == "dist/app.tar.gz"));
        assert_eq!(
            (t.sha256.as_str(), t.extract_to.as_str()),
            (SHA, REMOTE_ROOT)
        );

        let cases = [
            (
                "tarball: x",
                "deployment.tarball:: `tarball` must be a mapping",
            ),
            (
                "tarball: {url: 'https://x'}",
                "deployment.tarball.checksum:: the tarball has no checksum; instances refuse unverified downloads",
            ),
            (
                "tarball: {url: 'https://x', checksum: 'md5:1'}",
                "deployment.tarball.checksum:: tarball checksum `md5:1` is not `sha256:` followed by 64 hex characters",
            ),
            (
                "tarball: {url: 'ftp://x', sha256: CHECKSUM}",
                "deployment.tarball.url:: tarball url `ftp://x` is not an http(s) URL",
            ),
            (
                "tarball: {url: 'https://x', sha256: CHECKSUM, extract_to: rel}",
                "deployment.tarball.extract_to:: tarball extract_to `rel` is not an absolute path",
            ),
            (
                "tarball: {path: dist/none.tgz, sha256: CHECKSUM}",
                "deployment.tarball.path:: tarball path `dist/none.tgz` is not a file of the project",
            ),
            (
                "tarball: {url: 'https://x', source: dist/app.tar.gz, sha256: CHECKSUM}",
                "deployment.tarball:: the tarball needs exactly one of `url` and `path`",
            ),
        ];
        for (yaml, want) in cases {
            let yaml = format!("version: 1\n{}\n", yaml.replace("CHECKSUM", SHA));
            let (_, d) = parse(&yaml);
            assert_eq!(problems(&d), [want], "{yaml}");
        }
        let (_, d) = parse(&format!(
            "version: 1\ntarball: {{source: dist/app.tar.gz, checksum: {}}}\n",
            "cd".repeat(32)
        ));
        assert!(
            d[0].message
                .contains("refusing to deploy a tarball that does not match")
        );
        assert_eq!(d[0].field.as_deref(), Some("deployment.tarball.checksum"));
    }
}
