//! Provider settings: `.spot/config.yaml` from the project (read through the
//! artifact) overlaid by the keys of `[env.<name>]` in soar.toml, which win.
//!
//! Read with `#[derive(Deserialize)]` into [`Setting`] fields, which keep
//! going past a value of the wrong shape, so every problem becomes a
//! diagnostic that names the setting and says what to write instead.
//!
//! The same types describe the settings: the JSON Schema `describe`
//! declares (and `soar validate` checks offline) is derived from
//! [`Written`] by [`schema`], so the two cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IgnoredAny;
use soar_sdk::diagnostic::did_you_mean;
use soar_sdk::prelude::*;
use soar_sdk::setting::{DurationSetting, Item, Setting};

use crate::project::Files;

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

impl Region {
    /// A region named without settings of its own.
    fn named(name: String) -> Self {
        Self {
            name,
            count: None,
            instance_types: Vec::new(),
            ami: None,
        }
    }
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
pub fn merged(ctx: &Context, files: &Files) -> Result<(Value, bool), Vec<Diagnostic>> {
    let mut base = serde_json::Map::new();
    let mut from_spot = false;
    if files.has(CONFIG_PATH) {
        from_spot = true;
        let text = files.read(CONFIG_PATH).map_err(|e| {
            vec![Diagnostic::error(format!("cannot read {CONFIG_PATH}: {e}")).at(CONFIG_PATH)]
        })?;
        let v: Value = match serde_yaml_ng::from_slice(&text) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(v) => v,
            Err(e) => {
                return Err(vec![
                    Diagnostic::error(format!("{CONFIG_PATH} is not valid YAML: {e}"))
                        .at(CONFIG_PATH)
                        .hint("it is a mapping such as:\nregions: [us-east-1]\ninstance_types: [t3.micro]\ncount: 1"),
                ]);
            }
        };
        let Value::Object(map) = v else {
            return Err(vec![
                Diagnostic::error(format!("{CONFIG_PATH} must be a mapping of settings"))
                    .at(CONFIG_PATH)
                    .hint("regions: [us-east-1]\ninstance_types: [t3.micro]\ncount: 1"),
            ]);
        };
        for (k, v) in map {
            if k == "aws" {
                if let Value::Object(inner) = v {
                    base.extend(inner);
                }
            } else {
                base.insert(k, v);
            }
        }
    }
    match serde_json::from_str::<Value>(&ctx.settings) {
        Ok(Value::Object(over)) => base.extend(over),
        Ok(Value::Null) => {}
        Ok(_) => {
            return Err(vec![Diagnostic::error("provider settings must be a table")]);
        }
        Err(e) => {
            return Err(vec![Diagnostic::error(format!(
                "provider settings are not JSON: {e}"
            ))]);
        }
    }
    Ok((Value::Object(base), from_spot))
}

/// The settings's JSON Schema, for `describe`: derived from [`Written`].
pub fn schema() -> String {
    soar_sdk::settings_schema::<Written>()
}

/// Settings of an aws-spot environment, also read from .spot/config.yaml in the project (soar.toml wins).
// The settings as written. Every field is a [`Setting`], so a value of the
// wrong shape does not hide the problems after it: [`parse`] reports each
// one in its own words, naming the field. Aliases are separate fields
// because they are not interchangeable: `instance_type` adds to
// `instance_types`, and `count` wins over `total_instances`. Doc comments
// are the schema's descriptions, written for the user.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
// `unknown` collects every other key for a "did you mean" error, so the
// schema is closed, as the parser is.
#[schemars(extend("additionalProperties" = false))]
struct Written {
    /// Regions to run in, in order of preference: names, { name = "us-east-1", count = 2 } or { us-east-1 = { count = 2 } }; several regions split the instances between them.
    regions: Setting<Regions>,
    /// Instance types to try, in order.
    #[schemars(extend("default" = ["t3.micro"]))]
    instance_types: Setting<Names>,
    /// More instance types, tried after `instance_types`.
    instance_type: Setting<Names>,
    /// How many instances (default: the sum of the regions' counts when every region has one, else 1).
    #[schemars(range(min = 1, max = 1000))]
    count: Setting<u64>,
    /// Another name for `count` (`count` wins).
    #[schemars(range(min = 1, max = 1000))]
    total_instances: Setting<u64>,
    /// Highest price in USD per hour, e.g. "0.05"; default: the on-demand price.
    max_price: Setting<Price>,
    /// An AMI id for every region; default ("auto"): the newest Canonical Ubuntu LTS.
    ami: Setting<String>,
    /// OpenSSH public key text, imported as a key pair.
    public_key: Setting<String>,
    /// An existing key pair.
    key_name: Setting<String>,
    /// TCP ports opened to `ingress_cidr` besides 22.
    #[schemars(inner(range(min = 1, max = 65535)))]
    ports: Setting<Vec<Item<u64>>>,
    /// The service's TCP port, opened to `ingress_cidr`.
    #[schemars(range(min = 1, max = 65535))]
    service_port: Setting<u64>,
    /// Where the ports may be reached from, as a CIDR block.
    #[schemars(extend("default" = "0.0.0.0/0"))]
    ingress_cidr: Setting<String>,
    /// How long to wait for instances (seconds, or a duration such as "10m"; default 600).
    wait_timeout: Setting<DurationSetting>,
    /// How often to look at the instances while waiting, in milliseconds.
    #[schemars(extend("default" = 5000))]
    poll_interval_ms: Setting<u64>,
    /// The instances' login user.
    #[schemars(extend("default" = "ubuntu"))]
    user: Setting<String>,
    /// In .spot/config.yaml, a section whose keys count as top-level ones; in soar.toml, ignored.
    // Already flattened in by [`merged`]; the key itself is accepted.
    #[serde(rename = "aws")]
    #[schemars(with = "Value")]
    _aws: IgnoredAny,
    // Every other key: reported as unknown, with a suggestion.
    #[serde(flatten)]
    #[schemars(skip)]
    unknown: serde_json::Map<String, Value>,
}

/// `regions`: one name, or a list of names and tables.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum Regions {
    List(Vec<Item<RegionEntry>>),
    One(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum RegionEntry {
    Name(String),
    /// `{ name: us-east-1, count: 2 }` or `{ us-east-1: { count: 2 } }`.
    // Read as a map by [`name_and_body`]; described by [`RegionTable`].
    #[schemars(with = "RegionTable")]
    Table(serde_json::Map<String, Value>),
}

/// How a region's table is written, for the schema only: the parser reads
/// the table as a map ([`name_and_body`]) so that a table without a name
/// gets its own message.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    clippy::large_enum_variant,
    reason = "describes RegionEntry::Table; never built"
)]
enum RegionTable {
    /// `{ name = "us-east-1", count = 2 }`
    Named {
        name: String,
        #[serde(flatten)]
        body: RegionBody,
    },
    /// `{ us-east-1 = { count = 2 } }`
    #[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
    Keyed(BTreeMap<String, RegionBody>),
}

/// The settings of one region.
// What a region's table may say (other keys, `name` included, are not
// read from here). The second spelling of each pair is the name other
// tools use (`node_count`, `machine_type`, `image`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
struct RegionBody {
    /// Instances pinned to this region, or "auto" for a share of `count`.
    count: Setting<RegionCount>,
    /// Another name for `count`.
    node_count: Setting<RegionCount>,
    /// Instance types for this region (default: the global list).
    instance_types: Setting<Names>,
    /// Another name for `instance_types`.
    instance_type: Setting<Names>,
    /// Another name for `instance_types`.
    machine_type: Setting<Names>,
    /// The AMI for this region ("auto": the newest Ubuntu LTS).
    ami: Setting<String>,
    /// Another name for `ami`.
    image: Setting<String>,
}

/// A region's `count`: a number, or `auto` for a share of the total.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegionCount {
    Number(u64),
    Text(String),
}

/// What [`region`] accepts: 0 to 1000, or `auto` (other text is an error).
impl JsonSchema for RegionCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RegionCount".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 1000}, {"const": "auto"}]
        })
    }
}

/// One name or a list of names (`instance_types: t3.micro`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum Names {
    List(Vec<Item<String>>),
    One(String),
}

/// `max_price`: `"0.05"` or `0.05`, USD per hour.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum Price {
    Text(String),
    Number(serde_json::Number),
}

const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 600;

/// Parse settings; errors and warnings as diagnostics. Every problem is
/// reported, not only the first, so one `soar validate` shows them all.
pub fn parse(value: &Value, from_spot: bool) -> (Option<Settings>, Vec<Diagnostic>) {
    // Not a mapping only when the host passed no settings at all: `merged`
    // rejects every other shape.
    let written = Written::deserialize(value).unwrap_or_default();
    let mut d = Vec::new();
    for key in written.unknown.keys() {
        d.push(
            Diagnostic::error(format!("unknown aws-spot setting `{key}`"))
                .at(key.as_str())
                .hint(did_you_mean(key, KEYS, "known settings")),
        );
    }
    let mut instance_types = names("instance_types", written.instance_types, &mut d);
    instance_types.extend(names("instance_type", written.instance_type, &mut d));
    if instance_types.is_empty() {
        instance_types.push("t3.micro".into());
    }
    let regions = regions(written.regions, from_spot, &mut d);
    check_regions(&regions, &mut d);
    let count = count(written.count.or(written.total_instances), &regions, &mut d);
    let max_price = max_price(written.max_price, &mut d);
    let ami = ami(written.ami, &mut d);
    let (public_key, key_name) = key_pair(written.public_key, written.key_name, &mut d);
    let ports = ports(written.ports, written.service_port, &mut d);
    let ingress_cidr = ingress_cidr(written.ingress_cidr, &mut d);
    let wait_timeout_secs = wait_timeout(written.wait_timeout, &mut d);
    let poll_interval_ms = match written.poll_interval_ms {
        Setting::Valid(ms) => ms,
        Setting::Absent => 5000,
        Setting::Invalid(_) => {
            d.push(
                Diagnostic::error("`poll_interval_ms` must be a whole number of milliseconds")
                    .at("poll_interval_ms")
                    .hint("poll_interval_ms: 5000"),
            );
            5000
        }
    };
    let user = text("user", written.user, &mut d).unwrap_or_else(|| "ubuntu".into());

    if d.iter().any(Diagnostic::is_error) {
        return (None, d);
    }
    let settings = Settings {
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
    };
    (Some(settings), d)
}

/// A text setting; another shape is an error rather than silently unset.
fn text(key: &str, written: Setting<String>, d: &mut Vec<Diagnostic>) -> Option<String> {
    match written {
        Setting::Valid(s) => Some(s),
        Setting::Absent => None,
        Setting::Invalid(v) => {
            d.push(
                Diagnostic::error(format!("`{key}` must be text, not {v}"))
                    .at(key)
                    .hint(format!("{key}: \"...\"")),
            );
            None
        }
    }
}

/// `instance_types` / `instance_type`: one name as written, or a list of
/// non-empty names (trimmed).
fn names(key: &str, written: Setting<Names>, d: &mut Vec<Diagnostic>) -> Vec<String> {
    let items = match written {
        Setting::Absent => return Vec::new(),
        Setting::Valid(Names::One(name)) => return vec![name],
        Setting::Valid(Names::List(items)) => items,
        Setting::Invalid(_) => {
            d.push(
                Diagnostic::error(format!("`{key}` must be a list of strings"))
                    .at(key)
                    .hint(format!("{key} = [\"...\"]")),
            );
            return Vec::new();
        }
    };
    let field = FieldPath::new(key);
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.valid() {
            Some(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
            _ => {
                let field = field.index(i);
                d.push(
                    Diagnostic::error(format!("`{field}` must be a non-empty string")).at(field),
                );
            }
        }
    }
    out
}

/// `regions`: strings, `{name, count, instance_types, ami}`, or
/// `{us-east-1: {...}}`.
fn regions(written: Setting<Regions>, from_spot: bool, d: &mut Vec<Diagnostic>) -> Vec<Region> {
    let items = match written {
        Setting::Valid(Regions::List(items)) => items,
        Setting::Valid(Regions::One(name)) => return vec![Region::named(name)],
        Setting::Absent => {
            let where_ = if from_spot {
                "in .spot/config.yaml or [env.<name>]"
            } else {
                "in [env.<name>] of soar.toml (or .spot/config.yaml)"
            };
            d.push(
                Diagnostic::error(format!("no regions configured {where_}"))
                    .at("regions")
                    .hint(
                        "regions: [us-east-1]  (several regions split the instances between them)",
                    ),
            );
            return Vec::new();
        }
        Setting::Invalid(_) => {
            d.push(
                Diagnostic::error("`regions` must be a list of region names")
                    .at("regions")
                    .hint("regions: [us-east-1, eu-west-1]"),
            );
            return Vec::new();
        }
    };
    let field = FieldPath::new("regions");
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| region(&field.index(i), item, d))
        .collect()
}

/// One item of `regions`.
fn region(field: &FieldPath, item: Item<RegionEntry>, d: &mut Vec<Diagnostic>) -> Option<Region> {
    let table = match item {
        Item::Valid(RegionEntry::Name(name)) => return Some(Region::named(name)),
        Item::Valid(RegionEntry::Table(table)) => table,
        Item::Invalid(_) => {
            d.push(
                Diagnostic::error(format!("`{field}` must be a region name"))
                    .at(field)
                    .hint("regions: [us-east-1, eu-west-1]"),
            );
            return None;
        }
    };
    let Some((name, body)) = name_and_body(table) else {
        d.push(
            Diagnostic::error(format!("`{field}` has no `name`"))
                .at(field)
                .hint("{ name: us-east-1, count: 2, instance_types: [t3.micro] }"),
        );
        return None;
    };
    let count = match body.count.or(body.node_count) {
        Setting::Absent => None,
        Setting::Valid(RegionCount::Text(t)) if t == "auto" => None,
        Setting::Valid(RegionCount::Number(n)) if n <= 1000 => Some(n as u32),
        Setting::Valid(_) | Setting::Invalid(_) => {
            let field = field.key("count");
            d.push(Diagnostic::error(format!("`{field}` must be a whole number")).at(field));
            None
        }
    };
    // A region's own types: malformed entries are skipped, as the global
    // list applies when none is left.
    let instance_types = [body.instance_types, body.instance_type, body.machine_type]
        .into_iter()
        .flat_map(|names| match names.valid() {
            Some(Names::One(name)) => vec![name],
            Some(Names::List(items)) => items.into_iter().filter_map(Item::valid).collect(),
            None => Vec::new(),
        })
        .collect();
    let ami = body.ami.or(body.image).valid().filter(|a| a != "auto");
    Some(Region {
        name,
        count,
        instance_types,
        ami,
    })
}

/// A region table's name and settings: `{name: us-east-1, ...}` names
/// itself; a table of one key (`{us-east-1: {...}}`) is named by the key.
fn name_and_body(table: serde_json::Map<String, Value>) -> Option<(String, RegionBody)> {
    let body = |v: Value| RegionBody::deserialize(v).unwrap_or_default();
    if let Some(Value::String(name)) = table.get("name") {
        return Some((name.clone(), body(Value::Object(table))));
    }
    if table.len() != 1 {
        return None;
    }
    table.into_iter().next().map(|(name, v)| (name, body(v)))
}

/// Region names that cannot be AWS regions, and regions listed twice.
fn check_regions(regions: &[Region], d: &mut Vec<Diagnostic>) {
    for (i, r) in regions.iter().enumerate() {
        if !is_region_name(&r.name) {
            d.push(
                Diagnostic::error(format!("`{}` does not look like an AWS region", r.name))
                    .at(FieldPath::new("regions").index(i))
                    .hint("region names look like us-east-1 or eu-west-2"),
            );
        }
    }
    let mut seen = BTreeMap::new();
    for r in regions {
        *seen.entry(r.name.as_str()).or_insert(0) += 1;
    }
    for (name, n) in seen {
        if n > 1 {
            d.push(
                Diagnostic::error(format!("region {name} is listed {n} times"))
                    .at("regions")
                    .hint(
                        "list each region once; give it a `count` to run several instances there",
                    ),
            );
        }
    }
}

/// `count` (or `total_instances`); without one, the sum of the regions'
/// counts when every region has one, else 1.
fn count(written: Setting<u64>, regions: &[Region], d: &mut Vec<Diagnostic>) -> u32 {
    let count = match written {
        Setting::Absent => None,
        Setting::Valid(n) if (1..=1000).contains(&n) => Some(n as u32),
        Setting::Valid(_) | Setting::Invalid(_) => {
            d.push(
                Diagnostic::error("`count` must be a whole number from 1 to 1000")
                    .at("count")
                    .hint("count: 2"),
            );
            None
        }
    };
    let pinned_all = !regions.is_empty() && regions.iter().all(|r| r.count.is_some());
    match count {
        Some(c) => c,
        None if pinned_all => regions.iter().filter_map(|r| r.count).sum(),
        None => 1,
    }
}

fn max_price(written: Setting<Price>, d: &mut Vec<Diagnostic>) -> Option<String> {
    match written {
        Setting::Absent => None,
        Setting::Valid(Price::Text(s)) if s.parse::<f64>().is_ok_and(|p| p > 0.0) => Some(s),
        Setting::Valid(Price::Number(n)) if n.as_f64().is_some_and(|p| p > 0.0) => {
            Some(n.to_string())
        }
        Setting::Valid(_) | Setting::Invalid(_) => {
            d.push(
                Diagnostic::error("`max_price` must be a positive price in USD per hour")
                    .at("max_price")
                    .hint(
                        "max_price = \"0.05\" (or leave it out to pay at most the on-demand price)",
                    ),
            );
            None
        }
    }
}

/// An explicit AMI for every region; `auto` means the newest Ubuntu LTS.
fn ami(written: Setting<String>, d: &mut Vec<Diagnostic>) -> Option<String> {
    let ami = text("ami", written, d).filter(|a| a != "auto")?;
    if !ami.starts_with("ami-") {
        d.push(
            Diagnostic::error(format!("`ami` is `{ami}`, which is not an AMI id"))
                .at("ami")
                .hint(
                    "ami = \"ami-0123456789abcdef0\", or leave it out to use the newest Ubuntu LTS",
                ),
        );
    }
    Some(ami)
}

/// `public_key` (uploaded as a key pair) and `key_name` (an existing one).
fn key_pair(
    public_key: Setting<String>,
    key_name: Setting<String>,
    d: &mut Vec<Diagnostic>,
) -> (Option<String>, Option<String>) {
    let public_key = text("public_key", public_key, d).map(|k| k.trim().to_string());
    if let Some(k) = &public_key
        && !(k.starts_with("ssh-") || k.starts_with("ecdsa-"))
    {
        d.push(
            Diagnostic::error("`public_key` is not an OpenSSH public key")
                .at("public_key")
                .hint("paste the one line of ~/.ssh/id_ed25519.pub (ssh-ed25519 AAAA... you@host); never the private key"),
        );
    }
    let key_name = text("key_name", key_name, d);
    if public_key.is_some() && key_name.is_some() {
        d.push(
            Diagnostic::warning(
                "both `public_key` and `key_name` are set: instances use the key pair `key_name`",
            )
            .at("public_key")
            .hint("remove one of them"),
        );
    }
    (public_key, key_name)
}

/// The ports opened to `ingress_cidr`: 22, `ports` and `service_port`,
/// sorted, each once.
fn ports(
    written: Setting<Vec<Item<u64>>>,
    service_port: Setting<u64>,
    d: &mut Vec<Diagnostic>,
) -> Vec<u16> {
    let port = |n: u64| u16::try_from(n).ok().filter(|p| *p > 0);
    let mut ports: Vec<u16> = vec![22];
    match written {
        Setting::Absent => {}
        Setting::Valid(items) => {
            let field = FieldPath::new("ports");
            for (i, item) in items.into_iter().enumerate() {
                match item.valid().and_then(port) {
                    Some(p) => ports.push(p),
                    None => {
                        let field = field.index(i);
                        d.push(
                            Diagnostic::error(format!("`{field}` must be a TCP port (1-65535)"))
                                .at(field),
                        );
                    }
                }
            }
        }
        Setting::Invalid(_) => d.push(
            Diagnostic::error("`ports` must be a list of TCP ports")
                .at("ports")
                .hint("ports = [22, 8080]"),
        ),
    }
    match service_port {
        Setting::Absent => {}
        Setting::Valid(n) if port(n).is_some() => ports.extend(port(n)),
        Setting::Valid(_) | Setting::Invalid(_) => d.push(
            Diagnostic::error("`service_port` must be a TCP port (1-65535)").at("service_port"),
        ),
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn ingress_cidr(written: Setting<String>, d: &mut Vec<Diagnostic>) -> String {
    let cidr = text("ingress_cidr", written, d).unwrap_or_else(|| "0.0.0.0/0".into());
    if !cidr.contains('/') {
        d.push(
            Diagnostic::error(format!("`ingress_cidr` `{cidr}` is not a CIDR block"))
                .at("ingress_cidr")
                .hint("ingress_cidr = \"203.0.113.0/24\""),
        );
    }
    cidr
}

/// `wait_timeout` in whole seconds: a number of seconds, or a duration in
/// the host's own forms (`"10m"`), rounded up to the second.
fn wait_timeout(written: Setting<DurationSetting>, d: &mut Vec<Diagnostic>) -> u64 {
    let bad = |message: String| {
        Diagnostic::error(message)
            .at("wait_timeout")
            .hint("wait_timeout = 600 (seconds), or a duration such as \"10m\"")
    };
    match written {
        Setting::Absent => DEFAULT_WAIT_TIMEOUT_SECS,
        Setting::Valid(t) => match t.duration() {
            Ok(t) if !t.is_zero() => t.as_secs() + u64::from(t.subsec_nanos() > 0),
            Ok(_) => {
                d.push(bad("`wait_timeout` must be longer than zero".into()));
                DEFAULT_WAIT_TIMEOUT_SECS
            }
            Err(e) => {
                d.push(bad(format!("`wait_timeout`: {e}")));
                DEFAULT_WAIT_TIMEOUT_SECS
            }
        },
        Setting::Invalid(_) => {
            d.push(bad(
                "`wait_timeout` must be a number of seconds, or a duration such as \"10m\"".into(),
            ));
            DEFAULT_WAIT_TIMEOUT_SECS
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(v: Value) -> (Option<Settings>, Vec<Diagnostic>) {
        parse(&v, true)
    }

    /// `field: message` of each diagnostic, in order.
    fn problems(d: &[Diagnostic]) -> Vec<String> {
        d.iter()
            .map(|d| format!("{}: {}", d.field.as_deref().unwrap_or("-"), d.message))
            .collect()
    }

    #[test]
    fn every_documented_key_is_known_and_others_get_a_suggestion() {
        for key in KEYS {
            let w = Written::deserialize(&json!({ *key: null })).unwrap();
            assert!(w.unknown.is_empty(), "{key} lands in `unknown`");
        }
        let (s, d) = parse_json(json!({"regoins": ["us-east-1"], "zzzz": 1}));
        assert!(s.is_none());
        let regoins = d
            .iter()
            .find(|d| d.field.as_deref() == Some("regoins"))
            .unwrap();
        assert_eq!(regoins.message, "unknown aws-spot setting `regoins`");
        assert_eq!(regoins.hint.as_deref(), Some("did you mean `regions`?"));
        let zzzz = d
            .iter()
            .find(|d| d.field.as_deref() == Some("zzzz"))
            .unwrap();
        assert!(
            zzzz.hint
                .as_deref()
                .unwrap()
                .starts_with("known settings: regions, ")
        );
        assert!(problems(&d).contains(
            &"regions: no regions configured in .spot/config.yaml or [env.<name>]".to_string()
        ));
    }

    #[test]
    fn one_run_reports_every_problem_with_its_field() {
        let (s, d) = parse_json(json!({
            "instance_types": ["t3.micro", ""],
            "regions": [5, {"a": 1, "b": 2}, {"name": "us-east-1", "count": 5000}, "US_EAST"],
            "count": "x",
            "max_price": "-1",
            "ami": "ubuntu",
            "public_key": "-----BEGIN",
            "ports": [80, 0],
            "service_port": "http",
            "ingress_cidr": "10.0.0.1",
            "wait_timeout": "10 minutes",
            "poll_interval_ms": "fast",
            "user": 7,
        }));
        assert!(s.is_none());
        assert_eq!(
            problems(&d),
            [
                "instance_types[1]: `instance_types[1]` must be a non-empty string",
                "regions[0]: `regions[0]` must be a region name",
                "regions[1]: `regions[1]` has no `name`",
                "regions[2].count: `regions[2].count` must be a whole number",
                "regions[1]: `US_EAST` does not look like an AWS region",
                "count: `count` must be a whole number from 1 to 1000",
                "max_price: `max_price` must be a positive price in USD per hour",
                "ami: `ami` is `ubuntu`, which is not an AMI id",
                "public_key: `public_key` is not an OpenSSH public key",
                "ports[1]: `ports[1]` must be a TCP port (1-65535)",
                "service_port: `service_port` must be a TCP port (1-65535)",
                "ingress_cidr: `ingress_cidr` `10.0.0.1` is not a CIDR block",
                "wait_timeout: `wait_timeout`: '10 minutes' is not a duration; write \"250ms\", \"30s\", \"10m\", \"1h\" or an integer number of seconds",
                "poll_interval_ms: `poll_interval_ms` must be a whole number of milliseconds",
                "user: `user` must be text, not 7",
            ]
        );
        assert!(d.iter().all(|d| d.is_error()));
    }

    #[test]
    fn region_tables_aliases_and_counts() {
        let (s, d) = parse_json(json!({
            "regions": [
                {"name": "us-east-1", "count": 2, "instance_type": "t3.small"},
                {"eu-west-1": {"node_count": 1, "machine_type": ["t3.large"], "image": "ami-1"}},
                {"name": "eu-west-2", "count": "auto", "ami": "auto"},
            ],
            "instance_types": "t3.nano",
            "instance_type": ["t3.micro"],
            "total_instances": 5,
        }));
        assert!(d.is_empty(), "{:?}", problems(&d));
        let s = s.unwrap();
        assert_eq!(s.instance_types, ["t3.nano", "t3.micro"]);
        assert_eq!(s.count, 5);
        assert_eq!(s.types_for("us-east-1"), ["t3.small"]);
        assert_eq!(s.types_for("eu-west-2"), ["t3.nano", "t3.micro"]);
        assert_eq!(s.ami_for("eu-west-1").as_deref(), Some("ami-1"));
        assert_eq!(s.ami_for("eu-west-2"), None);
        assert_eq!(
            s.slot_regions(),
            [
                "us-east-1",
                "us-east-1",
                "eu-west-1",
                "eu-west-2",
                "eu-west-2"
            ]
        );

        // Every region pinned and no `count`: the sum. `count` wins over
        // `total_instances`.
        let (s, _) = parse_json(
            json!({"regions": [{"us-east-1": {"count": 2}}, {"eu-west-1": {"count": 3}}]}),
        );
        assert_eq!(s.unwrap().count, 5);
        let (s, _) =
            parse_json(json!({"regions": ["us-east-1"], "count": 2, "total_instances": 9}));
        assert_eq!(s.unwrap().count, 2);

        let (_, d) = parse_json(json!({"regions": ["us-east-1", "us-east-1"]}));
        assert_eq!(
            problems(&d),
            ["regions: region us-east-1 is listed 2 times"]
        );
        let (_, d) = parse_json(json!({"regions": {"us-east-1": {}}}));
        assert_eq!(
            problems(&d),
            ["regions: `regions` must be a list of region names"]
        );
    }

    #[test]
    fn wait_timeout_takes_seconds_or_a_duration() {
        let secs = |v: Value| {
            let (s, d) = parse_json(json!({"regions": ["us-east-1"], "wait_timeout": v}));
            s.map(|s| s.wait_timeout_secs).ok_or(problems(&d))
        };
        assert_eq!(secs(json!(30)), Ok(30));
        assert_eq!(secs(json!("10m")), Ok(600));
        assert_eq!(secs(json!("1500ms")), Ok(2));
        assert_eq!(secs(json!(1.5)), Ok(2), "fractions of seconds round up too");
        assert_eq!(secs(Value::Null), Ok(DEFAULT_WAIT_TIMEOUT_SECS));
        for bad in [json!(0), json!(-1), json!("0s"), json!(true)] {
            let err = secs(bad.clone()).unwrap_err();
            assert!(
                err[0].starts_with("wait_timeout: `wait_timeout`"),
                "{bad}: {err:?}"
            );
        }
        assert!(secs(json!("30")).unwrap_err()[0].contains("no unit"));
    }

    #[test]
    fn keys_ports_and_defaults() {
        let (s, d) = parse_json(json!({
            "regions": "us-east-1",
            "public_key": " ssh-ed25519 AAAA me ",
            "key_name": "mine",
            "ports": [8080, 22],
            "service_port": 443,
            "max_price": 0.05,
        }));
        assert_eq!(
            problems(&d),
            [
                "public_key: both `public_key` and `key_name` are set: instances use the key pair `key_name`"
            ]
        );
        assert_eq!(d[0].severity, Severity::Warning);
        let s = s.unwrap();
        assert_eq!(s.public_key.as_deref(), Some("ssh-ed25519 AAAA me"));
        assert_eq!(s.key_pair_name("app", "prod").as_deref(), Some("mine"));
        assert_eq!(s.ports, [22, 443, 8080]);
        assert_eq!(s.max_price.as_deref(), Some("0.05"));
        assert_eq!(s.ingress_cidr, "0.0.0.0/0");
        assert_eq!(s.user, "ubuntu");
        assert_eq!(s.poll_interval_ms, 5000);
        assert_eq!(s.instance_types, ["t3.micro"]);
    }
}
