//! A fake of the DigitalOcean v2 API (droplets, keys, regions, sizes, Functions).
//!
//! A stateful, real HTTP server on `127.0.0.1` (axum on its own thread, like
//! [`crate::servers::Server`]), shaped after `../shared/apis/digitalocean-bundled.yaml`:
//!
//! - `GET /v2/droplets` (`tag_name` or `name`, `page`, `per_page` ≤ 200,
//!   `links.pages.{first,prev,next,last}`, `meta.total`), `POST /v2/droplets`
//!   (`name` or `names[]` ≤ 10, `202` with `links.actions`),
//!   `GET|DELETE /v2/droplets/{id}`, `DELETE /v2/droplets?tag_name=`;
//! - `GET /v2/actions/{id}`, `GET /v2/account/keys`, `GET /v2/regions`,
//!   `GET /v2/sizes`;
//! - Functions namespaces: `GET|POST /v2/functions/namespaces`,
//!   `GET|DELETE /v2/functions/namespaces/{namespace_id}`; every namespace's
//!   `api_host` is a companion [`OpenWhiskFake`] on loopback, where its
//!   `uuid:key` authenticates, so functions can be deployed and called;
//! - errors as `{id, message, request_id}` with the document's ids
//!   (`unauthorized`, `not_found`, `unprocessable_entity`, `too_many_requests`,
//!   `server_error`); the bearer token is checked on every call, and a
//!   token restricted to custom scopes ([`DigitalOceanFake::restrict_scopes`])
//!   gets the document's `403 forbidden` for an endpoint whose scopes
//!   ([`SCOPES`], the document's `security` of each route) it lacks;
//! - `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` on every
//!   answer, `429` with `retry-after` once the budget is spent.
//!
//! Droplets are `new` for [`DigitalOceanFake::set_provision_delay`] and then
//! `active` with a public IPv4 from 203.0.113.0/24 (documentation range:
//! never connect to it). Switches inject 429 storms, 5xx, slow answers,
//! dropped connections and per-name create failures. Every call is counted
//! per endpoint (`"GET /v2/droplets/{id}"`) so tests can assert them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openwhisk::{self, OpenWhiskFake};
use crate::axum_thread::{Bound, ServerThread};

/// A size the fake offers.
#[derive(Debug, Clone)]
pub struct FakeSize {
    /// The size's identifier in `size` of a droplet create (`s-1vcpu-1gb`).
    pub slug: String,
    /// RAM in MiB, as the API's `memory`.
    pub memory: u64,
    /// Virtual CPU count, as the API's `vcpus`.
    pub vcpus: u64,
    /// Local disk in GiB, as the API's `disk` (and `disk_info`).
    pub disk: u64,
    /// US dollars per month; `price_hourly` is derived from it as the API
    /// does (672 hours a month).
    pub price_monthly: f64,
    /// Region slugs the size can be created in; a create elsewhere gets the
    /// API's 422 "Size is not available in this region".
    pub regions: Vec<String>,
    /// The API's `available`; an unavailable size is listed but refused.
    pub available: bool,
}

/// A region the fake offers.
#[derive(Debug, Clone)]
pub struct FakeRegion {
    /// The region's identifier in `region` of a droplet create (`nyc3`).
    pub slug: String,
    /// Its display name (`New York 3`).
    pub name: String,
    /// The API's `available`; creating in an unavailable region gets a 422.
    pub available: bool,
}

/// A droplet as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeDroplet {
    /// The droplet id the API assigns, sequential here.
    pub id: u64,
    /// The name given at create (not unique, as in the API).
    pub name: String,
    /// Its size slug.
    pub size: String,
    /// Its region slug.
    pub region: String,
    /// The image slug it was created from.
    pub image: String,
    /// Its tags, matched by `GET /v2/droplets?tag_name=`.
    pub tags: Vec<String>,
    /// The `ssh_keys` of the create request as sent: key ids (which must be
    /// in the account) or fingerprints.
    pub ssh_keys: Vec<Value>,
    /// The create request's cloud-init `user_data`, kept for assertions.
    pub user_data: Option<String>,
    /// When it was created, on the fake's clock; the droplet is `new` until
    /// the provision delay has passed since then.
    pub created: Instant,
    /// The same moment as the API's RFC 3339 `created_at`.
    pub created_at: String,
    /// The id of its create action (`GET /v2/actions/{id}`); 0 for droplets
    /// seeded with [`DigitalOceanFake::add_droplet`], which have none.
    pub action_id: u64,
    /// Set by a DELETE; the droplet answers until `delete_delay` has passed.
    pub deleted_at: Option<Instant>,
}

struct Inner {
    token: String,
    /// The token's custom scopes; `None` for a full-access token.
    scopes: Option<BTreeSet<String>>,
    /// Every `403 forbidden` answered: the endpoint and the scopes it needed.
    forbidden: Vec<String>,
    next_id: u64,
    droplets: BTreeMap<u64, FakeDroplet>,
    keys: Vec<(u64, String)>,
    regions: Vec<FakeRegion>,
    sizes: Vec<FakeSize>,
    namespaces: Vec<Value>,
    namespace_limit: usize,
    /// Tags that exist (created explicitly or by a droplet that carries them).
    tags: BTreeSet<String>,
    openwhisk: openwhisk::Registry,
    provision_delay: Duration,
    delete_delay: Duration,
    latency: Duration,
    limit: u32,
    remaining: u32,
    window: Duration,
    window_start: Instant,
    storm_left: u32,
    storm_every: u32,
    storm_seen: u32,
    storm_retry_after: String,
    fail_5xx: u32,
    fail_5xx_status: u16,
    drop_next: u32,
    fail_create: BTreeMap<String, u16>,
    /// List key (`droplets`, `sizes`...) → the page every answer's next link
    /// names, however far the reader got: a paging fault seen in the wild.
    stuck_next: BTreeMap<String, usize>,
    calls: BTreeMap<String, usize>,
    throttled: usize,
    request_seq: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// The fake API server; stops when dropped (with its OpenWhisk companion).
pub struct DigitalOceanFake {
    inner: Shared,
    server: ServerThread,
    /// Dropped after the API server has stopped (fields drop in order).
    openwhisk: OpenWhiskFake,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn size(slug: &str, memory: u64, vcpus: u64, disk: u64, price: f64, regions: &[&str]) -> FakeSize {
    FakeSize {
        slug: slug.into(),
        memory,
        vcpus,
        disk,
        price_monthly: price,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        available: true,
    }
}

impl DigitalOceanFake {
    /// Start on `127.0.0.1:0`, accepting `token`, with a small catalogue:
    /// regions nyc1, nyc3, sfo3, ams3, fra1 (and nyc2, unavailable); sizes
    /// s-1vcpu-1gb ($6), s-1vcpu-2gb ($12), s-2vcpu-2gb ($18),
    /// s-2vcpu-4gb ($24), s-4vcpu-8gb ($48, not in fra1). Also starts the
    /// [`OpenWhiskFake`] that every Functions namespace's `api_host` points
    /// at ([`DigitalOceanFake::openwhisk`]).
    pub fn start(token: &str) -> Self {
        let openwhisk = OpenWhiskFake::start();
        let all = ["ams3", "fra1", "nyc1", "nyc3", "sfo3"];
        let inner = Arc::new(Mutex::new(Inner {
            token: token.into(),
            scopes: None,
            forbidden: Vec::new(),
            next_id: 300_000_001,
            droplets: BTreeMap::new(),
            keys: Vec::new(),
            regions: vec![
                ("ams3", "Amsterdam 3", true),
                ("fra1", "Frankfurt 1", true),
                ("nyc1", "New York 1", true),
                ("nyc2", "New York 2", false),
                ("nyc3", "New York 3", true),
                ("sfo3", "San Francisco 3", true),
            ]
            .into_iter()
            .map(|(s, n, a)| FakeRegion {
                slug: s.into(),
                name: n.into(),
                available: a,
            })
            .collect(),
            sizes: vec![
                size("s-1vcpu-1gb", 1024, 1, 25, 6.0, &all),
                size("s-1vcpu-2gb", 2048, 1, 50, 12.0, &all),
                size("s-2vcpu-2gb", 2048, 2, 60, 18.0, &all),
                size("s-2vcpu-4gb", 4096, 2, 80, 24.0, &all),
                size(
                    "s-4vcpu-8gb",
                    8192,
                    4,
                    160,
                    48.0,
                    &["ams3", "nyc1", "nyc3", "sfo3"],
                ),
            ],
            namespaces: Vec::new(),
            namespace_limit: usize::MAX,
            tags: BTreeSet::new(),
            openwhisk: openwhisk.registry(),
            provision_delay: Duration::ZERO,
            delete_delay: Duration::ZERO,
            latency: Duration::ZERO,
            limit: 5000,
            remaining: 5000,
            window: Duration::from_secs(3600),
            window_start: Instant::now(),
            storm_left: 0,
            storm_every: 1,
            storm_seen: 0,
            storm_retry_after: "0".into(),
            fail_5xx: 0,
            fail_5xx_status: 500,
            drop_next: 0,
            stuck_next: BTreeMap::new(),
            fail_create: BTreeMap::new(),
            calls: BTreeMap::new(),
            throttled: 0,
            request_seq: 0,
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = Bound::loopback().serve("soar-fake-digitalocean", app);
        Self {
            inner,
            server,
            openwhisk,
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// The OpenWhisk server behind every namespace's `api_host`, to inspect
    /// deployed actions, invocations and inject failures there.
    pub fn openwhisk(&self) -> &OpenWhiskFake {
        &self.openwhisk
    }

    /// Add an SSH key to the account; returns its id.
    pub fn add_ssh_key(&self, name: &str) -> u64 {
        let mut s = lock(&self.inner);
        let id = 289_794 + s.keys.len() as u64;
        s.keys.push((id, name.into()));
        id
    }

    /// Add a Functions namespace behind Soar's back (as the console would;
    /// no validation, no call counted); returns its `namespace_info` as the
    /// API shows it. Its `uuid:key` authenticates at the OpenWhisk fake.
    pub fn add_namespace(&self, label: &str, region: &str) -> Value {
        new_namespace(&mut lock(&self.inner), label, region)
    }

    /// Every Functions namespace's `namespace_info`, in creation order.
    pub fn namespaces(&self) -> Vec<Value> {
        lock(&self.inner).namespaces.clone()
    }

    /// At most `n` namespaces; `POST /v2/functions/namespaces` beyond
    /// answers `422` "namespace limit reached" (default: no limit).
    pub fn set_namespace_limit(&self, n: usize) {
        lock(&self.inner).namespace_limit = n;
    }

    /// Seed a droplet directly (as if created long ago: `active`).
    pub fn add_droplet(&self, name: &str, size: &str, region: &str, tags: &[&str]) -> u64 {
        let mut s = lock(&self.inner);
        let id = s.next_id;
        s.next_id += 1;
        let d = FakeDroplet {
            id,
            name: name.into(),
            size: size.into(),
            region: region.into(),
            image: "ubuntu-24-04-x64".into(),
            tags: {
                s.tags.extend(tags.iter().map(|t| t.to_string()));
                tags.iter().map(|t| t.to_string()).collect()
            },
            ssh_keys: vec![],
            user_data: None,
            created: Instant::now() - Duration::from_secs(24 * 3600),
            created_at: rfc3339(SystemTime::now() - Duration::from_secs(24 * 3600)),
            action_id: 0,
            deleted_at: None,
        };
        s.droplets.insert(id, d);
        id
    }

    /// Remove a droplet behind Soar's back (as the console would).
    pub fn remove_droplet(&self, id: u64) {
        lock(&self.inner).droplets.remove(&id);
    }

    /// The public IPv4 addresses the next `n` droplets created will get, in
    /// creation order (ids are sequential; see [`public_ipv4`]). Tests map
    /// them to loopback hosts with `address_map` before they exist.
    pub fn next_public_ipv4s(&self, n: usize) -> Vec<String> {
        let next = lock(&self.inner).next_id;
        (next..next + n as u64).map(public_ipv4).collect()
    }

    /// Every droplet that is not deleted, by id.
    pub fn droplets(&self) -> Vec<FakeDroplet> {
        let now = Instant::now();
        let mut s = lock(&self.inner);
        sweep(&mut s, now);
        s.droplets
            .values()
            .filter(|d| d.deleted_at.is_none())
            .cloned()
            .collect()
    }

    /// How long a new droplet stays `new` before it is `active`.
    pub fn set_provision_delay(&self, d: Duration) {
        lock(&self.inner).provision_delay = d;
    }

    /// How long a deleted droplet still answers `GET /v2/droplets/{id}`.
    pub fn set_delete_delay(&self, d: Duration) {
        lock(&self.inner).delete_delay = d;
    }

    /// Delay before every answer.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.inner).latency = d;
    }

    /// `limit` requests per `window`; beyond, `429` with `retry-after` (whole
    /// seconds until the window resets, as the API sends it).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut s = lock(&self.inner);
        s.limit = limit;
        s.remaining = limit;
        s.window = window;
        s.window_start = Instant::now();
    }

    /// A 429 storm: of the next requests, all but every `every`-th answer
    /// `429` with `retry-after: <retry_after>`, until `count` 429s were sent.
    pub fn storm_429(&self, count: u32, every: u32, retry_after: &str) {
        let mut s = lock(&self.inner);
        s.storm_left = count;
        s.storm_every = every.max(1);
        s.storm_seen = 0;
        s.storm_retry_after = retry_after.into();
    }

    /// The next `count` requests answer `status` (500, 503...).
    pub fn fail_next(&self, count: u32, status: u16) {
        let mut s = lock(&self.inner);
        s.fail_5xx = count;
        s.fail_5xx_status = status;
    }

    /// Every answer of the list under `key` (`"droplets"`, `"sizes"`...)
    /// links `page` as its next page, also from that page itself and the
    /// last one: the inconsistent paging that once made a plan send 7,666
    /// identical requests. `meta.total` stays the true count.
    pub fn stick_next_link(&self, key: &str, page: usize) {
        lock(&self.inner).stuck_next.insert(key.to_string(), page);
    }

    /// The next `count` connections are dropped without an answer.
    pub fn drop_next(&self, count: u32) {
        lock(&self.inner).drop_next = count;
    }

    /// Make the token a custom-scoped one holding exactly `scopes`
    /// (`droplet:read`...): a call whose route needs a scope it lacks
    /// ([`SCOPES`]) is answered `403 forbidden`, as the API does.
    pub fn restrict_scopes(&self, scopes: &[&str]) {
        lock(&self.inner).scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
    }

    /// Every call refused for a missing scope so far: `"POST /v2/tags needs
    /// tag:create"`.
    pub fn forbidden(&self) -> Vec<String> {
        lock(&self.inner).forbidden.clone()
    }

    /// Creating a droplet named `name` fails with `status` (and creates
    /// nothing) until [`DigitalOceanFake::clear_create_failures`].
    pub fn fail_create(&self, name: &str, status: u16) {
        lock(&self.inner).fail_create.insert(name.into(), status);
    }

    /// Undo every [`DigitalOceanFake::fail_create`].
    pub fn clear_create_failures(&self) {
        lock(&self.inner).fail_create.clear();
    }

    /// Calls per endpoint, e.g. `"GET /v2/droplets"` → 5 (throttled and
    /// failed calls included).
    pub fn calls(&self) -> BTreeMap<String, usize> {
        lock(&self.inner).calls.clone()
    }

    /// Calls to one endpoint (`"POST /v2/droplets"`).
    pub fn calls_to(&self, endpoint: &str) -> usize {
        lock(&self.inner).calls.get(endpoint).copied().unwrap_or(0)
    }

    /// All calls.
    pub fn total_calls(&self) -> usize {
        lock(&self.inner).calls.values().sum()
    }

    /// 429 answers sent.
    pub fn throttled(&self) -> usize {
        lock(&self.inner).throttled
    }

    /// Forget the call counters and the 429 count, e.g. after seeding.
    pub fn reset_calls(&self) {
        let mut s = lock(&self.inner);
        s.calls.clear();
        s.throttled = 0;
    }
}

/// Forget droplets whose deletion has completed.
fn sweep(s: &mut Inner, now: Instant) {
    let delay = s.delete_delay;
    s.droplets
        .retain(|_, d| d.deleted_at.is_none_or(|t| now < t + delay));
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn error(status: u16, id: &str, message: &str, request_id: u64) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({
            "id": id,
            "message": message,
            "request_id": format!("fake-{request_id:08x}-0000-4000-8000-000000000000"),
        })),
    )
        .into_response()
}

fn error_id(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        503 => "service_unavailable",
        _ => "server_error",
    }
}

/// The endpoint a request counts under.
fn endpoint(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let functions = parts.get(1..4) == Some(&["v2", "functions", "namespaces"][..]);
    let tags = parts.get(1..3) == Some(&["v2", "tags"][..]);
    let templ: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if functions && i == 4 {
                "{namespace_id}".to_string()
            } else if tags && i == 3 {
                "{tag_id}".to_string()
            } else if i >= 3 && !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                "{id}".to_string()
            } else {
                p.to_string()
            }
        })
        .collect();
    format!("{method} {}", templ.join("/"))
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && n.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn status_of(s: &Inner, d: &FakeDroplet, now: Instant) -> &'static str {
    if now < d.created + s.provision_delay {
        "new"
    } else {
        "active"
    }
}

fn size_json(z: &FakeSize) -> Value {
    json!({
        "slug": z.slug,
        "memory": z.memory,
        "vcpus": z.vcpus,
        "disk": z.disk,
        "transfer": 1.0,
        "price_monthly": z.price_monthly,
        "price_hourly": (z.price_monthly / 672.0 * 1e6).round() / 1e6,
        "regions": z.regions,
        "available": z.available,
        "description": "Basic",
        "disk_info": [{"type": "local", "size": {"amount": z.disk, "unit": "gib"}}],
    })
}

fn region_json(s: &Inner, r: &FakeRegion) -> Value {
    let sizes: Vec<&str> = s
        .sizes
        .iter()
        .filter(|z| z.regions.contains(&r.slug))
        .map(|z| z.slug.as_str())
        .collect();
    json!({
        "name": r.name,
        "slug": r.slug,
        "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
        "available": r.available,
        "sizes": sizes,
    })
}

/// The public IPv4 of droplet `id` once it is active (documentation range:
/// never connect to it).
pub fn public_ipv4(id: u64) -> String {
    format!("203.0.113.{}", id % 254 + 1)
}

fn droplet_json(s: &Inner, d: &FakeDroplet, now: Instant) -> Value {
    let status = status_of(s, d, now);
    let z = s.sizes.iter().find(|z| z.slug == d.size);
    let r = s.regions.iter().find(|r| r.slug == d.region);
    let v4 = if status == "active" {
        json!([
            {"ip_address": format!("10.110.{}.{}", (d.id / 250) % 250, d.id % 250 + 2), "netmask": "255.255.0.0", "gateway": "10.110.0.1", "type": "private"},
            {"ip_address": public_ipv4(d.id), "netmask": "255.255.255.0", "gateway": "203.0.113.254", "type": "public"},
        ])
    } else {
        json!([])
    };
    json!({
        "id": d.id,
        "name": d.name,
        "memory": z.map(|z| z.memory).unwrap_or(1024),
        "vcpus": z.map(|z| z.vcpus).unwrap_or(1),
        "disk": z.map(|z| z.disk).unwrap_or(25),
        "disk_info": [{"type": "local", "size": {"amount": z.map(|z| z.disk).unwrap_or(25), "unit": "gib"}}],
        "locked": false,
        "status": status,
        "kernel": null,
        "created_at": d.created_at,
        "features": ["droplet_agent", "private_networking"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": [],
        "image": {
            "id": 160_000_001u64, "name": d.image, "distribution": "Ubuntu", "slug": d.image,
            "public": true, "regions": [d.region], "created_at": "2024-04-25T00:00:00Z",
            "type": "base", "min_disk_size": 7, "size_gigabytes": 2.1, "description": "",
            "tags": [], "status": "available"
        },
        "volume_ids": [],
        "size": z.map(size_json).unwrap_or(Value::Null),
        "size_slug": d.size,
        "networks": {"v4": v4, "v6": []},
        "region": r.map(|r| region_json(s, r)).unwrap_or(Value::Null),
        "tags": d.tags,
        "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
    })
}

/// One page of `items` with `links.pages` and `meta.total`; with `stuck`,
/// the next link always names that page (see
/// [`DigitalOceanFake::stick_next_link`]).
fn page(
    base: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    key: &str,
    items: Vec<Value>,
    stuck: Option<usize>,
) -> Result<Value, (u16, String)> {
    let per_page: usize = match q.get("per_page") {
        None => 20,
        Some(v) => v.parse().ok().filter(|n| (1..=200).contains(n)).ok_or((
            400,
            format!("per_page must be between 1 and 200, got '{v}'"),
        ))?,
    };
    let pg: usize = match q.get("page") {
        None => 1,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or((400, format!("page must be at least 1, got '{v}'")))?,
    };
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((pg - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |p: usize| {
        let mut parts: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect();
        parts.push(format!("page={p}"));
        format!("{base}{path}?{}", parts.join("&"))
    };
    let mut pages = serde_json::Map::new();
    if pg > 1 {
        pages.insert("first".into(), link(1).into());
        pages.insert("prev".into(), link(pg - 1).into());
    }
    if let Some(stuck) = stuck {
        pages.insert("next".into(), link(stuck).into());
        pages.insert("last".into(), link(last.max(stuck)).into());
    } else if pg < last {
        pages.insert("next".into(), link(pg + 1).into());
        pages.insert("last".into(), link(last).into());
    }
    Ok(json!({ key: slice, "links": {"pages": pages}, "meta": {"total": total} }))
}

/// The custom scopes of every route the fake serves, as the document's
/// `security` lists them: `(method, path template, scopes)`. A list means
/// all of its scopes, except that `<resource>:admin` stands in for every
/// scope of its resource (the document lists it beside the scope it can
/// replace: `function:read` or `function:admin`).
pub const SCOPES: &[(&str, &str, &[&str])] = &[
    ("GET", "/v2/account/keys", &["ssh_key:read"]),
    ("GET", "/v2/regions", &["regions:read"]),
    ("GET", "/v2/sizes", &["sizes:read", "regions:read"]),
    (
        "GET",
        "/v2/functions/namespaces",
        &["function:read", "function:admin"],
    ),
    (
        "POST",
        "/v2/functions/namespaces",
        &["function:create", "function:admin"],
    ),
    (
        "GET",
        "/v2/functions/namespaces/{namespace_id}",
        &["function:admin"],
    ),
    (
        "DELETE",
        "/v2/functions/namespaces/{namespace_id}",
        &["function:delete", "function:admin"],
    ),
    ("POST", "/v2/tags", &["tag:create"]),
    ("POST", "/v2/tags/{tag_id}/resources", &["tag:create"]),
    ("DELETE", "/v2/tags/{tag_id}/resources", &["tag:delete"]),
    ("GET", "/v2/droplets", &["droplet:read"]),
    ("POST", "/v2/droplets", &["droplet:create"]),
    ("DELETE", "/v2/droplets", &["droplet:delete"]),
    ("GET", "/v2/droplets/{droplet_id}", &["droplet:read"]),
    ("DELETE", "/v2/droplets/{droplet_id}", &["droplet:delete"]),
    ("GET", "/v2/actions/{action_id}", &["actions:read"]),
];

/// The scopes `SCOPES` names for `method path`, if the route is listed.
fn scopes_of(method: &str, path: &str) -> Option<&'static [&'static str]> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    SCOPES.iter().find_map(|(m, template, scopes)| {
        let t: Vec<&str> = template.split('/').collect();
        let fits = *m == method
            && t.len() == segs.len()
            && t.iter()
                .zip(&segs)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
        fits.then_some(*scopes)
    })
}

/// Whether `granted` covers `required` (see [`SCOPES`]).
fn covers(granted: &BTreeSet<String>, required: &[&str]) -> bool {
    let admin_alone = required.len() == 1;
    required
        .iter()
        .filter(|s| admin_alone || !s.ends_with(":admin"))
        .all(|s| {
            let admin = s.split(':').next().map(|r| format!("{r}:admin"));
            granted.contains(*s) || admin.is_some_and(|a| granted.contains(&a))
        })
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let q = query_map(parts.uri.query());
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}");
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);

    let (latency, drop_it) = {
        let mut s = lock(&shared);
        *s.calls.entry(endpoint(&method, &path)).or_default() += 1;
        let drop_it = s.drop_next > 0;
        if drop_it {
            s.drop_next -= 1;
        }
        (s.latency, drop_it)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if drop_it {
        // Unwinding out of the handler makes hyper drop the connection
        // without an answer, as a crashed load balancer would.
        std::panic::resume_unwind(Box::new(
            "fake DigitalOcean: dropping this connection (injected)",
        ));
    }

    let mut s = lock(&shared);
    s.request_seq += 1;
    let rid = s.request_seq;
    let now = Instant::now();
    if now >= s.window_start + s.window {
        s.window_start = now;
        s.remaining = s.limit;
    }
    let reset_epoch = {
        let left = (s.window_start + s.window).saturating_duration_since(now);
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + left.as_secs_f64().ceil() as u64
    };
    let mut response = route(
        &mut s,
        &method,
        &path,
        &q,
        &body,
        auth.as_deref(),
        &base,
        rid,
        now,
    );
    let h = response.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(s.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(s.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset_epoch));
    response
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, decoded once by the handler; a struct for them would be used only here"
)]
#[expect(
    clippy::too_many_lines,
    reason = "one match arm per API endpoint, read as a table; splitting it would scatter the routes"
)]
fn route(
    s: &mut Inner,
    method: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    body: &[u8],
    auth: Option<&str>,
    base: &str,
    rid: u64,
    now: Instant,
) -> Response {
    if auth != Some(&format!("Bearer {}", s.token)) {
        return error(401, "unauthorized", "Unable to authenticate you.", rid);
    }
    if let Some(granted) = &s.scopes {
        let required = scopes_of(method, path).unwrap_or(&[]);
        if !covers(granted, required) {
            s.forbidden.push(format!(
                "{} needs {}",
                endpoint(method, path),
                required.join(" + ")
            ));
            return error(
                403,
                "forbidden",
                "You do not have permission to perform this action.",
                rid,
            );
        }
    }
    // Rate limiting: an injected storm first, then the budget.
    if s.storm_left > 0 {
        s.storm_seen += 1;
        if !s.storm_seen.is_multiple_of(s.storm_every) {
            s.storm_left -= 1;
            s.throttled += 1;
            let mut r = error(429, "too_many_requests", "API rate limit exceeded.", rid);
            if let Ok(v) = HeaderValue::from_str(&s.storm_retry_after) {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
    }
    if s.remaining == 0 {
        s.throttled += 1;
        let left = (s.window_start + s.window).saturating_duration_since(now);
        let mut r = error(429, "too_many_requests", "API rate limit exceeded.", rid);
        r.headers_mut().insert(
            "retry-after",
            HeaderValue::from(left.as_secs_f64().ceil() as u64),
        );
        return r;
    }
    s.remaining -= 1;
    if s.fail_5xx > 0 {
        s.fail_5xx -= 1;
        let st = s.fail_5xx_status;
        return error(st, error_id(st), "Unexpected server-side error", rid);
    }
    sweep(s, now);

    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let paged = |s: &Inner, key: &str, items: Vec<Value>| {
        let stuck = s.stuck_next.get(key).copied();
        match page(base, path, q, key, items, stuck) {
            Ok(v) => axum::Json(v).into_response(),
            Err((st, m)) => error(st, error_id(st), &m, rid),
        }
    };
    match (method, segs.as_slice()) {
        ("GET", ["v2", "account", "keys"]) => {
            let items = s
                .keys
                .iter()
                .map(|(id, name)| {
                    json!({
                        "id": id,
                        "fingerprint": format!("3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:{:02x}:{:02x}", id % 256, id / 256 % 256),
                        "public_key": format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE{id} {name}"),
                        "name": name,
                    })
                })
                .collect();
            paged(s, "ssh_keys", items)
        }
        ("GET", ["v2", "regions"]) => {
            let items = s.regions.iter().map(|r| region_json(s, r)).collect();
            paged(s, "regions", items)
        }
        ("GET", ["v2", "sizes"]) => {
            let items = s.sizes.iter().map(size_json).collect();
            paged(s, "sizes", items)
        }
        ("GET", ["v2", "functions", "namespaces"]) => {
            axum::Json(json!({ "namespaces": s.namespaces })).into_response()
        }
        ("POST", ["v2", "functions", "namespaces"]) => create_namespace(s, body, rid),
        ("GET", ["v2", "functions", "namespaces", id]) => match find_namespace(s, id) {
            Some(i) => axum::Json(json!({ "namespace": s.namespaces[i] })).into_response(),
            None => error(404, "not_found", "namespace not found", rid),
        },
        ("DELETE", ["v2", "functions", "namespaces", id]) => match find_namespace(s, id) {
            Some(i) => {
                let ns = s.namespaces.remove(i);
                if let Some(id) = ns.get("namespace").and_then(Value::as_str) {
                    s.openwhisk.unregister(id);
                }
                StatusCode::NO_CONTENT.into_response()
            }
            None => error(404, "not_found", "namespace not found", rid),
        },
        ("POST", ["v2", "tags"]) => {
            let name = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
            match name {
                Some(n) if tag_ok(&n) => {
                    s.tags.insert(n.clone());
                    let count = s
                        .droplets
                        .values()
                        .filter(|d| d.deleted_at.is_none() && d.tags.contains(&n))
                        .count();
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({ "tag": {
                            "name": n,
                            "resources": { "count": count, "droplets": { "count": count } },
                        }})),
                    )
                        .into_response()
                }
                Some(n) => error(
                    422,
                    "unprocessable_entity",
                    &format!(
                        "tag name '{n}' is not valid: letters, numbers, colons, dashes and underscores only"
                    ),
                    rid,
                ),
                None => error(422, "unprocessable_entity", "name is required", rid),
            }
        }
        (verb @ ("POST" | "DELETE"), ["v2", "tags", tag, "resources"]) => {
            let tag = decode(tag);
            if !s.tags.contains(&tag) {
                return error(
                    404,
                    "not_found",
                    "The resource you requested could not be found.",
                    rid,
                );
            }
            let ids: Option<Vec<u64>> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("resources").and_then(Value::as_array).cloned())
                .map(|rs| {
                    rs.iter()
                        .filter(|r| r["resource_type"] == "droplet")
                        .filter_map(|r| r["resource_id"].as_str().and_then(|i| i.parse().ok()))
                        .collect()
                });
            let Some(ids) = ids else {
                return error(422, "unprocessable_entity", "resources is required", rid);
            };
            for id in ids {
                let Some(d) = s.droplets.get_mut(&id).filter(|d| d.deleted_at.is_none()) else {
                    return error(404, "not_found", &format!("droplet {id} not found"), rid);
                };
                if verb == "POST" {
                    if !d.tags.contains(&tag) {
                        d.tags.push(tag.clone());
                    }
                } else {
                    d.tags.retain(|t| *t != tag);
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["v2", "droplets"]) => {
            if q.contains_key("tag_name") && q.contains_key("name") {
                return error(
                    422,
                    "unprocessable_entity",
                    "tag_name can not be combined with name",
                    rid,
                );
            }
            let items = s
                .droplets
                .values()
                .filter(|d| d.deleted_at.is_none())
                .filter(|d| q.get("tag_name").is_none_or(|t| d.tags.contains(t)))
                .filter(|d| q.get("name").is_none_or(|n| d.name.eq_ignore_ascii_case(n)))
                .map(|d| droplet_json(s, d, now))
                .collect();
            paged(s, "droplets", items)
        }
        ("POST", ["v2", "droplets"]) => create(s, body, base, rid, now),
        ("DELETE", ["v2", "droplets"]) => {
            let Some(tag) = q.get("tag_name") else {
                return error(422, "unprocessable_entity", "tag_name is required", rid);
            };
            for d in s.droplets.values_mut() {
                if d.deleted_at.is_none() && d.tags.contains(tag) {
                    d.deleted_at = Some(now);
                }
            }
            sweep(s, now);
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["v2", "droplets", id]) => {
            match id.parse::<u64>().ok().and_then(|id| s.droplets.get(&id)) {
                Some(d) => {
                    axum::Json(json!({ "droplet": droplet_json(s, d, now) })).into_response()
                }
                None => error(
                    404,
                    "not_found",
                    "The resource you requested could not be found.",
                    rid,
                ),
            }
        }
        ("DELETE", ["v2", "droplets", id]) => {
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| s.droplets.get_mut(&id))
                .filter(|d| d.deleted_at.is_none())
            {
                Some(d) => {
                    d.deleted_at = Some(now);
                    sweep(s, now);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => error(
                    404,
                    "not_found",
                    "The resource you requested could not be found.",
                    rid,
                ),
            }
        }
        ("GET", ["v2", "actions", id]) => {
            let found = id
                .parse::<u64>()
                .ok()
                .and_then(|aid| s.droplets.values().find(|d| d.action_id == aid && aid != 0));
            match found {
                Some(d) => {
                    let done = status_of(s, d, now) == "active";
                    axum::Json(json!({ "action": {
                        "id": d.action_id,
                        "status": if done { "completed" } else { "in-progress" },
                        "type": "create",
                        "started_at": d.created_at,
                        "completed_at": if done { Value::from(d.created_at.clone()) } else { Value::Null },
                        "resource_id": d.id,
                        "resource_type": "droplet",
                        "region": s.regions.iter().find(|r| r.slug == d.region).map(|r| region_json(s, r)),
                        "region_slug": d.region,
                    }}))
                    .into_response()
                }
                None => error(
                    404,
                    "not_found",
                    "The resource you requested could not be found.",
                    rid,
                ),
            }
        }
        _ => error(
            404,
            "not_found",
            "The resource you requested could not be found.",
            rid,
        ),
    }
}

/// A namespace with a random uuid and key, registered at the OpenWhisk fake.
fn new_namespace(s: &mut Inner, label: &str, region: &str) -> Value {
    let uuid = openwhisk::random_uuid();
    let key = openwhisk::random_alnum(64);
    let namespace = format!("fn-{uuid}");
    let now = rfc3339(SystemTime::now());
    s.openwhisk.register(&namespace, &uuid, &key);
    let ns = json!({
        "api_host": s.openwhisk.url(),
        "namespace": namespace,
        "created_at": now,
        "updated_at": now,
        "label": label,
        "region": region,
        "uuid": uuid,
        "key": key,
    });
    s.namespaces.push(ns.clone());
    ns
}

/// The index of namespace `id` (`fn-<uuid>` or the bare uuid).
fn find_namespace(s: &Inner, id: &str) -> Option<usize> {
    s.namespaces.iter().position(|n| {
        n.get("namespace").and_then(Value::as_str) == Some(id)
            || n.get("uuid").and_then(Value::as_str) == Some(id)
    })
}

/// `POST /v2/functions/namespaces` with `{region, label}`.
fn create_namespace(s: &mut Inner, body: &[u8], rid: u64) -> Response {
    let unprocessable = |m: String| error(422, "unprocessable_entity", &m, rid);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "bad_request", "the request body is not JSON", rid);
    };
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|x| !x.is_empty())
    };
    let Some(region) = field("region") else {
        return unprocessable("Invalid request payload: missing region field".into());
    };
    let Some(label) = field("label") else {
        return unprocessable("Invalid request payload: missing label field".into());
    };
    if !s.regions.iter().any(|r| r.slug == region && r.available) {
        return unprocessable(format!("Region is not available: {region}"));
    }
    if s.namespaces
        .iter()
        .any(|n| n.get("label").and_then(Value::as_str) == Some(label))
    {
        return unprocessable(format!("a namespace with label '{label}' already exists"));
    }
    if s.namespaces.len() >= s.namespace_limit {
        return unprocessable("namespace limit reached".into());
    }
    let (label, region) = (label.to_string(), region.to_string());
    let ns = new_namespace(s, &label, &region);
    axum::Json(json!({ "namespace": ns })).into_response()
}

/// `POST /v2/droplets`, single (`name`) or multiple (`names`, at most 10).
fn create(s: &mut Inner, body: &[u8], base: &str, rid: u64, now: Instant) -> Response {
    let unprocessable = |m: String| error(422, "unprocessable_entity", &m, rid);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "bad_request", "the request body is not JSON", rid);
    };
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (names, multi) = match (v.get("name"), v.get("names")) {
        (Some(Value::String(n)), None) => (vec![n.clone()], false),
        (None, Some(Value::Array(ns))) => {
            let ns: Vec<String> = ns
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            if ns.is_empty() || ns.len() > 10 {
                return unprocessable("names must hold between 1 and 10 names".into());
            }
            (ns, true)
        }
        _ => return unprocessable("exactly one of name or names is required".into()),
    };
    if let Some(bad) = names.iter().find(|n| !name_ok(n)) {
        return unprocessable(format!("{bad} is not a valid Droplet name"));
    }
    let Some(region) = str_of("region") else {
        return unprocessable("region is required".into());
    };
    let Some(size) = str_of("size") else {
        return unprocessable("size is required".into());
    };
    let Some(image) = v.get("image").map(|i| match i {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }) else {
        return unprocessable("image is required".into());
    };
    if !s.regions.iter().any(|r| r.slug == region && r.available) {
        return unprocessable(format!("Region is not available: {region}"));
    }
    match s.sizes.iter().find(|z| z.slug == size) {
        Some(z) if z.available && z.regions.contains(&region) => {}
        Some(_) => return unprocessable(format!("Size is not available in this region: {size}")),
        None => return unprocessable(format!("Size is not available: {size}")),
    }
    let ssh_keys: Vec<Value> = v
        .get("ssh_keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for k in &ssh_keys {
        let known = match k {
            Value::Number(n) => s.keys.iter().any(|(id, _)| Some(*id) == n.as_u64()),
            Value::String(_) => true,
            _ => false,
        };
        if !known {
            return unprocessable(format!("SSH key {k} is not in your account"));
        }
    }
    let tags: Vec<String> = v
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = tags.iter().find(|t| !tag_ok(t)) {
        return unprocessable(format!(
            "tag {bad} is not valid: tags may contain letters, numbers, colons, dashes, and underscores"
        ));
    }
    // Droplets created with tags create the tags (as the API does).
    s.tags.extend(tags.iter().cloned());
    let failing: BTreeSet<&String> = names
        .iter()
        .filter(|n| s.fail_create.contains_key(*n))
        .collect();
    if !multi && let Some(n) = failing.first() {
        let st = s.fail_create[*n];
        return error(
            st,
            error_id(st),
            &format!("creating {n} failed (injected by the fake)"),
            rid,
        );
    }
    let mut created = Vec::new();
    let mut actions = Vec::new();
    for name in names.iter().filter(|n| !failing.contains(n)) {
        let (id, aid) = (s.next_id, 36_804_636 + s.next_id);
        s.next_id += 1;
        let d = FakeDroplet {
            id,
            name: name.clone(),
            size: size.clone(),
            region: region.clone(),
            image: image.clone(),
            tags: tags.clone(),
            ssh_keys: ssh_keys.clone(),
            user_data: str_of("user_data"),
            created: now,
            created_at: rfc3339(SystemTime::now()),
            action_id: aid,
            deleted_at: None,
        };
        created.push(droplet_json(s, &d, now));
        actions
            .push(json!({"id": aid, "rel": "create", "href": format!("{base}/v2/actions/{aid}")}));
        s.droplets.insert(id, d);
    }
    if created.is_empty() {
        return error(
            422,
            "unprocessable_entity",
            "no droplet could be created (injected by the fake)",
            rid,
        );
    }
    let body = if multi {
        json!({ "droplets": created, "links": {"actions": actions} })
    } else {
        json!({ "droplet": created[0], "links": {"actions": actions} })
    };
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_templated() {
        assert_eq!(endpoint("GET", "/v2/droplets/123"), "GET /v2/droplets/{id}");
        assert_eq!(endpoint("GET", "/v2/droplets"), "GET /v2/droplets");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            endpoint("DELETE", "/v2/functions/namespaces/fn-abc"),
            "DELETE /v2/functions/namespaces/{namespace_id}"
        );
    }

    #[test]
    fn functions_namespaces_follow_the_document() {
        use crate::fakes::openwhisk::tests::send;
        const TOKEN: &str = "dop_v1_namespaces";
        let fake = DigitalOceanFake::start(TOKEN);
        let url = format!("{}/v2/functions/namespaces", fake.url());
        let post = |body: Value| {
            send(|c| {
                c.post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string())
            })
        };
        let a = post(json!({"region": "nyc1", "label": "my namespace"}));
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.headers.contains_key("ratelimit-remaining"));
        let ns = a.json()["namespace"].clone();
        let uuid = ns["uuid"].as_str().expect("uuid");
        let key = ns["key"].as_str().expect("key");
        assert_eq!(uuid.len(), 36);
        assert_eq!(ns["namespace"], format!("fn-{uuid}"));
        assert_eq!(key.len(), 64);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(ns["api_host"], fake.openwhisk().url());
        assert_eq!(
            (ns["label"].as_str(), ns["region"].as_str()),
            (Some("my namespace"), Some("nyc1"))
        );
        assert!(ns["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(ns["created_at"], ns["updated_at"]);

        for (body, message) in [
            (
                json!({"region": "nyc1", "label": "my namespace"}),
                "already exists",
            ),
            (json!({"region": "nyc1"}), "missing label field"),
            (json!({"label": "x"}), "missing region field"),
            (
                json!({"region": "mars1", "label": "x"}),
                "Region is not available",
            ),
            (
                json!({"region": "nyc2", "label": "x"}),
                "Region is not available",
            ),
        ] {
            let a = post(body);
            assert_eq!(a.status, 422, "{}", a.body);
            let e = a.json();
            assert_eq!(e["id"], "unprocessable_entity");
            assert!(
                e["message"].as_str().is_some_and(|m| m.contains(message)),
                "{e}"
            );
            assert!(e["request_id"].is_string());
        }
        fake.set_namespace_limit(1);
        let a = post(json!({"region": "ams3", "label": "second"}));
        assert_eq!(
            (a.status, a.json()["message"].clone()),
            (422, json!("namespace limit reached"))
        );

        let list = send(|c| c.get(&url).bearer_auth(TOKEN));
        assert_eq!(list.json()["namespaces"], json!([ns]));
        assert_eq!(send(|c| c.get(&url)).status, 401);
        let one = format!("{url}/{}", ns["namespace"].as_str().expect("id"));
        let a = send(|c| c.get(&one).bearer_auth(TOKEN));
        assert_eq!((a.status, a.json()), (200, json!({ "namespace": ns })));
        assert_eq!(send(|c| c.delete(&one).bearer_auth(TOKEN)).status, 204);
        let a = send(|c| c.get(&one).bearer_auth(TOKEN));
        assert_eq!(a.status, 404);
        assert_eq!(a.json()["id"], "not_found");
        assert_eq!(send(|c| c.delete(&one).bearer_auth(TOKEN)).status, 404);
        assert!(fake.namespaces().is_empty());

        assert_eq!(fake.calls_to("POST /v2/functions/namespaces"), 7);
        assert_eq!(fake.calls_to("GET /v2/functions/namespaces"), 2);
        assert_eq!(
            fake.calls_to("GET /v2/functions/namespaces/{namespace_id}"),
            2
        );
        assert_eq!(
            fake.calls_to("DELETE /v2/functions/namespaces/{namespace_id}"),
            2
        );
    }

    /// The fake's scope table is the official document's: every route's
    /// `security` scopes, read from `../shared/apis/digitalocean-bundled.yaml`.
    #[test]
    fn the_scope_table_is_the_documents() {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/apis/digitalocean-bundled.yaml");
        let Ok(text) = std::fs::read_to_string(&doc) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing (CI runs with ../shared beside the checkout)",
                doc.display()
            );
            eprintln!("skipping: {} is not here", doc.display());
            return;
        };
        // Only each operation's `security` is read: the rest of the
        // document holds numbers no YAML value type takes (2^64 and up).
        #[derive(serde::Deserialize)]
        struct Doc {
            paths: BTreeMap<String, BTreeMap<String, Op>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Op {
            Operation {
                #[serde(default)]
                security: Vec<BTreeMap<String, Vec<String>>>,
            },
            Other(serde::de::IgnoredAny),
        }
        let doc: Doc = serde_yaml_ng::from_str(&text).expect("the document parses");
        for (method, path, scopes) in SCOPES {
            let op = doc
                .paths
                .get(*path)
                .and_then(|p| p.get(&method.to_ascii_lowercase()));
            let Some(Op::Operation { security }) = op else {
                panic!("{method} {path} is not in the document");
            };
            let listed = security
                .first()
                .and_then(|s| s.get("bearer_auth"))
                .unwrap_or_else(|| panic!("{method} {path}: no bearer_auth scopes"));
            assert_eq!(listed, scopes, "{method} {path}");
        }
    }

    #[test]
    fn a_scoped_token_is_refused_what_its_scopes_do_not_cover() {
        use crate::fakes::openwhisk::tests::send;
        const TOKEN: &str = "dop_v1_scoped";
        let fake = DigitalOceanFake::start(TOKEN);
        fake.restrict_scopes(&["droplet:read", "function:admin"]);
        let url = fake.url();
        let a = send(|c| c.get(format!("{url}/v2/droplets")).bearer_auth(TOKEN));
        assert_eq!(a.status, 200);
        let a = send(|c| c.get(format!("{url}/v2/sizes")).bearer_auth(TOKEN));
        assert_eq!(
            (a.status, a.json()["id"].clone()),
            (403, json!("forbidden"))
        );
        // `function:admin` stands in for `function:read` and `:create`.
        let a = send(|c| {
            c.get(format!("{url}/v2/functions/namespaces"))
                .bearer_auth(TOKEN)
        });
        assert_eq!(a.status, 200);
        let a = send(|c| c.post(format!("{url}/v2/droplets")).bearer_auth(TOKEN));
        assert_eq!(a.status, 403);
        assert_eq!(
            fake.forbidden(),
            [
                "GET /v2/sizes needs sizes:read + regions:read",
                "POST /v2/droplets needs droplet:create"
            ]
        );
        assert!(covers(
            &["sizes:read".into(), "regions:read".into()].into(),
            &["sizes:read", "regions:read"]
        ));
        assert!(!covers(
            &["sizes:read".into()].into(),
            &["sizes:read", "regions:read"]
        ));
        assert!(!covers(
            &["function:read".into()].into(),
            &["function:admin"]
        ));
    }
}
