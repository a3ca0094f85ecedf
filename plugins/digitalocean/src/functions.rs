//! DigitalOcean Functions: a `script` artifact deployed as one OpenWhisk
//! action in a Functions namespace.
//!
//! The namespace is found by label through `/v2/functions/namespaces` (and
//! created there when missing). Its answer carries the `api_host` the
//! namespace is served at and the `uuid`/`key` pair that authenticates there;
//! the plugin asks the host to keep that pair (`send-issuing`), bound to the
//! `api_host`, so the key never enters plugin memory. Everything after that
//! goes to the OpenWhisk actions API at the `api_host` under credential
//! [`CREDENTIAL`].
//!
//! The action carries a `soar-digest` annotation (the artifact's digest), so
//! `plan` compares versions without downloading the code.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use soar_sdk::http::Segment;
use soar_sdk::prelude::*;

use crate::api::{self, CREDENTIAL as API_CREDENTIAL};
use crate::settings::FunctionsSetting;

/// Resource kind of a deployed function.
pub const KIND: &str = "function";
/// Name of the namespace credentials the host keeps (`functions` for one
/// just created, `functions-<index>` for those read from the list).
const CREDENTIAL: &str = "functions";
/// Memory when the settings name none (MB), as DigitalOcean's default.
const DEFAULT_MEMORY: u32 = 256;
/// Time limit when the settings name none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The function as the settings want it (checked locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub namespace: String,
    /// Soar named the namespace, so it may remove it on destroy.
    pub owns_namespace: bool,
    pub region: Option<String>,
    /// Runtime kind; empty when it must come from the artifact.
    pub runtime: String,
    pub main: String,
    pub memory: u32,
    pub timeout_ms: u64,
    pub web: bool,
    pub health: Option<String>,
    pub environment: BTreeMap<String, String>,
}

/// Check the `functions` table; errors go to `errors`.
pub fn desired(
    ctx: &Context,
    f: &FunctionsSetting,
    default_region: Option<&str>,
    errors: &mut Vec<Diagnostic>,
) -> Desired {
    let owns_namespace = f.namespace.is_none();
    let namespace = f
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{}-{}", ctx.app, ctx.environment));
    let name = f.name.clone().unwrap_or_else(|| ctx.app.clone());
    if !action_name_ok(&name) {
        errors.push(Diagnostic::error(format!(
                "digitalocean provider: invalid config: function name '{name}' is not valid (letters, digits, '-', '_', '.', '@' and spaces, starting with a letter, digit or '_')"
            ))
            .at("functions.name"));
    }
    let memory = f.memory.unwrap_or(DEFAULT_MEMORY);
    if !(128..=1024).contains(&memory) {
        errors.push(Diagnostic::error(format!(
                "digitalocean provider: invalid config: functions.memory is {memory} MB; DigitalOcean Functions allow 128 to 1024"
            ))
            .at("functions.memory"));
    }
    let timeout = match &f.timeout {
        Some(t) => crate::settings::duration(t, "functions.timeout").unwrap_or_else(|e| {
            if let PluginError::InvalidConfig(d) = e {
                errors.extend(d);
            }
            DEFAULT_TIMEOUT
        }),
        None => DEFAULT_TIMEOUT,
    };
    let timeout_ms = timeout.as_millis() as u64;
    if !(100..=900_000).contains(&timeout_ms) {
        errors.push(Diagnostic::error(format!(
                "digitalocean provider: invalid config: functions.timeout is {timeout_ms} ms; DigitalOcean Functions allow 100 ms to 15 min"
            ))
            .at("functions.timeout"));
    }
    if let Some(h) = &f.health
        && !h.starts_with('/')
    {
        errors.push(Diagnostic::error(format!(
                "digitalocean provider: invalid config: functions.health '{h}' must be a path starting with '/'"
            ))
            .at("functions.health")
            .hint("write health = \"/health\""));
    }
    if f.health.is_some() && f.web == Some(false) {
        errors.push(
            Diagnostic::error(
                "digitalocean provider: invalid config: functions.health needs a web function (web = true)",
            )
            .at("functions.health"),
        );
    }
    Desired {
        name,
        namespace,
        owns_namespace,
        region: f.region.clone().or(default_region.map(str::to_string)),
        runtime: f.runtime.clone().unwrap_or_default(),
        main: f.main.clone().unwrap_or_else(|| "main".into()),
        memory,
        timeout_ms,
        web: f.web.unwrap_or(true),
        health: f.health.clone(),
        environment: f.environment.clone(),
    }
}

/// OpenWhisk entity names: `[\w@ .-]+`, not starting with a space, ≤ 256.
fn action_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !s.starts_with([' ', '-', '.', '@'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | ' ' | '.' | '-'))
}

/// A namespace as `/v2/functions/namespaces` describes it (the key, when
/// read through [`open`], is a `[captured:…]` marker).
#[derive(Debug, Clone, Deserialize)]
pub struct Namespace {
    pub api_host: String,
    /// `fn-<uuid>`: the OpenWhisk namespace name.
    pub namespace: String,
    #[serde(default)]
    pub label: String,
    /// The host-held credential for this namespace's `api_host`.
    #[serde(skip)]
    pub credential: String,
}

impl Namespace {
    fn actions(&self) -> String {
        format!(
            "{}/api/v1/namespaces/{}/actions",
            self.api_host.trim_end_matches('/'),
            self.namespace
        )
    }

    fn action(&self, name: &str) -> String {
        format!("{}/{}", self.actions(), api::q(name))
    }

    /// Where a web action answers.
    fn web_url(&self, name: &str) -> String {
        format!(
            "{}/api/v1/web/{}/default/{}",
            self.api_host.trim_end_matches('/'),
            self.namespace,
            api::q(name)
        )
    }
}

/// The namespace labelled `label`, if the account has one. The list holds
/// every namespace's key: the host keeps them all (`functions-<index>`), so
/// none reaches this plugin, and the one found is used by name.
fn find_namespace(base: &str, label: &str) -> PluginResult<Option<Namespace>> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        namespaces: Vec<Namespace>,
    }
    let list: List = Request::get(format!("{base}/v2/functions/namespaces"))
        .credential(API_CREDENTIAL)
        .issues_basic(
            &format!("{CREDENTIAL}-*"),
            "/namespaces/*/api_host",
            "/namespaces/*/uuid",
            "/namespaces/*/key",
        )
        .send()?
        .error_for_status()?
        .json()?;
    let mut found: Vec<Namespace> = list
        .namespaces
        .into_iter()
        .enumerate()
        .filter(|(_, n)| n.label == label)
        .map(|(i, n)| Namespace {
            credential: format!("{CREDENTIAL}-{i}"),
            ..n
        })
        .collect();
    found.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(found.into_iter().next())
}

#[derive(Deserialize)]
struct OneNamespace {
    namespace: Namespace,
}

/// Create namespace `label` in `region`; the host keeps its credential.
fn create_namespace(base: &str, label: &str, region: &str) -> PluginResult<Namespace> {
    let ns = Request::post(format!("{base}/v2/functions/namespaces"))
        .credential(API_CREDENTIAL)
        .json(&json!({ "label": label, "region": region }))
        .issues_basic(
            CREDENTIAL,
            "/namespace/api_host",
            "/namespace/uuid",
            "/namespace/key",
        )
        .send()?
        .error_for_status()?
        .json::<OneNamespace>()?
        .namespace;
    Ok(Namespace {
        credential: CREDENTIAL.into(),
        ..ns
    })
}

/// An action as OpenWhisk returns it (without code).
#[derive(Debug, Clone, Deserialize)]
struct Action {
    #[serde(default)]
    exec: Exec,
    #[serde(default)]
    annotations: Vec<KeyValue>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Exec {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    main: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct KeyValue {
    key: String,
    value: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Limits {
    #[serde(default)]
    timeout: u64,
    #[serde(default)]
    memory: u32,
}

impl Action {
    fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// Observable attributes, comparable with [`attrs`].
    fn attrs(&self, d: &Desired, ns: &str) -> Value {
        json!({
            "namespace": ns,
            "runtime": self.exec.kind,
            "main": self.exec.main.clone().unwrap_or_else(|| "main".into()),
            "memory": self.limits.memory,
            "timeout_ms": self.limits.timeout,
            "web": self.annotation("web-export").and_then(Value::as_bool).unwrap_or(false),
            "digest": self.annotation("soar-digest").and_then(Value::as_str).unwrap_or(""),
            "environment": self.annotation("soar-environment").cloned().unwrap_or(json!({})),
            "name": d.name,
        })
    }
}

/// Attributes of the desired function with `runtime` and `digest`.
fn attrs(d: &Desired, runtime: &str, digest: &str) -> Value {
    json!({
        "namespace": d.namespace,
        "runtime": runtime,
        "main": d.main,
        "memory": d.memory,
        "timeout_ms": d.timeout_ms,
        "web": d.web,
        "digest": digest,
        "environment": d.environment,
        "name": d.name,
    })
}

/// The action, or `None` (404).
fn get_action(ns: &Namespace, name: &str) -> PluginResult<Option<Action>> {
    let resp = Request::get(format!("{}?code=false", ns.action(name)))
        .credential(&ns.credential)
        .send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    Ok(Some(resp.error_for_status()?.json()?))
}

/// What the artifact gives: runtime, and the file holding the code.
struct Script {
    runtime: String,
    digest: String,
    /// The single file to deploy.
    file: String,
}

fn script(ctx: &Context, d: &Desired) -> PluginResult<Script> {
    let a = ctx.artifact.as_ref().ok_or_else(|| {
        PluginError::Other(
            "digitalocean provider: a Functions deploy needs a `script` artifact".into(),
        )
    })?;
    if a.kind != ArtifactKind::Script {
        return Err(PluginError::InvalidConfig(vec![Diagnostic::error(format!(
                "digitalocean provider: invalid config: DigitalOcean Functions deploy a `script` artifact, not a {:?} one",
                a.kind
            ))
            .at("functions")
            .hint("set [artifact] kind = \"script\" with the function's source file")]));
    }
    let code: Vec<&soar_sdk::ArtifactFile> = a
        .files
        .iter()
        .filter(|f| runtime_of(&f.path).is_some())
        .collect();
    let file = match code.as_slice() {
        [one] => one.path.clone(),
        [] => {
            return Err(PluginError::Other(format!(
                "digitalocean provider: the script artifact has no .js, .mjs, .cjs or .py file (it holds: {})",
                a.files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        many => {
            return Err(PluginError::Other(format!(
                "digitalocean provider: the script artifact holds {} source files ({}); Soar deploys a Function from one source file: bundle it first (esbuild, for Node) and point [artifact] path at the bundle",
                many.len(),
                many.iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let runtime = if d.runtime.is_empty() {
        runtime_of(&file).unwrap_or_default().to_string()
    } else {
        d.runtime.clone()
    };
    Ok(Script {
        runtime,
        digest: a.digest.clone(),
        file,
    })
}

/// The default runtime for a source file.
fn runtime_of(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "js" | "mjs" | "cjs" => Some("nodejs:18"),
        "py" => Some("python:3.11"),
        _ => None,
    }
}

/// The change that brings the function to `d`.
pub fn plan(ctx: &Context, d: &Desired) -> PluginResult<ChangePlan> {
    let base = ctx.endpoint("api")?;
    let s = script(ctx, d)?;
    let want = attrs(d, &s.runtime, &s.digest);
    let payload = json!({ "desired": d }).to_string();
    let change = |action, reason: String, before: Option<Value>| Change {
        action,
        kind: KIND.into(),
        name: d.name.clone(),
        reason,
        before: before.map(|b| b.to_string()),
        after: Some(want.to_string()),
        payload: payload.clone(),
        deploys_artifact: true,
    };
    let Some(found) = find_namespace(&base, &d.namespace)? else {
        let region = d.region.clone().unwrap_or_default();
        return Ok(one(change(
            ChangeAction::Create,
            format!(
                "new function in a new namespace '{}' ({})",
                d.namespace,
                if region.is_empty() {
                    "no region set"
                } else {
                    &region
                }
            ),
            None,
        )));
    };
    let ns = found;
    let Some(current) = get_action(&ns, &d.name)? else {
        return Ok(one(change(
            ChangeAction::Create,
            format!("no function '{}' in namespace '{}'", d.name, d.namespace),
            None,
        )));
    };
    let have = current.attrs(d, &d.namespace);
    if have == want {
        return Ok(one(change(
            ChangeAction::NoOp,
            format!("version {} is up to date", current.version),
            Some(have),
        )));
    }
    let differs: Vec<&str> = [
        "runtime",
        "main",
        "memory",
        "timeout_ms",
        "web",
        "digest",
        "environment",
    ]
    .into_iter()
    .filter(|k| have[k] != want[k])
    .collect();
    Ok(one(change(
        ChangeAction::Update,
        format!("{} changed", differs.join(", ")),
        Some(have),
    )))
}

fn one(c: Change) -> ChangePlan {
    ChangePlan {
        changes: vec![c],
        diagnostics: Vec::new(),
        notes: Vec::new(),
    }
}

/// Deploy or remove the function.
pub fn apply(ctx: &Context, ch: &Change) -> PluginResult<Applied> {
    let base = ctx.endpoint("api")?;
    #[derive(Deserialize)]
    struct Payload {
        desired: Desired,
    }
    let p: Payload = serde_json::from_str(&ch.payload).map_err(|e| {
        PluginError::Other(format!(
            "digitalocean provider: the plan's payload for function '{}' is unreadable ({e}); run `soar plan` again",
            ch.name
        ))
    })?;
    let d = p.desired;
    if ch.action == ChangeAction::Delete {
        return delete(&base, &d);
    }
    let s = script(ctx, &d)?;
    let ns = match find_namespace(&base, &d.namespace)? {
        Some(found) => found,
        None => {
            let region = d.region.clone().ok_or_else(|| {
                PluginError::InvalidConfig(vec![Diagnostic::error(format!(
                        "digitalocean provider: invalid config: namespace '{}' does not exist and no region is set to create it in",
                        d.namespace
                    ))
                    .at("functions.region")
                    .hint("add region = \"nyc1\" to the functions table (or default_region)")])
            })?;
            soar_sdk::info!("creating Functions namespace '{}' in {region}", d.namespace);
            create_namespace(&base, &d.namespace, &region)?
        }
    };
    let version = put_action(&ns, &d, &s)?;
    let mut messages = vec![format!(
        "deployed function {} version {version} to namespace '{}'",
        d.name, d.namespace
    )];
    if let Some(path) = &d.health {
        messages.push(check_health(&format!("{}{path}", ns.web_url(&d.name)))?);
    }
    Ok(Applied {
        resource: Some(deployed(&ns, &d.name, &attrs(&d, &s.runtime, &s.digest))),
        endpoints: web_endpoints(&ns, &d.name, d.web),
        messages,
    })
}

/// `PUT` the action (overwrite); the service secrets travel as parameters
/// the host splices in, so the plugin never holds them.
fn put_action(ns: &Namespace, d: &Desired, s: &Script) -> PluginResult<String> {
    let code = String::from_utf8(soar_sdk::artifact::read_to_end(&s.file)?).map_err(|_| {
        PluginError::Other(format!(
            "digitalocean provider: {} is not UTF-8 text",
            s.file
        ))
    })?;
    let mut annotations = vec![
        json!({"key": "soar-digest", "value": s.digest}),
        json!({"key": "soar-environment", "value": d.environment}),
        json!({"key": "managed-by", "value": "soar"}),
    ];
    if d.web {
        annotations.push(json!({"key": "web-export", "value": true}));
        annotations.push(json!({"key": "raw-http", "value": false}));
        annotations.push(json!({"key": "final", "value": true}));
    }
    let head = json!({
        "namespace": ns.namespace,
        "name": d.name,
        "exec": {"kind": s.runtime, "code": code, "main": d.main, "binary": false},
        "annotations": annotations,
        "limits": {"timeout": d.timeout_ms, "memory": d.memory},
    })
    .to_string();
    // `{...}` → `{..., "parameters": [plain..., secrets...]}`.
    let mut body = head[..head.len() - 1].to_string();
    body.push_str(",\"parameters\":[");
    let mut first = true;
    for (k, v) in &d.environment {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str(&json!({"key": k, "value": v, "init": true}).to_string());
    }
    let mut segments = Vec::new();
    for name in soar_sdk::http::secret_names() {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str(&format!(
            "{{\"key\":{},\"init\":true,\"value\":",
            Value::String(name.clone())
        ));
        segments.push(Segment::Bytes(std::mem::take(&mut body).into_bytes()));
        segments.push(Segment::SecretJson(name));
        body.push('}');
    }
    body.push_str("]}");
    segments.push(Segment::Bytes(body.into_bytes()));
    #[derive(Deserialize)]
    struct Stored {
        #[serde(default)]
        version: String,
    }
    let stored: Stored = Request::put(format!("{}?overwrite=true", ns.action(&d.name)))
        .credential(&ns.credential)
        .header("content-type", "application/json")
        .segments(segments)
        .send()?
        .error_for_status()?
        .json()?;
    Ok(stored.version)
}

/// GET the web URL until it answers 2xx (a cold start can take seconds).
fn check_health(url: &str) -> PluginResult<String> {
    let mut last = String::new();
    // About 7 s in all: enough for a cold start, short enough to report.
    for attempt in 0..8 {
        if attempt > 0 {
            soar_sdk::time::sleep(Duration::from_millis(250 * attempt));
        }
        match Request::get(url).send() {
            Ok(r) if (200..300).contains(&r.status) => {
                return Ok(format!("health check {url}: {}", r.status));
            }
            Ok(r) => {
                last = format!(
                    "{} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                )
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(PluginError::Other(format!(
        "digitalocean provider: the function deployed but its health check {url} failed: {last}"
    )))
}

/// Remove the action (and the namespace when Soar owns it and it is empty).
fn delete(base: &str, d: &Desired) -> PluginResult<Applied> {
    let Some(found) = find_namespace(base, &d.namespace)? else {
        return Ok(Applied {
            resource: None,
            endpoints: Vec::new(),
            messages: vec![format!("namespace '{}' is already gone", d.namespace)],
        });
    };
    let ns = found;
    let resp = Request::delete(ns.action(&d.name))
        .credential(&ns.credential)
        .send()?;
    let mut messages = vec![if resp.status == 404 {
        format!("function {} was already deleted", d.name)
    } else {
        resp.error_for_status()?;
        format!("deleted function {}", d.name)
    }];
    if d.owns_namespace {
        let left: Vec<Value> = Request::get(ns.actions())
            .credential(&ns.credential)
            .send()?
            .error_for_status()?
            .json()?;
        if left.is_empty() {
            let r = Request::delete(format!(
                "{base}/v2/functions/namespaces/{}",
                api::q(&ns.namespace)
            ))
            .credential(API_CREDENTIAL)
            .send()?;
            if r.status != 404 {
                r.error_for_status()?;
            }
            messages.push(format!("deleted namespace '{}'", d.namespace));
        } else {
            messages.push(format!(
                "kept namespace '{}': it holds {} other function(s)",
                d.namespace,
                left.len()
            ));
        }
    }
    Ok(Applied {
        resource: None,
        endpoints: Vec::new(),
        messages,
    })
}

/// The delete change for `soar destroy`, when the function exists.
pub fn plan_destroy(ctx: &Context, d: &Desired) -> PluginResult<ChangePlan> {
    let base = ctx.endpoint("api")?;
    let mut plan = ChangePlan {
        changes: Vec::new(),
        diagnostics: Vec::new(),
        notes: Vec::new(),
    };
    let Some(found) = find_namespace(&base, &d.namespace)? else {
        return Ok(plan);
    };
    let ns = found;
    if let Some(current) = get_action(&ns, &d.name)? {
        plan.changes.push(Change {
            action: ChangeAction::Delete,
            kind: KIND.into(),
            name: d.name.clone(),
            reason: format!("function in namespace '{}'", d.namespace),
            before: Some(current.attrs(d, &d.namespace).to_string()),
            after: None,
            payload: json!({ "desired": d }).to_string(),
            deploys_artifact: true,
        });
    }
    Ok(plan)
}

/// Whether the function is deployed, and where it answers.
pub fn status(ctx: &Context, d: &Desired) -> PluginResult<Vec<ResourceStatus>> {
    let base = ctx.endpoint("api")?;
    let missing = || ResourceStatus {
        resource: ManagedResource {
            kind: KIND.into(),
            name: d.name.clone(),
            id: None,
            attributes: "{}".into(),
        },
        state: soar_sdk::ResourceState::Missing,
        endpoints: Vec::new(),
    };
    let Some(found) = find_namespace(&base, &d.namespace)? else {
        return Ok(vec![missing()]);
    };
    let ns = found;
    let Some(current) = get_action(&ns, &d.name)? else {
        return Ok(vec![missing()]);
    };
    let web = current
        .annotation("web-export")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(vec![ResourceStatus {
        resource: deployed(&ns, &d.name, &current.attrs(d, &d.namespace)),
        state: soar_sdk::ResourceState::Running,
        endpoints: web_endpoints(&ns, &d.name, web),
    }])
}

/// The function `name` as deployed in `ns`.
fn deployed(ns: &Namespace, name: &str, attributes: &Value) -> ManagedResource {
    ManagedResource {
        kind: KIND.into(),
        name: name.to_string(),
        id: Some(format!("{}/{name}", ns.namespace)),
        attributes: attributes.to_string(),
    }
}

/// Where a web function answers (nothing for a non-web one).
fn web_endpoints(ns: &Namespace, name: &str, web: bool) -> Vec<Endpoint> {
    if !web {
        return Vec::new();
    }
    vec![Endpoint {
        kind: soar_sdk::EndpointKind::Url,
        address: ns.web_url(name),
        port: None,
        user: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_follow_the_extension() {
        assert_eq!(runtime_of("index.js"), Some("nodejs:18"));
        assert_eq!(runtime_of("app/main.py"), Some("python:3.11"));
        assert_eq!(runtime_of("README.md"), None);
    }

    #[test]
    fn action_names() {
        assert!(action_name_ok("hello"));
        assert!(action_name_ok("hello_world-2.v1"));
        assert!(!action_name_ok(""));
        assert!(!action_name_ok("-x"));
        assert!(!action_name_ok("a/b"));
    }
}
