//! Showing plans and outcomes: Terraform-style text for people, one JSON
//! object per line for machines. Both are deterministic: the same plan
//! renders to the same bytes.
//!
//! Kinds, names, reasons, attributes and notes come from the plugin, so each
//! is escaped here, where the plan is drawn ([`crate::terminal::line`]: one
//! line each, so a reason cannot forge the next change, and an escape
//! sequence cannot redraw `- destroy` as `+ create`). The plan itself keeps
//! the raw values: they name resources in the state and in saved plans.

use serde_json::Value;

use crate::report::{Event, Reporter, value};
use crate::terminal::{self, line};

use super::plan::{Action, Plan, PlannedChange};

/// The plan as text.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        out.push_str(&format!(
            "No changes. Environment \"{}\" ({}) matches the configuration.\n",
            line(&plan.env),
            line(&plan.provider)
        ));
        return out;
    }
    out.push_str(&format!(
        "Soar will perform the following actions on environment \"{}\" (provider {}):\n\n",
        line(&plan.env),
        line(&plan.provider)
    ));
    for c in plan.effective() {
        out.push_str(&change_text(c));
        out.push('\n');
    }
    for note in &plan.notes {
        out.push_str(&format!("{}\n", line(note)));
    }
    if !plan.notes.is_empty() {
        out.push('\n');
    }
    let s = plan.summary();
    out.push_str(&format!(
        "Plan: {} to add, {} to change, {} to destroy.\n",
        s.add, s.change, s.destroy
    ));
    out
}

fn change_text(c: &PlannedChange) -> String {
    let mut out = format!(
        "  {} {} {}\n",
        c.action.symbol(),
        line(&c.kind),
        line(&c.name)
    );
    for attribute in attribute_lines(c) {
        out.push_str(&format!("      {attribute}\n"));
    }
    if !c.reason.is_empty() {
        out.push_str(&format!("      # {}\n", line(&c.reason)));
    }
    out
}

/// `key: value` for creates, `key: old → new` for changed keys, escaped.
fn attribute_lines(c: &PlannedChange) -> Vec<String> {
    let empty = serde_json::Map::new();
    let obj = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (mut before, mut after) = (obj(&c.before), obj(&c.after));
    // `soar:` keys are notes from the provider to the host, not attributes.
    before.retain(|k, _| !k.starts_with("soar:"));
    after.retain(|k, _| !k.starts_with("soar:"));
    match c.action {
        Action::Create => after
            .iter()
            .map(|(k, v)| format!("{}: {}", line(k), short(v)))
            .collect(),
        Action::Delete => Vec::new(),
        _ => {
            let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| before.get(*k) != after.get(*k))
                .map(|k| {
                    let show = |v: Option<&Value>| v.map(short).unwrap_or_else(|| "(none)".into());
                    format!(
                        "{}: {} → {}",
                        line(k),
                        show(before.get(k)),
                        show(after.get(k))
                    )
                })
                .collect()
        }
    }
}

/// A value for one line: strings quoted, long digests shortened, and
/// anything JSON leaves raw (C1 and bidi controls) escaped.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("\"{}…\"", &s[..12])
        }
        other => terminal::json(other),
    }
}

/// Show `plan`: drawn as text for people, as events in `--json`.
pub fn show_plan(out: &Reporter, plan: &Plan) {
    if out.is_json() {
        for event in plan_events(plan) {
            out.emit(&event);
        }
    } else {
        out.print(&plan_text(plan));
    }
}

/// The plan as events: each change, the notes, then the summary.
pub fn plan_events(plan: &Plan) -> Vec<Event<'_>> {
    let mut events: Vec<Event<'_>> = plan
        .changes
        .iter()
        .map(|c| Event::PlannedChange {
            env: &plan.env,
            change: value(c),
        })
        .collect();
    events.extend(plan.notes.iter().map(|n| Event::Note { message: n }));
    events.push(Event::ChangeSummary {
        command: &plan.command,
        env: &plan.env,
        changes: value(&plan.summary()),
        no_changes: !plan.has_changes(),
    });
    events
}

/// [`plan_events`] as JSON lines (with the characters a terminal would act
/// on escaped, see [`terminal::json`]).
pub fn plan_json(plan: &Plan) -> String {
    plan_events(plan)
        .iter()
        .map(|e| terminal::json(e) + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{Executor, FORMAT};
    use serde_json::json;

    #[test]
    fn renders_terraform_style() {
        let plan = Plan {
            format: FORMAT,
            command: "deploy".into(),
            app: "hello".into(),
            env: "staging".into(),
            provider: "local".into(),
            serial: 3,
            artifact: None,
            changes: vec![PlannedChange {
                action: Action::Update,
                kind: "release".into(),
                name: "hello".into(),
                reason: "a new build".into(),
                before: Some(json!({"artifact": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})),
                after: Some(json!({"artifact": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"})),
                payload: String::new(),
                executor: Executor::Rollout,
                deploys_artifact: false,
            }],
            notes: vec![],
        };
        let text = plan_text(&plan);
        assert!(
            text.contains(
                "  ~ release hello\n      artifact: \"aaaaaaaaaaaa…\" → \"bbbbbbbbbbbb…\"\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("Plan: 0 to add, 1 to change, 0 to destroy.\n"));
        assert!(
            plan_json(&plan)
                .lines()
                .last()
                .unwrap()
                .contains("\"change\":1")
        );
    }

    #[test]
    fn plugin_text_cannot_redraw_the_plan() {
        let plan = Plan {
            format: FORMAT,
            command: "deploy".into(),
            app: "hello".into(),
            env: "staging".into(),
            provider: "hostile".into(),
            serial: 1,
            artifact: None,
            changes: vec![PlannedChange {
                action: Action::Delete,
                kind: "\r\x1b[2K  + create".into(),
                name: "harmless\x1b]0;title\x07".into(),
                reason: "fine\n  + create other".into(),
                before: None,
                after: None,
                payload: String::new(),
                executor: Executor::Provider,
                deploys_artifact: false,
            }],
            notes: vec!["note \u{202e}desrever".into()],
        };
        let text = plan_text(&plan);
        assert!(
            !text
                .chars()
                .any(|c| crate::terminal::is_unsafe(c) && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("  - \\r\\x1b[2K  + create harmless\\x1b]0;title\\x07\n"),
            "{text}"
        );
        assert!(text.contains("# fine\\n  + create other\n"), "{text}");
        assert!(text.contains("note \\u{202e}desrever"), "{text}");
    }
}
