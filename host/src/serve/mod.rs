//! `soar serve`: Soar as a deployment service. Jobs submitted over an HTTP
//! API are queued in the server's store and run by the CLI's own deploy
//! path (see [`queue`]), so the CLI and the API are two front ends of one
//! engine.
//!
//! - [`config`]: `soar-server.toml` (listen address, projects by NAME).
//! - [`store`]: the server's SQLite store under `.soar-server/`.
//! - [`tokens`]: bearer tokens, stored hashed, with scopes.
//! - [`jobs`]: job and event rows; [`queue`]: the worker that runs them;
//!   [`retry`]: which failures it retries, and when; [`shared_queue`]: the
//!   same on PostgreSQL, one queue for several servers.
//! - [`projects`]: the projects by NAME, configured or uploaded as
//!   [`bundle`]s ([`uploads`]: their route); [`options`]: what a deploy
//!   request may add to a project's soar.toml.
//! - [`health`]: `GET /health`, with the reachability of SSH hosts and
//!   registries.
//! - [`monitoring`]: the health monitor of the projects' services;
//!   [`metrics`]: `/metrics`, with [`brokered`]: the jobs' brokered
//!   requests.
//! - [`tls`]: HTTPS when `[tls]` names a certificate and key.
//! - [`api`]: the routes; [`events`]: their Server-Sent Events;
//!   [`inspect`]: an environment's status, history, logs and rollback;
//!   [`compat`]: the deployer spec's `POST /deploy` on the same jobs.
//! - [`dashboard`]: the web page at `/` for people, on the same API.

pub mod api;
pub mod brokered;
pub mod bundle;
pub mod compat;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod health;
pub mod inspect;
pub mod jobs;
pub mod metrics;
pub mod monitoring;
pub mod options;
pub mod plans;
pub mod projects;
pub mod queue;
pub mod retry;
pub mod shared_queue;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod uploads;

use std::path::PathBuf;
use std::sync::Arc;

use std::future::IntoFuture as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::catalog::Catalog;
use config::ServerConfig;
use store::Db;
use tokens::Scope;

/// The variables that make a `soar` a client of a server (`--server`). The commands the server runs for its jobs and
/// inspections are local by definition, so they never inherit them: a server
/// started from a shell that exports them must not submit its own jobs back
/// to a server, nor hand its token to the child.
pub(crate) const CLIENT_VARS: [&str; 2] = ["SOAR_SERVER", "SOAR_SERVER_TOKEN"];

/// A `soar` the server runs in `root` for a job, a monitor or an
/// inspection: stdin closed, stdout and stderr piped, none of
/// [`CLIENT_VARS`]. With `ends_with_server`, the child gets SIGTERM when the
/// server dies (on Linux), so a job releases its lock and a restarted server
/// finds it `interrupted`, not running on unobserved.
fn soar_child(
    exe: &std::path::Path,
    root: &std::path::Path,
    ends_with_server: bool,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.current_dir(root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for var in CLIENT_VARS {
        cmd.env_remove(var);
    }
    #[cfg(target_os = "linux")]
    if ends_with_server {
        // SAFETY: prctl is async-signal-safe; nothing else runs in the
        // child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd
}

/// `soar serve`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    /// Address to listen on (overrides `listen` in the server config;
    /// port 0 picks a free one, printed on start).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// The server config (default: ./soar-server.toml).
    #[arg(long, value_name = "PATH", global = true)]
    server_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<ServeCommand>,
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// Create, list and revoke the server's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        /// What the token may do: read, deploy or admin.
        #[arg(long, value_enum)]
        scope: Scope,
        /// Limit the token to one project of the server config.
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Who uses it (the actor of its jobs); default `token-<id>`.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their values).
    List {
        /// One JSON object per token per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id, as `soar serve token list` shows it.
        id: String,
    },
}

/// Run `soar serve ...`; returns the exit code.
pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let config = ServerConfig::load(args.server_config.as_deref())?;
    match args.command {
        None => serve(config, args.listen).await,
        Some(ServeCommand::Token(cmd)) => token(&config, cmd),
    }
}

fn token(config: &ServerConfig, cmd: TokenCommand) -> anyhow::Result<i32> {
    let db = Db::open(&config.data_dir)?;
    match cmd {
        TokenCommand::Create {
            scope,
            project,
            name,
        } => {
            if let Some(p) = &project {
                let projects = projects::Projects::new(config.projects.clone(), &config.data_dir);
                anyhow::ensure!(
                    projects.get(p).is_some(),
                    "no project {p:?} in {} or its uploaded bundles (its projects: {})",
                    config.file.display(),
                    projects.names().join(", ")
                );
            }
            let (id, token) = tokens::create(&db, scope, project.as_deref(), name.as_deref())?;
            eprintln!(
                "Created token {id} (scope {scope}{}). It is shown only now; keep it secret:",
                project.map_or(String::new(), |p| format!(", project {p}"))
            );
            println!("{token}");
        }
        TokenCommand::List { json } => {
            let list = tokens::list(&db)?;
            if json {
                for t in &list {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else {
                println!(
                    "{:<14} {:<7} {:<16} {:<21} NAME",
                    "ID", "SCOPE", "PROJECT", "CREATED"
                );
                for t in &list {
                    println!(
                        "{:<14} {:<7} {:<16} {:<21} {}{}",
                        t.id,
                        t.scope,
                        t.project.as_deref().unwrap_or("*"),
                        t.created_at,
                        crate::terminal::line(&t.name),
                        if t.revoked_at.is_some() {
                            " (revoked)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(
                tokens::revoke(&db, &id)?,
                "no live token {id:?} (see `soar serve token list`)"
            );
            eprintln!("Revoked token {id}.");
        }
    }
    Ok(0)
}

async fn serve(config: ServerConfig, listen: Option<std::net::SocketAddr>) -> anyhow::Result<i32> {
    let mut db = Db::open(&config.data_dir)?;
    if let Some((url, lease)) = &config.shared_queue {
        let shared = shared_queue::SharedJobs::connect(url, *lease)?;
        println!(
            "soar serve: worker {} of the queue in {}",
            shared.worker(),
            shared.shown()
        );
        db = db.with_shared(shared);
    }
    let db = Arc::new(db);
    let interrupted = jobs::interrupt_running(&db)?;
    if interrupted > 0 {
        tracing::warn!(
            "{interrupted} job(s) were running when the server last stopped: now interrupted"
        );
    }
    let catalog = Catalog::discover(Catalog::default_dir())?;
    let providers: Vec<(String, String)> = catalog
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.source.to_string()))
        .collect();
    let exe = std::env::current_exe().context("finding the soar binary to run deploys with")?;
    // What an upload cut short by the last stop left behind.
    bundle::clear_leftovers(&config.data_dir.join(projects::BUNDLES_DIR));
    let projects = Arc::new(projects::Projects::new(
        config.projects.clone(),
        &config.data_dir,
    ));
    let queue = queue::Queue::new(db, exe.clone(), projects, &config);
    let monitoring = Arc::new(monitoring::Monitoring::default());
    let names = providers.iter().map(|(n, _)| n.clone()).collect();
    let monitors = monitoring::Runner::new(monitoring.clone(), queue.clone(), exe, names);
    let addr = listen.unwrap_or(config.listen);
    let deadline = config.shutdown_timeout;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let state = api::AppState {
        config: Arc::new(config),
        queue: queue.clone(),
        providers: Arc::new(providers),
        inspections: Arc::new(tokio::sync::Semaphore::new(inspect::MAX_INSPECTIONS)),
        probes: Arc::new(health::Probes::default()),
        monitoring,
        brokered: Arc::new(brokered::Brokered::default()),
    };
    tokio::spawn(queue.clone().run());
    tokio::spawn(monitors.run());
    let app = api::router(state);
    let (scheme, mut http) = match acceptor {
        None => (
            "http",
            tokio::spawn(axum::serve(listener, app).into_future()),
        ),
        Some(acceptor) => (
            "https",
            tokio::spawn(
                axum::serve(tls::TlsListener::new(listener, acceptor)?, app).into_future(),
            ),
        ),
    };
    println!("soar serve: listening on {scheme}://{local}");
    tokio::select! {
        r = &mut http => {
            r.context("the HTTP server task")?.context("serving HTTP")?;
            return Ok(0);
        }
        signal = shutdown_signal() => signal?,
    }
    // Stop taking jobs; keep answering (so clients can follow the running
    // ones) until they end or the deadline passes. A job still running then
    // ends with this process (its deploy gets SIGTERM) and is `interrupted`
    // at the next start.
    queue.stop();
    let running = queue.running_count();
    eprintln!(
        "soar serve: stopping; waiting up to {}s for {running} running job(s)",
        deadline.as_secs()
    );
    if tokio::time::timeout(deadline, queue.drained())
        .await
        .is_err()
    {
        let n = jobs::interrupt_running(&queue.db)?;
        eprintln!("soar serve: {n} job(s) still running at the deadline: interrupted");
        http.abort();
        return Ok(1);
    }
    http.abort();
    Ok(0)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
