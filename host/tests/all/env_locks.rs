//! Per-environment locks, on both stores: deploys of two environments of
//! one project run side by side, a second command on a held environment
//! waits and names its holder, a command spanning every environment waits
//! for them all, and `history` shows a gated deploy as running (matched to
//! its own environment's holder), not interrupted.

use std::time::{Duration, Instant};

use soar::state::*;

use crate::support::e2e::{Project, soar_toml, wait_until};
use crate::support::postgres::Cluster;

/// The tests share one process environment, so the password goes in the
/// URL (allowed outside soar.toml) rather than in `PGPASSWORD`.
fn with_password(url: &str) -> String {
    url.replacen(
        &format!("{}@", Cluster::USER),
        &format!("{}:{}@", Cluster::USER, Cluster::PASSWORD),
        1,
    )
}

fn holder(command: &str) -> HolderInfo {
    HolderInfo {
        command: command.to_string(),
        ..HolderInfo::current()
    }
}

/// The lock rules, the same on either store: environments apart, one
/// holder per environment, project-wide commands exclusive of all.
fn lock_rules(location: &StateLocation) {
    let short = Duration::from_millis(300);
    let staging = ProjectLock::acquire_env_at(
        location,
        "staging",
        Duration::ZERO,
        &holder("soar deploy --env staging"),
    )
    .unwrap();
    // Another environment proceeds at once.
    let production = ProjectLock::acquire_env_at(
        location,
        "production",
        Duration::ZERO,
        &holder("soar deploy --env production"),
    )
    .expect("a second environment must not wait for the first");

    // A second command on staging waits, then names staging's holder.
    let started = Instant::now();
    let err = ProjectLock::acquire_env_at(location, "staging", short, &holder("soar destroy"))
        .unwrap_err();
    assert!(started.elapsed() >= short);
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        message.starts_with(&format!("another soar (pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("`soar deploy --env staging`"), "{message}");
    assert!(message.contains("holds the project lock"), "{message}");
    assert!(message.contains("for environment `staging`"), "{message}");
    assert!(!message.contains(Cluster::PASSWORD), "{message}");

    // A command spanning every environment waits for both, naming one.
    let err = ProjectLock::acquire_at(location, short, &holder("soar state push")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`soar deploy --env "), "{message}");
    assert!(message.contains("raise --lock-timeout"), "{message}");

    drop(staging);
    drop(production);
    let all = ProjectLock::acquire_at(location, Duration::ZERO, &holder("soar state push"))
        .expect("free once both environments let go");
    // ... and keeps environment commands out while it runs.
    let err = ProjectLock::acquire_env_at(location, "staging", short, &holder("soar deploy"))
        .unwrap_err();
    assert!(err.to_string().contains("`soar state push`"), "{err}");
    drop(all);
    drop(
        ProjectLock::acquire_env_at(location, "staging", Duration::ZERO, &holder("soar deploy"))
            .unwrap(),
    );
}

#[test]
fn environments_lock_apart_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(".soar");
    lock_rules(&StateLocation::Local { dir: soar.clone() });
    // Nothing held, no description left behind.
    assert!(ProjectLock::env_holders(&soar).is_empty());
    assert!(!soar.join("lock.env-staging.info").exists());
    // An environment name never leaves `.soar/` or aliases another file.
    for bad in ["../x", "a/b", "", "Staging", "x.info", "-x"] {
        let err = ProjectLock::acquire_env(&soar, bad, Duration::ZERO, &holder("soar deploy"))
            .unwrap_err();
        assert!(
            err.to_string().contains("is not an environment name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn environments_lock_apart_on_postgres() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("envlocks");
    let location = StateLocation::Postgres {
        url: with_password(&url),
        project: "app".into(),
        from_config: false,
    };
    lock_rules(&location);
    let store = StateStore::open_at(&location).unwrap();
    assert!(store.lock_holders().unwrap().is_empty());
}

/// A pre-deploy hook that holds only staging's deploy until
/// `hook-release` exists (see GATE in remote.rs).
const GATE: &str = r#"if [ "$SOAR_ENV" = staging ]; then touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done; fi"#;

/// The e2e project with two environments, `dev` and `staging`, staging's
/// deploy gated; `state` is an extra `[state]` table (or nothing).
fn two_environments(state: &str) -> Project {
    let extra = format!(
        "[hooks]\npre_deploy = '{GATE}'\ntimeout = \"300s\"\n\n{state}\n[env.staging]\nprovider = \"local\"\n\n"
    );
    Project::new(&soar_toml("20s", &extra), "v1")
}

/// Staging's deploy held at its hook while dev deploys and finishes; a
/// second staging deploy waits and names the first; history shows the held
/// deploy running; then it finishes.
fn deploy_side_by_side(p: &mut Project, place: &str) {
    let gated = p.spawn(&["deploy", "--env", "staging", "--yes"]);
    let holder = p.pid(gated);
    let started = p.root.join("hook-started");
    assert!(
        wait_until(Duration::from_secs(120), || started.exists()
            || p.has_exited(gated)),
        "the staging deploy never reached its hook"
    );
    assert!(started.exists(), "{}", p.wait(gated).show());

    // dev deploys and finishes while staging is held.
    let began = Instant::now();
    p.soar(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "1s"])
        .ok();
    eprintln!(
        "dev deployed in {:.2}s while staging was held",
        began.elapsed().as_secs_f64()
    );

    // A second staging deploy waits, then names the first.
    let run = p
        .soar(&[
            "deploy",
            "--env",
            "staging",
            "--yes",
            "--lock-timeout",
            "1s",
        ])
        .expect_code(1);
    assert!(run.stderr.contains(place), "{}", run.show());
    assert!(
        run.stderr.contains("for environment `staging`"),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.contains(&format!("pid {holder}")),
        "{}",
        run.show()
    );
    assert!(!run.stderr.contains(Cluster::PASSWORD), "{}", run.show());

    // History: staging running (not interrupted), dev ok.
    let history = p.history();
    let of = |env: &str| {
        history
            .iter()
            .find(|d| d["env"] == env)
            .unwrap_or_else(|| panic!("no {env} deploy in {history:?}"))
            .clone()
    };
    assert_eq!(of("staging")["status"], "running", "{history:?}");
    assert_eq!(of("dev")["status"], "ok", "{history:?}");

    // `soar lock status` names the staging holder.
    let status = p.soar(&["lock", "status"]).ok();
    assert!(
        status
            .stdout
            .contains(&format!("environment `staging`: held by pid {holder}")),
        "{}",
        status.show()
    );

    p.write("hook-release", "");
    p.wait(gated).ok();
    let history = p.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|d| d["status"] == "ok"), "{history:?}");
    let status = p.soar(&["lock", "status"]).ok();
    assert!(status.stdout.contains("free"), "{}", status.show());
    for env in ["staging", "dev"] {
        p.soar(&["destroy", "--env", env, "--yes"]).ok();
    }
}

#[test]
fn two_environments_deploy_at_once_on_files() {
    let mut p = two_environments("");
    deploy_side_by_side(&mut p, "holds the project lock in ");
}

#[test]
fn two_environments_deploy_at_once_on_postgres() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("envdeploys");
    let mut p = two_environments(&format!("[state]\nurl = \"{url}\"\n"));
    std::fs::write(
        p.tmp().join("home").join(".pgpass"),
        format!("127.0.0.1:*:*:{}:{}\n", Cluster::USER, Cluster::PASSWORD),
    )
    .unwrap();
    deploy_side_by_side(&mut p, "holds the project lock of `e2e-app` in postgres://");
    assert!(!p.root.join(".soar").join("state.db").exists());
}
