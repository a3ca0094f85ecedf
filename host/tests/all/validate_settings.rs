//! `soar validate` checks each environment's provider settings against the
//! JSON Schema the provider declares, offline, and reports each violation
//! at the key's `file:line:col` — before any plan, any request or any
//! credential.

use crate::support::Home;

const TOML: &str = r#"[app]
name = "hello"

[artifact]
kind = "binary"
path = "bin/hello"

[env.dev]
provider = "local"

[env.prod]
provider = "digitalocean"
default_regoin = "ams3"
functions = { memory = 4096 }
"#;

#[test]
fn settings_that_break_the_providers_schema_are_reported_at_their_line() {
    let home = Home::new();
    home.write("app/bin/hello", b"#!/bin/sh\n");
    let file = home.write("app/soar.toml", TOML.as_bytes());
    let run = home.soar(&["validate", "-c", file.to_str().unwrap()]);
    let shown = file.display().to_string();
    let run = run.fails_with(&format!("{shown}:13:1: `default_regoin` in [env.prod]"));
    assert!(
        run.stderr.contains("did you mean `default_region`?"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains(&format!("{shown}:14:15: `functions.memory`"))
            && run.stderr.contains("4096"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("provider 'digitalocean' settings schema"),
        "{run:#?}"
    );

    // The same problems as events under --json, with the exit code 1.
    let json = home.soar(&["validate", "-c", file.to_str().unwrap(), "--json"]);
    assert_eq!(json.code, Some(1), "{json:#?}");
    let lines: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let at: Vec<u64> = lines
        .iter()
        .filter(|e| e["type"] == "diagnostic")
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(at, vec![13, 14], "{json:#?}");

    // Fixed, it validates.
    let fixed = TOML
        .replace("default_regoin", "default_region")
        .replace("4096", "512");
    home.write("app/soar.toml", fixed.as_bytes());
    let ok = home.soar(&["validate", "-c", file.to_str().unwrap()]).ok();
    assert!(ok.stdout.contains("is valid (2 environment(s))"), "{ok:#?}");
}
