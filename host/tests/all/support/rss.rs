//! The peak resident memory of one child process, read from the child's own
//! `VmHWM` while it runs.
//!
//! `wait4`'s `ru_maxrss` is not that figure on Linux: `exec` folds the high
//! water mark of the memory it replaces into the process's, and a child
//! spawned from this test binary (with `fork`, or `vfork` through
//! `posix_spawn`) replaces a copy of the test binary's own memory, so
//! `ru_maxrss` is at least what the test binary held then, with every other
//! test running in it. `VmHWM` belongs to the child's new address space only.
//!
//! Polled every millisecond: a peak shorter than that between two reads could
//! be missed, which the bounds the tests check (hundreds of MiB) make moot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Watches one process's peak RSS until [`PeakRss::finish`].
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    watcher: JoinHandle<u64>,
}

/// Start watching process `pid` (call right after spawning it).
pub fn watch(pid: u32) -> PeakRss {
    let stop = Arc::new(AtomicBool::new(false));
    let watching = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while !watching.load(Ordering::Relaxed) {
            if let Some(kib) = vm_hwm_kib(pid) {
                peak = peak.max(kib);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        peak
    });
    PeakRss { stop, watcher }
}

impl PeakRss {
    /// The highest `VmHWM` seen, in KiB (call once the child has exited).
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.watcher.join().expect("the RSS watcher")
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
