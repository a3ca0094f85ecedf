//! A provider's plan as the engine holds it ([`Plan`], normalized into
//! apply order), and the comparisons the checks make between plans.

use crate::contract::ChangePlan;
use crate::engine::plan::{Action, FORMAT, Plan, PlannedChange};

/// The provider's answer as the engine's plan: before/after parsed as JSON
/// (a plan whose before/after is not JSON fails here, as it would in
/// `soar plan`), changes in the engine's apply order.
pub fn to_plan(command: &str, provider: &str, answer: ChangePlan) -> anyhow::Result<Plan> {
    let changes = answer
        .changes
        .into_iter()
        .map(PlannedChange::from_provider)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut plan = Plan {
        format: FORMAT,
        command: command.into(),
        app: String::new(),
        env: String::new(),
        provider: provider.into(),
        serial: 0,
        artifact: None,
        changes,
        notes: answer.notes,
    };
    plan.normalize();
    Ok(plan)
}

/// `create droplet web-1`, escaped for a terminal.
pub fn describe(c: &PlannedChange) -> String {
    format!(
        "{} {} {}",
        c.action.verb(),
        crate::terminal::line(&c.kind),
        crate::terminal::line(&c.name)
    )
}

/// Each change that does something, described.
pub fn effective(plan: &Plan) -> Vec<String> {
    plan.effective().map(describe).collect()
}

/// Each change that is not a create: what is left of an environment after
/// a destroy (a plan then may only create anew).
pub fn not_creates(plan: &Plan) -> Vec<String> {
    plan.effective()
        .filter(|c| c.action != Action::Create)
        .map(describe)
        .collect()
}

/// The first way two plans of the same input differ, in words; `None`
/// when their changes are the same (actions, kinds, names, reasons,
/// before/after as JSON values, payloads byte for byte).
pub fn first_difference(a: &Plan, b: &Plan) -> Option<String> {
    if a.changes.len() != b.changes.len() {
        return Some(format!(
            "the first plan has {} changes, the second {}",
            a.changes.len(),
            b.changes.len()
        ));
    }
    for (x, y) in a.changes.iter().zip(&b.changes) {
        let field = if (x.action, &x.kind, &x.name) != (y.action, &y.kind, &y.name) {
            return Some(format!("{} became {}", describe(x), describe(y)));
        } else if x.reason != y.reason {
            "reason"
        } else if x.before != y.before {
            "before"
        } else if x.after != y.after {
            "after"
        } else if x.payload != y.payload {
            "payload"
        } else {
            continue;
        };
        return Some(format!(
            "the {field} of {} differs between the two plans",
            describe(x)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Change, ChangeAction};

    fn answer(payload: &str) -> ChangePlan {
        ChangePlan {
            changes: vec![
                Change {
                    action: ChangeAction::Create,
                    kind: "droplet".into(),
                    name: "web-2".into(),
                    reason: "missing".into(),
                    before: None,
                    after: Some(r#"{"size":"s","region":"nyc3"}"#.into()),
                    payload: payload.into(),
                    deploys_artifact: false,
                },
                Change {
                    action: ChangeAction::Delete,
                    kind: "droplet".into(),
                    name: "web-9".into(),
                    reason: "not wanted".into(),
                    before: Some("{}".into()),
                    after: None,
                    payload: String::new(),
                    deploys_artifact: false,
                },
            ],
            diagnostics: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn plans_compare_in_apply_order_and_name_the_difference() {
        let a = to_plan("deploy", "p", answer("{}")).expect("plan");
        assert_eq!(
            effective(&a),
            ["destroy droplet web-9", "create droplet web-2"]
        );
        assert_eq!(not_creates(&a), ["destroy droplet web-9"]);
        let mut same = answer("{}");
        same.changes[0].after = Some(r#"{"region":"nyc3","size":"s"}"#.into());
        let same = to_plan("deploy", "p", same).expect("plan");
        assert_eq!(first_difference(&a, &same), None);
        let other = to_plan("deploy", "p", answer(r#"{"nonce":1}"#)).expect("plan");
        assert_eq!(
            first_difference(&a, &other).as_deref(),
            Some("the payload of create droplet web-2 differs between the two plans")
        );
    }

    #[test]
    fn before_and_after_must_be_json() {
        let mut bad = answer("{}");
        bad.changes[0].after = Some("not json".into());
        assert!(to_plan("deploy", "p", bad).is_err());
    }
}
