//! AWS spot provider: portable spot deployments on the EC2 Query API.
//!
//! The project directory is the artifact (`[artifact] kind = "script"`,
//! `path = "."`): the host scans it and the plugin reads `.spot/config.yaml`,
//! `.spot/deployment.yaml` and `deployment/` through the `artifacts` import
//! (plugins cannot open files). From them it builds cloud-init user data
//! (see [`cloudinit`]), and launches one-time spot instances with it, split
//! across the configured regions.
//!
//! Every instance carries the tags `managed-by=soar`, `soar-deployment=<app>`,
//! `soar-env=<env>`, `soar-slot=<n>` and `soar-config=<user data digest>`:
//! plans are computed from the tags (state can always be rebuilt from the
//! cloud), and destroy removes exactly what carries them.
//!
//! Idempotency: RunInstances gets a `ClientToken` derived from
//! (app, env, slot, region, type, config) and the same token is kept as the
//! `soar-token` tag; a retried create first looks for an instance of the slot
//! with the same config and adopts it, so a retry never duplicates.
//!
//! Failover: a slot planned in region R tries R's instance types in order,
//! then each other configured region (in configured order) with its types,
//! on capacity errors only ([`ec2::CAPACITY_CODES`]).

mod cloudinit;
mod ec2;
mod project;
#[cfg(test)]
mod schema_tests;
mod settings;

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use soar_sdk::prelude::*;

use project::{Deployment, Files};
use settings::Settings;

/// Resource kinds.
const INSTANCE: &str = "spot-instance";
const NETWORK: &str = "security-group";

/// The AWS spot provider.
pub struct AwsSpot;

/// Settings, deployment and user data, ready for planning.
struct Loaded {
    settings: Settings,
    deployment: Deployment,
    user_data: cloudinit::UserData,
    /// Digest of everything an instance is launched from.
    config: String,
    warnings: Vec<Diagnostic>,
}

fn invalid(d: Vec<Diagnostic>) -> PluginError {
    PluginError::InvalidConfig(
        d.into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    )
}

fn load_settings(ctx: &Context) -> Result<(Settings, Vec<Diagnostic>), Vec<Diagnostic>> {
    let files = Files::from_ctx(ctx);
    let (value, from_spot) = settings::merged(ctx, &files)?;
    let (s, d) = settings::parse(&value, from_spot);
    match s {
        Some(s) => Ok((s, d)),
        None => Err(d),
    }
}

fn load(ctx: &Context) -> Result<Loaded, Vec<Diagnostic>> {
    let files = Files::from_ctx(ctx);
    let (settings, mut warnings) = load_settings(ctx)?;
    let (deployment, d) = project::load(&files);
    let errors: Vec<Diagnostic> = d
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .cloned()
        .collect();
    warnings.extend(d.into_iter().filter(|x| x.severity != Severity::Error));
    let Some(deployment) = deployment.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let user_data =
        cloudinit::generate(&deployment, &files).map_err(|e| vec![Diagnostic::error(e)])?;
    user_data.check_size().map_err(|e| {
        vec![
            Diagnostic::error(e)
                .at("deployment")
                .hint("move large files into a tarball referenced from .spot/deployment.yaml"),
        ]
    })?;
    let mut h = Sha256::new();
    h.update(user_data.text.as_bytes());
    h.update(format!(
        "\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        settings.ami,
        settings.regions.iter().map(|r| &r.ami).collect::<Vec<_>>(),
        settings.key_pair_name(&ctx.app, &ctx.environment),
        settings.max_price,
        settings.ports
    ));
    let config = cloudinit::hex(&h.finalize())[..16].to_string();
    Ok(Loaded {
        settings,
        deployment,
        user_data,
        config,
        warnings,
    })
}

/// The tags every instance of this deployment carries.
fn owner_tags(ctx: &Context) -> Vec<(String, String)> {
    vec![
        ("managed-by".into(), "soar".into()),
        ("soar-deployment".into(), ctx.app.clone()),
        ("soar-env".into(), ctx.environment.clone()),
    ]
}

fn owner_filter(ctx: &Context) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("tag:managed-by", vec!["soar".into()]),
        ("tag:soar-deployment", vec![ctx.app.clone()]),
        ("tag:soar-env", vec![ctx.environment.clone()]),
        (
            "instance-state-name",
            ["pending", "running", "stopping", "stopped", "shutting-down"]
                .map(String::from)
                .to_vec(),
        ),
    ]
}

/// The deployment's live instances in `regions`.
fn owned(ctx: &Context, regions: &[String]) -> Result<Vec<ec2::Instance>, PluginError> {
    let mut out = Vec::new();
    for r in regions {
        out.extend(
            ec2::describe_instances(ctx, r, &owner_filter(ctx))?
                .into_iter()
                .filter(|i| i.state != "shutting-down"),
        );
    }
    Ok(out)
}

fn group_name(ctx: &Context) -> String {
    format!("soar-{}-{}", ctx.app, ctx.environment)
}

fn instance_name(slot: u32) -> String {
    format!("spot-{slot}")
}

/// Deterministic ClientToken: a retried request gets the same token, a
/// failover attempt (other region or type) or a new config gets another.
fn client_token(ctx: &Context, slot: u32, region: &str, itype: &str, config: &str) -> String {
    let h = Sha256::digest(
        format!(
            "soar\n{}\n{}\n{slot}\n{region}\n{itype}\n{config}",
            ctx.app, ctx.environment
        )
        .as_bytes(),
    );
    cloudinit::hex(&h)[..32].to_string()
}

/// `arm64` for Graviton families (t4g, c7g, m6gd, a1), else `x86_64`.
fn architecture(itype: &str) -> &'static str {
    let family = itype.split('.').next().unwrap_or_default();
    if family == "a1" {
        return "arm64";
    }
    match family.find(|c: char| c.is_ascii_digit()) {
        Some(i) if family[i..].contains('g') => "arm64",
        _ => "x86_64",
    }
}

/// The regions to look in (destroy, status): the configured ones, or every
/// region when the settings cannot be read. Only that fallback needs
/// ec2:DescribeRegions, which the minimal policy leaves out, so a refusal
/// says which of the two to fix.
fn regions_to_scan(ctx: &Context) -> Result<Vec<String>, PluginError> {
    match load_settings(ctx) {
        Ok((s, _)) => Ok(s.regions.iter().map(|r| r.name.clone()).collect()),
        Err(d) => ec2::all_regions(ctx, "us-east-1").map_err(|e| match ec2::code(&e) {
            Some("UnauthorizedOperation" | "AccessDenied") => PluginError::Other(format!(
                "aws-spot provider: the settings cannot be read ({}), and listing every region to search instead needs ec2:DescribeRegions, which the keys' policy does not allow: fix the settings, or allow ec2:DescribeRegions",
                d.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
            )),
            _ => e,
        }),
    }
}

fn endpoints_of(i: &ec2::Instance, user: &str) -> Vec<Endpoint> {
    i.public_ip
        .iter()
        .map(|ip| Endpoint {
            kind: soar_sdk::EndpointKind::Ssh,
            address: ip.clone(),
            port: Some(22),
            user: Some(user.to_string()),
        })
        .collect()
}

fn resource_of(i: &ec2::Instance) -> ManagedResource {
    let slot = i
        .tag("soar-slot")
        .and_then(|s| s.parse::<u32>().ok())
        .map(instance_name)
        .unwrap_or_else(|| i.id.clone());
    ManagedResource {
        kind: INSTANCE.into(),
        name: slot,
        id: Some(i.id.clone()),
        attributes: i.attributes().to_string(),
    }
}

impl Provider for AwsSpot {
    fn describe() -> Description {
        Description {
            name: "aws-spot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Spot instances across regions, set up by cloud-init from .spot/ and deployment/"
                    .into(),
            artifacts: vec![
                ArtifactKind::Script,
                ArtifactKind::Tarball,
                ArtifactKind::Binary,
            ],
            // Derived from the types that read them: one truth.
            settings_schema: settings::schema(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "ec2".into(),
                    default_url: "https://ec2.us-east-1.amazonaws.com".into(),
                }],
                extra_hosts: vec!["ec2.*.amazonaws.com".into()],
                credentials: vec![Credential {
                    name: "aws".into(),
                    scheme: CredentialScheme::AwsSigv4("ec2".into()),
                    env: vec![
                        "AWS_ACCESS_KEY_ID".into(),
                        "AWS_SECRET_ACCESS_KEY".into(),
                        "AWS_SESSION_TOKEN".into(),
                    ],
                    endpoints: vec!["ec2".into()],
                }],
                // The instances are set up by cloud-init at boot; the host
                // does not roll an artifact out onto them over SSH.
                ssh: false,
            },
        }
    }

    fn validate(ctx: &Context) -> Vec<Diagnostic> {
        let (settings, mut out) = if ctx.artifact.is_some() {
            match load(ctx) {
                Ok(l) => (l.settings, l.warnings),
                Err(d) => return d,
            }
        } else {
            match load_settings(ctx) {
                Ok(v) => v,
                Err(d) => return d,
            }
        };
        let region = settings.regions[0].name.clone();
        // The connectivity probe is the plan's own first read (this
        // deployment's instances), so a least-privilege policy needs no
        // action for validation alone (README: "aws-spot IAM policy").
        if let Err(e) = ec2::describe_instances(ctx, &region, &owner_filter(ctx)) {
            let hint = match ec2::code(&e) {
                Some("AuthFailure" | "SignatureDoesNotMatch" | "InvalidClientTokenId") => {
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the variables named in [env.<name>.credentials])"
                }
                Some("UnauthorizedOperation" | "AccessDenied") => {
                    "the keys are valid but their IAM policy does not allow ec2:DescribeInstances; attach the minimal policy in README (\"aws-spot IAM policy\")"
                }
                _ => "",
            };
            out.push(
                Diagnostic::error(format!(
                    "aws-spot provider: cannot use the EC2 API in {region}: {}",
                    ec2::render(&e)
                ))
                .hint(hint),
            );
            return out;
        }
        if let Some(k) = &settings.key_name {
            for r in &settings.regions {
                match ec2::key_pair_exists(ctx, &r.name, k) {
                    Ok(true) => {}
                    Ok(false) => out.push(
                        Diagnostic::error(format!("key pair `{k}` does not exist in {}", r.name))
                            .at("key_name")
                            .hint("create or import it there, or set `public_key` to your public key text and soar imports it"),
                    ),
                    Err(e) => out.push(
                        Diagnostic::error(format!(
                            "checking key pair `{k}` in {}: {}",
                            r.name,
                            ec2::render(&e)
                        ))
                        .at("key_name"),
                    ),
                }
            }
        }
        out
    }

    fn plan(ctx: &Context) -> Result<ChangePlan, PluginError> {
        let l = load(ctx).map_err(invalid)?;
        let s = &l.settings;
        let slot_regions = s.slot_regions();
        let regions: Vec<String> = s.regions.iter().map(|r| r.name.clone()).collect();
        let live = owned(ctx, &regions)?;
        let mut by_slot: BTreeMap<u32, Vec<&ec2::Instance>> = BTreeMap::new();
        let mut strays = Vec::new();
        for i in &live {
            match i.tag("soar-slot").and_then(|v| v.parse::<u32>().ok()) {
                Some(slot) => by_slot.entry(slot).or_default().push(i),
                None => strays.push(i),
            }
        }
        let mut changes = Vec::new();
        let desired_after = |region: &str| {
            json!({
                "region": region,
                "instance_types": s.types_for(region),
                "market": "spot (one-time)",
                "max_price": s.max_price.clone().unwrap_or_else(|| "on-demand price".into()),
                "ami": s.ami_for(region).unwrap_or_else(|| "newest Ubuntu LTS".into()),
                "config": l.config,
                "user_data_bytes": l.user_data.text.len(),
                "deployment": l.deployment.describe(),
            })
            .to_string()
        };
        for (slot, region) in slot_regions.iter().enumerate() {
            let slot = slot as u32;
            let name = instance_name(slot);
            let existing = by_slot.remove(&slot).unwrap_or_default();
            let (keep, extra): (Vec<&ec2::Instance>, Vec<&ec2::Instance>) = {
                let mut it = existing.into_iter();
                let first: Vec<_> = it.by_ref().take(1).collect();
                (first, it.collect())
            };
            for dup in extra {
                strays.push(dup);
            }
            match keep.first() {
                None => changes.push(Change {
                    action: ChangeAction::Create,
                    kind: INSTANCE.into(),
                    name,
                    reason: format!(
                        "{} of {} spot instances is missing",
                        slot + 1,
                        slot_regions.len()
                    ),
                    before: None,
                    after: Some(desired_after(region)),
                    payload: json!({ "slot": slot, "region": region, "config": l.config })
                        .to_string(),
                    deploys_artifact: false,
                }),
                Some(i) if i.tag("soar-config") == Some(l.config.as_str()) => {
                    changes.push(Change {
                        action: ChangeAction::NoOp,
                        kind: INSTANCE.into(),
                        name,
                        reason: String::new(),
                        before: Some(i.attributes().to_string()),
                        after: Some(i.attributes().to_string()),
                        payload: json!({ "slot": slot, "id": i.id, "region": i.region })
                            .to_string(),
                        deploys_artifact: false,
                    })
                }
                Some(i) => changes.push(Change {
                    action: ChangeAction::Replace,
                    kind: INSTANCE.into(),
                    name,
                    reason:
                        "the deployment or launch settings changed (user data is only read at boot)"
                            .into(),
                    before: Some(i.attributes().to_string()),
                    after: Some(desired_after(region)),
                    payload: json!({ "slot": slot, "region": region, "config": l.config,
                        "old": { "id": i.id, "region": i.region } })
                    .to_string(),
                    deploys_artifact: false,
                }),
            }
        }
        for (_, rest) in by_slot {
            strays.extend(rest);
        }
        for i in strays {
            changes.push(Change {
                action: ChangeAction::Delete,
                kind: INSTANCE.into(),
                name: format!("{}-{}", resource_of(i).name, i.id),
                reason: format!("not needed: {} instance(s) configured", slot_regions.len()),
                before: Some(i.attributes().to_string()),
                after: None,
                payload: json!({ "id": i.id, "region": i.region }).to_string(),
                deploys_artifact: false,
            });
        }

        let mut notes = vec![
            l.deployment.summary(),
            format!(
                "user data: {} of 16 KB; config {}",
                format_args!("{:.1} KB", l.user_data.text.len() as f64 / 1024.0),
                l.config
            ),
        ];
        let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &slot_regions {
            *per_region.entry(r.as_str()).or_default() += 1;
        }
        notes.push(format!(
            "instances per region: {}",
            per_region
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for region in &regions {
            let types = s.types_for(region);
            match ec2::spot_prices(ctx, region, &types) {
                Ok(prices) => {
                    let parts: Vec<String> = types
                        .iter()
                        .map(|t| match prices.get(t) {
                            Some((p, az)) => format!("{t} ${p}/h ({az})"),
                            None => format!("{t} no spot price"),
                        })
                        .collect();
                    notes.push(format!("spot price in {region}: {}", parts.join(", ")));
                }
                Err(e) => notes.push(format!(
                    "spot price in {region} unavailable: {}",
                    ec2::render(&e)
                )),
            }
        }
        notes.push(format!(
            "max price: {}; failover: next instance type, then next region, on capacity errors",
            s.max_price
                .as_ref()
                .map(|p| format!("${p}/h"))
                .unwrap_or_else(|| "the on-demand price".into())
        ));
        Ok(ChangePlan {
            changes,
            diagnostics: l.warnings,
            notes,
        })
    }

    fn apply(ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        let payload: Value = serde_json::from_str(&change.payload)
            .map_err(|e| PluginError::Other(format!("malformed change payload: {e}")))?;
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match (change.kind.as_str(), change.action) {
            (INSTANCE, ChangeAction::Create) => create(ctx, &payload),
            (INSTANCE, ChangeAction::Replace) => {
                let mut applied = create(ctx, &payload)?;
                let old = payload.get("old").cloned().unwrap_or_default();
                let (id, region) = (text(&old, "id"), text(&old, "region"));
                terminate_and_wait(ctx, &region, &id)?;
                applied
                    .messages
                    .push(format!("terminated the previous instance {id} in {region}"));
                Ok(applied)
            }
            (INSTANCE, ChangeAction::Delete) => {
                let (id, region) = (text(&payload, "id"), text(&payload, "region"));
                terminate_and_wait(ctx, &region, &id)?;
                Ok(Applied {
                    resource: None,
                    endpoints: vec![],
                    messages: vec![format!("terminated {id} in {region}")],
                })
            }
            (NETWORK, ChangeAction::Delete) => delete_network(ctx, &payload),
            (_, ChangeAction::NoOp) => Ok(Applied {
                resource: None,
                endpoints: vec![],
                messages: vec![],
            }),
            (kind, action) => Err(PluginError::Other(format!(
                "aws-spot cannot apply {action:?} to {kind}"
            ))),
        }
    }

    fn plan_destroy(ctx: &Context) -> Result<ChangePlan, PluginError> {
        let regions = regions_to_scan(ctx)?;
        let live = owned(ctx, &regions)?;
        let mut changes: Vec<Change> = live
            .iter()
            .map(|i| Change {
                action: ChangeAction::Delete,
                kind: INSTANCE.into(),
                name: resource_of(i).name,
                reason: "destroying the environment".into(),
                before: Some(i.attributes().to_string()),
                after: None,
                payload: json!({ "id": i.id, "region": i.region }).to_string(),
                deploys_artifact: false,
            })
            .collect();
        let key = format!("soar-{}-{}", ctx.app, ctx.environment);
        for region in &regions {
            if let Some(id) = ec2::find_security_group(ctx, region, &group_name(ctx))? {
                let imported = ec2::key_pair_exists(ctx, region, &key)?;
                changes.push(Change {
                    action: ChangeAction::Delete,
                    kind: NETWORK.into(),
                    name: format!("{}-{region}", group_name(ctx)),
                    reason: "destroying the environment (after its instances are gone)".into(),
                    before: Some(json!({ "group_id": id, "region": region, "key_pair": imported.then_some(&key) }).to_string()),
                    after: None,
                    payload: json!({ "group_id": id, "region": region, "key_pair": imported.then_some(&key) }).to_string(),
                    deploys_artifact: false,
                });
            }
        }
        Ok(ChangePlan {
            notes: vec![format!(
                "looked for instances tagged soar-deployment={} soar-env={} in {}",
                ctx.app,
                ctx.environment,
                regions.join(", ")
            )],
            changes,
            diagnostics: vec![],
        })
    }

    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        let regions = regions_to_scan(ctx)?;
        let user = load_settings(ctx)
            .map(|(s, _)| s.user)
            .unwrap_or_else(|_| "ubuntu".into());
        let mut out: Vec<ResourceStatus> = owned(ctx, &regions)?
            .iter()
            .map(|i| ResourceStatus {
                resource: resource_of(i),
                state: match i.state.as_str() {
                    "running" => soar_sdk::ResourceState::Running,
                    "pending" => soar_sdk::ResourceState::Pending,
                    "stopping" | "stopped" => soar_sdk::ResourceState::Stopped,
                    // `shutting-down`, `terminated`: EC2's own words.
                    other => soar_sdk::ResourceState::Other(other.to_string()),
                },
                endpoints: endpoints_of(i, &user),
            })
            .collect();
        out.sort_by(|a, b| a.resource.name.cmp(&b.resource.name));
        Ok(out)
    }
}

/// Launch the slot's instance, failing over on capacity errors; adopt an
/// instance an earlier attempt of the same change already launched.
fn create(ctx: &Context, payload: &Value) -> Result<Applied, PluginError> {
    let l = load(ctx).map_err(invalid)?;
    let s = &l.settings;
    let slot = payload.get("slot").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    let planned = payload
        .get("region")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let want = payload
        .get("config")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if want != l.config {
        return Err(PluginError::Other(format!(
            "the project changed since this plan was made (config {want}, now {}): run `soar plan` again",
            l.config
        )));
    }
    let regions = s.failover_regions(&planned);
    let mut messages = Vec::new();

    // An earlier attempt of this change may have launched it already.
    for r in &regions {
        let mut f = owner_filter(ctx);
        f.push(("tag:soar-slot", vec![slot.to_string()]));
        f.push(("tag:soar-config", vec![l.config.clone()]));
        if let Some(i) = ec2::describe_instances(ctx, r, &f)?
            .into_iter()
            .find(|i| i.state == "pending" || i.state == "running")
        {
            messages.push(format!(
                "{} already launched as {} in {r}",
                instance_name(slot),
                i.id
            ));
            return finish(ctx, s, i, messages);
        }
    }

    let mut tried = Vec::new();
    for region in &regions {
        let ami = match s.ami_for(region) {
            Some(a) => a,
            None => {
                let arch = architecture(
                    s.types_for(region)
                        .first()
                        .map(String::as_str)
                        .unwrap_or("t3.micro"),
                );
                match ec2::ubuntu_ami(ctx, region, arch) {
                    Ok(a) => a,
                    Err(e @ PluginError::Other(_)) => {
                        tried.push(format!("{region}: {}", ec2::render(&e)));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let mut tags = owner_tags(ctx);
        if let (Some(name), Some(key)) =
            (s.key_pair_name(&ctx.app, &ctx.environment), &s.public_key)
            && s.key_name.is_none()
        {
            ec2::ensure_key_pair(ctx, region, &name, key)?;
        }
        let group = ec2::ensure_security_group(
            ctx,
            region,
            &group_name(ctx),
            &tags,
            &s.ports,
            &s.ingress_cidr,
        )?;
        tags.push((
            "Name".into(),
            format!("{}-{}-{slot}", ctx.app, ctx.environment),
        ));
        tags.push(("soar-slot".into(), slot.to_string()));
        tags.push(("soar-config".into(), l.config.clone()));
        for itype in s.types_for(region) {
            let token = client_token(ctx, slot, region, &itype, &l.config);
            let mut params: Vec<(String, String)> = vec![
                ("ImageId".into(), ami.clone()),
                ("InstanceType".into(), itype.clone()),
                ("MinCount".into(), "1".into()),
                ("MaxCount".into(), "1".into()),
                ("ClientToken".into(), token.clone()),
                ("UserData".into(), l.user_data.base64()),
                ("SecurityGroupId.1".into(), group.clone()),
                ("InstanceMarketOptions.MarketType".into(), "spot".into()),
                (
                    "InstanceMarketOptions.SpotOptions.SpotInstanceType".into(),
                    "one-time".into(),
                ),
                (
                    "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior".into(),
                    "terminate".into(),
                ),
                ("TagSpecification.1.ResourceType".into(), "instance".into()),
            ];
            if let Some(p) = &s.max_price {
                params.push((
                    "InstanceMarketOptions.SpotOptions.MaxPrice".into(),
                    p.clone(),
                ));
            }
            if let Some(k) = s.key_pair_name(&ctx.app, &ctx.environment) {
                params.push(("KeyName".into(), k));
            }
            let mut all_tags = tags.clone();
            all_tags.push(("soar-token".into(), token.clone()));
            for (i, (k, v)) in all_tags.iter().enumerate() {
                params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone()));
                params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone()));
            }
            match ec2::run_instance(ctx, region, params) {
                Ok(i) => {
                    messages.push(format!(
                        "launched {} ({itype}, spot) in {region} for {}",
                        i.id,
                        instance_name(slot)
                    ));
                    return finish(ctx, s, i, messages);
                }
                Err(e) if ec2::code(&e).is_some_and(|c| ec2::CAPACITY_CODES.contains(&c)) => {
                    let line = format!("{itype} in {region}: {}", ec2::render(&e));
                    soar_sdk::warn!(
                        "no spot capacity: {line}; trying the next instance type or region"
                    );
                    messages.push(format!("failed over: {line}"));
                    tried.push(line);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(PluginError::Other(format!(
        "no spot capacity for {} in any configured region and instance type; tried: {}. Add instance types or regions, or raise max_price",
        instance_name(slot),
        tried.join("; ")
    )))
}

/// Wait until the instance runs with a public address, then report it.
fn finish(
    ctx: &Context,
    s: &Settings,
    launched: ec2::Instance,
    mut messages: Vec<String>,
) -> Result<Applied, PluginError> {
    let region = launched.region.clone();
    let id = launched.id.clone();
    let mut polls = 0u64;
    let every = Duration::from_millis(s.poll_interval_ms.max(10));
    let found = soar_sdk::time::poll(every, Duration::from_secs(s.wait_timeout_secs), || {
        polls += 1;
        soar_sdk::time::progress(&format!("waiting for {id} to run"), polls, None);
        let now = ec2::describe_instances(ctx, &region, &[("instance-id", vec![id.clone()])])?;
        let Some(i) = now.into_iter().next() else {
            return Ok(None);
        };
        match i.state.as_str() {
            "running" if i.public_ip.is_some() => Ok(Some(i)),
            "terminated" | "shutting-down" => Err(PluginError::Other(format!(
                "spot instance {id} in {region} was {} before it ran (capacity reclaimed?); run `soar deploy` again to replace it",
                i.state
            ))),
            _ => Ok(None),
        }
    })?;
    let Some(i) = found else {
        return Err(PluginError::Other(format!(
            "{id} in {region} did not reach `running` with a public IP within {} s; it is tagged, so `soar deploy` will adopt it, or `soar destroy` removes it",
            s.wait_timeout_secs
        )));
    };
    messages.push(format!(
        "{} running at {} (ssh {}@{})",
        i.id,
        i.public_ip.clone().unwrap_or_default(),
        s.user,
        i.public_ip.clone().unwrap_or_default()
    ));
    Ok(Applied {
        resource: Some(resource_of(&i)),
        endpoints: endpoints_of(&i, &s.user),
        messages,
    })
}

fn terminate_and_wait(ctx: &Context, region: &str, id: &str) -> Result<(), PluginError> {
    ec2::terminate(ctx, region, id)?;
    let (every, timeout) = match load_settings(ctx) {
        Ok((s, _)) => (
            Duration::from_millis(s.poll_interval_ms.max(10)),
            Duration::from_secs(s.wait_timeout_secs),
        ),
        Err(_) => (Duration::from_secs(5), Duration::from_secs(600)),
    };
    let done = soar_sdk::time::poll(every, timeout, || {
        let now = ec2::describe_instances(ctx, region, &[("instance-id", vec![id.to_string()])])?;
        Ok::<_, PluginError>(now.iter().all(|i| i.state == "terminated").then_some(()))
    })?;
    done.ok_or_else(|| {
        PluginError::Other(format!(
            "{id} in {region} was asked to terminate but is not terminated after {} s",
            timeout.as_secs()
        ))
    })
}

/// Delete the deployment's security group (and imported key pair) once no
/// instance of the deployment is left in the region.
fn delete_network(ctx: &Context, payload: &Value) -> Result<Applied, PluginError> {
    let region = payload
        .get("region")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let group = payload
        .get("group_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    // The user's wait settings bound this wait too: when the instances'
    // termination was refused, a destroy fails after `wait_timeout`, not
    // after a fixed ten minutes.
    let timeout = load_settings(ctx)
        .map(|(s, _)| Duration::from_secs(s.wait_timeout_secs))
        .unwrap_or(Duration::from_secs(600));
    let gone = soar_sdk::time::poll(Duration::from_millis(500), timeout, || {
        // Terminated instances stay listed for a while (in EC2 and moto).
        let left = ec2::describe_instances(ctx, &region, &owner_filter(ctx))?;
        Ok::<_, PluginError>(left.iter().all(|i| i.state == "terminated").then_some(()))
    })?;
    if gone.is_none() {
        return Err(PluginError::Other(format!(
            "instances of this deployment are still running in {region} after {}s; security group {group} was kept: check that they were terminated (the keys need ec2:TerminateInstances) and run `soar destroy` again",
            timeout.as_secs()
        )));
    }
    ec2::delete_security_group(ctx, &region, &group)?;
    let mut messages = vec![format!("deleted security group {group} in {region}")];
    if let Some(k) = payload.get("key_pair").and_then(|v| v.as_str()) {
        ec2::delete_key_pair(ctx, &region, k)?;
        messages.push(format!("deleted key pair {k} in {region}"));
    }
    Ok(Applied {
        resource: None,
        endpoints: vec![],
        messages,
    })
}

soar_sdk::export_provider!(AwsSpot);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graviton_types_are_arm() {
        assert_eq!(architecture("t4g.small"), "arm64");
        assert_eq!(architecture("m6gd.large"), "arm64");
        assert_eq!(architecture("a1.medium"), "arm64");
        assert_eq!(architecture("t3.micro"), "x86_64");
        assert_eq!(architecture("g4dn.xlarge"), "x86_64");
    }
}
