//! Team state on PostgreSQL, against a real throw-away server
//! ([`Cluster`]): the store's shared cases, the lock across processes, and
//! the `soar` binary from two checkouts of one project.

use std::time::{Duration, Instant};

use serde_json::json;
use soar::state::*;

use crate::support::e2e::{Project, soar_toml, wait_until};
use crate::support::postgres::Cluster;

#[path = "../../src/state/cases.rs"]
mod cases;

/// A store on a fresh database of `cluster`, for project `app`.
fn open(url: &str, project: &str) -> StateStore {
    let location = StateLocation::Postgres {
        url: with_password(url),
        project: project.to_string(),
        from_config: false,
    };
    StateStore::open_at(&location).unwrap_or_else(|e| panic!("opening {url}: {e:#}"))
}

/// The tests share one process environment, so the password goes in the
/// URL (allowed outside soar.toml) rather than in `PGPASSWORD`.
fn with_password(url: &str) -> String {
    url.replacen(
        &format!("{}@", Cluster::USER),
        &format!("{}:{}@", Cluster::USER, Cluster::PASSWORD),
        1,
    )
}

/// The SQLite store's cases, each on a fresh PostgreSQL database: one set
/// of tests, two backends.
#[test]
fn store_cases_on_postgres() {
    let cluster = Cluster::start();
    for (name, case) in cases::CASES {
        let url = cluster.fresh_database("cases");
        let store = open(&url, "app");
        eprintln!("case {name} on {url}");
        case(&store);
    }
}

/// Two projects in one database never see each other's rows.
#[test]
fn projects_sharing_a_database_stay_apart() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("shared");
    let a = open(&url, "alpha");
    let b = open(&url, "beta");
    a.upsert_resource(&cases::resource("prod", "vm", "web"))
        .unwrap();
    let d = a.begin_deploy("prod", "deploy", "alice").unwrap();
    a.finish_deploy(d, Outcome::Ok, "done").unwrap();
    assert_eq!(a.serial("prod").unwrap(), 1);
    assert_eq!(b.serial("prod").unwrap(), 0);
    assert!(b.resources("prod").unwrap().is_empty());
    assert!(b.history(None, 10).unwrap().is_empty());
    assert!(b.deploy(d).unwrap().is_none());
    assert!(b.envs().unwrap().is_empty());
    // A second checkout of alpha meets the first one's state.
    let a2 = open(&url, "alpha");
    assert_eq!(a2.resources("prod").unwrap().len(), 1);
    assert_eq!(a2.history(None, 10).unwrap()[0].id, d);
}

/// The advisory lock excludes a second holder, names the first, and is
/// free again once the first lets go.
#[test]
fn the_lock_names_its_holder_and_frees_on_drop() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("lock");
    let location = StateLocation::Postgres {
        url: with_password(&url),
        project: "app".into(),
        from_config: false,
    };
    let first = HolderInfo {
        command: "soar deploy --env staging".into(),
        ..HolderInfo::current()
    };
    let held = ProjectLock::acquire_at(&location, Duration::ZERO, &first).unwrap();
    let started = Instant::now();
    let err = ProjectLock::acquire_at(&location, Duration::from_millis(300), &first).unwrap_err();
    eprintln!("waited {:?}: {err}", started.elapsed());
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("another soar (pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("`soar deploy --env staging`"), "{message}");
    assert!(
        message.contains("holds the project lock of `app` in postgres://"),
        "{message}"
    );
    assert!(!message.contains(Cluster::PASSWORD), "{message}");
    assert!(message.contains("raise --lock-timeout"), "{message}");
    assert_eq!(
        ProjectLock::holder_at(&location).unwrap().unwrap().command,
        "soar deploy --env staging"
    );
    // Another project in the same database is not blocked.
    let other = StateLocation::Postgres {
        url: with_password(&url),
        project: "other".into(),
        from_config: false,
    };
    drop(ProjectLock::acquire_at(&other, Duration::ZERO, &first).unwrap());
    drop(held);
    assert!(ProjectLock::holder_at(&location).unwrap().is_none());
    ProjectLock::acquire_at(&location, Duration::ZERO, &first).unwrap();
}

/// A database migrated by a newer soar is refused, naming both versions.
#[test]
fn a_newer_database_is_refused() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("newer");
    drop(open(&url, "app"));
    let mut client = postgres::Client::connect(&with_password(&url), postgres::NoTls).unwrap();
    let newer = i32::try_from(PG_SCHEMA_VERSION + 1).unwrap();
    client
        .execute("UPDATE soar.meta SET version = $1", &[&newer])
        .unwrap();
    let location = StateLocation::Postgres {
        url: with_password(&url),
        project: "app".into(),
        from_config: false,
    };
    let err = format!("{:#}", StateStore::open_at(&location).unwrap_err());
    assert!(err.contains("newer soar"), "{err}");
    assert!(err.contains(&format!("v{newer}")), "{err}");
    assert!(!err.contains(Cluster::PASSWORD), "{err}");
}

/// A wrong password, TLS the server cannot give, and a server that is not
/// there are one clear line each.
#[test]
fn connection_failures_are_one_clear_line() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("errors");
    let wrong = url.replacen(
        &format!("{}@", Cluster::USER),
        &format!("{}:not-the-password@", Cluster::USER),
        1,
    );
    let err = open_err(&wrong);
    eprintln!("wrong password: {err}");
    assert!(err.contains("refused the password of user `soar`"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The test server has no certificate: TLS required is refused clearly.
    let err = open_err(&with_password(&url).replace("sslmode=disable", "sslmode=require"));
    eprintln!("TLS required: {err}");
    assert!(err.contains("TLS"), "{err}");
    assert!(err.contains("sslmode"), "{err}");
    assert!(!err.contains(Cluster::PASSWORD), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    drop(cluster);
    let err = open_err(&with_password(&url));
    eprintln!("no server: {err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

fn open_err(url: &str) -> String {
    let location = StateLocation::Postgres {
        url: url.to_string(),
        project: "app".into(),
        from_config: false,
    };
    format!("{:#}", StateStore::open_at(&location).unwrap_err())
}

// ---------------------------------------------------------------------------
// The `soar` binary: two checkouts of one project ("two laptops") sharing
// one database.
// ---------------------------------------------------------------------------

/// A pre-deploy hook that holds the lock until `hook-release` exists.
const HOOK: &str = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";

/// A checkout of the e2e project with its state in `url`; the password
/// comes from a `~/.pgpass` in its sandbox HOME, as on a laptop.
fn checkout(url: &str, hook: bool) -> Project {
    let hooks = if hook {
        format!("[hooks]\npre_deploy = \"{HOOK}\"\n")
    } else {
        String::new()
    };
    let toml = soar_toml("10s", &format!("{hooks}\n[state]\nurl = \"{url}\"\n"));
    let p = Project::new(&toml, "v1");
    std::fs::write(
        p.tmp().join("home").join(".pgpass"),
        format!("127.0.0.1:*:*:{}:{}\n", Cluster::USER, Cluster::PASSWORD),
    )
    .unwrap();
    p
}

/// Wait for the spawned deploy `index` of `p` to reach its hook.
fn wait_for_hook(p: &mut Project, index: usize) {
    let started = p.root.join("hook-started");
    assert!(
        wait_until(Duration::from_secs(60), || started.exists()
            || p.has_exited(index)),
        "the deploy never reached its pre_deploy hook"
    );
    assert!(started.exists(), "{}", p.wait(index).show());
}

#[test]
fn two_checkouts_share_one_lock_one_history_and_one_state() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("laptops");
    let mut alice = checkout(&url, true);
    let bob = checkout(&url, true);
    bob.write("hook-release", "");

    let first = alice.spawn(&["deploy", "--yes"]);
    let holder = alice.pid(first);
    wait_for_hook(&mut alice, first);
    // Bob's deploy waits for Alice's, then names her.
    let run = bob
        .soar(&["deploy", "--yes", "--lock-timeout", "1s"])
        .expect_code(1);
    assert!(
        run.stderr
            .contains("holds the project lock of `e2e-app` in postgres://"),
        "{}",
        run.show()
    );
    assert!(
        run.stderr.contains(&format!("pid {holder}")),
        "{}",
        run.show()
    );
    assert!(!run.stderr.contains(Cluster::PASSWORD), "{}", run.show());
    let status = bob.soar(&["lock", "status"]).ok();
    assert!(
        status.stdout.contains(&format!("held by pid {holder}")),
        "{}",
        status.show()
    );

    alice.write("hook-release", "");
    alice.wait(first).ok();
    bob.soar(&["deploy", "--yes", "--lock-timeout", "5s"]).ok();
    for p in [&alice, &bob] {
        let history = p.history();
        assert_eq!(history.len(), 2, "{history:?}");
        assert!(history.iter().all(|d| d["status"] == "ok"), "{history:?}");
    }
    // Bob's plan starts from what was deployed: nothing to change.
    let plan = bob.soar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{}", plan.show());
    assert!(!alice.root.join(".soar").join("state.db").exists());
}

#[test]
fn a_sigkilled_holder_frees_the_lock_at_once() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("sigkill");
    let mut alice = checkout(&url, true);
    let bob = checkout(&url, true);
    bob.write("hook-release", "");

    let first = alice.spawn(&["deploy", "--yes"]);
    wait_for_hook(&mut alice, first);
    alice.kill(first);
    alice.write("hook-release", "");
    let started = Instant::now();
    let run = bob.soar(&["deploy", "--yes", "--lock-timeout", "20s"]).ok();
    eprintln!(
        "after SIGKILL of the holder, the next deploy took {:.2}s in all",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !run.stderr.contains("holds the project lock"),
        "{}",
        run.show()
    );
    let history = bob.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["status"], "ok", "{history:?}");
    assert_eq!(history[1]["status"], "interrupted", "{history:?}");
    // Re-running converges: nothing left to change.
    let plan = bob.soar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{}", plan.show());
}

/// Figures, not asserts: round trips and wall time of a no-op `soar plan`
/// on PostgreSQL (loopback), against the same plan on SQLite.
#[test]
fn no_op_plan_cost_on_postgres_over_sqlite() {
    const RUNS: u32 = 5;
    let cluster = Cluster::start();
    let url = cluster.fresh_database("bench");
    let pg = checkout(&url, false);
    pg.soar(&["deploy", "--yes"]).ok();
    let local = Project::new(&soar_toml("10s", ""), "v1");
    local.soar(&["deploy", "--yes"]).ok();
    let time = |p: &Project| {
        p.soar(&["plan"]).ok();
        let started = Instant::now();
        for _ in 0..RUNS {
            p.soar(&["plan"]).ok();
        }
        started.elapsed() / RUNS
    };
    let before = cluster.statements();
    pg.soar(&["plan"]).ok();
    let round_trips = cluster.statements() - before;
    let (on_pg, on_sqlite) = (time(&pg), time(&local));
    eprintln!(
        "no-op soar plan: {round_trips} statements to PostgreSQL; {:.1} ms on PostgreSQL, {:.1} ms on SQLite, {:+.1} ms added (mean of {RUNS})",
        on_pg.as_secs_f64() * 1e3,
        on_sqlite.as_secs_f64() * 1e3,
        (on_pg.as_secs_f64() - on_sqlite.as_secs_f64()) * 1e3
    );
}

/// The announcement lease: one holder per project; a holder whose session
/// the server ended gives it up and tries again.
#[test]
fn one_monitor_announces_per_project() {
    let cluster = Cluster::start();
    let url = with_password(&cluster.fresh_database("lease"));
    let at = |project: &str| StateLocation::Postgres {
        url: url.clone(),
        project: project.into(),
        from_config: false,
    };
    let mut first = AnnounceLease::new(at("web"));
    let mut second = AnnounceLease::new(at("web"));
    let mut other = AnnounceLease::new(at("api"));
    assert!(first.holds().unwrap());
    assert!(!second.holds().unwrap(), "two holders of one project");
    assert!(other.holds().unwrap(), "projects stay apart");

    // The server ends the holder's session (a cut network, say): the
    // lease is free, and the holder notices and takes it again.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let ended: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ended >= 1, "the holders' sessions were ended");
    assert!(
        first.holds().unwrap(),
        "taken afresh after its session ended"
    );
    assert!(!second.holds().unwrap());
    drop(first);
    assert!(second.holds().unwrap(), "freed with its holder");
}
