//! The host imports' native stand-ins, module for module and signature for
//! signature the `soar:plugin` imports [`crate::host`] switches between.

/// `soar:plugin/http`.
pub(crate) mod http {
    pub(crate) use crate::bindings::soar::plugin::http::*;
    use crate::{TransportError, TransportReason};

    /// Recorded, then answered by the test's handler.
    pub(crate) fn send(req: &Request) -> Result<Response, TransportError> {
        super::super::with(|s| s.requests.push(req.clone()));
        // Taken out while it runs, so a handler may itself look at the
        // stand-in (its requests so far) without a double borrow.
        let Some(mut handler) = super::super::with(|s| s.http.take()) else {
            return Err(TransportError {
                reason: TransportReason::Invalid,
                message: format!(
                    "{} {}: no HTTP answers set up: call StandIn::on_http in the test",
                    method_name(req.method),
                    req.url
                ),
                size_cap: None,
            });
        };
        let answer = handler(req);
        super::super::with(|s| {
            s.http.get_or_insert(handler);
        });
        answer
    }

    pub(crate) fn secret_names() -> Vec<String> {
        super::super::with(|s| s.secret_names.clone())
    }

    pub(crate) fn credential_claims(credential: &str) -> Option<String> {
        super::super::with(|s| s.claims.get(credential).cloned())
    }

    fn method_name(m: Method) -> &'static str {
        match m {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// `soar:plugin/artifacts`.
pub(crate) mod artifacts {
    use crate::Artifact;
    pub(crate) use crate::bindings::soar::plugin::artifacts::*;

    pub(crate) fn current() -> Option<Artifact> {
        super::super::with(|s| s.artifact.as_ref().map(|(a, _)| a.clone()))
    }

    pub(crate) fn read(path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        super::super::with(|s| {
            let files = s.artifact.as_ref().map(|(_, f)| f);
            let bytes = files.and_then(|f| f.get(path)).ok_or_else(|| {
                format!("no artifact file '{path}' (StandIn::artifact sets them)")
            })?;
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(len as usize).min(bytes.len());
            Ok(bytes[start..end].to_vec())
        })
    }

    /// Digests are the host's work; the stand-in answers with the file's
    /// `sha256` from the artifact's file list, whatever the algorithm.
    pub(crate) fn digest(
        path: &str,
        _algorithm: DigestAlgorithm,
        _input: &DigestInput,
    ) -> Result<String, String> {
        super::super::with(|s| {
            s.artifact
                .as_ref()
                .and_then(|(a, _)| a.files.iter().find(|f| f.path == path))
                .map(|f| f.sha256.clone())
                .ok_or_else(|| format!("no artifact file '{path}' (StandIn::artifact sets them)"))
        })
    }
}

/// `soar:plugin/log`.
pub(crate) mod log {
    pub(crate) use crate::bindings::soar::plugin::log::*;

    pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        super::super::with(|s| s.logs.push((level, message.to_string(), fields.to_vec())));
    }
}

/// `soar:plugin/progress`.
pub(crate) mod progress {
    pub(crate) fn report(task: &str, done: u64, total: Option<u64>) {
        super::super::with(|s| s.progress.push((task.to_string(), done, total)));
    }
}

/// `soar:plugin/clock`: a virtual clock that sleeping moves forward.
pub(crate) mod clock {
    pub(crate) fn now_ms() -> u64 {
        super::super::with(|s| s.now_ms)
    }

    pub(crate) fn sleep(ms: u64) {
        super::super::with(|s| {
            s.now_ms += ms;
            s.slept_ms += ms;
        });
    }
}
