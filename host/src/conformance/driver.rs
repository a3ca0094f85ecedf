//! Calls into the plugin as the engine makes them: through
//! [`Plugin`]'s contract calls in a [`Session`] with the real brokers, one
//! fresh session per call (as each `soar` command opens one), so what a
//! call sent is exactly what that session's [`Journal`] recorded.
//!
//! The HTTP broker records every request it is asked for — allowed,
//! denied or failed — in the session's journal, with its method, before
//! anything reaches the plugin. The read-only check reads those records:
//! it needs no hook of its own in the broker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::task::JoinSet;

use crate::artifact::ArtifactSource;
use crate::broker::http::HttpLimits;
use crate::broker::http::policy::Grants;
use crate::contract::{Applied, ChangePlan, Context, Diagnostic, ResourceStatus};
use crate::credentials::SecretSource;
use crate::engine::plan::{Action, Plan, PlannedChange};
use crate::journal::{Event, Journal};
use crate::runtime::{CallError, Plugin, render_plugin_error};
use crate::session::{Session, SessionConfig};

/// Methods a read-only call may send.
const READ_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// Changes applied at once, as `soar deploy` does by default.
const PARALLELISM: usize = 10;

/// What the author gave the run besides the plugin.
pub struct Inputs {
    /// The app name the plugin is told.
    pub app: String,
    /// The environment name the plugin is told.
    pub environment: String,
    /// The provider settings (a JSON object) the run plans with.
    pub settings: Value,
    /// Endpoint (or declared host pattern) name → base URL of the fake.
    pub endpoints: BTreeMap<String, String>,
    /// Credential name → environment variable holding the test token,
    /// where the author chose one; else the plugin's declared variables.
    pub credential_env: BTreeMap<String, String>,
    /// Where credential values are read.
    pub secrets: Arc<dyn SecretSource>,
    /// The artifact every call is told of; `None` for a plugin that
    /// declares no artifact kind.
    pub artifact: Option<Arc<ArtifactSource>>,
    /// Timeouts and size caps of the plugin's HTTP.
    pub http_limits: HttpLimits,
}

/// A [`SecretSource`] shared by the sessions of one run.
struct Shared(Arc<dyn SecretSource>);

impl SecretSource for Shared {
    fn var(&self, name: &str) -> Option<String> {
        self.0.var(name)
    }
}

/// One applied change and how it went (the error rendered for people).
pub type AppliedChange = (PlannedChange, Result<Applied, String>);

/// Makes the contract calls of one run and remembers every mutating
/// request a read-only call sent.
pub struct Driver<'a> {
    plugin: Arc<Plugin>,
    inputs: &'a Inputs,
    /// `plan sent POST http://…/v2/droplets (status 202)`, in call order.
    writes: Mutex<Vec<String>>,
    /// Requests of read-only calls, counted, and journal events dropped
    /// (past its budget), which the check cannot vouch for.
    reads: Mutex<(usize, u64)>,
}

impl<'a> Driver<'a> {
    /// A driver for `plugin` with the author's `inputs`.
    pub fn new(plugin: Arc<Plugin>, inputs: &'a Inputs) -> Self {
        Self {
            plugin,
            inputs,
            writes: Mutex::default(),
            reads: Mutex::default(),
        }
    }

    /// The author's settings, which every call but check 7's plans with.
    pub fn settings(&self) -> &Value {
        &self.inputs.settings
    }

    /// A session as the engine opens one, granting the author's endpoints.
    fn session(&self) -> anyhow::Result<(Arc<Session>, Arc<Journal>)> {
        let journal = Arc::new(Journal::default());
        let grants = Grants {
            endpoints: self.inputs.endpoints.clone(),
            hosts: vec![],
            section: "--endpoint".into(),
        };
        let session = Session::new(
            self.plugin.description(),
            SessionConfig {
                grants,
                credential_env: self.inputs.credential_env.clone(),
                secrets: Box::new(Shared(self.inputs.secrets.clone())),
                artifact: self.inputs.artifact.clone(),
                journal: journal.clone(),
                http_limits: self.inputs.http_limits.clone(),
            },
        )?;
        Ok((Arc::new(session), journal))
    }

    /// The context of every call, with `settings`.
    fn context(&self, session: &Session, settings: &Value) -> Context {
        Context {
            app: self.inputs.app.clone(),
            environment: self.inputs.environment.clone(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: session.artifact.as_ref().map(|a| a.describe()),
        }
    }

    /// Note every request of a read-only `call` that was not a read.
    fn observe(&self, call: &str, journal: &Journal) {
        let events = journal.events();
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        reads.1 += journal.dropped();
        for event in events {
            let Event::Http {
                method,
                url,
                status,
                outcome,
                ..
            } = event
            else {
                continue;
            };
            reads.0 += 1;
            if !READ_METHODS.contains(&method.as_str()) {
                let answer = match status {
                    Some(s) => format!("status {s}"),
                    None => crate::terminal::line(&outcome).into_owned(),
                };
                writes.push(format!(
                    "{call} sent {} {} ({answer})",
                    crate::terminal::line(&method),
                    crate::terminal::line(&url)
                ));
            }
        }
    }

    /// Every mutating request read-only calls sent, once each in the order
    /// first sent (`×3` when sent three times); how many requests they sent
    /// in all; how many journal events were dropped.
    pub fn writes(&self) -> (Vec<String>, usize, u64) {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        // Index of each distinct line in `distinct`: a plugin may send
        // thousands of requests.
        let mut at: BTreeMap<&str, usize> = BTreeMap::new();
        let mut distinct: Vec<(&str, usize)> = Vec::new();
        for w in writes.iter() {
            match at.get(w.as_str()) {
                Some(&i) => distinct[i].1 += 1,
                None => {
                    at.insert(w, distinct.len());
                    distinct.push((w, 1));
                }
            }
        }
        let lines = distinct
            .into_iter()
            .map(|(w, n)| {
                if n == 1 {
                    w.to_string()
                } else {
                    format!("{w} ×{n}")
                }
            })
            .collect();
        (lines, reads.0, reads.1)
    }

    /// `validate` with `settings`.
    pub async fn validate(&self, settings: &Value) -> anyhow::Result<Vec<Diagnostic>> {
        let (session, journal) = self.session()?;
        let ctx = self.context(&session, settings);
        let r = self.plugin.validate(session, &ctx).await;
        self.observe("validate", &journal);
        Ok(r?)
    }

    /// `plan` with `settings`: the provider's answer as it came.
    pub async fn plan_raw(
        &self,
        settings: &Value,
    ) -> anyhow::Result<Result<ChangePlan, CallError>> {
        let (session, journal) = self.session()?;
        let ctx = self.context(&session, settings);
        let r = self.plugin.plan(session, &ctx).await;
        self.observe("plan", &journal);
        Ok(r)
    }

    /// `plan` with the author's settings, as the engine's plan.
    pub async fn plan(&self) -> anyhow::Result<Plan> {
        let answer = self.plan_raw(&self.inputs.settings).await??;
        super::plans::to_plan("deploy", &self.plugin.description().name, answer)
    }

    /// `plan-destroy` with the author's settings, as the engine's plan.
    pub async fn plan_destroy(&self) -> anyhow::Result<Plan> {
        let (session, journal) = self.session()?;
        let ctx = self.context(&session, &self.inputs.settings);
        let r = self.plugin.plan_destroy(session, &ctx).await;
        self.observe("plan-destroy", &journal);
        super::plans::to_plan("destroy", &self.plugin.description().name, r?)
    }

    /// `status` with the author's settings.
    pub async fn status(&self) -> anyhow::Result<Vec<ResourceStatus>> {
        let (session, journal) = self.session()?;
        let ctx = self.context(&session, &self.inputs.settings);
        let r = self.plugin.status(session, &ctx).await;
        self.observe("status", &journal);
        Ok(r?)
    }

    /// Apply every change of `plan` that does something, as the engine
    /// does: in one session, deletes first, then the rest, each wave in
    /// parallel. Outcomes in the plan's order.
    pub async fn apply(&self, plan: &Plan) -> anyhow::Result<Vec<AppliedChange>> {
        let (session, _journal) = self.session()?;
        let ctx = self.context(&session, &self.inputs.settings);
        let (deletes, rest): (Vec<&PlannedChange>, Vec<&PlannedChange>) =
            plan.effective().partition(|c| c.action == Action::Delete);
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLELISM));
        let mut outcomes = Vec::new();
        for wave in [deletes, rest] {
            let mut set = JoinSet::new();
            for (i, change) in wave.into_iter().enumerate() {
                let (plugin, session, ctx, change, limit) = (
                    self.plugin.clone(),
                    session.clone(),
                    ctx.clone(),
                    change.clone(),
                    limit.clone(),
                );
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let r = plugin
                        .apply(session, &ctx, &change.to_provider())
                        .await
                        .map_err(|e| match e {
                            CallError::Plugin { error, .. } => render_plugin_error(&error),
                            other => other.to_string(),
                        });
                    (i, change, r)
                });
            }
            let mut wave = Vec::new();
            while let Some(joined) = set.join_next().await {
                wave.push(joined.map_err(|e| anyhow::anyhow!("an apply task failed: {e}"))?);
            }
            wave.sort_by_key(|(i, _, _)| *i);
            outcomes.extend(wave.into_iter().map(|(_, c, r)| (c, r)));
        }
        Ok(outcomes)
    }
}
