//! Telling people about a transition: one audit record per environment
//! concerned (so `soar history` shows it beside the deploys), a JSON POST
//! to `[monitor] webhook`, and the `on_unhealthy` hook — each once per
//! transition, never per failed probe ([`super::tracker`] sees to that).
//!
//! When several monitors watch one project (two `soar serve` workers on one
//! PostgreSQL state, a teammate's `soar monitor`), only the holder of the
//! project's [`AnnounceLease`] announces; the others still check and show
//! what they see. A lease that cannot be asked (the database unreachable)
//! does not silence the monitor: it announces, since a duplicate is better
//! than an outage nobody hears of.
//!
//! The hook is run by the caller's [`HookRunner`] (the engine's hook
//! runner, with its `SOAR_*` variables and timeout), so the monitor does not
//! duplicate it and stays below the engine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::tracker::{Change, Transition};
use crate::state::{AnnounceLease, Outcome, StateStore};

/// The audit record's command, as `soar history` shows it.
pub const COMMAND: &str = "monitor";

/// How long the webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the `on_unhealthy` hook for a transition; the error says why it
/// failed.
pub type HookRunner =
    Arc<dyn Fn(Transition) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Where transitions go.
#[derive(Clone, Default)]
pub struct Announcer {
    /// The project's state store, for the audit trail.
    pub store: Option<Arc<Mutex<StateStore>>>,
    /// `[monitor] webhook`.
    pub webhook: Option<String>,
    /// `[hooks] on_unhealthy`, run on [`Change::Unhealthy`] only.
    pub hook: Option<HookRunner>,
    /// Who of several monitors of the project announces; `None`: this one.
    pub lease: Option<Arc<Mutex<AnnounceLease>>>,
}

/// What announcing one transition did; failures are kept, not raised, so
/// one broken webhook does not stop the audit record or the hook.
#[derive(Debug, Default)]
pub struct Announced {
    /// Problems, one line each.
    pub problems: Vec<String>,
    /// Another monitor of the project holds the lease: it announces this
    /// transition, this one did nothing.
    pub elsewhere: bool,
}

impl Announcer {
    /// Record `t`, POST it, and run the hook when it is a failure.
    pub async fn announce(&self, t: &Transition) -> Announced {
        let mut done = Announced::default();
        if let Some(lease) = &self.lease {
            let mut lease = lease.lock().unwrap_or_else(|e| e.into_inner());
            match lease.holds() {
                Ok(true) => {}
                Ok(false) => {
                    done.elsewhere = true;
                    return done;
                }
                Err(e) => done.problems.push(format!(
                    "asking who announces (announcing here in case nobody does): {e:#}"
                )),
            }
        }
        if let Some(store) = &self.store
            && let Err(e) = record(store, t)
        {
            done.problems
                .push(format!("recording it in the audit trail: {e:#}"));
        }
        if let Some(url) = &self.webhook
            && let Err(e) = post(url, t).await
        {
            done.problems.push(format!("the webhook: {e:#}"));
        }
        if t.change == Change::Unhealthy
            && let Some(hook) = &self.hook
            && let Err(e) = hook(t.clone()).await
        {
            done.problems.push(format!("the on_unhealthy hook: {e:#}"));
        }
        done
    }
}

/// One finished audit record per environment: the transition as its event,
/// `failed` for unhealthy and `ok` for recovered.
fn record(store: &Mutex<StateStore>, t: &Transition) -> anyhow::Result<()> {
    let store = store
        .lock()
        .map_err(|_| anyhow::anyhow!("the state store's lock was poisoned"))?;
    let outcome = match t.change {
        Change::Unhealthy => Outcome::Failed,
        Change::Recovered => Outcome::Ok,
    };
    for env in &t.envs {
        let id = store.begin_deploy(env, COMMAND, "soar monitor")?;
        store.record_event(id, t)?;
        store.finish_deploy(id, outcome, &t.summary())?;
    }
    Ok(())
}

/// POST the transition as JSON; any 2xx is delivered.
async fn post(url: &str, t: &Transition) -> anyhow::Result<()> {
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()?;
    let resp = client
        .post(url)
        .json(t)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("POST {url} answered {status}");
    }
    Ok(())
}
