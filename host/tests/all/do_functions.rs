//! DigitalOcean Functions through the built `soar`: a `script` artifact
//! deployed as a web action. The DigitalOcean v2 fake serves
//! `/v2/functions/namespaces`; each namespace's `api_host` is a companion
//! OpenWhisk fake on loopback that really runs the action with `node`.
//!
//! What this proves beyond "it deploys": the namespace key the API hands out
//! is kept by the host (`request.issued`) and reaches the OpenWhisk fake as
//! Basic auth, but never the plugin, soar's output or its state; a service
//! secret reaches the function as a parameter the host splices in; re-deploys
//! are no-ops until the script changes; destroy removes the action and the
//! namespace Soar created.

use std::path::Path;
use std::process::{Command, Output};

use soar_tests::fakes::digitalocean::DigitalOceanFake;
use soar_tests::files::walk;

use crate::support::{soar_guarded, text};

const TOKEN: &str = "dop_v1_fake_token_for_functions_0123456789";
const TOKEN_VAR: &str = "SOAR_DO_FUNCTIONS_TEST_TOKEN";
const SECRET: &str = "fn-secret-value-7c1d9e2a";
const SECRET_VAR: &str = "SOAR_DO_FUNCTIONS_TEST_SECRET";
const ENV: &str = "functions";

fn script(version: &str) -> String {
    format!(
        r#"function main(args) {{
  if ((args.__ow_path || "") === "/health") return {{ body: "ok" }};
  return {{ body: "{version} " + args.GREETING + " secret-length=" + String((args.API_KEY || "").length) }};
}}
"#
    )
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(fake: &DigitalOceanFake, functions: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/index.js"), script("v1")).unwrap();
        std::fs::write(
            dir.path().join("soar.toml"),
            format!(
                r#"[app]
name = "hello-fn"

[artifact]
kind = "script"
path = "app"

[deploy]
secrets = {{ API_KEY = "{SECRET_VAR}" }}

[env.{ENV}]
provider = "digitalocean"
functions = {functions}

[env.{ENV}.grants]
endpoints = {{ api = "{api}", "*.doserverless.co" = "{ow}" }}

[env.{ENV}.credentials]
digitalocean = "{TOKEN_VAR}"
"#,
                api = fake.url(),
                ow = fake.openwhisk().url(),
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn soar(&self, args: &[&str]) -> Output {
        soar_guarded(
            &self.path().join("soar.toml"),
            args,
            &[(TOKEN_VAR, TOKEN), (SECRET_VAR, SECRET)],
            &["DIGITALOCEAN_TOKEN"],
            &[TOKEN, SECRET],
        )
    }

    fn soar_ok(&self, args: &[&str]) -> String {
        let out = self.soar(args);
        assert!(out.status.success(), "soar {} failed", args.join(" "));
        text(&out.stdout)
    }
}

/// Every namespace key the fake handed out.
fn keys(fake: &DigitalOceanFake) -> Vec<String> {
    fake.namespaces()
        .iter()
        .filter_map(|n| n["key"].as_str().map(str::to_string))
        .collect()
}

fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-w", "\n%{http_code}"])
        .arg(url)
        .output()
        .unwrap();
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Nothing under `.soar/` (state, journal, audit trail) holds a secret.
fn assert_no_secret_stored(dir: &Path, secrets: &[String]) {
    for entry in walk(&dir.join(".soar")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let content = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(
                !content.contains(s.as_str()),
                "{} holds a secret",
                entry.display()
            );
        }
    }
}

/// `METHOD URL` of every brokered HTTP request in the audit trail of the
/// newest `command` (deploy, destroy) of the environment.
fn audited_requests(p: &Project, command: &str) -> Vec<String> {
    let store = soar::state::StateStore::open(&p.path().join(".soar")).unwrap();
    let newest = store
        .history(Some(ENV), 50)
        .unwrap()
        .into_iter()
        .find(|d| d.command == command)
        .unwrap_or_else(|| panic!("no {command} in the audit trail"));
    store
        .events(newest.id)
        .unwrap()
        .into_iter()
        .map(|e| e.event["plugin"].clone())
        .filter(|e| e["event"] == "http")
        .map(|e| {
            format!(
                "{} {}",
                e["method"].as_str().unwrap_or("?"),
                e["url"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn functions_deploy_update_noop_and_destroy() {
    let fake = DigitalOceanFake::start(TOKEN);
    let p = Project::new(
        &fake,
        r#"{ region = "nyc1", health = "/health", environment = { GREETING = "hi" } }"#,
    );

    // First deploy: namespace created, action deployed, health checked.
    let deployed = p.soar(&["deploy", "--yes"]);
    assert!(deployed.status.success(), "first deploy");
    let out = format!("{}{}", text(&deployed.stdout), text(&deployed.stderr));
    assert!(out.contains("hello-fn"), "{out}");
    let namespaces = fake.namespaces();
    assert_eq!(namespaces.len(), 1, "one namespace: {namespaces:?}");
    assert_eq!(namespaces[0]["label"], format!("hello-fn-{ENV}"));
    let url = out
        .split_whitespace()
        .find(|w| w.contains("/api/v1/web/"))
        .expect("the deploy reports the web URL")
        .to_string();
    let (code, body) = get(&url);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, format!("v1 hi secret-length={}", SECRET.len()));
    let actions = fake.openwhisk().actions();
    assert_eq!(actions.len(), 1, "{actions:?}");
    // The provider deployed the artifact itself: its requests are in the
    // audit trail all the same.
    let audited = audited_requests(&p, "deploy");
    assert!(
        audited
            .iter()
            .any(|r| r.starts_with("PUT ") && r.contains("/actions/")),
        "the action upload is audited: {audited:#?}"
    );

    // The namespace key went to the OpenWhisk fake only: not to the output,
    // not to state or the audit trail.
    let mut secrets = keys(&fake);
    assert!(!secrets.is_empty());
    secrets.push(TOKEN.into());
    secrets.push(SECRET.into());
    assert_no_secret_stored(p.path(), &secrets);

    // Unchanged: nothing to do, nothing written.
    let puts = fake
        .openwhisk()
        .calls_to("PUT /api/v1/namespaces/{ns}/actions/{name}");
    let out = p.soar_ok(&["plan", "--detailed-exitcode"]);
    assert!(out.contains("No changes"), "{out}");
    p.soar_ok(&["deploy", "--yes"]);
    assert_eq!(
        fake.openwhisk()
            .calls_to("PUT /api/v1/namespaces/{ns}/actions/{name}"),
        puts,
        "an unchanged deploy must not upload the action again"
    );

    // A new version of the script: an update in place.
    std::fs::write(p.path().join("app/index.js"), script("v2")).unwrap();
    let plan = p.soar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "changes pending");
    assert!(text(&plan.stdout).contains("digest"), "the plan says why");
    p.soar_ok(&["deploy", "--yes"]);
    let (code, body) = get(&url);
    assert_eq!(
        (code, body.as_str()),
        (
            200,
            format!("v2 hi secret-length={}", SECRET.len()).as_str()
        )
    );

    // Status asks the provider: the Function serves, though no release went
    // onto hosts, and provider and state agree.
    let status = p.soar_ok(&["status"]);
    assert!(status.contains("running:  yes"), "{status}");
    assert!(
        status.contains("release:  none on hosts (the provider deploys the artifact itself)"),
        "{status}"
    );
    assert!(status.contains(&format!("url:      {url}")), "{status}");
    assert!(status.contains("provider: matches the state"), "{status}");
    // Deleted in the control panel: drift, and no longer running.
    let action = fake.openwhisk().actions().remove(0);
    assert!(
        fake.openwhisk()
            .remove_action(&action.namespace, &action.name)
    );
    let status = p.soar_ok(&["status"]);
    assert!(status.contains("running:  no"), "{status}");
    assert!(
        status.contains(" missing: in the state, but the provider no longer reports it"),
        "{status}"
    );
    let offline = p.soar_ok(&["status", "--offline"]);
    assert!(!offline.contains("drift:"), "{offline}");
    p.soar_ok(&["deploy", "--yes"]);
    let status = p.soar_ok(&["status"]);
    assert!(
        status.contains("provider: matches the state"),
        "redeployed: {status}"
    );

    // Destroy: the action and the namespace Soar created are gone; a
    // second destroy has nothing to do.
    p.soar_ok(&["destroy", "--yes"]);
    assert!(fake.openwhisk().actions().is_empty());
    assert!(fake.namespaces().is_empty(), "Soar's namespace removed");
    let audited = audited_requests(&p, "destroy");
    assert!(
        audited.iter().any(|r| r.starts_with("DELETE ")),
        "the destroy's requests are audited: {audited:#?}"
    );
    p.soar_ok(&["destroy", "--yes"]);
}

#[test]
fn functions_use_an_existing_namespace_and_keep_it() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_namespace("shared-fns", "ams3");
    let p = Project::new(
        &fake,
        r#"{ namespace = "shared-fns", name = "greeter", environment = { GREETING = "yo" } }"#,
    );
    p.soar_ok(&["deploy", "--yes"]);
    assert_eq!(fake.namespaces().len(), 1, "no namespace created");
    assert_eq!(fake.openwhisk().actions().len(), 1);
    p.soar_ok(&["destroy", "--yes"]);
    assert!(fake.openwhisk().actions().is_empty());
    assert_eq!(
        fake.namespaces().len(),
        1,
        "a namespace the user named is never removed"
    );
}

#[test]
fn functions_errors_are_clear() {
    let fake = DigitalOceanFake::start(TOKEN);
    // No region to create the namespace in.
    let p = Project::new(&fake, "{ }");
    let out = p.soar(&["deploy", "--yes"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no region is set") && err.contains("functions"),
        "{err}"
    );

    // A failing health check fails the deploy and says what answered.
    std::fs::write(
        p.path().join("app/index.js"),
        "function main(args) { return { statusCode: 503, body: \"not yet\" }; }\n",
    )
    .unwrap();
    let p2 = Project::new(&fake, r#"{ region = "nyc1", health = "/health" }"#);
    std::fs::write(
        p2.path().join("app/index.js"),
        "function main(args) { return { statusCode: 503, body: \"not yet\" }; }\n",
    )
    .unwrap();
    let out = p2.soar(&["deploy", "--yes"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("health check") && err.contains("503") && err.contains("not yet"),
        "{err}"
    );

    // Functions and droplets in one environment are refused with the line.
    let p3 = Project::new(&fake, r#"{ region = "nyc1" }"#);
    let toml = std::fs::read_to_string(p3.path().join("soar.toml")).unwrap();
    std::fs::write(
        p3.path().join("soar.toml"),
        toml.replace(
            "functions = {",
            "hosts = { app-1 = { role = \"web\" } }\nfunctions = {",
        ),
    )
    .unwrap();
    let out = p3.soar(&["plan"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("either to Functions or to droplets"), "{err}");
    assert!(err.contains("soar.toml:"), "points at the file: {err}");
}

/// README's Functions scopes are enough to deploy and destroy through the
/// CLI, and each is needed: without it, a step is refused with the API's
/// 403 (the namespace is created, listed and deleted with the token; the
/// function itself with the namespace's key).
#[test]
fn the_documented_token_scopes_are_enough_and_each_is_needed() {
    let scopes = crate::digitalocean::documented_scopes(1);
    let all: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let cycle = |granted: &[&str]| -> Result<(), String> {
        let fake = DigitalOceanFake::start(TOKEN);
        fake.restrict_scopes(granted);
        let p = Project::new(&fake, r#"{ region = "nyc1" }"#);
        for args in [&["deploy", "--yes"][..], &["destroy", "--yes"][..]] {
            let out = p.soar(args);
            if !out.status.success() {
                return Err(format!("{}: {}", args[0], text(&out.stderr)));
            }
        }
        assert!(
            fake.namespaces().is_empty(),
            "destroy removes the namespace"
        );
        assert!(fake.forbidden().is_empty(), "{:?}", fake.forbidden());
        Ok(())
    };
    cycle(&all).unwrap_or_else(|e| panic!("under exactly {all:?}: {e}"));
    for dropped in &all {
        let fewer: Vec<&str> = all.iter().copied().filter(|s| s != dropped).collect();
        let refused = cycle(&fewer).expect_err(dropped);
        crate::digitalocean::assert_refused_for_want_of(dropped, &refused, &all);
    }
}
