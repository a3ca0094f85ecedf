//! Droplets per environment: plan (desired vs tagged droplets), apply one
//! change idempotently, status and destroy.
//!
//! What `apply` needs travels in the change's payload:
//! `{"delete": {"id": 123, "name": "staging-app-1"}, "create": <POST /v2/droplets body>}`
//! (a create has only `create`, a delete only `delete`, a replace both: the
//! old droplet is deleted and gone before the new one is created).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use soar_sdk::prelude::*;
use soar_sdk::time;

use crate::api::{self, CREDENTIAL, Droplet, Region, Size, SshKey};
use crate::settings::{self, Checked, Desired, MANAGED_TAG, env_tag};

pub const KIND: &str = "droplet";

/// The body of `POST /v2/droplets`, kept in the payload as sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreateBody {
    pub name: String,
    pub region: String,
    pub size: String,
    pub image: String,
    pub ssh_keys: Vec<u64>,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteRef {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<DeleteRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retag: Option<Retag>,
}

/// A role change on an existing droplet: tags change in place (the droplet,
/// its disk and its address stay).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retag {
    pub id: u64,
    pub name: String,
    /// `soar-role:<old>` tags to take off.
    pub remove: Vec<String>,
    /// `soar-role:<new>`.
    pub add: String,
}

/// The account's key named `name`, or the seed's error.
pub fn find_key(base: &str, name: &str) -> PluginResult<SshKey> {
    let keys: Vec<SshKey> = api::list(
        base,
        &format!("/v2/account/keys?per_page={}", api::PER_PAGE),
        "ssh_keys",
    )?;
    if let Some(k) = keys.iter().find(|k| k.name == name) {
        return Ok(k.clone());
    }
    let mut names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    let hint = if names.is_empty() {
        "the account has no SSH keys; add one in the DigitalOcean control panel (Settings → Security), Soar does not create keys".into()
    } else {
        format!(
            "keys in the account: {}; Soar does not create keys",
            names.join(", ")
        )
    };
    Err(PluginError::InvalidConfig(vec![
        Diagnostic::error(format!(
            "digitalocean provider: SSH key '{name}' not found in DigitalOcean account"
        ))
        .at("ssh_key_name")
        .hint(hint),
    ]))
}

/// Check every host's region and size against the API and the allowed lists.
/// `/v2/regions` is read only when a region is not offered by any size, so a
/// plan costs one call for sizes, not two.
pub fn check_placement(
    base: &str,
    c: &Checked,
    sizes: &[Size],
    always_read_regions: bool,
) -> PluginResult<()> {
    let mut errors = Vec::new();
    let available: BTreeMap<&str, &Size> = sizes
        .iter()
        .filter(|s| s.available)
        .map(|s| (s.slug.as_str(), s))
        .collect();
    let offered: BTreeSet<&str> = available
        .values()
        .flat_map(|s| s.regions.iter().map(String::as_str))
        .collect();
    let mut regions: Option<Vec<Region>> = None;
    let read_regions = |regions: &mut Option<Vec<Region>>| -> PluginResult<Vec<Region>> {
        if regions.is_none() {
            *regions = Some(api::list(
                base,
                &format!("/v2/regions?per_page={}", api::PER_PAGE),
                "regions",
            )?);
        }
        Ok(regions.clone().unwrap_or_default())
    };
    if always_read_regions {
        read_regions(&mut regions)?;
    }
    for d in &c.desired {
        let field = |f: &str| FieldPath::new("hosts").key(&d.host).key(f);
        if !c.allowed_sizes.is_empty() && !c.allowed_sizes.contains(&d.size) {
            errors.push(Diagnostic::error(format!(
                    "digitalocean provider: invalid config: size '{}' of host '{}' is not in the allowed sizes",
                    d.size, d.host
                ))
                .at(field("size"))
                .hint(format!("valid sizes: {}", c.allowed_sizes.join(", "))));
        }
        if !c.allowed_regions.is_empty() && !c.allowed_regions.contains(&d.region) {
            errors.push(Diagnostic::error(format!(
                    "digitalocean provider: invalid config: region '{}' of host '{}' is not in the allowed regions",
                    d.region, d.host
                ))
                .at(field("region"))
                .hint(format!("valid regions: {}", c.allowed_regions.join(", "))));
        }
        let region_known = match &regions {
            Some(rs) => rs.iter().any(|r| r.slug == d.region && r.available),
            None => offered.contains(d.region.as_str()),
        };
        if !region_known {
            let rs = read_regions(&mut regions)?;
            if !rs.iter().any(|r| r.slug == d.region && r.available) {
                let mut valid: Vec<&str> = rs
                    .iter()
                    .filter(|r| r.available)
                    .map(|r| r.slug.as_str())
                    .collect();
                valid.sort();
                errors.push(Diagnostic::error(format!(
                        "digitalocean provider: invalid config: region '{}' of host '{}' is not an available DigitalOcean region",
                        d.region, d.host
                    ))
                    .at(field("region"))
                    .hint(format!("valid regions: {}", valid.join(", "))));
                continue;
            }
        }
        match available.get(d.size.as_str()) {
            None => errors.push(Diagnostic::error(format!(
                    "digitalocean provider: invalid config: size '{}' of host '{}' is not an available DigitalOcean size",
                    d.size, d.host
                ))
                .at(field("size"))
                .hint(format!(
                    "valid sizes: {}",
                    available.keys().copied().collect::<Vec<_>>().join(", ")
                ))),
            Some(s) if !s.regions.iter().any(|r| r == &d.region) => {
                let there: Vec<&str> = available
                    .values()
                    .filter(|s| s.regions.iter().any(|r| r == &d.region))
                    .map(|s| s.slug.as_str())
                    .collect();
                errors.push(Diagnostic::error(format!(
                        "digitalocean provider: invalid config: size '{}' of host '{}' is not offered in region '{}'",
                        d.size, d.host, d.region
                    ))
                    .at(field("size"))
                    .hint(format!("valid sizes in {}: {}", d.region, there.join(", "))))
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PluginError::InvalidConfig(errors))
    }
}

fn money(v: f64) -> String {
    format!("${v:.2}")
}

fn attrs_of(d: &Droplet) -> Value {
    json!({
        "id": d.id,
        "size": d.size_slug,
        "region": d.region(),
        "role": d.role().unwrap_or(""),
        "status": d.status,
        "ipv4": d.public_ipv4(),
    })
}

fn desired_attrs(d: &Desired, image: &str, price: Option<f64>) -> Value {
    json!({
        "size": d.size,
        "region": d.region,
        "role": d.role,
        "image": image,
        "price_monthly": price,
    })
}

fn create_body(d: &Desired, c: &Checked, key_id: u64, env: &str) -> CreateBody {
    CreateBody {
        name: d.name.clone(),
        region: d.region.clone(),
        size: d.size.clone(),
        image: c.image.clone(),
        ssh_keys: vec![key_id],
        tags: vec![
            MANAGED_TAG.to_string(),
            env_tag(env),
            format!("soar-role:{}", d.role),
        ],
        user_data: c.user_data.clone(),
    }
}

fn change(
    action: ChangeAction,
    name: String,
    reason: String,
    before: Option<Value>,
    after: Option<Value>,
    payload: &Payload,
) -> Change {
    Change {
        action,
        kind: KIND.into(),
        name,
        reason,
        before: before.map(|v| v.to_string()),
        after: after.map(|v| v.to_string()),
        payload: serde_json::to_string(payload).expect("payload serializes"),
        deploys_artifact: false,
    }
}

fn delete_change(d: &Droplet, name: String, reason: String) -> Change {
    change(
        ChangeAction::Delete,
        name,
        reason,
        Some(attrs_of(d)),
        None,
        &Payload {
            delete: Some(DeleteRef {
                id: d.id,
                name: d.name.clone(),
            }),
            ..Payload::default()
        },
    )
}

/// Group droplets by name; extra droplets of one name (a duplicate left by an
/// earlier failure) are named `name#id` so every change has its own name.
fn by_name(actual: Vec<Droplet>) -> (BTreeMap<String, Droplet>, Vec<Droplet>) {
    let mut first = BTreeMap::new();
    let mut extra = Vec::new();
    for d in actual {
        if first.contains_key(&d.name) {
            extra.push(d);
        } else {
            first.insert(d.name.clone(), d);
        }
    }
    (first, extra)
}

pub fn plan(ctx: &Context) -> PluginResult<ChangePlan> {
    let c = settings::check(ctx)?;
    let base = ctx.endpoint("api")?;
    let env = &ctx.environment;
    let key = find_key(&base, &c.ssh_key_name)?;
    let sizes: Vec<Size> = api::list(
        &base,
        &format!("/v2/sizes?per_page={}", api::PER_PAGE),
        "sizes",
    )?;
    check_placement(&base, &c, &sizes, false)?;
    let price = |slug: &str| {
        sizes
            .iter()
            .find(|s| s.slug == slug)
            .map(|s| s.price_monthly)
    };
    let (mut actual, extra) = by_name(api::env_droplets(&base, env)?);

    let mut changes = Vec::new();
    let diagnostics = c.warnings.clone();
    let mut notes = Vec::new();
    let (mut total, mut current) = (0.0, 0.0);
    for d in &c.desired {
        let p = price(&d.size);
        total += p.unwrap_or(0.0);
        notes.push(format!(
            "droplet {}: {} in {}, {}/month",
            d.name,
            d.size,
            d.region,
            p.map(money).unwrap_or_else(|| "price unknown".into())
        ));
        let after = desired_attrs(d, &c.image, p);
        let create = create_body(d, &c, key.id, env);
        match actual.remove(&d.name) {
            None => changes.push(change(
                ChangeAction::Create,
                d.name.clone(),
                format!("host '{}' has no droplet yet", d.host),
                None,
                Some(after),
                &Payload {
                    create: Some(create),
                    ..Payload::default()
                },
            )),
            Some(old) => {
                current += price(&old.size_slug).unwrap_or(0.0);
                let mut differs = Vec::new();
                if old.size_slug != d.size {
                    differs.push(format!("size {} → {}", old.size_slug, d.size));
                }
                if old.region() != d.region {
                    differs.push(format!("region {} → {}", old.region(), d.region));
                }
                if !differs.is_empty() {
                    changes.push(change(
                        ChangeAction::Replace,
                        d.name.clone(),
                        format!(
                            "{}; droplets are replaced, never resized in place (the old droplet {} and its disk are deleted)",
                            differs.join(", "),
                            old.id
                        ),
                        Some(attrs_of(&old)),
                        Some(after),
                        &Payload {
                            delete: Some(DeleteRef {
                                id: old.id,
                                name: old.name.clone(),
                            }),
                            create: Some(create),
                            ..Payload::default()
                        },
                    ));
                } else if old.role() != Some(d.role.as_str()) {
                    let remove: Vec<String> = old
                        .tags
                        .iter()
                        .filter(|t| t.starts_with("soar-role:"))
                        .cloned()
                        .collect();
                    changes.push(change(
                        ChangeAction::Update,
                        d.name.clone(),
                        format!(
                            "role {} → {}: the droplet is re-tagged in place",
                            old.role().unwrap_or("(none)"),
                            d.role
                        ),
                        Some(attrs_of(&old)),
                        Some(after),
                        &Payload {
                            retag: Some(Retag {
                                id: old.id,
                                name: old.name.clone(),
                                remove,
                                add: format!("soar-role:{}", d.role),
                            }),
                            ..Payload::default()
                        },
                    ));
                } else {
                    changes.push(change(
                        ChangeAction::NoOp,
                        d.name.clone(),
                        String::new(),
                        Some(attrs_of(&old)),
                        Some(after),
                        &Payload::default(),
                    ));
                }
            }
        }
    }
    for (name, old) in actual {
        current += price(&old.size_slug).unwrap_or(0.0);
        changes.push(delete_change(
            &old,
            name,
            "no host of this name in the settings any more".into(),
        ));
    }
    for old in extra {
        current += price(&old.size_slug).unwrap_or(0.0);
        changes.push(delete_change(
            &old,
            format!("{}#{}", old.name, old.id),
            format!(
                "a second droplet named {} (an earlier run left a duplicate)",
                old.name
            ),
        ));
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    notes.push(format!(
        "Monthly cost: {} for {} droplet{} (now {})",
        money(total),
        c.desired.len(),
        if c.desired.len() == 1 { "" } else { "s" },
        money(current)
    ));
    Ok(ChangePlan {
        changes,
        diagnostics,
        notes,
    })
}

pub fn plan_destroy(ctx: &Context) -> PluginResult<ChangePlan> {
    let base = ctx.endpoint("api")?;
    let (actual, extra) = by_name(api::env_droplets(&base, &ctx.environment)?);
    let mut changes: Vec<Change> = actual
        .into_iter()
        .map(|(name, d)| delete_change(&d, name, "destroying the environment".into()))
        .collect();
    changes.extend(extra.into_iter().map(|d| {
        delete_change(
            &d,
            format!("{}#{}", d.name, d.id),
            "destroying the environment".into(),
        )
    }));
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ChangePlan {
        changes,
        diagnostics: vec![],
        notes: vec![],
    })
}

pub fn status(ctx: &Context) -> PluginResult<Vec<ResourceStatus>> {
    let base = ctx.endpoint("api")?;
    let (actual, extra) = by_name(api::env_droplets(&base, &ctx.environment)?);
    let mut out: Vec<ResourceStatus> = actual
        .into_iter()
        .map(|(name, d)| resource_status(name, &d))
        .collect();
    out.extend(
        extra
            .iter()
            .map(|d| resource_status(format!("{}#{}", d.name, d.id), d)),
    );
    out.sort_by(|a, b| a.resource.name.cmp(&b.resource.name));
    Ok(out)
}

fn resource_status(name: String, d: &Droplet) -> ResourceStatus {
    ResourceStatus {
        resource: managed(name, d),
        state: match d.status.as_str() {
            "active" => soar_sdk::ResourceState::Running,
            "new" => soar_sdk::ResourceState::Pending,
            "off" => soar_sdk::ResourceState::Stopped,
            other => soar_sdk::ResourceState::Other(other.to_string()),
        },
        endpoints: endpoints(d),
    }
}

fn managed(name: String, d: &Droplet) -> ManagedResource {
    ManagedResource {
        kind: KIND.into(),
        name,
        id: Some(d.id.to_string()),
        attributes: attrs_of(d).to_string(),
    }
}

fn endpoints(d: &Droplet) -> Vec<Endpoint> {
    d.public_ipv4()
        .map(|ip| Endpoint {
            kind: soar_sdk::EndpointKind::Ssh,
            address: ip.to_string(),
            port: Some(22),
            user: Some("root".into()),
        })
        .into_iter()
        .collect()
}

/// Timing of waits, from the settings at apply time.
struct Waits {
    every: Duration,
    timeout: Duration,
}

pub fn apply(ctx: &Context, ch: &Change) -> PluginResult<Applied> {
    let payload: Payload = serde_json::from_str(&ch.payload).map_err(|e| {
        PluginError::Other(format!(
            "digitalocean provider: the plan's payload for {} is not one this version reads ({e}); run soar plan again",
            ch.name
        ))
    })?;
    let c = settings::check(ctx)?;
    let waits = Waits {
        every: c.wait_interval,
        timeout: c.wait_timeout,
    };
    let base = ctx.endpoint("api")?;
    let env = &ctx.environment;
    let mut messages = Vec::new();
    if let Some(retag) = &payload.retag {
        return retag_droplet(&base, env, retag);
    }
    if let Some(del) = &payload.delete {
        messages.push(delete_and_wait(&base, env, del, &waits)?);
    }
    match &payload.create {
        None => Ok(Applied {
            resource: None,
            endpoints: vec![],
            messages,
        }),
        Some(body) => {
            let (d, msg) = create_and_wait(&base, env, body, &waits)?;
            messages.push(msg);
            Ok(Applied {
                resource: Some(managed(d.name.clone(), &d)),
                endpoints: endpoints(&d),
                messages,
            })
        }
    }
}

/// Move a droplet to its new role: ensure the tag exists, tag the droplet,
/// then untag the old role. Each step is idempotent, so a re-run after a
/// failure converges.
fn retag_droplet(base: &str, env: &str, r: &Retag) -> PluginResult<Applied> {
    let Some(d) = api::droplet(base, r.id)? else {
        return Err(PluginError::Other(format!(
            "digitalocean provider: droplet {} ({}) is gone; run `soar plan` again",
            r.name, r.id
        )));
    };
    if d.name != r.name || !d.has_tag(MANAGED_TAG) || !d.has_tag(&env_tag(env)) {
        return Err(PluginError::Other(format!(
            "digitalocean provider: droplet {} is no longer {} of environment {env}; refusing to re-tag it",
            r.id, r.name
        )));
    }
    let resources = json!({
        "resources": [{ "resource_id": r.id.to_string(), "resource_type": "droplet" }]
    });
    let created = Request::post(format!("{base}/v2/tags"))
        .credential(api::CREDENTIAL)
        .json(&json!({ "name": r.add }))
        .send()?;
    // 422: the tag exists already.
    if created.status != 422 {
        created.error_for_status()?;
    }
    Request::post(format!("{base}/v2/tags/{}/resources", api::q(&r.add)))
        .credential(api::CREDENTIAL)
        .json(&resources)
        .send()?
        .error_for_status()?;
    for old in r.remove.iter().filter(|t| **t != r.add) {
        let resp = Request::delete(format!("{base}/v2/tags/{}/resources", api::q(old)))
            .credential(api::CREDENTIAL)
            .json(&resources)
            .send()?;
        if resp.status != 404 {
            resp.error_for_status()?;
        }
    }
    let d = api::droplet(base, r.id)?.unwrap_or(d);
    Ok(Applied {
        resource: Some(managed(d.name.clone(), &d)),
        endpoints: endpoints(&d),
        messages: vec![format!(
            "re-tagged droplet {} ({}) as {}",
            r.name, r.id, r.add
        )],
    })
}

/// Delete droplet `id` unless it is already gone, then wait for the 404.
fn delete_and_wait(base: &str, env: &str, del: &DeleteRef, w: &Waits) -> PluginResult<String> {
    let Some(d) = api::droplet(base, del.id)? else {
        return Ok(format!(
            "droplet {} ({}) was already deleted",
            del.name, del.id
        ));
    };
    if d.name != del.name || !d.has_tag(MANAGED_TAG) || !d.has_tag(&env_tag(env)) {
        return Err(PluginError::Other(format!(
            "digitalocean provider: droplet {} is now '{}' and not tagged for this environment; not deleting it — run soar plan again",
            del.id, d.name
        )));
    }
    let resp = Request::delete(format!("{base}/v2/droplets/{}", del.id))
        .credential(CREDENTIAL)
        .send()?;
    if resp.status != 404 {
        resp.error_for_status()?;
    }
    let gone = time::poll(w.every, w.timeout, || {
        api::droplet(base, del.id).map(|d| d.is_none().then_some(()))
    })?;
    if gone.is_none() {
        return Err(PluginError::Other(format!(
            "digitalocean provider: droplet {} ({}) was still there {} s after it was deleted",
            del.name,
            del.id,
            w.timeout.as_secs()
        )));
    }
    Ok(format!("deleted droplet {} ({})", del.name, del.id))
}

/// Create the droplet unless one of that name exists for the environment,
/// then wait until it is `active` with a public IPv4.
fn create_and_wait(
    base: &str,
    env: &str,
    body: &CreateBody,
    w: &Waits,
) -> PluginResult<(Droplet, String)> {
    let existing = api::droplets_named(base, env, &body.name)?;
    let (droplet, fresh) = match existing.into_iter().next() {
        Some(d) if d.size_slug == body.size && d.region() == body.region => (d, false),
        Some(d) => {
            return Err(PluginError::Other(format!(
                "digitalocean provider: droplet '{}' already exists (id {}, {} in {}) and differs from the plan ({} in {}); run soar plan again",
                d.name,
                d.id,
                d.size_slug,
                d.region(),
                body.size,
                body.region
            )));
        }
        None => (post_droplet(base, env, body)?, true),
    };
    let ready = |d: &Droplet| d.status == "active" && d.public_ipv4().is_some();
    let d = if ready(&droplet) {
        droplet
    } else {
        let id = droplet.id;
        let task = format!("waiting for droplet {} to be active", body.name);
        let started = time::now_ms();
        let mut last_status: String;
        let deadline = started + w.timeout.as_millis() as u64;
        loop {
            time::sleep(w.every);
            match api::droplet(base, id)? {
                None => {
                    return Err(PluginError::Other(format!(
                        "digitalocean provider: droplet '{}' ({id}) disappeared while waiting for it to be active",
                        body.name
                    )));
                }
                Some(d) if ready(&d) => break d,
                Some(d) => last_status = d.status,
            }
            let now = time::now_ms();
            time::progress(
                &task,
                (now - started) / 1000,
                Some(w.timeout.as_secs().max(1)),
            );
            if now >= deadline {
                return Err(PluginError::Other(format!(
                    "digitalocean provider: droplet '{}' ({id}) is still '{}' after {} s; it exists and the next soar deploy waits for it again (raise wait_timeout if provisioning is slow)",
                    body.name,
                    last_status,
                    w.timeout.as_secs()
                )));
            }
        }
    };
    let msg = format!(
        "{} droplet {} ({}) at {}",
        if fresh { "created" } else { "kept existing" },
        d.name,
        d.id,
        d.public_ipv4().unwrap_or("?")
    );
    Ok((d, msg))
}

fn post_droplet(base: &str, env: &str, body: &CreateBody) -> PluginResult<Droplet> {
    let sent = Request::post(format!("{base}/v2/droplets"))
        .credential(CREDENTIAL)
        .json(body)
        .send();
    let failure = match sent {
        Ok(resp) if resp.is_success() => {
            #[derive(Deserialize)]
            struct One {
                droplet: Droplet,
            }
            return Ok(resp.json::<One>()?.droplet);
        }
        Ok(resp) if resp.status < 500 => return Err(PluginError::Api(resp.api_error())),
        Ok(resp) => PluginError::Api(resp.api_error()),
        Err(e) => e,
    };
    // A 5xx or a lost connection may hide a droplet that was created after
    // all: look before reporting, so the error never leaves a twin behind.
    if let Ok(found) = api::droplets_named(base, env, &body.name)
        && let Some(d) = found.into_iter().next()
    {
        return Ok(d);
    }
    Err(failure)
}
