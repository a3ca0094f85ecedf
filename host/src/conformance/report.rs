//! The checks of `soar plugin test` and what each found: pass, fail with
//! the reason, or skipped with why (a check that had nothing to exercise is
//! not a pass).

use serde::Serialize;

/// One conformance check, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// `describe` is well-formed: name, version, settings schema, declared
    /// endpoints and credentials consistent.
    Describe,
    /// `validate`, `plan`, `plan-destroy` and `status` send no mutating
    /// request (only GET, HEAD, OPTIONS).
    ReadOnly,
    /// Two plans of the same input give the same changes.
    Deterministic,
    /// Applying every planned change a second time succeeds and leaves the
    /// same resources.
    Idempotent,
    /// A plan after apply has no changes.
    Converged,
    /// `plan-destroy` then apply of its changes leaves nothing.
    Destroy,
    /// Settings that violate the plugin's own schema yield a typed plugin
    /// error with diagnostics, not a trap.
    TypedErrors,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 7] = [
        Check::Describe,
        Check::ReadOnly,
        Check::Deterministic,
        Check::Idempotent,
        Check::Converged,
        Check::Destroy,
        Check::TypedErrors,
    ];

    /// What the check asserts, in words.
    pub fn title(self) -> &'static str {
        match self {
            Check::Describe => "describe is well-formed",
            Check::ReadOnly => "validate and plan send no mutating request",
            Check::Deterministic => "plan is deterministic",
            Check::Idempotent => "apply of every planned change, twice, is idempotent",
            Check::Converged => "plan after apply has no changes",
            Check::Destroy => "plan-destroy then apply leaves nothing",
            Check::TypedErrors => "errors are typed",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The plugin did what the contract asks.
    Pass,
    /// It did not; the reason says how.
    Fail,
    /// Nothing could be exercised (an earlier step failed, or the plan had
    /// nothing to apply); the reason says why.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// [`Check::title`], for readers of the JSON.
    pub title: &'static str,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// Why it failed or was skipped, or what it saw when it passed.
    pub reason: String,
    /// Further lines: the offending requests, the first differences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Everything one run found, one result per [`Check`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin's name, as it described itself.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// One result per check, in [`Check::ALL`] order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Whether any check failed (the command then exits non-zero).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    /// How many checks ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    /// The last line of the text report.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} passed, {} failed, {} skipped",
            if self.failed() { "FAILED" } else { "ok" },
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        )
    }
}

/// Results being gathered: each check is set once, and a check never set
/// is reported as skipped with the reason given at [`Findings::finish`].
#[derive(Debug, Default)]
pub struct Findings {
    results: Vec<CheckResult>,
}

impl Findings {
    /// Record `check`'s outcome (a later record of the same check is
    /// ignored: the first failure is the one that explains).
    pub fn set(&mut self, check: Check, outcome: Outcome, reason: impl Into<String>) {
        self.set_with(check, outcome, reason, Vec::new());
    }

    /// [`Findings::set`] with detail lines.
    pub fn set_with(
        &mut self,
        check: Check,
        outcome: Outcome,
        reason: impl Into<String>,
        details: Vec<String>,
    ) {
        if self.get(check).is_none() {
            self.results.push(CheckResult {
                check,
                title: check.title(),
                outcome,
                reason: reason.into(),
                details,
            });
        }
    }

    /// `pass` when `problems` is empty, else `fail` with them as details.
    pub fn judge(&mut self, check: Check, passed: &str, failed: &str, problems: Vec<String>) {
        if problems.is_empty() {
            self.set(check, Outcome::Pass, passed);
        } else {
            self.set_with(check, Outcome::Fail, failed, problems);
        }
    }

    /// What `check` found so far.
    pub fn get(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    /// The report: every check not set is skipped because of `why`.
    pub fn finish(mut self, plugin: &str, version: &str, why: &str) -> Report {
        for check in Check::ALL {
            self.set(check, Outcome::Skip, why);
        }
        self.results.sort_by_key(|r| r.check);
        Report {
            plugin: plugin.to_string(),
            version: version.to_string(),
            checks: self.results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_result_stays_and_unset_checks_are_skipped() {
        let mut f = Findings::default();
        f.set(Check::Converged, Outcome::Fail, "first");
        f.set(Check::Converged, Outcome::Pass, "second");
        f.judge(Check::Describe, "fine", "broken", vec![]);
        let r = f.finish("p", "1.0.0", "not reached");
        assert_eq!(r.checks.len(), Check::ALL.len());
        assert_eq!(r.checks[0].check, Check::Describe);
        assert_eq!(r.checks[0].outcome, Outcome::Pass);
        let converged = r.checks.iter().find(|c| c.check == Check::Converged);
        assert_eq!(converged.map(|c| c.reason.as_str()), Some("first"));
        assert!(r.failed());
        assert_eq!(r.count(Outcome::Skip), 5);
        assert_eq!(r.summary(), "FAILED: 1 passed, 1 failed, 5 skipped");
    }
}
