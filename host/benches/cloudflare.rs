//! P6: a Cloudflare Pages deploy of a generated 10,000-file site through the
//! bundled plugin, the runtime and the broker, against the Cloudflare fake
//! on loopback; then a re-deploy with one file changed.
//!
//! Reports, per deploy: files and bytes uploaded (goal for the re-deploy:
//! 1 file), plan time (hashing every file on the host), apply time, total.
//!
//! Run: `cargo bench -p soar --bench cloudflare` (release build).
//! `SOAR_BENCH_FILES` changes the site size (default 10,000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use soar::artifact::ArtifactSource;
use soar::broker::http::HttpLimits;
use soar::broker::http::policy::Grants;
use soar::catalog::Catalog;
use soar::contract::{ArtifactKind, ChangeAction, Context};
use soar::credentials::SecretSource;
use soar::journal::Journal;
use soar::runtime::{Plugin, Runtime, RuntimeConfig};
use soar::session::{Session, SessionConfig};
use soar_tests::fakes::cloudflare::Cloudflare;

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "bench-token-not-secret";

struct Token;

impl SecretSource for Token {
    fn var(&self, name: &str) -> Option<String> {
        (name == "CLOUDFLARE_API_TOKEN").then(|| TOKEN.to_string())
    }
}

fn main() {
    let files: usize = std::env::var("SOAR_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p6(files));
}

fn generate(dir: &Path, files: usize) -> u64 {
    let mut bytes = 0;
    for i in 0..files {
        let rel = format!("section-{}/page-{i}.html", i % 100);
        let p = dir.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        // 1–4 KiB pages, distinct contents.
        let body = format!(
            "<html><body><h1>{i}</h1>{}</body></html>",
            "lorem ipsum ".repeat(85 + (i % 256))
        );
        bytes += body.len() as u64;
        std::fs::write(p, body).unwrap();
    }
    bytes
}

async fn p6(files: usize) {
    soar::tls::install_crypto_provider();
    let scratch = tempfile::tempdir().unwrap();
    let site = scratch.path().join("site");
    let site_bytes = generate(&site, files);
    println!(
        "P6 Cloudflare Pages deploy: {files} files, {:.1} MiB, fake on loopback",
        site_bytes as f64 / (1 << 20) as f64
    );
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cf-bench-cache")),
        ..Default::default()
    })
    .unwrap();
    let catalog = Catalog::discover(None).unwrap();
    let plugin = runtime
        .load("cloudflare", &catalog.get("cloudflare").unwrap().bytes)
        .await
        .unwrap();
    let fake = Cloudflare::start(TOKEN, ACCOUNT);

    run(&plugin, &fake, &site, "first deploy", files).await;
    std::fs::write(
        site.join("section-7/page-7.html"),
        "<html><body>changed</body></html>",
    )
    .unwrap();
    run(&plugin, &fake, &site, "re-deploy, 1 file changed", files).await;
}

async fn run(plugin: &Plugin, fake: &Cloudflare, site: &Path, label: &str, files: usize) {
    fake.reset_counters();
    let started = Instant::now();
    let artifact = Arc::new(ArtifactSource::scan(ArtifactKind::Static, site).unwrap());
    let scanned = started.elapsed();
    let mut grants = Grants {
        section: "bench".into(),
        ..Default::default()
    };
    grants
        .endpoints
        .insert("api".into(), fake.url().to_string());
    let session = Arc::new(
        Session::new(
            plugin.description(),
            SessionConfig {
                grants,
                credential_env: BTreeMap::new(),
                secrets: Box::new(Token),
                artifact: Some(artifact.clone()),
                journal: Arc::new(Journal::default()),
                http_limits: HttpLimits {
                    backoff_base: Duration::from_millis(5),
                    ..Default::default()
                },
            },
        )
        .unwrap(),
    );
    let ctx = Context {
        app: "bench".into(),
        environment: "p6".into(),
        settings: json!({"account_id": ACCOUNT, "project_name": "bench-site"}).to_string(),
        endpoints: session.http.endpoints().to_vec(),
        artifact: Some(artifact.describe()),
    };
    let t = Instant::now();
    let plan = plugin.plan(session.clone(), &ctx).await.unwrap();
    let planned = t.elapsed();
    let t = Instant::now();
    for c in &plan.changes {
        if c.action != ChangeAction::NoOp {
            plugin.apply(session.clone(), &ctx, c).await.unwrap();
        }
    }
    let applied = t.elapsed();
    let total = started.elapsed();
    let c = fake.counters();
    println!("  {label}:");
    println!(
        "    files uploaded   {:>8}   ({} bytes, {} upload requests)",
        c.files_uploaded, c.bytes_uploaded, c.upload_requests
    );
    println!(
        "    scan (sha256)    {:>8.2} s   {:>8.0} files/s",
        scanned.as_secs_f64(),
        files as f64 / scanned.as_secs_f64()
    );
    println!(
        "    plan (hashing)   {:>8.2} s   {:>8.0} files/s",
        planned.as_secs_f64(),
        files as f64 / planned.as_secs_f64()
    );
    println!("    apply            {:>8.2} s", applied.as_secs_f64());
    println!("    total            {:>8.2} s", total.as_secs_f64());
}
