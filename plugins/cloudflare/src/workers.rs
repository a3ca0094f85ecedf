//! Workers: one ES-module script per environment.
//!
//! Change detection: the metadata carries a plain-text binding
//! `SOAR_DEPLOY_DIGEST` = sha256 over the artifact's content digest and the
//! upload's settings (main module, module types, compatibility date and
//! flags, vars). `GET .../settings` returns plain-text bindings with their
//! text, so `plan` compares it without downloading the script. A script
//! deployed by something else (no such binding) is always updated.

use serde_json::Map;
use soar_sdk::http::{Part, Segment};
use soar_sdk::prelude::*;

use crate::api::{self, TOKEN};
use crate::{DEFAULT_COMPATIBILITY_DATE, Settings, default_name, mime};

pub const KIND: &str = "worker-script";
/// The plain-text binding carrying Soar's digest of what was uploaded.
pub const DIGEST_BINDING: &str = "SOAR_DEPLOY_DIGEST";

fn script_name(ctx: &Context, s: &Settings) -> String {
    s.script_name.clone().unwrap_or_else(|| default_name(ctx))
}

fn script_url(ctx: &Context, s: &Settings) -> PluginResult<String> {
    Ok(format!(
        "{}/workers/scripts/{}",
        api::account_url(ctx, s.account_id()?)?,
        script_name(ctx, s)
    ))
}

/// The modules of the bundle: every artifact file with a module type.
fn modules(artifact: &Artifact) -> Vec<(String, &'static str)> {
    artifact
        .files
        .iter()
        .filter_map(|f| mime::module_type(&f.path).map(|t| (f.path.clone(), t)))
        .collect()
}

fn main_module(s: &Settings, modules: &[(String, &'static str)]) -> PluginResult<String> {
    if let Some(m) = &s.main_module {
        if modules.iter().any(|(p, _)| p == m) {
            return Ok(m.clone());
        }
        return Err(invalid_setting(
            "main_module",
            format!("main module '{m}' is not a module file of the artifact"),
            "name a .js or .mjs file of the bundle, relative to its root",
        ));
    }
    let js: Vec<&String> = modules
        .iter()
        .filter(|(_, t)| *t == "application/javascript+module")
        .map(|(p, _)| p)
        .collect();
    if js.len() == 1 {
        return Ok(js[0].clone());
    }
    for candidate in [
        "index.js",
        "index.mjs",
        "worker.js",
        "worker.mjs",
        "_worker.js",
        "src/index.js",
    ] {
        if js.iter().any(|p| *p == candidate) {
            return Ok(candidate.to_string());
        }
    }
    Err(invalid_setting(
        "main_module",
        format!(
            "cannot tell which of the bundle's {} JavaScript modules is the main one",
            js.len()
        ),
        "set `main_module = \"<file>.js\"`",
    ))
}

/// The upload: metadata (without the digest binding) and module list.
fn desired(ctx: &Context, s: &Settings) -> PluginResult<(Value, Vec<(String, &'static str)>)> {
    let artifact = ctx
        .artifact
        .as_ref()
        .ok_or_else(|| PluginError::Other("a Worker deploy needs a `script` artifact".into()))?;
    let modules = modules(artifact);
    if modules.is_empty() {
        return Err(PluginError::Other(
            "the script artifact has no module files (.js, .mjs, .cjs, .wasm, .txt...)".into(),
        ));
    }
    let main = main_module(s, &modules)?;
    let mut bindings: Vec<Value> = s
        .vars
        .iter()
        .map(|(k, v)| json!({"type": "plain_text", "name": k, "text": v}))
        .collect();
    let settings_part = json!({
        "main_module": main,
        "compatibility_date": s.compatibility_date.clone().unwrap_or_else(|| DEFAULT_COMPATIBILITY_DATE.into()),
        "compatibility_flags": s.compatibility_flags,
        "modules": modules.iter().map(|(p, t)| json!([p, t])).collect::<Vec<_>>(),
        "vars": s.vars,
        // Secret names (never values): adding or removing one redeploys.
        "secrets": soar_sdk::http::secret_names(),
    });
    let digest = api::sha256_hex(format!("{}\n{}", artifact.digest, settings_part).as_bytes());
    bindings.push(json!({"type": "plain_text", "name": DIGEST_BINDING, "text": digest}));
    let metadata = json!({
        "main_module": settings_part["main_module"],
        "compatibility_date": settings_part["compatibility_date"],
        "compatibility_flags": s.compatibility_flags,
        "bindings": bindings,
        // Secrets set outside Soar survive a deploy.
        "keep_bindings": ["secret_text", "secret_key"],
    });
    Ok((metadata, modules))
}

/// The metadata part with one `secret_text` binding per service secret of
/// the environment (`[deploy] secrets`). The values are spliced in by the
/// host (`Segment::SecretJson`): this plugin never holds them.
fn metadata_with_secrets(metadata: &Value, secrets: &[String]) -> Vec<Segment> {
    let placeholder = |name: &str| format!("__soar_secret_{name}__");
    let mut metadata = metadata.clone();
    if let Some(bindings) = metadata["bindings"].as_array_mut() {
        for name in secrets {
            bindings.push(json!({"type": "secret_text", "name": name, "text": placeholder(name)}));
        }
    }
    let mut rest = metadata.to_string();
    let mut segments = Vec::new();
    for name in secrets {
        let quoted = format!("\"{}\"", placeholder(name));
        if let Some(at) = rest.find(&quoted) {
            segments.push(Segment::Bytes(rest.as_bytes()[..at].to_vec()));
            segments.push(Segment::SecretJson(name.clone()));
            rest = rest[at + quoted.len()..].to_string();
        }
    }
    segments.push(Segment::Bytes(rest.into_bytes()));
    segments
}

fn digest_of(metadata: &Value) -> Option<String> {
    metadata["bindings"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == DIGEST_BINDING)
        .and_then(|b| b["text"].as_str())
        .map(str::to_string)
}

/// Observable attributes of a script from its settings (or desired metadata).
fn attributes(settings: &Value) -> Value {
    let mut vars = Map::new();
    for b in settings["bindings"].as_array().into_iter().flatten() {
        if b["type"] == "plain_text"
            && b["name"] != DIGEST_BINDING
            && let (Some(n), Some(t)) = (b["name"].as_str(), b["text"].as_str())
        {
            vars.insert(n.into(), t.into());
        }
    }
    json!({
        "digest": digest_of(settings),
        "compatibility_date": settings["compatibility_date"],
        "compatibility_flags": settings["compatibility_flags"],
        "vars": vars,
    })
}

pub fn plan(ctx: &Context, s: &Settings) -> PluginResult<ChangePlan> {
    let name = script_name(ctx, s);
    let (metadata, modules) = desired(ctx, s)?;
    let current = api::get_optional(&format!("{}/settings", script_url(ctx, s)?))?;
    let after = attributes(&metadata);
    let payload = json!({"metadata": metadata, "modules": modules});
    let (action, reason, before) = match &current {
        None => (
            ChangeAction::Create,
            "no Worker script by that name".to_string(),
            None,
        ),
        Some(cur) => {
            let before = attributes(cur);
            if before["digest"] == after["digest"] {
                (
                    ChangeAction::NoOp,
                    "bundle and settings unchanged".into(),
                    Some(before),
                )
            } else if before["digest"].is_null() {
                (
                    ChangeAction::Update,
                    "the deployed script was not uploaded by Soar".into(),
                    Some(before),
                )
            } else {
                (
                    ChangeAction::Update,
                    "bundle or settings changed".into(),
                    Some(before),
                )
            }
        }
    };
    let mut notes = Vec::new();
    if action != ChangeAction::NoOp {
        notes.push(format!(
            "Worker '{name}': {} module(s), main module {}",
            payload["modules"].as_array().map_or(0, Vec::len),
            metadata["main_module"].as_str().unwrap_or("?")
        ));
    }
    Ok(ChangePlan {
        changes: vec![Change {
            action,
            kind: KIND.into(),
            name,
            reason,
            before: before.map(|b| b.to_string()),
            after: Some(after.to_string()),
            payload: payload.to_string(),
            deploys_artifact: true,
        }],
        diagnostics: vec![],
        notes,
    })
}

pub fn plan_destroy(ctx: &Context, s: &Settings) -> PluginResult<Vec<Change>> {
    let Some(cur) = api::get_optional(&format!("{}/settings", script_url(ctx, s)?))? else {
        return Ok(vec![]);
    };
    Ok(vec![Change {
        action: ChangeAction::Delete,
        kind: KIND.into(),
        name: script_name(ctx, s),
        reason: "destroying the environment".into(),
        before: Some(attributes(&cur).to_string()),
        after: None,
        payload: "{}".into(),
        deploys_artifact: true,
    }])
}

/// `https://{script}.{subdomain}.workers.dev`, when the account has one.
fn workers_dev_url(ctx: &Context, s: &Settings) -> PluginResult<Option<String>> {
    if s.workers_dev == Some(false) {
        return Ok(None);
    }
    let url = format!(
        "{}/workers/subdomain",
        api::account_url(ctx, s.account_id()?)?
    );
    Ok(api::get_optional(&url)?
        .and_then(|r| r["subdomain"].as_str().map(str::to_string))
        .map(|sub| format!("https://{}.{sub}.workers.dev", script_name(ctx, s))))
}

/// Point every configured route at the script.
fn ensure_routes(ctx: &Context, s: &Settings, name: &str) -> PluginResult<Vec<String>> {
    let mut messages = Vec::new();
    let api_base = ctx.endpoint("api")?;
    for r in &s.routes {
        let base = format!("{api_base}/zones/{}/workers/routes", r.zone_id);
        let existing = api::result(Request::get(&base).credential(TOKEN).send()?)?;
        let found = existing
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["pattern"] == r.pattern.as_str());
        match found {
            Some(x) if x["script"] == name => {}
            Some(x) => {
                let id = x["id"].as_str().unwrap_or_default();
                api::result(
                    Request::put(format!("{base}/{id}"))
                        .credential(TOKEN)
                        .json(&json!({"pattern": r.pattern, "script": name}))
                        .send()?,
                )?;
                messages.push(format!("route {} now serves {name}", r.pattern));
            }
            None => {
                api::result(
                    Request::post(&base)
                        .credential(TOKEN)
                        .json(&json!({"pattern": r.pattern, "script": name}))
                        .send()?,
                )?;
                messages.push(format!("added route {}", r.pattern));
            }
        }
    }
    Ok(messages)
}

pub fn apply(ctx: &Context, s: &Settings, change: &Change) -> PluginResult<Applied> {
    let name = change.name.clone();
    let url = script_url(ctx, s)?;
    if change.action == ChangeAction::Delete {
        let resp = Request::delete(&url).credential(TOKEN).send()?;
        if resp.status != 404 {
            api::result(resp)?;
        }
        return Ok(Applied {
            resource: None,
            endpoints: vec![],
            messages: vec![format!("deleted Worker {name}")],
        });
    }
    let payload: Value = serde_json::from_str(&change.payload)
        .map_err(|e| PluginError::Other(format!("bad change payload: {e}")))?;
    let metadata = &payload["metadata"];
    let mut messages = Vec::new();
    if change.action != ChangeAction::NoOp {
        let mut parts = vec![Part {
            name: "metadata".into(),
            filename: None,
            content_type: Some("application/json".into()),
            content: metadata_with_secrets(metadata, &soar_sdk::http::secret_names()),
        }];
        for m in payload["modules"].as_array().into_iter().flatten() {
            let (Some(path), Some(ty)) = (m[0].as_str(), m[1].as_str()) else {
                continue;
            };
            parts.push(Part {
                name: path.into(),
                filename: Some(path.into()),
                content_type: Some(ty.into()),
                content: vec![Segment::File(path.into())],
            });
        }
        let result = api::result(
            Request::put(&url)
                .credential(TOKEN)
                .multipart(parts)
                .send()?,
        )?;
        messages.push(format!(
            "uploaded Worker {name} (etag {})",
            result["etag"].as_str().unwrap_or("?")
        ));
    }
    messages.extend(ensure_routes(ctx, s, &name)?);
    let mut endpoints = Vec::new();
    if let Some(u) = workers_dev_url(ctx, s)? {
        endpoints.push(Endpoint {
            kind: soar_sdk::EndpointKind::Url,
            address: u,
            port: None,
            user: None,
        });
    }
    Ok(Applied {
        resource: Some(ManagedResource {
            kind: KIND.into(),
            name: name.clone(),
            id: Some(name),
            attributes: attributes(metadata).to_string(),
        }),
        endpoints,
        messages,
    })
}

pub fn status(ctx: &Context, s: &Settings) -> PluginResult<Vec<ResourceStatus>> {
    let name = script_name(ctx, s);
    let cur = api::get_optional(&format!("{}/settings", script_url(ctx, s)?))?;
    let Some(cur) = cur else {
        return Ok(vec![]);
    };
    let endpoints = workers_dev_url(ctx, s)?
        .map(|u| Endpoint {
            kind: soar_sdk::EndpointKind::Url,
            address: u,
            port: None,
            user: None,
        })
        .into_iter()
        .collect();
    Ok(vec![ResourceStatus {
        resource: ManagedResource {
            kind: KIND.into(),
            name: name.clone(),
            id: Some(name),
            attributes: attributes(&cur).to_string(),
        },
        state: soar_sdk::ResourceState::Running,
        endpoints,
    }])
}
