//! Rolling one release out to many hosts: a job per host, batches (the
//! first host as a canary), and the per-host report when some fail.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::targets::Target;
use super::trail::{Trail, mark};
use crate::artifact::ArtifactSource;
use crate::report::Event;
use crate::rollout::local::LocalTransport;
use crate::rollout::service::Supervisor;
use crate::rollout::{self, Health, Release};
use crate::state::{Outcome, Phase, now_ms};

/// A release for every host, owned so hosts roll out in parallel tasks.
pub(crate) struct RolloutJob {
    pub id: String,
    pub artifact: Arc<ArtifactSource>,
    pub kind: crate::artifact::Kind,
    pub env: Vec<(String, String)>,
    pub health: Health,
    pub keep: u32,
    pub setup: Option<String>,
    pub switch: crate::config::Switch,
    /// Written into a host's deploy lock.
    pub who: String,
    pub force_unlock: bool,
}

/// Roll the release out to one host; SSH hosts hold their deploy lock for
/// the duration, released on every path.
pub(crate) async fn roll_one(
    target: &Target,
    job: &RolloutJob,
) -> Result<rollout::Report, rollout::Failure> {
    let release = Release {
        id: job.id.clone(),
        artifact: &job.artifact,
        kind: job.kind,
        env: job.env.clone(),
        health: job.health.clone(),
        keep: job.keep,
        setup: job.setup.clone(),
        switch: job.switch.clone(),
    };
    let failure = |e: anyhow::Error| rollout::Failure {
        message: format!("{e:#}"),
        rolled_back: false,
        phases: Vec::new(),
    };
    match target {
        Target::Local(spec) => {
            let supervisor = Supervisor::current().map_err(failure)?;
            rollout::deploy(&LocalTransport, &supervisor, spec, &release).await
        }
        Target::Ssh(t) => {
            rollout::lock(&t.transport, &t.spec.root, &job.who, job.force_unlock)
                .await
                .map_err(failure)?;
            let result = rollout::deploy(&t.transport, &t.systemd, &t.spec, &release).await;
            if let Err(e) = t.systemd.tidy(&t.spec).await {
                tracing::warn!("tidying up on {}: {e:#}", t.transport.host.describe());
            }
            // Once more if the connection dropped: the pool reconnects, and a
            // lock left behind would make the next deploy need --force-unlock.
            let unlocked = match rollout::unlock(&t.transport, &t.spec.root).await {
                Ok(()) => Ok(()),
                Err(_) => rollout::unlock(&t.transport, &t.spec.root).await,
            };
            if let Err(e) = unlocked {
                tracing::warn!(
                    "releasing the deploy lock on {}: {e:#}",
                    t.transport.host.describe()
                );
            }
            result
        }
    }
}

#[allow(
    clippy::single_range_in_vec_init,
    reason = "one batch of every host is a vector holding one range, as meant"
)]
/// Index ranges of the rollout's batches: everything at once, or (with
/// `rollout.batch`) the first host alone as a canary, then batches.
pub(crate) fn batches(
    hosts: usize,
    batch: Option<crate::config::Batch>,
) -> Vec<std::ops::Range<usize>> {
    use crate::config::Batch;
    let size = match batch {
        None => return if hosts == 0 { vec![] } else { vec![0..hosts] },
        Some(Batch::Count(n)) => n.max(1),
        Some(Batch::Percent(p)) => (hosts * p as usize).div_ceil(100).max(1),
    };
    let mut out = Vec::new();
    if hosts == 0 {
        return out;
    }
    out.push(0..1);
    let mut start = 1;
    while start < hosts {
        let end = (start + size).min(hosts);
        out.push(start..end);
        start = end;
    }
    out
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Which host did what, for a failed multi-host rollout.
pub(crate) fn per_host_report(
    targets: &[Target],
    results: &[(usize, Result<rollout::Report, rollout::Failure>)],
) -> String {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let mut lines = vec![format!(
        "the rollout failed on {failed} of {} host(s); later batches were not started:",
        targets.len()
    )];
    for (i, t) in targets.iter().enumerate() {
        let line = match results.iter().find(|(j, _)| *j == i).map(|(_, r)| r) {
            Some(Ok(r)) => format!("  ✓ {}: release {} healthy", t.host(), r.release),
            Some(Err(f)) => format!(
                "  ✗ {}: {}{}",
                t.host(),
                f.message.replace('\n', "\n      "),
                if f.rolled_back { " (rolled back)" } else { "" }
            ),
            None => format!("  - {}: not started", t.host()),
        };
        lines.push(line);
    }
    lines.join("\n")
}

/// What each host's rollout came to (by target index), and the batch after
/// which the rollout stopped because a host failed (later batches never
/// start).
pub(crate) type Results = (
    Vec<(usize, Result<rollout::Report, rollout::Failure>)>,
    Option<usize>,
);

/// Roll `job` out to `targets`, batch by batch (the first batch is the
/// canary), at most `parallelism` hosts at once; every host's phases go to
/// the audit trail and its outcome to the progress output.
pub(crate) async fn run(
    targets: &[Target],
    job: &Arc<RolloutJob>,
    parallelism: usize,
    plan_batches: &[std::ops::Range<usize>],
    trail: &Trail<'_>,
    out: &crate::report::Reporter,
) -> anyhow::Result<Results> {
    let mut results: Vec<(usize, Result<rollout::Report, rollout::Failure>)> = Vec::new();
    let mut stopped_after = None;
    for (bi, range) in plan_batches.iter().enumerate() {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallelism));
        let mut set = JoinSet::new();
        for i in range.clone() {
            let (target, job, sem) = (targets[i].clone(), Arc::clone(job), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let started = mark();
                let r = roll_one(&target, &job).await;
                (i, r, started)
            });
        }
        let mut failed = false;
        while let Some(joined) = set.join_next().await {
            let (i, result, started) = joined?;
            let target = &targets[i];
            let phases = match &result {
                Ok(r) => r.phases.clone(),
                Err(f) => f.phases.clone(),
            };
            for (name, d) in phases {
                // A failed health check is recorded as failed below, not as ok.
                if result.is_err() && name == "verify-health" {
                    continue;
                }
                let phase = match name {
                    "transfer" => Phase::Transfer,
                    "start" => Phase::Start,
                    "switch" => Phase::Switch,
                    "drain" => Phase::Drain,
                    _ => Phase::VerifyHealth,
                };
                let _ = trail.store.record_phase(
                    trail.id,
                    phase,
                    started.0,
                    d.as_millis() as u64,
                    Outcome::Ok,
                    &target.url(),
                );
            }
            match &result {
                Ok(report) => out.status(
                    &Event::RolloutDone {
                        target: target.url(),
                        host: target.host(),
                        release: &report.release,
                        bytes_sent: report.bytes_sent,
                        health: &report.health,
                    },
                    || {
                        format!(
                            "  ✓ {} healthy ({}; {} bytes sent)",
                            match target {
                                Target::Local(_) => target.url(),
                                Target::Ssh(_) => target.host(),
                            },
                            report.health,
                            report.bytes_sent
                        )
                    },
                ),
                Err(f) => {
                    failed = true;
                    // The phase after the last one completed is the one that failed.
                    let failed_phase = match f.phases.last().map(|(name, _)| *name) {
                        None => Phase::Transfer,
                        Some("transfer") => Phase::Start,
                        Some(_) => Phase::VerifyHealth,
                    };
                    let _ = trail.store.record_phase(
                        trail.id,
                        failed_phase,
                        started.0,
                        started.1.elapsed().as_millis() as u64,
                        Outcome::Failed,
                        &format!("{}: {}", target.host(), f.message),
                    );
                    if f.rolled_back {
                        let _ = trail.store.record_phase(
                            trail.id,
                            Phase::Rollback,
                            now_ms(),
                            0,
                            Outcome::Ok,
                            &format!("{}: switched back to the previous release", target.host()),
                        );
                    }
                    out.status(
                        &Event::RolloutFailed {
                            target: target.url(),
                            host: target.host(),
                            rolled_back: f.rolled_back,
                            error: &f.message,
                        },
                        || format!("  ✗ {}: {}", target.host(), first_line(&f.message)),
                    );
                }
            }
            results.push((i, result));
        }
        if failed {
            stopped_after = Some(bi);
            break;
        }
    }
    results.sort_by_key(|(i, _)| *i);
    Ok((results, stopped_after))
}

#[cfg(test)]
mod tests {
    use super::batches;
    use crate::config::Batch;

    #[test]
    fn batch_plans() {
        assert_eq!(batches(5, None), vec![0..5]);
        assert_eq!(batches(5, Some(Batch::Count(2))), vec![0..1, 1..3, 3..5]);
        assert_eq!(batches(5, Some(Batch::Percent(50))), vec![0..1, 1..4, 4..5]);
        assert_eq!(batches(1, Some(Batch::Count(3))), vec![0..1]);
        assert!(batches(0, None).is_empty());
    }
}
