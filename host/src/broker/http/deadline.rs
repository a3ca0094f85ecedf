//! The time limits of one brokered request: its total deadline, and the
//! longest silence while the broker waits on the server (for the answer to
//! a request it sent, or for the next chunk of a body).
//!
//! Both are enforced by one Tokio timer per request, moved as the request
//! makes progress, and kept for the next request instead of being dropped.
//! A timer registered afresh is, whenever it is the earliest one pending,
//! a wake-up of the runtime's driver thread (an `eventfd` write and a
//! context switch). reqwest's own read timeout registered two per request
//! and `timeout_at` a third: in the P2 loopback benchmark that was ~8% of
//! the calling thread's time and ~7 µs of a ~100 µs round trip. Moving a
//! kept timer to a later instant is one atomic update.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The request's total deadline.
    Total,
    /// The server stayed silent for longer than the read timeout.
    Silence,
}

/// `since` when the broker is not waiting on the server.
const NOT_WAITING: u64 = u64::MAX;

/// The limits of one request and where it stands; the code that talks to the
/// server marks each wait on it.
#[derive(Debug)]
pub struct Watch {
    start: Instant,
    total: Instant,
    silence: Duration,
    /// Nanoseconds after `start` at which the current wait on the server
    /// began (or the server last sent something), or [`NOT_WAITING`].
    since: AtomicU64,
}

impl Watch {
    /// Limits starting now: everything within `total`, no silence longer
    /// than `silence` while waiting on the server.
    pub fn new(total: Duration, silence: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            total: start + total,
            silence,
            since: AtomicU64::new(NOT_WAITING),
        }
    }

    /// The total deadline.
    pub fn deadline(&self) -> Instant {
        self.total
    }

    /// A wait on the server starts now: a request is sent, or the server
    /// just sent something and more is expected.
    pub fn waiting(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(NOT_WAITING - 1);
        self.since
            .store(nanos.min(NOT_WAITING - 1), Ordering::Relaxed);
    }

    /// Not waiting on the server (a pause between attempts): only the total
    /// deadline counts.
    pub fn idle(&self) {
        self.since.store(NOT_WAITING, Ordering::Relaxed);
    }

    /// The next limit to run out, and when.
    fn next(&self) -> (Instant, Expired) {
        match self.since.load(Ordering::Relaxed) {
            NOT_WAITING => (self.total, Expired::Total),
            nanos => {
                let silent = self.start + Duration::from_nanos(nanos) + self.silence;
                if silent < self.total {
                    (silent, Expired::Silence)
                } else {
                    (self.total, Expired::Total)
                }
            }
        }
    }
}

/// Timers kept between requests, each with the runtime it belongs to (a
/// timer only works on the runtime it was made on).
#[derive(Default)]
pub struct Timers {
    kept: Mutex<Vec<(tokio::runtime::Id, Pin<Box<Sleep>>)>>,
}

/// Timers kept at most: one per request in flight at once is plenty.
const KEPT: usize = 4;

impl Timers {
    /// Run `fut` under the limits of `watch`.
    pub async fn run<F: Future>(
        &self,
        watch: &Watch,
        mut fut: Pin<&mut F>,
    ) -> Result<F::Output, Expired> {
        let runtime = tokio::runtime::Handle::current().id();
        let mut timer = self
            .take(runtime)
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(watch.next().0)));
        let result = std::future::poll_fn(|cx| {
            // As `tokio::time::timeout`: an answer that is ready wins.
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            loop {
                let (at, which) = watch.next();
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if Instant::now() >= at => return Poll::Ready(Err(which)),
                    // The limit moved after the timer was set: set it again.
                    Poll::Ready(()) => timer.as_mut().reset(at),
                }
            }
        })
        .await;
        self.put(runtime, timer);
        result
    }

    fn take(&self, runtime: tokio::runtime::Id) -> Option<Pin<Box<Sleep>>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Timers of another runtime (one that may be gone) are of no use.
        kept.retain(|(id, _)| *id == runtime);
        kept.pop().map(|(_, timer)| timer)
    }

    fn put(&self, runtime: tokio::runtime::Id, timer: Pin<Box<Sleep>>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT {
            kept.push((runtime, timer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_total_deadline_holds() {
        let timers = Timers::default();
        let watch = Watch::new(Duration::from_secs(5), Duration::from_secs(1));
        let r = timers
            .run(
                &watch,
                std::pin::pin!(tokio::time::sleep(Duration::from_secs(60))),
            )
            .await;
        assert_eq!(r, Err(Expired::Total));
        assert!(watch.start.elapsed() >= Duration::from_secs(5));
        assert!(watch.start.elapsed() < Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_only_while_waiting() {
        let timers = Timers::default();
        // Not waiting on the server: only the total deadline counts.
        let watch = Watch::new(Duration::from_secs(10), Duration::from_secs(1));
        let r = timers
            .run(
                &watch,
                std::pin::pin!(tokio::time::sleep(Duration::from_secs(3))),
            )
            .await;
        assert_eq!(r, Ok(()));

        // Waiting: a silence of more than a second fails.
        let watch = Watch::new(Duration::from_secs(10), Duration::from_secs(1));
        let r = timers
            .run(
                &watch,
                std::pin::pin!(async {
                    watch.waiting();
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }),
            )
            .await;
        assert_eq!(r, Err(Expired::Silence));
        assert!(watch.start.elapsed() < Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_moves_the_silence_limit() {
        let timers = Timers::default();
        let watch = Watch::new(Duration::from_secs(10), Duration::from_secs(1));
        // Something every 600 ms for 3 s: never silent for a second.
        let r = timers
            .run(
                &watch,
                std::pin::pin!(async {
                    for _ in 0..5 {
                        watch.waiting();
                        tokio::time::sleep(Duration::from_millis(600)).await;
                    }
                }),
            )
            .await;
        assert_eq!(r, Ok(()));
        // Then a pause between attempts, longer than the read timeout.
        let watch = Watch::new(Duration::from_secs(10), Duration::from_secs(1));
        let r = timers
            .run(
                &watch,
                std::pin::pin!(async {
                    watch.waiting();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    watch.idle();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    watch.waiting();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }),
            )
            .await;
        assert_eq!(r, Err(Expired::Silence));
        let took = watch.start.elapsed();
        assert!(took >= Duration::from_millis(3500) && took < Duration::from_millis(3600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_serves_the_next_request() {
        let timers = Timers::default();
        for _ in 0..3 {
            let watch = Watch::new(Duration::from_secs(2), Duration::from_secs(1));
            let r = timers
                .run(
                    &watch,
                    std::pin::pin!(async {
                        watch.waiting();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }),
                )
                .await;
            assert_eq!(r, Ok(()));
        }
        assert_eq!(timers.kept.lock().unwrap().len(), 1);
        // A request whose deadline is earlier than the kept timer's.
        let watch = Watch::new(Duration::from_millis(300), Duration::from_secs(1));
        let r = timers
            .run(
                &watch,
                std::pin::pin!(tokio::time::sleep(Duration::from_secs(1))),
            )
            .await;
        assert_eq!(r, Err(Expired::Total));
        assert!(watch.start.elapsed() < Duration::from_millis(400));
    }
}
