//! `soar plugin test`, the built `soar` binary: the bundled DigitalOcean
//! and Cloudflare plugins and the Python example pass every check against
//! the project's fakes (and leave them as they found them), and the hostile
//! plugin, told to POST from `plan`, fails the read-only check with the
//! request named.

use serde_json::{Value, json};
use soar_tests::fakes::digitalocean::DigitalOceanFake;
use soar_tests::fakes::vmapi::VmApi;

use crate::support::{Home, Run};

const TOKEN: &str = "dop_v1_conformance_token_0123456789abcdef";

/// The `--json` events of a run: each check by name, and the summary.
fn checks(run: &Run) -> (Vec<Value>, Value) {
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{run:?}")))
        .collect();
    let summary = events
        .iter()
        .find(|e| e["type"] == "conformance_summary")
        .cloned()
        .unwrap_or_else(|| panic!("no summary:\n{run:?}"));
    let checks = events
        .into_iter()
        .filter(|e| e["type"] == "conformance_check")
        .collect();
    (checks, summary)
}

fn outcome<'a>(checks: &'a [Value], check: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check {check} in {checks:#?}"))
}

fn write_json(home: &Home, rel: &str, value: &Value) -> String {
    let path = home.write(rel, value.to_string().as_bytes());
    path.to_string_lossy().into_owned()
}

fn soar(home: &Home, args: &[&str]) -> Run {
    let started = std::time::Instant::now();
    let run = home.soar(args);
    eprintln!(
        "$ soar {} ({:.1} s)\n{run:?}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    run
}

#[test]
fn digitalocean_passes_against_its_fake() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    let home = Home::new().with_var("DIGITALOCEAN_TOKEN", TOKEN);
    let settings = write_json(
        &home,
        "do.json",
        &json!({
            "ssh_key_name": "deploy-key",
            "default_region": "nyc3",
            "default_size": "s-1vcpu-1gb",
            "wait_interval": "20ms",
            "wait_timeout": "20s",
            "hosts": {"app-1": {"role": "app"}, "web-1": {"role": "web", "size": "s-2vcpu-2gb"}},
        }),
    );
    let endpoint = format!("api={}", fake.url());
    let run = soar(
        &home,
        &[
            "plugin",
            "test",
            "digitalocean",
            "--endpoint",
            &endpoint,
            "--settings",
            &settings,
            "--json",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&run.raw).contains(TOKEN),
        "{run:?}"
    );
    let (checks, summary) = checks(&run);
    for c in &checks {
        assert_eq!(c["outcome"], "pass", "{c:#}\n{run:?}");
    }
    assert_eq!(checks.len(), 7, "{checks:#?}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(run.code, Some(0), "{run:?}");
    // Both droplets were created (twice applied), then destroyed.
    assert!(
        outcome(&checks, "idempotent")["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("2 changes applied twice")),
        "{checks:#?}"
    );
    assert!(fake.droplets().is_empty(), "{:?}", fake.droplets());
    assert!(
        fake.calls_to("POST /v2/droplets") >= 2,
        "{:?}",
        fake.calls()
    );
}

#[test]
fn a_plan_that_posts_fails_the_read_only_check() {
    let fake = DigitalOceanFake::start(TOKEN);
    let home = Home::new().with_var("SOAR_TEST_TOKEN", TOKEN);
    let wasm = home.write("hostile.wasm", soar_tests::components::hostile());
    let target = format!("{}/items", fake.url().trim_end_matches('/'));
    let settings = write_json(
        &home,
        "hostile.json",
        &json!({"mode": "fetch", "method": "post", "url": target, "credential": "token"}),
    );
    let endpoint = format!("api={}", fake.url());
    let wasm = wasm.to_string_lossy().into_owned();
    let args = [
        "plugin",
        "test",
        wasm.as_str(),
        "--endpoint",
        &endpoint,
        "--settings",
        &settings,
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let run = soar(&home, &json_args);
    assert_eq!(run.code, Some(1), "{run:?}");
    let (checks, summary) = checks(&run);
    let read_only = outcome(&checks, "read-only");
    assert_eq!(read_only["outcome"], "fail", "{read_only:#}");
    let details = read_only["details"].to_string();
    assert!(
        details.contains("plan sent POST") && details.contains("/items"),
        "{read_only:#}"
    );
    assert_eq!(
        outcome(&checks, "describe")["outcome"],
        "pass",
        "{checks:#?}"
    );
    assert!(summary["failed"].as_u64() >= Some(1), "{summary}");
    // The text report says the same, one line per check.
    let text = soar(&home, &args);
    assert_eq!(text.code, Some(1), "{text:?}");
    assert!(
        text.stdout
            .contains("✗ validate and plan send no mutating request"),
        "{text:?}"
    );
    assert!(text.stdout.contains("FAILED:"), "{text:?}");
}

#[test]
fn endpoints_off_loopback_are_refused_unless_allowed() {
    let home = Home::new();
    let run = soar(
        &home,
        &[
            "plugin",
            "test",
            "digitalocean",
            "--endpoint",
            "api=https://api.digitalocean.com",
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("is not on loopback")
            && run.stderr.contains("--allow-remote-endpoints"),
        "{run:?}"
    );
}

#[test]
fn cloudflare_pages_passes_against_its_fake() {
    let token = "cf-conformance-token-0123456789abcdef";
    let account = "0123456789abcdef0123456789abcdef";
    let fake = soar_tests::fakes::cloudflare::Cloudflare::start(token, account);
    let home = Home::new().with_var("CF_TEST_TOKEN", token);
    // TOML, as the keys of an [env.<name>] table.
    let settings = home.write(
        "pages.toml",
        format!("account_id = \"{account}\"\nproject_name = \"shop-site\"\n").as_bytes(),
    );
    let endpoint = format!("api={}", fake.url());
    let run = soar(
        &home,
        &[
            "plugin",
            "test",
            "cloudflare",
            "--endpoint",
            &endpoint,
            "--settings",
            &settings.to_string_lossy(),
            "--credential",
            "cloudflare=CF_TEST_TOKEN",
            "--artifact-kind",
            "static",
            "--json",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&run.raw).contains(token),
        "{run:?}"
    );
    let (checks, _) = checks(&run);
    for c in &checks {
        assert_eq!(c["outcome"], "pass", "{c:#}\n{run:?}");
    }
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!fake.project_exists("shop-site"));
}

/// The Python example (`examples/python-provider`, componentize-py, contract
/// 0.1.0), built by its own script, passes against the VM API fake.
#[test]
fn the_python_example_passes_against_its_fake() {
    let home = Home::new().with_var("VMAPI_TOKEN", TOKEN);
    let wasm = home.path().join("vmapi.wasm");
    crate::support::examples::python(&wasm);
    vmapi_provider_passes(&home, &wasm);
}

/// The JavaScript example (`examples/js-provider`, jco, contract 0.2.0),
/// built by its own script, passes against the same fake.
#[test]
fn the_javascript_example_passes_against_its_fake() {
    let home = Home::new().with_var("VMAPI_TOKEN", TOKEN);
    let wasm = home.path().join("vmapi-js.wasm");
    if crate::support::examples::javascript(&wasm).is_some() {
        vmapi_provider_passes(&home, &wasm);
    }
}

/// Every check of `soar plugin test` passes for a VM API provider at
/// `wasm`, which leaves the fake as it found it and never shows the token.
fn vmapi_provider_passes(home: &Home, wasm: &std::path::Path) {
    let api = VmApi::start(TOKEN);
    let settings = write_json(home, "vm.json", &json!({"size": "small"}));
    let endpoint = format!("api={}", api.url());
    let wasm = wasm.to_string_lossy().into_owned();
    let run = soar(
        home,
        &[
            "plugin",
            "test",
            &wasm,
            "--endpoint",
            &endpoint,
            "--settings",
            &settings,
            "--json",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&run.raw).contains(TOKEN),
        "{run:?}"
    );
    let (checks, _) = checks(&run);
    for c in &checks {
        assert_eq!(c["outcome"], "pass", "{c:#}\n{run:?}");
    }
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(api.vms().is_empty(), "{:?}", api.vms());
}
