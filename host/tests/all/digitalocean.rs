//! The bundled DigitalOcean plugin against a stateful fake of the v2 API on
//! loopback (`soar_tests::fakes::digitalocean`): plans, applies (in parallel,
//! one call per change, as the engine does), rate limits, partial failures
//! and the messages users see.
//!
//! The full `soar deploy` onto droplets (SSH rollout onto loopback sshd) is
//! not covered here: it depends on the host's SSH rollout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soar::broker::http::HttpLimits;
use soar::broker::http::policy::Grants;
use soar::contract::{Applied, Change, ChangeAction, ChangePlan, Context};
use soar::journal::Journal;
use soar::runtime::{CallError, Plugin, Runtime};
use soar::session::{Session, SessionConfig};
use soar_tests::fakes::digitalocean::DigitalOceanFake;

use crate::support::{self, Vars};

const TOKEN: &str = "dop_v1_fake_token_for_tests_0123456789";
const ENV: &str = "staging";

struct Harness {
    plugin: Arc<Plugin>,
    fake: DigitalOceanFake,
    key_id: u64,
    /// The variable → value map the host reads secrets from.
    secrets: BTreeMap<String, String>,
    credential_env: BTreeMap<String, String>,
    limits: HttpLimits,
    _runtime: Runtime,
}

impl Harness {
    async fn new() -> Self {
        let runtime = support::runtime(Default::default());
        let plugin = support::bundled(&runtime, "digitalocean").await;
        let fake = DigitalOceanFake::start(TOKEN);
        let key_id = fake.add_ssh_key("deploy-key");
        fake.add_ssh_key("laptop");
        Self {
            plugin: Arc::new(plugin),
            fake,
            key_id,
            secrets: BTreeMap::from([("DIGITALOCEAN_TOKEN".into(), TOKEN.into())]),
            credential_env: BTreeMap::new(),
            limits: HttpLimits {
                backoff_base: Duration::from_millis(5),
                backoff_max: Duration::from_millis(50),
                ..HttpLimits::default()
            },
            _runtime: runtime,
        }
    }

    fn session(&self) -> Arc<Session> {
        let mut grants = Grants {
            section: format!("[env.{ENV}.grants] in soar.toml"),
            ..Default::default()
        };
        grants
            .endpoints
            .insert("api".into(), self.fake.url().to_string());
        Arc::new(
            Session::new(
                self.plugin.description(),
                SessionConfig {
                    grants,
                    credential_env: self.credential_env.clone(),
                    secrets: Box::new(Vars::new(self.secrets.clone())),
                    artifact: None,
                    journal: Arc::new(Journal::default()),
                    http_limits: self.limits.clone(),
                },
            )
            .expect("session"),
        )
    }

    fn ctx(&self, session: &Session, settings: &Value) -> Context {
        Context {
            app: "shop".into(),
            environment: ENV.into(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: None,
        }
    }

    async fn plan(&self, settings: &Value) -> Result<ChangePlan, CallError> {
        let session = self.session();
        let ctx = self.ctx(&session, settings);
        self.plugin.plan(session, &ctx).await
    }

    async fn plan_destroy(&self, settings: &Value) -> Result<ChangePlan, CallError> {
        let session = self.session();
        let ctx = self.ctx(&session, settings);
        self.plugin.plan_destroy(session, &ctx).await
    }

    async fn plan_ok(&self, settings: &Value) -> ChangePlan {
        match self.plan(settings).await {
            Ok(p) => p,
            Err(e) => panic!("plan failed: {e}"),
        }
    }

    /// Apply every change that is not a no-op like the engine: deletes
    /// first, then the rest, each wave in parallel (one call per change).
    async fn apply(
        &self,
        settings: &Value,
        plan: &ChangePlan,
    ) -> BTreeMap<String, Result<Applied, String>> {
        let session = self.session();
        let ctx = self.ctx(&session, settings);
        let (deletes, rest): (Vec<&Change>, Vec<&Change>) = plan
            .changes
            .iter()
            .filter(|c| c.action != ChangeAction::NoOp)
            .partition(|c| c.action == ChangeAction::Delete);
        let mut out = BTreeMap::new();
        for wave in [deletes, rest] {
            let mut set = tokio::task::JoinSet::new();
            for change in wave {
                let (plugin, session, ctx, change) = (
                    self.plugin.clone(),
                    session.clone(),
                    ctx.clone(),
                    change.clone(),
                );
                set.spawn(async move {
                    let r = plugin.apply(session, &ctx, &change).await;
                    (change.name.clone(), r.map_err(|e| e.to_string()))
                });
            }
            while let Some(j) = set.join_next().await {
                let (name, r) = j.expect("apply task");
                out.insert(name, r);
            }
        }
        out
    }
}

fn settings(hosts: Value) -> Value {
    json!({
        "ssh_key_name": "deploy-key",
        "default_region": "nyc3",
        "default_size": "s-1vcpu-1gb",
        "user_data": "#cloud-config\nruncmd:\n  - touch /soar\n",
        "wait_interval": "20ms",
        "wait_timeout": "20s",
        "hosts": hosts,
    })
}

fn tags(role: &str) -> Vec<String> {
    vec![
        "managed-by:soar".into(),
        format!("soar-env:{ENV}"),
        format!("soar-role:{role}"),
    ]
}

fn seed(fake: &DigitalOceanFake, name: &str, size: &str, region: &str, role: &str) -> u64 {
    let t = tags(role);
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    fake.add_droplet(name, size, region, &t)
}

/// The plan as JSON text, every field included, for byte comparisons.
fn serialize(p: &ChangePlan) -> String {
    let changes: Vec<Value> = p
        .changes
        .iter()
        .map(|c| {
            json!({
                "action": action(c.action),
                "kind": c.kind,
                "name": c.name,
                "reason": c.reason,
                "before": c.before,
                "after": c.after,
                "payload": c.payload,
            })
        })
        .collect();
    let diagnostics: Vec<Value> = p
        .diagnostics
        .iter()
        .map(|d| json!({"severity": format!("{:?}", d.severity), "message": d.message, "field": d.field, "hint": d.hint}))
        .collect();
    serde_json::to_string(
        &json!({"changes": changes, "diagnostics": diagnostics, "notes": p.notes}),
    )
    .unwrap()
}

fn action(a: ChangeAction) -> String {
    format!("{a:?}")
        .trim_start_matches("ChangeAction::")
        .to_string()
}

fn summary(p: &ChangePlan) -> Vec<(String, String)> {
    p.changes
        .iter()
        .map(|c| (action(c.action), c.name.clone()))
        .collect()
}

fn actions(p: &ChangePlan) -> Vec<(String, String)> {
    summary(p)
        .into_iter()
        .filter(|(a, _)| a != "NoOp")
        .collect()
}

fn pair(a: &str, n: &str) -> (String, String) {
    (a.to_string(), n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_is_deterministic_sorted_priced_and_side_effect_free() {
    let h = Harness::new().await;
    seed(&h.fake, "staging-db-1", "s-2vcpu-4gb", "nyc3", "db");
    let old = seed(&h.fake, "staging-web-1", "s-1vcpu-1gb", "nyc3", "web");
    seed(&h.fake, "staging-old-1", "s-1vcpu-2gb", "nyc3", "app");
    // Not Soar's: no tags, and another environment's droplet.
    h.fake
        .add_droplet("staging-app-1", "s-1vcpu-1gb", "nyc3", &[]);
    h.fake.add_droplet(
        "prod-app-1",
        "s-1vcpu-1gb",
        "nyc3",
        &["managed-by:soar", "soar-env:prod", "soar-role:app"],
    );
    let s = settings(json!({
        "app-2": {"role": "app"},
        "web-1": {"role": "web", "size": "s-2vcpu-2gb"},
        "app-1": {"role": "app", "region": "sfo3"},
        "db-1": {"role": "db", "size": "s-2vcpu-4gb"},
    }));
    let first = h.plan_ok(&s).await;
    let second = h.plan_ok(&s).await;
    assert_eq!(
        serialize(&first),
        serialize(&second),
        "plans must be byte-identical"
    );
    assert_eq!(
        summary(&first),
        vec![
            pair("Create", "staging-app-1"),
            pair("Create", "staging-app-2"),
            pair("NoOp", "staging-db-1"),
            pair("Delete", "staging-old-1"),
            pair("Replace", "staging-web-1"),
        ]
    );
    let web = &first.changes[4];
    assert!(
        web.reason.contains("size s-1vcpu-1gb → s-2vcpu-2gb"),
        "{}",
        web.reason
    );
    let payload: Value = serde_json::from_str(&web.payload).unwrap();
    assert_eq!(payload["delete"]["id"], json!(old));
    let create: Value = serde_json::from_str(&first.changes[0].payload).unwrap();
    assert_eq!(
        create["create"],
        json!({
            "name": "staging-app-1",
            "region": "sfo3",
            "size": "s-1vcpu-1gb",
            "image": "ubuntu-24-04-x64",
            "ssh_keys": [h.key_id],
            "tags": tags("app"),
            "user_data": "#cloud-config\nruncmd:\n  - touch /soar\n",
        })
    );
    let notes = first.notes.join("\n");
    assert!(
        notes.contains("droplet staging-app-1: s-1vcpu-1gb in sfo3, $6.00/month"),
        "{notes}"
    );
    assert!(
        notes.contains("droplet staging-web-1: s-2vcpu-2gb in nyc3, $18.00/month"),
        "{notes}"
    );
    // 6 + 6 + 24 + 18 desired; 24 + 6 + 12 running now.
    assert!(
        notes.contains("Monthly cost: $54.00 for 4 droplets (now $42.00)"),
        "{notes}"
    );
    let calls = h.fake.calls();
    assert!(
        calls.keys().all(|k| k.starts_with("GET ")),
        "plan must only read: {calls:?}"
    );
    // Per plan: keys, sizes, one page of droplets.
    assert_eq!(h.fake.total_calls(), 6, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_follows_pagination_over_450_droplets() {
    let h = Harness::new().await;
    let mut hosts = serde_json::Map::new();
    for i in 0..450 {
        seed(
            &h.fake,
            &format!("staging-h-{i:03}"),
            "s-1vcpu-1gb",
            "nyc3",
            "app",
        );
        if i < 449 {
            hosts.insert(format!("h-{i:03}"), json!({"role": "app"}));
        }
    }
    let p = h.plan_ok(&settings(Value::Object(hosts))).await;
    assert_eq!(p.changes.len(), 450);
    assert_eq!(actions(&p), vec![pair("Delete", "staging-h-449")]);
    assert_eq!(
        h.fake.calls_to("GET /v2/droplets"),
        3,
        "450 droplets at 200 a page"
    );
    assert_eq!(h.fake.total_calls(), 5, "{:?}", h.fake.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_waits_for_active_reports_ssh_endpoints_and_is_idempotent() {
    let h = Harness::new().await;
    h.fake.set_provision_delay(Duration::from_millis(300));
    let s = settings(json!({
        "app-1": {"role": "app"},
        "app-2": {"role": "app"},
        "db-1": {"role": "db", "size": "s-2vcpu-4gb", "region": "ams3"},
    }));
    let plan = h.plan_ok(&s).await;
    let results = h.apply(&s, &plan).await;
    for (name, r) in &results {
        let applied = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let ep = &applied.endpoints[0];
        assert_eq!(ep.kind, soar::contract::EndpointKind::Ssh);
        assert!(ep.address.starts_with("203.0.113."), "{}", ep.address);
        assert_eq!((ep.port, ep.user.as_deref()), (Some(22), Some("root")));
        let res = applied.resource.as_ref().unwrap();
        assert_eq!(&res.name, name);
        let attrs: Value = serde_json::from_str(&res.attributes).unwrap();
        assert_eq!(attrs["status"], "active");
    }
    let droplets = h.fake.droplets();
    assert_eq!(droplets.len(), 3);
    let db = droplets.iter().find(|d| d.name == "staging-db-1").unwrap();
    assert_eq!(
        (db.size.as_str(), db.region.as_str()),
        ("s-2vcpu-4gb", "ams3")
    );
    assert_eq!(db.tags, tags("db"));
    assert_eq!(db.ssh_keys, vec![json!(h.key_id)]);
    assert!(
        db.user_data
            .as_deref()
            .unwrap()
            .starts_with("#cloud-config")
    );

    // Second plan: nothing to do.
    let again = h.plan_ok(&s).await;
    assert!(actions(&again).is_empty(), "{:?}", summary(&again));
    // Applying the first plan again creates nothing new.
    let posts = h.fake.calls_to("POST /v2/droplets");
    let results = h.apply(&s, &plan).await;
    assert!(results.values().all(Result::is_ok), "{results:?}");
    assert_eq!(h.fake.calls_to("POST /v2/droplets"), posts);
    assert_eq!(h.fake.droplets().len(), 3);
    let msgs: Vec<String> = results
        .values()
        .flat_map(|r| r.as_ref().unwrap().messages.clone())
        .collect();
    assert!(
        msgs.iter().all(|m| m.starts_with("kept existing droplet")),
        "{msgs:?}"
    );

    // Status shows the droplets with their endpoints.
    let session = h.session();
    let ctx = h.ctx(&session, &s);
    let status = h.plugin.status(session, &ctx).await.unwrap();
    assert_eq!(status.len(), 3);
    assert!(
        status
            .iter()
            .all(|st| st.state == soar::contract::ResourceState::Running && st.endpoints.len() == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_is_reported_per_droplet_and_a_rerun_converges() {
    let h = Harness::new().await;
    h.fake.fail_create("staging-app-2", 422);
    h.fake.fail_create("staging-app-3", 500);
    let s = settings(json!({
        "app-1": {"role": "app"},
        "app-2": {"role": "app"},
        "app-3": {"role": "app"},
        "app-4": {"role": "app"},
    }));
    let plan = h.plan_ok(&s).await;
    let results = h.apply(&s, &plan).await;
    assert!(results["staging-app-1"].is_ok());
    assert!(results["staging-app-4"].is_ok());
    let e2 = results["staging-app-2"].as_ref().unwrap_err();
    assert!(
        e2.contains("API error 422 unprocessable_entity: creating staging-app-2 failed")
            && e2.contains("(request id fake-"),
        "{e2}"
    );
    let e3 = results["staging-app-3"].as_ref().unwrap_err();
    assert!(e3.contains("API error 500 server_error"), "{e3}");
    assert_eq!(h.fake.droplets().len(), 2);

    h.fake.clear_create_failures();
    let next = h.plan_ok(&s).await;
    assert_eq!(
        actions(&next),
        vec![
            pair("Create", "staging-app-2"),
            pair("Create", "staging-app-3")
        ]
    );
    // Re-running the whole first plan converges too (completed changes are skipped).
    let results = h.apply(&s, &plan).await;
    assert!(results.values().all(Result::is_ok), "{results:?}");
    let mut names: Vec<String> = h.fake.droplets().into_iter().map(|d| d.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "staging-app-1",
            "staging-app-2",
            "staging-app-3",
            "staging-app-4"
        ]
    );
    assert!(actions(&h.plan_ok(&s).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_a_spent_budget_are_survived_by_the_host_retries() {
    let mut h = Harness::new().await;
    // The two creates run in parallel and share the storm, so one of them
    // may meet several 429s in a row: give the retries room for all 12.
    h.limits.max_attempts = 13;
    let s = settings(json!({"app-1": {"role": "app"}, "app-2": {"role": "app"}}));
    // Two of every three requests are throttled, 12 times in all.
    h.fake.storm_429(12, 3, "0");
    let plan = h.plan_ok(&s).await;
    assert_eq!(actions(&plan).len(), 2);
    let results = h.apply(&s, &plan).await;
    assert!(results.values().all(Result::is_ok), "{results:?}");
    assert_eq!(h.fake.throttled(), 12);
    assert_eq!(h.fake.droplets().len(), 2);

    // A budget of 2 calls a second: the third waits for `retry-after`.
    h.limits.backoff_max = Duration::from_secs(3);
    h.fake.reset_calls();
    h.fake.set_rate_limit(2, Duration::from_secs(1));
    let started = Instant::now();
    let again = h.plan_ok(&s).await;
    assert!(actions(&again).is_empty());
    assert!(h.fake.throttled() >= 1, "{:?}", h.fake.calls());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_the_messages_users_expect() {
    let mut h = Harness::new().await;
    let s = settings(json!({"app-1": {"role": "app"}}));

    // Unknown SSH key.
    let mut bad = s.clone();
    bad["ssh_key_name"] = json!("nope");
    let e = h.plan(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("digitalocean provider: SSH key 'nope' not found in DigitalOcean account"),
        "{e}"
    );
    assert!(e.contains("keys in the account: deploy-key, laptop"), "{e}");

    // Invalid region and size, with the valid values.
    let bad = settings(json!({"app-1": {"role": "app", "region": "xyz1"}}));
    let e = h.plan(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("region 'xyz1' of host 'app-1' is not an available DigitalOcean region")
            && e.contains("valid regions: ams3, fra1, nyc1, nyc3, sfo3"),
        "{e}"
    );
    assert!(e.contains("hosts.app-1.region"), "{e}");
    let bad = settings(json!({"app-1": {"role": "app", "size": "s-64vcpu-huge"}}));
    let e = h.plan(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("size 's-64vcpu-huge' of host 'app-1' is not an available DigitalOcean size")
            && e.contains(
                "valid sizes: s-1vcpu-1gb, s-1vcpu-2gb, s-2vcpu-2gb, s-2vcpu-4gb, s-4vcpu-8gb"
            ),
        "{e}"
    );
    let bad = settings(json!({"app-1": {"role": "app", "size": "s-4vcpu-8gb", "region": "fra1"}}));
    let e = h.plan(&bad).await.unwrap_err().to_string();
    assert!(e.contains("is not offered in region 'fra1'"), "{e}");
    let mut bad = s.clone();
    bad["sizes"] = json!(["s-1vcpu-2gb"]);
    let e = h.plan(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("not in the allowed sizes") && e.contains("valid sizes: s-1vcpu-2gb"),
        "{e}"
    );
    // The unavailable region is refused through /v2/regions.
    let bad = settings(json!({"app-1": {"role": "app", "region": "nyc2"}}));
    assert!(
        h.plan(&bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("region 'nyc2'")
    );
    assert_eq!(h.fake.calls_to("GET /v2/regions"), 2);

    // Local config errors, before any call.
    let e = h.plan(&json!({"hosts": {}})).await.unwrap_err().to_string();
    assert!(
        e.contains("ssh_key_name is required") && e.contains("hosts configuration is required"),
        "{e}"
    );
    let e = h
        .plan(&json!({"ssh_key_name": "k", "hosts": {"a": {"role": "app"}}, "typo": 1}))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `typo`"), "{e}");

    // `token_env` is documented as the host's job.
    let mut with_env = s.clone();
    with_env["token_env"] = json!("DO_TOKEN");
    let p = h.plan_ok(&with_env).await;
    assert!(
        p.diagnostics
            .iter()
            .any(|d| d.message.contains("documentation only")
                && d.hint
                    .as_deref()
                    .unwrap_or("")
                    .contains("[env.staging.credentials] digitalocean = \"DO_TOKEN\"")),
        "{:?}",
        p.diagnostics
    );
    with_env["token_env"] = json!("dop_v1_0123");
    assert!(
        h.plan(&with_env)
            .await
            .unwrap_err()
            .to_string()
            .contains("token_env must name an environment variable")
    );

    // A wrong token: DigitalOcean's 401 body as it came.
    h.secrets
        .insert("DIGITALOCEAN_TOKEN".into(), "dop_v1_wrong".into());
    let e = h.plan(&s).await.unwrap_err().to_string();
    assert!(
        e.contains("API error 401 unauthorized: Unable to authenticate you."),
        "{e}"
    );

    // No token at all: the host's message, with the variable it read.
    h.secrets.clear();
    let e = h.plan(&s).await.unwrap_err().to_string();
    assert!(
        e.contains(
            "digitalocean provider: API token missing from environment variable DIGITALOCEAN_TOKEN"
        ),
        "{e}"
    );
    assert!(!e.contains("denied by the host"), "{e}");
    h.credential_env
        .insert("digitalocean".into(), "DO_TOKEN".into());
    let e = h.plan(&s).await.unwrap_err().to_string();
    assert!(
        e.contains("digitalocean provider: API token missing from environment variable DO_TOKEN"),
        "{e}"
    );
    h.secrets.insert("DO_TOKEN".into(), TOKEN.into());
    h.plan_ok(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_then_creates_and_destroy_skips_deleted_droplets() {
    let h = Harness::new().await;
    h.fake.set_delete_delay(Duration::from_millis(200));
    let old = seed(&h.fake, "staging-app-1", "s-1vcpu-1gb", "nyc3", "app");
    seed(&h.fake, "staging-db-1", "s-1vcpu-1gb", "nyc3", "db");
    let s = settings(json!({
        "app-1": {"role": "app", "size": "s-1vcpu-2gb"},
        "db-1": {"role": "db"},
    }));
    let plan = h.plan_ok(&s).await;
    assert_eq!(actions(&plan), vec![pair("Replace", "staging-app-1")]);
    let results = h.apply(&s, &plan).await;
    let applied = results["staging-app-1"].as_ref().unwrap();
    assert!(applied.messages[0].contains(&format!("deleted droplet staging-app-1 ({old})")));
    let app: Vec<_> = h
        .fake
        .droplets()
        .into_iter()
        .filter(|d| d.name == "staging-app-1")
        .collect();
    assert_eq!(app.len(), 1);
    assert_ne!(app[0].id, old);
    assert_eq!(app[0].size, "s-1vcpu-2gb");

    // Destroy, with one droplet deleted behind Soar's back in between.
    let destroy = h.plan_destroy(&s).await.unwrap();
    assert_eq!(
        summary(&destroy),
        vec![
            pair("Delete", "staging-app-1"),
            pair("Delete", "staging-db-1")
        ]
    );
    h.fake.remove_droplet(app[0].id);
    let results = h.apply(&s, &destroy).await;
    let msgs: Vec<String> = results
        .values()
        .map(|r| r.as_ref().unwrap().messages.join(" "))
        .collect();
    assert!(msgs[0].contains("was already deleted"), "{msgs:?}");
    assert!(
        msgs[1].starts_with("deleted droplet staging-db-1"),
        "{msgs:?}"
    );
    assert!(h.fake.droplets().is_empty());
    // Applying the destroy again is harmless.
    let results = h.apply(&s, &destroy).await;
    assert!(results.values().all(Result::is_ok), "{results:?}");
    assert!(h.plan_destroy(&s).await.unwrap().changes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_provisioning_times_out_and_the_next_run_adopts_the_droplet() {
    let h = Harness::new().await;
    h.fake.set_provision_delay(Duration::from_millis(1500));
    let mut s = settings(json!({"app-1": {"role": "app"}}));
    s["wait_timeout"] = json!("200ms");
    let plan = h.plan_ok(&s).await;
    let results = h.apply(&s, &plan).await;
    let e = results["staging-app-1"].as_ref().unwrap_err();
    assert!(e.contains("is still 'new' after"), "{e}");
    s["wait_timeout"] = json!(10);
    let results = h.apply(&s, &plan).await;
    let applied = results["staging-app-1"].as_ref().unwrap();
    assert!(
        applied.messages[0].starts_with("kept existing droplet"),
        "{:?}",
        applied.messages
    );
    assert_eq!(h.fake.calls_to("POST /v2/droplets"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_dropped_connections_reported() {
    let h = Harness::new().await;
    let s = settings(json!({"app-1": {"role": "app"}}));
    h.fake.fail_next(2, 503);
    h.plan_ok(&s).await;
    h.fake.drop_next(1);
    let e = h.plan(&s).await.unwrap_err().to_string();
    assert!(e.contains("request failed"), "{e}");
    h.plan_ok(&s).await;
}

/// The P3/P4 benchmarks of `host/benches/digitalocean.rs`, runnable without
/// a `[[bench]]` entry: `cargo test -p soar --test all -- --ignored --nocapture digitalocean::benchmarks`.
#[path = "../../benches/digitalocean.rs"]
mod bench;

#[test]
#[ignore = "a benchmark: takes ~10 s, run with --ignored"]
fn benchmarks_p3_p4() {
    bench::main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_retags_the_droplet_in_place() {
    let h = Harness::new().await;
    let id = seed(&h.fake, "staging-app-1", "s-1vcpu-1gb", "nyc3", "app");
    let s = settings(json!({"app-1": {"role": "worker"}}));
    let plan = h.plan_ok(&s).await;
    assert_eq!(actions(&plan), vec![pair("Update", "staging-app-1")]);
    assert!(
        plan.changes[0].reason.contains("app → worker"),
        "{:?}",
        plan.changes[0]
    );
    let results = h.apply(&s, &plan).await;
    let applied = results["staging-app-1"].as_ref().expect("retag");
    assert_eq!(applied.endpoints.len(), 1, "the host keeps its address");
    let d = h.fake.droplets();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].id, id, "the same droplet: never replaced for a role");
    assert_eq!(d[0].tags, tags("worker"));
    assert_eq!(h.fake.calls_to("POST /v2/droplets"), 0);
    // Converged, and applying the same change again changes nothing.
    assert!(actions(&h.plan_ok(&s).await).is_empty());
    let again = h.apply(&s, &plan).await;
    assert!(again["staging-app-1"].is_ok(), "{again:?}");
    assert_eq!(h.fake.droplets()[0].tags, tags("worker"));
}

/// Line `n` of the scopes block under README's "DigitalOcean token scopes".
pub(crate) fn documented_scopes(n: usize) -> Vec<String> {
    let block = support::readme_block("DigitalOcean token scopes", "text");
    let line = block.lines().nth(n).expect("the scopes line");
    line.split_whitespace().map(str::to_string).collect()
}

/// `refused`, the error of a cycle run without the scope `dropped`, is the
/// API's 403, and names the scopes to grant: README's own list `all`.
pub(crate) fn assert_refused_for_want_of(dropped: &str, refused: &str, all: &[&str]) {
    assert!(
        refused.contains("403") && refused.contains("forbidden"),
        "without {dropped}: {refused}"
    );
    assert!(
        refused.contains(&format!("needs all of: {}", all.join(" "))),
        "without {dropped}: {refused}"
    );
    eprintln!("without {dropped}: {refused}");
}

/// Plan, create, status, re-tag and destroy one droplet with a token holding
/// exactly `scopes`; the first step that fails, with its error.
async fn droplet_cycle(scopes: &[&str]) -> Result<(), String> {
    let h = Harness::new().await;
    h.fake.restrict_scopes(scopes);
    let applied = |step: &str, results: BTreeMap<String, Result<Applied, String>>| match results
        .into_iter()
        .find(|(_, r)| r.is_err())
    {
        Some((name, Err(e))) => Err(format!("{step} {name}: {e}")),
        _ => Ok(()),
    };
    let app = settings(json!({ "app-1": {"role": "app"} }));
    let plan = h.plan(&app).await.map_err(|e| format!("plan: {e}"))?;
    applied("create", h.apply(&app, &plan).await)?;
    let session = h.session();
    let ctx = h.ctx(&session, &app);
    h.plugin
        .status(session, &ctx)
        .await
        .map_err(|e| format!("status: {e}"))?;
    let worker = settings(json!({ "app-1": {"role": "worker"} }));
    let plan = h.plan(&worker).await.map_err(|e| format!("re-plan: {e}"))?;
    applied("re-tag", h.apply(&worker, &plan).await)?;
    let destroy = h
        .plan_destroy(&worker)
        .await
        .map_err(|e| format!("plan destroy: {e}"))?;
    applied("destroy", h.apply(&worker, &destroy).await)?;
    assert!(
        h.fake.droplets().is_empty(),
        "the cycle destroys its droplet"
    );
    assert!(h.fake.forbidden().is_empty(), "{:?}", h.fake.forbidden());
    Ok(())
}

/// README's droplet scopes are enough for the whole cycle, and each of them
/// is needed: without it, a step is refused with the API's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_token_scopes_are_enough_and_each_is_needed() {
    let scopes = documented_scopes(0);
    let all: Vec<&str> = scopes.iter().map(String::as_str).collect();
    droplet_cycle(&all)
        .await
        .unwrap_or_else(|e| panic!("under exactly {all:?}: {e}"));
    for dropped in &all {
        let fewer: Vec<&str> = all.iter().copied().filter(|s| s != dropped).collect();
        let refused = droplet_cycle(&fewer).await.expect_err(dropped);
        assert_refused_for_want_of(dropped, &refused, &all);
    }
}
