//! Issue 12, findings 16 and 17, through the real `soar` binary: a plugin
//! cannot fool the user through the terminal, and cannot silently take a
//! bundled plugin's place.
//!
//! - Finding 16: every string a plugin supplies (plan text, diagnostics,
//!   errors, log records, its stderr, the install consent screen, `plugin
//!   list` and `inspect`) reaches stdout and stderr with no control
//!   character, C1 control or bidi override raw: each case asserts that on
//!   the bytes, and that the escaped form is visible instead. The consent
//!   screen also warns loudly about credentials reading another provider's
//!   or a well-known secret variable.
//! - Finding 17: a plugin named like a bundled one is refused without
//!   `--override-bundled`; a project pins the bundled plugin it used and
//!   refuses the replacement until `soar plugin pin`; a hand-made directory
//!   with a bundled name is ignored.
//!
//! Every `soar` runs with its own `HOME` and `SOAR_DATA_DIR`, stdin closed
//! (non-interactive) and stdout/stderr pipes; the compile cache is shared by
//! every test (`support::compile_cache`).

use std::path::PathBuf;

use soar_tests::components;

use crate::support::{Home, Run};

impl Run {
    /// The promise: nothing on stdout or stderr can act on the terminal.
    fn clean(self) -> Self {
        let bad: Vec<(usize, u8)> = self
            .raw
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, b)| (*b < 0x20 && *b != b'\n') || *b == 0x7f)
            .collect();
        assert!(
            bad.is_empty(),
            "raw control bytes {:?} in the output:\n{self:#?}",
            &bad[..bad.len().min(10)]
        );
        let text = String::from_utf8_lossy(&self.raw);
        let unsafe_chars: Vec<char> = text
            .chars()
            .filter(|c| soar::terminal::is_unsafe(*c) && *c != '\n')
            .collect();
        assert!(
            unsafe_chars.is_empty(),
            "C1 or bidi controls {unsafe_chars:?} in the output:\n{self:#?}"
        );
        self
    }
}

impl Home {
    /// Install the hostile plugin (outside any project).
    fn with_hostile(self) -> Self {
        let wasm = self.write("hostile.wasm", components::hostile());
        self.soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"])
            .ok();
        self
    }
    /// A project using `provider` with extra environment settings.
    fn project(&self, name: &str, provider: &str, settings: &str) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(
            dir.join("soar.toml"),
            format!(
                "[app]\nname = \"term\"\n\n[artifact]\nkind = \"binary\"\npath = \"app\"\n\n\
                 [deploy]\nservice = \"web\"\n\n[env.dev]\nprovider = \"{provider}\"\n{settings}\n"
            ),
        )
        .unwrap();
        dir
    }
}

/// Finding 16, plan text: a destroy disguised as `+ create harmless`, a
/// reason that sets the window title and forges a line, escapes in
/// attributes, notes and diagnostics.
#[test]
fn plan_text_is_escaped() {
    let home = Home::new().with_hostile();
    let project = home.project("plan", "hostile", "mode = \"term-plan\"");
    let run = home.soar_in(&project, &["plan"]).ok().clean();
    // The destroy is drawn as a destroy, its disguise visible as text.
    assert!(
        run.stdout.contains("  - \\r\\x1b[2K  + create harmless\n"),
        "{run:#?}"
    );
    // The forged line stays on the reason's line.
    assert!(
        run.stdout
            .contains("# \\x1b]0;pwned\\x07nothing to see\\n  + create also-harmless\n"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("\\u{9b}2J\\u{202e}txet desrever"),
        "{run:#?}"
    );
    // (The engine lowercases diagnostics turned into notes.)
    assert!(run.stdout.contains("diagnostic\\x1b[2a\\x1b[j"), "{run:#?}");
    assert!(
        run.stdout
            .contains("Plan: 2 to add, 0 to change, 1 to destroy."),
        "{run:#?}"
    );
    // Machines get the same values, as JSON escapes.
    let json = home.soar_in(&project, &["plan", "--json"]).ok().clean();
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["change"]["kind"], "\r\x1b[2K  + create", "{json:#?}");
}

/// Finding 16, errors and diagnostics: every kind of plugin error, and a
/// trap whose reason quotes the plugin's stderr.
#[test]
fn plugin_errors_are_escaped() {
    let home = Home::new().with_hostile();
    for (mode, shown) in [
        ("term-api-error", "API error 418 code\\x1b]0;pwned\\x07"),
        (
            "term-other-error",
            "boom\\x1b]0;pwned\\x07\\nerror: a forged line",
        ),
        (
            "term-invalid",
            "field\\x1b]0;pwned\\x07: bad\\x1b[2A\\x1b[J",
        ),
        ("term-panic", "panic\\x1b]0;pwned\\x07\\u{9b}2J"),
    ] {
        let project = home.project(mode, "hostile", &format!("mode = \"{mode}\""));
        let run = home.soar_in(&project, &["plan"]).fails_with(shown).clean();
        // One error line: a plugin's newline cannot start a line of its own.
        assert!(
            !run.stderr.lines().any(|l| l.starts_with("error: a forged")),
            "{run:#?}"
        );
    }
}

/// Finding 16, logs: plugin log records, its stdout and stderr, shown by
/// `-vv`, stay escaped and one record per line.
#[test]
fn plugin_logs_are_escaped() {
    let home = Home::new().with_hostile();
    let project = home.project("logs", "hostile", "mode = \"term-log\"");
    let run = home.soar_in(&project, &["plan", "-vv"]).ok().clean();
    assert!(run.stderr.contains("log\\x1b[2A\\x1b[J"), "{run:#?}");
    assert!(run.stderr.contains("forged\\nWARN fake record"), "{run:#?}");
    assert!(run.stderr.contains("stderr\\x1b]0;pwned\\x07"), "{run:#?}");
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("WARN fake")),
        "{run:#?}"
    );
    // At -v a plugin's warn and info records show, with their level by
    // name and their fields as key=value (escaped like the message).
    let run = home.soar_in(&project, &["plan", "-v"]).ok().clean();
    assert!(
        run.stderr.contains("level=warn") && run.stderr.contains("field=value"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("level::"), "{run:#?}");
}

/// The consent-hostile component renamed to `name` (same length as its own
/// name, `consent-evil`).
fn renamed(name: &str) -> Vec<u8> {
    let mut bytes = components::consent_hostile().to_vec();
    let from = b"consent-evil";
    assert_eq!(name.len(), from.len());
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the name appears once in the component");
    bytes[at[0]..at[0] + from.len()].copy_from_slice(name.as_bytes());
    bytes
}

/// Finding 16, the consent screen: the version cannot erase the capability
/// lines, the summary cannot push them away, and credentials reading other
/// providers' and well-known secret variables are loud warnings, right
/// above the question. `list` and `inspect` are escaped too.
#[test]
fn install_consent_screen_is_escaped_and_warns() {
    let home = Home::new();
    let wasm = home.write("evil.wasm", components::consent_hostile());
    let run = home
        .soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"])
        .ok()
        .clean();
    let out = &run.stdout;
    assert!(
        out.contains("consent-evil 1.0.0\\x1b[2A\\x1b[J\\r  SSH: no, HTTP: no… — "),
        "{run:#?}"
    );
    assert!(out.contains("\\x1b]0;trusted installer\\x07"), "{run:#?}");
    assert!(
        out.lines().all(|l| l.chars().count() < 400),
        "the summary is clipped:\n{run:#?}"
    );
    // Each credential names the host it goes to.
    assert!(
        out.contains("read from $AWS_SECRET_ACCESS_KEY, sent only to api (collect.evil.example)"),
        "{run:#?}"
    );
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("WARNING:")).collect();
    assert_eq!(warnings.len(), 3, "{run:#?}");
    assert!(
        warnings[0].contains("$AWS_SECRET_ACCESS_KEY, which the bundled provider 'aws-spot' uses")
            && warnings[0].contains("collect.evil.example, a host other than that provider's API"),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].contains("credential 'do\\x1b[2K' reads $DIGITALOCEAN_TOKEN")
            && warnings[1].contains("bundled provider 'digitalocean'"),
        "{warnings:#?}"
    );
    assert!(
        warnings[2].contains("$GITHUB_TOKEN, a well-known secret of GitHub"),
        "{warnings:#?}"
    );
    // The warnings come after everything the plugin wrote.
    let last_warning = out.rfind("WARNING:").unwrap();
    assert!(out.find("It will be able to reach:").unwrap() < last_warning);

    let list = home.soar(&["plugin", "list"]).ok().clean();
    assert!(list.stdout.contains("consent-evil"), "{list:#?}");
    home.soar(&["plugin", "list", "--json"]).ok().clean();
    let inspect = home
        .soar(&["plugin", "inspect", "consent-evil"])
        .ok()
        .clean();
    assert!(
        inspect
            .stdout
            .contains("WARNING: credential 'aws' reads $AWS_SECRET_ACCESS_KEY"),
        "{inspect:#?}"
    );
    let json = home
        .soar(&["plugin", "inspect", "consent-evil", "--json"])
        .ok()
        .clean();
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["version"], "1.0.0\x1b[2A\x1b[J\r  SSH: no, HTTP: nothing");
}

/// Finding 17: installing a plugin named `digitalocean` needs
/// `--override-bundled`; a project that used the bundled one pinned it and
/// refuses the replacement until `soar plugin pin`; removing the replacement
/// is refused the same way by a project that pinned it.
#[test]
fn bundled_plugins_are_pinned_and_not_silently_replaced() {
    let home = Home::new();
    let fake = home.write("digitalocean.wasm", &renamed("digitalocean"));
    let project = home.project(
        "do",
        "digitalocean",
        "region = \"nyc1\"\n[env.dev.grants]\nendpoints = { api = \"http://127.0.0.1:9\" }",
    );

    // The project uses the bundled plugin first (the plan itself fails: no
    // token), which pins it.
    home.soar_in(&project, &["plan"]).clean();
    let lock = std::fs::read_to_string(project.join("soar.lock")).expect("soar.lock written");
    assert!(
        lock.contains("name = \"digitalocean\"") && lock.contains("source = \"bundled\""),
        "{lock}"
    );

    // The bundled plugin is the reference, not a suspect.
    let inspect = home
        .soar(&["plugin", "inspect", "digitalocean"])
        .ok()
        .clean();
    assert!(!inspect.stdout.contains("WARNING"), "{inspect:#?}");

    // Without the flag: refused, nothing installed.
    home.soar(&["plugin", "install", fake.to_str().unwrap(), "--yes"])
        .fails_with("--override-bundled")
        .clean();
    assert!(!home.plugins().join("digitalocean").exists());

    // With it: installed, with a loud warning.
    let run = home
        .soar(&[
            "plugin",
            "install",
            fake.to_str().unwrap(),
            "--yes",
            "--override-bundled",
        ])
        .ok()
        .clean();
    assert!(
        run.stdout
            .contains("WARNING: this replaces the bundled plugin 'digitalocean'"),
        "{run:#?}"
    );

    // The project refuses to switch.
    let run = home
        .soar_in(&project, &["plan"])
        .fails_with("pins the bundled plugin 'digitalocean'")
        .clean();
    assert!(
        run.stderr.contains("soar plugin pin digitalocean"),
        "{run:#?}"
    );

    // Re-pinned by the user (after seeing its reach), it runs.
    let pin = home
        .soar_in(&project, &["plugin", "pin", "digitalocean", "--yes"])
        .ok()
        .clean();
    assert!(
        pin.stdout
            .contains("reads $DIGITALOCEAN_TOKEN, which the bundled provider 'digitalocean' uses"),
        "{pin:#?}"
    );
    let plan = home.soar_in(&project, &["plan"]).ok().clean();
    assert!(plan.stdout.contains("No changes"), "{plan:#?}");

    // Removing the replacement: the project now refuses the bundled one.
    home.soar(&["plugin", "remove", "digitalocean"]).ok();
    home.soar_in(&project, &["plan"])
        .fails_with("pins an installed plugin 'digitalocean'")
        .clean();

    // A directory merely named like a bundled plugin is ignored.
    home.write(
        "data/plugins/digitalocean/plugin.wasm",
        &renamed("digitalocean"),
    );
    let list = home.soar(&["plugin", "list"]).clean();
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("digitalocean"))
        .unwrap_or_else(|| panic!("{list:#?}"));
    assert!(line.contains("bundled"), "{list:#?}");
    assert!(list.stderr.contains("--override-bundled"), "{list:#?}");
}

/// Finding 16, deploy progress: the `✓ delete <kind> <name>` lines quote the
/// plugin's kinds and names; `engine::trail::progress` escapes every line.
#[test]
fn deploy_progress_is_escaped() {
    let home = Home::new().with_hostile();
    let project = home.project("deploy", "hostile", "mode = \"term-plan\"");
    home.soar_in(&project, &["deploy", "--yes"]).clean();
}
