//! The CLI as a client of `soar serve`: `soar deploy --server URL` and
//! friends submit to a server and follow the job's Server-Sent Events,
//! showing them through the same [`crate::report::Reporter`] a local run
//! writes to.
//!
//! - [`client`]: which URLs get the token, the routes, errors as one line;
//! - [`sse`]: the event-stream parser;
//! - [`wire`]: the client's own serde types of the server's JSON;
//! - [`render`]: events as a local run shows them.
//!
//! This module knows the server only by its HTTP API and uses no code of
//! `crate::serve`: the API is the contract both sides keep, and the
//! integration tests hold this client to the real server.

pub mod client;
mod local;
pub mod render;
pub mod sse;
pub mod wire;

use std::future::Future;
use std::time::Duration;

pub use client::{Client, Endpoint, ServerError, TOKEN_ENV};
pub use local::LocalNames;
pub use render::Renderer;

/// How many times a dropped event stream is resumed (with
/// `Last-Event-ID`, so nothing is shown twice) before giving up.
const RESUMES: u32 = 5;

/// How following a job ended.
#[derive(Debug)]
pub enum Followed {
    /// The job ended: its final status.
    End(wire::End),
    /// `stop` fired first: the job goes on on the server.
    Stopped,
}

/// Follow job `id`'s events to its end, showing each with `renderer`,
/// until `stop` resolves (the user's Ctrl-C). A stream that drops (the
/// server restarting, a proxy timing out) is resumed after the last event
/// seen.
///
/// `last` is the id of the last event shown: following starts after it
/// (from the start when `None`) and leaves it at the last one shown, so a
/// second call goes on where the first stopped.
pub async fn follow(
    client: &Client,
    id: &str,
    renderer: &mut Renderer,
    last: &mut Option<String>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Followed> {
    tokio::pin!(stop);
    let mut resumes = 0;
    loop {
        let mut events = tokio::select! {
            r = client.events(id, last.as_deref()) => match r {
                Ok(events) => events,
                // The server said no (401, 404): say why, do not retry.
                Err(e) if e.is::<ServerError>() || resumes >= RESUMES => return Err(e),
                Err(e) => {
                    tracing::info!("following deploy {id}: {e:#}; resuming");
                    resumes += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut stop => return Ok(Followed::Stopped),
        };
        loop {
            let message = tokio::select! {
                m = events.next() => m,
                () = &mut stop => return Ok(Followed::Stopped),
            };
            match message {
                Ok(Some(m)) if m.event == "progress" => {
                    resumes = 0;
                    if m.id.is_some() {
                        *last = m.id;
                    }
                    match serde_json::from_str(&m.data) {
                        Ok(v) => renderer.show(&v),
                        Err(e) => tracing::warn!("deploy {id}: an event that is not JSON: {e}"),
                    }
                }
                Ok(Some(m)) if m.event == "end" => {
                    return serde_json::from_str(&m.data).map(Followed::End).map_err(|e| {
                        anyhow::anyhow!("the server's end event of deploy {id} is not one this soar reads: {e}")
                    });
                }
                Ok(Some(m)) if m.event == "error" => anyhow::bail!(
                    "the server cannot read the events of deploy {id} ({}); its log says more",
                    crate::terminal::line(&m.data)
                ),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) if resumes < RESUMES => break,
                Ok(None) => anyhow::bail!(
                    "the server closed the event stream of deploy {id} before it ended, {RESUMES} times"
                ),
                Err(e) => return Err(e),
            }
        }
        resumes += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
