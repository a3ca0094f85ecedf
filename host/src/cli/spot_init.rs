//! `soar init --provider aws-spot`: the zero-config skeleton of a Portable
//! Spot Deployer project (`.spot/config.yaml` and an example `deployment/`),
//! with no soar.toml (see `config::spot`). Existing files are never
//! overwritten; `.gitignore` is only appended to.

use std::path::Path;

/// `.spot/config.yaml`: every setting the aws-spot plugin accepts, the
/// optional ones commented out. It must pass the plugin's checks as written.
const CONFIG_YAML: &str = r#"# .spot/config.yaml: where, and how many, spot instances run this project.
# Read by soar's aws-spot provider: `soar plan`, `soar deploy`, `soar status`
# and `soar destroy` work here without a soar.toml (environment "default").
# AWS credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# (/ AWS_SESSION_TOKEN) or AWS_PROFILE. Never put them in this file.

# Regions to run in; the instances are split evenly between them. A region
# can pin its own count, instance types or AMI:
#   - { name: eu-west-1, count: 2, instance_types: [t3.small] }
regions:
  - us-east-1

# Instance types to try, in order: when spot capacity runs out for one, the
# next is tried, then the other regions.
instance_types:
  - t3.micro
  - t3a.micro

# Total number of instances across all regions (1-1000).
count: 1

# Highest spot price in USD per hour (default: the on-demand price).
# max_price: "0.02"

# AMI for every region (default: the newest Canonical Ubuntu LTS).
# ami: ami-0123456789abcdef0

# SSH access: paste your OpenSSH PUBLIC key (imported as a key pair), or
# name an existing key pair. With neither, instances have no SSH key.
# public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... you@laptop
# key_name: my-key-pair

# TCP ports opened to ingress_cidr (22 is always open).
ports:
  - 8080
# service_port: 8080
# ingress_cidr: 203.0.113.0/24   # default 0.0.0.0/0

# Login user of the AMI, and how long to wait for instances to run.
# user: ubuntu
# wait_timeout: 600              # seconds
"#;

const SETUP_SH: &str = r#"#!/usr/bin/env bash
# deployment/setup.sh: runs once on every instance at first boot, as root,
# in /opt/deployment, where deployment/ is installed (scripts/ and configs/
# next to this file, secrets/ with mode 0600). The units in services/ are
# installed, enabled and started after this script.
set -euo pipefail

# Install what your application needs, for example:
# apt-get update && apt-get install -y --no-install-recommends nginx

# The example service (services/app.service) serves this page on port 8080.
install -d /opt/app
install -m 0644 configs/index.html /opt/app/index.html
"#;

const APP_SERVICE: &str = r#"# deployment/services/app.service: installed into /etc/systemd/system,
# then enabled and started after setup.sh has run.
[Unit]
Description=Example application deployed by soar
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /opt/app
Restart=always
DynamicUser=yes

[Install]
WantedBy=multi-user.target
"#;

const INDEX_HTML: &str = r#"<!doctype html>
<title>Deployed by soar</title>
<p>Hello from a spot instance. Edit deployment/configs/index.html.</p>
"#;

/// Lines `.gitignore` must have so secrets stay out of git.
const GITIGNORE: &[&str] = &["deployment/secrets/*", "!deployment/secrets/.gitkeep"];

/// The skeleton: (path, contents, executable).
const FILES: &[(&str, &str, bool)] = &[
    (".spot/config.yaml", CONFIG_YAML, false),
    ("deployment/setup.sh", SETUP_SH, true),
    ("deployment/services/app.service", APP_SERVICE, false),
    ("deployment/configs/index.html", INDEX_HTML, false),
    ("deployment/secrets/.gitkeep", "", false),
];

/// Write the skeleton into `dir`; refused (nothing written) when any of its
/// files exists.
pub fn write(dir: &Path, out: &crate::report::Reporter) -> anyhow::Result<i32> {
    let existing: Vec<&str> = FILES
        .iter()
        .map(|(p, _, _)| *p)
        .filter(|p| dir.join(p).symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() {
        anyhow::bail!(
            "{} already exist(s) in {}; soar init never overwrites files: remove them to start over, or edit them",
            existing.join(", "),
            dir.display()
        );
    }
    for (rel, text, exec) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // create_new: a file appearing meanwhile is still not overwritten.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        if *exec {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let gitignore = dir.join(".gitignore");
    let current = match std::fs::read_to_string(&gitignore) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => anyhow::bail!("reading {}: {e}", gitignore.display()),
    };
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .copied()
        .filter(|line| !current.lines().any(|l| l.trim() == *line))
        .collect();
    if !missing.is_empty() {
        let mut add = String::new();
        if !current.is_empty() && !current.ends_with('\n') {
            add.push('\n');
        }
        add.push_str(
            "# soar: secrets are installed on the instances (mode 0600), never committed\n",
        );
        for line in missing {
            add.push_str(line);
            add.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&gitignore)?;
        std::io::Write::write_all(&mut f, add.as_bytes())?;
    }
    for (rel, _, _) in FILES {
        out.message(|| format!("Wrote {rel}"));
    }
    let name = crate::config::suggest_name(
        &dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into()),
    );
    out.message(|| {
        format!(
            "Zero-config aws-spot project '{name}' (no soar.toml). Next: edit .spot/config.yaml and deployment/, \
             export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), then `soar plan`."
        )
    });
    if dir.join(crate::config::FILE_NAME).is_file() {
        // Not dropped by --quiet: it says the skeleton is not in use yet.
        out.print(&format!(
            "Note: {} exists here and wins over .spot/: give it an environment with provider = \"aws-spot\" and [artifact] kind = \"script\", path = \".\" to use this skeleton.\n",
            crate::config::FILE_NAME
        ));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_skeleton_and_never_overwrites() {
        let (out, said) = crate::report::Reporter::buffered(Default::default());
        let out = &out;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(".gitignore"), "target/").unwrap();
        assert_eq!(write(&dir, out).unwrap(), 0);
        for (rel, text, _) in FILES {
            assert_eq!(std::fs::read_to_string(dir.join(rel)).unwrap(), *text);
        }
        let ignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(ignore.starts_with("target/\n# soar:"), "{ignore}");
        assert!(
            said.stdout().contains("Wrote .spot/config.yaml\n"),
            "{}",
            said.stdout()
        );
        assert!(ignore.contains("\ndeployment/secrets/*\n!deployment/secrets/.gitkeep\n"));
        // Zero-config: it is a project now.
        let p = crate::config::spot::synthesize(&dir, &["aws-spot"])
            .unwrap()
            .unwrap();
        assert_eq!(p.app.name, "shop");

        std::fs::write(dir.join("deployment/setup.sh"), "mine").unwrap();
        std::fs::remove_file(dir.join(".spot/config.yaml")).unwrap();
        let err = write(&dir, out).unwrap_err().to_string();
        assert!(err.contains("deployment/setup.sh"), "{err}");
        assert!(!dir.join(".spot/config.yaml").exists(), "nothing written");
        assert_eq!(
            std::fs::read_to_string(dir.join("deployment/setup.sh")).unwrap(),
            "mine"
        );
        // .gitignore is not appended twice.
        std::fs::remove_dir_all(dir.join("deployment")).unwrap();
        write(&dir, out).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            ignore
        );
    }
}
