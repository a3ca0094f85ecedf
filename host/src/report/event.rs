//! What `--json` prints: one [`Event`] per line, tagged by `"type"`.
//!
//! The schema is documented in README.md ("JSON output"); a field added
//! here belongs there too. Each variant keeps the fields the command printed
//! before events had one enum, so a consumer that reads `soar status --json`
//! or `soar deploy --json` line by line keeps working: events only gained
//! their `"type"`.
//!
//! This module is a leaf (like [`crate::terminal`]): the engine, the CLI
//! and `main` all report through it, so it names no engine type. Values the
//! engine owns (a planned change, a release record, an audit record) travel
//! as the JSON they serialize to.

use serde::Serialize;
use serde_json::Value;

/// One line of `--json` output.
#[allow(
    missing_docs,
    reason = "the fields are the JSON schema, documented once: README.md's \"JSON output\" table"
)]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A change in a plan (`plan`, `deploy`, `destroy`).
    PlannedChange { env: &'a str, change: Value },
    /// A note from the provider about a plan.
    Note { message: &'a str },
    /// The plan's totals; the last line of a plan.
    ChangeSummary {
        command: &'a str,
        env: &'a str,
        changes: Value,
        no_changes: bool,
    },
    /// One provider change (or a removal, in `destroy`) done or failed.
    ApplyResult {
        kind: &'a str,
        name: &'a str,
        action: Value,
        ok: bool,
        error: Option<&'a str>,
    },
    /// The release starts going out to `targets` hosts.
    RolloutStart { release: &'a str, targets: usize },
    /// One host runs the release and answers its health check.
    RolloutDone {
        target: String,
        host: String,
        release: &'a str,
        bytes_sent: u64,
        health: &'a str,
    },
    /// One host failed the release (and was switched back when
    /// `rolled_back`).
    RolloutFailed {
        target: String,
        host: String,
        rolled_back: bool,
        error: &'a str,
    },
    /// The deploy is done: the service answers at `url`.
    Deployed {
        env: &'a str,
        url: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        release: Option<&'a str>,
        changed: bool,
    },
    /// `destroy` removed everything the environment owned.
    Destroyed { env: &'a str },
    /// `status`: one environment (fields as documented in README).
    Status(Value),
    /// `history`: one audit-trail record, newest first.
    HistoryRecord(Value),
    /// `refresh`: what the provider reported, and what left the state.
    Refreshed {
        env: &'a str,
        resources: Value,
        removed: &'a [String],
    },
    /// `validate`: the configuration is valid.
    Valid {
        valid: bool,
        file: &'a std::path::Path,
        #[serde(skip_serializing_if = "Option::is_none")]
        zero_config: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<&'a str>,
        environments: Vec<&'a str>,
    },
    /// `validate`: one problem in the configuration (the command exits 1).
    Diagnostic {
        file: &'a std::path::Path,
        line: usize,
        col: usize,
        message: &'a str,
        hint: Option<&'a str>,
    },
    /// `plugin list`: one plugin, or why it does not load (`error`).
    Plugin {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wit: Option<String>,
        source: String,
        digest: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        summary: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// `plugin inspect`: everything the plugin may reach.
    PluginDetails(Value),
    /// `plugin test`: one conformance check (`check`, `title`, `outcome`
    /// pass/fail/skip, `reason`, `details`).
    ConformanceCheck(Value),
    /// `plugin test`: the totals; the last line of a run.
    ConformanceSummary {
        plugin: &'a str,
        version: &'a str,
        passed: usize,
        failed: usize,
        skipped: usize,
    },
    /// `monitor`: one host checked (`host`, `reachable`, and `services`:
    /// each with `key`, `healthy`, `detail`, `metrics`).
    HealthCheck(Value),
    /// `monitor`: a service or host became `unhealthy` or `recovered`
    /// (`change`, `key`, `envs`, `service`, `host`, `detail`, `at`).
    HealthTransition(Value),
    /// `top`: one service's numbers (`env`, `service`, `host`, `metrics`,
    /// `cpu_percent`).
    ServiceMetrics(Value),
    /// `logs --json`: one line of a service's output (`host`, `env`,
    /// `service`, `line`).
    LogLine(Value),
    /// Something went wrong but the command goes on.
    Warning { message: &'a str },
    /// The command failed: `message`, then the `causes` it gives, outermost
    /// first, and when running it again a little later may pass, why
    /// (`transient`: "rate limited (HTTP 429)", "timed out", ...). Always
    /// the last line; the exit code is 1 as without `--json`.
    Error {
        message: String,
        causes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        transient: Option<&'static str>,
    },
}

impl Event<'_> {
    /// The error event of `e`: its message and its chain of causes.
    pub fn error(e: &anyhow::Error) -> Event<'static> {
        Self::failure(e, None)
    }

    /// The error event of `e`, with the caller's verdict on whether it is
    /// transient (the engine's, which this layer cannot judge).
    pub fn failure(e: &anyhow::Error, transient: Option<&'static str>) -> Event<'static> {
        Event::Error {
            message: e.to_string(),
            causes: e.chain().skip(1).map(ToString::to_string).collect(),
            transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(e: &Event) -> Value {
        serde_json::to_value(e).unwrap()
    }

    #[test]
    fn every_event_carries_its_type_and_only_its_fields() {
        assert_eq!(
            value(&Event::Deployed {
                env: "prod",
                url: "http://x",
                release: None,
                changed: false
            }),
            json!({ "type": "deployed", "env": "prod", "url": "http://x", "changed": false })
        );
        assert_eq!(
            value(&Event::Status(json!({ "env": "prod", "running": true }))),
            json!({ "type": "status", "env": "prod", "running": true })
        );
        assert_eq!(
            value(&Event::Warning { message: "m" }),
            json!({ "type": "warning", "message": "m" })
        );
    }

    #[test]
    fn an_error_event_keeps_the_whole_chain() {
        let e = anyhow::anyhow!("root cause")
            .context("reading soar.toml")
            .context("cannot plan");
        assert_eq!(
            value(&Event::error(&e)),
            json!({ "type": "error", "message": "cannot plan", "causes": ["reading soar.toml", "root cause"] })
        );
    }
}
