//! DigitalOcean pagination that cannot loop, through the real `soar` binary
//! against the DigitalOcean fake answering inconsistent next links: a plan
//! once sent 7,666 identical `GET /v2/sizes?page=2` because a next link named
//! the page just read. Each case bounds the requests the plan may send and
//! checks the message names the list.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use soar_tests::fakes::digitalocean::DigitalOceanFake;

use crate::support;

const TOKEN: &str = "dop_v1_paging_test_token_00000000000000000000000000000000000";
const TAGS: &[&str] = &["managed-by:soar", "soar-env:staging", "soar-role:app"];

fn soar(dir: &Path, args: &[&str]) -> Output {
    support::soar(dir, dir)
        .args(args)
        .env("PAGING_DO_TOKEN", TOKEN)
        .output()
        .expect("running soar")
}

/// A project whose staging environment wants `app-1` on the fake.
fn project(fake: &DigitalOceanFake) -> tempfile::TempDir {
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
digitalocean = "PAGING_DO_TOKEN"
"#,
            fake.url()
        ),
    )
    .unwrap();
    dir
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The issue's case: page 2's next link names page 2 again. The plan stops
/// on the third request at the latest, naming the droplets list.
#[test]
fn a_next_link_to_the_page_just_read_stops_the_plan_with_the_list_named() {
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    for i in 0..450 {
        fake.add_droplet(&format!("staging-h-{i:03}"), "s-1vcpu-1gb", "nyc1", TAGS);
    }
    fake.stick_next_link("droplets", 2);
    let dir = project(&fake);

    let started = Instant::now();
    let out = soar(dir.path(), &["plan"]);
    let took = started.elapsed();
    let all = text(&out);
    assert!(!out.status.success(), "plan must fail: {all}");
    assert!(
        all.contains("paging of the droplets list (GET /v2/droplets?tag_name=")
            && all.contains("names a page already read")
            && all.contains("400 of 450 item(s) read"),
        "the error names the list and what was wrong: {all}"
    );
    assert_eq!(
        fake.calls_to("GET /v2/droplets"),
        2,
        "page 1, page 2, then stop: {:?}",
        fake.calls()
    );
    assert!(!all.contains(TOKEN));
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// A first page whose next link names page 1 does not advance: one request.
#[test]
fn a_next_link_that_does_not_advance_is_refused_after_one_request() {
    let fake = DigitalOceanFake::start(TOKEN);
    // More keys than one page of 200, so meta.total does not end the list.
    for i in 0..201 {
        fake.add_ssh_key(&format!("key-{i:03}"));
    }
    fake.add_ssh_key("deploy-key");
    fake.stick_next_link("ssh_keys", 1);
    let dir = project(&fake);

    let out = soar(dir.path(), &["plan"]);
    let all = text(&out);
    assert!(!out.status.success(), "plan must fail: {all}");
    assert!(
        all.contains("paging of the ssh_keys list (GET /v2/account/keys?per_page=200)")
            && all.contains("does not advance"),
        "{all}"
    );
    assert_eq!(
        fake.calls_to("GET /v2/account/keys"),
        1,
        "{:?}",
        fake.calls()
    );
}

/// A next link past the last item is not followed: `meta.total` says every
/// item is read, so the plan succeeds with exactly the requests it sends
/// when the links are right.
#[test]
fn meta_total_caps_a_list_whose_next_link_never_ends() {
    let calls = |stuck: bool| {
        let fake = DigitalOceanFake::start(TOKEN);
        fake.add_ssh_key("deploy-key");
        if stuck {
            fake.stick_next_link("sizes", 2);
            fake.stick_next_link("droplets", 2);
            fake.stick_next_link("ssh_keys", 2);
        }
        let dir = project(&fake);
        let out = soar(dir.path(), &["plan"]);
        let all = text(&out);
        assert!(out.status.success(), "plan failed: {all}");
        assert!(all.contains("staging-app-1"), "{all}");
        fake.calls()
    };
    let right = calls(false);
    let stuck = calls(true);
    assert_eq!(
        stuck, right,
        "one request per list read, as with right links"
    );
    assert!(stuck["GET /v2/sizes"] >= 1, "{stuck:?}");
}
