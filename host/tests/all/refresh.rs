//! `soar refresh` rebuilds lost state from the provider's tags: droplets
//! tagged `managed-by:soar` + `soar-env:<env>` in a DigitalOcean fake come
//! back into `.soar/state.db`, and state entries the provider no longer
//! reports are dropped.

use serde_json::Value;
use soar_tests::fakes::digitalocean::DigitalOceanFake as DigitalOcean;

use crate::support;

const TOKEN: &str = "dop_v1_refresh_test_token_0000000000000000000000000000000000";

fn soar(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    support::soar(dir, dir)
        .args(args)
        .env("REFRESH_DO_TOKEN", TOKEN)
        .output()
        .expect("running soar")
}

#[test]
fn refresh_rebuilds_resources_from_provider_tags() {
    let fake = DigitalOcean::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    fake.add_droplet(
        "staging-app-1",
        "s-1vcpu-1gb",
        "nyc1",
        &["managed-by:soar", "soar-env:staging", "soar-role:app"],
    );
    fake.add_droplet(
        "staging-app-2",
        "s-1vcpu-1gb",
        "nyc1",
        &["managed-by:soar", "soar-env:staging", "soar-role:app"],
    );
    // Someone else's droplet: not ours, never adopted.
    fake.add_droplet("other", "s-1vcpu-1gb", "nyc1", &["team:web"]);

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
hosts = {{ app-1 = {{ role = "app" }}, app-2 = {{ role = "app" }} }}

[env.staging.grants]
endpoints = {{ api = "{}" }}

[env.staging.credentials]
digitalocean = "REFRESH_DO_TOKEN"
"#,
            fake.url()
        ),
    )
    .unwrap();

    let out = soar(dir.path(), &["refresh", "--json"]);
    assert!(
        out.status.success(),
        "refresh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["staging-app-1", "staging-app-2"]);

    let out = soar(dir.path(), &["status", "--json"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_state: Vec<&str> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(in_state, ["staging-app-1", "staging-app-2"]);

    // A droplet deleted behind Soar's back leaves the state on the next refresh.
    let gone = fake
        .droplets()
        .into_iter()
        .find(|d| d.name == "staging-app-2")
        .unwrap();
    fake.remove_droplet(gone.id);
    let out = soar(dir.path(), &["refresh", "--json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 1, "{report}");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(TOKEN));
}
