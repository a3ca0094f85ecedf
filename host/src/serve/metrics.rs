//! `GET /metrics`: the server's numbers in the Prometheus text format
//! (version 0.0.4), for a `read` token like the rest of the API.
//!
//! The numbers are the job store's, read at each scrape, so they survive a
//! restart and need no bookkeeping in the handlers that change jobs:
//!
//! - `soar_jobs{state}`: jobs by state (every state, zeros included, so a
//!   dashboard's series never vanish);
//! - `soar_queue_depth`: jobs waiting for a slot (queued, or waiting to
//!   retry);
//! - `soar_job_duration_seconds{kind,outcome}`: how long finished jobs ran,
//!   from their start to their end, as a histogram;
//! - `soar_phase_duration_seconds{phase,outcome}`: the phases of the
//!   recent finished jobs ([`RECENT_JOBS`]: validate, build, plan,
//!   transfer, apply, start, verify-health, register ...), from their
//!   audit records;
//! - `soar_brokered_requests_total{transport,plugin,host,status}` and
//!   `soar_brokered_denials_total{plugin,host}`: what the jobs' plugins
//!   asked of the brokers ([`super::brokered`]);
//! - `soar_service_up`, `_healthy`, `_restarts`, `_uptime_seconds`,
//!   `_cpu_seconds`, `_resident_memory_bytes` `{project,env,service,host}`
//!   and `soar_monitor_transitions_total{project,change}`: the services the
//!   server watches ([`super::monitoring`]), as of their last check.
//!
//! A token limited to one project sees that project's numbers only.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::{CONTENT_TYPE, encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rusqlite::params;

use super::api::{AppState, authorize};
use super::brokered::Request;
use super::error::ApiError;
use super::jobs::{self, FAILED, Job, Listing, QUEUED, STATUSES, SUCCEEDED};
use super::monitoring::Watched;
use super::store::Db;
use super::tokens::Scope;

/// Upper bounds of the duration buckets, seconds: a health-checked local
/// deploy takes seconds, a cloud one minutes.
const DURATION_BUCKETS: [f64; 10] = [1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// `soar_jobs`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// `soar_job_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    kind: String,
    outcome: String,
}

/// `soar_phase_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
    outcome: String,
}

/// `soar_brokered_requests_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    transport: String,
    plugin: String,
    host: String,
    status: String,
}

/// `soar_brokered_denials_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    host: String,
}

/// The monitored services' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    project: String,
    env: String,
    service: String,
    host: String,
}

/// `soar_monitor_transitions_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    project: String,
    change: String,
}

/// The newest jobs a scrape looks at for phase durations and brokered
/// requests (each read through [`jobs::list`], so a shared queue's too).
pub const RECENT_JOBS: u32 = 1000;

/// What a scrape shows beside the job counts: the recent jobs, and what
/// the server's memory (the monitors) and the projects' audit trails (the
/// brokers) hold.
#[derive(Debug, Default)]
pub struct Observed {
    /// The newest [`RECENT_JOBS`] jobs.
    pub recent: Vec<Job>,
    /// Brokered requests, by series.
    pub requests: Vec<(Request, u64)>,
    /// The watched services as of their last check.
    pub services: Vec<Watched>,
    /// Health transitions: (project, change, count).
    pub transitions: Vec<(String, String, u64)>,
}

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    let project = who.project.clone();
    let text = tokio::task::spawn_blocking(move || {
        let project = project.as_deref();
        let queue = &state.queue;
        let listing = Listing {
            project,
            limit: RECENT_JOBS,
            ..Listing::default()
        };
        let recent = jobs::list(&queue.db, &listing)?;
        let observed = Observed {
            requests: state.brokered.totals(&recent, &queue.projects, project),
            recent,
            services: state.monitoring.services(project),
            transitions: state.monitoring.transitions(project),
        };
        render(&queue.db, project, &observed)
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))??;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// The exposition of the jobs of `project` (all when `None`) and of what
/// was `observed` of it.
pub fn render(db: &Db, project: Option<&str>, observed: &Observed) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("soar");

    let by_state = Family::<StateLabel, Gauge>::default();
    for s in STATUSES {
        by_state
            .get_or_create(&StateLabel {
                state: s.to_string(),
            })
            .set(0);
    }
    let depth = Gauge::<i64>::default();
    let durations = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
        Histogram::new(DURATION_BUCKETS)
    });
    // The common series exist from the start, so a dashboard has them
    // before the first deploy finishes.
    for outcome in [SUCCEEDED, FAILED] {
        let _ = durations.get_or_create(&DurationLabels {
            kind: "deploy".into(),
            outcome: outcome.into(),
        });
    }

    let numbers = job_numbers(db, project)?;
    for (status, n) in numbers.by_status {
        if status == QUEUED {
            depth.set(n);
        }
        by_state.get_or_create(&StateLabel { state: status }).set(n);
    }
    for (kind, outcome, ms) in numbers.finished {
        durations
            .get_or_create(&DurationLabels { kind, outcome })
            .observe(ms.max(0) as f64 / 1000.0);
    }
    let phases =
        Family::<PhaseLabels, Histogram>::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
    for job in &observed.recent {
        let phases_of = job.audit.as_ref().and_then(|a| a["phases"].as_array());
        for p in phases_of.into_iter().flatten() {
            let (Some(phase), Some(ms)) = (p["phase"].as_str(), p["duration_ms"].as_u64()) else {
                continue;
            };
            phases
                .get_or_create(&PhaseLabels {
                    phase: phase.to_string(),
                    outcome: p["outcome"].as_str().unwrap_or_default().to_string(),
                })
                .observe(ms as f64 / 1000.0);
        }
    }

    registry.register("jobs", "Jobs in the server's store, by state", by_state);
    registry.register(
        "queue_depth",
        "Jobs accepted and waiting for a slot of their provider",
        depth,
    );
    registry.register(
        "job_duration_seconds",
        "How long finished jobs ran, from their start to their end",
        durations,
    );
    registry.register(
        "phase_duration_seconds",
        "How long the phases of finished jobs took, from their audit records",
        phases,
    );
    brokered(&mut registry, &observed.requests);
    services(&mut registry, observed);
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// The job counts and durations a scrape shows.
struct JobNumbers {
    /// (status, jobs in it).
    by_status: Vec<(String, i64)>,
    /// (kind, final status, milliseconds from start to end) of each
    /// finished job that started.
    finished: Vec<(String, String, i64)>,
}

/// The jobs of `project` (all when `None`) by status, and how long the
/// finished ones ran: counted by SQL in this server's store, or, when the
/// server is a worker of a shared queue, from that queue's listing (every
/// worker shows the same numbers).
fn job_numbers(db: &Db, project: Option<&str>) -> anyhow::Result<JobNumbers> {
    if db.shared().is_some() {
        let all = jobs::list(
            db,
            &Listing {
                project,
                limit: u32::MAX,
                ..Listing::default()
            },
        )?;
        let mut by_status: std::collections::BTreeMap<String, i64> = Default::default();
        let mut finished = Vec::new();
        for job in all {
            *by_status.entry(job.status.clone()).or_default() += 1;
            let took = job
                .finished_at
                .as_deref()
                .and_then(unix_ms)
                .zip(job.started_at.as_deref().and_then(unix_ms));
            if let Some((end, start)) = took {
                finished.push((job.kind, job.status, end - start));
            }
        }
        return Ok(JobNumbers {
            by_status: by_status.into_iter().collect(),
            finished,
        });
    }
    let conn = db.conn();
    let mut counts = conn.prepare(
        "SELECT status, COUNT(*) FROM jobs WHERE ?1 IS NULL OR project = ?1 GROUP BY status",
    )?;
    let by_status = counts
        .query_map(params![project], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut durations = conn.prepare(
        "SELECT kind, status, finished_at - started_at FROM jobs \
         WHERE (?1 IS NULL OR project = ?1) AND started_at IS NOT NULL AND finished_at IS NOT NULL",
    )?;
    let finished = durations
        .query_map(params![project], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(JobNumbers {
        by_status,
        finished,
    })
}

/// Unix milliseconds of a job's time as the API shows it
/// (`2026-11-22T10:15:00.123Z`, [`super::store::rfc3339`]).
fn unix_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let n = |from: usize, to: usize| text.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss, ms) = (n(11, 13)?, n(14, 16)?, n(17, 19)?, n(20, 23)?);
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
    // days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// `soar_brokered_requests_total` and `soar_brokered_denials_total`.
fn brokered(registry: &mut Registry, requests: &[(Request, u64)]) {
    let by_series = Family::<RequestLabels, Counter>::default();
    let denials = Family::<DenialLabels, Counter>::default();
    for (r, n) in requests {
        by_series
            .get_or_create(&RequestLabels {
                transport: r.transport.to_string(),
                plugin: r.plugin.clone(),
                host: r.host.clone(),
                status: r.status.clone(),
            })
            .inc_by(*n);
        let denial = denials.get_or_create(&DenialLabels {
            plugin: r.plugin.clone(),
            host: r.host.clone(),
        });
        if r.status == "denied" {
            denial.inc_by(*n);
        }
    }
    registry.register(
        "brokered_requests",
        "HTTP requests and SSH commands the jobs' plugins made through the brokers, by status (HTTP status, exit status, or the failure: denied, timeout, failed)",
        by_series,
    );
    registry.register(
        "brokered_denials",
        "Requests the HTTP broker refused (an undeclared host, a private address)",
        denials,
    );
}

/// The watched services' gauges and the transitions.
fn services(registry: &mut Registry, observed: &Observed) {
    let up = Family::<ServiceLabels, Gauge>::default();
    let healthy = Family::<ServiceLabels, Gauge>::default();
    let restarts = Family::<ServiceLabels, Gauge>::default();
    let uptime = Family::<ServiceLabels, Gauge>::default();
    let cpu = Family::<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let rss = Family::<ServiceLabels, Gauge>::default();
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for w in &observed.services {
        let labels = ServiceLabels {
            project: w.project.clone(),
            env: w.environment.clone(),
            service: w.service.clone(),
            host: w.host.clone(),
        };
        healthy.get_or_create(&labels).set(i64::from(w.healthy));
        let Some(m) = &w.metrics else { continue };
        up.get_or_create(&labels).set(i64::from(m.up));
        if let Some(n) = m.restarts {
            restarts.get_or_create(&labels).set(as_i64(n));
        }
        if let Some(s) = m.uptime_seconds {
            uptime.get_or_create(&labels).set(as_i64(s));
        }
        if let Some(s) = m.cpu_seconds {
            cpu.get_or_create(&labels).set(s);
        }
        if let Some(b) = m.rss_bytes {
            rss.get_or_create(&labels).set(as_i64(b));
        }
    }
    let transitions = Family::<TransitionLabels, Counter>::default();
    for (project, change, n) in &observed.transitions {
        transitions
            .get_or_create(&TransitionLabels {
                project: project.clone(),
                change: change.clone(),
            })
            .inc_by(*n);
    }
    registry.register(
        "service_up",
        "Whether the service manager runs the watched service (1) or not (0), at the last check",
        up,
    );
    registry.register(
        "service_healthy",
        "Whether the watched service's health endpoint answered 2xx at the last check",
        healthy,
    );
    registry.register(
        "service_restarts",
        "Times the service manager restarted the watched service",
        restarts,
    );
    registry.register(
        "service_uptime_seconds",
        "Seconds since the watched service's process started",
        uptime,
    );
    registry.register(
        "service_cpu_seconds",
        "CPU time the watched service's running process has used",
        cpu,
    );
    registry.register(
        "service_resident_memory_bytes",
        "Resident memory of the watched service's process",
        rss,
    );
    registry.register(
        "monitor_transitions",
        "Health transitions (unhealthy, recovered) the server's monitors saw since it started",
        transitions,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_times_read_back_as_they_were_written() {
        for ms in [0, 1_764_000_000_123, 951_782_400_999, 4_102_444_800_000] {
            assert_eq!(unix_ms(&super::super::store::rfc3339(ms)), Some(ms));
        }
        assert_eq!(unix_ms("yesterday"), None);
    }

    #[test]
    fn an_empty_store_has_every_state_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let text = render(&db, None, &Observed::default()).unwrap();
        for s in STATUSES {
            assert!(
                text.contains(&format!("soar_jobs{{state=\"{s}\"}} 0\n")),
                "{text}"
            );
        }
        assert!(
            text.contains("# TYPE soar_queue_depth gauge\nsoar_queue_depth 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE soar_job_duration_seconds histogram\n"),
            "{text}"
        );
    }
}
