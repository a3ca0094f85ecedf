//! `soar state push` / `soar state pull` against a real throw-away
//! PostgreSQL server ([`Cluster`]): a project deployed with local state
//! moves into the database and back, and `status`, `history` and `plan`
//! answer the same on either side.

use serde_json::Value;

use crate::support::e2e::{Mode, Project, soar_toml};
use crate::support::postgres::Cluster;

/// A project with local state, its `~/.pgpass` pointing at the cluster.
fn project() -> Project {
    let p = Project::new(&soar_toml("10s", ""), "v1");
    std::fs::write(
        p.tmp().join("home").join(".pgpass"),
        format!("127.0.0.1:*:*:{}:{}\n", Cluster::USER, Cluster::PASSWORD),
    )
    .unwrap();
    p
}

/// `soar history --json` without the deploy ids (the receiving store hands
/// out its own) and with the status as derived there.
fn history(p: &Project, state: Option<&str>) -> Vec<Value> {
    let mut args = vec!["history", "--json"];
    if let Some(url) = state {
        args = vec!["--state", url, "history", "--json"];
    }
    let run = p.soar(&args).ok();
    run.json_lines()
        .into_iter()
        .map(|mut d| {
            d.as_object_mut().unwrap().remove("id");
            d
        })
        .collect()
}

/// `soar status --json`, on the project's local state or on `state`.
fn status(p: &Project, state: Option<&str>) -> Value {
    let mut args = vec!["status", "--json"];
    if let Some(url) = state {
        args = vec!["--state", url, "status", "--json"];
    }
    p.soar(&args).ok().json_lines().remove(0)
}

#[test]
fn push_then_status_history_and_plan_answer_the_same_on_postgres() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("push");
    let p = project();
    p.soar(&["deploy", "--yes"]).ok();
    p.write_app("v2", Mode::Healthy);
    p.soar(&["deploy", "--yes"]).ok();
    let (local_history, local_status) = (history(&p, None), status(&p, None));
    assert_eq!(local_history.len(), 2, "{local_history:?}");

    let run = p.soar(&["state", "push", &url]).ok();
    eprintln!("{}", run.stdout.trim());
    assert!(
        run.stdout.contains("2 deploys") && run.stdout.contains("2 releases"),
        "{}",
        run.show()
    );
    assert!(!run.show().contains(Cluster::PASSWORD), "{}", run.show());
    assert_eq!(history(&p, Some(&url)), local_history);
    assert_eq!(status(&p, Some(&url)), local_status);
    let plan = p.soar(&["--state", &url, "plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "nothing to change\n{}", plan.show());
    // Deploying on PostgreSQL carries on from the pushed state.
    p.write_app("v3", Mode::Healthy);
    p.soar(&["--state", &url, "deploy", "--yes"]).ok();
    assert_eq!(history(&p, Some(&url)).len(), 3);
    assert_eq!(history(&p, None).len(), 2, "the local state is untouched");

    // The database now has this project: refused, then replaced.
    let refused = p.soar(&["state", "push", &url]).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("already holds state for this project")
            && refused.stderr.contains("--force"),
        "{}",
        refused.show()
    );
    assert_eq!(history(&p, Some(&url)).len(), 3, "nothing was copied");
    p.soar(&["state", "push", "--force", &url]).ok();
    assert_eq!(history(&p, Some(&url)), local_history);
}

#[test]
fn pull_round_trips_and_refuses_a_non_empty_local_store() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("pull");
    let p = project();
    p.soar(&["deploy", "--yes"]).ok();
    let before = history(&p, None);
    p.soar(&["state", "push", &url]).ok();

    // A second checkout with no state pulls the project's state.
    let other = project();
    let run = other.soar(&["state", "pull", &url]).ok();
    assert!(run.stdout.contains("1 deploy,"), "{}", run.show());
    assert_eq!(history(&other, None), before);

    // The first checkout's local state is not empty: refused, then forced.
    let refused = p.soar(&["state", "pull", &url]).expect_code(1);
    assert!(
        refused.stderr.contains("already holds state") && refused.stderr.contains("--force"),
        "{}",
        refused.show()
    );
    p.soar(&["--state", &url, "deploy", "--yes"]).ok();
    // Without a URL, pull reads the project's own database (here --state).
    p.soar(&["--state", &url, "state", "pull", "--force"]).ok();
    let after = history(&p, None);
    assert_eq!(after, history(&p, Some(&url)));
    assert_eq!(after.len(), 2, "{after:?}");
    let plan = p.soar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "nothing to change\n{}", plan.show());
}
