//! The bundled Cloudflare plugin against the stateful Cloudflare fake
//! (`soar_tests::fakes::cloudflare`), through the real runtime and broker:
//! Workers uploads and Pages direct uploads, with the host holding the API
//! token and the captured upload JWT.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use soar::artifact::ArtifactSource;
use soar::broker::http::HttpLimits;
use soar::contract::{Applied, ArtifactKind, ChangeAction, ChangePlan, Context};
use soar::journal::Journal;
use soar::runtime::{CallError, Plugin, Runtime};
use soar::session::{Session, SessionConfig};
use soar_tests::fakes::cloudflare::Cloudflare;

use crate::support::{self, Vars, write};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

struct Fixture {
    plugin: Plugin,
    fake: Cloudflare,
    token: String,
    journal: Arc<Journal>,
    /// Everything the plugin handed back, for the leak scan.
    outputs: std::sync::Mutex<Vec<String>>,
    /// Service secrets (`[deploy] secrets`) handed to the session.
    service_secrets: std::sync::Mutex<BTreeMap<String, String>>,
    _runtime: Runtime,
}

impl Fixture {
    async fn new() -> Self {
        soar::tls::install_crypto_provider();
        let runtime = support::runtime(Default::default());
        let plugin = support::bundled(&runtime, "cloudflare").await;
        let token = format!("cf-test-token-{}-{:x}", std::process::id(), rand_suffix());
        Self {
            plugin,
            fake: Cloudflare::start(&token, ACCOUNT),
            token,
            journal: Arc::new(Journal::default()),
            outputs: Default::default(),
            service_secrets: Default::default(),
            _runtime: runtime,
        }
    }

    fn session(&self, artifact: Option<Arc<ArtifactSource>>) -> Arc<Session> {
        Arc::new(
            Session::new(
                self.plugin.description(),
                SessionConfig {
                    grants: support::grants(&[("api", self.fake.url())]),
                    credential_env: BTreeMap::new(),
                    secrets: Box::new(Vars::new([("CLOUDFLARE_API_TOKEN", self.token.as_str())])),
                    artifact,
                    journal: self.journal.clone(),
                    http_limits: HttpLimits {
                        backoff_base: Duration::from_millis(5),
                        backoff_max: Duration::from_millis(50),
                        ..Default::default()
                    },
                },
            )
            .unwrap()
            .with_service_secrets(
                self.service_secrets
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), soar::credentials::Secret::new(v.clone())))
                    .collect(),
            ),
        )
    }

    fn ctx(
        &self,
        session: &Session,
        settings: &Value,
        artifact: Option<&ArtifactSource>,
    ) -> Context {
        Context {
            app: "shop".into(),
            environment: "test".into(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: artifact.map(|a| a.describe()),
        }
    }

    /// Plan, then apply every change that is not a no-op, in one session
    /// (one soar command).
    async fn deploy(
        &self,
        dir: &Path,
        kind: ArtifactKind,
        settings: &Value,
    ) -> Result<(ChangePlan, Vec<Applied>), CallError> {
        let artifact = Arc::new(ArtifactSource::scan(kind, dir).unwrap());
        let session = self.session(Some(artifact.clone()));
        let ctx = self.ctx(&session, settings, Some(&artifact));
        let plan = self.plugin.plan(session.clone(), &ctx).await?;
        self.record(&format!("{plan:?}"));
        let mut applied = Vec::new();
        for c in &plan.changes {
            if c.action == ChangeAction::NoOp {
                continue;
            }
            let a = self.plugin.apply(session.clone(), &ctx, c).await;
            self.record(&format!("{a:?}"));
            applied.push(a?);
        }
        Ok((plan, applied))
    }

    async fn destroy(&self, settings: &Value, kind: ArtifactKind, dir: &Path) -> ChangePlan {
        let artifact = Arc::new(ArtifactSource::scan(kind, dir).unwrap());
        let session = self.session(Some(artifact.clone()));
        let ctx = self.ctx(&session, settings, Some(&artifact));
        let plan = self
            .plugin
            .plan_destroy(session.clone(), &ctx)
            .await
            .unwrap();
        for c in &plan.changes {
            let a = self.plugin.apply(session.clone(), &ctx, c).await;
            self.record(&format!("{a:?}"));
            a.unwrap();
        }
        plan
    }

    fn record(&self, s: &str) {
        self.outputs.lock().unwrap().push(s.to_string());
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Pages' hash, computed independently: blake3(base64(content) + ext)[..32].
fn pages_hash(path: &str, content: &[u8]) -> String {
    let name = path.rsplit('/').next().unwrap();
    let ext = match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    };
    let mut data = base64::engine::general_purpose::STANDARD
        .encode(content)
        .into_bytes();
    data.extend_from_slice(ext.as_bytes());
    blake3::hash(&data).to_hex()[..32].to_string()
}

fn site(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.html", b"<h1>home</h1>");
    write(dir.path(), "_headers", b"/*\n  X-Frame-Options: DENY\n");
    write(dir.path(), "_redirects", b"/old /new 301\n");
    for i in 0..n {
        write(
            dir.path(),
            &format!("assets/page-{i}.html"),
            format!("<p>page {i}</p>").as_bytes(),
        );
    }
    write(dir.path(), "css/site.css", b"body{margin:0}");
    write(
        dir.path(),
        "img/logo.png",
        [0x89, b'P', b'N', b'G', 0, 1, 2, 3],
    );
    dir
}

fn worker_settings(vars: Value) -> Value {
    json!({
        "account_id": ACCOUNT,
        "script_name": "shop-api",
        "compatibility_date": "2024-09-23",
        "compatibility_flags": ["nodejs_compat"],
        "vars": vars,
        "routes": [{"pattern": "shop.example.com/api/*", "zone_id": "zone1"}]
    })
}

fn pages_settings() -> Value {
    json!({"account_id": ACCOUNT, "project_name": "shop-site"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_deploy_redeploy_change_bindings_and_destroy() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "index.js",
        b"import t from './lib.mjs'; export default { fetch() { return new Response(t) } }",
    );
    write(dir.path(), "lib.mjs", b"export default 'hello';");
    write(dir.path(), "data.wasm", b"\0asm\x01\0\0\0");
    let settings = worker_settings(json!({"GREETING": "hi", "MODE": "test"}));

    // First deploy: create.
    let (plan, applied) = f
        .deploy(dir.path(), ArtifactKind::Script, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].action, ChangeAction::Create);
    assert_eq!(plan.changes[0].kind, "worker-script");
    let script = f.fake.script("shop-api").expect("uploaded");
    assert_eq!(script.metadata["main_module"], "index.js");
    assert_eq!(script.metadata["compatibility_date"], "2024-09-23");
    assert_eq!(
        script.metadata["compatibility_flags"],
        json!(["nodejs_compat"])
    );
    assert_eq!(
        script.modules["index.js"].0,
        "application/javascript+module",
        "{:?}",
        script.modules.keys()
    );
    assert_eq!(script.modules["lib.mjs"].0, "application/javascript+module");
    assert_eq!(script.modules["data.wasm"].0, "application/wasm");
    assert_eq!(script.modules["data.wasm"].1, b"\0asm\x01\0\0\0");
    let bindings = script.metadata["bindings"].as_array().unwrap();
    assert!(bindings.contains(&json!({"type": "plain_text", "name": "GREETING", "text": "hi"})));
    assert!(bindings.contains(&json!({"type": "plain_text", "name": "MODE", "text": "test"})));
    assert_eq!(
        applied[0].endpoints[0].address,
        "https://shop-api.soar-fake.workers.dev"
    );
    assert_eq!(
        f.fake.routes("zone1"),
        vec![("shop.example.com/api/*".to_string(), "shop-api".to_string())]
    );
    assert_eq!(f.fake.counters().script_uploads, 1);

    // Unchanged: no upload.
    let (plan, _) = f
        .deploy(dir.path(), ArtifactKind::Script, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::NoOp, "{plan:?}");
    assert_eq!(f.fake.counters().script_uploads, 1);

    // A changed module: update, one upload.
    write(dir.path(), "lib.mjs", b"export default 'hello again';");
    let (plan, _) = f
        .deploy(dir.path(), ArtifactKind::Script, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::Update);
    assert_eq!(f.fake.counters().script_uploads, 2);
    assert_eq!(
        f.fake.script("shop-api").unwrap().modules["lib.mjs"].1,
        b"export default 'hello again';"
    );

    // Changed bindings only: update, with before/after showing the vars.
    let settings2 = worker_settings(json!({"GREETING": "bonjour"}));
    let (plan, _) = f
        .deploy(dir.path(), ArtifactKind::Script, &settings2)
        .await
        .unwrap();
    let c = &plan.changes[0];
    assert_eq!(c.action, ChangeAction::Update);
    let before: Value = serde_json::from_str(c.before.as_deref().unwrap()).unwrap();
    let after: Value = serde_json::from_str(c.after.as_deref().unwrap()).unwrap();
    assert_eq!(before["vars"], json!({"GREETING": "hi", "MODE": "test"}));
    assert_eq!(after["vars"], json!({"GREETING": "bonjour"}));
    let bindings = f.fake.script("shop-api").unwrap().metadata["bindings"].clone();
    assert!(!bindings.to_string().contains("MODE"), "{bindings}");
    assert_eq!(f.fake.counters().script_uploads, 3);

    // Destroy.
    let plan = f
        .destroy(&settings2, ArtifactKind::Script, dir.path())
        .await;
    assert_eq!(plan.changes.len(), 1);
    assert!(f.fake.script("shop-api").is_none());
    let plan = f
        .destroy(&settings2, ArtifactKind::Script, dir.path())
        .await;
    assert!(plan.changes.is_empty(), "nothing left to destroy");
    assert_token_never_reached_the_plugin(&f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_deploy_redeploy_one_change_and_removal() {
    let f = Fixture::new().await;
    let dir = site(50);
    let settings = pages_settings();

    // First deploy: project created, every file uploaded once.
    let (plan, applied) = f
        .deploy(dir.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::Create, "{plan:?}");
    assert!(f.fake.project_exists("shop-site"));
    let files = 50 + 3;
    let c = f.fake.counters();
    assert_eq!(c.files_uploaded, files, "{c:?}");
    assert_eq!(c.deployments, 1);
    let deps = f.fake.deployments("shop-site");
    let manifest = &deps[0].manifest;
    assert_eq!(manifest.len(), files);
    assert!(!manifest.contains_key("/_headers") && !manifest.contains_key("/_redirects"));
    assert_eq!(
        manifest["/index.html"],
        pages_hash("index.html", b"<h1>home</h1>")
    );
    assert_eq!(
        manifest["/img/logo.png"],
        pages_hash("img/logo.png", &[0x89, b'P', b'N', b'G', 0, 1, 2, 3])
    );
    assert_eq!(
        f.fake.asset(&manifest["/css/site.css"]).unwrap(),
        b"body{margin:0}"
    );
    assert_eq!(
        deps[0].headers.as_deref(),
        Some(&b"/*\n  X-Frame-Options: DENY\n"[..])
    );
    assert_eq!(deps[0].redirects.as_deref(), Some(&b"/old /new 301\n"[..]));
    assert_eq!(
        applied[0].endpoints[0].kind,
        soar::contract::EndpointKind::Url
    );
    assert_eq!(applied[0].endpoints[0].address, deps[0].url);

    // Unchanged: a no-op, nothing uploaded, no deployment.
    f.fake.reset_counters();
    let (plan, applied) = f
        .deploy(dir.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::NoOp, "{plan:?}");
    assert!(applied.is_empty());
    assert_eq!(f.fake.counters().files_uploaded, 0);

    // One changed file: exactly one upload.
    write(dir.path(), "assets/page-7.html", b"<p>page 7, edited</p>");
    f.fake.reset_counters();
    let (plan, _) = f
        .deploy(dir.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::Update);
    assert!(
        plan.changes[0].reason.contains("1 new or changed"),
        "{}",
        plan.changes[0].reason
    );
    let c = f.fake.counters();
    assert_eq!(
        (c.files_uploaded, c.upload_requests, c.deployments),
        (1, 1, 1),
        "{c:?}"
    );
    assert_eq!(c.bytes_uploaded, b"<p>page 7, edited</p>".len() as u64);
    let latest = f.fake.deployments("shop-site").pop().unwrap();
    assert_eq!(
        latest.manifest["/assets/page-7.html"],
        pages_hash("assets/page-7.html", b"<p>page 7, edited</p>")
    );

    // A removed file disappears from the manifest; nothing to upload.
    std::fs::remove_file(dir.path().join("assets/page-3.html")).unwrap();
    f.fake.reset_counters();
    let (plan, _) = f
        .deploy(dir.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].action, ChangeAction::Update);
    assert_eq!(f.fake.counters().files_uploaded, 0);
    let latest = f.fake.deployments("shop-site").pop().unwrap();
    assert_eq!(latest.manifest.len(), files - 1);
    assert!(!latest.manifest.contains_key("/assets/page-3.html"));

    // Destroy removes the project.
    f.destroy(&settings, ArtifactKind::Static, dir.path()).await;
    assert!(!f.fake.project_exists("shop-site"));
    assert_token_never_reached_the_plugin(&f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_upload_jwt_expiring_mid_upload_is_renewed() {
    let f = Fixture::new().await;
    // 5,000 files: three buckets of at most 2,000.
    let dir = site(4_997);
    let settings = pages_settings();
    // Create the project first (a deploy of one file), then expire the JWT
    // after the first bucket of the big upload.
    let small = site(0);
    f.deploy(small.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    f.fake.reset_counters();
    f.fake.expire_tokens_after_uploads(1);
    let (_, applied) = f
        .deploy(dir.path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    let c = f.fake.counters();
    assert!(c.jwt_refusals >= 1, "the JWT did expire: {c:?}");
    assert!(
        c.tokens_issued >= 3,
        "plan, apply and the renewal each got one: {c:?}"
    );
    assert_eq!(c.upload_requests, 3, "{c:?}");
    assert_eq!(c.files_uploaded, 4_997, "only the new pages: {c:?}");
    assert_eq!(
        f.fake
            .deployments("shop-site")
            .pop()
            .unwrap()
            .manifest
            .len(),
        5_000
    );
    assert!(
        applied[0].messages.iter().any(|m| m.contains("renewed")),
        "{:?}",
        applied[0].messages
    );
    assert_token_never_reached_the_plugin(&f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuses_a_file_over_25_mib_before_any_upload() {
    let f = Fixture::new().await;
    let dir = site(3);
    write(dir.path(), "video/big.mp4", vec![7u8; (25 << 20) + 1]);
    let err = f
        .deploy(dir.path(), ArtifactKind::Static, &pages_settings())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("video/big.mp4") && err.contains("25 MiB"),
        "{err}"
    );
    let c = f.fake.counters();
    assert_eq!(
        (c.files_uploaded, c.upload_requests, c.deployments),
        (0, 0, 0)
    );
    assert!(!f.fake.project_exists("shop-site"));
    assert!(f.fake.seen().is_empty(), "refused before any request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuses_more_files_than_the_jwt_allows() {
    let f = Fixture::new().await;
    let settings = pages_settings();
    f.deploy(site(0).path(), ArtifactKind::Static, &settings)
        .await
        .unwrap();
    f.fake.set_max_files(10);
    f.fake.reset_counters();
    let err = f
        .deploy(site(20).path(), ArtifactKind::Static, &settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("23 files") && err.contains("at most 10"),
        "{err}"
    );
    assert_eq!(f.fake.counters().files_uploaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_survives_a_429_storm_and_5xx() {
    let f = Fixture::new().await;
    let dir = site(300);
    // A 502, then 60 answers of 429, up to 3 in a row: at most 4 failures
    // in a row, within the host's 5 attempts.
    f.fake.fail_next(&[502]);
    f.fake.rate_limit(60, 3);
    let (_, applied) = f
        .deploy(dir.path(), ArtifactKind::Static, &pages_settings())
        .await
        .unwrap();
    let c = f.fake.counters();
    assert!(c.rate_limited >= 20, "{c:?}");
    assert_eq!(c.files_uploaded, 303);
    assert_eq!(c.deployments, 1);
    assert!(!applied[0].endpoints.is_empty());
    assert_token_never_reached_the_plugin(&f);
}

/// The fake got the token as a bearer header on account endpoints and never
/// on asset endpoints; nothing the plugin returned, logged or had recorded
/// contains the token or an upload JWT.
fn assert_token_never_reached_the_plugin(f: &Fixture) {
    let seen = f.fake.seen();
    let bearer = format!("Bearer {}", f.token);
    assert!(
        seen.iter()
            .any(|s| s.authorization.as_deref() == Some(&bearer))
    );
    let mut jwts = Vec::new();
    for s in &seen {
        if s.path.contains("/pages/assets/") {
            let auth = s.authorization.clone().unwrap_or_default();
            assert_ne!(auth, bearer, "the API token went to an asset endpoint");
            jwts.push(auth.trim_start_matches("Bearer ").to_string());
        }
    }
    let everything = format!(
        "{}\n{}",
        f.outputs.lock().unwrap().join("\n"),
        serde_json::to_string(&f.journal.events()).unwrap()
    );
    assert!(!everything.contains(&f.token), "the API token leaked");
    for j in jwts.iter().filter(|j| j.len() > 20) {
        assert!(!everything.contains(j.as_str()), "an upload JWT leaked");
    }
}

/// P6 in the test profile (the release figures come from
/// `cargo bench -p soar --bench cloudflare`): 10,000 files, then one changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark-sized; run with --ignored --nocapture"]
async fn p6_pages_10k_files_then_one_changed() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10_000 {
        write(
            dir.path(),
            &format!("section-{}/page-{i}.html", i % 100),
            format!("<h1>{i}</h1>{}", "lorem ipsum ".repeat(85 + (i % 256))).as_bytes(),
        );
    }
    for label in ["first deploy", "re-deploy, 1 file changed"] {
        f.fake.reset_counters();
        let t = std::time::Instant::now();
        f.deploy(dir.path(), ArtifactKind::Static, &pages_settings())
            .await
            .unwrap();
        let c = f.fake.counters();
        println!(
            "P6 {label}: {:.2} s, {} files / {} bytes uploaded in {} requests",
            t.elapsed().as_secs_f64(),
            c.files_uploaded,
            c.bytes_uploaded,
            c.upload_requests
        );
        write(dir.path(), "section-7/page-7.html", b"<h1>changed</h1>");
    }
    assert_eq!(f.fake.counters().files_uploaded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_secrets_reach_cloudflare_but_never_the_plugin() {
    let f = Fixture::new().await;
    let value = format!("sk-live-{:x}-secret", rand_suffix());
    f.service_secrets
        .lock()
        .unwrap()
        .insert("API_KEY".into(), value.clone());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "index.js",
        b"export default { fetch(r, env) { return new Response(env.API_KEY ? 'ok' : 'no') } }",
    );
    let settings = worker_settings(json!({"GREETING": "hi"}));
    let (plan, applied) = f
        .deploy(dir.path(), ArtifactKind::Script, &settings)
        .await
        .unwrap();
    let script = f.fake.script("shop-api").expect("uploaded");
    let bindings = script.metadata["bindings"].as_array().unwrap();
    assert!(
        bindings.contains(&json!({"type": "secret_text", "name": "API_KEY", "text": value})),
        "the host spliced the value into the upload: {bindings:?}"
    );
    let seen = format!(
        "{plan:?}{applied:?}{}",
        serde_json::to_string(&f.journal.events()).unwrap()
    );
    assert!(!seen.contains(&value), "the plugin never holds the value");
}
