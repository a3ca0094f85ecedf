//! `soar plugin test`: does a provider plugin keep the contract? A run
//! drives the plugin through the real runtime and brokers — the same
//! [`Plugin`] calls, [`crate::session::Session`]s and plan handling the
//! engine uses — against the author's own fake API, and reports each
//! [`Check`] as pass, fail (with the reason) or skip.
//!
//! The run, in order:
//!
//! 1. `describe` is checked on its own ([`describe`]).
//! 2. Settings that break the plugin's schema are validated and planned
//!    with: `validate` must report an error or `plan` answer a typed
//!    `invalid-config` with diagnostics, and neither may trap
//!    ([`violation`]).
//! 3. `validate` with the author's settings (errors there end the run: the
//!    settings, not the plugin, are wrong), then two plans, compared.
//! 4. Every planned change applied; a plan (no changes wanted); every
//!    change applied again; a plan (still none).
//! 5. `plan-destroy`, its changes applied; `status` (nothing), a plan (only
//!    creates) and `plan-destroy` (nothing) after it. This also leaves the
//!    fake as it was found.
//!
//! Every request `validate`, `plan`, `plan-destroy` and `status` sent is
//! read back from their sessions' journals: anything but GET, HEAD or
//! OPTIONS fails the read-only check.

pub mod artifact;
pub mod describe;
pub mod driver;
pub mod plans;
pub mod report;
pub mod violation;

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

pub use self::driver::{Driver, Inputs};
use self::report::Findings;
pub use self::report::{Check, Outcome, Report};
use crate::contract::{PluginError, Severity};
use crate::engine::plan::Plan;
use crate::runtime::{CallError, Plugin, render_plugin_error};

/// Run every check of `plugin` with the author's `inputs`.
///
/// Fails (rather than reporting) when the inputs cannot exercise the
/// plugin: settings that break its own schema, or that its `validate`
/// rejects — the fix is the author's settings file, not the plugin.
pub async fn run(plugin: Arc<Plugin>, inputs: &Inputs) -> anyhow::Result<Report> {
    let d = plugin.description().clone();
    let mut f = Findings::default();
    let described = describe::check(&d);
    f.judge(
        Check::Describe,
        &format!(
            "{} {}: {}, {}, settings schema usable",
            d.name,
            d.version,
            count(d.capabilities.endpoints.len(), "endpoint"),
            count(d.capabilities.credentials.len(), "credential")
        ),
        "describe is not well-formed",
        described.problems,
    );
    if let Some((_, validator)) = &described.schema {
        let errors: Vec<String> = validator
            .iter_errors(&inputs.settings)
            .take(10)
            .map(|e| format!("{} at '{}'", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            anyhow::bail!(
                "the settings given do not satisfy the plugin's own settings schema:\n  {}\nFix the --settings file so the plugin can be exercised.",
                errors.join("\n  ")
            );
        }
    }
    let driver = Driver::new(plugin, inputs);
    typed_errors(&driver, described.schema.as_ref(), &mut f).await?;
    accepted(&driver, inputs).await?;
    lifecycle(&driver, &mut f).await?;
    let (writes, requests, dropped) = driver.writes();
    if dropped > 0 && writes.is_empty() {
        f.set(
            Check::ReadOnly,
            Outcome::Fail,
            format!(
                "{dropped} request records were dropped past the journal's budget: the calls sent too many requests to vouch for"
            ),
        );
    }
    f.judge(
        Check::ReadOnly,
        &format!(
            "{} of validate, plan, plan-destroy and status: all reads",
            count(requests, "request")
        ),
        "a read-only call sent a mutating request (only GET, HEAD and OPTIONS may be sent before apply)",
        writes,
    );
    Ok(f.finish(&d.name, &d.version, "not reached: an earlier step failed"))
}

/// The author's settings pass the plugin's `validate` (else the run stops:
/// nothing could be judged).
async fn accepted(driver: &Driver<'_>, inputs: &Inputs) -> anyhow::Result<()> {
    let errors: Vec<String> = driver
        .validate(&inputs.settings)
        .await
        .context("validate with the settings given did not answer")?
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let field = d.field.map(|f| format!("{f}: ")).unwrap_or_default();
            let hint = d.hint.map(|h| format!(" ({h})")).unwrap_or_default();
            crate::terminal::line(&format!("{field}{}{hint}", d.message)).into_owned()
        })
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "the plugin's validate rejects the settings given:\n  {}\nFix the --settings file so the plugin can be exercised.",
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// Check 7: settings that break the schema are refused with typed errors —
/// error diagnostics from `validate`, or `invalid-config` with diagnostics
/// from `plan` — and neither call traps.
async fn typed_errors(
    driver: &Driver<'_>,
    schema: Option<&(Value, jsonschema::Validator)>,
    f: &mut Findings,
) -> anyhow::Result<()> {
    let Some((schema, validator)) = schema else {
        f.set(
            Check::TypedErrors,
            Outcome::Skip,
            "no usable settings schema to break",
        );
        return Ok(());
    };
    let Some((bad, mistake)) = violation::violate(driver.settings(), schema, validator) else {
        f.set(
            Check::TypedErrors,
            Outcome::Skip,
            "the settings schema accepts every mistake tried (wrong types, an unknown key, an array)",
        );
        return Ok(());
    };
    let mistake = format!("settings with {mistake}");
    let caught = match driver.validate(&bad).await {
        Ok(diags) => diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count(),
        Err(e) => {
            f.set(
                Check::TypedErrors,
                Outcome::Fail,
                format!("validate of {mistake} did not answer: {e}"),
            );
            return Ok(());
        }
    };
    // The engine plans only after validate passed: a mistake validate
    // reports never reaches plan, so either call may be the one to refuse
    // it — but neither may trap, and one of them must refuse it.
    let by_validate = format!("validate reported {}", count(caught, "error"));
    let (outcome, reason) = match driver.plan_raw(&bad).await? {
        Err(CallError::Plugin { error, .. }) => match *error {
            PluginError::InvalidConfig(diags) if !diags.is_empty() => (
                Outcome::Pass,
                format!(
                    "{mistake}: {by_validate}; plan answered invalid-config with {}",
                    count(diags.len(), "diagnostic")
                ),
            ),
            other if caught > 0 => (
                Outcome::Pass,
                format!(
                    "{mistake}: {by_validate}; plan answered {}",
                    render_plugin_error(&other)
                ),
            ),
            other => (
                Outcome::Fail,
                format!(
                    "{mistake}: validate reported no error and plan answered {}; expected invalid-config with at least one diagnostic",
                    render_plugin_error(&other)
                ),
            ),
        },
        Err(trapped) => (
            Outcome::Fail,
            format!("plan of {mistake} trapped instead of returning a plugin error: {trapped}"),
        ),
        Ok(_) if caught > 0 => (
            Outcome::Pass,
            format!(
                "{mistake}: {by_validate} (plan, which the engine calls only after validate, accepted them)"
            ),
        ),
        Ok(_) => (
            Outcome::Fail,
            format!(
                "{mistake}: validate reported no error and plan succeeded; one of them must refuse settings the schema forbids"
            ),
        ),
    };
    f.set(Check::TypedErrors, outcome, reason);
    Ok(())
}

/// Checks 3 to 6, on the author's settings.
async fn lifecycle(driver: &Driver<'_>, f: &mut Findings) -> anyhow::Result<()> {
    let first = match driver.plan().await {
        Ok(p) => p,
        Err(e) => {
            f.set(
                Check::Deterministic,
                Outcome::Fail,
                format!("plan failed with the settings given: {e:#}"),
            );
            return Ok(());
        }
    };
    match driver.plan().await {
        Ok(second) => match plans::first_difference(&first, &second) {
            None => f.set(
                Check::Deterministic,
                Outcome::Pass,
                format!(
                    "two plans, the same {}",
                    count(first.effective().count(), "change")
                ),
            ),
            Some(d) => f.set(Check::Deterministic, Outcome::Fail, d),
        },
        Err(e) => f.set(
            Check::Deterministic,
            Outcome::Fail,
            format!("the second plan failed: {e:#}"),
        ),
    }
    if first.has_changes() {
        apply_twice(driver, &first, f).await?;
    } else {
        let why = "the first plan has no changes: start the fake API empty so apply is exercised";
        f.set(Check::Idempotent, Outcome::Skip, why);
        f.set(Check::Converged, Outcome::Skip, why);
    }
    destroy(driver, &first, f).await
}

/// Checks 4 and 5: apply, plan (nothing), apply again (same resources),
/// plan (still nothing).
async fn apply_twice(driver: &Driver<'_>, plan: &Plan, f: &mut Findings) -> anyhow::Result<()> {
    let once = driver.apply(plan).await?;
    let failed = failures(&once);
    if !failed.is_empty() {
        f.set_with(Check::Idempotent, Outcome::Fail, "apply failed", failed);
        f.set(Check::Converged, Outcome::Skip, "apply failed");
        return Ok(());
    }
    let wanted = match driver.plan().await {
        Ok(after) => plans::effective(&after),
        Err(e) => vec![format!("plan failed: {e:#}")],
    };
    f.judge(
        Check::Converged,
        &format!(
            "{} applied; the plan after wants none",
            count(once.len(), "change")
        ),
        "the plan after apply still wants changes",
        wanted,
    );
    let twice = driver.apply(plan).await?;
    let mut problems = failures(&twice)
        .into_iter()
        .map(|p| format!("second apply: {p}"))
        .collect::<Vec<_>>();
    for ((change, first), (_, second)) in once.iter().zip(&twice) {
        let id = |r: &Result<crate::contract::Applied, String>| {
            r.as_ref()
                .ok()
                .and_then(|a| a.resource.as_ref())
                .map(|r| (r.kind.clone(), r.name.clone(), r.id.clone()))
        };
        if let (Some(a), Some(b)) = (id(first), id(second))
            && a != b
        {
            problems.push(format!(
                "{}: the first apply left {a:?}, the second {b:?}",
                plans::describe(change)
            ));
        }
    }
    if problems.is_empty() {
        match driver.plan().await {
            Ok(after) => problems.extend(
                plans::effective(&after)
                    .into_iter()
                    .map(|c| format!("after the second apply the plan wants: {c}")),
            ),
            Err(e) => problems.push(format!("plan after the second apply failed: {e:#}")),
        }
    }
    f.judge(
        Check::Idempotent,
        &format!(
            "{} applied twice: same resources, nothing more to do",
            count(once.len(), "change")
        ),
        "applying the plan a second time was not a no-op",
        problems,
    );
    Ok(())
}

/// Check 6: plan-destroy, apply it; then nothing is left: no status, a
/// plan of creates only, an empty plan-destroy.
async fn destroy(driver: &Driver<'_>, first: &Plan, f: &mut Findings) -> anyhow::Result<()> {
    let removal = match driver.plan_destroy().await {
        Ok(p) => p,
        Err(e) => {
            f.set(
                Check::Destroy,
                Outcome::Fail,
                format!("plan-destroy failed: {e:#}"),
            );
            return Ok(());
        }
    };
    let mut problems = failures(&driver.apply(&removal).await?);
    match driver.status().await {
        Ok(left) => problems.extend(left.iter().map(|s| {
            format!(
                "status still shows {} {} ({})",
                crate::terminal::line(&s.resource.kind),
                crate::terminal::line(&s.resource.name),
                crate::terminal::line(s.state.as_str())
            )
        })),
        Err(e) => problems.push(format!("status failed: {e:#}")),
    }
    match driver.plan().await {
        Ok(again) => problems.extend(
            plans::not_creates(&again)
                .into_iter()
                .map(|c| format!("a plan after destroy wants to {c}: it was not removed")),
        ),
        Err(e) => problems.push(format!("plan after destroy failed: {e:#}")),
    }
    match driver.plan_destroy().await {
        Ok(again) => problems.extend(
            plans::effective(&again)
                .into_iter()
                .map(|c| format!("plan-destroy after destroy still wants to {c}")),
        ),
        Err(e) => problems.push(format!("plan-destroy after destroy failed: {e:#}")),
    }
    f.judge(
        Check::Destroy,
        &format!(
            "{} applied; status, plan and plan-destroy show nothing left{}",
            count(removal.effective().count(), "removal"),
            if first.has_changes() {
                ""
            } else {
                " (nothing had been created)"
            }
        ),
        "destroy left something behind",
        problems,
    );
    Ok(())
}

/// `create droplet web-1: API error 422 ...` for each change that failed.
fn failures(outcomes: &[driver::AppliedChange]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|(c, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("{}: {e}", plans::describe(c)))
        })
        .collect()
}

/// `1 change`, `2 changes`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
