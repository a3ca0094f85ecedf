//! Whether a failure is worth another attempt, judged from the plugin's
//! typed error (never its words), end to end: the DigitalOcean plugin
//! against the DigitalOcean fake refusing the droplet's creation with a
//! 500 (transient) or a 422 (permanent). `soar deploy --json` says so in
//! its `error` event's `transient`; `soar serve` retries on exactly that.

use serde_json::Value;
use soar_tests::fakes::digitalocean::DigitalOceanFake;

use crate::metrics::digitalocean_project;
use crate::served::Served;

const TOKEN: &str = "dop_v1_retries_test_token_0000000000000000000000000000000000000";

/// The last line of `soar deploy --yes --json` in `dir`: its error event.
fn deploy_error(sandbox: &std::path::Path, dir: &std::path::Path) -> Value {
    let out = crate::support::soar(sandbox, dir)
        .env("METRICS_DO_TOKEN", TOKEN)
        .args(["deploy", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let event: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(event["type"], "error", "{stdout}");
    event
}

#[test]
fn the_error_event_says_whether_a_retry_may_pass() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    let dir = digitalocean_project(&fake);
    let sandbox = tempfile::tempdir().unwrap();

    fake.fail_create("staging-app-1", 500);
    let event = deploy_error(sandbox.path(), dir.path());
    assert_eq!(event["transient"], "server error (5xx)", "{event}");

    fake.clear_create_failures();
    fake.fail_create("staging-app-1", 422);
    let event = deploy_error(sandbox.path(), dir.path());
    assert!(
        event["message"].as_str().unwrap().contains("422"),
        "{event}"
    );
    assert!(
        event.get("transient").is_none(),
        "a 4xx is permanent: {event}"
    );

    // A config error has no type of its own and no transient words.
    std::fs::write(dir.path().join("soar.toml"), "[app]\nname = 1\n").unwrap();
    let event = deploy_error(sandbox.path(), dir.path());
    assert!(event.get("transient").is_none(), "{event}");
}

#[test]
fn the_server_retries_a_5xx_and_not_a_4xx() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    let dir = digitalocean_project(&fake);
    let sandbox = tempfile::tempdir().unwrap();
    let s = Served::launch(
        &sandbox.path().join("server"),
        sandbox.path(),
        dir.path(),
        "shop",
        &[("METRICS_DO_TOKEN", TOKEN)],
        "[queue]\nretries = 1\nbackoff = \"100ms\"\n",
    );
    fake.fail_create("staging-app-1", 500);
    let job = s.ended(&s.submit("shop", "staging"));
    assert_eq!(job["status"], "failed", "{job:#}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "one retry: {job:#}");
    assert!(
        attempts
            .iter()
            .all(|a| a["transient"] == "server error (5xx)"),
        "{job:#}"
    );
    assert_eq!(fake.calls_to("POST /v2/droplets"), 2);

    fake.clear_create_failures();
    fake.fail_create("staging-app-1", 422);
    let job = s.ended(&s.submit("shop", "staging"));
    assert_eq!(job["status"], "failed", "{job:#}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "a 4xx is not retried: {job:#}");
    assert!(attempts[0]["transient"].is_null(), "{job:#}");
    assert_eq!(fake.calls_to("POST /v2/droplets"), 3);
}
