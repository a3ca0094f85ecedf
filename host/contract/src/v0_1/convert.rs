//! Conversions between `soar:plugin@0.1.0` and the current contract, one
//! function per crossing, named after what crosses.
//!
//! Where 0.1.0 had a string and the current contract a type, the mapping is
//! written out here and nowhere else:
//! - an endpoint's `kind` string: `ssh`, `local`, `url` map to their enum
//!   value; any other kind is kept as a `url` when the address is an
//!   `http(s)://` URL (what the 0.1.0 host did with it) and dropped
//!   otherwise (the 0.1.0 host ignored it for rollouts too);
//! - a resource's `state` string maps to its enum value, or `other(text)`;
//! - `"soar:deploys-artifact": true` in a change's `after` (or, for a
//!   delete, `before`) becomes the
//!   change's `deploys-artifact` field (the attributes are left as they
//!   came, so state written by 0.1.0 plugins compares equal);
//! - a 0.1.0 plugin's `transport(text)` error carries no reason, so it
//!   becomes `other(text)`: the user sees the same words;
//! - the current contract's typed transport errors fold back into 0.1.0's
//!   variants (every refusal is `denied`, DNS/TLS/connection are `failed`);
//! - `send-issuing(req, issued)` is `send` with `issued` in the request.

use super::exports::soar::plugin::provider as old_provider;
use super::soar::plugin::{artifacts as old_artifacts, http as old_http, log as old_log};
use super::soar::plugin::{ssh as old_ssh, types as old};
use crate::exports::soar::plugin::provider as new_provider;
use crate::soar::plugin::{artifacts as new_artifacts, http as new_http, log as new_log};
use crate::soar::plugin::{ssh as new_ssh, types as new};

/// The attribute key 0.1.0 plugins used for what is now
/// `change.deploys-artifact`.
pub const DEPLOYS_ARTIFACT_KEY: &str = "soar:deploys-artifact";

// ---- host → 0.1.0 plugin: export arguments ----

/// The context of a call, for a 0.1.0 plugin.
pub fn context(c: &new::Context) -> old::Context {
    old::Context {
        app: c.app.clone(),
        environment: c.environment.clone(),
        settings: c.settings.clone(),
        endpoints: c.endpoints.clone(),
        artifact: c.artifact.as_ref().map(artifact),
    }
}

/// The artifact of a call, for a 0.1.0 plugin.
pub fn artifact(a: &new::Artifact) -> old::Artifact {
    old::Artifact {
        kind: match a.kind {
            new::ArtifactKind::Binary => old::ArtifactKind::Binary,
            new::ArtifactKind::Script => old::ArtifactKind::Script,
            new::ArtifactKind::Static => old::ArtifactKind::Static,
            new::ArtifactKind::Tarball => old::ArtifactKind::Tarball,
        },
        digest: a.digest.clone(),
        files: a
            .files
            .iter()
            .map(|f| old::ArtifactFile {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect(),
    }
}

/// A change handed back to a 0.1.0 plugin's `apply`: as it planned it (its
/// `after` still holds the attribute key, if it set it).
pub fn change(c: &new::Change) -> old::Change {
    old::Change {
        action: match c.action {
            new::ChangeAction::Create => old::ChangeAction::Create,
            new::ChangeAction::Update => old::ChangeAction::Update,
            new::ChangeAction::Replace => old::ChangeAction::Replace,
            new::ChangeAction::Delete => old::ChangeAction::Delete,
            new::ChangeAction::NoOp => old::ChangeAction::NoOp,
        },
        kind: c.kind.clone(),
        name: c.name.clone(),
        reason: c.reason.clone(),
        before: c.before.clone(),
        after: c.after.clone(),
        payload: c.payload.clone(),
    }
}

// ---- 0.1.0 plugin → host: export results ----

/// A 0.1.0 plugin's description.
pub fn description(d: old_provider::Description) -> new_provider::Description {
    let caps = d.capabilities;
    new_provider::Description {
        name: d.name,
        version: d.version,
        summary: d.summary,
        artifacts: d.artifacts.into_iter().map(artifact_kind).collect(),
        settings_schema: d.settings_schema,
        capabilities: new_provider::Capabilities {
            endpoints: caps
                .endpoints
                .into_iter()
                .map(|e| new_provider::EndpointDecl {
                    name: e.name,
                    default_url: e.default_url,
                })
                .collect(),
            extra_hosts: caps.extra_hosts,
            credentials: caps
                .credentials
                .into_iter()
                .map(|c| new_provider::Credential {
                    name: c.name,
                    scheme: match c.scheme {
                        old_provider::CredentialScheme::Bearer => {
                            new_provider::CredentialScheme::Bearer
                        }
                        old_provider::CredentialScheme::AwsSigv4(service) => {
                            new_provider::CredentialScheme::AwsSigv4(service)
                        }
                    },
                    env: c.env,
                    endpoints: c.endpoints,
                })
                .collect(),
            ssh: caps.ssh,
        },
    }
}

fn artifact_kind(k: old::ArtifactKind) -> new::ArtifactKind {
    match k {
        old::ArtifactKind::Binary => new::ArtifactKind::Binary,
        old::ArtifactKind::Script => new::ArtifactKind::Script,
        old::ArtifactKind::Static => new::ArtifactKind::Static,
        old::ArtifactKind::Tarball => new::ArtifactKind::Tarball,
    }
}

/// A 0.1.0 plugin's diagnostics.
pub fn diagnostics(ds: Vec<old::Diagnostic>) -> Vec<new::Diagnostic> {
    ds.into_iter()
        .map(|d| new::Diagnostic {
            severity: match d.severity {
                old::Severity::Error => new::Severity::Error,
                old::Severity::Warning => new::Severity::Warning,
                old::Severity::Info => new::Severity::Info,
            },
            message: d.message,
            field: d.field,
            hint: d.hint,
        })
        .collect()
}

/// A 0.1.0 plugin's plan.
pub fn change_plan(p: old::ChangePlan) -> new::ChangePlan {
    new::ChangePlan {
        changes: p.changes.into_iter().map(planned_change).collect(),
        diagnostics: diagnostics(p.diagnostics),
        notes: p.notes,
    }
}

fn planned_change(c: old::Change) -> new::Change {
    let deploys_artifact = c
        .after
        .as_deref()
        .or(c.before.as_deref())
        .is_some_and(says_it_deploys_the_artifact);
    new::Change {
        action: match c.action {
            old::ChangeAction::Create => new::ChangeAction::Create,
            old::ChangeAction::Update => new::ChangeAction::Update,
            old::ChangeAction::Replace => new::ChangeAction::Replace,
            old::ChangeAction::Delete => new::ChangeAction::Delete,
            old::ChangeAction::NoOp => new::ChangeAction::NoOp,
        },
        kind: c.kind,
        name: c.name,
        reason: c.reason,
        before: c.before,
        after: c.after,
        payload: c.payload,
        deploys_artifact,
    }
}

/// Whether 0.1.0 attributes (a JSON object) carry the deploys-artifact key
/// set to `true`. Unparseable text says no: the host validates attributes
/// itself and reports them.
fn says_it_deploys_the_artifact(attributes: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(attributes)
        .is_ok_and(|m| m.get(DEPLOYS_ARTIFACT_KEY) == Some(&serde_json::Value::Bool(true)))
}

/// A 0.1.0 plugin's applied change.
pub fn applied(a: old::Applied) -> new::Applied {
    new::Applied {
        resource: a.resource.map(managed_resource),
        endpoints: endpoints(a.endpoints),
        messages: a.messages,
    }
}

fn managed_resource(r: old::ManagedResource) -> new::ManagedResource {
    new::ManagedResource {
        kind: r.kind,
        name: r.name,
        id: r.id,
        attributes: r.attributes,
    }
}

fn endpoints(es: Vec<old::Endpoint>) -> Vec<new::Endpoint> {
    es.into_iter()
        .filter_map(|e| {
            let kind = match e.kind.as_str() {
                "ssh" => new::EndpointKind::Ssh,
                "local" => new::EndpointKind::Local,
                "url" => new::EndpointKind::Url,
                _ if e.address.starts_with("http://") || e.address.starts_with("https://") => {
                    new::EndpointKind::Url
                }
                _ => return None,
            };
            Some(new::Endpoint {
                kind,
                address: e.address,
                port: e.port,
                user: e.user,
            })
        })
        .collect()
}

/// A 0.1.0 plugin's status answer.
pub fn resource_statuses(ss: Vec<old::ResourceStatus>) -> Vec<new::ResourceStatus> {
    ss.into_iter()
        .map(|s| new::ResourceStatus {
            resource: managed_resource(s.resource),
            state: new::ResourceState::from_word(&s.state),
            endpoints: endpoints(s.endpoints),
        })
        .collect()
}

/// A 0.1.0 plugin's error.
pub fn plugin_error(e: old::PluginError) -> new::PluginError {
    match e {
        old::PluginError::InvalidConfig(ds) => new::PluginError::InvalidConfig(diagnostics(ds)),
        old::PluginError::Api(a) => new::PluginError::Api(new::ApiError {
            status: a.status,
            code: a.code,
            message: a.message,
            request_id: a.request_id,
        }),
        old::PluginError::Transport(m) | old::PluginError::Other(m) => new::PluginError::Other(m),
    }
}

// ---- 0.1.0 plugin → host: import arguments ----

/// A 0.1.0 request (and, for `send-issuing`, what its answer issues).
pub fn request(r: old_http::Request, issued: Vec<old_http::IssuedCredential>) -> new_http::Request {
    new_http::Request {
        method: match r.method {
            old_http::Method::Get => new_http::Method::Get,
            old_http::Method::Head => new_http::Method::Head,
            old_http::Method::Post => new_http::Method::Post,
            old_http::Method::Put => new_http::Method::Put,
            old_http::Method::Patch => new_http::Method::Patch,
            old_http::Method::Delete => new_http::Method::Delete,
        },
        url: r.url,
        headers: r.headers,
        body: match r.body {
            old_http::Body::Empty => new_http::Body::Empty,
            old_http::Body::Segments(s) => new_http::Body::Segments(segments(s)),
            old_http::Body::Form(f) => new_http::Body::Form(f),
            old_http::Body::Multipart(parts) => new_http::Body::Multipart(
                parts
                    .into_iter()
                    .map(|p| new_http::Part {
                        name: p.name,
                        filename: p.filename,
                        content_type: p.content_type,
                        content: segments(p.content),
                    })
                    .collect(),
            ),
        },
        credential: r.credential,
        capture: r.capture.map(|c| new_http::Capture {
            credential: c.credential,
            pointer: c.pointer,
        }),
        issued: issued
            .into_iter()
            .map(|i| new_http::IssuedCredential {
                credential: i.credential,
                scheme: match i.scheme {
                    old_http::IssuedScheme::Bearer(p) => new_http::IssuedScheme::Bearer(p),
                    old_http::IssuedScheme::Basic(b) => {
                        new_http::IssuedScheme::Basic(new_http::BasicPointers {
                            user: b.user,
                            password: b.password,
                        })
                    }
                },
                origin: i.origin,
            })
            .collect(),
        timeout_ms: r.timeout_ms,
        region: r.region,
    }
}

fn segments(s: Vec<old_http::Segment>) -> Vec<new_http::Segment> {
    s.into_iter()
        .map(|s| match s {
            old_http::Segment::Bytes(b) => new_http::Segment::Bytes(b),
            old_http::Segment::File(f) => new_http::Segment::File(f),
            old_http::Segment::FileBase64(f) => new_http::Segment::FileBase64(f),
            old_http::Segment::Secret(n) => new_http::Segment::Secret(n),
            old_http::Segment::SecretJson(n) => new_http::Segment::SecretJson(n),
        })
        .collect()
}

/// An SSH target named by a 0.1.0 plugin.
pub fn ssh_target(t: old_ssh::Target) -> new_ssh::Target {
    new_ssh::Target {
        address: t.address,
        port: t.port,
        user: t.user,
    }
}

/// A digest request of a 0.1.0 plugin.
pub fn digest_request(
    algorithm: old_artifacts::DigestAlgorithm,
    input: old_artifacts::DigestInput,
) -> (new_artifacts::DigestAlgorithm, new_artifacts::DigestInput) {
    (
        match algorithm {
            old_artifacts::DigestAlgorithm::Sha256 => new_artifacts::DigestAlgorithm::Sha256,
            old_artifacts::DigestAlgorithm::Blake3 => new_artifacts::DigestAlgorithm::Blake3,
        },
        new_artifacts::DigestInput {
            base64_content: input.base64_content,
            suffix: input.suffix,
        },
    )
}

/// A 0.1.0 log level.
pub fn log_level(l: old_log::Level) -> new_log::Level {
    match l {
        old_log::Level::Trace => new_log::Level::Trace,
        old_log::Level::Debug => new_log::Level::Debug,
        old_log::Level::Info => new_log::Level::Info,
        old_log::Level::Warn => new_log::Level::Warn,
        old_log::Level::Error => new_log::Level::Error,
    }
}

// ---- host → 0.1.0 plugin: import results ----

/// A brokered answer, for a 0.1.0 plugin.
pub fn response(r: new_http::Response) -> old_http::Response {
    old_http::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

/// A broker's refusal or failure, as 0.1.0's HTTP error.
pub fn http_error(e: new::TransportError) -> old_http::Error {
    use new::TransportReason as R;
    match e.reason {
        R::Undeclared | R::NotGranted | R::CredentialMissing | R::Denied => {
            old_http::Error::Denied(e.message)
        }
        R::Timeout => old_http::Error::Timeout(e.message),
        R::TooLarge => old_http::Error::TooLarge(e.size_cap.unwrap_or_default()),
        R::Invalid => old_http::Error::Invalid(e.message),
        R::Dns | R::Tls | R::Connection | R::HostKey => old_http::Error::Failed(e.message),
    }
}

/// An SSH command's output, for a 0.1.0 plugin.
pub fn ssh_output(o: new_ssh::Output) -> old_ssh::Output {
    old_ssh::Output {
        exit_code: o.exit_code,
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

/// The SSH broker's refusal or failure, as 0.1.0's SSH error.
pub fn ssh_error(e: new::TransportError) -> old_ssh::Error {
    use new::TransportReason as R;
    match e.reason {
        R::Undeclared | R::NotGranted | R::CredentialMissing | R::Denied => {
            old_ssh::Error::Denied(e.message)
        }
        R::Timeout => old_ssh::Error::Timeout(e.message),
        R::HostKey => old_ssh::Error::HostKey(e.message),
        R::TooLarge | R::Invalid | R::Dns | R::Tls | R::Connection => {
            old_ssh::Error::Failed(e.message)
        }
    }
}
