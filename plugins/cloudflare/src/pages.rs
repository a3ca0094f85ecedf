//! Pages direct upload, as wrangler does it.
//!
//! 1. Hash every file on the host: blake3(base64(content) + extension),
//!    hex, first 32 characters. `_headers`, `_redirects` and `_routes.json`
//!    at the root are not assets: they travel as parts of the deployment.
//! 2. Get an upload JWT (`.../upload-token`); the host captures it as the
//!    `pages-upload` credential; its claims give the file-count limit and
//!    expiry. A 401 or an expiring token gets a fresh one.
//! 3. `check-missing` says which hashes Cloudflare lacks; only those are
//!    uploaded, in buckets of at most 40 MiB and 2,000 files, as JSON whose
//!    values the host fills with base64 file contents.
//! 4. `upsert-hashes` for all, then the deployment with its manifest.
//!
//! Change detection: the deployment's `commit_message` carries
//! `soar-manifest:<sha256 of the manifest> files:<n>`; the documented API
//! returns it as `deployment_trigger.metadata.commit_message` of the latest
//! production deployment. The API exposes no deployment's file list, so a
//! plan reports how many files changed content (via `check-missing`), not
//! which paths were removed.

use std::collections::{BTreeMap, BTreeSet};

use soar_sdk::artifact::{self, DigestAlgorithm, DigestInput};
use soar_sdk::http::{Part, Segment};
use soar_sdk::prelude::*;
use soar_sdk::time;

use crate::api::{self, TOKEN};
use crate::{Settings, default_name, mime};

pub const KIND: &str = "pages-site";
/// The captured upload JWT.
const UPLOAD: &str = "pages-upload";
/// Largest file Pages serves.
pub const MAX_FILE_BYTES: u64 = 25 << 20;
const MAX_BUCKET_BYTES: u64 = 40 << 20;
const MAX_BUCKET_FILES: usize = 2_000;
/// Root files that configure the deployment instead of being served.
const SPECIAL: &[&str] = &["_headers", "_redirects", "_routes.json"];
/// The part Content-Type of a special file in the deployment multipart.
const SPECIAL_CONTENT_TYPE: &str = "application/octet-stream";
const MARK: &str = "soar-manifest:";

fn project_name(ctx: &Context, s: &Settings) -> String {
    s.project_name.clone().unwrap_or_else(|| default_name(ctx))
}

fn project_url(ctx: &Context, s: &Settings) -> PluginResult<String> {
    Ok(format!(
        "{}/pages/projects/{}",
        api::account_url(ctx, s.account_id()?)?,
        project_name(ctx, s)
    ))
}

/// The site as it will be deployed.
struct Site {
    /// `/path` → hash.
    manifest: BTreeMap<String, String>,
    /// Special root files present.
    specials: Vec<String>,
    /// sha256 of the manifest and the special files.
    digest: String,
}

/// Refuse files Pages would refuse, naming them, before anything is sent.
fn check_sizes(artifact: &Artifact) -> PluginResult<()> {
    let big: Vec<String> = artifact
        .files
        .iter()
        .filter(|f| f.size > MAX_FILE_BYTES)
        .map(|f| format!("{} ({:.1} MiB)", f.path, f.size as f64 / (1 << 20) as f64))
        .collect();
    if big.is_empty() {
        return Ok(());
    }
    Err(PluginError::Other(format!(
        "Cloudflare Pages serves files of at most 25 MiB; too large: {}",
        big.join(", ")
    )))
}

fn scan(ctx: &Context) -> PluginResult<Site> {
    let artifact = ctx
        .artifact
        .as_ref()
        .ok_or_else(|| PluginError::Other("a Pages deploy needs a `static` artifact".into()))?;
    check_sizes(artifact)?;
    let mut manifest = BTreeMap::new();
    let mut specials = Vec::new();
    let mut whole = String::new();
    let total = artifact.files.len() as u64;
    for (i, f) in artifact.files.iter().enumerate() {
        if SPECIAL.contains(&f.path.as_str()) {
            specials.push(f.path.clone());
            whole.push_str(&format!("{}\0{}\n", f.path, f.sha256));
            continue;
        }
        let full = artifact::digest(
            &f.path,
            DigestAlgorithm::Blake3,
            DigestInput {
                base64_content: true,
                suffix: mime::extension(&f.path).to_string(),
            },
        )?;
        manifest.insert(format!("/{}", f.path), full[..32].to_string());
        if i % 500 == 0 {
            time::progress("hashing files", i as u64, Some(total));
        }
    }
    whole.push_str(&serde_json::to_string(&manifest).unwrap_or_default());
    Ok(Site {
        manifest,
        specials,
        digest: api::sha256_hex(whole.as_bytes()),
    })
}

/// What the latest production deployment says about itself.
fn latest_deployment(ctx: &Context, s: &Settings) -> PluginResult<Option<Value>> {
    let url = format!(
        "{}/deployments?env=production&page=1&per_page=1",
        project_url(ctx, s)?
    );
    Ok(api::get_optional(&url)?.and_then(|r| r.get(0).cloned()))
}

/// `(manifest digest, file count)` from a deployment's commit message.
fn deployed_mark(dep: &Value) -> Option<(String, u64)> {
    let msg = dep["deployment_trigger"]["metadata"]["commit_message"].as_str()?;
    let rest = msg.split(MARK).nth(1)?;
    let mut words = rest.split_whitespace();
    let digest = words.next()?.to_string();
    let files = words
        .find_map(|w| w.strip_prefix("files:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some((digest, files))
}

/// Upload-token claims: `(exp in seconds, max files)`.
struct Token {
    exp: Option<u64>,
    max_files: Option<u64>,
}

struct Uploader<'a> {
    ctx: &'a Context,
    token_url: String,
    token: Token,
    refreshed: u32,
}

impl<'a> Uploader<'a> {
    fn new(ctx: &'a Context, s: &Settings) -> PluginResult<Self> {
        let mut u = Self {
            ctx,
            token_url: format!("{}/upload-token", project_url(ctx, s)?),
            token: Token {
                exp: None,
                max_files: None,
            },
            refreshed: 0,
        };
        u.refresh()?;
        u.refreshed = 0;
        Ok(u)
    }

    fn refresh(&mut self) -> PluginResult<()> {
        api::result(
            Request::get(&self.token_url)
                .credential(TOKEN)
                .capture(UPLOAD, "/result/jwt")
                .send()?,
        )?;
        let claims: Value = soar_sdk::http::credential_claims(UPLOAD)
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(Value::Null);
        self.token = Token {
            exp: claims["exp"].as_u64(),
            max_files: claims["max_file_count_allowed"].as_u64(),
        };
        self.refreshed += 1;
        Ok(())
    }

    /// Refresh when the token expires within a minute.
    fn fresh(&mut self) -> PluginResult<()> {
        if let Some(exp) = self.token.exp
            && exp.saturating_mul(1000) < time::now_ms() + 60_000
        {
            debug!("pages upload token about to expire; fetching a new one");
            self.refresh()?;
        }
        Ok(())
    }

    /// Send a JWT-authenticated request built by `make`; a 401/403 gets a
    /// fresh token and another try (three in all).
    fn send(&mut self, make: impl Fn() -> Request) -> PluginResult<Value> {
        self.fresh()?;
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = make().credential(UPLOAD).send()?;
            if matches!(resp.status, 401 | 403) && tries < 3 {
                warn!(
                    "pages upload token refused ({}); fetching a new one",
                    resp.status
                );
                self.refresh()?;
                continue;
            }
            return api::result(resp);
        }
    }

    fn assets_url(&self, what: &str) -> PluginResult<String> {
        Ok(format!("{}/pages/assets/{what}", self.ctx.endpoint("api")?))
    }
}

fn hashes_body(hashes: &[&String]) -> Value {
    json!({ "hashes": hashes })
}

/// Buckets of `(hash, path, size)`: ≤ 40 MiB and ≤ 2,000 files each,
/// biggest files first so buckets fill evenly.
type Upload = (String, String, u64);

fn buckets(mut files: Vec<Upload>) -> Vec<Vec<Upload>> {
    files.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
    let mut out: Vec<(u64, Vec<Upload>)> = Vec::new();
    'next: for f in files {
        for (bytes, b) in out.iter_mut() {
            if b.len() < MAX_BUCKET_FILES && *bytes + f.2 <= MAX_BUCKET_BYTES {
                *bytes += f.2;
                b.push(f);
                continue 'next;
            }
        }
        out.push((f.2, vec![f]));
    }
    out.into_iter().map(|(_, b)| b).collect()
}

/// The JSON array of one bucket, file values filled in by the host.
fn bucket_body(bucket: &[(String, String, u64)]) -> Vec<Segment> {
    let mut segs = vec![Segment::Bytes(b"[".to_vec())];
    for (i, (hash, path, _)) in bucket.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        segs.push(Segment::Bytes(
            format!("{sep}{{\"key\":\"{hash}\",\"value\":\"").into_bytes(),
        ));
        segs.push(Segment::FileBase64(path.clone()));
        segs.push(Segment::Bytes(
            format!(
                "\",\"metadata\":{{\"contentType\":{}}},\"base64\":true}}",
                api::json_str(mime::asset_type(path))
            )
            .into_bytes(),
        ));
    }
    segs.push(Segment::Bytes(b"]".to_vec()));
    segs
}

pub fn plan(ctx: &Context, s: &Settings) -> PluginResult<ChangePlan> {
    let name = project_name(ctx, s);
    let site = scan(ctx)?;
    let project = api::get_optional(&project_url(ctx, s)?)?;
    let latest = match &project {
        Some(_) => latest_deployment(ctx, s)?,
        None => None,
    };
    let mark = latest.as_ref().and_then(deployed_mark);
    let files = site.manifest.len() as u64;
    let after = json!({"manifest_digest": site.digest, "files": files});
    let before = mark
        .as_ref()
        .map(|(d, n)| json!({"manifest_digest": d, "files": n}));
    let mut notes = Vec::new();
    let (action, reason) = match (&project, &mark) {
        (None, _) => (
            ChangeAction::Create,
            format!("no Pages project '{name}'; create it and upload {files} files"),
        ),
        (Some(_), Some((d, _))) if *d == site.digest => {
            (ChangeAction::NoOp, "site unchanged".to_string())
        }
        (Some(_), _) => {
            // Ask Cloudflare which contents it lacks (read-only).
            let mut up = Uploader::new(ctx, s)?;
            if let Some(max) = up.token.max_files
                && files > max
            {
                return Err(PluginError::Other(format!(
                    "the site has {files} files; this Pages project accepts at most {max}"
                )));
            }
            let unique: BTreeSet<&String> = site.manifest.values().collect();
            let list: Vec<&String> = unique.into_iter().collect();
            let url = up.assets_url("check-missing")?;
            let missing = up.send(|| Request::post(&url).json(&hashes_body(&list)))?;
            let n = missing.as_array().map_or(0, Vec::len);
            notes.push(format!(
                "Pages '{name}': {files} files, {n} with content not yet on Cloudflare"
            ));
            let reason = match mark {
                Some((_, old)) => format!(
                    "site changed: {n} new or changed file contents ({old} → {files} files)"
                ),
                None => format!("no deployment by Soar yet; {n} file contents to upload"),
            };
            (ChangeAction::Update, reason)
        }
    };
    let payload = json!({
        "create_project": project.is_none(),
        "manifest": site.manifest,
        "specials": site.specials,
        "digest": site.digest,
    });
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
    if api::get_optional(&project_url(ctx, s)?)?.is_none() {
        return Ok(vec![]);
    }
    Ok(vec![Change {
        action: ChangeAction::Delete,
        kind: KIND.into(),
        name: project_name(ctx, s),
        reason: "destroying the environment".into(),
        before: None,
        after: None,
        payload: "{}".into(),
        deploys_artifact: true,
    }])
}

pub fn apply(ctx: &Context, s: &Settings, change: &Change) -> PluginResult<Applied> {
    let name = change.name.clone();
    let project_url = project_url(ctx, s)?;
    if change.action == ChangeAction::Delete {
        return delete_project(&project_url, &name);
    }
    let artifact = ctx
        .artifact
        .as_ref()
        .ok_or_else(|| PluginError::Other("a Pages deploy needs a `static` artifact".into()))?;
    check_sizes(artifact)?;
    let payload: Value = serde_json::from_str(&change.payload)
        .map_err(|e| PluginError::Other(format!("bad change payload: {e}")))?;
    let manifest: BTreeMap<String, String> =
        serde_json::from_value(payload["manifest"].clone()).unwrap_or_default();
    let digest = payload["digest"].as_str().unwrap_or_default().to_string();
    let specials: Vec<String> =
        serde_json::from_value(payload["specials"].clone()).unwrap_or_default();
    let mut messages = Vec::new();

    // 1. The project.
    let branch = s.production_branch.clone().unwrap_or_else(|| "main".into());
    let project_id = ensure_project(ctx, s, &project_url, &name, &branch, &mut messages)?;

    // 2. Token and limits.
    let mut up = Uploader::new(ctx, s)?;
    let files = manifest.len() as u64;
    if let Some(max) = up.token.max_files
        && files > max
    {
        return Err(PluginError::Other(format!(
            "the site has {files} files; this Pages project accepts at most {max}"
        )));
    }

    // 3.-5. The files Cloudflare lacks.
    let (total, bytes) = upload_missing(&mut up, artifact, &manifest)?;
    messages.push(format!("uploaded {total} of {files} files ({bytes} bytes)"));

    // 6. The deployment.
    let commit_message = format!("{MARK}{digest} files:{files}");
    let dep = create_deployment(&project_url, &manifest, branch, commit_message, &specials)?;
    let url = dep["url"].as_str().unwrap_or_default().to_string();
    messages.push(format!(
        "deployment {} of {name} at {url}",
        dep["short_id"]
            .as_str()
            .or(dep["id"].as_str())
            .unwrap_or("?")
    ));
    if up.refreshed > 0 {
        messages.push(format!("upload token renewed {} time(s)", up.refreshed));
    }
    Ok(Applied {
        resource: Some(ManagedResource {
            kind: KIND.into(),
            name: name.clone(),
            id: project_id,
            attributes: json!({
                "manifest_digest": digest,
                "deployment_id": dep["id"],
                "files": files,
                "uploaded": total,
                "uploaded_bytes": bytes,
                "url": url,
            })
            .to_string(),
        }),
        endpoints: if url.is_empty() {
            vec![]
        } else {
            vec![Endpoint {
                kind: soar_sdk::EndpointKind::Url,
                address: url,
                port: None,
                user: None,
            }]
        },
        messages,
    })
}

/// Delete the project; one already gone is deleted.
fn delete_project(project_url: &str, name: &str) -> PluginResult<Applied> {
    let resp = Request::delete(project_url).credential(TOKEN).send()?;
    if resp.status != 404 {
        api::result(resp)?;
    }
    Ok(Applied {
        resource: None,
        endpoints: vec![],
        messages: vec![format!("deleted Pages project {name}")],
    })
}

/// The project's id, creating the project when it does not exist. Its id
/// is the resource's id, in apply as in status, so `soar status` can tell
/// a project deleted and re-created outside Soar.
fn ensure_project(
    ctx: &Context,
    s: &Settings,
    project_url: &str,
    name: &str,
    branch: &str,
    messages: &mut Vec<String>,
) -> PluginResult<Option<String>> {
    if let Some(p) = api::get_optional(project_url)? {
        return Ok(p["id"].as_str().map(str::to_string));
    }
    let url = format!("{}/pages/projects", api::account_url(ctx, s.account_id()?)?);
    let created = api::result(
        Request::post(&url)
            .credential(TOKEN)
            .json(&json!({"name": name, "production_branch": branch}))
            .send()?,
    )?;
    messages.push(format!("created Pages project {name}"));
    Ok(created["id"].as_str().map(str::to_string))
}

/// Ask which of the site's hashes Cloudflare lacks, upload those files in
/// buckets, then mark every hash as in use. Returns the number of files
/// uploaded and their bytes.
fn upload_missing(
    up: &mut Uploader,
    artifact: &Artifact,
    manifest: &BTreeMap<String, String>,
) -> PluginResult<(u64, u64)> {
    // 3. What is missing.
    let sizes: BTreeMap<&str, u64> = artifact
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size))
        .collect();
    let mut by_hash: BTreeMap<&String, &str> = BTreeMap::new();
    for (path, hash) in manifest {
        by_hash.entry(hash).or_insert(&path[1..]);
    }
    let all: Vec<&String> = by_hash.keys().copied().collect();
    let check_url = up.assets_url("check-missing")?;
    let missing = up.send(|| Request::post(&check_url).json(&hashes_body(&all)))?;
    let missing: Vec<(String, String, u64)> = missing
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .filter_map(|h| {
            let path = by_hash.get(&h.to_string())?;
            Some((
                h.to_string(),
                path.to_string(),
                *sizes.get(path).unwrap_or(&0),
            ))
        })
        .collect();

    // 4. Upload them.
    let upload_url = up.assets_url("upload")?;
    let total = missing.len() as u64;
    let bytes: u64 = missing.iter().map(|m| m.2).sum();
    let mut done = 0u64;
    for bucket in buckets(missing) {
        let body = bucket_body(&bucket);
        up.send(|| {
            Request::post(&upload_url)
                .header("content-type", "application/json")
                .segments(body.clone())
                .timeout_ms(10 * 60 * 1000)
        })?;
        done += bucket.len() as u64;
        time::progress("uploading files", done, Some(total));
    }

    // 5. Tell Cloudflare every hash is in use.
    let upsert_url = up.assets_url("upsert-hashes")?;
    up.send(|| Request::post(&upsert_url).json(&hashes_body(&all)))?;
    Ok((total, bytes))
}

/// Create the deployment: the manifest (path to hash) and the special
/// files (`_headers`, `_redirects`...) as a multipart form, the way
/// wrangler sends it.
fn create_deployment(
    project_url: &str,
    manifest: &BTreeMap<String, String>,
    branch: String,
    commit_message: String,
    specials: &[String],
) -> PluginResult<Value> {
    let text = |name: &str, value: String| Part {
        name: name.into(),
        filename: None,
        content_type: None,
        content: vec![Segment::Bytes(value.into_bytes())],
    };
    let mut parts = vec![
        text(
            "manifest",
            serde_json::to_string(manifest).unwrap_or_default(),
        ),
        text("branch", branch),
        text("commit_message", commit_message),
        text("commit_dirty", "true".into()),
    ];
    // wrangler appends each as `new File([text], name)`, a blob without a
    // type, which fetch's FormData labels `application/octet-stream`; the
    // API's own client is the reference for what its parser expects.
    for sp in specials {
        parts.push(Part {
            name: sp.clone(),
            filename: Some(sp.clone()),
            content_type: Some(SPECIAL_CONTENT_TYPE.into()),
            content: vec![Segment::File(sp.clone())],
        });
    }
    api::result(
        Request::post(format!("{project_url}/deployments"))
            .credential(TOKEN)
            .multipart(parts)
            .timeout_ms(5 * 60 * 1000)
            .send()?,
    )
}

pub fn status(ctx: &Context, s: &Settings) -> PluginResult<Vec<ResourceStatus>> {
    let name = project_name(ctx, s);
    let Some(project) = api::get_optional(&project_url(ctx, s)?)? else {
        return Ok(vec![]);
    };
    let latest = latest_deployment(ctx, s)?;
    let url = latest
        .as_ref()
        .and_then(|d| d["url"].as_str())
        .map(str::to_string);
    let mark = latest.as_ref().and_then(deployed_mark);
    Ok(vec![ResourceStatus {
        resource: ManagedResource {
            kind: KIND.into(),
            name: name.clone(),
            id: project["id"].as_str().map(str::to_string),
            attributes: json!({
                "manifest_digest": mark.as_ref().map(|m| &m.0),
                "deployment_id": latest.as_ref().map(|d| &d["id"]),
                "files": mark.as_ref().map(|m| m.1),
                "url": url,
                "subdomain": project["subdomain"],
            })
            .to_string(),
        },
        state: if latest.is_some() {
            soar_sdk::ResourceState::Running
        } else {
            soar_sdk::ResourceState::Pending
        },
        endpoints: url
            .map(|u| Endpoint {
                kind: soar_sdk::EndpointKind::Url,
                address: u,
                port: None,
                user: None,
            })
            .into_iter()
            .collect(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_respect_both_limits() {
        let files: Vec<_> = (0..4500)
            .map(|i| (format!("h{i}"), format!("f{i}"), 1000))
            .collect();
        let b = buckets(files);
        assert!(b.iter().all(|b| b.len() <= MAX_BUCKET_FILES));
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 4500);
        let big: Vec<_> = (0..5)
            .map(|i| (format!("h{i}"), format!("f{i}"), 20 << 20))
            .collect();
        let b = buckets(big);
        assert_eq!(b.len(), 3);
        assert!(
            b.iter()
                .all(|b| b.iter().map(|f| f.2).sum::<u64>() <= MAX_BUCKET_BYTES)
        );
    }
}
