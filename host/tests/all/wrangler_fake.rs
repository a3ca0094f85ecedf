//! The official client judges the Cloudflare fake: `wrangler pages deploy`
//! (pinned, run on the Node.js the npm `node` package ships) deploys a site
//! to `tests/src/fakes/cloudflare.rs` through `CLOUDFLARE_API_BASE_URL`, and
//! must finish with its own "Deployment complete!". Then `soar deploy`
//! sends the same site: its manifest must hash every file exactly as
//! wrangler did (so it uploads nothing new) and label its multipart parts
//! as wrangler's.
//!
//! wrangler and Node come from `target/test-peers/npm` (installed by
//! `tests/run`; `SOAR_NODE` and `SOAR_WRANGLER` may point elsewhere). When
//! they are missing the test is skipped loudly, and fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use soar_tests::fakes::cloudflare::Cloudflare;

use crate::support::{self, transcript, write};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "cf-wrangler-fake-test-token-0000000000000";
/// Node.js version wrangler 4 requires.
const NODE_MIN: (u32, u32) = (22, 12);

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-peers/npm/node_modules")
}

/// Node and wrangler's entry script, or why they cannot run.
fn find_wrangler() -> Result<(PathBuf, PathBuf), String> {
    let node = std::env::var_os("SOAR_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers().join("node/bin/node"));
    let wrangler = std::env::var_os("SOAR_WRANGLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers().join("wrangler/bin/wrangler.js"));
    for p in [&node, &wrangler] {
        if !p.exists() {
            return Err(format!("{} not found", p.display()));
        }
    }
    let out = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {}: {e}", node.display()))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts = v
        .trim_start_matches('v')
        .split('.')
        .map(|n| n.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(format!("{} --version said '{v}'", node.display()));
    };
    if (major, minor) < NODE_MIN {
        return Err(format!(
            "{} is Node {v}; wrangler 4 needs >= {}.{}",
            node.display(),
            NODE_MIN.0,
            NODE_MIN.1
        ));
    }
    Ok((node, wrangler))
}

/// With `CI=true` a missing wrangler fails the test (`tests/run` installs
/// it); elsewhere the test is skipped, saying so where it will be seen.
fn require_wrangler() -> Option<(PathBuf, PathBuf)> {
    match find_wrangler() {
        Ok(found) => Some(found),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "the wrangler test needs Node >= 22.12 and wrangler (CI=true, so this is not skipped): {why}"
            )
        }
        Err(why) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!\n!!! SKIPPED (no wrangler): {why}\n!!! install them: npm install --prefix target/test-peers/npm --save-exact node@22.23.3 wrangler@4.164.0 (and run node_modules/node's preinstall); with CI=true this fails instead\n!!!!!!!!"
            );
            None
        }
    }
}

fn site(dir: &Path) {
    write(dir, "index.html", b"<h1>shop</h1>\n");
    write(dir, "about/index.html", b"<p>about</p>\n");
    write(dir, "css/site.css", b"body{margin:0}\n");
    write(dir, "img/logo.png", [0x89, b'P', b'N', b'G', 0, 1, 2, 3]);
    write(dir, "data/prices.json", br#"{"tea":3}"#);
    write(dir, "_headers", b"/*\n  X-Frame-Options: DENY\n");
    write(dir, "_redirects", b"/old /new 301\n");
}

#[test]
fn wrangler_pages_deploy_succeeds_against_the_fake_and_soar_matches_it() {
    let Some((node, wrangler)) = require_wrangler() else {
        return;
    };
    let fake = Cloudflare::start(TOKEN, ACCOUNT);
    fake.add_project("shop-site");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("site");
    site(&dir);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // A clean environment: nothing of the caller's (tokens, agent markers)
    // reaches wrangler, and it sends no telemetry.
    let started = Instant::now();
    let out = Command::new(&node)
        .arg(&wrangler)
        .args(["pages", "deploy"])
        .arg(&dir)
        .args([
            "--project-name",
            "shop-site",
            "--branch",
            "main",
            "--commit-message",
            "from wrangler",
            "--commit-dirty=true",
        ])
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", node.parent().unwrap())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("CLOUDFLARE_API_BASE_URL", fake.url())
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("WRANGLER_LOG", "log")
        .env("CI", "true")
        .output()
        .unwrap();
    let took = started.elapsed();
    let all = transcript(&out);
    eprintln!("wrangler pages deploy took {took:?}:\n{all}");
    assert!(
        out.status.success(),
        "wrangler failed against the fake:\n{all}"
    );
    assert!(
        all.contains("Deployment complete! Take a peek over at https://"),
        "wrangler could not confirm the deployment:\n{all}"
    );
    assert!(
        !all.contains("[WARNING]") && !all.contains("[ERROR]"),
        "wrangler found something off in the fake's answers:\n{all}"
    );
    let by_wrangler = fake.deployments("shop-site").pop().expect("a deployment");
    assert_eq!(by_wrangler.commit_message, "from wrangler");
    for part in ["_headers", "_redirects"] {
        assert!(
            by_wrangler
                .part_types
                .get(part)
                .is_some_and(Option::is_some),
            "wrangler labels {part}: {:?}",
            by_wrangler.part_types
        );
    }
    let uploaded = fake.counters().files_uploaded;
    assert_eq!(uploaded, 5, "{:?}", fake.counters());

    // Soar deploys the same files to another project.
    std::fs::write(
        tmp.path().join("soar.toml"),
        format!(
            r#"[app]
name = "shop"

[artifact]
kind = "static"
path = "site"

[env.site]
provider = "cloudflare"
account_id = "{ACCOUNT}"
project_name = "shop-soar"

[env.site.grants]
endpoints = {{ api = "{}" }}

[env.site.credentials]
cloudflare = "WRANGLER_TEST_TOKEN"
"#,
            fake.url()
        ),
    )
    .unwrap();
    let out = support::soar(tmp.path(), tmp.path())
        .args(["deploy", "--yes"])
        .env("WRANGLER_TEST_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "soar deploy: {}", transcript(&out));
    let by_soar = fake.deployments("shop-soar").pop().expect("a deployment");
    assert_eq!(
        by_soar.manifest, by_wrangler.manifest,
        "soar hashes every file as wrangler does"
    );
    assert_eq!(
        fake.counters().files_uploaded,
        uploaded,
        "every file was already there under wrangler's hashes: soar uploads none"
    );
    for part in ["manifest", "branch", "_headers", "_redirects"] {
        assert_eq!(
            by_soar.part_types.get(part),
            by_wrangler.part_types.get(part),
            "part {part}: soar {:?}, wrangler {:?}",
            by_soar.part_types,
            by_wrangler.part_types
        );
    }
    assert_eq!(by_soar.headers, by_wrangler.headers);
    assert_eq!(by_soar.redirects, by_wrangler.redirects);
}
