//! cloud-init user data generated from the deployment: a `#cloud-config`
//! document with packages, files (inline), and one boot script that fetches
//! and verifies the tarball, runs the scripts in order and enables and starts
//! the services.

use base64::Engine as _;
use serde::Serialize;

use crate::project::{Deployment, Files, REMOTE_ROOT, TarballSource};

/// EC2's limit on raw (before base64) user data.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

#[derive(Serialize)]
struct CloudConfig {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    package_update: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    packages: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    write_files: Vec<WriteFile>,
    runcmd: Vec<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: String,
    permissions: String,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    content: String,
}

/// The user data and what made it big.
pub struct UserData {
    pub text: String,
    /// Bytes each project file contributes, largest first.
    pub contributors: Vec<(String, usize)>,
}

impl UserData {
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.text.as_bytes())
    }

    /// The 16 KB check, with what to move into a tarball.
    pub fn check_size(&self) -> Result<(), String> {
        let n = self.text.len();
        if n <= USER_DATA_LIMIT {
            return Ok(());
        }
        let mut need = n - USER_DATA_LIMIT;
        let mut movers = Vec::new();
        for (path, size) in &self.contributors {
            movers.push(format!("{path} ({})", kb(*size)));
            if *size >= need {
                break;
            }
            need -= size;
        }
        Err(format!(
            "the generated cloud-init user data is {} ({n} bytes), over EC2's limit of 16 KB ({USER_DATA_LIMIT} bytes) of raw user data. Files are sent inline; move the largest into a tarball: {}. Pack them (tar czf deployment.tar.gz ...), publish the tarball at an https URL and list it in .spot/deployment.yaml under `tarball:` with `url`, `checksum: \"sha256:...\"` and `extract_to`",
            kb(n),
            movers.join(", ")
        ))
    }
}

fn kb(n: usize) -> String {
    format!("{:.1} KB", n as f64 / 1024.0)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Single-quote for sh.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Build the user data; reads the project files through the host.
pub fn generate(dep: &Deployment, files: &Files) -> Result<UserData, String> {
    let mut write_files = Vec::new();
    let mut contributors = Vec::new();
    let mut dirs: Vec<String> = vec![REMOTE_ROOT.to_string()];
    for f in &dep.files {
        let bytes = files
            .read(&f.source)
            .map_err(|e| format!("reading {}: {e}", f.source))?;
        let (encoding, content) = match String::from_utf8(bytes) {
            Ok(text) if !f.secret => (None, text),
            Ok(text) => (
                Some("b64"),
                base64::engine::general_purpose::STANDARD.encode(text),
            ),
            Err(e) => (
                Some("b64"),
                base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            ),
        };
        contributors.push((f.source.clone(), content.len()));
        if let Some((dir, _)) = f.dest.rsplit_once('/')
            && !dir.is_empty()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_string());
        }
        write_files.push(WriteFile {
            path: f.dest.clone(),
            permissions: format!("{:04o}", f.mode),
            owner: "root:root".into(),
            encoding,
            content,
        });
    }

    let mut run = vec![
        "set -e".to_string(),
        "echo 'soar: deployment starting'".to_string(),
        format!("mkdir -p {}", quote(REMOTE_ROOT)),
    ];
    if dep.files.iter().any(|f| f.secret) {
        let secret_dirs: Vec<String> = dep
            .files
            .iter()
            .filter(|f| f.secret)
            .filter_map(|f| f.dest.rsplit_once('/').map(|(d, _)| d.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for d in secret_dirs {
            run.push(format!("chmod 0700 {}", quote(&d)));
        }
    }
    if let Some(t) = &dep.tarball {
        let local = format!("{REMOTE_ROOT}/.soar/deployment.tar.gz");
        run.push(format!(
            "mkdir -p {}",
            quote(&format!("{REMOTE_ROOT}/.soar"))
        ));
        match &t.source {
            TarballSource::Url(url) => {
                run.push("echo 'soar: downloading the deployment tarball'".to_string());
                run.push(format!(
                    "curl -fsSL --retry 5 --retry-delay 2 -o {l} {u} || wget -q -t 5 -O {l} {u}",
                    l = quote(&local),
                    u = quote(url)
                ));
            }
            TarballSource::Local(path) => {
                let bytes = files
                    .read(path)
                    .map_err(|e| format!("reading {path}: {e}"))?;
                let content = base64::engine::general_purpose::STANDARD.encode(bytes);
                contributors.push((path.clone(), content.len()));
                write_files.push(WriteFile {
                    path: local.clone(),
                    permissions: "0600".into(),
                    owner: "root:root".into(),
                    encoding: Some("b64"),
                    content,
                });
            }
        }
        run.push(format!(
            "echo {} | sha256sum -c - || {{ echo 'soar: the deployment tarball does not match its sha256 checksum; refusing to extract it' >&2; exit 1; }}",
            quote(&format!("{}  {local}", t.sha256))
        ));
        run.push(format!(
            "mkdir -p {d} && tar -xzf {l} -C {d}",
            d = quote(&t.extract_to),
            l = quote(&local)
        ));
    }
    for (i, s) in dep.scripts.iter().enumerate() {
        run.push(format!(
            "echo {}",
            quote(&format!(
                "soar: script {} of {}: {}",
                i + 1,
                dep.scripts.len(),
                s.command
            ))
        ));
        run.push(format!(
            "mkdir -p {wd} && (cd {wd} && {cmd})",
            wd = quote(&s.working_dir),
            cmd = s.command
        ));
    }
    if !dep.services.is_empty() {
        run.push("systemctl daemon-reload".into());
        for s in &dep.services {
            run.push(format!("systemctl enable --now {}", quote(&s.name)));
        }
    }
    run.push("mkdir -p /var/lib/soar && date -u +%FT%TZ > /var/lib/soar/deployed".into());
    run.push("echo 'soar: deployment finished'".into());

    let config = CloudConfig {
        package_update: !dep.packages.is_empty(),
        packages: dep.packages.clone(),
        write_files,
        runcmd: run,
    };
    let yaml = serde_yaml_ng::to_string(&config).map_err(|e| e.to_string())?;
    contributors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(UserData {
        text: format!(
            "#cloud-config\n# generated by soar (aws-spot); files under {REMOTE_ROOT}\n{yaml}"
        ),
        contributors,
    })
}
