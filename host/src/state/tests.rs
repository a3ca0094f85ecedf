//! Unit tests of the state store, each against a fresh temporary `.soar`.

use std::time::Duration;

use serde_json::json;

use super::*;

#[path = "cases.rs"]
#[allow(
    dead_code,
    reason = "CASES is for the PostgreSQL runner; these tests call each case by name"
)]
mod cases;

use cases::resource;

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join(STATE_DIR)).unwrap();
    (dir, store)
}

#[test]
fn open_twice_is_idempotent_and_sets_crash_safe_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(STATE_DIR);
    {
        let store = StateStore::open(&soar).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store
            .upsert_resource(&resource("prod", "vm", "web"))
            .unwrap();
    }
    // Reopen (migrations must not re-run) while another handle is open too.
    let a = StateStore::open(&soar).unwrap();
    let b = StateStore::open(&soar).unwrap();
    assert_eq!(a.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(b.resources("prod").unwrap().len(), 1);
    assert_eq!(a.serial("prod").unwrap(), 1);
    let a_sqlite = a.sqlite().unwrap();
    let mode: String = a_sqlite
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = a_sqlite
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    assert!(soar.join(DB_FILE).exists());
}

#[test]
fn release_ids_sort_chronologically() {
    let a = new_release_id(1_795_342_500_000, "sha256:AB12CD34EF56");
    assert_eq!(a, "20261122T101500Z-ab12cd34");
    let b = new_release_id(1_795_342_501_000, "blake3:0000");
    assert_eq!(b, "20261122T101501Z-0000");
    let c = new_release_id(1_895_342_500_000, "");
    assert!(a < b && b < c, "{a} {b} {c}");
    assert!(c.ends_with("-00000000"));
}

#[test]
fn unfinished_deploy_is_running_in_its_process_and_interrupted_after() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(STATE_DIR);
    let store = StateStore::open(&soar).unwrap();
    let mine = store.begin_deploy("prod", "deploy", "alice").unwrap();
    assert_eq!(
        store.history(None, 10).unwrap()[0].status,
        DeployStatus::Running
    );

    // A deploy row written by another process (simulated: a different
    // process token and pid) that never finished, while nobody holds the
    // lock: its process died, so it was interrupted.
    store
        .sqlite()
        .unwrap()
        .conn
        .execute(
            "INSERT INTO deploys (env, command, actor, pid, host, proc_token, started_at, status)
             VALUES ('prod', 'deploy', 'bob', 4242, 'elsewhere', 'dead-token', 1, 'running')",
            [],
        )
        .unwrap();
    let history = store.history(Some("prod"), 10).unwrap();
    assert_eq!(history[0].status, DeployStatus::Interrupted);
    assert_eq!(history[0].actor, "bob");
    assert_eq!(history[1].id, mine);
    assert_eq!(history[1].status, DeployStatus::Running);
    let value = serde_json::to_value(&history[0]).unwrap();
    assert_eq!(value["status"], "interrupted");
    assert!(value["finished_at"].is_null());

    // While the live lock holder is that deploy's process, it is running.
    let holder = HolderInfo {
        pid: 4242,
        host: Some("elsewhere".into()),
        user: None,
        command: "soar deploy".into(),
        started_at: 0,
    };
    let lock = ProjectLock::acquire(&soar, Duration::ZERO, &holder).unwrap();
    // acquire stamps started_at = now; the row (started_at 1) predates it,
    // so a reused pid does not make the dead deploy look alive.
    assert_eq!(
        store.history(Some("prod"), 10).unwrap()[0].status,
        DeployStatus::Interrupted
    );
    store
        .sqlite()
        .unwrap()
        .conn
        .execute(
            "UPDATE deploys SET started_at = ?1 WHERE actor = 'bob'",
            [lock.holder().started_at + 1],
        )
        .unwrap();
    assert_eq!(
        store.history(Some("prod"), 10).unwrap()[0].status,
        DeployStatus::Running
    );
    drop(lock);
    assert_eq!(
        store.history(Some("prod"), 10).unwrap()[0].status,
        DeployStatus::Interrupted
    );

    // Once finished, the stored outcome wins.
    store.finish_deploy(mine, Outcome::Ok, "ok").unwrap();
    assert_eq!(
        store.deploy(mine).unwrap().unwrap().status,
        DeployStatus::Ok
    );
}

#[test]
fn events_past_the_cap_are_counted_not_kept() {
    let (_dir, store) = store();
    let d = store.begin_deploy("prod", "deploy", "alice").unwrap();
    // Fill up to the cap directly (fast), then overflow through the API.
    store
        .sqlite()
        .unwrap()
        .conn
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO events (deploy_id, seq, at, body) SELECT ?1, i, 0, '{}' FROM n",
            rusqlite::params![d.0, MAX_EVENTS_PER_DEPLOY as i64],
        )
        .unwrap();
    store.record_event(d, &json!({ "late": 1 })).unwrap();
    store.record_event(d, &json!({ "late": 2 })).unwrap();
    assert_eq!(store.events(d).unwrap().len() as u64, MAX_EVENTS_PER_DEPLOY);
    assert_eq!(store.history(None, 1).unwrap()[0].events_dropped, 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let soar = dir.path().join(STATE_DIR);
    {
        let store = StateStore::open(&soar).unwrap();
        store
            .sqlite()
            .unwrap()
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = format!("{:#}", StateStore::open(&soar).unwrap_err());
    assert!(err.contains("newer soar"), "{err}");
}

// The cases shared with the PostgreSQL backend (see `cases.rs`).

#[test]
fn serial_bumps_on_every_mutation_per_env() {
    let (_dir, store) = store();
    cases::serial_bumps_on_every_mutation_per_env(&store);
}

#[test]
fn stale_plan_is_refused() {
    let (_dir, store) = store();
    cases::stale_plan_is_refused(&store);
}

#[test]
fn resources_round_trip_sorted_by_kind_and_name() {
    let (_dir, store) = store();
    cases::resources_round_trip_sorted_by_kind_and_name(&store);
}

#[test]
fn activate_release_supersedes_the_previous_one_atomically() {
    let (_dir, store) = store();
    cases::activate_release_supersedes_the_previous_one_atomically(&store);
}

#[test]
fn history_is_newest_first_with_phases_in_order() {
    let (_dir, store) = store();
    cases::history_is_newest_first_with_phases_in_order(&store);
}

#[test]
fn latest_is_the_newest_record_of_the_envs_and_commands() {
    let (_dir, store) = store();
    cases::latest_is_the_newest_record_of_the_envs_and_commands(&store);
}

#[test]
fn events_are_recorded_in_order_and_bounded() {
    let (_dir, store) = store();
    cases::events_are_recorded_in_order_and_bounded(&store);
}
