//! `soar status` asks the providers, through the real binary: a Pages site
//! deployed with `soar deploy` (its special files as typed multipart parts,
//! as wrangler sends them) shows what Cloudflare reports; deleting it in the
//! "dashboard" shows as drift; `--offline` keeps the old state-only view;
//! droplets deleted or created behind Soar's back show as drift too; and a
//! provider that cannot be asked does not hide the other environments.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use soar_tests::fakes::cloudflare::Cloudflare;
use soar_tests::fakes::digitalocean::DigitalOceanFake;

use crate::support::{self, transcript, write};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const CF_TOKEN: &str = "cf-status-drift-test-token-000000000000";
const DO_TOKEN: &str = "dop_v1_status_drift_test_token_000000000000000000000000000000";

fn soar(dir: &Path, args: &[&str]) -> Output {
    support::soar(dir, dir)
        .args(args)
        .env("DRIFT_CF_TOKEN", CF_TOKEN)
        .env("DRIFT_DO_TOKEN", DO_TOKEN)
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("DIGITALOCEAN_TOKEN")
        .output()
        .expect("running soar")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", transcript(&o));
    o
}

/// Each line of `--json` output, by environment.
fn by_env(o: &Output) -> std::collections::BTreeMap<String, Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .map(|v| (v["env"].as_str().unwrap().to_string(), v))
        .collect()
}

/// A static site for Pages, with all three special files.
fn pages_project(fake: &Cloudflare) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "site/index.html", "<h1>shop</h1>\n");
    write(d, "site/_headers", "/*\n  X-Frame-Options: DENY\n");
    write(d, "site/_redirects", "/old /new 301\n");
    write(
        d,
        "site/_routes.json",
        r#"{"version":1,"include":["/api/*"],"exclude":[]}"#,
    );
    write(
        d,
        "soar.toml",
        format!(
            r#"[app]
name = "shop"

[artifact]
kind = "static"
path = "site"

[env.site]
provider = "cloudflare"
account_id = "{ACCOUNT}"
project_name = "shop-site"

[env.site.grants]
endpoints = {{ api = "{url}" }}

[env.site.credentials]
cloudflare = "DRIFT_CF_TOKEN"

[env.broken]
provider = "cloudflare"
account_id = "{ACCOUNT}"
project_name = "shop-other"

[env.broken.grants]
endpoints = {{ api = "{url}" }}

[env.broken.credentials]
cloudflare = "DRIFT_UNSET_TOKEN"
"#,
            url = fake.url(),
        ),
    );
    dir
}

#[test]
fn pages_status_reports_the_provider_and_drift_and_offline_keeps_the_state_view() {
    let fake = Cloudflare::start(CF_TOKEN, ACCOUNT);
    let dir = pages_project(&fake);
    let d = dir.path();

    ok(soar(d, &["deploy", "-e", "site", "--yes"]));
    // The special files went out as file parts labelled like wrangler's.
    let dep = fake.deployments("shop-site").pop().expect("a deployment");
    for part in ["_headers", "_redirects", "_routes.json"] {
        assert_eq!(
            dep.part_types.get(part),
            Some(&Some("application/octet-stream".to_string())),
            "{part}: {:?}",
            dep.part_types
        );
    }
    assert_eq!(dep.part_types.get("manifest"), Some(&None), "text field");

    // In step: the provider reports the site running, no drift.
    let out = ok(soar(d, &["status", "-e", "site"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(s.contains("running:  yes"), "{}", transcript(&out));
    assert!(s.contains("url:      https://"), "{}", transcript(&out));
    assert!(s.contains("— provider: running"), "{}", transcript(&out));
    assert!(
        s.contains("provider: matches the state"),
        "{}",
        transcript(&out)
    );
    let j = by_env(&ok(soar(d, &["status", "-e", "site", "--json"])));
    let site = &j["site"];
    assert_eq!(site["checked"], "provider", "{site}");
    assert_eq!(site["drift"], Value::Array(vec![]), "{site}");
    assert_eq!(site["provider_resources"][0]["state"], "running", "{site}");
    assert!(site["resources"].is_array(), "state resources stay: {site}");

    // Deleted in the dashboard: the state still has it, status says drift.
    assert!(fake.remove_project("shop-site"));
    let out = ok(soar(d, &["status", "-e", "site"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(s.contains("— provider: missing"), "{}", transcript(&out));
    assert!(
        s.contains("drift:    pages-site shop-site missing: in the state, but the provider no longer reports it"),
        "{}",
        transcript(&out)
    );
    assert!(s.contains("running:  no"), "{}", transcript(&out));
    let j = by_env(&ok(soar(d, &["status", "-e", "site", "--json"])));
    assert_eq!(j["site"]["drift"][0]["what"], "missing", "{}", j["site"]);

    // --offline: the state only, as before; nothing asked.
    let before = fake.seen().len();
    let out = ok(soar(d, &["status", "-e", "site", "--offline"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!s.contains("drift:"), "{}", transcript(&out));
    assert!(
        s.contains("provider: not asked (--offline)"),
        "{}",
        transcript(&out)
    );
    assert_eq!(fake.seen().len(), before, "--offline sends no request");
    let j = by_env(&ok(soar(
        d,
        &["status", "-e", "site", "--json", "--offline"],
    )));
    assert_eq!(j["site"]["checked"], "state");
    assert_eq!(j["site"]["provider_resources"], Value::Null);

    // All environments: one cannot be asked (no token), the other still shows.
    let out = ok(soar(d, &["status"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(s.contains("site (cloudflare)"), "{}", transcript(&out));
    assert!(s.contains("broken (cloudflare)"), "{}", transcript(&out));
    assert!(
        s.contains("provider: could not be asked:") && s.contains("DRIFT_UNSET_TOKEN"),
        "{}",
        transcript(&out)
    );
    let j = by_env(&ok(soar(d, &["status", "--json"])));
    assert!(j["broken"]["provider_error"].is_string(), "{}", j["broken"]);
    assert_eq!(j["site"]["drift"][0]["what"], "missing");
}

#[test]
fn droplets_deleted_or_created_outside_soar_show_as_drift() {
    let fake = DigitalOceanFake::start(DO_TOKEN);
    fake.add_ssh_key("deploy-key");
    let tags = ["managed-by:soar", "soar-env:staging", "soar-role:app"];
    fake.add_droplet("staging-app-1", "s-1vcpu-1gb", "nyc1", &tags);
    let gone = fake.add_droplet("staging-app-2", "s-1vcpu-1gb", "nyc1", &tags);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "app.py", "print('hi')\n");
    write(
        d,
        "soar.toml",
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
digitalocean = "DRIFT_DO_TOKEN"
"#,
            fake.url()
        ),
    );
    // The state learns both droplets from the provider's tags.
    ok(soar(d, &["refresh"]));
    let j = by_env(&ok(soar(d, &["status", "--json"])));
    assert_eq!(
        j["staging"]["drift"],
        Value::Array(vec![]),
        "{}",
        j["staging"]
    );

    // One deleted in the control panel, one created there with Soar's tags.
    fake.remove_droplet(gone);
    fake.add_droplet("staging-app-3", "s-1vcpu-1gb", "nyc1", &tags);
    let j = by_env(&ok(soar(d, &["status", "--json"])));
    let drift: Vec<(String, String)> = j["staging"]["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["what"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        drift,
        [
            ("staging-app-2".to_string(), "missing".to_string()),
            ("staging-app-3".to_string(), "untracked".to_string())
        ],
        "{}",
        j["staging"]
    );
    let out = ok(soar(d, &["status"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        s.contains("provider: 2 difference(s) from the state (drift)"),
        "{s}"
    );
    assert!(
        s.contains("droplet staging-app-3") && s.contains("not in the state"),
        "{s}"
    );
    assert!(!transcript(&out).contains(DO_TOKEN));

    // Names come from the provider: an escape sequence in one is shown as
    // text, never sent to the terminal (in text and in --json).
    fake.add_droplet("staging-app-4\u{1b}[2J", "s-1vcpu-1gb", "nyc1", &tags);
    for args in [&["status"][..], &["status", "--json"][..]] {
        let out = ok(soar(d, args));
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!s.contains('\u{1b}'), "{args:?}: {s:?}");
        assert!(s.contains("staging-app-4"), "{args:?}: {s}");
    }
}

#[test]
fn a_worker_deleted_in_the_dashboard_shows_as_drift() {
    let fake = Cloudflare::start(CF_TOKEN, ACCOUNT);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "worker/index.js",
        "export default { fetch() { return new Response('hi') } }\n",
    );
    write(
        d,
        "soar.toml",
        format!(
            r#"[app]
name = "shop"

[artifact]
kind = "script"
path = "worker"

[env.edge]
provider = "cloudflare"
account_id = "{ACCOUNT}"
script_name = "shop-api"

[env.edge.grants]
endpoints = {{ api = "{}" }}

[env.edge.credentials]
cloudflare = "DRIFT_CF_TOKEN"
"#,
            fake.url()
        ),
    );
    ok(soar(d, &["deploy", "--yes"]));
    let j = by_env(&ok(soar(d, &["status", "--json"])));
    assert_eq!(j["edge"]["running"], true, "{}", j["edge"]);
    assert_eq!(j["edge"]["drift"], Value::Array(vec![]), "{}", j["edge"]);
    assert!(
        j["edge"]["url"]
            .as_str()
            .unwrap_or_default()
            .contains("workers.dev"),
        "{}",
        j["edge"]
    );

    assert!(fake.remove_script("shop-api"));
    let out = ok(soar(d, &["status"]));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(s.contains("running:  no"), "{}", transcript(&out));
    assert!(
        s.contains("drift:    worker-script shop-api missing"),
        "{}",
        transcript(&out)
    );
}
