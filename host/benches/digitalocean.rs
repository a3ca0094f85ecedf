//! DigitalOcean plugin benchmarks against the loopback fake.
//!
//! - P3: `plan` with 1,000 existing droplets: API calls (goal: ceil(1000/200)
//!   + at most 2) and wall time.
//! - P4: `apply` of 100 new droplets with a 2 s provisioning delay, applied
//!   concurrently (bound 100, like the engine's pool), against one droplet
//!   (goal: ≤ 1.3×).
//!
//! `cargo bench -p soar --bench digitalocean`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soar::broker::http::HttpLimits;
use soar::broker::http::policy::Grants;
use soar::catalog::Catalog;
use soar::contract::{ChangeAction, Context};
use soar::credentials::SecretSource;
use soar::journal::Journal;
use soar::runtime::{Plugin, Runtime, RuntimeConfig};
use soar::session::{Session, SessionConfig};
use soar_tests::fakes::digitalocean::DigitalOceanFake;

const TOKEN: &str = "dop_v1_bench_token";

struct Secrets;

impl SecretSource for Secrets {
    fn var(&self, name: &str) -> Option<String> {
        (name == "DIGITALOCEAN_TOKEN").then(|| TOKEN.to_string())
    }
}

fn session(plugin: &Plugin, fake: &DigitalOceanFake) -> Arc<Session> {
    let mut grants = Grants {
        section: "[env.bench.grants] in soar.toml".into(),
        ..Default::default()
    };
    grants
        .endpoints
        .insert("api".into(), fake.url().to_string());
    Arc::new(
        Session::new(
            plugin.description(),
            SessionConfig {
                grants,
                credential_env: BTreeMap::new(),
                secrets: Box::new(Secrets),
                artifact: None,
                journal: Arc::new(Journal::default()),
                http_limits: HttpLimits::default(),
            },
        )
        .expect("session"),
    )
}

fn ctx(session: &Session, settings: &Value) -> Context {
    Context {
        app: "bench".into(),
        environment: "bench".into(),
        settings: settings.to_string(),
        endpoints: session.http.endpoints().to_vec(),
        artifact: None,
    }
}

fn settings(hosts: serde_json::Map<String, Value>, wait_interval: &str) -> Value {
    json!({
        "ssh_key_name": "bench-key",
        "default_region": "nyc3",
        "default_size": "s-1vcpu-1gb",
        "wait_interval": wait_interval,
        "wait_timeout": "5m",
        "hosts": hosts,
    })
}

fn hosts(n: usize) -> serde_json::Map<String, Value> {
    (0..n)
        .map(|i| (format!("h-{i:04}"), json!({"role": "app"})))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Plan, then apply every change concurrently (at most `bound` at once).
async fn plan_and_apply(
    plugin: &Arc<Plugin>,
    fake: &DigitalOceanFake,
    n: usize,
    wait_interval: &str,
    bound: usize,
) -> Duration {
    let s = settings(hosts(n), wait_interval);
    let sess = session(plugin, fake);
    let c = ctx(&sess, &s);
    let plan = plugin.plan(sess.clone(), &c).await.expect("plan");
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(bound));
    let mut set = tokio::task::JoinSet::new();
    for change in plan
        .changes
        .into_iter()
        .filter(|c| c.action == ChangeAction::Create)
    {
        let (plugin, sess, c, sem) = (plugin.clone(), sess.clone(), c.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            plugin.apply(sess, &c, &change).await
        });
    }
    let mut applied = 0;
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("apply");
        applied += 1;
    }
    assert_eq!(applied, n);
    started.elapsed()
}

/// Run P3 and P4 and print each figure against its goal ("met"/"MISSED":
/// reported, not enforced); panics only if the plugin or fake fails.
/// Public because `tests/all/digitalocean.rs` includes this file as a module
/// to run the benchmarks as an ignored test.
pub fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(std::env::temp_dir().join("soar-bench-do-cache")),
            ..Default::default()
        })
        .unwrap();
        let catalog = Catalog::discover(None).unwrap();
        let plugin = Arc::new(
            runtime
                .load("digitalocean", &catalog.get("digitalocean").unwrap().bytes)
                .await
                .unwrap(),
        );

        // P3: plan over 1,000 existing droplets.
        let fake = DigitalOceanFake::start(TOKEN);
        fake.add_ssh_key("bench-key");
        let tags = ["managed-by:soar", "soar-env:bench", "soar-role:app"];
        for i in 0..1000 {
            fake.add_droplet(&format!("bench-h-{i:04}"), "s-1vcpu-1gb", "nyc3", &tags);
        }
        let s = settings(hosts(1000), "5s");
        let mut times = Vec::new();
        let mut calls = 0;
        for _ in 0..5 {
            fake.reset_calls();
            let sess = session(&plugin, &fake);
            let c = ctx(&sess, &s);
            let started = Instant::now();
            let plan = plugin.plan(sess, &c).await.expect("plan");
            times.push(started.elapsed());
            assert_eq!(plan.changes.len(), 1000);
            calls = fake.total_calls();
        }
        let goal = 1000usize.div_ceil(200) + 2;
        println!(
            "P3 plan, 1000 existing droplets: {calls} API calls (goal ≤ {goal}: {}), {:?} (median of 5; {:?})",
            if calls <= goal { "met" } else { "MISSED" },
            median(times.clone()),
            fake.calls()
        );
        drop(fake);

        // P4: 100 new droplets vs one, 2 s provisioning delay.
        for interval in ["5s", "250ms"] {
            let fake = DigitalOceanFake::start(TOKEN);
            fake.add_ssh_key("bench-key");
            fake.set_provision_delay(Duration::from_secs(2));
            let one = plan_and_apply(&plugin, &fake, 1, interval, 100).await;
            let fake = DigitalOceanFake::start(TOKEN);
            fake.add_ssh_key("bench-key");
            fake.set_provision_delay(Duration::from_secs(2));
            let hundred = plan_and_apply(&plugin, &fake, 100, interval, 100).await;
            let ratio = hundred.as_secs_f64() / one.as_secs_f64();
            println!(
                "P4 apply (wait_interval {interval}): 1 droplet {one:.2?}, 100 droplets {hundred:.2?}, ratio {ratio:.2} (goal ≤ 1.3: {}); {} API calls for 100",
                if ratio <= 1.3 { "met" } else { "MISSED" },
                fake.total_calls()
            );
        }
    });
}
