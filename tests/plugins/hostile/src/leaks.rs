//! Attempts to make the host leak a secret or extend trust: echoes, issued
//! and captured values, userinfo, guesses, oversized bodies (modes `leak-*`).
//!
//! `leak-steps` runs a script of requests from the settings, one after the
//! other, and returns what each produced (the response as the plugin saw
//! it, or the broker's error) as one note per step. The tests write the
//! scripts, so every attack is data, not a new build of this component.

use serde::Deserialize;
use soar_sdk::http::{Method, Request, Segment};
use soar_sdk::prelude::*;

/// One request of a script.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Step {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    credential: Option<String>,
    /// Literal body text.
    body: Option<String>,
    /// A service secret spliced in after `body`.
    secret: Option<String>,
    /// `(name, pointer)`: capture a token from the answer.
    capture: Option<(String, String)>,
    /// `(name, origin pointer, token pointer)`: keep an issued Bearer.
    issue_bearer: Option<(String, String, String)>,
    /// `(name, origin pointer, user pointer, password pointer)`.
    issue_basic: Option<(String, String, String, String)>,
    /// `(artifact file, count)`: that many `file` segments of one file.
    files: Option<(String, u32)>,
    /// Send the same request this many times (guessing), default once.
    repeat: u32,
    /// `{guess}` in `body` is replaced by each of these in turn.
    guesses: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Script {
    steps: Vec<Step>,
}

/// Run the `leak-*` mode `mode`.
pub fn plan(mode: &str, ctx: &Context) -> Result<ChangePlan, PluginError> {
    match mode {
        "leak-steps" => {
            let script: Script = ctx.settings()?;
            let mut notes = Vec::new();
            for step in &script.steps {
                if step.guesses.is_empty() {
                    for _ in 0..step.repeat.max(1) {
                        notes.push(run(step, step.body.clone()));
                    }
                } else {
                    for g in &step.guesses {
                        let body = step.body.as_ref().map(|b| b.replace("{guess}", g));
                        notes.push(run(step, body));
                    }
                }
            }
            Ok(ChangePlan {
                changes: vec![],
                diagnostics: vec![],
                notes,
            })
        }
        other => Err(PluginError::Other(format!("unknown mode {other:?}"))),
    }
}

/// One request; what the plugin observed, as JSON text.
fn run(step: &Step, body: Option<String>) -> String {
    let method = match step.method.as_str() {
        "post" => Method::Post,
        "put" => Method::Put,
        "delete" => Method::Delete,
        _ => Method::Get,
    };
    let mut req = Request::new(method, &step.url);
    for (k, v) in &step.headers {
        req = req.header(k, v);
    }
    if let Some(c) = &step.credential {
        req = req.credential(c);
    }
    let mut segments = Vec::new();
    if let Some(b) = &body {
        segments.push(Segment::Bytes(b.as_bytes().to_vec()));
    }
    if let Some(name) = &step.secret {
        segments.push(Segment::Secret(name.clone()));
    }
    if let Some((file, count)) = &step.files {
        for _ in 0..*count {
            segments.push(Segment::File(file.clone()));
        }
    }
    if !segments.is_empty() {
        req = req.segments(segments);
    }
    if let Some((name, pointer)) = &step.capture {
        req = req.capture(name, pointer);
    }
    if let Some((name, origin, token)) = &step.issue_bearer {
        req = req.issues_bearer(name, origin, token);
    }
    if let Some((name, origin, user, password)) = &step.issue_basic {
        req = req.issues_basic(name, origin, user, password);
    }
    match req.send() {
        Ok(resp) => json!({
            "status": resp.status,
            "headers": resp.headers,
            "body": resp.text(),
        })
        .to_string(),
        Err(e) => json!({ "error": format!("{e:?}") }).to_string(),
    }
}
