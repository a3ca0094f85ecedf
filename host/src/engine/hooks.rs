//! `pre_deploy` / `post_deploy` / `on_failure`: local commands with the
//! deploy's context in `SOAR_*` variables, bounded by a timeout, their output
//! kept for the audit trail.

use std::path::Path;
use std::time::Duration;

use crate::rollout::local::LocalTransport;
use crate::rollout::transport::Transport;
use crate::shell::quote;

/// What a hook is told about the deploy.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The project's app name (`[app] name` in soar.toml), as `SOAR_APP`.
    pub app: String,
    /// The environment being deployed, as `SOAR_ENV`.
    pub env: String,
    /// The environment's service name, as `SOAR_SERVICE`.
    pub service: String,
    /// The release id, as `SOAR_RELEASE`; set once the rollout has made one,
    /// so `pre_deploy` never sees it and `post_deploy` always does.
    pub release: Option<String>,
    /// The URL the service answers at, as `SOAR_URL`; set with `release`.
    pub url: Option<String>,
    /// Why the deploy failed, as `SOAR_ERROR`; only `on_failure` gets it.
    pub error: Option<String>,
}

/// The outcome of one hook, for the audit trail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookRun {
    /// Which hook ran: `pre_deploy`, `post_deploy` or `on_failure`.
    pub hook: String,
    /// The shell command as configured, without the `cd`/`export` prelude.
    pub command: String,
    /// The command's exit status; -1 when it could not be started, was
    /// refused (a NUL byte in a variable) or timed out.
    pub status: i32,
    /// Its stdout then stderr, keeping only the last 8000 characters so a
    /// chatty hook cannot bloat the audit trail.
    pub output: String,
}

/// Run `command` as hook `name` in `dir`; an error when it fails.
pub async fn run(
    name: &str,
    command: &str,
    dir: &Path,
    ctx: &HookContext,
    timeout: Duration,
) -> Result<HookRun, (HookRun, String)> {
    let mut vars = vec![
        ("SOAR_HOOK", name.to_string()),
        ("SOAR_APP", ctx.app.clone()),
        ("SOAR_ENV", ctx.env.clone()),
        ("SOAR_SERVICE", ctx.service.clone()),
    ];
    vars.extend(ctx.release.clone().map(|r| ("SOAR_RELEASE", r)));
    vars.extend(ctx.url.clone().map(|u| ("SOAR_URL", u)));
    vars.extend(ctx.error.clone().map(|e| ("SOAR_ERROR", e)));
    let refused = |e: crate::shell::NulByte| {
        let msg = format!("hook `{name}` was not run: {e}");
        let run = HookRun {
            hook: name.to_string(),
            command: command.to_string(),
            status: -1,
            output: msg.clone(),
        };
        (run, msg)
    };
    let exports: String = vars
        .iter()
        .map(|(k, v)| quote(v).map(|q| format!("export {k}={q}; ")))
        .collect::<Result<_, _>>()
        .map_err(refused)?;
    let dir_q = quote(&dir.to_string_lossy()).map_err(refused)?;
    let line = format!("cd {dir_q} && {exports}{command}");
    let result = LocalTransport.exec(&line, timeout).await;
    let (status, output) = match result {
        Ok(o) => (o.status, format!("{}{}", o.stdout, o.stderr)),
        Err(e) => (-1, format!("{e:#}")),
    };
    let output: String = output
        .chars()
        .rev()
        .take(8000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let run = HookRun {
        hook: name.to_string(),
        command: command.to_string(),
        status,
        output,
    };
    if status == 0 {
        Ok(run)
    } else {
        let why = format!(
            "{name} hook `{command}` failed (exit {status}): {}",
            run.output.trim()
        );
        Err((run, why))
    }
}
