//! Reading a local service's numbers from `/proc`.
//!
//! The local supervisor (`soar __supervise`, host/src/supervise.rs)
//! records its own pid in `<root>/supervisor.pid`; the service is its child
//! process. CPU time, resident memory and start time come from that child's
//! `/proc/<pid>/stat`; restarts are counted from the supervisor's own
//! "started" lines in the service log, which is the only record of them.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use super::metrics::Metrics;
use crate::rollout::service::{live_supervisor, log_file};

/// How much of the log's end is read to count restarts: enough for any
/// realistic number of restarts between two supervisor starts, bounded so a
/// chatty service's big log costs nothing.
const LOG_TAIL: u64 = 1 << 20;

/// The numbers of the service supervised under `root` named `name`.
pub fn local(root: &Path, name: &str) -> Metrics {
    let Some(supervisor) = live_supervisor(root) else {
        return Metrics::default();
    };
    let child = children(supervisor).into_iter().next();
    let mut m = Metrics {
        up: child.is_some(),
        pid: child,
        restarts: Some(restarts(&log_file(root), name)),
        ..Metrics::default()
    };
    if let Some(stat) = child.and_then(Stat::read) {
        m.cpu_seconds = Some(stat.cpu_ticks as f64 / ticks_per_second());
        m.rss_bytes = Some(stat.rss_pages * page_size());
        m.uptime_seconds = boot_time().map(|boot| {
            let started = boot as f64 + stat.start_ticks as f64 / ticks_per_second();
            (now_seconds() - started).max(0.0) as u64
        });
    }
    m
}

/// The fields of `/proc/<pid>/stat` the metrics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// When the process started, in clock ticks after boot.
    pub start_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

impl Stat {
    /// Read `/proc/<pid>/stat`; `None` when the process is gone.
    pub fn read(pid: u32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parse a `stat` line. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted after its last `)`.
    pub fn parse(line: &str) -> Option<Self> {
        let rest: Vec<&str> = line.rsplit_once(')')?.1.split_whitespace().collect();
        // `rest[0]` is field 3 (state): field n is rest[n - 3].
        let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
            rss_pages: field(24)?,
        })
    }
}

/// The pids whose parent is `pid`, from `/proc/<pid>/task/*/children`
/// (or, on kernels without it, a scan of `/proc`).
pub fn children(pid: i32) -> Vec<u32> {
    let listed = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    if let Ok(text) = listed {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Restarts since the supervisor last started: its "started NAME (pid"
/// lines after its last "supervisor for NAME stopped" line, less the first
/// start. Read from the end of the log, at most [`LOG_TAIL`] bytes.
pub fn restarts(log: &Path, name: &str) -> u64 {
    let Ok(mut file) = std::fs::File::open(log) else {
        return 0;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(LOG_TAIL);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return 0;
    }
    count_restarts(&String::from_utf8_lossy(&bytes), name)
}

/// [`restarts`] over the log's text.
pub fn count_restarts(log: &str, name: &str) -> u64 {
    let started = format!("[soar] started {name} (pid ");
    let stopped = format!("[soar] supervisor for {name} stopped");
    let mut starts = 0u64;
    for line in log.lines() {
        if line.starts_with(&stopped) {
            starts = 0;
        } else if line.starts_with(&started) {
            starts += 1;
        }
    }
    starts.saturating_sub(1)
}

/// Clock ticks per second (`USER_HZ`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running kernel.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).unwrap_or(4096)
}

/// Boot time, unix seconds (`btime` in `/proc/stat`).
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    7 3 0 0 20 0 1 0 123456 1000000 250 18446744073709551615";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                cpu_ticks: 10,
                start_ticks: 123456,
                rss_pages: 250
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn restarts_count_starts_since_the_supervisor_last_started() {
        let log = "[soar] started web (pid 1) from /a\nhello\n\
                   [soar] web exited with signal: 9; restarting in 1 s\n\
                   [soar] started web (pid 2) from /a\n\
                   [soar] supervisor for web stopped\n\
                   [soar] started web (pid 3) from /b\n\
                   [soar] started web (pid 4) from /b\n\
                   [soar] started other (pid 5) from /c\n";
        assert_eq!(count_restarts(log, "web"), 1);
        assert_eq!(count_restarts("", "web"), 0);
    }

    #[test]
    fn this_process_has_a_stat() {
        let s = Stat::read(std::process::id()).expect("own stat");
        assert!(s.rss_pages > 0);
    }
}
