//! The state store's behaviour, one set of cases for both backends.
//!
//! Each case takes a fresh, empty [`StateStore`] and uses only its public
//! API. The SQLite backend runs them as unit tests (`state::tests`); the
//! integration binary includes this file (`#[path]`) and runs them against
//! a real PostgreSQL server (`state_pg::store_cases_on_postgres`). Cases
//! that need to reach under the API (raw SQL) live with each backend.
//!
//! The includer must have the `soar::state` items in scope (`use
//! super::*` picks them up) and `serde_json::json`.

use super::*;

/// One case: checks the behaviour of a fresh, empty store.
pub type Case = fn(&StateStore);

/// Every case, by name, for a runner that opens one store per case.
pub const CASES: &[(&str, Case)] = &[
    (
        "serial_bumps_on_every_mutation_per_env",
        serial_bumps_on_every_mutation_per_env,
    ),
    ("stale_plan_is_refused", stale_plan_is_refused),
    (
        "resources_round_trip_sorted_by_kind_and_name",
        resources_round_trip_sorted_by_kind_and_name,
    ),
    (
        "activate_release_supersedes_the_previous_one_atomically",
        activate_release_supersedes_the_previous_one_atomically,
    ),
    (
        "history_is_newest_first_with_phases_in_order",
        history_is_newest_first_with_phases_in_order,
    ),
    (
        "events_are_recorded_in_order_and_bounded",
        events_are_recorded_in_order_and_bounded,
    ),
    (
        "latest_is_the_newest_record_of_the_envs_and_commands",
        latest_is_the_newest_record_of_the_envs_and_commands,
    ),
];

pub fn resource(env: &str, kind: &str, name: &str) -> ResourceRecord {
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

pub fn release(env: &str, id: &str, created_at: i64) -> ReleaseRecord {
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

pub fn serial_bumps_on_every_mutation_per_env(store: &StateStore) {
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

pub fn stale_plan_is_refused(store: &StateStore) {
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

pub fn resources_round_trip_sorted_by_kind_and_name(store: &StateStore) {
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

pub fn activate_release_supersedes_the_previous_one_atomically(store: &StateStore) {
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

pub fn latest_is_the_newest_record_of_the_envs_and_commands(store: &StateStore) {
    let deploying = ["deploy", "rollback", "destroy"];
    assert!(store.latest(&["prod"], &deploying).unwrap().is_none());
    let deploy = store.begin_deploy("prod", "deploy", "alice").unwrap();
    let latest = store.latest(&["prod"], &deploying).unwrap().unwrap();
    assert_eq!(latest.id, deploy);
    // Begun by this process and not finished: running.
    assert_eq!(latest.status, DeployStatus::Running);
    // Newer records of other commands and other environments do not count.
    let monitor = store.begin_deploy("prod", "monitor", "alice").unwrap();
    store
        .finish_deploy(monitor, Outcome::Failed, "down")
        .unwrap();
    let other = store.begin_deploy("staging", "deploy", "bob").unwrap();
    store.finish_deploy(other, Outcome::Ok, "").unwrap();
    store
        .finish_deploy(deploy, Outcome::Ok, "deployed")
        .unwrap();
    let latest = store.latest(&["prod"], &deploying).unwrap().unwrap();
    assert_eq!((latest.id, latest.status), (deploy, DeployStatus::Ok));
    assert!(latest.phases.is_empty());
    let both = store
        .latest(&["prod", "staging"], &deploying)
        .unwrap()
        .unwrap();
    assert_eq!(both.id, other);
    assert!(store.latest(&[], &deploying).unwrap().is_none());
}

pub fn history_is_newest_first_with_phases_in_order(store: &StateStore) {
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

pub fn events_are_recorded_in_order_and_bounded(store: &StateStore) {
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
