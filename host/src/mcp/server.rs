//! The six tools on a `soar serve` server (`soar mcp --server URL`): each
//! drives the server's jobs over its HTTP API, through the same client as
//! `soar deploy --server` ([`crate::remote`]), instead of the local engine.
//!
//! - `plan` is `POST /v1/plans`; its plan_id is the server's plan id.
//! - `deploy` submits a deploy job of that plan and follows its events to
//!   the end; `rollback` submits a rollback job and follows it too. A job
//!   keeps running on the server if the agent goes away.
//! - `status`, `history` and `logs` are the server's views of the
//!   environment.
//!
//! The project is the server's project NAME (`--project`, else `[app]
//! name` of the local soar.toml); a tool's environment defaults to the
//! local soar.toml's only one, as `soar deploy --server` does. The token is
//! `$SOAR_SERVER_TOKEN` only. The server scrubs secrets before anything
//! leaves it; results pass through [`Outcome::finish`] all the same.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::call::{Outcome, failure};
use super::ops::{history_text, of_type, status_line};
use super::tools::{DeployInput, HistoryInput, LogsInput, PlanInput, RollbackInput, StatusInput};
use crate::remote::{self, Client, Endpoint, Followed, Renderer, wire};
use crate::report::{ColorChoice, Reporter, Settings};

/// Where the server is: `soar mcp --server URL` and what goes with it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The server's base URL.
    pub url: String,
    /// The project's NAME on the server (default: `[app] name` of the
    /// local soar.toml).
    pub project: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca: Option<PathBuf>,
    /// Allow `http://` to another machine.
    pub insecure_http: bool,
}

/// The tools' backend on one project of one server.
#[derive(Debug)]
pub struct Server {
    client: Client,
    project: String,
    /// The local soar.toml's environments and their providers (to default
    /// one, and to name the provider in a drawn plan).
    envs: BTreeMap<String, String>,
    /// The environment of each plan this session made: a deploy names it.
    plans: Mutex<HashMap<String, String>>,
}

impl Server {
    /// A client of `target` for the project named there or in `config`
    /// (the local soar.toml, read only for its names).
    pub fn open(target: &Target, config: Option<&Path>) -> anyhow::Result<Self> {
        let client = Client::new(&Endpoint {
            url: target.url.clone(),
            ca: target.ca.clone(),
            insecure_http: target.insecure_http,
        })?;
        let crate::remote::LocalNames { app, envs } = crate::remote::LocalNames::read(config)?;
        let project = target.project.clone().or(app).ok_or_else(|| {
            anyhow::anyhow!(
                "which project of the server? pass --project NAME (there is no soar.toml here to take [app] name from)"
            )
        })?;
        Ok(Self {
            client,
            project,
            envs,
            plans: Mutex::default(),
        })
    }

    /// The project's NAME on the server, and the server.
    pub fn describe(&self) -> String {
        format!("project {} on {}", self.project, self.client.server())
    }

    /// The environment a call acts on: the one given, else the local
    /// soar.toml's only one.
    fn env(&self, given: Option<String>) -> anyhow::Result<String> {
        if let Some(e) = given {
            return Ok(e);
        }
        let names: Vec<&String> = self.envs.keys().collect();
        match names.as_slice() {
            [only] => Ok((*only).clone()),
            [] => anyhow::bail!(
                "which environment of {} on the server? pass `environment`",
                self.project
            ),
            many => anyhow::bail!(
                "which environment of {}? pass `environment`: one of {}",
                self.project,
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `plan`: `POST /v1/plans`.
    pub async fn plan(&self, input: PlanInput) -> Outcome {
        self.outcome(async {
            let env = self.env(input.environment)?;
            let saved = self
                .client
                .plan(&wire::PlanRequest {
                    project: &self.project,
                    environment: &env,
                })
                .await?;
            self.plans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(saved.id.clone(), env.clone());
            let (out, captured) = reporter(false);
            let provider = self
                .envs
                .get(&env)
                .filter(|p| !p.is_empty())
                .map_or("on the server", String::as_str);
            let mut renderer = Renderer::new(&out, provider);
            for event in &saved.plan {
                renderer.show(event);
            }
            let summary = saved.plan.iter().find(|e| e["type"] == "change_summary");
            let text = format!(
                "{}\nPlan id {} ({env} of {}). Deploy exactly this plan with the `deploy` tool and this plan_id.",
                captured.stdout().trim_end(),
                saved.id,
                self.project,
            );
            Ok(Outcome::success(
                text,
                json!({
                    "plan_id": saved.id,
                    "environment": env,
                    "project": self.project,
                    "server": self.client.server(),
                    "has_changes": summary.map(|s| s["no_changes"] == false),
                    "summary": summary.map(|s| s["changes"].clone()),
                    "changes": of_type(saved.plan.clone(), "planned_change")
                        .into_iter()
                        .map(|c| c["change"].clone())
                        .collect::<Vec<_>>(),
                    "notes": of_type(saved.plan.clone(), "note")
                        .into_iter()
                        .map(|n| n["message"].clone())
                        .collect::<Vec<_>>(),
                }),
            ))
        })
        .await
    }

    /// `deploy`: a deploy job of the plan, followed to its end.
    pub async fn deploy(&self, input: DeployInput) -> Outcome {
        let id = input.plan_id;
        self.outcome(async {
            let known = self
                .plans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            let env = match known {
                Some(env) => env,
                None => self.env(None).with_context(|| {
                    format!(
                        "plan {id} was not made in this session, so its environment is not known"
                    )
                })?,
            };
            let job = self
                .client
                .submit(&wire::DeployRequest {
                    project: &self.project,
                    environment: &env,
                    plan: Some(&id),
                })
                .await?;
            let events = self.follow(&job.id).await?;
            let deployed = events.iter().find(|e| e["type"] == "deployed");
            let url = deployed.and_then(|d| d["url"].as_str()).unwrap_or_default();
            let text = match deployed.and_then(|d| d["release"].as_str()) {
                Some(release) => format!(
                    "Deployed {env} of {} (job {}): {url} (release {release}).",
                    self.project, job.id
                ),
                None => format!(
                    "Applied plan {id} to {env} of {} (job {}): {url}.",
                    self.project, job.id
                ),
            };
            Ok(Outcome::success(
                text,
                json!({
                    "plan_id": id,
                    "environment": env,
                    "project": self.project,
                    "job": job.id,
                    "url": deployed.map(|d| d["url"].clone()),
                    "release": deployed.map(|d| d["release"].clone()),
                    "changed": deployed.map(|d| d["changed"].clone()),
                }),
            ))
        })
        .await
    }

    /// `status`: the server's `soar status --json` object of each
    /// environment (one, or each the local soar.toml names).
    pub async fn status(&self, input: StatusInput) -> Outcome {
        self.outcome(async {
            let envs = match input.environment {
                Some(e) => vec![e],
                None if !self.envs.is_empty() => self.envs.keys().cloned().collect(),
                None => vec![self.env(None)?],
            };
            let mut environments = Vec::new();
            for env in &envs {
                environments.push(self.client.status(&self.project, env).await?);
            }
            let text = environments
                .iter()
                .map(status_line)
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Outcome::success(
                text,
                json!({ "environments": environments }),
            ))
        })
        .await
    }

    /// `history`: the environment's audit trail, newest first.
    pub async fn history(&self, input: HistoryInput) -> Outcome {
        self.outcome(async {
            let limit = input.limit.unwrap_or(20) as usize;
            let records = self
                .client
                .history(&self.project, input.environment.as_deref(), limit)
                .await?;
            Ok(Outcome::success(
                history_text(&records),
                json!({ "records": records }),
            ))
        })
        .await
    }

    /// `logs`: the service's last lines.
    pub async fn logs(&self, input: LogsInput) -> Outcome {
        self.outcome(async {
            let lines = input.lines.unwrap_or(100);
            anyhow::ensure!(
                (1..=super::ops::MAX_LOG_LINES).contains(&lines),
                "lines must be between 1 and {}, not {lines}",
                super::ops::MAX_LOG_LINES
            );
            let env = self.env(input.environment)?;
            let logs = self
                .client
                .logs(&self.project, Some(&env), lines as usize)
                .await?;
            Ok(Outcome::success(
                format!(
                    "The last {} line(s) of {env} of {}:\n{}",
                    logs.lines.len(),
                    self.project,
                    logs.lines.join("\n")
                ),
                json!({ "environment": env, "project": self.project, "lines": logs.lines }),
            ))
        })
        .await
    }

    /// `rollback`: a rollback job to the previous release, followed to its
    /// end.
    pub async fn rollback(&self, input: RollbackInput) -> Outcome {
        self.outcome(async {
            anyhow::ensure!(
                input.to.is_none(),
                "a server rolls back to the release before the active one only: leave `to` out (or roll back step by step)"
            );
            let env = self.env(input.environment)?;
            let job = self.client.rollback(&self.project, &env).await?;
            self.follow(&job.id).await?;
            let status = self.client.status(&self.project, &env).await?;
            let release = status["release"].clone();
            Ok(Outcome::success(
                format!(
                    "Rolled {env} of {} back (job {}): release {} is active.",
                    self.project,
                    job.id,
                    release["id"].as_str().unwrap_or("unknown")
                ),
                json!({ "environment": env, "project": self.project, "job": job.id, "release": release }),
            ))
        })
        .await
    }

    /// Follow job `id` to its end; its events (as `soar deploy --json`
    /// prints them) when it succeeded, else its error.
    async fn follow(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let (out, captured) = reporter(true);
        let mut renderer = Renderer::new(&out, "");
        let mut last = None;
        let end = match remote::follow(
            &self.client,
            id,
            &mut renderer,
            &mut last,
            std::future::pending(),
        )
        .await?
        {
            Followed::End(end) => end,
            Followed::Stopped => anyhow::bail!("stopped following job {id}"),
        };
        if end.status != "succeeded" {
            let hint = format!(
                "job {id} on {} ended {}; its events: GET /v1/deploys/{id}/events",
                self.client.server(),
                end.status
            );
            let e = match (renderer.take_error(), end.error) {
                (Some(reported), _) => reported.into_error(),
                (None, Some(error)) => anyhow::anyhow!(error),
                (None, None) => anyhow::anyhow!("the job ended {}", end.status),
            };
            return Err(e.context(hint));
        }
        Ok(captured
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    async fn outcome(&self, work: impl Future<Output = anyhow::Result<Outcome>>) -> Outcome {
        work.await.unwrap_or_else(|e| failure(&e))
    }
}

/// A reporter writing into memory: events (`json`) or text.
fn reporter(json: bool) -> (Reporter, crate::report::Captured) {
    Reporter::buffered(Settings {
        json,
        color: ColorChoice::Never,
        quiet: false,
        verbose: 0,
    })
}
