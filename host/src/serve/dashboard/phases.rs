//! A job's progress as people read it: each event the deploy printed
//! (`soar deploy --json`) as a label and one line of detail, and the steps
//! a job goes through. `app.js` describes the events that arrive live the
//! same way (its `describe` mirrors [`describe`]); keep the two in step.

use serde_json::Value;

/// The steps of a deploy job, in order, as `data-step` names.
pub const DEPLOY_STEPS: &[(&str, &str)] = &[
    ("queued", "Queued"),
    ("running", "Running"),
    ("planned", "Planned"),
    ("rolled-out", "Healthy"),
    ("deployed", "Deployed"),
    ("finished", "Finished"),
];

/// The steps of a rollback job (its command prints text, not events).
pub const ROLLBACK_STEPS: &[(&str, &str)] = &[
    ("queued", "Queued"),
    ("running", "Running"),
    ("finished", "Finished"),
];

/// The step an event completes, if any.
pub fn step_of(event: &Value) -> Option<&'static str> {
    match event["type"].as_str()? {
        "change_summary" => Some("planned"),
        "rollout_done" => Some("rolled-out"),
        "deployed" => Some("deployed"),
        _ => None,
    }
}

/// `(label, detail)` of one event.
pub fn describe(event: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let kind = s(&event["type"]);
    let detail = match kind.as_str() {
        "planned_change" => {
            let c = &event["change"];
            format!("{} {} {}", s(&c["action"]), s(&c["kind"]), s(&c["name"]))
        }
        "change_summary" if event["no_changes"] == true => "no changes".into(),
        "change_summary" => {
            let c = &event["changes"];
            format!(
                "{} to add, {} to change, {} to destroy",
                c["add"], c["change"], c["destroy"]
            )
        }
        "rollout_start" => format!(
            "release {} to {} target(s)",
            s(&event["release"]),
            event["targets"]
        ),
        "rollout_done" => format!("{}: {}", s(&event["host"]), s(&event["health"])),
        "deployed" => format!("release {} at {}", s(&event["release"]), s(&event["url"])),
        "retrying" => format!(
            "attempt {} failed: {}",
            event["attempt"],
            s(&event["reason"])
        ),
        "error" => s(&event["message"]),
        "output" => s(&event["line"]),
        _ => String::new(),
    };
    let label = match kind.as_str() {
        "planned_change" | "change_summary" => "plan",
        "rollout_start" => "rollout",
        "rollout_done" => "healthy",
        "" => "event",
        other => other,
    };
    (label.to_string(), detail)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_read_as_steps() {
        let summary = json!({"type": "change_summary", "changes": {"add": 1, "change": 0, "destroy": 0}, "no_changes": false});
        assert_eq!(
            describe(&summary),
            ("plan".into(), "1 to add, 0 to change, 0 to destroy".into())
        );
        assert_eq!(step_of(&summary), Some("planned"));
        let done =
            json!({"type": "rollout_done", "host": "local", "health": "GET /health answered 200"});
        assert_eq!(describe(&done).1, "local: GET /health answered 200");
        assert_eq!(step_of(&done), Some("rolled-out"));
        let out = json!({"type": "output", "line": "<b>x</b>"});
        assert_eq!(describe(&out), ("output".into(), "<b>x</b>".into()));
        assert_eq!(step_of(&out), None);
        assert_eq!(describe(&json!(3)).0, "event");
    }
}
