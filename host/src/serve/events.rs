//! `GET /v1/deploys/{id}/events`: Server-Sent Events of a job. Replays every
//! recorded event from the start (or after `Last-Event-ID`), then follows
//! live until the job ends, then sends one `end` event with its status.
//!
//! Each `progress` event's data is one line the deploy printed with
//! `--json`, its id the event's sequence number.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{AppState, authorize, visible_job};
use super::error::ApiError;
use super::jobs;
use super::tokens::Scope;

struct Follow {
    state: AppState,
    id: String,
    last: i64,
    rx: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<Event>,
    done: bool,
}

/// Server-Sent Events of a job: `progress` events (data: one line of
/// `soar deploy --json`, id: its sequence number) replayed from the start or
/// after `Last-Event-ID`, live until the job ends, then one `end` event
/// `{id, status, exit_code, error}`.
#[utoipa::path(get, path = "/v1/deploys/{id}/events", tag = "deploys", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The job"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid token", body = super::error::ErrorBody),
        (status = 404, description = "No such job", body = super::error::ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Scope::Read)?;
    visible_job(&state, &who, &id)?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let rx = state.queue.subscribe();
    let follow = Follow {
        state,
        id,
        last,
        rx,
        pending: VecDeque::new(),
        done: false,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(ev) = f.pending.pop_front() {
                return Some((Ok::<_, Infallible>(ev), f));
            }
            if f.done {
                return None;
            }
            // Mark what we have seen before looking, so a change made while
            // we look wakes the wait below.
            f.rx.borrow_and_update();
            let db = &f.state.queue.db;
            let (new, job) =
                match (jobs::events_after(db, &f.id, f.last), jobs::get(db, &f.id)) {
                    (Ok(new), Ok(Some(job))) => (new, job),
                    _ => {
                        f.pending.push_back(Event::default().event("error").data(
                            json!({ "error": "the job's events cannot be read" }).to_string(),
                        ));
                        f.done = true;
                        continue;
                    }
                };
            if !new.is_empty() {
                for e in new {
                    f.last = e.seq;
                    f.pending.push_back(
                        Event::default()
                            .id(e.seq.to_string())
                            .event("progress")
                            .data(e.data.to_string()),
                    );
                }
                continue;
            }
            if jobs::is_final(&job.status) {
                f.pending.push_back(Event::default().event("end").data(
                    json!({ "id": job.id, "status": job.status, "exit_code": job.exit_code, "error": job.error })
                        .to_string(),
                ));
                f.done = true;
                continue;
            }
            if f.rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
