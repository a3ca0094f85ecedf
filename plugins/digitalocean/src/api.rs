//! The DigitalOcean v2 API through the host broker: typed reads, pagination
//! over `links.pages.next`, and errors in the user's words.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use soar_sdk::http::Response;
use soar_sdk::prelude::*;

use crate::paging::{Pager, Step};

/// The credential the host injects (bearer token).
pub const CREDENTIAL: &str = "digitalocean";
/// Largest page the API serves.
pub const PER_PAGE: u32 = 200;

/// A droplet, as much of it as Soar reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Droplet {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub size_slug: String,
    pub region: Option<Slugged>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub networks: Networks,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Slugged {
    pub slug: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Networks {
    #[serde(default)]
    pub v4: Vec<NetworkV4>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NetworkV4 {
    pub ip_address: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Droplet {
    pub fn region(&self) -> &str {
        self.region.as_ref().map(|r| r.slug.as_str()).unwrap_or("")
    }

    pub fn public_ipv4(&self) -> Option<&str> {
        self.networks
            .v4
            .iter()
            .find(|n| n.kind == "public")
            .map(|n| n.ip_address.as_str())
    }

    pub fn role(&self) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix("soar-role:"))
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Size {
    pub slug: String,
    #[serde(default)]
    pub price_monthly: f64,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default = "yes")]
    pub available: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Region {
    pub slug: String,
    #[serde(default)]
    pub available: bool,
}

fn yes() -> bool {
    true
}

/// `GET url` with the credential; 2xx or an API error.
pub fn get(url: &str) -> PluginResult<Response> {
    Request::get(url)
        .credential(CREDENTIAL)
        .send()?
        .error_for_status()
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    links: Option<Links>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Deserialize)]
struct Pages {
    next: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    total: Option<u64>,
}

/// Every item under `key` of a paginated list, following `links.pages.next`
/// only while it advances (see [`crate::paging`]).
/// The next link is re-rooted on the configured endpoint (the API answers
/// with its public host name, which a test or proxy override replaces).
pub fn list<T: DeserializeOwned>(base: &str, first: &str, key: &str) -> PluginResult<Vec<T>> {
    let mut out = Vec::new();
    let mut url = format!("{base}{first}");
    let mut pager = Pager::new(key, first, &url);
    loop {
        let resp = get(&url)?;
        let v: Value = resp.json()?;
        let items = v.get(key).cloned().unwrap_or(Value::Array(vec![]));
        let items: Vec<T> = serde_json::from_value(items).map_err(|e| {
            PluginError::Other(format!(
                "digitalocean provider: unexpected response from {url}: '{key}' is not the list expected: {e}"
            ))
        })?;
        let count = items.len();
        out.extend(items);
        let page: Page = serde_json::from_value(v).unwrap_or(Page {
            links: None,
            meta: None,
        });
        let total = page.meta.and_then(|m| m.total);
        let next = page
            .links
            .and_then(|l| l.pages)
            .and_then(|p| p.next)
            .map(|n| rebase(base, &n));
        match pager.after_page(count, total, next) {
            Ok(Step::Follow(next)) => url = next,
            Ok(Step::Done) => return Ok(out),
            Err(why) => return Err(PluginError::Other(why)),
        }
    }
}

/// `https://api.digitalocean.com/v2/x?page=2` → `{base}/v2/x?page=2`.
fn rebase(base: &str, link: &str) -> String {
    let path = match link.find("://") {
        Some(i) => {
            let rest = &link[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
        }
        None => link,
    };
    format!("{base}{path}")
}

/// Percent-encode a query value (tags hold ':').
pub fn q(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The droplets tagged for `env` (and managed by Soar).
pub fn env_droplets(base: &str, env: &str) -> PluginResult<Vec<Droplet>> {
    let tag = crate::settings::env_tag(env);
    let mut all: Vec<Droplet> = list(
        base,
        &format!("/v2/droplets?tag_name={}&per_page={PER_PAGE}", q(&tag)),
        "droplets",
    )?;
    all.retain(|d| d.has_tag(crate::settings::MANAGED_TAG) && d.has_tag(&tag));
    all.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    Ok(all)
}

/// Droplets of `env` named `name` (the API's `name` filter cannot be
/// combined with `tag_name`, so tags are checked here).
pub fn droplets_named(base: &str, env: &str, name: &str) -> PluginResult<Vec<Droplet>> {
    let tag = crate::settings::env_tag(env);
    let mut found: Vec<Droplet> = list(
        base,
        &format!("/v2/droplets?name={}&per_page={PER_PAGE}", q(name)),
        "droplets",
    )?;
    found.retain(|d| d.name == name && d.has_tag(crate::settings::MANAGED_TAG) && d.has_tag(&tag));
    found.sort_by_key(|d| d.id);
    Ok(found)
}

/// One droplet by id; `None` once it is gone (404).
pub fn droplet(base: &str, id: u64) -> PluginResult<Option<Droplet>> {
    let resp = Request::get(format!("{base}/v2/droplets/{id}"))
        .credential(CREDENTIAL)
        .send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct One {
        droplet: Droplet,
    }
    Ok(Some(resp.error_for_status()?.json::<One>()?.droplet))
}
