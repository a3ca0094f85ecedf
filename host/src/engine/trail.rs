//! What every mutating command shares: confirmation on a terminal, phases
//! timed into the audit trail, and the records that go into state.

use std::io::{BufRead as _, IsTerminal as _};
use std::time::Instant;

use serde_json::json;

use super::Workspace;
use super::hooks::{self, HookContext};
use crate::config::Environment;
use crate::state::{DeployId, Outcome, Phase, ResourceRecord, StateStore, now_ms};

/// Ask for confirmation on a terminal; refuse when there is none.
pub(crate) fn confirm(out: &crate::report::Reporter, what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to {what} without confirmation: standard input is not a terminal. Pass --yes to proceed"
        );
    }
    out.prompt(&format!(
        "\nDo you want to {what}? Only 'yes' will be accepted: "
    ))?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// Times and records the phases of one deploy.
pub(crate) struct Trail<'s> {
    pub store: &'s StateStore,
    pub id: DeployId,
}

impl Trail<'_> {
    pub fn phase(&self, phase: Phase, started: (i64, Instant), outcome: Outcome, detail: &str) {
        let ms = started.1.elapsed().as_millis() as u64;
        if let Err(e) = self
            .store
            .record_phase(self.id, phase, started.0, ms, outcome, detail)
        {
            tracing::warn!("recording phase {phase}: {e:#}");
        }
    }

    /// Run hook `name` (if configured), timed into the trail with its output;
    /// the error says why it failed.
    pub async fn hook(
        &self,
        ws: &Workspace,
        name: &str,
        command: Option<&String>,
        ctx: &HookContext,
    ) -> Result<(), String> {
        let Some(command) = command else {
            return Ok(());
        };
        let started = mark();
        let result = hooks::run(
            name,
            command,
            &ws.project.root,
            ctx,
            ws.project.hooks.timeout,
        )
        .await;
        let (run, outcome, why) = match result {
            Ok(run) => (run, Outcome::Ok, None),
            Err((run, why)) => (run, Outcome::Failed, Some(why)),
        };
        self.phase(
            Phase::Hooks,
            started,
            outcome,
            &format!("{name} exit {}", run.status),
        );
        self.event(json!({ "hook": run }));
        why.map_or(Ok(()), Err)
    }

    pub fn event(&self, event: serde_json::Value) {
        if let Err(e) = self.store.record_event(self.id, &event) {
            tracing::warn!("recording an audit event: {e:#}");
        }
    }

    /// What the plugin logged and every request and SSH command the brokers
    /// carried for it, into the audit trail. Called once per command, after
    /// the plugin's last call, whether the command succeeded or not.
    pub fn plugin_events(&self, journal: &crate::journal::Journal) {
        for event in journal.events() {
            self.event(json!({ "plugin": event }));
        }
    }
}

/// A (wall ms, monotonic) start mark.
pub(crate) fn mark() -> (i64, Instant) {
    (now_ms(), Instant::now())
}

/// The state record of a resource a provider reported.
pub(crate) fn record_of(env: &Environment, r: &crate::contract::ManagedResource) -> ResourceRecord {
    ResourceRecord {
        env: env.name.clone(),
        provider: env.provider.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        id: r.id.clone(),
        attributes: serde_json::from_str(&r.attributes).unwrap_or(serde_json::Value::Null),
        updated_at: now_ms(),
    }
}

/// Who runs this command, for the audit trail.
pub(crate) fn actor() -> String {
    // `soar serve` runs each job as this binary with SOAR_ACTOR naming the
    // API token that submitted it (`api:<token name>`).
    if let Ok(a) = std::env::var("SOAR_ACTOR")
        && !a.is_empty()
    {
        return a.chars().take(128).collect();
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
