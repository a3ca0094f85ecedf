//! Plans: what a deploy or destroy would change, deterministic and
//! serializable so `soar plan -o FILE` / `soar deploy FILE` apply exactly
//! what was shown.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{Change, ChangeAction};

/// Version of the saved-plan file format.
pub const FORMAT: u32 = 1;

/// The resource kind of the host's rollout step.
pub const RELEASE_KIND: &str = "release";

/// What a change does, as users read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new resource; counts toward "to add".
    Create,
    /// Changed in place; counts toward "to change".
    Update,
    /// Destroyed and created anew (the change cannot be made in place);
    /// counts toward both "to add" and "to destroy".
    Replace,
    /// Removed; counts toward "to destroy".
    Delete,
    /// Already as wanted; shown for completeness, counted nowhere.
    NoOp,
}

impl Action {
    /// Terraform's symbol for the action.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }

    /// The verb in prose.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "destroy",
            Action::NoOp => "no-op",
        }
    }
}

impl From<ChangeAction> for Action {
    fn from(a: ChangeAction) -> Self {
        match a {
            ChangeAction::Create => Action::Create,
            ChangeAction::Update => Action::Update,
            ChangeAction::Replace => Action::Replace,
            ChangeAction::Delete => Action::Delete,
            ChangeAction::NoOp => Action::NoOp,
        }
    }
}

impl From<Action> for ChangeAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Create => ChangeAction::Create,
            Action::Update => ChangeAction::Update,
            Action::Replace => ChangeAction::Replace,
            Action::Delete => ChangeAction::Delete,
            Action::NoOp => ChangeAction::NoOp,
        }
    }
}

/// Who carries a change out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// The provider plugin's `apply`.
    Provider,
    /// The host's rollout onto the environment's hosts.
    Rollout,
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// What the change does to the resource.
    pub action: Action,
    /// The resource kind as the provider names it (`droplet`, `dns-record`),
    /// or [`RELEASE_KIND`] for the host's rollout.
    pub kind: String,
    /// The resource's name, unique within its kind.
    pub name: String,
    /// Why the change is needed, in words shown to the user.
    pub reason: String,
    /// The resource's current attributes (a JSON object); absent for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The attributes it will have (a JSON object); absent for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The provider's private data for `apply` (opaque here).
    #[serde(default)]
    pub payload: String,
    /// The provider puts the artifact in place itself when it applies this
    /// change (`change.deploys-artifact`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deploys_artifact: bool,
    /// Who applies the change: the provider plugin or the host's rollout.
    pub executor: Executor,
}

impl PlannedChange {
    /// Take a provider's change; before/after must be JSON objects.
    pub fn from_provider(c: Change) -> anyhow::Result<Self> {
        let parse = |label: &str, s: Option<String>| -> anyhow::Result<Option<Value>> {
            s.map(|s| {
                serde_json::from_str(&s).map_err(|e| {
                    anyhow::anyhow!(
                        "the provider's {label} of {} {} is not JSON: {e}",
                        c.kind,
                        c.name
                    )
                })
            })
            .transpose()
        };
        Ok(Self {
            action: c.action.into(),
            before: parse("before", c.before.clone())?,
            after: parse("after", c.after.clone())?,
            kind: c.kind,
            name: c.name,
            reason: c.reason,
            payload: c.payload,
            deploys_artifact: c.deploys_artifact,
            executor: Executor::Provider,
        })
    }

    /// The change as the provider's `apply` takes it.
    pub fn to_provider(&self) -> Change {
        Change {
            action: self.action.into(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            reason: self.reason.clone(),
            before: self.before.as_ref().map(Value::to_string),
            after: self.after.as_ref().map(Value::to_string),
            payload: self.payload.clone(),
            deploys_artifact: self.deploys_artifact,
        }
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Creates plus replaces.
    pub add: usize,
    /// In-place updates.
    pub change: usize,
    /// Deletes plus replaces.
    pub destroy: usize,
}

/// A whole plan, as shown and as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The file format version, [`FORMAT`] when written; a saved plan of
    /// another version is refused rather than misread.
    pub format: u32,
    /// `deploy` or `destroy`.
    pub command: String,
    /// The app (`[app] name`) the plan was made for, for display and audit.
    pub app: String,
    /// The environment the plan was made for.
    pub env: String,
    /// The provider plugin that planned the changes.
    pub provider: String,
    /// State serial the plan was made at; applying refuses a different one.
    pub serial: u64,
    /// Digest of the artifact the plan deploys, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The changes in apply order (see [`Plan::normalize`]).
    pub changes: Vec<PlannedChange>,
    /// The provider's notes and diagnostics, shown under the plan.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Plan {
    /// Sort changes deterministically: deletes of the provider first (so a
    /// replaced name is free), then by kind and name; the rollout last,
    /// since it needs the hosts the provider creates.
    pub fn normalize(&mut self) {
        self.changes.sort_by(|a, b| {
            let rank =
                |c: &PlannedChange| (c.executor == Executor::Rollout, c.action != Action::Delete);
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.kind.cmp(&b.kind))
                .then_with(|| a.name.cmp(&b.name))
        });
    }

    /// Changes that do something.
    pub fn effective(&self) -> impl Iterator<Item = &PlannedChange> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }

    /// Add / change / destroy counts (a replace counts as add and destroy).
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in self.effective() {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1
                }
                Action::Delete => s.destroy += 1,
                Action::NoOp => {}
            }
        }
        s
    }

    /// Whether applying would do anything.
    pub fn has_changes(&self) -> bool {
        self.effective().next().is_some()
    }

    /// Read a saved plan.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading plan {}: {e}", path.display()))?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a saved soar plan: {e}", path.display()))?;
        if plan.format != FORMAT {
            anyhow::bail!(
                "{} is a plan of format {}, this soar reads format {FORMAT}; run `soar plan -o` again",
                path.display(),
                plan.format
            );
        }
        Ok(plan)
    }

    /// Write the plan (pretty JSON, stable key order).
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing plan {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: Action, kind: &str, name: &str, executor: Executor) -> PlannedChange {
        PlannedChange {
            action,
            kind: kind.into(),
            name: name.into(),
            reason: String::new(),
            before: None,
            after: None,
            payload: String::new(),
            executor,
            deploys_artifact: false,
        }
    }

    #[test]
    fn order_and_summary() {
        let mut plan = Plan {
            format: FORMAT,
            command: "deploy".into(),
            app: "a".into(),
            env: "e".into(),
            provider: "p".into(),
            serial: 0,
            artifact: None,
            changes: vec![
                change(Action::Update, RELEASE_KIND, "svc", Executor::Rollout),
                change(Action::Create, "droplet", "e-b", Executor::Provider),
                change(Action::Delete, "droplet", "e-z", Executor::Provider),
                change(Action::Replace, "droplet", "e-a", Executor::Provider),
                change(Action::NoOp, "droplet", "e-c", Executor::Provider),
            ],
            notes: vec![],
        };
        plan.normalize();
        let names: Vec<&str> = plan.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["e-z", "e-a", "e-b", "e-c", "svc"]);
        assert_eq!(
            plan.summary(),
            Summary {
                add: 2,
                change: 1,
                destroy: 2
            }
        );
    }
}
