//! Provider settings: `.spot/config.yaml` from the project (read through the
//! artifact) overlaid by the keys of `[env.<name>]` in soar.toml, which win.
//!
//! Parsed by hand from JSON values so every problem becomes a diagnostic that
//! names the setting and says what to write instead.

use std::collections::BTreeMap;

use soar_sdk::prelude::*;

use crate::project::{Files, diag, warn_diag};

/// Where `.spot/config.yaml` lives in the artifact.
pub const CONFIG_PATH: &str = ".spot/config.yaml";

/// Keys a user may set (aliases included).
const KEYS: &[&str] = &[
    "regions",
    "instance_types",
    "instance_type",
    "count",
    "total_instances",
    "max_price",
    "ami",
    "public_key",
    "key_name",
    "ports",
    "service_port",
    "ingress_cidr",
    "wait_timeout",
    "poll_interval_ms",
    "user",
    "aws",
];

/// One region and what runs there.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    /// Instances pinned to this region; `None` takes a share of `count`.
    pub count: Option<u32>,
    /// Types for this region; empty means the global list.
    pub instance_types: Vec<String>,
    /// AMI for this region, overriding the lookup.
    pub ami: Option<String>,
}

/// Everything the provider needs to know about the account side.
#[derive(Debug, Clone)]
pub struct Settings {
    pub regions: Vec<Region>,
    pub instance_types: Vec<String>,
    pub count: u32,
    pub max_price: Option<String>,
    /// Explicit AMI for every region (a region's own `ami` wins).
    pub ami: Option<String>,
    pub public_key: Option<String>,
    pub key_name: Option<String>,
    pub ports: Vec<u16>,
    pub ingress_cidr: String,
    pub wait_timeout_secs: u64,
    pub poll_interval_ms: u64,
    pub user: String,
}

impl Settings {
    /// Instance types to try in `region`, in order.
    pub fn types_for(&self, region: &str) -> Vec<String> {
        self.regions
            .iter()
            .find(|r| r.name == region && !r.instance_types.is_empty())
            .map(|r| r.instance_types.clone())
            .unwrap_or_else(|| self.instance_types.clone())
    }

    /// Explicit AMI for `region`, if any.
    pub fn ami_for(&self, region: &str) -> Option<String> {
        self.regions
            .iter()
            .find(|r| r.name == region)
            .and_then(|r| r.ami.clone())
            .or_else(|| self.ami.clone())
    }

    /// The region each slot (0..count) is planned in: pinned counts first,
    /// the rest spread evenly in the configured order.
    pub fn slot_regions(&self) -> Vec<String> {
        let pinned: u32 = self.regions.iter().filter_map(|r| r.count).sum();
        let free: Vec<&Region> = self.regions.iter().filter(|r| r.count.is_none()).collect();
        let rest = self.count.saturating_sub(pinned);
        let mut out = Vec::new();
        for r in &self.regions {
            if let Some(c) = r.count {
                out.extend(std::iter::repeat_n(r.name.clone(), c as usize));
            }
        }
        if !free.is_empty() {
            let n = free.len() as u32;
            for (i, r) in free.iter().enumerate() {
                let share = rest / n + u32::from((i as u32) < rest % n);
                out.extend(std::iter::repeat_n(r.name.clone(), share as usize));
            }
        }
        out
    }

    /// The other regions to fail over to from `first`, in configured order.
    pub fn failover_regions(&self, first: &str) -> Vec<String> {
        let mut out = vec![first.to_string()];
        out.extend(
            self.regions
                .iter()
                .map(|r| r.name.clone())
                .filter(|r| r != first),
        );
        out
    }

    /// Name of the key pair instances get, if any.
    pub fn key_pair_name(&self, app: &str, env: &str) -> Option<String> {
        if let Some(k) = &self.key_name {
            return Some(k.clone());
        }
        self.public_key
            .as_ref()
            .map(|_| format!("soar-{app}-{env}"))
    }
}

/// The merged settings as JSON: `.spot/config.yaml` (its `aws:` section
/// flattened in), then soar.toml's keys on top.
pub fn merged(ctx: &Context, files: &Files) -> Result<(serde_json::Value, bool), Vec<Diagnostic>> {
    let mut base = serde_json::Map::new();
    let mut from_spot = false;
    if files.has(CONFIG_PATH) {
        from_spot = true;
        let text = files.read(CONFIG_PATH).map_err(|e| {
            vec![diag(
                format!("cannot read {CONFIG_PATH}: {e}"),
                Some(CONFIG_PATH),
                None,
            )]
        })?;
        let v: serde_json::Value = match serde_yaml_ng::from_slice(&text) {
            Ok(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
            Ok(v) => v,
            Err(e) => {
                return Err(vec![diag(
                    format!("{CONFIG_PATH} is not valid YAML: {e}"),
                    Some(CONFIG_PATH),
                    Some(
                        "it is a mapping such as:\nregions: [us-east-1]\ninstance_types: [t3.micro]\ncount: 1",
                    ),
                )]);
            }
        };
        let serde_json::Value::Object(map) = v else {
            return Err(vec![diag(
                format!("{CONFIG_PATH} must be a mapping of settings"),
                Some(CONFIG_PATH),
                Some("regions: [us-east-1]\ninstance_types: [t3.micro]\ncount: 1"),
            )]);
        };
        for (k, v) in map {
            if k == "aws" {
                if let serde_json::Value::Object(inner) = v {
                    base.extend(inner);
                }
            } else {
                base.insert(k, v);
            }
        }
    }
    match serde_json::from_str::<serde_json::Value>(&ctx.settings) {
        Ok(serde_json::Value::Object(over)) => base.extend(over),
        Ok(serde_json::Value::Null) => {}
        Ok(_) => {
            return Err(vec![diag(
                "provider settings must be a table".into(),
                None,
                None,
            )]);
        }
        Err(e) => {
            return Err(vec![diag(
                format!("provider settings are not JSON: {e}"),
                None,
                None,
            )]);
        }
    }
    Ok((serde_json::Value::Object(base), from_spot))
}

/// Parse settings; errors and warnings as diagnostics.
pub fn parse(value: &serde_json::Value, from_spot: bool) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut d = Vec::new();
    let obj = value.as_object().cloned().unwrap_or_default();
    for k in obj.keys() {
        if !KEYS.contains(&k.as_str()) {
            let hint = closest(k, KEYS)
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("known settings: {}", KEYS.join(", ")));
            d.push(diag(
                format!("unknown aws-spot setting `{k}`"),
                Some(k),
                Some(&hint),
            ));
        }
    }
    let where_ = if from_spot {
        "in .spot/config.yaml or [env.<name>]"
    } else {
        "in [env.<name>] of soar.toml (or .spot/config.yaml)"
    };

    let strings = |key: &str, d: &mut Vec<Diagnostic>| -> Vec<String> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v.as_str() {
                        Some(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                        _ => d.push(diag(
                            format!("`{key}[{i}]` must be a non-empty string"),
                            Some(&format!("{key}[{i}]")),
                            None,
                        )),
                    }
                }
                out
            }
            Some(_) => {
                d.push(diag(
                    format!("`{key}` must be a list of strings"),
                    Some(key),
                    Some(&format!("{key} = [\"...\"]")),
                ));
                Vec::new()
            }
        }
    };

    let mut instance_types = strings("instance_types", &mut d);
    instance_types.extend(strings("instance_type", &mut d));
    if instance_types.is_empty() {
        instance_types.push("t3.micro".into());
    }

    // regions: strings, {name, count, instance_types, ami}, or {us-east-1: {...}}.
    let mut regions = Vec::new();
    match obj.get("regions") {
        None | Some(serde_json::Value::Null) => d.push(diag(
            format!("no regions configured {where_}"),
            Some("regions"),
            Some("regions: [us-east-1]  (several regions split the instances between them)"),
        )),
        Some(serde_json::Value::String(s)) => regions.push(Region {
            name: s.clone(),
            count: None,
            instance_types: vec![],
            ami: None,
        }),
        Some(serde_json::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("regions[{i}]");
                match item {
                    serde_json::Value::String(s) => regions.push(Region {
                        name: s.clone(),
                        count: None,
                        instance_types: vec![],
                        ami: None,
                    }),
                    serde_json::Value::Object(m) => {
                        let (name, body) = if let Some(n) = m.get("name").and_then(|n| n.as_str()) {
                            (n.to_string(), m.clone())
                        } else if m.len() == 1 {
                            let (k, v) = m.iter().next().expect("one entry");
                            (k.clone(), v.as_object().cloned().unwrap_or_default())
                        } else {
                            d.push(diag(
                                format!("`{field}` has no `name`"),
                                Some(&field),
                                Some("{ name: us-east-1, count: 2, instance_types: [t3.micro] }"),
                            ));
                            continue;
                        };
                        let count = body
                            .get("count")
                            .or(body.get("node_count"))
                            .filter(|v| v.as_str() != Some("auto"));
                        let count = match count {
                            None => None,
                            Some(v) => match v.as_u64() {
                                Some(n) if n <= 1000 => Some(n as u32),
                                _ => {
                                    d.push(diag(
                                        format!("`{field}.count` must be a whole number"),
                                        Some(&format!("{field}.count")),
                                        None,
                                    ));
                                    None
                                }
                            },
                        };
                        let mut types: Vec<String> = Vec::new();
                        for key in ["instance_types", "instance_type", "machine_type"] {
                            match body.get(key) {
                                Some(serde_json::Value::String(s)) => types.push(s.clone()),
                                Some(serde_json::Value::Array(a)) => types.extend(
                                    a.iter().filter_map(|v| v.as_str()).map(str::to_string),
                                ),
                                _ => {}
                            }
                        }
                        let ami = body
                            .get("ami")
                            .or(body.get("image"))
                            .and_then(|v| v.as_str())
                            .filter(|s| *s != "auto")
                            .map(str::to_string);
                        regions.push(Region {
                            name,
                            count,
                            instance_types: types,
                            ami,
                        });
                    }
                    _ => d.push(diag(
                        format!("`{field}` must be a region name"),
                        Some(&field),
                        Some("regions: [us-east-1, eu-west-1]"),
                    )),
                }
            }
        }
        Some(_) => d.push(diag(
            "`regions` must be a list of region names".into(),
            Some("regions"),
            Some("regions: [us-east-1, eu-west-1]"),
        )),
    }
    for (i, r) in regions.iter().enumerate() {
        if !is_region_name(&r.name) {
            d.push(diag(
                format!("`{}` does not look like an AWS region", r.name),
                Some(&format!("regions[{i}]")),
                Some("region names look like us-east-1 or eu-west-2"),
            ));
        }
    }
    let mut seen = BTreeMap::new();
    for r in &regions {
        *seen.entry(r.name.clone()).or_insert(0) += 1;
    }
    for (name, n) in seen {
        if n > 1 {
            d.push(diag(
                format!("region {name} is listed {n} times"),
                Some("regions"),
                Some("list each region once; give it a `count` to run several instances there"),
            ));
        }
    }

    let count = match obj.get("count").or(obj.get("total_instances")) {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=1000).contains(&n) => Some(n as u32),
            _ => {
                d.push(diag(
                    "`count` must be a whole number from 1 to 1000".into(),
                    Some("count"),
                    Some("count: 2"),
                ));
                None
            }
        },
    };
    let pinned_all = !regions.is_empty() && regions.iter().all(|r| r.count.is_some());
    let count = match count {
        Some(c) => c,
        None if pinned_all => regions.iter().filter_map(|r| r.count).sum(),
        None => 1,
    };

    let max_price = match obj.get("max_price") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.parse::<f64>().is_ok_and(|p| p > 0.0) => {
            Some(s.clone())
        }
        Some(serde_json::Value::Number(n)) if n.as_f64().is_some_and(|p| p > 0.0) => {
            Some(n.to_string())
        }
        Some(_) => {
            d.push(diag(
                "`max_price` must be a positive price in USD per hour".into(),
                Some("max_price"),
                Some("max_price = \"0.05\" (or leave it out to pay at most the on-demand price)"),
            ));
            None
        }
    };

    let ami = match obj.get("ami") {
        Some(serde_json::Value::String(s)) if s != "auto" => {
            if !s.starts_with("ami-") {
                d.push(diag(
                    format!("`ami` is `{s}`, which is not an AMI id"),
                    Some("ami"),
                    Some("ami = \"ami-0123456789abcdef0\", or leave it out to use the newest Ubuntu LTS"),
                ));
            }
            Some(s.clone())
        }
        _ => None,
    };

    let text = |key: &str| obj.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let public_key = text("public_key").map(|k| k.trim().to_string());
    if let Some(k) = &public_key
        && !(k.starts_with("ssh-") || k.starts_with("ecdsa-"))
    {
        d.push(diag(
            "`public_key` is not an OpenSSH public key".into(),
            Some("public_key"),
            Some("paste the one line of ~/.ssh/id_ed25519.pub (ssh-ed25519 AAAA... you@host); never the private key"),
        ));
    }
    let key_name = text("key_name");
    if public_key.is_some() && key_name.is_some() {
        d.push(warn_diag(
            "both `public_key` and `key_name` are set: instances use the key pair `key_name`"
                .into(),
            Some("public_key"),
            Some("remove one of them"),
        ));
    }

    let mut ports: Vec<u16> = vec![22];
    match obj.get("ports") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                match v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                {
                    Some(p) => ports.push(p),
                    None => d.push(diag(
                        format!("`ports[{i}]` must be a TCP port (1-65535)"),
                        Some(&format!("ports[{i}]")),
                        None,
                    )),
                }
            }
        }
        Some(_) => d.push(diag(
            "`ports` must be a list of TCP ports".into(),
            Some("ports"),
            Some("ports = [22, 8080]"),
        )),
    }
    if let Some(v) = obj.get("service_port") {
        match v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        {
            Some(p) => ports.push(p),
            None => d.push(diag(
                "`service_port` must be a TCP port (1-65535)".into(),
                Some("service_port"),
                None,
            )),
        }
    }
    ports.sort_unstable();
    ports.dedup();

    let ingress_cidr = text("ingress_cidr").unwrap_or_else(|| "0.0.0.0/0".into());
    if !ingress_cidr.contains('/') {
        d.push(diag(
            format!("`ingress_cidr` `{ingress_cidr}` is not a CIDR block"),
            Some("ingress_cidr"),
            Some("ingress_cidr = \"203.0.113.0/24\""),
        ));
    }
    let wait_timeout_secs = match obj.get("wait_timeout") {
        None => 600,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => n,
            _ => {
                d.push(diag(
                    "`wait_timeout` must be a number of seconds".into(),
                    Some("wait_timeout"),
                    Some("wait_timeout = 600"),
                ));
                600
            }
        },
    };
    let poll_interval_ms = obj
        .get("poll_interval_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(5000);
    let user = text("user").unwrap_or_else(|| "ubuntu".into());

    let has_error = d.iter().any(|x| x.severity == Severity::Error);
    if has_error {
        return (None, d);
    }
    (
        Some(Settings {
            regions,
            instance_types,
            count,
            max_price,
            ami,
            public_key,
            key_name,
            ports,
            ingress_cidr,
            wait_timeout_secs,
            poll_interval_ms,
            user,
        }),
        d,
    )
}

fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The closest known word within a small edit distance.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
