//! `soar host setup [-e ENV]`: the documented one-time step that makes an
//! environment's SSH hosts ready for the switch soar.toml chose, so the
//! first deploy does not discover a missing proxy halfway through.
//!
//! On every host, at once:
//! 1. the service root (`<prefix>/opt/<service>`) exists and the SSH user
//!    can write it (the releases, and the proxy's own files, live there);
//! 2. with `switch = "proxy"`: nginx is installed — when it is not, and
//!    the user is root or has passwordless sudo on a host with `apt-get`,
//!    it is installed (`apt-get install -y nginx-light`); otherwise the
//!    exact command to run there is printed and the host counts as not
//!    ready;
//! 3. Soar's proxy configuration skeleton (`<root>/proxy/nginx.conf`,
//!    pointing at the blue port) is written and checked with `nginx -t`
//!    before it is moved into place ([`Nginx::write_config`]); where one is
//!    already in place it is only checked, never replaced (a running proxy
//!    keeps its live upstream).
//!
//! Running it again changes nothing that is already right (idempotent).
//! The run is recorded in the audit trail (`soar history`) as
//! `host-setup`, with each host's outcome. Exit code 1 when any host is not
//! ready.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::args::EnvArg;
use crate::config::Switch;
use crate::engine::Workspace;
use crate::engine::releases::ssh_targets;
use crate::engine::targets::SshTarget;
use crate::engine::trail::{Trail, actor};
use crate::report::Reporter;
use crate::rollout::proxy::Nginx;
use crate::rollout::transport::Transport;
use crate::shell::quote;
use crate::state::Outcome;

/// A housekeeping step on a host.
const STEP: Duration = Duration::from_secs(60);
/// Installing a package (downloads included).
const INSTALL: Duration = Duration::from_secs(900);
/// The package that provides nginx on Debian and Ubuntu.
const NGINX_PACKAGE: &str = "nginx-light";

/// `soar host ...`.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Prepare an environment's SSH hosts once for the configured switch:
    /// nginx for `switch = "proxy"` (installed when the SSH user may, else
    /// the command to run is printed) and Soar's proxy configuration,
    /// checked with `nginx -t`. Safe to run again.
    Setup(HostSetupArgs),
}

/// `soar host setup`.
#[derive(Debug, Args)]
pub struct HostSetupArgs {
    #[command(flatten)]
    env: EnvArg,
}

/// Run `soar host ...`.
pub async fn run(config: Option<&Path>, cmd: HostCommand, out: &Reporter) -> anyhow::Result<i32> {
    let HostCommand::Setup(a) = cmd;
    let ws = Workspace::open(config, out.clone())?;
    let env = ws.environment(a.env.env.as_deref())?;
    let hosts = ssh_targets(&ws, env).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "environment '{}' has no SSH hosts: `soar host setup` prepares SSH hosts (the local target needs nginx on this machine: apt-get install {NGINX_PACKAGE})",
            env.name
        )
    })?;
    let store = ws.state()?;
    let trail = Trail {
        id: store.begin_deploy(&env.name, "host-setup", &actor())?,
        store: &store,
    };
    let switch = &env.deploy.switch;
    let runs = futures_util::future::join_all(hosts.iter().map(|t| setup(t, switch))).await;
    let mut failed = 0;
    let mut per_host = Vec::new();
    for (t, r) in hosts.iter().zip(&runs) {
        let host = t.transport.host.describe();
        match r {
            Ok(notes) => {
                for n in notes {
                    out.print(&format!(
                        "{}\n",
                        crate::terminal::line(&format!("{host}: {n}"))
                    ));
                }
                per_host.push(json!({ "host": host, "ready": true, "notes": notes }));
            }
            Err(e) => {
                failed += 1;
                out.print(&format!(
                    "{}\n",
                    crate::terminal::text(&format!("{host}: not ready: {e:#}"))
                ));
                per_host.push(json!({ "host": host, "ready": false, "error": format!("{e:#}") }));
            }
        }
    }
    trail.event(json!({ "host_setup": per_host }));
    let summary = format!("host setup on {} host(s), {failed} not ready", hosts.len());
    store
        .finish_deploy(
            trail.id,
            if failed == 0 {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            &summary,
        )
        .context("recording the host setup in the audit trail")?;
    out.note(|| summary);
    Ok(i32::from(failed > 0))
}

/// Prepare one host; what was found or done, one line each.
async fn setup(t: &SshTarget, switch: &Switch) -> anyhow::Result<Vec<String>> {
    let tr = &t.transport;
    let root = &t.spec.root;
    let mut notes = Vec::new();
    tr.exec(
        &format!("mkdir -p {r} && test -w {r}", r = quote(root)?),
        STEP,
    )
    .await?
    .check(&format!("making {root} writable for the SSH user"))?;
    notes.push(format!("service root {root} is writable"));
    let Switch::Proxy(settings) = switch else {
        notes.push("switch = \"restart\": nothing else to set up".into());
        return Ok(notes);
    };
    let found = tr
        .exec(
            "PATH=\"$PATH:/usr/sbin:/usr/local/sbin:/sbin\" command -v nginx",
            STEP,
        )
        .await?;
    if found.status == 0 && found.stdout.trim().starts_with('/') {
        notes.push(format!("nginx is installed ({})", found.stdout.trim()));
    } else {
        install_nginx(tr).await?;
        notes.push(format!("nginx installed ({NGINX_PACKAGE})"));
    }
    let nginx = Nginx::locate(tr, &t.spec).await?;
    if t.spec.port == 0 {
        anyhow::bail!("switch = \"proxy\" listens on the service's port: set `port` in [deploy]");
    }
    let blue = match settings.ports {
        Some([blue, _]) => blue,
        None => t.spec.port.checked_add(1).context(
            "the service port leaves no room for the blue and green ports: set `proxy = { ports = [...] }`",
        )?,
    };
    let conf = format!("{}/nginx.conf", nginx.dir);
    let present = tr.exec(&format!("test -f {}", quote(&conf)?), STEP).await?;
    if present.status == 0 {
        let test = tr
            .exec(
                &format!(
                    "{} -e {d}/error.log -p {d}/ -c {c} -t -q 2>&1",
                    nginx.binary,
                    d = nginx.dir,
                    c = conf
                ),
                STEP,
            )
            .await?;
        if test.status != 0 {
            anyhow::bail!(
                "the proxy configuration {conf} is in place but nginx -t rejects it: {}; \
                 remove it and run `soar host setup` again",
                test.stdout.trim()
            );
        }
        notes.push(format!(
            "proxy configuration {conf} already in place, nginx -t ok"
        ));
    } else {
        nginx.write_config(tr, blue).await?;
        notes.push(format!(
            "proxy configuration {conf} written (port {} -> {blue}), nginx -t ok",
            t.spec.port
        ));
    }
    Ok(notes)
}

/// Install nginx where the SSH user may (root, or passwordless sudo, on a
/// host with `apt-get`); otherwise fail with the exact command to run.
async fn install_nginx<T: Transport>(t: &T) -> anyhow::Result<()> {
    let probe = t
        .exec(
            "command -v apt-get >/dev/null 2>&1 || { echo no-apt; exit 0; }; \
             if [ \"$(id -u)\" = 0 ]; then echo root; \
             elif sudo -n true 2>/dev/null; then echo sudo; else echo none; fi",
            STEP,
        )
        .await?;
    let install = format!(
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {NGINX_PACKAGE}"
    );
    let line = match probe.stdout.trim() {
        "root" => install.clone(),
        "sudo" => format!("sudo -n {install}"),
        "no-apt" => anyhow::bail!(
            "nginx is not installed on {} and it has no apt-get: install nginx with the host's package manager, \
             then run `soar host setup` again",
            t.describe()
        ),
        _ => anyhow::bail!(
            "nginx is not installed on {} and the SSH user cannot install it (not root, no passwordless sudo); \
             run there: sudo apt-get install -y {NGINX_PACKAGE}",
            t.describe()
        ),
    };
    let out = t.exec(&format!("{line} 2>&1"), INSTALL).await?;
    if out.status != 0 {
        let tail: Vec<&str> = out.stdout.trim().lines().rev().take(5).collect();
        anyhow::bail!(
            "installing nginx on {} failed (exit {}): {}\nrun there: sudo apt-get install -y {NGINX_PACKAGE}",
            t.describe(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}
