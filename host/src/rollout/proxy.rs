//! The reverse proxy of the `proxy` switch: one nginx per service and host,
//! listening on the service's port and passing every request to whichever
//! of the blue/green pair is live.
//!
//! Why nginx (Debian 1.22) and not Caddy (Debian 2.6), whose admin API
//! swaps upstreams atomically:
//!
//! - **Nothing to guard.** Caddy is reconfigured through an HTTP admin
//!   endpoint that every local process can reach (`localhost:2019` unless a
//!   socket path is set up); anything on the host could point the service's
//!   traffic elsewhere. nginx is reconfigured by a file and a signal, which
//!   only the user who deploys (and root) can write and send.
//! - **A graceful switch that can be observed.** `nginx -s reload` starts
//!   new workers on the new configuration and tells the old ones to stop
//!   accepting, finish their requests and exit; the listening socket stays
//!   open throughout, so no connection is refused. Soar watches the old
//!   workers: once none accepts, traffic has moved ([`Nginx::reload`]);
//!   once they have exited, the old release has no request left, so its
//!   drain ends early ([`Nginx::drain`]).
//! - **Validation before loading.** `nginx -t` checks the exact file
//!   that will be loaded; a configuration that fails it is never moved into
//!   place ([`Nginx::write_config`]).
//! - **Everywhere.** nginx is in every distribution's base repositories
//!   (`apt-get install nginx-light`), small, and what operators already run.
//!
//! Files, under `<service root>/proxy/`:
//! ```text
//! nginx.conf        written by Soar at each switch (validated first)
//! nginx.pid         the master process
//! error.log         nginx's own log
//! tmp/              request bodies and responses nginx buffers
//! live              "blue" or "green": the colour traffic goes to
//! current -> .      the working directory its service manager starts it in
//! shared/env        empty: the proxy needs no environment of the service
//! ```
//! The proxy runs as a service of its own (`<service>-proxy`) under the
//! host's service manager: a systemd unit over SSH, Soar's supervisor on
//! this machine. Loading a new upstream is a reload, never a restart.

use std::time::Duration;

use super::service::ServiceSpec;
use super::transport::Transport;
use crate::shell::quote;

/// How long a housekeeping command may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long nginx may take to hand accepting over to its new workers.
const TAKEOVER_POLLS: u32 = 400;

/// nginx on one host, for one service.
#[derive(Debug, Clone)]
pub struct Nginx {
    /// The nginx executable on the host (absolute).
    pub binary: String,
    /// `<service root>/proxy`.
    pub dir: String,
    /// The port it listens on: the service's own.
    pub listen: u16,
    /// The service's name (names the upstream and the proxy's service).
    pub service: String,
}

impl Nginx {
    /// nginx for `spec` on the host of `t`, or an error saying how to
    /// install it.
    pub async fn locate<T: Transport>(t: &T, spec: &ServiceSpec) -> anyhow::Result<Self> {
        let out = t
            .exec(
                "PATH=\"$PATH:/usr/sbin:/usr/local/sbin:/sbin\" command -v nginx",
                STEP_TIMEOUT,
            )
            .await?;
        let binary = out.stdout.trim().to_string();
        if out.status != 0 || !binary.starts_with('/') {
            anyhow::bail!(
                "switch = \"proxy\" needs nginx on {}, and it is not installed: install it once \
                 (Debian/Ubuntu: `apt-get install nginx-light`), or use switch = \"restart\"",
                t.describe()
            );
        }
        let dir = format!("{}/proxy", spec.root);
        // Plain paths only: they go unquoted into nginx's configuration.
        if !dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
        {
            anyhow::bail!(
                "the service root {} holds characters nginx's configuration cannot take; \
                 use a remote_prefix of letters, digits and /._-",
                spec.root
            );
        }
        if !binary
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
        {
            anyhow::bail!("nginx on {} is at an unusual path: {binary}", t.describe());
        }
        Ok(Self {
            binary,
            dir,
            listen: spec.port,
            service: spec.name.clone(),
        })
    }

    /// The proxy as a service of its own, for the host's service manager.
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: format!("{}-proxy", self.service),
            root: self.dir.clone(),
            command: self.command_line("nginx.conf", ""),
            port: self.listen,
        }
    }

    /// `nginx -e … -p … -c <config> <extra>`: every path absolute, so the
    /// same line works from the service manager and from Soar's shell.
    fn command_line(&self, config: &str, extra: &str) -> String {
        format!(
            "{} -e {d}/error.log -p {d}/ -c {d}/{config}{extra}",
            self.binary,
            d = self.dir
        )
    }

    /// The configuration that sends all traffic to `127.0.0.1:upstream`.
    pub fn config(&self, upstream: u16) -> String {
        let d = &self.dir;
        format!(
            "# Written by soar for {service}: the `proxy` switch rewrites it at each deploy.\n\
             daemon off;\n\
             worker_processes auto;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/tmp/body;\n\
             \x20   proxy_temp_path {d}/tmp/proxy;\n\
             \x20   upstream live {{ server 127.0.0.1:{upstream}; }}\n\
             \x20   server {{\n\
             \x20       listen {listen};\n\
             \x20       # Transparent: any body size, responses streamed as they come,\n\
             \x20       # the client's Host, and who the client was.\n\
             \x20       client_max_body_size 0;\n\
             \x20       proxy_buffering off;\n\
             \x20       proxy_request_buffering off;\n\
             \x20       proxy_set_header Host $http_host;\n\
             \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20       proxy_set_header X-Forwarded-Proto $scheme;\n\
             \x20       location / {{ proxy_pass http://live; }}\n\
             \x20   }}\n\
             }}\n",
            service = self.service,
            listen = self.listen,
        )
    }

    /// Write the configuration for `upstream`, check it with `nginx -t`,
    /// and only then move it into place. The proxy's files are created on
    /// first use.
    pub async fn write_config<T: Transport>(&self, t: &T, upstream: u16) -> anyhow::Result<()> {
        let d = quote(&self.dir)?;
        t.exec(
            &format!(
                "mkdir -p {d}/tmp {d}/shared && touch {d}/shared/env && ln -sfn . {d}/current"
            ),
            STEP_TIMEOUT,
        )
        .await?
        .check("preparing the proxy's directory")?;
        let next = format!("{}/nginx.conf.next", self.dir);
        t.put_bytes(self.config(upstream).as_bytes(), &next, 0o644)
            .await?;
        let test = t
            .exec(
                &format!("{} 2>&1", self.command_line("nginx.conf.next", " -t -q")),
                STEP_TIMEOUT,
            )
            .await?;
        if test.status != 0 {
            anyhow::bail!(
                "nginx -t rejected the proxy configuration {next} on {}, so it was not loaded: {}",
                t.describe(),
                test.stdout.trim()
            );
        }
        t.exec(
            &format!(
                "mv -f {} {}",
                quote(&next)?,
                quote(&format!("{}/nginx.conf", self.dir))?
            ),
            STEP_TIMEOUT,
        )
        .await?
        .check("moving the proxy configuration into place")?;
        Ok(())
    }

    /// Shell words that set `$m` to the running master's pid, or fail.
    fn master(&self) -> anyhow::Result<String> {
        Ok(format!(
            "m=$(cat {} 2>/dev/null) && [ -n \"$m\" ] && \
             tr '\\0' ' ' 2>/dev/null < /proc/$m/cmdline | grep -q 'nginx: master'",
            quote(&format!("{}/nginx.pid", self.dir))?
        ))
    }

    /// Whether this proxy's nginx master is running.
    pub async fn is_running<T: Transport>(&self, t: &T) -> anyhow::Result<bool> {
        Ok(t.exec(&self.master()?, STEP_TIMEOUT).await?.status == 0)
    }

    /// Load the written configuration into the running nginx gracefully
    /// and wait until its old workers no longer accept connections, so
    /// every new request goes to the new upstream. Returns the old
    /// workers' pids, for [`Nginx::drain`].
    pub async fn reload<T: Transport>(&self, t: &T) -> anyhow::Result<Vec<u32>> {
        let script = format!(
            "{master} || {{ echo 'the proxy is not running' >&2; exit 1; }}\n\
             old=$(for s in /proc/[0-9]*/status; do grep -q \"^PPid:[[:space:]]*$m\\$\" \"$s\" 2>/dev/null \
               && p=${{s#/proc/}} && echo \"${{p%/status}}\"; done)\n\
             {reload} >&2 || exit 1\n\
             i=0\n\
             while :; do\n\
               busy=\n\
               for p in $old; do\n\
                 c=$(tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline)\n\
                 case \"$c\" in ''|*'shutting down'*) ;; *) busy=$p ;; esac\n\
               done\n\
               [ -z \"$busy\" ] && break\n\
               i=$((i+1))\n\
               [ $i -lt {polls} ] || {{ echo \"nginx did not hand over to its new workers within 20 s (worker $busy still accepts)\" >&2; exit 1; }}\n\
               sleep 0.05\n\
             done\n\
             echo $old",
            master = self.master()?,
            reload = self.command_line("nginx.conf", " -s reload"),
            polls = TAKEOVER_POLLS,
        );
        let out = t.exec(&script, STEP_TIMEOUT).await?;
        if out.status != 0 {
            anyhow::bail!(
                "reloading the proxy on {} failed: {}{}",
                t.describe(),
                out.stderr.trim(),
                self.error_log_tail(t).await
            );
        }
        Ok(out
            .stdout
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Wait, at most `limit`, until the old workers have finished their
    /// requests and exited. Whether they did (false: some were still busy
    /// when the time ran out).
    pub async fn drain<T: Transport>(
        &self,
        t: &T,
        old: &[u32],
        limit: Duration,
    ) -> anyhow::Result<bool> {
        if old.is_empty() {
            return Ok(true);
        }
        let pids: Vec<String> = old.iter().map(u32::to_string).collect();
        let polls = (limit.as_millis() / 100).max(1);
        let script = format!(
            "i=0\n\
             while [ $i -lt {polls} ]; do\n\
               alive=\n\
               for p in {pids}; do\n\
                 case \"$(tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline)\" in nginx*) alive=1 ;; esac\n\
               done\n\
               [ -z \"$alive\" ] && exit 0\n\
               i=$((i+1)); sleep 0.1\n\
             done\n\
             exit 3",
            pids = pids.join(" ")
        );
        let out = t.exec(&script, limit + STEP_TIMEOUT).await?;
        Ok(out.status == 0)
    }

    /// The last lines of nginx's error log, as a suffix for a message.
    pub async fn error_log_tail<T: Transport>(&self, t: &T) -> String {
        let Ok(log) = quote(&format!("{}/error.log", self.dir)) else {
            return String::new();
        };
        match t
            .exec(&format!("tail -n 5 {log} 2>/dev/null"), STEP_TIMEOUT)
            .await
        {
            Ok(out) if !out.stdout.trim().is_empty() => {
                format!(
                    "\nlast lines of {}/error.log:\n{}",
                    self.dir,
                    out.stdout.trim_end()
                )
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_points_at_one_upstream_and_keeps_files_in_its_directory() {
        let n = Nginx {
            binary: "/usr/sbin/nginx".into(),
            dir: "/opt/web/proxy".into(),
            listen: 8080,
            service: "web".into(),
        };
        let c = n.config(8082);
        assert!(
            c.contains("upstream live { server 127.0.0.1:8082; }"),
            "{c}"
        );
        assert!(c.contains("listen 8080;"));
        assert!(c.contains("pid /opt/web/proxy/nginx.pid;"));
        assert_eq!(
            n.spec().command,
            "/usr/sbin/nginx -e /opt/web/proxy/error.log -p /opt/web/proxy/ -c /opt/web/proxy/nginx.conf"
        );
    }
}
