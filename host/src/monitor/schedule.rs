//! The monitor's loop: every host checked once per interval, the hosts'
//! checks spread evenly over the interval (host *i* of *n* at offset
//! `i·interval/n`) so a hundred services are not probed in one burst, at
//! most [`Options::concurrency`] hosts at once. A host's services are
//! checked together, after one reachability test, so a host that is down
//! is one finding.
//!
//! Checks run on their own tasks; findings come back on a channel to the
//! one loop that owns the [`Tracker`] and announces transitions in the
//! order they were seen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use super::Service;
use super::announce::{Announced, Announcer};
use super::check::{self, HostFinding};
use super::tracker::{Tracker, Transition};

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Each host is checked once per interval.
    pub interval: Duration,
    /// Most hosts checked at the same time.
    pub concurrency: usize,
    /// How long one health probe may take.
    pub probe_timeout: Duration,
}

impl Options {
    /// The defaults for `interval`: 8 hosts at once, probes bounded by the
    /// interval and by 5 s.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            concurrency: 8,
            probe_timeout: interval.min(Duration::from_secs(5)),
        }
    }
}

/// What the loop tells its caller.
#[derive(Debug)]
pub enum Event {
    /// One host was checked.
    Checked(HostFinding),
    /// Something changed, and was announced.
    Transition(Transition, Announced),
}

/// The services grouped by host, hosts in a stable order.
pub fn by_host(services: Vec<Service>) -> Vec<Vec<Service>> {
    let mut groups: BTreeMap<String, Vec<Service>> = BTreeMap::new();
    for s in services {
        groups.entry(s.host()).or_default().push(s);
    }
    groups.into_values().collect()
}

/// Watch `services` until `shutdown` completes, telling `on_event` of every
/// check and every transition.
pub async fn run(
    services: Vec<Service>,
    opts: Options,
    announcer: Announcer,
    mut on_event: impl FnMut(Event),
    shutdown: impl Future<Output = ()>,
) {
    let groups = by_host(services);
    let (tx, mut rx) = mpsc::channel::<HostFinding>(groups.len().max(1) * 2);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let n = groups.len().max(1) as u32;
    for (i, group) in groups.into_iter().enumerate() {
        let offset = opts.interval * i as u32 / n;
        let (tx, permits, opts) = (tx.clone(), permits.clone(), opts.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(start + offset, opts.interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let finding = check::host(&group, opts.probe_timeout).await;
                if tx.send(finding).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut tracker = Tracker::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            finding = rx.recv() => {
                let Some(finding) = finding else { break };
                let transitions = tracker.observe(&finding, crate::state::now_ms());
                on_event(Event::Checked(finding));
                for t in transitions {
                    let announced = announcer.announce(&t).await;
                    on_event(Event::Transition(t, announced));
                }
            }
        }
    }
    tasks.abort_all();
}
