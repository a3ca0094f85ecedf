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
    /// Linear memory a plugin may grow to.
    pub memory_bytes: usize,
    /// Guest compute allowed between two host calls (an infinite loop is
    /// stopped after this long; time spent in host calls does not count).
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

/// Who is running, for every message and log line.
#[derive(Debug, Clone)]
pub struct PluginIdent {
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for PluginIdent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin '{}' {}", self.name, self.version)
    }
}

/// Refuses memory growth past the cap and remembers that it did, so the
/// resulting trap can be explained.
#[derive(Debug)]
pub struct MemoryCap {
    pub limit: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
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
    /// When the guest last got control back from the host.
    pub(crate) resumed_at: Instant,
    pub(crate) started_at: Instant,
    pub(crate) log_records: usize,
    pub(crate) log_dropped: usize,
    pub(crate) stdout: CappedPipe,
    pub(crate) stderr: CappedPipe,
    /// Set when the host itself ended the call, with the reason.
    pub(crate) stopped: Option<String>,
}

impl HostState {
    pub(crate) fn new(plugin: PluginIdent, session: Arc<Session>, limits: Limits) -> Self {
        let stdout = CappedPipe::new(limits.stdio_bytes);
        let stderr = CappedPipe::new(limits.stdio_bytes);
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
            memory: MemoryCap {
                limit: limits.memory_bytes,
                hit: false,
            },
            plugin,
            session,
            limits,
            resumed_at: now,
            started_at: now,
            log_records: 0,
            log_dropped: 0,
            stdout,
            stderr,
            stopped: None,
        }
    }

    /// Called as every host call returns: guest compute is measured from here.
    pub(crate) fn resume(&mut self) {
        self.resumed_at = Instant::now();
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
