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

use soar_sdk::prelude::*;

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

/// An error diagnostic.
pub fn diag(message: String, field: Option<&str>, hint: Option<&str>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        message,
        field: field.map(str::to_string),
        hint: hint.map(str::to_string),
    }
}

/// A warning diagnostic.
pub fn warn_diag(message: String, field: Option<&str>, hint: Option<&str>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        ..diag(message, field, hint)
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
            vec![diag(
                "the aws-spot provider found no project files: it reads `.spot/` and `deployment/` from the artifact".into(),
                None,
                Some("set [artifact] kind = \"script\" and path = \".\" in soar.toml so the project directory is the artifact"),
            )],
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
        d.push(warn_diag(
            "both deployment/setup.sh and deployment/init.sh exist: only setup.sh runs".into(),
            Some("deployment/init.sh"),
            Some("call init.sh from setup.sh, or remove one"),
        ));
    }
    let deployment_files: Vec<&String> = files.under("deployment").collect();
    if main.is_none() && deployment_files.is_empty() && files.under("secrets").next().is_none() {
        d.push(diag(
            "nothing to deploy: no deployment/setup.sh (or init.sh) and no .spot/deployment.yaml".into(),
            Some("deployment/setup.sh"),
            Some("create deployment/setup.sh with the commands that set up an instance (run as root by cloud-init), or write .spot/deployment.yaml; `soar init --provider aws-spot` makes both"),
        ));
        return (None, d);
    }
    if main.is_none() {
        d.push(warn_diag(
            "no deployment/setup.sh (or init.sh): files are installed but no script runs".into(),
            Some("deployment/setup.sh"),
            Some("add deployment/setup.sh to start your application"),
        ));
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
                d.push(warn_diag(
                    format!("{path} is not a systemd unit (services/NAME.service): not installed"),
                    Some(path),
                    Some("rename it to end in .service, or move it to deployment/configs/"),
                ));
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

fn parse_mode(v: &serde_json::Value) -> Option<u32> {
    let digits = match v {
        serde_json::Value::String(s) => s.trim().trim_start_matches("0o").to_string(),
        serde_json::Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(&digits, 8).ok()
}

fn manifest(files: &Files) -> (Option<Deployment>, Vec<Diagnostic>) {
    let mut d = Vec::new();
    let m = MANIFEST_PATH;
    let text = match files.read(m) {
        Ok(t) => t,
        Err(e) => {
            return (
                None,
                vec![diag(format!("cannot read {m}: {e}"), Some(m), None)],
            );
        }
    };
    let doc: serde_json::Value = match serde_yaml_ng::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                vec![diag(format!("{m} is not valid YAML: {e}"), Some(m), None)],
            );
        }
    };
    let Some(top) = doc.as_object() else {
        return (
            None,
            vec![diag(
                format!("{m} must be a mapping starting with `version: 1`"),
                Some(m),
                Some(
                    "version: 1\ndeployment:\n  packages: [nginx]\n  scripts: [\"bash setup.sh\"]",
                ),
            )],
        );
    };
    match top.get("version") {
        Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => {}
        Some(v) => d.push(diag(
            format!("{m}: unsupported version {v}; this soar reads version 1"),
            Some("version"),
            Some("version: 1"),
        )),
        None => d.push(diag(
            format!("{m} has no `version`"),
            Some("version"),
            Some("start the file with `version: 1`"),
        )),
    }
    // Keys may sit at the top or under `deployment:`.
    let mut body = top.clone();
    if let Some(serde_json::Value::Object(inner)) = top.get("deployment") {
        body.extend(inner.clone());
    }
    body.remove("deployment");
    for k in body.keys() {
        if !MANIFEST_KEYS.contains(&k.as_str()) {
            let hint = crate::settings::closest(k, MANIFEST_KEYS)
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("known keys: {}", MANIFEST_KEYS.join(", ")));
            d.push(diag(
                format!("{m}: unknown key `{k}`"),
                Some(&format!("deployment.{k}")),
                Some(&hint),
            ));
        }
    }
    let mut out = Deployment {
        mode: Mode::Manifest,
        packages: vec![],
        files: vec![],
        scripts: vec![],
        services: vec![],
        tarball: None,
    };
    let list = |key: &str, d: &mut Vec<Diagnostic>| -> Vec<serde_json::Value> {
        match body.get(key) {
            None | Some(serde_json::Value::Null) => vec![],
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(_) => {
                d.push(diag(
                    format!("{m}: `{key}` must be a list"),
                    Some(&format!("deployment.{key}")),
                    None,
                ));
                vec![]
            }
        }
    };

    for (i, p) in list("packages", &mut d).into_iter().enumerate() {
        match p.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.:=_~".contains(c)) =>
            {
                out.packages.push(s.to_string())
            }
            _ => d.push(diag(
                format!("{m}: packages[{i}] is not an apt package name"),
                Some(&format!("deployment.packages[{i}]")),
                Some("packages: [nginx, python3-venv]"),
            )),
        }
    }

    let mut file_items = list("files", &mut d);
    file_items.extend(list("uploads", &mut d));
    for (i, item) in file_items.into_iter().enumerate() {
        let field = format!("deployment.files[{i}]");
        let (source, dest, mode) = match &item {
            serde_json::Value::String(s) => (s.clone(), None, None),
            serde_json::Value::Object(o) => (
                o.get("source")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                o.get("dest")
                    .or(o.get("destination"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                o.get("mode").or(o.get("permissions")).cloned(),
            ),
            _ => (String::new(), None, None),
        };
        if source.is_empty() {
            d.push(diag(
                format!("{m}: files[{i}] has no `source`"),
                Some(&field),
                Some("- source: deployment/configs/app.conf\n  dest: /etc/app/app.conf\n  mode: \"0644\""),
            ));
            continue;
        }
        let mode = match &mode {
            None => None,
            Some(v) => match parse_mode(v) {
                Some(m) => Some(m),
                None => {
                    d.push(diag(
                        format!("{m}: files[{i}].mode {v} is not an octal file mode"),
                        Some(&format!("{field}.mode")),
                        Some("mode: \"0644\" (quote it so YAML keeps the leading zero)"),
                    ));
                    continue;
                }
            },
        };
        if let Some(dest) = &dest
            && !dest.starts_with('/')
        {
            d.push(diag(
                format!("{m}: files[{i}].dest `{dest}` is not an absolute path"),
                Some(&format!("{field}.dest")),
                Some("dest: /etc/myapp/config.yaml"),
            ));
            continue;
        }
        if let Some(src) = resolve(files, &source) {
            let secret = is_secret_path(&src);
            out.files.push(FileSpec {
                dest: dest.unwrap_or_else(|| default_dest(&src)),
                mode: if secret { 0o600 } else { mode.unwrap_or(0o644) },
                secret,
                source: src,
            });
        } else if let Some(dir) = is_dir(files, &source) {
            let dest_root = dest.unwrap_or_else(|| default_dest(&dir));
            for f in files.under(&dir) {
                let rel = &f[dir.len() + 1..];
                let secret = is_secret_path(f);
                out.files.push(FileSpec {
                    source: f.clone(),
                    dest: format!("{}/{rel}", dest_root.trim_end_matches('/')),
                    mode: if secret { 0o600 } else { mode.unwrap_or(0o644) },
                    secret,
                });
            }
        } else {
            d.push(diag(
                format!(
                    "{m}: files[{i}].source `{source}` is not a file or directory of the project"
                ),
                Some(&format!("{field}.source")),
                Some("paths are relative to the project root (the directory with .spot/)"),
            ));
        }
    }

    for (i, item) in list("scripts", &mut d).into_iter().enumerate() {
        let field = format!("deployment.scripts[{i}]");
        let (command, wd) = match &item {
            serde_json::Value::String(s) => (s.clone(), None),
            serde_json::Value::Object(o) => (
                o.get("command")
                    .or(o.get("run"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                o.get("working_dir")
                    .or(o.get("cwd"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            ),
            _ => (String::new(), None),
        };
        if command.trim().is_empty() {
            d.push(diag(
                format!("{m}: scripts[{i}] has no `command`"),
                Some(&field),
                Some("- command: ./install.sh\n  working_dir: /opt/myapp"),
            ));
            continue;
        }
        if let Some(w) = &wd
            && !w.starts_with('/')
        {
            d.push(diag(
                format!("{m}: scripts[{i}].working_dir `{w}` is not an absolute path"),
                Some(&format!("{field}.working_dir")),
                Some("working_dir: /opt/myapp"),
            ));
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
                let rest = command[command.find(first).unwrap_or(0) + first.len()..].to_string();
                format!("bash {}{rest}", crate::cloudinit::quote(&dest))
            }
            _ => command,
        };
        out.scripts.push(Script {
            command,
            working_dir: wd.unwrap_or_else(|| REMOTE_ROOT.into()),
        });
    }

    for (i, item) in list("services", &mut d).into_iter().enumerate() {
        let field = format!("deployment.services[{i}]");
        let (name, source) = match &item {
            serde_json::Value::String(s) => (None, Some(s.clone())),
            serde_json::Value::Object(o) => (
                o.get("name").and_then(|v| v.as_str()).map(str::to_string),
                o.get("source")
                    .or(o.get("file"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            ),
            _ => (None, None),
        };
        let found = source.as_deref().and_then(|s| resolve(files, s));
        match (found, name, source) {
            (Some(src), name, _) => {
                if !src.ends_with(".service") && name.is_none() {
                    d.push(diag(
                        format!("{m}: services[{i}] `{src}` is not a systemd unit file (NAME.service)"),
                        Some(&field),
                        Some("rename the file to end in .service"),
                    ));
                    continue;
                }
                let unit = name.unwrap_or_else(|| src.rsplit('/').next().unwrap_or(&src).to_string());
                let unit = if unit.contains('.') { unit } else { format!("{unit}.service") };
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
                let unit = if name.contains('.') { name } else { format!("{name}.service") };
                out.services.push(Service { name: unit, source: None });
            }
            (None, _, Some(s)) => d.push(diag(
                format!("{m}: services[{i}] `{s}` is not a file of the project"),
                Some(&field),
                Some("name a unit file such as deployment/services/api.service, or a unit name such as nginx"),
            )),
            _ => d.push(diag(
                format!("{m}: services[{i}] names no unit"),
                Some(&field),
                Some("- deployment/services/api.service"),
            )),
        }
    }

    if let Some(t) = body.get("tarball").filter(|v| !v.is_null())
        && let Some(t) = tarball(files, t, &mut d)
    {
        out.tarball = Some(t)
    }
    if out.files.is_empty()
        && out.scripts.is_empty()
        && out.packages.is_empty()
        && out.services.is_empty()
        && out.tarball.is_none()
        && !d.iter().any(|x| x.severity == Severity::Error)
    {
        d.push(diag(
            format!("{m} deploys nothing: it lists no packages, files, scripts, services or tarball"),
            Some("deployment"),
            Some("add `scripts: [\"bash setup.sh\"]`, or delete the manifest to use the deployment/ conventions"),
        ));
    }
    if d.iter().any(|x| x.severity == Severity::Error) {
        return (None, d);
    }
    (Some(out), d)
}

fn tarball(files: &Files, t: &serde_json::Value, d: &mut Vec<Diagnostic>) -> Option<Tarball> {
    let m = MANIFEST_PATH;
    let example = "tarball:\n  url: https://example.com/app.tar.gz\n  checksum: \"sha256:<64 hex characters>\"\n  extract_to: /opt/myapp";
    let Some(o) = t.as_object() else {
        d.push(diag(
            format!("{m}: `tarball` must be a mapping"),
            Some("deployment.tarball"),
            Some(example),
        ));
        return None;
    };
    let checksum = o
        .get("checksum")
        .or(o.get("sha256"))
        .and_then(|v| v.as_str());
    let sha = match checksum {
        Some(c) => {
            let hex = c
                .trim()
                .strip_prefix("sha256:")
                .unwrap_or(c.trim())
                .to_ascii_lowercase();
            if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                hex
            } else {
                d.push(diag(
                    format!(
                        "{m}: tarball checksum `{c}` is not `sha256:` followed by 64 hex characters"
                    ),
                    Some("deployment.tarball.checksum"),
                    Some("checksum: \"sha256:$(sha256sum app.tar.gz | cut -d' ' -f1)\""),
                ));
                return None;
            }
        }
        None => {
            d.push(diag(
                format!("{m}: the tarball has no checksum; instances refuse unverified downloads"),
                Some("deployment.tarball.checksum"),
                Some("checksum: \"sha256:<first column of sha256sum app.tar.gz>\""),
            ));
            return None;
        }
    };
    let extract_to = o
        .get("extract_to")
        .and_then(|v| v.as_str())
        .unwrap_or(REMOTE_ROOT)
        .to_string();
    if !extract_to.starts_with('/') {
        d.push(diag(
            format!("{m}: tarball extract_to `{extract_to}` is not an absolute path"),
            Some("deployment.tarball.extract_to"),
            Some("extract_to: /opt/myapp"),
        ));
        return None;
    }
    let url = o.get("url").and_then(|v| v.as_str());
    let path = o.get("path").or(o.get("source")).and_then(|v| v.as_str());
    let source = match (url, path) {
        (Some(u), None) => {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                d.push(diag(
                    format!("{m}: tarball url `{u}` is not an http(s) URL"),
                    Some("deployment.tarball.url"),
                    Some(example),
                ));
                return None;
            }
            TarballSource::Url(u.to_string())
        }
        (None, Some(p)) => {
            let Some(found) = resolve(files, p) else {
                d.push(diag(
                    format!("{m}: tarball path `{p}` is not a file of the project"),
                    Some("deployment.tarball.path"),
                    Some("paths are relative to the project root"),
                ));
                return None;
            };
            let actual = files.sha256(&found).unwrap_or_default();
            if actual != sha {
                d.push(diag(
                    format!(
                        "{m}: tarball {found} has sha256 {actual}, but the manifest's checksum is sha256:{sha}; refusing to deploy a tarball that does not match"
                    ),
                    Some("deployment.tarball.checksum"),
                    Some(&format!("if the new tarball is the one you mean, set checksum: \"sha256:{actual}\"")),
                ));
                return None;
            }
            TarballSource::Local(found)
        }
        _ => {
            d.push(diag(
                format!("{m}: the tarball needs exactly one of `url` and `path`"),
                Some("deployment.tarball"),
                Some(example),
            ));
            return None;
        }
    };
    Some(Tarball {
        source,
        sha256: sha,
        extract_to,
    })
}
