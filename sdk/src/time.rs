//! Clock and sleep. Sleeping suspends only this plugin call; the host keeps
//! serving others, so polling a droplet for ten minutes blocks nobody.

use std::time::Duration;

/// Milliseconds since the Unix epoch, from the host.
pub fn now_ms() -> u64 {
    crate::host::clock::now_ms()
}

/// Sleep on the host.
pub fn sleep(duration: Duration) {
    crate::host::clock::sleep(duration.as_millis() as u64)
}

/// Report progress of a long step (`waiting for droplet`, 3 of 10).
pub fn progress(task: &str, done: u64, total: Option<u64>) {
    crate::host::progress::report(task, done, total)
}

/// Poll `check` every `every` until it returns `Some`, or give up after
/// `timeout` with `None`. Sleeps on the host between checks.
pub fn poll<T, E>(
    every: Duration,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = now_ms() + timeout.as_millis() as u64;
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if now_ms() >= deadline {
            return Ok(None);
        }
        sleep(every);
    }
}
