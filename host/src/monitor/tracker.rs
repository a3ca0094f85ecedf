//! Findings become transitions: a service (or a host) that was healthy and
//! fails is news once; failing again is not; answering again is a
//! recovery. Only transitions are announced, so a service that stays down
//! for an hour pages once, not once per probe.

use std::collections::BTreeMap;

use serde::Serialize;

use super::check::{Finding, HostFinding};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// It was healthy (or not seen yet) and now fails.
    Unhealthy,
    /// It was unhealthy and answers again.
    Recovered,
}

impl Change {
    /// `unhealthy` or `recovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Unhealthy => "unhealthy",
            Change::Recovered => "recovered",
        }
    }
}

/// One transition of one service or host.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// What changed.
    pub change: Change,
    /// `env/service@host`, or `host:<host>` for a host.
    pub key: String,
    /// The environments concerned (one for a service; every environment
    /// with a service on a host for a host).
    pub envs: Vec<String>,
    /// The service, or `None` when the whole host went away or came back.
    pub service: Option<String>,
    /// The host.
    pub host: String,
    /// The failing answer (for `unhealthy`) or the healthy one.
    pub detail: String,
    /// When it was seen, unix milliseconds.
    pub at: i64,
}

impl Transition {
    /// One line for people.
    pub fn summary(&self) -> String {
        let what = match &self.service {
            Some(s) => format!("{} on {}", s, self.host),
            None => format!("host {}", self.host),
        };
        format!(
            "{} {} ({}): {}",
            what,
            match self.change {
                Change::Unhealthy => "is unhealthy",
                Change::Recovered => "recovered",
            },
            self.envs.join(", "),
            self.detail
        )
    }
}

/// The last known health of every key.
#[derive(Debug, Default)]
pub struct Tracker {
    healthy: BTreeMap<String, bool>,
}

impl Tracker {
    /// Whether `key` was healthy at its last finding (`None`: not seen).
    pub fn last(&self, key: &str) -> Option<bool> {
        self.healthy.get(key).copied()
    }

    /// Take in one host's findings; the transitions they make.
    pub fn observe(&mut self, finding: &HostFinding, at: i64) -> Vec<Transition> {
        match finding {
            HostFinding::Down { host, envs, reason } => self
                .record(&host_key(host), false)
                .map(|change| Transition {
                    change,
                    key: host_key(host),
                    envs: envs.clone(),
                    service: None,
                    host: host.clone(),
                    detail: reason.clone(),
                    at,
                })
                .into_iter()
                .collect(),
            HostFinding::Up { host, services } => {
                let envs = {
                    let mut e: Vec<String> = services.iter().map(|f| f.env.clone()).collect();
                    e.sort();
                    e.dedup();
                    e
                };
                let mut out: Vec<Transition> = self
                    .record(&host_key(host), true)
                    .map(|change| Transition {
                        change,
                        key: host_key(host),
                        envs,
                        service: None,
                        host: host.clone(),
                        detail: "the host answers again".into(),
                        at,
                    })
                    .into_iter()
                    .collect();
                out.extend(services.iter().filter_map(|f| self.service(f, at)));
                out
            }
        }
    }

    fn service(&mut self, f: &Finding, at: i64) -> Option<Transition> {
        let change = self.record(&f.key, f.healthy)?;
        Some(Transition {
            change,
            key: f.key.clone(),
            envs: vec![f.env.clone()],
            service: Some(f.service.clone()),
            host: f.host.clone(),
            detail: f.detail.clone(),
            at,
        })
    }

    /// Remember `healthy` for `key`; the change it makes, if any. A first
    /// healthy finding is the baseline, not a recovery; a first failing one
    /// is news. A host seen up for the first time is no news either.
    fn record(&mut self, key: &str, healthy: bool) -> Option<Change> {
        let before = self.healthy.insert(key.to_string(), healthy);
        match (before, healthy) {
            (Some(false), true) => Some(Change::Recovered),
            (Some(true) | None, false) => Some(Change::Unhealthy),
            _ => None,
        }
    }
}

fn host_key(host: &str) -> String {
    format!("host:{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(healthy: bool) -> HostFinding {
        HostFinding::Up {
            host: "h".into(),
            services: vec![Finding {
                key: "prod/web@h".into(),
                env: "prod".into(),
                service: "web".into(),
                host: "h".into(),
                healthy,
                detail: if healthy { "200" } else { "500" }.into(),
                metrics: None,
            }],
        }
    }

    fn changes(t: &mut Tracker, f: &HostFinding) -> Vec<(String, Change)> {
        t.observe(f, 0)
            .into_iter()
            .map(|t| (t.key, t.change))
            .collect()
    }

    #[test]
    fn only_transitions_are_news() {
        let mut t = Tracker::default();
        assert!(changes(&mut t, &up(true)).is_empty(), "baseline");
        let down = changes(&mut t, &up(false));
        assert_eq!(down, [("prod/web@h".to_string(), Change::Unhealthy)]);
        assert!(changes(&mut t, &up(false)).is_empty(), "still down");
        let back = changes(&mut t, &up(true));
        assert_eq!(back, [("prod/web@h".to_string(), Change::Recovered)]);
        assert!(changes(&mut t, &up(true)).is_empty());
    }

    #[test]
    fn a_host_that_is_down_is_one_transition() {
        let mut t = Tracker::default();
        changes(&mut t, &up(true));
        let gone = HostFinding::Down {
            host: "h".into(),
            envs: vec!["prod".into()],
            reason: "connection refused".into(),
        };
        assert_eq!(
            changes(&mut t, &gone),
            [("host:h".to_string(), Change::Unhealthy)]
        );
        assert!(changes(&mut t, &gone).is_empty());
        assert_eq!(
            changes(&mut t, &up(true)),
            [("host:h".to_string(), Change::Recovered)],
            "the host is back and its service was never marked down"
        );
    }
}
