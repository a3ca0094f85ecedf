//! Unit tests of the state store, each against a fresh temporary `.soar`.

use std::time::Duration;

use serde_json::json;

use super::*;

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join(STATE_DIR)).unwrap();
    (dir, store)
}

fn resource(env: &str, kind: &str, name: &str) -> ResourceRecord {
    ResourceRecord {
        env: env.into(),
        provider: "local".into(),
        kind: kind.into(),
        name: name.into(),
        id: Some(format!("{kind}-{name}-1")),
        attributes: json!({ "port": 8080, "name": name }),
        updated_at: 1_700_000_000_000,
    }
}

fn release(env: &str, id: &str, created_at: i64) -> ReleaseRecord {
    ReleaseRecord {
        env: env.into(),
        id: id.into(),
        artifact_digest: format!("sha256:{id}"),
        status: ReleaseStatus::Pending,
        created_at,
        activated_at: None,
        detail: None,
    }
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
    let mode: String = a
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = a
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    assert!(soar.join(DB_FILE).exists());
}

#[test]
fn serial_bumps_on_every_mutation_per_env() {
    let (_dir, store) = store();
    assert_eq!(store.serial("prod").unwrap(), 0);
    store
        .upsert_resource(&resource("prod", "vm", "web"))
        .unwrap();
    assert_eq!(store.serial("prod").unwrap(), 1);
    // An update is a mutation too.
    store
        .upsert_resource(&resource("prod", "vm", "web"))
        .unwrap();
    assert_eq!(store.serial("prod").unwrap(), 2);
    // Other environments are independent.
    store
        .upsert_resource(&resource("staging", "vm", "web"))
        .unwrap();
    assert_eq!(store.serial("prod").unwrap(), 2);
    assert_eq!(store.serial("staging").unwrap(), 1);
    // Removing nothing changes nothing.
    assert!(!store.remove_resource("prod", "vm", "nope").unwrap());
    assert_eq!(store.serial("prod").unwrap(), 2);
    assert!(store.remove_resource("prod", "vm", "web").unwrap());
    assert_eq!(store.serial("prod").unwrap(), 3);
    // Releases bump it as well.
    store.insert_release(&release("prod", "r1", 1)).unwrap();
    assert_eq!(store.serial("prod").unwrap(), 4);
    store.activate_release("prod", "r1").unwrap();
    assert_eq!(store.serial("prod").unwrap(), 5);
    // Re-activating the active release is a no-op.
    store.activate_release("prod", "r1").unwrap();
    assert_eq!(store.serial("prod").unwrap(), 5);
    store
        .set_release_status("prod", "r1", ReleaseStatus::Failed, Some("health check"))
        .unwrap();
    assert_eq!(store.serial("prod").unwrap(), 6);
    // The audit trail does not: it does not change what a plan acts on.
    let d = store.begin_deploy("prod", "deploy", "alice").unwrap();
    store.finish_deploy(d, Outcome::Ok, "done").unwrap();
    assert_eq!(store.serial("prod").unwrap(), 6);
    assert_eq!(
        store.envs().unwrap(),
        vec!["prod".to_string(), "staging".to_string()]
    );
}

#[test]
fn stale_plan_is_refused() {
    let (_dir, store) = store();
    let planned = store.serial("prod").unwrap();
    store.check_serial("prod", planned).unwrap();
    store
        .upsert_resource(&resource("prod", "vm", "web"))
        .unwrap();
    let err = store.check_serial("prod", planned).unwrap_err();
    let stale = err.downcast_ref::<StalePlan>().unwrap();
    assert_eq!((stale.planned, stale.current), (0, 1));
    assert!(err.to_string().contains("soar plan"), "{err}");
}

#[test]
fn resources_round_trip_sorted_by_kind_and_name() {
    let (_dir, store) = store();
    for (kind, name) in [("vm", "b"), ("dns", "z"), ("vm", "a")] {
        store
            .upsert_resource(&resource("prod", kind, name))
            .unwrap();
    }
    let mut updated = resource("prod", "vm", "a");
    updated.id = None;
    updated.attributes = json!({ "size": "s-1vcpu-1gb", "tags": ["x"] });
    updated.updated_at = 1_800_000_000_000;
    store.upsert_resource(&updated).unwrap();

    let all = store.resources("prod").unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(keys, [("dns", "z"), ("vm", "a"), ("vm", "b")]);
    assert_eq!(all[1], updated);
    assert!(store.resources("staging").unwrap().is_empty());
    // Serializes for --json.
    let value = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(value["kind"], "dns");
}

#[test]
fn activate_release_supersedes_the_previous_one_atomically() {
    let (_dir, store) = store();
    store.insert_release(&release("prod", "r1", 1_000)).unwrap();
    store.insert_release(&release("prod", "r2", 2_000)).unwrap();
    store.insert_release(&release("prod", "r3", 3_000)).unwrap();
    assert!(store.active_release("prod").unwrap().is_none());

    store.activate_release("prod", "r1").unwrap();
    store.activate_release("prod", "r2").unwrap();
    let active = store.active_release("prod").unwrap().unwrap();
    assert_eq!(active.id, "r2");
    assert!(active.activated_at.is_some());

    let statuses: Vec<_> = store
        .releases("prod")
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("r3".to_string(), ReleaseStatus::Pending),
            ("r2".to_string(), ReleaseStatus::Active),
            ("r1".to_string(), ReleaseStatus::Superseded),
        ]
    );

    // Activating through set_release_status is the same operation.
    store
        .set_release_status("prod", "r3", ReleaseStatus::Active, None)
        .unwrap();
    assert_eq!(store.active_release("prod").unwrap().unwrap().id, "r3");
    assert_eq!(
        store.release("prod", "r2").unwrap().unwrap().status,
        ReleaseStatus::Superseded
    );

    // Rollback: the active one is marked rolled back, the target active.
    store
        .rollback_release("prod", "r2", Some("r3 failed its health check"))
        .unwrap();
    assert_eq!(store.active_release("prod").unwrap().unwrap().id, "r2");
    let r3 = store.release("prod", "r3").unwrap().unwrap();
    assert_eq!(r3.status, ReleaseStatus::RolledBack);
    assert_eq!(r3.detail.as_deref(), Some("r3 failed its health check"));

    // Inserting an already-active release supersedes too; never two active.
    let mut r4 = release("prod", "r4", 4_000);
    r4.status = ReleaseStatus::Active;
    store.insert_release(&r4).unwrap();
    let active: Vec<_> = store
        .releases("prod")
        .unwrap()
        .into_iter()
        .filter(|r| r.status == ReleaseStatus::Active)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, "r4");

    // Unknown releases are errors, and a failed operation changes nothing.
    let serial = store.serial("prod").unwrap();
    assert!(store.activate_release("prod", "nope").is_err());
    assert!(
        store
            .set_release_status("prod", "nope", ReleaseStatus::Failed, None)
            .is_err()
    );
    assert_eq!(store.serial("prod").unwrap(), serial);
    assert_eq!(store.active_release("prod").unwrap().unwrap().id, "r4");
    // Other environments keep their own active release.
    store.insert_release(&release("staging", "r1", 1)).unwrap();
    store.activate_release("staging", "r1").unwrap();
    assert_eq!(store.active_release("prod").unwrap().unwrap().id, "r4");
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
fn history_is_newest_first_with_phases_in_order() {
    let (_dir, store) = store();
    let first = store.begin_deploy("prod", "deploy", "alice").unwrap();
    store
        .record_phase(first, Phase::Validate, 10, 5, Outcome::Ok, "")
        .unwrap();
    store
        .record_phase(first, Phase::Build, 15, 1200, Outcome::Ok, "cargo build")
        .unwrap();
    store
        .record_phase(
            first,
            Phase::VerifyHealth,
            1300,
            30_000,
            Outcome::Failed,
            "GET /health: 503",
        )
        .unwrap();
    store
        .record_phase(first, Phase::Rollback, 31_300, 800, Outcome::Ok, "")
        .unwrap();
    store
        .finish_deploy(first, Outcome::Failed, "health check failed; rolled back")
        .unwrap();
    let second = store.begin_deploy("staging", "destroy", "bob").unwrap();
    store
        .record_phase(second, Phase::Apply, 0, 7, Outcome::Ok, "")
        .unwrap();
    store
        .finish_deploy(second, Outcome::Ok, "destroyed")
        .unwrap();
    let third = store.begin_deploy("prod", "rollback", "alice").unwrap();
    store
        .finish_deploy(third, Outcome::Skipped, "nothing to roll back")
        .unwrap();

    let all = store.history(None, 10).unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(ids, [third, second, first]);

    let prod = store.history(Some("prod"), 10).unwrap();
    assert_eq!(prod.len(), 2);
    assert_eq!(prod[0].status, DeployStatus::Skipped);
    let d = &prod[1];
    assert_eq!(d.status, DeployStatus::Failed);
    assert_eq!((d.command.as_str(), d.actor.as_str()), ("deploy", "alice"));
    assert_eq!(d.pid, std::process::id());
    assert!(d.finished_at.is_some() && d.duration_ms.is_some());
    let phases: Vec<_> = d.phases.iter().map(|p| (p.phase, p.outcome)).collect();
    assert_eq!(
        phases,
        [
            (Phase::Validate, Outcome::Ok),
            (Phase::Build, Outcome::Ok),
            (Phase::VerifyHealth, Outcome::Failed),
            (Phase::Rollback, Outcome::Ok),
        ]
    );
    assert_eq!(d.phases[1].duration_ms, 1200);
    assert_eq!(d.phases[2].detail, "GET /health: 503");

    assert_eq!(store.history(None, 1).unwrap().len(), 1);
    assert_eq!(store.deploy(second).unwrap().unwrap().env, "staging");
    assert!(store.deploy(DeployId(9999)).unwrap().is_none());

    // --json shape.
    let value = serde_json::to_value(&prod[1]).unwrap();
    assert_eq!(value["status"], "failed");
    assert_eq!(value["id"], first.0);
    assert_eq!(value["phases"][2]["phase"], "verify-health");
    assert_eq!(value["phases"][2]["outcome"], "failed");

    // Finishing twice, or an unknown deploy, is an error.
    assert!(store.finish_deploy(first, Outcome::Ok, "").is_err());
    assert!(
        store
            .finish_deploy(DeployId(9999), Outcome::Ok, "")
            .is_err()
    );
    assert!(
        store
            .record_phase(DeployId(9999), Phase::Plan, 0, 0, Outcome::Ok, "")
            .is_err()
    );
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
fn events_are_recorded_in_order_and_bounded() {
    let (_dir, store) = store();
    let d = store.begin_deploy("prod", "deploy", "alice").unwrap();
    store
        .record_event(d, &json!({ "resource": "vm/web", "outcome": "created" }))
        .unwrap();
    let huge = "x".repeat(MAX_EVENT_BYTES * 2);
    store.record_event(d, &json!({ "log": huge })).unwrap();
    let events = store.events(d).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].event["resource"], "vm/web");
    assert_eq!(events[1].event["truncated"], true);
    assert!(events[1].event.to_string().len() <= MAX_EVENT_BYTES + 64);
    assert!(store.record_event(DeployId(9999), &json!({})).is_err());
}

#[test]
fn events_past_the_cap_are_counted_not_kept() {
    let (_dir, store) = store();
    let d = store.begin_deploy("prod", "deploy", "alice").unwrap();
    // Fill up to the cap directly (fast), then overflow through the API.
    store
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
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = format!("{:#}", StateStore::open(&soar).unwrap_err());
    assert!(err.contains("newer soar"), "{err}");
}
