//! A job's events, shown through the [`Reporter`] as a local run shows
//! them: under `--json` each event is printed as the same typed [`Event`]
//! (so the stream is line for line what `soar deploy --json` prints on the
//! server); for people, each event becomes the line the engine writes for
//! it, and a plan is drawn by the engine's own [`plan_text`].
//!
//! What a local run prints only for people and never as an event (the
//! seconds each change took, the hooks' progress) cannot be shown: the
//! server's deploy runs with `--json`, so the events are all there is.

use serde_json::Value;

use crate::engine::plan::{Action, Executor, Plan, PlannedChange};
use crate::engine::render::plan_text;
use crate::report::{Event, Reporter};
use crate::terminal::line;

/// The error a job's deploy reported: its `error` event, kept to be the
/// command's own error (reported once, by `main`, as a local run's is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The outermost message.
    pub message: String,
    /// Its causes, outermost first.
    pub causes: Vec<String>,
}

impl Reported {
    /// As an `anyhow` chain whose `error` event is the one the server's
    /// deploy printed (same message, same causes).
    pub fn into_error(self) -> anyhow::Error {
        let mut chain = self.causes.into_iter().rev();
        let Some(root) = chain.next() else {
            return anyhow::anyhow!(self.message);
        };
        let e = chain.fold(anyhow::anyhow!(root), |e, c| e.context(c));
        e.context(self.message)
    }
}

/// Turns events into output, remembering what later lines need (the plan's
/// changes name the service the `deployed` line mentions).
#[derive(Debug)]
pub struct Renderer {
    out: Reporter,
    /// The provider, for the plan's heading.
    provider: String,
    /// Leave out the plan's events (it was shown already, before asking).
    skip_plan: bool,
    changes: Vec<PlannedChange>,
    notes: Vec<String>,
    /// The plan had changes (from its summary).
    has_changes: Option<bool>,
    error: Option<Reported>,
}

impl Renderer {
    /// A renderer writing to `out`; `provider` names the environment's
    /// provider in a drawn plan.
    pub fn new(out: &Reporter, provider: &str) -> Self {
        Self {
            out: out.clone(),
            provider: provider.to_string(),
            skip_plan: false,
            changes: Vec::new(),
            notes: Vec::new(),
            has_changes: None,
            error: None,
        }
    }

    /// From now on, leave the plan's events out (shown already).
    pub fn skip_plan(&mut self) {
        self.skip_plan = true;
    }

    /// Whether the plan shown had changes (`None` before its summary).
    pub fn has_changes(&self) -> Option<bool> {
        self.has_changes
    }

    /// The deploy's own error, if it reported one.
    pub fn take_error(&mut self) -> Option<Reported> {
        self.error.take()
    }

    /// Show one event (a line of the server's `soar ... --json`).
    pub fn show(&mut self, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or_default();
        let out = &self.out;
        match s("type") {
            "planned_change" | "note" | "change_summary" if self.skip_plan => {}
            "planned_change" => {
                if let Ok(c) = serde_json::from_value::<PlannedChange>(v["change"].clone()) {
                    self.changes.push(c);
                }
                out.emit(&Event::PlannedChange {
                    env: s("env"),
                    change: v["change"].clone(),
                });
            }
            "note" => {
                self.notes.push(s("message").to_string());
                out.emit(&Event::Note {
                    message: s("message"),
                });
            }
            "change_summary" => self.summary(v),
            "apply_result" => self.apply_result(v),
            "rollout_start" => {
                let release = s("release");
                let targets = v["targets"].as_u64().unwrap_or_default() as usize;
                let step = self.rollout_step();
                out.status(&Event::RolloutStart { release, targets }, || {
                    let head = step
                        .map(|c| format!("{} {}: ", c.action.symbol(), line(&c.name)))
                        .unwrap_or_default();
                    format!("\n{head}rolling out release {release} to {targets} host(s)")
                });
            }
            "rollout_done" => {
                let event = Event::RolloutDone {
                    target: s("target").to_string(),
                    host: s("host").to_string(),
                    release: s("release"),
                    bytes_sent: v["bytes_sent"].as_u64().unwrap_or_default(),
                    health: s("health"),
                };
                // A local target is named by its URL, an SSH one by its host.
                let place = if s("target").starts_with("http") {
                    s("target")
                } else {
                    s("host")
                };
                out.status(&event, || {
                    format!(
                        "  ✓ {} healthy ({}; {} bytes sent)",
                        line(place),
                        line(s("health")),
                        v["bytes_sent"].as_u64().unwrap_or_default()
                    )
                });
            }
            "rollout_failed" => {
                let event = Event::RolloutFailed {
                    target: s("target").to_string(),
                    host: s("host").to_string(),
                    rolled_back: v["rolled_back"] == true,
                    error: s("error"),
                };
                let first = s("error").lines().next().unwrap_or_default();
                out.status(&event, || {
                    format!("  ✗ {}: {}", line(s("host")), line(first))
                });
            }
            "deployed" => self.deployed(v),
            "warning" => out.warn(s("message")),
            "error" => {
                self.error = Some(Reported {
                    message: s("message").to_string(),
                    causes: v["causes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect(),
                });
            }
            // A line the server's command printed that was not an event
            // (a rollback's report): the words it said, for people.
            "output" => out.print(&format!("{}\n", line(s("line")))),
            // An event this soar does not know (a newer server's): a
            // program reading --json asks the server for it directly.
            _ => {}
        }
    }

    fn summary(&mut self, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or_default();
        let no_changes = v["no_changes"] == true;
        self.has_changes = Some(!no_changes);
        let out = &self.out;
        if out.is_json() {
            out.emit(&Event::ChangeSummary {
                command: s("command"),
                env: s("env"),
                changes: v["changes"].clone(),
                no_changes,
            });
            return;
        }
        let plan = Plan {
            format: 0,
            command: s("command").to_string(),
            app: String::new(),
            env: s("env").to_string(),
            provider: self.provider.clone(),
            serial: 0,
            artifact: None,
            changes: self.changes.clone(),
            notes: self.notes.clone(),
        };
        out.print(&plan_text(&plan));
    }

    fn apply_result(&self, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or_default();
        let ok = v["ok"] == true;
        let verb = serde_json::from_value::<Action>(v["action"].clone())
            .map(Action::verb)
            .unwrap_or("apply");
        let event = Event::ApplyResult {
            kind: s("kind"),
            name: s("name"),
            action: v["action"].clone(),
            ok,
            error: v["error"].as_str(),
        };
        self.out.status(&event, || {
            if ok {
                format!("  ✓ {verb} {} {}", line(s("kind")), line(s("name")))
            } else {
                format!(
                    "  ✗ {verb} {} {}: {}",
                    line(s("kind")),
                    line(s("name")),
                    line(s("error"))
                )
            }
        });
    }

    /// The plan's rollout step (the release going out), if it had one.
    fn rollout_step(&self) -> Option<&PlannedChange> {
        self.changes
            .iter()
            .find(|c| c.executor == Executor::Rollout && c.action != Action::NoOp)
    }

    /// As the engine reports it: with a release, a line for people on
    /// stderr and the URL alone on stdout; without, the line only.
    fn deployed(&self, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or_default();
        let (env, url) = (s("env"), s("url"));
        let release = v["release"].as_str();
        let changed = v["changed"] == true;
        let event = Event::Deployed {
            env,
            url,
            release,
            changed,
        };
        let service = self
            .changes
            .iter()
            .find(|c| c.executor == Executor::Rollout)
            .map(|c| c.name.as_str())
            .unwrap_or("the service");
        let out = &self.out;
        match (release, changed) {
            (Some(_), _) => {
                out.note(|| {
                    format!(
                        "\nDeployed {} to {}: {}",
                        line(service),
                        line(env),
                        line(url)
                    )
                });
                out.result(&event, || line(url).into_owned());
            }
            (None, false) => out.status(&event, || {
                format!("\n{} is up to date at {}", line(service), line(url))
            }),
            (None, true) => out.status(&event, || {
                format!("\nDeployed to {}: {}", line(env), line(url))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Settings;
    use serde_json::json;

    fn events() -> Vec<Value> {
        vec![
            json!({"type": "planned_change", "env": "dev", "change": {"action": "create", "kind": "release", "name": "web", "reason": "first release of web", "after": {"port": 1}, "payload": "", "executor": "rollout"}}),
            json!({"type": "change_summary", "command": "deploy", "env": "dev", "changes": {"create": 1}, "no_changes": false}),
            json!({"type": "rollout_start", "release": "r1", "targets": 1}),
            json!({"type": "rollout_done", "target": "http://127.0.0.1:5", "host": "localhost", "release": "r1", "bytes_sent": 10, "health": "200 OK"}),
            json!({"type": "deployed", "env": "dev", "url": "http://127.0.0.1:5", "release": "r1", "changed": true}),
        ]
    }

    #[test]
    fn json_passes_every_known_event_through_unchanged() {
        let (out, captured) = Reporter::buffered(Settings {
            json: true,
            ..Settings::default()
        });
        let mut r = Renderer::new(&out, "local");
        for e in events() {
            r.show(&e);
        }
        let lines: Vec<Value> = captured
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, events());
        assert_eq!(r.has_changes(), Some(true));
    }

    #[test]
    fn people_see_the_plan_progress_and_the_url_alone_on_stdout() {
        let (out, captured) = Reporter::buffered(Settings::default());
        let mut r = Renderer::new(&out, "local");
        for e in events() {
            r.show(&e);
        }
        let stdout = captured.stdout();
        assert!(stdout.contains("provider local"), "{stdout}");
        assert!(stdout.ends_with("http://127.0.0.1:5\n"), "{stdout}");
        let stderr = captured.stderr();
        assert!(
            stderr.contains("+ web: rolling out release r1 to 1 host(s)"),
            "{stderr}"
        );
        assert!(stderr.contains("Deployed web to dev"), "{stderr}");
    }

    #[test]
    fn the_deploys_error_becomes_the_same_chain() {
        let (out, captured) = Reporter::buffered(Settings::default());
        let mut r = Renderer::new(&out, "local");
        r.show(&json!({"type": "error", "message": "deploy failed", "causes": ["health check", "timed out"]}));
        assert_eq!(captured.stdout(), "");
        let e = r.take_error().unwrap().into_error();
        assert_eq!(
            serde_json::to_value(Event::error(&e)).unwrap(),
            json!({"type": "error", "message": "deploy failed", "causes": ["health check", "timed out"]})
        );
    }
}
