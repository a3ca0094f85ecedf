//! systemd as the remote service manager: one unit per service.
//!
//! The unit lives at `<prefix>/etc/systemd/system/<service>.service` and
//! points into `<prefix>`-relative paths: with an empty prefix (production)
//! that is the real `/etc` and `/opt`; tests give every host its own prefix
//! and a `systemctl` that understands it (docker-systemctl-replacement's
//! `systemctl3.py --root=<prefix>`), so nothing touches the real system.
//!
//! ```text
//! [Service]
//! Restart=always
//! User=<service user>            (a dedicated system user by default)
//! EnvironmentFile=<root>/shared/env   (mode 0600, read by systemd as root)
//! WorkingDirectory=<root>/current
//! ExecStart=/bin/sh -c 'exec <command>'
//! ```

use std::time::Duration;

use super::service::{ServiceManager, ServiceSpec};
use super::ssh::SshTransport;
use super::transport::Transport;
use crate::shell::quote;

const TIMEOUT: Duration = Duration::from_secs(120);

/// systemd on a host reached over SSH.
#[derive(Clone)]
pub struct Systemd {
    /// Where `systemctl` runs and unit files are written.
    pub transport: SshTransport,
    /// The `systemctl` command line (may be a replacement for tests).
    pub systemctl: String,
    /// Prefix of every path on the host ("" in production).
    pub prefix: String,
    /// `User=` of the unit; `None` runs as the SSH user's manager default.
    pub user: Option<String>,
}

impl Systemd {
    fn unit_path(&self, spec: &ServiceSpec) -> String {
        format!("{}/etc/systemd/system/{}.service", self.prefix, spec.name)
    }

    /// `path` as the service manager sees it (inside the prefix).
    fn inside(&self, path: &str) -> String {
        path.strip_prefix(&self.prefix)
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path)
            .to_string()
    }

    /// The unit file's text.
    pub fn unit(&self, spec: &ServiceSpec) -> String {
        let root = self.inside(&spec.root);
        let mut unit = format!(
            "# Written by soar; changes are overwritten at the next deploy.\n\
             [Unit]\nDescription={name} (deployed by soar)\nAfter=network-online.target\n\n\
             [Service]\nType=simple\nRestart=always\nRestartSec=1\n",
            name = spec.name
        );
        if let Some(u) = &self.user {
            unit.push_str(&format!("User={u}\n"));
        }
        unit.push_str(&format!(
            "EnvironmentFile={root}/shared/env\nWorkingDirectory={root}/current\nExecStart=/bin/sh -c \"{}\"\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            systemd_escape(&format!("exec {}", spec.command))
        ));
        unit
    }

    async fn ctl(&self, args: &str) -> anyhow::Result<super::transport::ExecOutput> {
        self.transport
            .exec(&format!("{} {args}", self.systemctl), TIMEOUT)
            .await
    }
}

/// Escape for a double-quoted systemd ExecStart word: `$` and `%` reach the
/// shell literally, so `$PORT` is expanded by `sh` from the environment.
fn systemd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$")
}

impl ServiceManager for Systemd {
    async fn restart(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let name = quote(&spec.name)?;
        // An empty command means "restart what is installed" (rollback).
        if !spec.command.is_empty() {
            if let Some(u) = &self.user {
                let u = quote(u)?;
                self.transport
                    .exec(
                        &format!(
                            "id -u {u} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin {u}"
                        ),
                        TIMEOUT,
                    )
                    .await?
                    .check("creating the service user")?;
            }
            let unit = self.unit_path(spec);
            let dir = unit.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
            self.transport
                .exec(&format!("mkdir -p {}", quote(dir)?), TIMEOUT)
                .await?
                .check("creating the unit directory")?;
            self.transport
                .put_bytes(self.unit(spec).as_bytes(), &unit, 0o644)
                .await?;
            self.ctl("daemon-reload")
                .await?
                .check("systemctl daemon-reload")?;
            self.ctl(&format!("enable {name}"))
                .await?
                .check("systemctl enable")?;
        }
        self.ctl(&format!("restart {name}"))
            .await?
            .check("systemctl restart")?;
        Ok(())
    }

    async fn stop(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let unit = quote(&self.unit_path(spec))?;
        self.transport
            .exec(
                &format!(
                    "[ -f {unit} ] || exit 0; {} stop {}",
                    self.systemctl,
                    quote(&spec.name)?
                ),
                TIMEOUT,
            )
            .await?
            .check("systemctl stop")?;
        Ok(())
    }

    /// Running itself, or behind the `proxy` switch's proxy
    /// (`<service>-proxy`).
    async fn is_running(&self, spec: &ServiceSpec) -> anyhow::Result<bool> {
        let (name, proxy) = (quote(&spec.name)?, quote(&format!("{}-proxy", spec.name))?);
        Ok(self
            .ctl(&format!(
                "is-active {name} >/dev/null 2>&1 || {} is-active {proxy} >/dev/null 2>&1",
                self.systemctl
            ))
            .await?
            .status
            == 0)
    }

    async fn logs(&self, spec: &ServiceSpec, lines: usize) -> anyhow::Result<String> {
        let name = quote(&spec.name)?;
        let fallback = quote(&format!(
            "{}/var/log/journal/{}.service.log",
            self.prefix, spec.name
        ))?;
        let out = self
            .transport
            .exec(
                &format!(
                    "(journalctl -u {name} -n {lines} --no-pager -o cat 2>/dev/null | grep .) \
                     || tail -n {lines} {fallback} 2>/dev/null || true"
                ),
                TIMEOUT,
            )
            .await?;
        Ok(out.stdout)
    }

    fn beside(&self) -> Self {
        Self {
            user: None,
            ..self.clone()
        }
    }
}

impl Systemd {
    /// Stop, disable and delete the unit (for `soar destroy`).
    pub async fn uninstall(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        self.stop(spec).await?;
        let unit = quote(&self.unit_path(spec))?;
        self.transport
            .exec(
                &format!(
                    "[ -f {unit} ] || exit 0; {ctl} disable {n} >/dev/null 2>&1; rm -f {unit}; {ctl} daemon-reload",
                    ctl = self.systemctl,
                    n = quote(&spec.name)?
                ),
                TIMEOUT,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            systemd_escape(r#"exec python3 -c "print('%d' % 1)" $PORT"#),
            r#"exec python3 -c \"print('%%d' %% 1)\" $$PORT"#
        );
    }
}
