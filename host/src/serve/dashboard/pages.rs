//! The three pages behind the login: the overview (every environment and
//! the latest jobs), one environment (status, buttons, jobs, history,
//! logs) and one job (its steps and events, live while it runs). See
//! [`super::layout`] for why every string here is escaped.

use maud::{Markup, html};
use serde_json::Value;

use super::data::{EnvDetail, EnvView};
use super::layout::{
    Viewer, badge, csrf_field, health, metrics, page, short_time, url, watched, when,
};
use super::phases::{self, DEPLOY_STEPS, ROLLBACK_STEPS};
use crate::serve::jobs::{self, Event, Job};
use crate::serve::monitoring::Watched;

/// The path of an environment's page.
fn env_path(project: &str, env: &str) -> String {
    format!("/ui/env/{}/{}", segment(project), segment(env))
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `/`: every environment `who` may see, and the latest jobs.
pub fn overview(viewer: &Viewer<'_>, envs: &[EnvView], recent: &[Job]) -> Markup {
    page(
        "Environments",
        Some(viewer),
        html! {
            h1 { "Environments" }
            @if envs.is_empty() { p.muted { "No project on this server is visible to this token." } }
            div.grid {
                @for e in envs { (env_card(e)) }
            }
            h2 { "Recent jobs" }
            (job_table(recent, true))
        },
    )
}

fn env_card(e: &EnvView) -> Markup {
    html! {
        article.card.env data-env={ (e.project) "/" (e.env) } {
            h3 {
                a href=(env_path(&e.project, &e.env)) { (e.project) " / " (e.env) }
                " " span.muted { (e.provider) }
            }
            @match &e.status {
                Ok(s) => {
                    p { (badge(health(s, &e.watched))) }
                    dl {
                        (watched(&e.watched))
                        dt { "Release" } dd.release { (s["release"]["id"].as_str().unwrap_or("none")) }
                        @if let Some(u) = s["url"].as_str() { dt { "URL" } dd { (url(u)) } }
                        @if let Some(m) = metrics(&s["metrics"]) { dt { "Metrics" } dd { (m) } }
                        @for h in s["hosts"].as_array().into_iter().flatten() {
                            dt { "Host" }
                            dd { (url(h["url"].as_str().unwrap_or_default())) " "
                                 (badge(if h["running"] == true { "healthy" } else { "down" })) }
                        }
                    }
                }
                Err(why) => p.problem { (why) }
            }
        }
    }
}

/// A table of jobs; `with_env` adds the project / environment column.
fn job_table(jobs: &[Job], with_env: bool) -> Markup {
    html! {
        @if jobs.is_empty() { p.muted { "No jobs yet." } }
        @else {
            div.scroll {
                table.jobs {
                    thead { tr {
                        th { "Job" } th { "Kind" }
                        @if with_env { th { "Environment" } }
                        th { "Status" } th { "By" } th { "Created" }
                    } }
                    tbody {
                        @for j in jobs {
                            tr data-job=(j.id) {
                                td { a href={ "/ui/jobs/" (j.id) } { code { (j.id) } } }
                                td { (j.kind) }
                                @if with_env { td { a href=(env_path(&j.project, &j.environment)) { (j.project) " / " (j.environment) } } }
                                td.status data-live-job=[(!jobs::is_final(&j.status)).then(|| format!("/ui/jobs/{}/events", j.id))] {
                                    (badge(&j.status))
                                }
                                td { (j.actor) }
                                td { (short_time(&j.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/ui/env/{project}/{env}`.
pub fn environment(viewer: &Viewer<'_>, project: &str, env: &str, d: &EnvDetail) -> Markup {
    let path = env_path(project, env);
    let body = html! {
        h1 { (project) " / " (env) " " span.muted { (d.provider) } }
        @if viewer.can_deploy() {
            div.actions {
                form.inline method="post" action={ (path) "/deploy" } data-confirm={ "Deploy " (project) " / " (env) " again?" } {
                    (csrf_field(viewer.csrf))
                    button #redeploy type="submit" { "Re-deploy" }
                }
                form.inline method="post" action={ (path) "/rollback" } data-confirm={ "Roll " (project) " / " (env) " back to its previous release?" } {
                    (csrf_field(viewer.csrf))
                    button #rollback.secondary type="submit" { "Roll back" }
                }
            }
        }
        section.card #status {
            h2 { "Status" }
            @match &d.status {
                Ok(s) => (status_list(s, &d.watched, d.history.as_deref().unwrap_or_default())),
                Err(why) => p.problem { (why) },
            }
        }
        section #jobs { h2 { "Jobs" } (job_table(&d.jobs, false)) }
        section #history { h2 { "History" }
            @match &d.history {
                Ok(records) => (history(records)),
                Err(why) => p.problem { (why) },
            }
        }
        // The last lines as the page was made; `app.js` follows from
        // there while the panel is open (`data-follow`), and stops when
        // it is closed.
        section #logs {
            details #logs-panel open data-follow={ (path) "/logs" } {
                summary { h2 { "Logs" } " " span #logs-state.badge.idle { "not live" } }
                @match &d.logs {
                    Ok(lines) => {
                        p #log-empty.muted hidden[!lines.is_empty()] { "No log lines yet." }
                        pre #log-lines.logs hidden[lines.is_empty()] { @for l in lines { (l) "\n" } }
                    }
                    Err(why) => {
                        p #log-empty.problem { (why) }
                        pre #log-lines.logs hidden {}
                    }
                }
                p #logs-problem.problem hidden {}
            }
        }
    };
    page(&format!("{project} / {env}"), Some(viewer), body)
}

/// The status card's facts: `seen` is what the server's monitor saw last,
/// `history` gives the last health transition a monitor recorded.
fn status_list(s: &Value, seen: &[Watched], history: &[Value]) -> Markup {
    let recorded = history.iter().find(|r| r["command"] == "monitor");
    html! {
        dl {
            dt { "Health" } dd #health { (badge(health(s, seen))) }
            (watched(seen))
            @if let Some(r) = recorded {
                dt { "Monitor" } dd { (r["summary"].as_str().unwrap_or_default()) " (" (when(&r["finished_at"])) ")" }
            }
            dt { "Release" } dd.release { (s["release"]["id"].as_str().unwrap_or("none")) }
            @if let Some(at) = s["release"]["activated_at"].as_i64() { dt { "Active since" } dd { (crate::state::format_utc(at)) } }
            @if let Some(u) = s["url"].as_str() { dt { "URL" } dd { (url(u)) } }
            @if let Some(m) = metrics(&s["metrics"]) { dt { "Metrics" } dd { (m) } }
            @for h in s["hosts"].as_array().into_iter().flatten() {
                dt { "Host" }
                dd {
                    (url(h["url"].as_str().unwrap_or_default())) " "
                    (badge(if h["running"] == true { "healthy" } else { "down" }))
                    @if let Some(m) = metrics(&h["metrics"]) { " " span.muted { (m) } }
                }
            }
            @if let Some(e) = s["provider_error"].as_str() { dt { "Provider" } dd.problem { (e) } }
            @if let Some(n) = s["drift"].as_array().map(Vec::len).filter(|n| *n > 0) {
                dt { "Drift" } dd { (n) " difference(s) from the state (" code { "soar status" } " lists them)" }
            }
        }
    }
}

fn history(records: &[Value]) -> Markup {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    html! {
        @if records.is_empty() { p.muted { "Nothing recorded yet." } }
        @else {
            ol.history {
                @for r in records {
                    li {
                        details {
                            summary {
                                (badge(&s(&r["status"]))) " "
                                strong { (s(&r["command"])) } " "
                                span.muted { (when(&r["started_at"])) " · " (s(&r["actor"])) }
                                br;
                                (s(&r["summary"]))
                            }
                            (phase_table(&r["phases"]))
                        }
                    }
                }
            }
        }
    }
}

/// An audit record's phases with their outcomes and durations.
fn phase_table(phases: &Value) -> Markup {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    html! {
        @if let Some(list) = phases.as_array().filter(|l| !l.is_empty()) {
            div.scroll { table.phases {
                @for p in list {
                    tr {
                        td { (s(&p["phase"])) }
                        td { (badge(&s(&p["outcome"]))) }
                        td.num { (p["duration_ms"].as_i64().unwrap_or(0)) " ms" }
                        td { (s(&p["detail"])) }
                    }
                }
            } }
        }
    }
}

/// `/ui/jobs/{id}`: the job's steps and events so far; `app.js` follows
/// the rest live from `/ui/jobs/{id}/events?after=<last seq>`.
pub fn job(viewer: &Viewer<'_>, job: &Job, events: &[Event]) -> Markup {
    let live = !jobs::is_final(&job.status);
    let last = events.last().map_or(0, |e| e.seq);
    let steps = if job.kind == "rollback" {
        ROLLBACK_STEPS
    } else {
        DEPLOY_STEPS
    };
    let reached: Vec<&str> = events
        .iter()
        .filter_map(|e| phases::step_of(&e.data))
        .collect();
    let done = |step: &str| match step {
        "queued" => true,
        "running" => job.status != jobs::QUEUED || !events.is_empty(),
        "finished" => !live,
        other => reached.contains(&other),
    };
    let page_body = html! {
        div #job data-live=(if live { "1" } else { "0" }) data-events={ "/ui/jobs/" (job.id) "/events?after=" (last) } {
            h1 { (job.kind) " of " a href=(env_path(&job.project, &job.environment)) { (job.project) " / " (job.environment) } }
            p {
                span #job-status class={ "badge " (super::layout::tone(&job.status)) } { (job.status) }
                " " span.muted { "job " code { (job.id) } " · by " (job.actor) " · " (short_time(&job.created_at)) }
            }
            ol.steps {
                @for (key, label) in steps {
                    li data-step=(key) class=[done(key).then_some("done")] { (label) }
                }
            }
            p #job-error.problem hidden[job.error.is_none()] { (job.error.as_deref().unwrap_or_default()) }
            h2 { "Events" }
            ol #events.events {
                @for e in events {
                    @let (label, detail) = phases::describe(&e.data);
                    li { span.label { (label) } " " (detail) }
                }
            }
            // Filled in by app.js from this page once a live job ends.
            section #phases hidden[job.audit.is_none()] {
                @if let Some(phases) = job.audit.as_ref().map(|a| &a["phases"]) {
                    h2 { "Phases" }
                    (phase_table(phases))
                }
            }
        }
    };
    page(&format!("Job {}", job.id), Some(viewer), page_body)
}
