//! Applying a provider's changes: deletes first, then the rest, each wave in
//! parallel within a bound, and each outcome recorded in state.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::task::JoinSet;

use super::failure::{ChangeError, ChangesFailed};
use super::plan::{Action, Executor, Plan, PlannedChange};
use super::prepare::Prepared;
use super::trail::{Trail, mark, record_of};
use crate::config::Environment;
use crate::report::{Event, Reporter, value};
use crate::state::{Outcome, Phase, StateStore};

pub(crate) type ApplyOutcome = (
    PlannedChange,
    Result<Option<crate::contract::Applied>, ChangeError>,
);

/// Apply the provider's changes: deletes first, then the rest, each wave
/// in parallel with at most `parallelism` calls at once.
pub(crate) async fn apply_provider_changes(
    p: &Prepared<'_>,
    plan: &Plan,
    parallelism: usize,
    out: &Reporter,
) -> Vec<ApplyOutcome> {
    let provider: Vec<&PlannedChange> = plan
        .effective()
        .filter(|c| c.executor == Executor::Provider)
        .collect();
    let (deletes, rest): (Vec<&PlannedChange>, Vec<&PlannedChange>) = provider
        .into_iter()
        .partition(|c| c.action == Action::Delete);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(parallelism.max(1)));
    let mut outcomes = Vec::new();
    for wave in [deletes, rest] {
        let mut set = JoinSet::new();
        for change in wave {
            let (plugin, session, ctx, change, sem) = (
                p.plugin.clone(),
                p.session.clone(),
                p.ctx.clone(),
                change.clone(),
                semaphore.clone(),
            );
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let started = Instant::now();
                let r = plugin
                    .apply(session, &ctx, &change.to_provider())
                    .await
                    .map(Some)
                    .map_err(ChangeError::from);
                (change, r, started.elapsed())
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((change, r, took)) = joined else {
                continue;
            };
            let line = || match &r {
                Ok(_) => format!(
                    "  ✓ {} {} {} ({:.1} s)",
                    change.action.verb(),
                    crate::terminal::line(&change.kind),
                    crate::terminal::line(&change.name),
                    took.as_secs_f64()
                ),
                Err(e) => format!(
                    "  ✗ {} {} {}: {}",
                    change.action.verb(),
                    crate::terminal::line(&change.kind),
                    crate::terminal::line(&change.name),
                    crate::terminal::line(&e.to_string())
                ),
            };
            let event = Event::ApplyResult {
                kind: &change.kind,
                name: &change.name,
                action: value(&change.action),
                ok: r.is_ok(),
                error: r.as_ref().err().map(|e| e.text.as_str()),
            };
            out.status(&event, line);
            outcomes.push((change, r));
        }
    }
    outcomes.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    outcomes
}

/// Keep state in step with what a change did.
pub(crate) fn record_resource(
    store: &StateStore,
    env: &Environment,
    change: &PlannedChange,
    applied: Option<&crate::contract::Applied>,
) -> anyhow::Result<()> {
    match applied.and_then(|a| a.resource.as_ref()) {
        Some(r) if change.action != Action::Delete => store.upsert_resource(&record_of(env, r)),
        _ => store
            .remove_resource(&env.name, &change.kind, &change.name)
            .map(|_| ()),
    }
}

/// [`apply_provider_changes`], with each outcome recorded in state and the
/// audit trail; when some fail, the error lists what failed and what exists
/// now, so a re-run converges.
pub(crate) async fn apply_and_record(
    p: &Prepared<'_>,
    plan: &Plan,
    trail: &Trail<'_>,
    parallelism: usize,
    out: &Reporter,
) -> anyhow::Result<Vec<ApplyOutcome>> {
    let started = mark();
    let outcomes = apply_provider_changes(p, plan, parallelism, out).await;
    let mut failed = Vec::new();
    for (change, result) in &outcomes {
        match result {
            Ok(applied) => {
                record_resource(trail.store, p.env, change, applied.as_ref())?;
            }
            Err(e) => failed.push(format!(
                "{} {} {}: {e}",
                change.action.verb(),
                change.kind,
                change.name
            )),
        }
        trail.event(json!({ "apply": { "kind": change.kind, "name": change.name, "action": change.action, "ok": result.is_ok(),
            "error": result.as_ref().err().map(|e| &e.text) } }));
    }
    if !outcomes.is_empty() {
        let outcome = if failed.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        trail.phase(
            Phase::Apply,
            started,
            outcome,
            &format!("{} changes, {} failed", outcomes.len(), failed.len()),
        );
    }
    if !failed.is_empty() {
        let done: Vec<String> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(c, _)| format!("{} {} {}", c.action.verb(), c.kind, c.name))
            .collect();
        let message = format!(
            "{} of {} changes failed:\n  {}\n{}Re-run `soar deploy` to converge: completed changes are not repeated.",
            failed.len(),
            outcomes.len(),
            failed.join("\n  "),
            if done.is_empty() {
                String::new()
            } else {
                format!("These completed and exist now:\n  {}\n", done.join("\n  "))
            }
        );
        let transient =
            ChangesFailed::verdict(outcomes.iter().filter_map(|(_, r)| r.as_ref().err()));
        return Err(ChangesFailed { message, transient }.into());
    }
    Ok(outcomes)
}
