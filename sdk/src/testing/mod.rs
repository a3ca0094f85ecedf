//! A stand-in for the host, so a plugin's unit tests run natively.
//!
//! A plugin is a WebAssembly component; its logic (building requests,
//! reading answers, planning) is ordinary Rust that deserves ordinary unit
//! tests. Compiled for the developer's machine instead of `wasm32-wasip2`,
//! the SDK answers the host imports from here (see [`crate::host`]): a test
//! installs a [`StandIn`], tells it how the provider's API answers, calls the
//! plugin's functions and looks at what was sent and logged.
//!
//! ```
//! use soar_sdk::testing::{StandIn, json_response};
//! use soar_sdk::http::Request;
//!
//! let host = StandIn::install();
//! host.on_http(|req| {
//!     assert!(req.url.ends_with("/v2/droplets"));
//!     Ok(json_response(200, &serde_json::json!({"droplets": []})))
//! });
//! let droplets: serde_json::Value = Request::get("https://api.example.com/v2/droplets")
//!     .credential("digitalocean")
//!     .send()
//!     .unwrap()
//!     .json()
//!     .unwrap();
//! assert_eq!(droplets["droplets"], serde_json::json!([]));
//! assert_eq!(host.requests().len(), 1);
//! ```
//!
//! What it does not do is what the host does: no allow-list, no credential
//! injection (`.credential(..)` is recorded, nothing is sent anywhere), no
//! limits. Those are the host's, tested by the host; `soar plugin test`
//! runs a built component through the real host against a fake API.
//!
//! Only on targets other than wasm: a component never contains it.

#![cfg(not(target_family = "wasm"))]

pub(crate) mod stand_in;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub use crate::TransportError as HttpError;
pub use crate::bindings::soar::plugin::http::{Request as SentRequest, Response as WireResponse};
pub use crate::bindings::soar::plugin::log::Level;

type HttpHandler = Box<dyn FnMut(&SentRequest) -> Result<WireResponse, HttpError>>;

/// One log record: level, message, fields.
type LogRecord = (Level, String, Vec<(String, String)>);

/// The stand-in's state for the current thread (each test runs on its own).
#[derive(Default)]
pub(crate) struct State {
    pub(crate) http: Option<HttpHandler>,
    pub(crate) requests: Vec<SentRequest>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) progress: Vec<(String, u64, Option<u64>)>,
    pub(crate) now_ms: u64,
    pub(crate) slept_ms: u64,
    pub(crate) secret_names: Vec<String>,
    pub(crate) claims: BTreeMap<String, String>,
    pub(crate) artifact: Option<(crate::Artifact, BTreeMap<String, Vec<u8>>)>,
}

/// The stand-in clock starts here (2026-01-01T00:00:00Z) and moves only
/// when the plugin sleeps, so polling loops end at once and alike.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

thread_local! {
    static STATE: Rc<RefCell<State>> = Rc::new(RefCell::new(State {
        now_ms: EPOCH_MS,
        ..State::default()
    }));
}

/// Run `f` on this thread's stand-in state.
pub(crate) fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// A handle on this thread's host stand-in. Dropping it resets the
/// stand-in, so one test's answers never leak into the next.
pub struct StandIn {
    _not_send: std::marker::PhantomData<Rc<()>>,
}

impl StandIn {
    /// A fresh stand-in for this thread: no HTTP answers yet (a request
    /// fails with a message saying so), the clock at [`EPOCH_MS`].
    pub fn install() -> Self {
        reset();
        Self {
            _not_send: std::marker::PhantomData,
        }
    }

    /// How the provider's API answers: called for every request the plugin
    /// sends, in order. Replaces the previous handler.
    pub fn on_http(
        &self,
        handler: impl FnMut(&SentRequest) -> Result<WireResponse, HttpError> + 'static,
    ) -> &Self {
        with(|s| s.http = Some(Box::new(handler)));
        self
    }

    /// The names [`crate::http::secret_names`] returns.
    pub fn secret_names(&self, names: &[&str]) -> &Self {
        with(|s| s.secret_names = names.iter().map(|n| n.to_string()).collect());
        self
    }

    /// The claims (JSON) the host would report for a captured credential.
    pub fn credential_claims(&self, credential: &str, claims: &serde_json::Value) -> &Self {
        with(|s| {
            s.claims.insert(credential.to_string(), claims.to_string());
        });
        self
    }

    /// The artifact [`crate::artifact::current`] returns, with its files'
    /// contents by path.
    pub fn artifact(&self, artifact: crate::Artifact, files: &[(&str, &[u8])]) -> &Self {
        let files = files
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        with(|s| s.artifact = Some((artifact, files)));
        self
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<SentRequest> {
        with(|s| s.requests.clone())
    }

    /// Every log record so far, as `level message key=value...`.
    pub fn logs(&self) -> Vec<String> {
        with(|s| {
            s.logs
                .iter()
                .map(|(level, message, fields)| {
                    let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
                    format!("{} {message}{fields}", level_name(*level))
                })
                .collect()
        })
    }

    /// Every progress report so far: task, done, total.
    pub fn progress(&self) -> Vec<(String, u64, Option<u64>)> {
        with(|s| s.progress.clone())
    }

    /// How long the plugin slept in all, in milliseconds of the stand-in
    /// clock.
    pub fn slept_ms(&self) -> u64 {
        with(|s| s.slept_ms)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        reset();
    }
}

fn reset() {
    with(|s| {
        *s = State {
            now_ms: EPOCH_MS,
            ..State::default()
        }
    });
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// A response with a JSON body.
pub fn json_response(status: u16, body: &serde_json::Value) -> WireResponse {
    WireResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests;
