//! What one plugin invocation runs inside: the store's data, its limits and
//! the WASI context that grants nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::stdio::CappedPipe;
use crate::session::Session;

/// Bounds on one plugin invocation. Defaults suit real providers; tests
/// tighten them to exercise the bounds quickly.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory one call may hold: all its linear memories and tables
    /// together (a table element costs [`TABLE_ELEMENT_BYTES`]).
    pub memory_bytes: usize,
    /// Guest compute allowed in one call, summed over the whole call: time
    /// spent in host calls does not count, and host calls do not reset it
    /// (an endless loop is stopped after this long, logging or not).
    pub compute_budget: Duration,
    /// Wall-clock deadline of a whole invocation, host calls included
    /// (long enough for a droplet to boot, short enough that nothing hangs).
    pub invocation_timeout: Duration,
    /// Log records kept per invocation; the rest are counted and dropped.
    pub log_records: usize,
    /// Bytes of stdout and of stderr kept per invocation.
    pub stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            compute_budget: Duration::from_secs(10),
            invocation_timeout: Duration::from_secs(30 * 60),
            log_records: 2_000,
            stdio_bytes: 64 << 10,
        }
    }
}

/// Bytes one table element is charged against [`Limits::memory_bytes`]:
/// wasmtime stores a pointer per element (`ResourceLimiter::table_growing`
/// documents it), so a million-entry table costs 8 MiB on a 64-bit host.
pub const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Counts, bytes and deadlines beside [`Limits`]: what one call may create
/// and say. Defaults suit real providers (the bundled ones use one memory,
/// a few tables and a few core instances per call).
#[derive(Debug, Clone)]
pub struct Caps {
    /// Linear memories one call may create, over all its core instances.
    pub memories: usize,
    /// Tables one call may create, over all its core instances.
    pub tables: usize,
    /// Core instances one call may create.
    pub instances: usize,
    /// Wall-clock deadline of `describe`, which `plugin install`, `plugin
    /// list` and every load run: it must answer at once, offline.
    pub describe_timeout: Duration,
    /// Bytes of one log message kept (the rest is clipped, and said so).
    pub log_message_bytes: usize,
    /// Fields of one log record kept.
    pub log_fields: usize,
    /// Bytes of one log record's fields (keys and values together) kept.
    pub log_field_bytes: usize,
    /// Bytes of log records kept per call (message and fields); records
    /// past it are counted and dropped like those past [`Limits::log_records`].
    pub log_bytes: usize,
    /// Distinct progress tasks one call may report; reports of further
    /// tasks are dropped.
    pub progress_tasks: usize,
    /// Bytes of a progress task's name shown.
    pub progress_task_bytes: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            memories: 8,
            tables: 32,
            instances: 64,
            describe_timeout: Duration::from_secs(5),
            log_message_bytes: 4 << 10,
            log_fields: 32,
            log_field_bytes: 4 << 10,
            log_bytes: 1 << 20,
            progress_tasks: 16,
            progress_task_bytes: 80,
        }
    }
}

/// The first `max` bytes of `s` at most, cut on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` bytes with a note of how many were clipped,
/// and whether it was.
pub fn clip(s: &str, max: usize) -> (std::borrow::Cow<'_, str>, bool) {
    let kept = cut(s, max);
    if kept.len() == s.len() {
        return (std::borrow::Cow::Borrowed(s), false);
    }
    let note = format!("{kept}…[{} more bytes clipped]", s.len() - kept.len());
    (std::borrow::Cow::Owned(note), true)
}

/// Who is running, for every message and log line.
#[derive(Debug, Clone)]
pub struct PluginIdent {
    /// The name the plugin describes itself by; until `describe` answered,
    /// the label it was loaded under.
    pub name: String,
    /// The version the plugin describes; `(unknown)` until it has.
    pub version: String,
}

impl std::fmt::Display for PluginIdent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin '{}' {}", self.name, self.version)
    }
}

/// One memory budget over every linear memory and table a call creates,
/// plus limits on how many of them (and of core instances) it may create.
/// Refusals are remembered, so the resulting trap can be explained.
#[derive(Debug)]
pub struct MemoryCap {
    /// Bytes of memories and tables together.
    pub limit: usize,
    /// Bytes granted so far (memories and tables never shrink in a store).
    pub used: usize,
    /// Whether a growth was refused for the budget.
    pub hit: bool,
    /// Linear memories the call may create ([`Caps::memories`]).
    pub memories: usize,
    /// Tables the call may create ([`Caps::tables`]).
    pub tables: usize,
    /// Core instances the call may create ([`Caps::instances`]).
    pub instances: usize,
}

impl MemoryCap {
    /// A fresh budget for one call, nothing granted yet.
    pub fn new(limits: &Limits, caps: &Caps) -> Self {
        Self {
            limit: limits.memory_bytes,
            used: 0,
            hit: false,
            memories: caps.memories,
            tables: caps.tables,
            instances: caps.instances,
        }
    }

    /// Grant `more` bytes if the budget allows it.
    fn grant(&mut self, more: usize) -> bool {
        match self.used.checked_add(more) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => {
                self.hit = true;
                false
            }
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past its own declared maximum the growth fails anyway: refuse it
        // here so nothing is charged for it.
        if max.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        Ok(self.grant(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if max.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        Ok(self.grant(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn memories(&self) -> usize {
        self.memories
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn instances(&self) -> usize {
        self.instances
    }
}

/// Guest compute of one call, summed over the stretches the guest runs
/// between host calls. A stretch runs on one thread (the guest's fiber only
/// moves while suspended, and it suspends only inside host calls), so it is
/// measured in that thread's CPU time: a busy machine does not make a plugin
/// look busier. Wall time is the fallback where thread CPU time is unknown.
#[derive(Debug)]
pub(crate) struct ComputeClock {
    spent: Duration,
    running: Option<Stretch>,
}

#[derive(Debug)]
struct Stretch {
    wall: Instant,
    cpu: Option<Duration>,
    thread: std::thread::ThreadId,
}

impl Stretch {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: thread_cpu_time(),
            thread: std::thread::current().id(),
        }
    }

    fn elapsed(&self) -> Duration {
        if self.thread == std::thread::current().id()
            && let (Some(then), Some(now)) = (self.cpu, thread_cpu_time())
        {
            return now.saturating_sub(then);
        }
        self.wall.elapsed()
    }
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

impl ComputeClock {
    /// A clock whose guest is running (instantiation runs guest code).
    pub(crate) fn running() -> Self {
        Self {
            spent: Duration::ZERO,
            running: Some(Stretch::start()),
        }
    }

    /// The guest got control (a call into wasm, or a host call returned).
    pub(crate) fn guest_runs(&mut self) {
        if self.running.is_none() {
            self.running = Some(Stretch::start());
        }
    }

    /// The host got control (a host call, or wasm returned).
    pub(crate) fn host_runs(&mut self) {
        if let Some(stretch) = self.running.take() {
            self.spent += stretch.elapsed();
        }
    }

    /// Guest compute so far, the running stretch included.
    pub(crate) fn spent(&self) -> Duration {
        self.spent
            + self
                .running
                .as_ref()
                .map_or(Duration::ZERO, Stretch::elapsed)
    }
}

/// The store data of one invocation.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) plugin: PluginIdent,
    pub(crate) session: Arc<Session>,
    pub(crate) limits: Limits,
    pub(crate) caps: Caps,
    /// Wall-clock deadline of this call (`describe` has a shorter one).
    pub(crate) deadline: Duration,
    /// Guest compute of this call so far.
    pub(crate) compute: ComputeClock,
    /// Imports that returned to the guest so far.
    pub(crate) host_calls: u64,
    pub(crate) started_at: Instant,
    pub(crate) log_records: usize,
    pub(crate) log_bytes: usize,
    pub(crate) log_dropped: usize,
    /// Log messages and fields clipped to their byte caps.
    pub(crate) log_clipped: usize,
    /// Distinct progress tasks reported, and reports dropped past the cap.
    pub(crate) progress_tasks: Vec<String>,
    pub(crate) progress_dropped: usize,
    pub(crate) stdout: CappedPipe,
    pub(crate) stderr: CappedPipe,
    /// Set when the host itself ended the call, with the reason.
    pub(crate) stopped: Option<String>,
}

/// Each line of a guest stream, as the plugin's log record (`[stdout] ...`
/// at `level`), with any secret the brokers know scrubbed.
fn log_lines(
    plugin: &PluginIdent,
    session: &Arc<Session>,
    stream: &'static str,
    level: &'static str,
) -> super::stdio::LineSink {
    let (name, session) = (plugin.name.clone(), session.clone());
    Arc::new(move |line: &str| {
        let secrets = session.http.known_secrets();
        session.journal.record(crate::journal::Event::Log {
            plugin: name.clone(),
            level: level.into(),
            message: format!(
                "[{stream}] {}",
                crate::credentials::scrub_str(line, &secrets)
            ),
            fields: vec![],
        });
    })
}

impl HostState {
    pub(crate) fn new(
        plugin: PluginIdent,
        session: Arc<Session>,
        limits: Limits,
        caps: Caps,
        deadline: Duration,
    ) -> Self {
        let stdout = CappedPipe::new(limits.stdio_bytes).with_lines(
            log_lines(&plugin, &session, "stdout", "info"),
            limits.log_records,
        );
        let stderr = CappedPipe::new(limits.stdio_bytes).with_lines(
            log_lines(&plugin, &session, "stderr", "warn"),
            limits.log_records,
        );
        // Nothing is inherited: no preopened directories, no environment,
        // no arguments, no network (TCP, UDP and name lookup stay off and
        // every socket address is refused).
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let now = Instant::now();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(&limits, &caps),
            plugin,
            session,
            limits,
            caps,
            deadline,
            compute: ComputeClock::running(),
            host_calls: 0,
            started_at: now,
            log_records: 0,
            log_bytes: 0,
            log_dropped: 0,
            log_clipped: 0,
            progress_tasks: Vec::new(),
            progress_dropped: 0,
            stdout,
            stderr,
            stopped: None,
        }
    }

    /// Called as an import returns to the guest. Guest compute is measured
    /// by the store's call hook (host time never counts, and returning does
    /// not reset it); this only counts the calls, for messages.
    pub(crate) fn resume(&mut self) {
        self.host_calls += 1;
    }

    /// Wall-clock time left before this call's deadline.
    pub(crate) fn time_left(&self) -> Duration {
        self.deadline.saturating_sub(self.started_at.elapsed())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter as _;

    use super::*;

    fn cap(limit: usize) -> MemoryCap {
        MemoryCap::new(
            &Limits {
                memory_bytes: limit,
                ..Limits::default()
            },
            &Caps::default(),
        )
    }

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut c = cap(64 << 20);
        // Each memory alone is well under the cap; together they are not.
        for _ in 0..7 {
            assert!(c.memory_growing(0, 8 << 20, None).unwrap());
        }
        assert!(!c.hit);
        assert!(!c.memory_growing(0, 9 << 20, None).unwrap());
        assert!(c.hit);
        // A table's elements are charged too: 1 M entries cost 8 MiB.
        let mut c = cap(64 << 20);
        assert!(c.memory_growing(0, 60 << 20, None).unwrap());
        assert!(!c.table_growing(0, 1_000_000, None).unwrap());
        assert!(c.table_growing(0, 1000, None).unwrap());
        assert_eq!(c.used, (60 << 20) + 1000 * TABLE_ELEMENT_BYTES);
    }

    #[test]
    fn growth_is_charged_by_its_increase_and_past_a_maximum_not_at_all() {
        let mut c = cap(10 << 20);
        assert!(c.memory_growing(0, 4 << 20, None).unwrap());
        assert!(c.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert_eq!(c.used, 8 << 20);
        assert!(!c.memory_growing(8 << 20, 9 << 20, Some(8 << 20)).unwrap());
        assert_eq!(c.used, 8 << 20);
        assert!(!c.hit, "refused by its own maximum, not by the budget");
    }

    #[test]
    fn counts_come_from_the_caps() {
        let caps = Caps {
            memories: 2,
            tables: 3,
            instances: 4,
            ..Caps::default()
        };
        let c = MemoryCap::new(&Limits::default(), &caps);
        assert_eq!((c.memories(), c.tables(), c.instances()), (2, 3, 4));
    }

    #[test]
    fn compute_stops_while_the_host_runs() {
        let mut clock = ComputeClock::running();
        // Spin for `d` of this thread's CPU time (wall time on a busy
        // machine is longer, and is not what is measured).
        let spin = |d: Duration| {
            let t = thread_cpu_time().expect("thread CPU time on this platform");
            while thread_cpu_time().unwrap() - t < d {
                std::hint::black_box(0);
            }
        };
        spin(Duration::from_millis(30));
        clock.host_runs();
        let spent = clock.spent();
        assert!(spent >= Duration::from_millis(30), "{spent:?}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(clock.spent(), spent, "host time is not compute");
        clock.guest_runs();
        spin(Duration::from_millis(30));
        clock.host_runs();
        let total = clock.spent();
        assert!(total >= spent + Duration::from_millis(30), "{total:?}");
        assert!(total < spent + Duration::from_millis(60), "{total:?}");
    }

    #[test]
    fn clip_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(clip("short", 10), ("short".into(), false));
        let (s, clipped) = clip("ééé", 3);
        assert!(clipped);
        assert_eq!(s, "é…[4 more bytes clipped]");
        assert_eq!(cut("ééé", 3), "é");
    }
}
