//! `soar exec [-e ENV] [--host H] -- CMD`: a one-off command on every SSH
//! host of an environment (a migration, a console check), the way `kamal
//! app exec` or `cap invoke` run one.
//!
//! On each host the command runs in the current release's directory with
//! the service's environment (the `shared/env` the rollout wrote, the same
//! file systemd reads), through `sh -c`, over the broker's pooled SSH
//! connections (so `~/.ssh/config`, bastions and host-key checks apply as
//! for a deploy). For a `docker` artifact it runs inside the service's
//! container (`docker exec`), which has that environment already.
//!
//! Hosts run a bounded number at a time; every output line is prefixed
//! with its host (`web1 | ` for stdout, `web1 ! ` for stderr, both on
//! stdout in arrival order), control characters are neutralised and the
//! environment's secrets (those this shell can resolve) are redacted, as
//! everywhere else Soar prints. Each host's exit status is listed at the
//! end, and the run is recorded in the state's audit trail (`soar
//! history`) as an `exec` with each host's status.
//!
//! Exit code: 0 when every host exited 0; with one host, its own status;
//! with several, 1 when any failed.
//!
//! `--interactive` runs the command on one host on a pseudo-terminal wired
//! to this terminal (a console, a shell), like `ssh -t`; its output is the
//! program's own screen, shown as is.

mod tty;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::json;

use super::args::EnvArg;
use crate::broker::ssh::Stream;
use crate::credentials::{Secret, scrub_str, scrub_string};
use crate::engine::Workspace;
use crate::engine::releases::ssh_targets;
use crate::engine::targets::SshTarget;
use crate::engine::trail::{Trail, actor};
use crate::report::Reporter;
use crate::rollout::Manager;
use crate::rollout::docker::container;
use crate::shell::quote;
use crate::state::Outcome;

/// Who the journal names for the commands `soar exec` runs.
const ACTOR: &str = "soar exec";

/// `soar exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    env: EnvArg,
    /// Only this host (as soar.toml lists it or the provider reports it,
    /// with or without `:port`, or `user@address:port`); repeat for several.
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// How many hosts run the command at the same time.
    #[arg(short, long, value_name = "N", default_value_t = 10)]
    parallel: usize,
    /// Run on one host with a terminal (a console, a shell), like `ssh -t`.
    #[arg(short, long)]
    interactive: bool,
    /// How long the command may run on each host (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::config::parse_duration)]
    timeout: Duration,
    /// The command, after `--`; its words are joined with spaces and run by
    /// the host's `sh -c`, as `ssh host CMD` does (quote to keep `$VAR` for
    /// the host: `soar exec -- 'echo $PORT'`).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// One host's result.
struct HostRun {
    label: String,
    status: Result<i32, String>,
}

/// Run `soar exec`.
pub async fn run(config: Option<&Path>, a: ExecArgs, out: &Reporter) -> anyhow::Result<i32> {
    if a.parallel == 0 {
        anyhow::bail!("--parallel must be at least 1");
    }
    let ws = Workspace::open(config, out.clone())?;
    let env = ws.environment(a.env.env.as_deref())?;
    let all = ssh_targets(&ws, env).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "environment '{}' has no SSH hosts: `soar exec` runs commands on SSH hosts (for the local target, run the command in {}/current)",
            env.name,
            crate::engine::targets::local_root(&ws, env).display()
        )
    })?;
    let mut hosts = select(all, &a.hosts)?;
    // Under the proxy switch the command runs in the live colour's release
    // (or container), as `soar logs` reads the live colour's log.
    for t in &mut hosts {
        t.spec = crate::rollout::switch::serving(&t.transport, &t.spec, &env.deploy.switch).await?;
    }
    let labels = labels(&hosts);
    let command = a.command.join(" ");
    if a.interactive {
        return interactive(&ws, env, &hosts, &labels, &command).await;
    }
    let (secrets, unresolved) = secrets_here(env);
    if !unresolved.is_empty() {
        out.warn(&format!(
            "secrets {} are not set in this shell, so they cannot be redacted from the output",
            unresolved.join(", ")
        ));
    }

    // The audit trail keeps the command without any secret typed into it.
    let recorded = clip(&scrub_str(&command, &secrets));
    let store = ws.state()?;
    let trail = Trail {
        id: store.begin_deploy(&env.name, "exec", &actor())?,
        store: &store,
    };
    trail.event(json!({ "exec": { "command": recorded, "hosts": labels } }));

    let printer = Arc::new(Mutex::new(Printer {
        out: out.clone(),
        secrets,
    }));
    let runs: Vec<HostRun> = futures_util::stream::iter(hosts.iter().zip(&labels))
        .map(|(t, label)| run_on(t, label, &command, a.timeout, printer.clone()))
        .buffered(a.parallel)
        .collect()
        .await;

    let failed = runs.iter().filter(|r| r.status != Ok(0)).count();
    // Each host's status is the command's result: shown even with --quiet.
    for r in &runs {
        let line = match &r.status {
            Ok(code) => format!("{}: exit {code}", r.label),
            Err(e) => format!("{}: failed: {e}", r.label),
        };
        out.print(&format!("{}\n", crate::terminal::line(&line)));
    }
    let per_host: Vec<_> = runs
        .iter()
        .map(|r| match &r.status {
            Ok(code) => json!({ "host": r.label, "exit": code }),
            Err(e) => json!({ "host": r.label, "error": clip(e) }),
        })
        .collect();
    trail.event(json!({ "exec_result": per_host }));
    let summary = format!(
        "exec on {} host(s), {failed} failed: {recorded}",
        runs.len()
    );
    let outcome = if failed == 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    store
        .finish_deploy(trail.id, outcome, &summary)
        .context("recording the exec in the audit trail")?;
    Ok(match runs.as_slice() {
        [one] => match one.status {
            Ok(code) if (0..=255).contains(&code) => code,
            _ => 1,
        },
        _ => i32::from(failed > 0),
    })
}

/// `--interactive`: the one host's command on a pseudo-terminal; audited
/// like the others.
async fn interactive(
    ws: &Workspace,
    env: &crate::config::Environment,
    hosts: &[SshTarget],
    labels: &[String],
    command: &str,
) -> anyhow::Result<i32> {
    let [t] = hosts else {
        anyhow::bail!(
            "--interactive runs on one host; pick it with --host (this environment has: {})",
            labels.join(", ")
        );
    };
    let line = remote_command(t, command)?;
    let store = ws.state()?;
    let trail = Trail {
        id: store.begin_deploy(&env.name, "exec", &actor())?,
        store: &store,
    };
    let (secrets, _) = secrets_here(env);
    let recorded = clip(&scrub_str(command, &secrets));
    trail.event(json!({ "exec": { "command": recorded, "hosts": labels, "interactive": true } }));
    let pty = tty::pty();
    let r = {
        let _raw = tty::RawMode::enter()?;
        t.transport
            .broker
            .exec_interactive(
                ACTOR,
                &t.transport.host,
                &line,
                &pty,
                tokio::io::stdin(),
                tokio::io::stdout(),
            )
            .await
    };
    let (outcome, summary, code) = match &r {
        Ok(e) if e.status == 0 => (Outcome::Ok, "exit 0".to_string(), 0),
        Ok(e) => (
            Outcome::Failed,
            format!("exit {}", e.status),
            if (1..=255).contains(&e.status) {
                e.status
            } else {
                1
            },
        ),
        Err(e) => (Outcome::Failed, clip(&e.to_string()), 1),
    };
    store
        .finish_deploy(
            trail.id,
            outcome,
            &format!("interactive exec on {}: {summary}", labels[0]),
        )
        .context("recording the exec in the audit trail")?;
    r?;
    Ok(code)
}

/// The hosts `--host` names (all when it names none); an unknown name is
/// an error listing the known ones.
fn select(all: Vec<SshTarget>, wanted: &[String]) -> anyhow::Result<Vec<SshTarget>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    for w in wanted {
        if !all.iter().any(|t| names(t).contains(w)) {
            let known: Vec<String> = all.iter().map(|t| names(t).remove(0)).collect();
            anyhow::bail!(
                "--host {w}: not a host of this environment (its hosts: {})",
                known.join(", ")
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| names(t).iter().any(|n| wanted.contains(n)))
        .collect())
}

/// The names a host answers to in `--host`.
fn names(t: &SshTarget) -> Vec<String> {
    let h = &t.transport.host;
    vec![
        t.public.clone(),
        format!("{}:{}", t.public, h.port),
        format!("{}:{}", h.address, h.port),
        h.describe(),
    ]
}

/// Output prefixes: the name people know the host by, unless two hosts
/// share it (then `user@address:port`).
fn labels(hosts: &[SshTarget]) -> Vec<String> {
    let unique = {
        let mut seen = std::collections::HashSet::new();
        hosts.iter().all(|t| seen.insert(t.public.as_str()))
    };
    hosts
        .iter()
        .map(|t| {
            if unique {
                t.public.clone()
            } else {
                t.transport.host.describe()
            }
        })
        .collect()
}

/// The environment's secrets this shell can resolve (for redaction), and
/// the names of those it cannot.
fn secrets_here(env: &crate::config::Environment) -> (Vec<Secret>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (var, source) in &env.deploy.secrets {
        match std::env::var(source) {
            Ok(v) if !v.is_empty() => found.push(Secret::new(v)),
            _ => missing.push(var.clone()),
        }
    }
    (found, missing)
}

/// The `sh` line run on `t`: in the current release with the service's
/// environment, or inside the service's container.
fn remote_command(t: &SshTarget, command: &str) -> anyhow::Result<String> {
    Ok(match &t.systemd {
        Manager::Docker(d) => format!(
            "{} exec -i {} sh -c {}",
            d.settings.command,
            quote(&container(&t.spec.name))?,
            quote(command)?
        ),
        Manager::Systemd(_) => {
            let root = &t.spec.root;
            format!(
                "cd {current} 2>/dev/null || {{ echo {missing} >&2; exit 127; }}; \
                 if [ -r {env} ]; then set -a; . {env}; set +a; fi; exec sh -c {cmd}",
                current = quote(&format!("{root}/current"))?,
                missing = quote(&format!(
                    "soar exec: no release of {} is deployed in {root} (run soar deploy first)",
                    t.spec.name
                ))?,
                env = quote(&format!("{root}/shared/env"))?,
                cmd = quote(command)?,
            )
        }
    })
}

async fn run_on(
    t: &SshTarget,
    label: &str,
    command: &str,
    timeout: Duration,
    printer: Arc<Mutex<Printer>>,
) -> HostRun {
    let line = match remote_command(t, command) {
        Ok(l) => l,
        Err(e) => {
            return HostRun {
                label: label.to_string(),
                status: Err(e.to_string()),
            };
        }
    };
    let mut lines = Lines::default();
    let mut sink = |stream: Stream, data: &[u8]| {
        for l in lines.push(stream, data) {
            lock(&printer).line(label, stream, &l);
        }
    };
    let r = t
        .transport
        .broker
        .exec_streaming(ACTOR, &t.transport.host, &line, timeout, &mut sink)
        .await;
    for (stream, l) in lines.rest() {
        lock(&printer).line(label, stream, &l);
    }
    HostRun {
        label: label.to_string(),
        status: r.map(|e| e.status).map_err(|e| e.to_string()),
    }
}

/// Complete lines out of a command's output chunks, per stream.
#[derive(Default)]
struct Lines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Lines {
    /// Add a chunk; the lines it completed.
    fn push(&mut self, stream: Stream, data: &[u8]) -> Vec<String> {
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(data);
        let mut done = Vec::new();
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            done.push(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        done
    }

    /// What is left without a final newline.
    fn rest(self) -> Vec<(Stream, String)> {
        [(Stream::Stdout, self.stdout), (Stream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
            .collect()
    }
}

/// Prints host-prefixed lines, one at a time, secrets redacted.
struct Printer {
    out: Reporter,
    secrets: Vec<Secret>,
}

impl Printer {
    fn line(&self, label: &str, stream: Stream, line: &str) {
        let mut text = line.trim_end_matches('\r').to_string();
        scrub_string(&mut text, &self.secrets);
        let text = crate::terminal::line(&text);
        // Both streams go to stdout, in the order they arrived: `|` marks
        // a stdout line, `!` a stderr one.
        let mark = match stream {
            Stream::Stdout => '|',
            Stream::Stderr => '!',
        };
        self.out.print(&format!("{label} {mark} {text}\n"));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command as the audit trail keeps it (bounded).
fn clip(s: &str) -> String {
    crate::terminal::clip(s, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_per_stream_and_the_rest_kept() {
        let mut l = Lines::default();
        assert_eq!(l.push(Stream::Stdout, b"a\nb"), ["a"]);
        assert!(l.push(Stream::Stderr, b"x").is_empty());
        assert_eq!(l.push(Stream::Stdout, b"c\n\n"), ["bc", ""]);
        assert_eq!(
            l.rest(),
            [(Stream::Stderr, "x".to_string())]
                .into_iter()
                .collect::<Vec<_>>()
        );
    }
}
