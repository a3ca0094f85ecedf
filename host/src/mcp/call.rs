//! Running one engine command for a tool call, and turning its outcome into
//! the call's result.
//!
//! A tool call runs the CLI's own command function (`plan_command`,
//! `deploy_command`, ...) on a [`Workspace`] whose reporter writes into
//! memory instead of stdout: in `--json` form for the commands whose events
//! are their data, as text for those whose data is text (`logs`). The
//! result is then the events (structured) plus a short text, or — when the
//! command failed — a tool error carrying the same message the CLI prints
//! after `error:`.
//!
//! Every result passes through [`Outcome::finish`], which scrubs the
//! secrets the project names (`[deploy] secrets` and provider credentials,
//! as this process's environment holds them) from every string: an agent's
//! transcript is one more place a secret must never reach, and a service's
//! own log lines may echo one.

use std::path::Path;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::credentials::{Secret, scrub_string};
use crate::engine::Workspace;
use crate::report::{Captured, ColorChoice, Event, Reporter, Settings};

/// How a command's output is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `--json` events.
    Events,
    /// Text for people, uncoloured.
    Text,
}

/// One command's workspace and what it printed.
pub struct Run {
    /// The project, with a reporter writing into [`Run::captured`].
    pub ws: Workspace,
    captured: Captured,
    secrets: Vec<Secret>,
}

impl Run {
    /// Open the project (`config`, or found from the current directory up)
    /// for one command whose output is captured in `form`.
    pub fn open(config: Option<&Path>, form: Form) -> anyhow::Result<Self> {
        let (out, captured) = Reporter::buffered(Settings {
            json: form == Form::Events,
            color: ColorChoice::Never,
            quiet: false,
            verbose: 0,
        });
        let ws = Workspace::open(config, out)?;
        let secrets = project_secrets(&ws);
        Ok(Self {
            ws,
            captured,
            secrets,
        })
    }

    /// The events the command printed so far (`Form::Events`).
    pub fn events(&self) -> Vec<Value> {
        self.captured
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The text the command printed on stdout so far (`Form::Text`).
    pub fn text(&self) -> String {
        self.captured.stdout()
    }

    /// The warnings the command gave (events or `warning:` lines).
    fn warnings(&self) -> Vec<String> {
        let from_events = self
            .events()
            .into_iter()
            .filter(|e| e["type"] == "warning")
            .filter_map(|e| e["message"].as_str().map(String::from));
        let from_text = self
            .captured
            .stderr()
            .lines()
            .filter_map(|l| l.strip_prefix("warning: "))
            .map(String::from)
            .collect::<Vec<_>>();
        from_events.chain(from_text).collect()
    }

    /// A successful result: `data` (with the command's warnings added) and
    /// a short `summary` for people.
    pub fn success(&self, summary: String, mut data: Value) -> Outcome {
        let warnings = self.warnings();
        if let (Some(map), false) = (data.as_object_mut(), warnings.is_empty()) {
            map.insert("warnings".into(), json!(warnings));
        }
        Outcome {
            error: false,
            summary,
            data,
            secrets: self.secrets.clone(),
        }
    }

    /// A failed command: [`failure`] with this project's secrets scrubbed.
    pub fn failure(&self, e: &anyhow::Error) -> Outcome {
        Outcome {
            secrets: self.secrets.clone(),
            ..failure(e)
        }
    }
}

/// A tool call's outcome, before it is scrubbed and sent.
#[derive(Debug)]
pub struct Outcome {
    error: bool,
    summary: String,
    data: Value,
    secrets: Vec<Secret>,
}

/// A failed call: the message the CLI prints after `error:` (the whole
/// chain, hints included), and the chain as `soar --json` reports it.
pub fn failure(e: &anyhow::Error) -> Outcome {
    Outcome {
        error: true,
        summary: format!("{e:#}"),
        data: crate::report::value(&Event::failure(e, crate::engine::failure::transient(e))),
        secrets: Vec::new(),
    }
}

impl Outcome {
    /// A successful result made without a local project (on a server):
    /// `data` and a short `summary`.
    pub fn success(summary: String, data: Value) -> Self {
        Self {
            error: false,
            summary,
            data,
            secrets: Vec::new(),
        }
    }

    /// Add a sentence to a failure's message (what to do next, in the
    /// agent's terms rather than the command line's).
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.summary = format!("{}\nhint: {hint}", self.summary);
        if let Some(map) = self.data.as_object_mut() {
            map.insert("hint".into(), hint.into());
        }
        self
    }

    /// The result to send: the summary, then the data as JSON text (for
    /// clients that read only text), and the data as structured content.
    /// Secrets are scrubbed from all three.
    pub fn finish(self) -> CallToolResult {
        let Self {
            error,
            mut summary,
            mut data,
            secrets,
        } = self;
        scrub_string(&mut summary, &secrets);
        scrub_value(&mut data, &secrets);
        let mut result = if error {
            CallToolResult::structured_error(data.clone())
        } else {
            CallToolResult::structured(data.clone())
        };
        result.content = vec![
            ContentBlock::text(summary),
            ContentBlock::text(data.to_string()),
        ];
        result
    }
}

/// Replace every secret in every string of `v`.
fn scrub_value(v: &mut Value, secrets: &[Secret]) {
    match v {
        Value::String(s) => scrub_string(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|i| scrub_value(i, secrets)),
        Value::Object(map) => {
            // Keys are the engine's own field names or resource names;
            // values are where data from outside lands.
            map.values_mut().for_each(|i| scrub_value(i, secrets));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The secret values the project names that this process holds: each
/// environment's `[deploy] secrets` and `credentials` variables that are set.
fn project_secrets(ws: &Workspace) -> Vec<Secret> {
    let mut vars: Vec<&String> = Vec::new();
    for env in ws.project.environments.values() {
        vars.extend(env.deploy.secrets.values());
        vars.extend(env.credentials.values());
    }
    vars.sort();
    vars.dedup();
    vars.into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .collect()
}

/// Run `work` — an engine command, whose futures hold the state store
/// across awaits and so stay on one thread — to completion on a blocking
/// thread of the current runtime. A panic in it is an error, not a crash
/// of the server.
pub async fn on_own_thread<T, F>(work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow::anyhow!("the command stopped unexpectedly: {e}"))?
}

/// `block_on` for [`on_own_thread`]'s closures.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_carries_no_secret_in_any_form_it_has() {
        let secret = "s3cr3t-value-42";
        let outcome = Outcome {
            error: false,
            summary: format!("started with key {secret}"),
            data: json!({ "lines": [format!("key={secret}")], "nested": { "k": secret } }),
            secrets: vec![Secret::new(secret)],
        };
        let result = outcome.finish();
        let wire = serde_json::to_string(&result).unwrap();
        assert!(!wire.contains(secret), "{wire}");
        assert!(wire.contains("[redacted]"), "{wire}");
        assert_eq!(result.is_error, Some(false));
        assert_eq!(
            result.content.len(),
            2,
            "the summary, then the data as text"
        );
    }

    #[test]
    fn a_failure_is_a_tool_error_with_the_clis_message() {
        let e = anyhow::anyhow!("root cause").context("deploying dev");
        let result = failure(&e).with_hint("call `plan` again").finish();
        assert_eq!(result.is_error, Some(true));
        let text = result.content[0].as_text().map(|t| t.text.clone());
        assert_eq!(
            text.as_deref(),
            Some("deploying dev: root cause\nhint: call `plan` again")
        );
        let data = result.structured_content.unwrap();
        assert_eq!(data["type"], "error");
        assert_eq!(data["hint"], "call `plan` again");
    }
}
