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
    pub app: String,
    pub env: String,
    pub service: String,
    pub release: Option<String>,
    pub url: Option<String>,
    pub error: Option<String>,
}

/// The outcome of one hook, for the audit trail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookRun {
    pub hook: String,
    pub command: String,
    pub status: i32,
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
