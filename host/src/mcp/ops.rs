//! The six operations, each the CLI command of the same name run through
//! [`Run`]: `plan` is `soar plan -o FILE` with the file kept under an id,
//! `deploy` is `soar deploy FILE --yes` on the file an id names, and
//! `status`, `logs`, `history` and `rollback` are their commands as they
//! are. Each returns an [`Outcome`]; none panics or prints.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::call::{Form, Outcome, Run, block_on, failure};
use super::plans::{Plans, TTL};
use super::tools::{DeployInput, HistoryInput, LogsInput, PlanInput, RollbackInput, StatusInput};
use crate::engine::deploy::{DeployOptions, PlanOptions, deploy_command, plan_command};
use crate::engine::plan::Plan;
use crate::engine::{releases, render};
use crate::report::value;
use crate::state::{format_utc, now_ms};

/// How long a deploy or rollback waits for another soar holding the
/// project lock (the CLI's `--lock-timeout` default).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Most provider changes applied at once (the CLI's `--parallelism`
/// default).
const PARALLELISM: usize = 10;

/// Most log lines one call returns.
pub const MAX_LOG_LINES: u32 = 10_000;

/// Open the project for one operation and run `op` on it; an error from
/// either is the call's error.
fn with_run(
    config: Option<&Path>,
    form: Form,
    op: impl FnOnce(&Run) -> anyhow::Result<Outcome>,
) -> Outcome {
    match Run::open(config, form) {
        Ok(run) => op(&run).unwrap_or_else(|e| run.failure(&e)),
        Err(e) => failure(&e),
    }
}

/// `plan`: plan, save the plan under a new id.
pub fn plan(config: Option<&Path>, input: PlanInput) -> Outcome {
    with_run(config, Form::Events, |run| {
        let ws = &run.ws;
        let plans = Plans::new(&ws.state_dir());
        let (id, file) = plans.reserve()?;
        let opts = PlanOptions {
            env: input.environment,
            out: Some(file.clone()),
            detailed_exitcode: false,
        };
        if let Err(e) = block_on(plan_command(ws, &opts)) {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        let plan = Plan::load(&file)?;
        let expires = format_utc(now_ms() + TTL.as_millis() as i64);
        let text = format!(
            "{}\nPlan id {id} ({} of {}). Deploy exactly this plan with the `deploy` tool and this plan_id; it is single-use and good until {expires}.",
            render::plan_text(&plan).trim_end(),
            plan.env,
            plan.app,
        );
        Ok(run.success(
            text,
            json!({
                "plan_id": id,
                "environment": plan.env,
                "app": plan.app,
                "provider": plan.provider,
                "artifact": plan.artifact,
                "has_changes": plan.has_changes(),
                "summary": value(&plan.summary()),
                "changes": value(&plan.changes),
                "notes": plan.notes,
                "expires_at": expires,
            }),
        ))
    })
}

/// `deploy`: apply exactly the plan `plan_id` names, once.
pub fn deploy(config: Option<&Path>, input: DeployInput) -> Outcome {
    let id = input.plan_id;
    with_run(config, Form::Events, |run| {
        let ws = &run.ws;
        let claimed = Plans::new(&ws.state_dir()).claim(&id)?;
        let saved = Plan::load(&claimed.path)?;
        anyhow::ensure!(
            saved.app == ws.project.app.name,
            "plan {id} was made for app '{}', and this project is '{}': call `plan` here and deploy that id",
            saved.app,
            ws.project.app.name
        );
        let opts = DeployOptions {
            env: None,
            yes: true,
            parallelism: PARALLELISM,
            lock_timeout: LOCK_TIMEOUT,
            plan_file: Some(claimed.path.clone()),
            force_unlock: false,
        };
        if let Err(e) = block_on(deploy_command(ws, &opts)) {
            return Ok(run.failure(&e).with_hint(&format!(
                "plan {id} is used up: call `plan` again, review it, and deploy the new id"
            )));
        }
        let events = run.events();
        let deployed = events.iter().find(|e| e["type"] == "deployed");
        let audit = ws.state()?.history(Some(&saved.env), 1)?.into_iter().next();
        let env = ws.environment(Some(&saved.env))?;
        let service = &env.deploy.service;
        let text = match deployed {
            Some(d) if d["release"].is_string() => format!(
                "Deployed {service} to {}: {} (release {}).",
                saved.env,
                d["url"].as_str().unwrap_or_default(),
                d["release"].as_str().unwrap_or_default()
            ),
            Some(d) if d["changed"] == false => format!(
                "{service} in {} is up to date at {}: nothing to change.",
                saved.env,
                d["url"].as_str().unwrap_or_default()
            ),
            Some(d) => format!(
                "Deployed to {}: {}.",
                saved.env,
                d["url"].as_str().unwrap_or_default()
            ),
            None => format!("Applied plan {id} to {}.", saved.env),
        };
        Ok(run.success(
            text,
            json!({
                "plan_id": id,
                "environment": saved.env,
                "service": service,
                "url": deployed.map(|d| d["url"].clone()),
                "release": deployed.map(|d| d["release"].clone()),
                "changed": deployed.map(|d| d["changed"].clone()),
                "audit": audit.as_ref().map(value),
            }),
        ))
    })
}

/// `status`: each environment's (or one's) release, service and resources.
pub fn status(config: Option<&Path>, input: StatusInput) -> Outcome {
    with_run(config, Form::Events, |run| {
        let offline = input.offline.unwrap_or(false);
        block_on(releases::status_command(
            &run.ws,
            input.environment.as_deref(),
            offline,
        ))?;
        let environments = of_type(run.events(), "status");
        let text = environments
            .iter()
            .map(status_line)
            .collect::<Vec<_>>()
            .join("\n");
        Ok(run.success(text, json!({ "environments": environments })))
    })
}

/// One environment's status in a line.
pub fn status_line(s: &Value) -> String {
    let release = s["release"]["id"].as_str().unwrap_or("none deployed");
    let running = if s["running"] == true {
        "running"
    } else {
        "not running"
    };
    let url = s["url"]
        .as_str()
        .map(|u| format!(" at {u}"))
        .unwrap_or_default();
    let drift = match s["drift"].as_array().map(Vec::len) {
        Some(n) if n > 0 => format!("; {n} difference(s) from the state (drift)"),
        _ => String::new(),
    };
    format!(
        "{} ({}): release {release}, {} {running}{url}{drift}",
        s["env"].as_str().unwrap_or_default(),
        s["provider"].as_str().unwrap_or_default(),
        s["service"].as_str().unwrap_or_default(),
    )
}

/// `history`: the audit trail, newest first.
pub fn history(config: Option<&Path>, input: HistoryInput) -> Outcome {
    with_run(config, Form::Events, |run| {
        let limit = input.limit.unwrap_or(20) as usize;
        releases::history_command(&run.ws, input.environment.as_deref(), limit)?;
        let records = of_type(run.events(), "history_record");
        Ok(run.success(history_text(&records), json!({ "records": records })))
    })
}

/// The `history` tool's text: a line per audit record, newest first, as
/// the engine and a server both answer them.
pub fn history_text(records: &[Value]) -> String {
    if records.is_empty() {
        return "No deploys recorded yet.".to_string();
    }
    records
        .iter()
        .map(history_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One audit record in a line: `#id when command env by actor: status (summary)`.
fn history_line(r: &Value) -> String {
    format!(
        "#{} {} {} {} by {}: {}{}",
        r["id"],
        r["started_at"].as_i64().map(format_utc).unwrap_or_default(),
        r["command"].as_str().unwrap_or_default(),
        r["env"].as_str().unwrap_or_default(),
        r["actor"].as_str().unwrap_or_default(),
        r["status"].as_str().unwrap_or_default(),
        r["summary"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    )
}

/// `logs`: the service's last lines.
pub fn logs(config: Option<&Path>, input: LogsInput) -> Outcome {
    with_run(config, Form::Text, |run| {
        let lines = input.lines.unwrap_or(100);
        anyhow::ensure!(
            (1..=MAX_LOG_LINES).contains(&lines),
            "lines must be between 1 and {MAX_LOG_LINES}, not {lines}"
        );
        let env = run.ws.environment(input.environment.as_deref())?;
        block_on(releases::logs_command(
            &run.ws,
            Some(&env.name),
            lines as usize,
        ))?;
        let text = run.text();
        let shown: Vec<&str> = text.lines().collect();
        Ok(run.success(
            format!(
                "The last {} line(s) of {} in {}:\n{text}",
                shown.len(),
                env.deploy.service,
                env.name
            ),
            json!({ "environment": env.name, "service": env.deploy.service, "lines": shown }),
        ))
    })
}

/// `rollback`: switch back to an earlier release.
pub fn rollback(config: Option<&Path>, input: RollbackInput) -> Outcome {
    with_run(config, Form::Text, |run| {
        let env = run.ws.environment(input.environment.as_deref())?;
        block_on(releases::rollback_command(
            &run.ws,
            Some(&env.name),
            input.to.as_deref(),
            LOCK_TIMEOUT,
        ))?;
        let active = run.ws.state()?.active_release(&env.name)?;
        Ok(run.success(
            run.text().trim().to_string(),
            json!({
                "environment": env.name,
                "service": env.deploy.service,
                "release": active.as_ref().map(value),
            }),
        ))
    })
}

/// The events of `kind`, without their `type` field.
pub fn of_type(events: Vec<Value>, kind: &str) -> Vec<Value> {
    events
        .into_iter()
        .filter(|e| e["type"] == kind)
        .map(|mut e| {
            if let Some(map) = e.as_object_mut() {
                map.remove("type");
            }
            e
        })
        .collect()
}
