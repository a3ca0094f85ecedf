//! `/metrics` of a real `soar serve`, read back with a Prometheus
//! text-format parser (`prometheus-parse`, not the encoder that wrote it):
//! jobs by state, queue depth, job and phase durations, the requests the
//! jobs' plugins made through the brokers (a DigitalOcean deploy against
//! the DigitalOcean fake, refused at the droplet's creation), the gauges
//! of the services the server watches, and the same job numbers on every
//! worker of a shared queue (PostgreSQL).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sample};
use soar_tests::fakes::digitalocean::DigitalOceanFake;

use crate::served::Served;
use crate::support::e2e::{Project, soar_toml, wait_until};
use crate::support::postgres::Cluster;

const TOKEN: &str = "dop_v1_metrics_test_token_000000000000000000000000000000000000";

/// `/metrics` with the read token, parsed: `name{k="v",...}` (labels
/// sorted) → value, histograms as their count.
fn scrape(s: &Served) -> (String, BTreeMap<String, f64>) {
    let (status, text) = s.request("GET", "/metrics", Some(&s.reader), "");
    assert_eq!(status, 200, "{text}");
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e}):\n{text}"));
    let mut samples = BTreeMap::new();
    for sample in parsed.samples {
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let value = match sample.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    assert!(
        parsed.docs.contains_key("soar_jobs"),
        "HELP lines are read: {:?}",
        parsed.docs
    );
    (text, samples)
}

/// A DigitalOcean project on `fake` (environment `staging`, one droplet
/// `staging-app-1`, token from `METRICS_DO_TOKEN`), for tests that make
/// the droplet's creation fail.
pub(crate) fn digitalocean_project(fake: &DigitalOceanFake) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    std::fs::write(
        dir.path().join("soar.toml"),
        format!(
            r#"[app]
name = "shop"

[artifact]
kind = "script"
path = "app.py"
command = "python3 app.py"

[env.staging]
provider = "digitalocean"
ssh_key_name = "deploy-key"
default_region = "nyc1"
default_size = "s-1vcpu-1gb"
hosts = {{ app-1 = {{ role = "app" }} }}

[env.staging.grants]
endpoints = {{ api = "{}" }}

[env.staging.credentials]
digitalocean = "METRICS_DO_TOKEN"
"#,
            fake.url()
        ),
    )
    .unwrap();
    dir
}

#[test]
fn brokered_requests_and_phases_of_the_jobs_are_counted() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    fake.fail_create("staging-app-1", 422);
    let dir = digitalocean_project(&fake);
    let sandbox = tempfile::tempdir().unwrap();
    let s = Served::serve(
        sandbox.path(),
        dir.path(),
        "shop",
        &[("METRICS_DO_TOKEN", TOKEN)],
    );
    let job = s.ended(&s.submit("shop", "staging"));
    assert_eq!(
        job["status"], "failed",
        "the refused droplet fails the job: {job:#}"
    );
    let (text, samples) = scrape(&s);
    eprintln!("{text}");
    assert_eq!(
        samples.get("soar_jobs{state=\"failed\"}"),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(samples.get("soar_queue_depth{}"), Some(&0.0), "{text}");

    // Every request the fake answered is counted, by its status.
    let host = "127.0.0.1";
    let requests = |status: &str| {
        samples
            .get(&format!(
                "soar_brokered_requests_total{{host=\"{host}\",plugin=\"digitalocean\",status=\"{status}\",transport=\"http\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert!(requests("200") >= 2.0, "lists read: {text}");
    assert_eq!(requests("422"), 1.0, "the refused creation: {text}");
    let counted: f64 = samples
        .iter()
        .filter(|(k, _)| k.starts_with("soar_brokered_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        counted as usize,
        fake.total_calls(),
        "one count per request the fake saw: {:?}\n{text}",
        fake.calls()
    );
    assert_eq!(
        samples.get(&format!(
            "soar_brokered_denials_total{{host=\"{host}\",plugin=\"digitalocean\"}}"
        )),
        Some(&0.0),
        "{text}"
    );

    // The phases the failed deploy went through, from its audit record.
    let phases: Vec<&String> = samples
        .keys()
        .filter(|k| k.starts_with("soar_phase_duration_seconds"))
        .collect();
    assert!(
        phases.iter().any(|k| k.contains("phase=\"plan\"")),
        "{phases:?}\n{text}"
    );
    assert!(
        phases
            .iter()
            .any(|k| k.contains("phase=\"apply\"") && k.contains("outcome=\"failed\"")),
        "{phases:?}\n{text}"
    );

    // A second scrape counts nothing twice.
    let (_, again) = scrape(&s);
    let recounted: f64 = again
        .iter()
        .filter(|(k, _)| k.starts_with("soar_brokered_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(recounted, counted);
}

#[test]
fn watched_services_have_their_gauges() {
    let toml =
        soar_toml("20s", "").replace("retries = 100 }", "retries = 100, monitor = \"500ms\" }");
    let p = Project::new(&toml, "v1");
    let s = Served::start(&p, "web");
    s.deploy("web", "dev");
    let labels = "{env=\"dev\",host=\"local\",project=\"web\",service=\"web\"}";
    let mut samples = BTreeMap::new();
    let mut text = String::new();
    let seen = wait_until(Duration::from_secs(60), || {
        (text, samples) = scrape(&s);
        samples.contains_key(&format!("soar_service_up{labels}"))
    });
    assert!(seen, "{text}\n{}", s.log());
    let gauge = |name: &str| samples.get(&format!("{name}{labels}")).copied();
    assert_eq!(gauge("soar_service_up"), Some(1.0), "{text}");
    assert_eq!(gauge("soar_service_healthy"), Some(1.0), "{text}");
    assert_eq!(gauge("soar_service_restarts"), Some(0.0), "{text}");
    let rss = gauge("soar_service_resident_memory_bytes").unwrap_or_default();
    assert!(
        (1_048_576.0..1_073_741_824.0).contains(&rss),
        "a Python service's RSS is MiBs: {rss}\n{text}"
    );
    let cpu = gauge("soar_service_cpu_seconds").unwrap_or(-1.0);
    assert!((0.0..60.0).contains(&cpu), "{cpu}\n{text}");
    assert!(gauge("soar_service_uptime_seconds").is_some(), "{text}");
    let deploys = "{kind=\"deploy\",outcome=\"succeeded\"}";
    assert_eq!(
        samples.get(&format!("soar_job_duration_seconds{deploys}")),
        Some(&1.0),
        "one finished deploy: {text}"
    );
    for phase in ["build", "start", "verify-health"] {
        assert!(
            samples.contains_key(&format!(
                "soar_phase_duration_seconds{{outcome=\"ok\",phase=\"{phase}\"}}"
            )),
            "{phase}: {text}"
        );
    }
}

#[test]
fn workers_of_a_shared_queue_show_the_same_job_numbers() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("metrics");
    let p = Project::new(&soar_toml("20s", ""), "v1");
    let queue = format!("[queue]\nurl = \"{url}\"\nlease = \"2s\"");
    let vars = [("PGPASSWORD", Cluster::PASSWORD)];
    let worker =
        |dir: &str| Served::launch(&p.tmp().join(dir), p.tmp(), &p.root, "web", &vars, &queue);
    let (a, b) = (worker("worker-a"), worker("worker-b"));
    a.deploy("web", "dev");
    for w in [&a, &b] {
        let (text, samples) = scrape(w);
        assert_eq!(
            samples.get("soar_jobs{state=\"succeeded\"}"),
            Some(&1.0),
            "{text}"
        );
        assert_eq!(
            samples.get("soar_job_duration_seconds{kind=\"deploy\",outcome=\"succeeded\"}"),
            Some(&1.0),
            "{text}"
        );
        let took = samples["soar_job_duration_seconds_sum{kind=\"deploy\",outcome=\"succeeded\"}"];
        assert!(took > 0.0 && took < 600.0, "{took}\n{text}");
    }
}
