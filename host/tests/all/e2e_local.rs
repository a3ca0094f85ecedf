//! End to end through the built `soar` binary and the `local` provider: each
//! test builds a throwaway project (a Python HTTP service, kind `script`) in
//! a temporary directory, drives `soar` as a user would, and checks what
//! answers on 127.0.0.1 and what `status` / `history` / `plan` report.
//!
//! Every project is torn down when its test ends, passed or failed (see
//! `support::e2e::Project`'s `Drop`): no supervisor or service outlives it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::e2e::{
    ENV, Mode, Project, SERVICE, connection_refused, http_get, run_command, soar_toml, version_at,
    wait_until,
};
use crate::support::soar;

/// The usual config: quick health checks, nothing extra.
fn config() -> String {
    soar_toml("10s", "")
}

/// The phases of a history record, as `(phase, outcome)`.
fn phases(record: &Value) -> Vec<(String, String)> {
    record["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases in {record}"))
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_phase(record: &Value, phase: &str, outcome: &str) -> bool {
    phases(record)
        .iter()
        .any(|(p, o)| p == phase && o == outcome)
}

/// The first 12 hex digits of a digest, as plans show it.
fn short(digest: &str) -> &str {
    &digest[..12]
}

#[test]
fn deploy_update_rollback_history_status_destroy() {
    let p = Project::new(&config(), "v1");
    let v1 = p.planned_digest();

    // First deploy: the URL is the last line of stdout, and it answers v1.
    let run = p.soar(&["deploy", "--yes"]).ok();
    assert!(run.stdout.contains("+ release web"), "{}", run.show());
    let url = run.stdout.lines().last().unwrap().trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{}", run.show());
    assert_eq!(p.url(), url);
    assert_eq!(version_at(&url), "v1");
    let (status, body) = http_get(&url, "/health").unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));

    // Second version: the plan shows the release changing artifact.
    p.write_app("v2", Mode::Healthy);
    let v2 = p.planned_digest();
    assert_ne!(v1, v2);
    let plan = p.soar(&["plan"]).ok();
    let change = format!(
        "  ~ release web\n      artifact: \"{}…\" → \"{}…\"\n      # the artifact changed\n",
        short(&v1),
        short(&v2)
    );
    assert!(plan.stdout.contains(&change), "{}", plan.show());
    assert!(
        plan.stdout
            .ends_with("Plan: 0 to add, 1 to change, 0 to destroy.\n"),
        "{}",
        plan.show()
    );
    let run = p.soar(&["deploy", "--yes"]).ok();
    assert!(run.stdout.contains(&change), "{}", run.show());
    assert_eq!(
        run.stdout.lines().last().unwrap().trim(),
        url,
        "the port is kept"
    );
    assert_eq!(version_at(&url), "v2");
    let status = p.status();
    assert_eq!(status["release"]["artifact_digest"], v2.as_str());
    assert_eq!(status["release"]["status"], "active");
    let v2_release = status["release"]["id"].as_str().unwrap().to_string();

    // Rollback (no confirmation needed) to v1.
    let run = p.soar(&["rollback"]).ok();
    assert!(run.stdout.contains("back to release"), "{}", run.show());
    assert_eq!(version_at(&url), "v1");
    let status = p.status();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["url"], url.as_str());
    assert_eq!(status["env"], ENV);
    assert_eq!(status["service"], SERVICE);
    assert_eq!(status["release"]["artifact_digest"], v1.as_str());
    assert_ne!(status["release"]["id"], v2_release.as_str());
    // After the rollback the configuration (v2) differs from what runs.
    p.soar(&["plan", "--detailed-exitcode"]).expect_code(2);

    // History: rollback, deploy, deploy (newest first), each with phases.
    let history = p.history();
    let commands: Vec<&str> = history
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["rollback", "deploy", "deploy"]);
    for r in &history {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["env"], ENV, "{r}");
    }
    for deploy in &history[1..] {
        for phase in [
            "build",
            "validate",
            "plan",
            "transfer",
            "start",
            "verify-health",
        ] {
            assert!(has_phase(deploy, phase, "ok"), "{phase} in {deploy}");
        }
    }
    assert!(has_phase(&history[0], "rollback", "ok"), "{}", history[0]);
    assert!(
        history[1]["summary"]
            .as_str()
            .unwrap()
            .contains(&v2_release),
        "{}",
        history[1]
    );
    let text = p.soar(&["history"]).ok();
    let order: Vec<usize> = [" rollback dev ", " deploy dev "]
        .iter()
        .map(|c| {
            text.stdout
                .find(c)
                .unwrap_or_else(|| panic!("{}", text.show()))
        })
        .collect();
    assert!(order[0] < order[1], "newest first\n{}", text.show());
    assert_eq!(text.stdout.matches(" deploy dev ").count(), 2);
    assert!(text.stdout.contains("verify-health"), "{}", text.show());

    // Logs come from the service's log file.
    let logs = p.soar(&["logs"]).ok();
    assert!(
        logs.stdout.contains("[soar] started web"),
        "{}",
        logs.show()
    );

    // Destroy stops the service and removes its root.
    let supervisor = p.supervisors();
    assert_eq!(supervisor.len(), 1, "one supervisor: {supervisor:?}");
    let run = p.soar(&["destroy", "--yes"]).ok();
    assert!(run.stdout.contains("- release web"), "{}", run.show());
    assert!(
        connection_refused(&url),
        "nothing listens on {url} any more"
    );
    assert!(!p.service_root().exists(), "the service root is removed");
    assert!(p.supervisors().is_empty(), "the supervisor is gone");
    assert!(p.services().is_empty(), "the service is gone");
    let status = p.status();
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["url"], Value::Null, "{status}");
    assert_eq!(status["release"], Value::Null, "{status}");
    let history = p.history();
    assert_eq!(history[0]["command"], "destroy");
    assert_eq!(history[0]["status"], "ok");
}

#[test]
fn an_unhealthy_release_is_rolled_back_automatically() {
    // The window only ends the failed deploys below; it is long enough that
    // a loaded machine still starts Python and sees v2's 500 within it.
    let p = Project::new(&soar_toml("15s", ""), "v1");
    let v1 = p.planned_digest();
    p.soar(&["deploy", "--yes"]).ok();
    let url = p.url();
    assert_eq!(version_at(&url), "v1");

    // v2 answers /health with 500: the deploy fails and v1 is back.
    p.write_app("v2", Mode::Unhealthy);
    let v2 = p.planned_digest();
    let run = p.soar(&["deploy", "--yes"]);
    assert_ne!(run.code, Some(0), "{}", run.show());
    assert!(run.stderr.contains("unhealthy"), "{}", run.show());
    assert!(run.stderr.contains("rolled back"), "{}", run.show());
    assert!(run.stderr.contains("answered 500"), "{}", run.show());
    // Straight away, not eventually: soar said v1 runs again.
    assert_eq!(version_at(&url), "v1");
    let status = p.status();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["release"]["artifact_digest"], v1.as_str());

    let history = p.history();
    let failed = &history[0];
    assert_eq!(failed["command"], "deploy", "{failed}");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["summary"].as_str().unwrap().contains("unhealthy"),
        "{failed}"
    );
    assert!(has_phase(failed, "verify-health", "failed"), "{failed}");
    assert!(
        !has_phase(failed, "verify-health", "ok"),
        "the failed health check is not also recorded as ok: {failed}"
    );
    assert!(has_phase(failed, "rollback", "ok"), "{failed}");
    assert_eq!(history[1]["status"], "ok");

    // A v3 that exits at once fails the same way; v1 keeps answering.
    p.write_app("v3", Mode::Exits);
    let run = p.soar(&["deploy", "--yes"]);
    assert_ne!(run.code, Some(0), "{}", run.show());
    assert!(run.stderr.contains("unhealthy"), "{}", run.show());
    assert!(run.stderr.contains("rolled back"), "{}", run.show());
    assert_eq!(version_at(&url), "v1");
    assert_eq!(p.history()[0]["status"], "failed");

    // The configuration still differs from what runs.
    p.soar(&["plan", "--detailed-exitcode"]).expect_code(2);
    assert_ne!(v1, v2);
}

#[test]
fn plans_are_deterministic() {
    let p = Project::new(&config(), "v1");
    let same = |p: &Project, args: &[&str]| {
        let a = p.soar(args).ok();
        let b = p.soar(args).ok();
        assert!(!a.stdout.is_empty(), "{}", a.show());
        assert_eq!(a.stdout, b.stdout, "soar {args:?} printed different plans");
        a.stdout
    };
    // Before the first deploy (port not yet allocated).
    same(&p, &["plan"]);
    same(&p, &["plan", "--json"]);
    // With an allocated port, a running service and a pending change.
    p.soar(&["deploy", "--yes"]).ok();
    let none = same(&p, &["plan"]);
    assert!(none.starts_with("No changes."), "{none}");
    same(&p, &["plan", "--json"]);
    p.write_app("v2", Mode::Healthy);
    let text = same(&p, &["plan"]);
    assert!(text.contains("~ release web"), "{text}");
    same(&p, &["plan", "--json"]);
    // Saved plans too, byte for byte.
    p.soar(&["plan", "-o", "a.json"]).ok();
    p.soar(&["plan", "-o", "b.json"]).ok();
    let a = std::fs::read(p.root.join("a.json")).unwrap();
    assert_eq!(a, std::fs::read(p.root.join("b.json")).unwrap());
    // Planning changed nothing.
    assert_eq!(version_at(&p.url()), "v1");
    assert_eq!(p.history().len(), 1);
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_when_stale() {
    let p = Project::new(&config(), "v1");
    let plan = p.soar(&["plan", "-o", "plan.json"]).ok();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(p.root.join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["command"], "deploy");
    assert_eq!(saved["env"], ENV);
    let shown = plan
        .stdout
        .split("\nSaved the plan to ")
        .next()
        .unwrap()
        .to_string();
    assert!(shown.contains("+ release web"), "{}", plan.show());

    // Applying it shows exactly the saved plan, then does it.
    let run = p.soar(&["deploy", "plan.json", "--yes"]).ok();
    assert!(run.stdout.starts_with(&shown), "{}", run.show());
    let url = run.stdout.lines().last().unwrap().trim().to_string();
    assert_eq!(version_at(&url), "v1");
    assert_eq!(
        p.status()["release"]["artifact_digest"],
        saved["artifact"],
        "the saved plan's artifact runs"
    );

    // A plan saved before the state moved on is refused.
    p.write_app("v2", Mode::Healthy);
    p.soar(&["plan", "-o", "stale.json"]).ok();
    p.soar(&["deploy", "--yes"]).ok();
    assert_eq!(version_at(&url), "v2");
    p.write_app("v3", Mode::Healthy);
    let run = p.soar(&["deploy", "stale.json", "--yes"]).expect_code(1);
    assert!(run.stderr.contains("stale"), "{}", run.show());
    assert_eq!(version_at(&url), "v2", "nothing was deployed");
    let history = p.history();
    assert_eq!(history[0]["status"], "failed", "{}", history[0]);

    // So is one whose artifact no longer matches the build.
    p.soar(&["plan", "-o", "v3.json"]).ok();
    p.write_app("v4", Mode::Healthy);
    let run = p.soar(&["deploy", "v3.json", "--yes"]).expect_code(1);
    assert!(
        run.stderr.contains("the saved plan deploys artifact"),
        "{}",
        run.show()
    );
    assert_eq!(version_at(&url), "v2", "nothing was deployed");

    // And a plan for another environment is refused before anything runs.
    let run = p
        .soar(&["deploy", "v3.json", "--yes", "--env", "prod"])
        .expect_code(1);
    assert!(run.stderr.contains("not 'prod'"), "{}", run.show());
}

#[test]
fn detailed_exitcode() {
    let p = Project::new(&config(), "v1");
    p.soar(&["plan", "--detailed-exitcode"]).expect_code(2);
    p.soar(&["deploy", "--yes"]).ok();
    let run = p.soar(&["plan", "--detailed-exitcode"]).expect_code(0);
    assert!(run.stdout.starts_with("No changes."), "{}", run.show());
    p.soar(&["plan", "--detailed-exitcode", "--json"])
        .expect_code(0);
    // Without the flag, changes still exit 0.
    p.write_app("v2", Mode::Healthy);
    p.soar(&["plan"]).expect_code(0);
    p.soar(&["plan", "--detailed-exitcode"]).expect_code(2);
    // Back to what runs: no changes again.
    p.write_app("v1", Mode::Healthy);
    p.soar(&["plan", "--detailed-exitcode"]).expect_code(0);

    // An error is 1: a broken config (kept out of the project, which must
    // stay destroyable) ...
    let broken = p.tmp().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(p.root.join("app.py"), broken.join("app.py")).unwrap();
    std::fs::write(
        broken.join("soar.toml"),
        config().replace("provider = \"local\"", "provider = \"nowhere\""),
    )
    .unwrap();
    let mut cmd = soar(p.tmp(), &broken);
    cmd.args(["plan", "--detailed-exitcode"]);
    let run = run_command(cmd, vec!["plan".into(), "--detailed-exitcode".into()]).expect_code(1);
    assert!(run.stderr.contains("nowhere"), "{}", run.show());
    // ... and an unknown environment.
    p.soar(&["plan", "--detailed-exitcode", "--env", "nope"])
        .expect_code(1);
}

#[test]
fn a_second_deploy_waits_for_the_project_lock_then_names_the_holder() {
    let hook = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";
    let mut p = Project::new(
        &soar_toml("10s", &format!("[hooks]\npre_deploy = \"{hook}\"\n")),
        "v1",
    );
    let first = p.spawn(&["deploy", "--yes"]);
    let holder = p.pid(first);
    let started = p.root.join("hook-started");
    assert!(
        wait_until(Duration::from_secs(60), || started.exists()
            || p.has_exited(first)),
        "the first deploy never reached its pre_deploy hook"
    );
    assert!(started.exists(), "{}", p.wait(first).show());

    // The first deploy holds the lock (its hook runs under it).
    for args in [
        &["deploy", "--yes", "--lock-timeout", "1s"][..],
        &["destroy", "--yes", "--lock-timeout", "1s"][..],
        &["rollback", "--lock-timeout", "1s"][..],
    ] {
        let run = p.soar(args).expect_code(1);
        assert!(
            run.stderr.contains("holds the project lock"),
            "{}",
            run.show()
        );
        assert!(
            run.stderr.contains(&format!("pid {holder}")),
            "names the holder {holder}\n{}",
            run.show()
        );
    }

    // Once released, the first deploy finishes normally.
    p.write("hook-release", "");
    let run = p.wait(first).ok();
    let url = run.stdout.lines().last().unwrap().trim().to_string();
    assert_eq!(version_at(&url), "v1");
    let history = p.history();
    assert_eq!(history.len(), 1, "refused commands leave no trail");
    assert_eq!(history[0]["status"], "ok");
    assert!(has_phase(&history[0], "hooks", "ok"), "{}", history[0]);
    // And the lock is free again.
    p.soar(&["deploy", "--yes", "--lock-timeout", "1s"]).ok();
}

#[test]
fn a_deploy_killed_at_a_random_point_converges_when_run_again() {
    let mut p = Project::new(&config(), "v1");
    let started = Instant::now();
    p.soar(&["deploy", "--yes"]).ok();
    let url = p.url();
    // Kill somewhere within the span of a whole deploy: round i picks a
    // random point in the i-th of ROUNDS equal slices, so the kills spread
    // from process start to the end of the health check.
    const ROUNDS: u64 = 6;
    let span = started
        .elapsed()
        .max(Duration::from_millis(300))
        .as_millis() as u64;
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let version = format!("v{}", round + 2);
        p.write_app(&version, Mode::Healthy);
        let digest = p.planned_digest();
        let deploy = p.spawn(&["deploy", "--yes"]);
        let delay = rand::random_range(round * span / ROUNDS..(round + 1) * span / ROUNDS);
        std::thread::sleep(Duration::from_millis(delay));
        let finished = p.has_exited(deploy);
        p.kill(deploy);
        if !finished && p.history()[0]["status"] == "interrupted" {
            interrupted += 1;
        }

        let again = p.soar(&["deploy", "--yes"]);
        assert_eq!(
            again.code,
            Some(0),
            "round {round}: re-running after a kill at {delay} ms failed\n{}",
            again.show()
        );
        let status = p.status();
        assert_eq!(status["running"], true, "round {round}: {status}");
        assert_eq!(status["url"], url.as_str(), "round {round}: {status}");
        assert_eq!(
            status["release"]["artifact_digest"],
            digest.as_str(),
            "round {round} (killed at {delay} ms): {status}"
        );
        assert_eq!(status["release"]["status"], "active");
        assert_eq!(
            version_at(&url),
            version,
            "round {round} (killed at {delay} ms)"
        );
        let run = p.soar(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            run.code,
            Some(0),
            "round {round} (killed at {delay} ms): not converged\n{}",
            run.show()
        );
        assert_eq!(
            p.supervisors().len(),
            1,
            "round {round} (killed at {delay} ms): exactly one supervisor"
        );
        assert_eq!(
            p.services().len(),
            1,
            "round {round} (killed at {delay} ms): exactly one service process"
        );
        // The killed deploy is never reported as still running.
        for r in p.history() {
            assert_ne!(r["status"], "running", "round {round}: {r}");
        }
    }
    eprintln!("{interrupted} of {ROUNDS} deploys were killed after they began recording");
}

/// The window the random kills above hit only now and then, made certain:
/// a deploy killed right after it switched `current` to the new release,
/// before the restart, while the old process still serves. The re-run must
/// restart (an early version stamped the release as started at the switch,
/// and the re-run left the old process serving under the new release).
#[test]
fn a_deploy_killed_between_the_switch_and_the_restart_is_restarted_by_the_rerun() {
    let p = Project::new(&config(), "v1");
    p.soar(&["deploy", "--yes"]).ok();
    let url = p.url();
    assert_eq!(version_at(&url), "v1");

    // `mv` that, once it has moved `current` into place, SIGKILLs the
    // deploy that ran it (the parent of its `sh`).
    let bin = p.root.join("killing-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real_mv = ["/usr/bin/mv", "/bin/mv"]
        .into_iter()
        .find(|m| std::path::Path::new(m).exists())
        .expect("mv");
    p.write(
        "killing-bin/mv",
        &format!(
            "#!/bin/sh\n{real_mv} \"$@\" || exit $?\n\
             case \"$*\" in *current.soar-new*)\n\
             \x20 read -r _ _ _ deploy _ < /proc/$PPID/stat; kill -9 \"$deploy\" ;;\n\
             esac\n"
        ),
    );
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(bin.join("mv"), std::fs::Permissions::from_mode(0o755)).unwrap();

    p.write_app("v2", Mode::Healthy);
    let digest = p.planned_digest();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let killed = p
        .command(&["deploy", "--yes"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(9),
        "the deploy was killed at the switch: {killed:?}"
    );
    assert_eq!(version_at(&url), "v1", "the old process still serves");

    let again = p.soar(&["deploy", "--yes"]);
    assert_eq!(again.code, Some(0), "{}", again.show());
    assert_eq!(version_at(&url), "v2", "{}", again.show());
    let status = p.status();
    assert_eq!(
        status["release"]["artifact_digest"],
        digest.as_str(),
        "{status}"
    );
    assert_eq!(p.services().len(), 1, "exactly one service process");
}

#[test]
fn config_errors_point_at_the_line() {
    let p = Project::empty();
    p.write_app("v1", Mode::Healthy);
    let toml = config().replace("service = \"web\"\n", "service = \"web\"\nport = 99999\n");
    let line = toml
        .lines()
        .position(|l| l == "port = 99999")
        .expect("the bad line")
        + 1;
    p.write("soar.toml", &toml);
    let at = format!("soar.toml:{line}:8");

    for args in [&["plan"][..], &["deploy", "--yes"][..], &["validate"][..]] {
        let run = p.soar(args).expect_code(1);
        assert!(run.stderr.contains(&at), "wants {at}\n{}", run.show());
        assert!(run.stderr.contains("deploy.port"), "{}", run.show());
        assert!(run.stderr.contains("65535"), "{}", run.show());
    }
    assert!(
        !p.root.join(".soar").exists(),
        "a broken config changes nothing"
    );

    let run = p.soar(&["validate", "--json"]).expect_code(1);
    let diagnostics = run.json_lines();
    assert_eq!(diagnostics.len(), 1, "{}", run.show());
    let d = &diagnostics[0];
    assert_eq!(d["line"], line, "{d}");
    assert_eq!(d["col"], 8, "{d}");
    assert!(d["file"].as_str().unwrap().ends_with("soar.toml"), "{d}");
    assert!(
        d["message"].as_str().unwrap().contains("deploy.port"),
        "{d}"
    );
    assert!(d["hint"].as_str().unwrap().contains("port = "), "{d}");

    // Every problem is reported at once.
    p.write(
        "soar.toml",
        &toml.replace("timeout = \"10s\"", "timeout = \"10 parsecs\""),
    );
    let run = p.soar(&["validate", "--json"]).expect_code(1);
    let lines: Vec<u64> = run
        .json_lines()
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [line as u64, line as u64 + 1], "{}", run.show());

    // The fixed file validates.
    p.write("soar.toml", &config());
    let run = p.soar(&["validate", "--json"]).ok();
    assert_eq!(run.json_lines()[0]["valid"], true, "{}", run.show());
}

#[test]
fn init_writes_a_config_that_validates() {
    let p = Project::empty();
    let init = |args: &[&str]| {
        let mut cmd = soar(p.tmp(), &p.root);
        cmd.args(args);
        run_command(cmd, args.iter().map(|a| a.to_string()).collect())
    };
    let run = init(&["init"]).ok();
    assert!(run.stdout.contains("Wrote soar.toml"), "{}", run.show());
    let written = std::fs::read_to_string(p.config()).unwrap();
    assert!(written.contains("name = \"project\""), "{written}");

    // Found from the current directory, and valid.
    let run = init(&["validate"]).ok();
    assert!(run.stdout.contains("is valid"), "{}", run.show());
    let run = init(&["validate", "--json"]).ok();
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["environments"], serde_json::json!([ENV]), "{v}");

    // A second init does not overwrite it.
    let run = init(&["init"]).expect_code(1);
    assert!(run.stderr.contains("already exists"), "{}", run.show());
    assert_eq!(std::fs::read_to_string(p.config()).unwrap(), written);
}
