//! What `soar status` finds when it sets the provider's report beside the
//! state: resources deleted, created, replaced or changed outside Soar.
//!
//! The state records what a deploy saw; the provider's `status` is what is
//! there now. A Worker deleted in the dashboard or a droplet resized by hand
//! would otherwise still show as deployed, so every difference is named
//! here, with what to run about it.

use serde_json::{Value, json};

use crate::contract::{ResourceState, ResourceStatus};
use crate::state::ResourceRecord;

/// Attributes that change on their own (a droplet goes `new` → `active`, a
/// timestamp moves): never reported as drift.
const VOLATILE: &[&str] = &[
    "status",
    "state",
    "launch_time",
    "created_on",
    "modified_on",
    "updated_at",
];

/// One difference between the state and the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub kind: String,
    pub name: String,
    /// `missing`, `untracked`, `replaced` or `changed`.
    pub what: &'static str,
    /// For the user: what differs and what to run.
    pub detail: String,
}

impl Drift {
    pub fn to_json(&self) -> Value {
        json!({ "kind": self.kind, "name": self.name, "what": self.what, "detail": self.detail })
    }
}

/// The provider's resources as plain JSON (`attributes` parsed).
pub fn reported_json(reported: &[ResourceStatus]) -> Vec<Value> {
    reported
        .iter()
        .map(|s| {
            json!({
                "kind": s.resource.kind,
                "name": s.resource.name,
                "id": s.resource.id,
                "state": s.state.as_str(),
                "attributes": attributes(s),
                "endpoints": s.endpoints.iter().map(|e| json!({
                    "kind": e.kind.as_str(), "address": e.address, "port": e.port,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn attributes(s: &ResourceStatus) -> Value {
    serde_json::from_str(&s.resource.attributes).unwrap_or(Value::Null)
}

/// Every difference between `state` (Soar's own service record excluded by
/// the caller) and what the provider `reported`, sorted by kind and name.
pub fn compare(state: &[&ResourceRecord], reported: &[ResourceStatus]) -> Vec<Drift> {
    let mut out = Vec::new();
    for r in state {
        // A provider may report a resource it looked for and did not find
        // with the state `missing` (the contract's word) rather than omit it.
        let found = reported.iter().find(|s| {
            s.resource.kind == r.kind
                && s.resource.name == r.name
                && s.state != ResourceState::Missing
        });
        let Some(s) = found else {
            out.push(Drift {
                kind: r.kind.clone(),
                name: r.name.clone(),
                what: "missing",
                detail: "in the state, but the provider no longer reports it (deleted outside Soar?): `soar deploy` recreates it, `soar refresh` forgets it".into(),
            });
            continue;
        };
        if let (Some(was), Some(now)) = (&r.id, &s.resource.id)
            && was != now
        {
            out.push(Drift {
                kind: r.kind.clone(),
                name: r.name.clone(),
                what: "replaced",
                detail: format!(
                    "the state has id {was}, the provider reports id {now} (replaced outside Soar?): `soar refresh` records the new one"
                ),
            });
            continue;
        }
        let changed = changed_attributes(&r.attributes, &attributes(s));
        if !changed.is_empty() {
            out.push(Drift {
                kind: r.kind.clone(),
                name: r.name.clone(),
                what: "changed",
                detail: format!(
                    "changed outside Soar: {}; `soar plan` shows what a deploy would set back",
                    changed.join(", ")
                ),
            });
        }
    }
    for s in reported
        .iter()
        .filter(|s| s.state != ResourceState::Missing)
    {
        let tracked = state
            .iter()
            .any(|r| r.kind == s.resource.kind && r.name == s.resource.name);
        if !tracked {
            out.push(Drift {
                kind: s.resource.kind.clone(),
                name: s.resource.name.clone(),
                what: "untracked",
                detail: "the provider reports it, but the state does not have it (created outside Soar, or a lost state): `soar refresh` records it".into(),
            });
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    out
}

/// `key: was → now` for each attribute both sides have, not null and not
/// volatile, whose values differ.
fn changed_attributes(was: &Value, now: &Value) -> Vec<String> {
    let (Some(was), Some(now)) = (was.as_object(), now.as_object()) else {
        return Vec::new();
    };
    was.iter()
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
        .filter_map(|(k, a)| {
            let b = now.get(k)?;
            (!a.is_null() && !b.is_null() && a != b).then(|| format!("{k} {a} → {b}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ManagedResource;

    fn record(kind: &str, name: &str, id: &str, attrs: Value) -> ResourceRecord {
        ResourceRecord {
            env: "prod".into(),
            provider: "p".into(),
            kind: kind.into(),
            name: name.into(),
            id: Some(id.into()),
            attributes: attrs,
            updated_at: 0,
        }
    }

    fn reported(kind: &str, name: &str, id: &str, attrs: Value) -> ResourceStatus {
        ResourceStatus {
            resource: ManagedResource {
                kind: kind.into(),
                name: name.into(),
                id: Some(id.into()),
                attributes: attrs.to_string(),
            },
            state: ResourceState::Running,
            endpoints: vec![],
        }
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let state = [
            record("droplet", "a", "1", json!({"size": "s-1", "status": "new"})),
            record("droplet", "b", "2", json!({})),
            record("droplet", "c", "3", json!({})),
            record("droplet", "same", "4", json!({"size": "s-1", "ipv4": null})),
            record("function", "f", "ns/f", json!({})),
        ];
        let provider = [
            reported(
                "droplet",
                "a",
                "1",
                json!({"size": "s-2", "status": "active"}),
            ),
            reported("droplet", "c", "9", json!({})),
            reported("droplet", "d", "5", json!({})),
            reported(
                "droplet",
                "same",
                "4",
                json!({"size": "s-1", "ipv4": "1.2.3.4"}),
            ),
        ];
        let refs: Vec<&ResourceRecord> = state.iter().collect();
        let d = compare(&refs, &provider);
        let what: Vec<(&str, &str)> = d.iter().map(|d| (d.name.as_str(), d.what)).collect();
        assert_eq!(
            what,
            [
                ("a", "changed"),
                ("b", "missing"),
                ("c", "replaced"),
                ("d", "untracked"),
                ("f", "missing"),
            ]
        );
        assert!(
            d[0].detail.contains("size \"s-1\" → \"s-2\""),
            "{}",
            d[0].detail
        );
        assert!(!d[0].detail.contains("status"));
    }
}
