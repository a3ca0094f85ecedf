//! Where a release runs: the hosts a provider reports, turned into rollout
//! targets (this machine through the local transport; remote hosts over SSH).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::Workspace;
use crate::artifact::Kind;
use crate::broker::ssh::client_config::{ClientConfig, parse_jumps};
use crate::broker::ssh::{
    AuthConfig, Given, HostSpec, KnownHosts, NamedBy, Router, SshBroker, SshSettings,
};
use crate::config::{ClientConfigChoice, Environment};
use crate::contract::{Context, EndpointKind};
use crate::rollout::Manager;
use crate::rollout::docker::Docker;
use crate::rollout::service::ServiceSpec;
use crate::rollout::ssh::SshTransport;
use crate::rollout::systemd::Systemd;
use crate::runtime::Plugin;
use crate::session::Session;
use crate::state::{ResourceRecord, StateStore, now_ms};

/// The state record that remembers a service's allocated port.
pub const SERVICE_KIND: &str = "service";

/// One host a release goes to.
#[derive(Clone)]
pub enum Target {
    /// This machine, supervised by `soar __supervise`.
    Local(ServiceSpec),
    /// A remote host over SSH, run by systemd.
    Ssh(Box<SshTarget>),
}

/// A remote host and how the service runs there.
#[derive(Clone)]
pub struct SshTarget {
    /// The address people reach the service at (as the provider or config
    /// named it, before any `address_map`).
    pub public: String,
    /// The service as it runs on this host: unit name, root, command, port.
    pub spec: ServiceSpec,
    /// The SSH connection commands and uploads go through.
    pub transport: SshTransport,
    /// The host's service manager: systemd, or the Docker engine for a
    /// `docker` artifact. (The field keeps its name from when it could only
    /// be systemd; every caller goes through [`Manager`].)
    pub systemd: Manager,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Target::Local(a), Target::Local(b)) => a == b,
            (Target::Ssh(a), Target::Ssh(b)) => a.transport.host == b.transport.host,
            _ => false,
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local(s) => f.debug_tuple("Local").field(s).finish(),
            Target::Ssh(s) => f
                .debug_tuple("Ssh")
                .field(&s.transport.host.describe())
                .field(&s.spec)
                .finish(),
        }
    }
}

impl Target {
    /// The service definition on that host.
    pub fn spec(&self) -> &ServiceSpec {
        match self {
            Target::Local(s) => s,
            Target::Ssh(s) => &s.spec,
        }
    }

    /// Where the service answers, for people.
    pub fn url(&self) -> String {
        match self {
            Target::Local(s) => format!("http://127.0.0.1:{}", s.port),
            Target::Ssh(s) => format!("http://{}:{}", s.public, s.spec.port),
        }
    }

    /// For per-host reports: `local` or `ssh user@host:port`.
    pub fn host(&self) -> String {
        match self {
            Target::Local(_) => "local".into(),
            Target::Ssh(s) => s.transport.host.describe(),
        }
    }
}

/// `<project>/.soar/local/<env>/<service>`: everything the local target
/// writes lives under the project's state directory.
pub fn local_root(ws: &Workspace, env: &Environment) -> PathBuf {
    ws.state_dir()
        .join("local")
        .join(&env.name)
        .join(&env.deploy.service)
}

/// The service's port if it is settled: configured, or allocated by an
/// earlier deploy. Planning uses this and never allocates (plans are free of
/// side effects and deterministic).
pub fn known_port(store: &StateStore, env: &Environment) -> anyhow::Result<Option<u16>> {
    if let Some(p) = env.deploy.port {
        return Ok(Some(p));
    }
    Ok(store
        .resources(&env.name)?
        .into_iter()
        .find(|r| r.kind == SERVICE_KIND && r.name == env.deploy.service)
        .and_then(|r| r.attributes.get("port").and_then(|p| p.as_u64()))
        .and_then(|p| u16::try_from(p).ok()))
}

/// The service's port: configured, or allocated once (at the first deploy)
/// and remembered in state.
pub fn service_port(store: &StateStore, env: &Environment) -> anyhow::Result<u16> {
    if let Some(p) = known_port(store, env)? {
        return Ok(p);
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    store.upsert_resource(&ResourceRecord {
        env: env.name.clone(),
        provider: env.provider.clone(),
        kind: SERVICE_KIND.into(),
        name: env.deploy.service.clone(),
        id: None,
        attributes: json!({ "port": port }),
        updated_at: now_ms(),
    })?;
    Ok(port)
}

/// The SSH broker's settings for `env`; fails when the SSH client config
/// it names cannot be read.
pub fn ssh_settings(ws: &Workspace, env: &Environment) -> anyhow::Result<SshSettings> {
    let c = &env.ssh;
    let defaults = SshSettings::default();
    Ok(SshSettings {
        known_hosts: KnownHosts::standard(
            c.known_hosts
                .clone()
                .unwrap_or_else(|| ws.state_dir().join("known_hosts")),
        ),
        auth: AuthConfig {
            identity_file: c.identity_file.clone(),
            use_agent: true,
        },
        connect_timeout: c.connect_timeout.unwrap_or(defaults.connect_timeout),
        command_timeout: defaults.command_timeout,
        named_hosts: c
            .hosts
            .iter()
            .map(|(h, _)| h.clone())
            .chain(c.address_map.keys().cloned())
            .collect(),
        section: format!("[env.{}.ssh]", env.name),
        router: router(env)?,
    })
}

/// The SSH client config and bastion of `env` (see `broker::ssh::route`).
fn router(env: &Environment) -> anyhow::Result<Router> {
    let client = match &env.ssh.client_config {
        ClientConfigChoice::UserDefault => ClientConfig::user_default(),
        ClientConfigChoice::File(path) => ClientConfig::load(path).map(Some),
        ClientConfigChoice::Off => Ok(None),
    };
    let bastion = env.ssh.bastion.as_deref().map(parse_jumps).transpose();
    let fail = |e: String| anyhow::anyhow!("environment '{}': {e}", env.name);
    Ok(Router {
        client: client.map_err(fail)?.map(Arc::new),
        bastion: bastion.map_err(fail)?.unwrap_or_default(),
    })
}

/// Configure the session's SSH broker for `env` and let the plugin reach
/// the hosts the config lists.
pub fn configure_ssh(ws: &Workspace, env: &Environment, broker: &SshBroker) -> anyhow::Result<()> {
    broker.configure(ssh_settings(ws, env)?);
    for (address, port) in &env.ssh.hosts {
        // The config's own hosts are always admitted (one whose route
        // cannot be resolved fails when the rollout reaches it).
        if let Ok(spec) = host_spec(broker, env, address, *port, None, false) {
            let _ = broker.admit(
                address,
                port.or(env.ssh.port).unwrap_or(22),
                spec,
                NamedBy::Config,
            );
        }
    }
    Ok(())
}

/// How to connect to `address` (provider or config naming, with the port
/// either gave): soar.toml, then the SSH client config.
fn host_spec(
    broker: &SshBroker,
    env: &Environment,
    address: &str,
    port: Option<u16>,
    user: Option<&str>,
    accept_new: bool,
) -> anyhow::Result<HostSpec> {
    let port = port.or(env.ssh.port);
    let given = Given {
        mapped: env.ssh.mapped(address, port.unwrap_or(22)),
        port,
        user: env.ssh.user.clone(),
        provider_user: user.map(str::to_string),
    };
    let route = broker
        .route(address, &given)
        .map_err(|e| anyhow::anyhow!("environment '{}': {e}", env.name))?;
    Ok(HostSpec {
        address: route.address,
        port: route.port,
        user: route.user,
        accept_new,
        sudo: env.ssh.use_sudo,
        // Set by `SshBroker::admit` for hosts only a provider named.
        public_only: false,
        reach: route.reach,
    })
}

/// A remote target for `address:port`.
#[allow(
    clippy::too_many_arguments,
    reason = "each argument is one independent fact about the host; a struct would only rename them"
)]
fn ssh_target(
    ws: &Workspace,
    session: &Session,
    env: &Environment,
    address: &str,
    port: Option<u16>,
    user: Option<&str>,
    accept_new: bool,
    command: &str,
    service_port: u16,
    by: NamedBy,
) -> anyhow::Result<Target> {
    let spec = host_spec(&session.ssh, env, address, port, user, accept_new)?;
    let host = session
        .ssh
        .admit(address, port.or(env.ssh.port).unwrap_or(22), spec, by)
        .map_err(|e| anyhow::anyhow!("environment '{}': {e}", env.name))?;
    let prefix = env.ssh.prefix_for(&host.address, host.port);
    let transport = SshTransport::new(session.ssh.clone(), host);
    let artifact = &ws.project.artifact;
    let systemd = if artifact.kind == Kind::Docker {
        Manager::Docker(Docker::new(transport.clone(), artifact.docker.clone()))
    } else {
        Manager::Systemd(Systemd {
            transport: transport.clone(),
            systemctl: env
                .ssh
                .systemctl
                .clone()
                .unwrap_or_else(|| "systemctl".into())
                .replace("{prefix}", &prefix),
            prefix: prefix.clone(),
            user: match env.ssh.service_user.as_deref() {
                None => Some(env.deploy.service.clone()),
                Some("") => None,
                Some(u) => Some(u.to_string()),
            },
        })
    };
    Ok(Target::Ssh(Box::new(SshTarget {
        public: address.to_string(),
        spec: ServiceSpec {
            name: env.deploy.service.clone(),
            root: format!("{prefix}/opt/{}", env.deploy.service),
            command: command.to_string(),
            port: service_port,
        },
        transport,
        systemd,
    })))
}

/// A `docker` artifact is rolled out by the host onto SSH hosts only, so a
/// provider suits it when it has SSH hosts: it declares the `ssh`
/// capability (it creates hosts, e.g. droplets) or the config lists
/// `[env.<name>.ssh] hosts`. Its `describe().artifacts` is not consulted:
/// those are the contract's kinds, which have no docker (see
/// [`crate::artifact::Kind`]). Checked before the provider plans.
pub fn check_docker_provider(env: &Environment, plugin: &Plugin) -> anyhow::Result<()> {
    if plugin.description().capabilities.ssh || !env.ssh.hosts.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "environment '{}': kind = \"docker\" is rolled out onto SSH hosts, and provider '{}' has none \
         (it does not declare SSH, and [env.{}.ssh] lists no hosts): list the machines in [env.{}.ssh] hosts, \
         or use a provider that creates SSH hosts",
        env.name,
        env.provider,
        env.name,
        env.name
    )
}

/// A `docker` artifact does not run on this machine's local target (Soar's
/// supervisor runs processes, not images; list `127.0.0.1` as an SSH host
/// to run it here).
pub fn check_docker_targets(env: &Environment, targets: &[Target]) -> anyhow::Result<()> {
    if targets.iter().any(|t| matches!(t, Target::Local(_))) {
        anyhow::bail!(
            "environment '{}': provider '{}' reports this machine as its host, and kind = \"docker\" runs on SSH hosts only: \
             list them in [env.{}.ssh] hosts (this machine works too: \"127.0.0.1\")",
            env.name,
            env.provider,
            env.name
        );
    }
    Ok(())
}

/// The targets of `env`, from the provider's `status`.
pub async fn resolve(
    ws: &Workspace,
    env: &Environment,
    plugin: &Plugin,
    session: Arc<Session>,
    ctx: &Context,
    port: u16,
    command: &str,
) -> anyhow::Result<Vec<Target>> {
    resolve_fresh(ws, env, plugin, session, ctx, port, command, &[]).await
}

/// [`resolve`], trusting the new host keys of `fresh` addresses (hosts a
/// provider created in this very deploy). Hosts listed in
/// `[env.<name>.ssh] hosts` come after the provider's; when the config lists
/// hosts, a `local` endpoint (the `local` provider's) is not a target: the
/// listed machines replace this one.
#[allow(
    clippy::too_many_arguments,
    reason = "resolve's arguments plus the fresh hosts; callers pass them from one Prepared"
)]
pub async fn resolve_fresh(
    ws: &Workspace,
    env: &Environment,
    plugin: &Plugin,
    session: Arc<Session>,
    ctx: &Context,
    port: u16,
    command: &str,
    fresh: &[String],
) -> anyhow::Result<Vec<Target>> {
    let statuses = plugin.status(session.clone(), ctx).await?;
    let mut targets = Vec::new();
    let listed = !env.ssh.hosts.is_empty();
    // Only a provider that declares SSH hands its hosts to the rollout; one
    // that sets its hosts up itself (aws-spot, through cloud-init) reports
    // them for `status` alone.
    let rolls_out_over_ssh = plugin.description().capabilities.ssh;
    for status in statuses {
        for ep in status.endpoints {
            let t = match ep.kind {
                EndpointKind::Local if !listed => Target::Local(ServiceSpec {
                    name: env.deploy.service.clone(),
                    root: local_root(ws, env).to_string_lossy().into_owned(),
                    command: command.to_string(),
                    port,
                }),
                EndpointKind::Ssh if rolls_out_over_ssh => ssh_target(
                    ws,
                    &session,
                    env,
                    &ep.address,
                    ep.port,
                    ep.user.as_deref(),
                    fresh.contains(&ep.address),
                    command,
                    port,
                    NamedBy::Provider,
                )?,
                _ => continue,
            };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    for (address, p) in &env.ssh.hosts {
        let t = ssh_target(
            ws,
            &session,
            env,
            address,
            *p,
            None,
            false,
            command,
            port,
            NamedBy::Config,
        )?;
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    Ok(targets)
}
