//! The wasmtime host: compiles plugins once, then runs every call in a fresh
//! sandbox with a memory budget (all memories and tables together), limits on
//! what it may create, a cumulative compute budget and a wall-clock deadline.
//!
//! A [`Runtime`] owns the engine (with an epoch ticker) and the linker that
//! provides the imports. [`Runtime::load`] turns component bytes into a
//! [`Plugin`]: compiled (or fetched from the cache), checked against the
//! contract version, pre-instantiated and described. Each [`Plugin`] method
//! is one export call in its own `Store`, so no state leaks between calls.

pub mod cache;
pub mod described;
mod imports;
pub mod precheck;
pub mod sandbox;
mod stdio;
mod v0_1;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{CallHook, Config, Engine, Store, Trap, UpdateDeadline};

use self::cache::{CacheOutcome, CompileCache};
use self::sandbox::HostState;
pub use self::sandbox::{Caps, Limits, PluginIdent, TABLE_ELEMENT_BYTES};
use crate::contract::v0_1::convert;
use crate::contract::{
    Applied, Change, ChangePlan, Context, Description, Diagnostic, PluginError, PluginPre,
    ResourceStatus,
};
use crate::journal::Event;
use crate::session::Session;

/// How often the epoch advances; the granularity of compute budgets.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Memory, compute and time budgets of every plugin call.
    pub limits: Limits,
}

/// The engine, linker and compile cache shared by all plugins.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: CompileCache,
    limits: Limits,
    caps: Caps,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Why a plugin call did not return a value.
///
/// Its `Display` is what users see, so every plugin-supplied part (the
/// plugin's version, its error message, its stderr in a trap reason) is
/// escaped by [`crate::terminal::line`]; the fields keep the raw values.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error of its own.
    #[error("{}: {}", crate::terminal::line(&.plugin.to_string()), render_plugin_error(.error))]
    Plugin {
        /// Which plugin answered.
        plugin: PluginIdent,
        /// Its error value, as the plugin sent it (unescaped).
        error: Box<PluginError>,
    },
    /// The sandbox ended the call (trap, deadline, memory cap...).
    #[error("{} failed in {call}: {}", crate::terminal::line(&.plugin.to_string()), crate::terminal::line(.reason))]
    Trapped {
        /// Which plugin was running.
        plugin: PluginIdent,
        /// The contract function called: `describe`, `plan`, `apply`, ...
        call: &'static str,
        /// Why the sandbox stopped it, with the tail of the plugin's stderr
        /// (raw: only `Display` escapes it).
        reason: String,
    },
}

impl CallError {
    /// Why this failure may pass if the same call is made a little later,
    /// judged from the plugin's typed error (never its words): the cloud
    /// rate-limited it (HTTP 429) or failed (5xx), or the broker saw a
    /// timeout or a broken connection. `None` for anything a retry cannot
    /// change: a 4xx, a denial, a bad configuration, a trapped call.
    pub fn transient(&self) -> Option<&'static str> {
        use crate::contract::TransportReason as R;
        let CallError::Plugin { error, .. } = self else {
            return None;
        };
        match error.as_ref() {
            PluginError::Api(a) if a.status == 429 => Some("rate limited (HTTP 429)"),
            PluginError::Api(a) if (500..=599).contains(&a.status) => Some("server error (5xx)"),
            PluginError::Transport(t) if t.reason == R::Timeout => Some("timed out"),
            PluginError::Transport(t) if t.reason == R::Connection => Some("connection failed"),
            _ => None,
        }
    }
}

/// One line for a plugin's error value, safe to print: every string the
/// plugin supplied is escaped by [`crate::terminal::line`], newlines
/// included, so it stays one line and cannot act on the terminal.
pub fn render_plugin_error(e: &PluginError) -> String {
    use crate::terminal::line;
    match e {
        PluginError::InvalidConfig(diags) => {
            let lines: Vec<String> = diags
                .iter()
                .map(|d| {
                    let mut s = line(&d.message).into_owned();
                    if let Some(f) = &d.field {
                        s = format!("{}: {s}", line(f));
                    }
                    if let Some(h) = &d.hint {
                        s.push_str(&format!(" ({})", line(h)));
                    }
                    s
                })
                .collect();
            format!("invalid configuration: {}", lines.join("; "))
        }
        PluginError::Api(a) => {
            let mut s = format!(
                "API error {} {}: {}",
                a.status,
                line(&a.code),
                line(&a.message)
            );
            if let Some(id) = &a.request_id {
                s.push_str(&format!(" (request id {})", line(id)));
            }
            s
        }
        PluginError::Transport(t) => transport_error_text(t),
        PluginError::Other(m) => line(m).into_owned(),
    }
}

/// A transport error a plugin passed on, worded from its reason: the same
/// words for every plugin, whatever its language. A missing credential is
/// the user's to fix and says so itself.
fn transport_error_text(t: &crate::contract::TransportError) -> String {
    use crate::contract::TransportReason as R;
    let m = crate::terminal::line(&t.message);
    match t.reason {
        R::CredentialMissing | R::TooLarge => m.into_owned(),
        R::Undeclared | R::NotGranted | R::Denied => format!("denied by the host: {m}"),
        R::Timeout => format!("timed out: {m}"),
        R::Invalid => format!("invalid request: {m}"),
        R::Dns | R::Tls | R::Connection | R::HostKey => {
            format!("request failed ({}): {m}", t.reason.as_str())
        }
    }
}

/// Why a call ended at its wall-clock deadline.
fn late(call: &str, deadline: Duration) -> String {
    if call == "describe" {
        late_reason(deadline, Duration::MAX)
    } else {
        late_reason(deadline, deadline)
    }
}

/// The deadline message: `describe`'s short deadline says what it is for.
fn late_reason(deadline: Duration, invocation_timeout: Duration) -> String {
    if deadline < invocation_timeout {
        format!(
            "{DESCRIBE_LATE} {} ms: `describe` must answer at once and offline (install, list and every load run it)",
            deadline.as_millis()
        )
    } else {
        format!("exceeded its deadline of {} s", deadline.as_secs())
    }
}

/// Which count wasmtime refused (`resource limit exceeded: memory count too
/// high at 9`), in words.
fn count_limit(err: &str) -> Option<&'static str> {
    let (_, rest) = err.split_once("resource limit exceeded: ")?;
    if rest.starts_with("memory count") {
        Some("linear memories")
    } else if rest.starts_with("table count") {
        Some("tables")
    } else if rest.starts_with("instance count") {
        Some("core instances")
    } else {
        None
    }
}

/// A component pre-instantiated with the bindings of the contract version
/// it was built for.
enum Pre {
    /// The current contract.
    Current(PluginPre<HostState>),
    /// `soar:plugin@0.1.0`, called through [`convert`].
    V0_1(crate::contract::v0_1::PluginPre<HostState>),
}

/// A compiled, checked, described plugin, ready to be called.
pub struct Plugin {
    pre: Pre,
    engine: Engine,
    ident: PluginIdent,
    description: Description,
    wit_version: String,
    digest: String,
    cache: CacheOutcome,
    limits: Limits,
    caps: Caps,
}

impl Runtime {
    /// An engine configured for sandboxed plugins, with its epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        // Deep recursion traps here instead of exhausting the host's stack.
        cfg.max_wasm_stack(1 << 20);
        let engine = Engine::new(&cfg)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::contract::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        // 0.1.0 components import the same interfaces at their own version;
        // runtime/v0_1.rs implements them by converting to the current ones.
        crate::contract::v0_1::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("soar-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })?;
        Ok(Self {
            engine,
            linker,
            cache: CompileCache::new(config.cache_dir),
            limits: config.limits,
            caps: Caps::default(),
            ticker_stop,
        })
    }

    /// The same runtime with other [`Caps`] for the plugins it loads next.
    pub fn with_caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
        self
    }

    /// The caps every plugin loaded from now on runs under.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The wasmtime engine (for tools that precompile).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or load from cache), check the contract version, link and
    /// describe a component. `label` names it in errors until it has
    /// described itself.
    pub async fn load(&self, label: &str, bytes: &[u8]) -> anyhow::Result<Plugin> {
        self.load_digested(label, bytes, hex::encode(Sha256::digest(bytes)))
            .await
    }

    /// [`Runtime::load`] for bytes whose sha256 (lowercase hex) the caller
    /// already holds, as a [`crate::catalog::Entry`] does (for bundled
    /// plugins, computed at build time), so they are not hashed again. The
    /// digest keys the compile cache: it must be that of `bytes`.
    pub async fn load_digested(
        &self,
        label: &str,
        bytes: &[u8],
        digest: String,
    ) -> anyhow::Result<Plugin> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            anyhow::bail!("plugin '{label}' is not a WebAssembly file (no \\0asm header)");
        }
        if wasmparser_is_core_module(bytes) {
            anyhow::bail!(
                "plugin '{label}' is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
            );
        }
        // The import check exists to spare a compile: a component already in
        // the compile cache skips it (every command loads the bundled ones),
        // and a link failure below is explained by it instead.
        let explain = |e: precheck::Unsupported| anyhow::anyhow!(e.explain(label));
        if !self.cache.holds(&self.engine, &digest) {
            precheck::check(bytes).map_err(explain)?;
        }
        let (component, cache) = self
            .cache
            .load_or_compile(&self.engine, &digest, bytes)
            .map_err(|e| anyhow::anyhow!("plugin '{label}' is not a valid component: {e:#}"))?;
        let wit_version = crate::contract::version::version_of(&self.engine, &component)
            .map_err(|e| anyhow::anyhow!("plugin '{label}': {e}"))?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            if let Err(unsupported) = precheck::check(bytes) {
                return explain(unsupported);
            }
            anyhow::anyhow!(
                "plugin '{label}' needs imports this host does not provide: {e:#}. Plugins reach the world only through the soar:plugin interfaces"
            )
        })?;
        let mismatch = |e: wasmtime::Error| {
            anyhow::anyhow!(
                "plugin '{label}' does not match the soar:plugin@{wit_version} world: {e:#}"
            )
        };
        let pre = if wit_version.starts_with("0.1.") {
            Pre::V0_1(crate::contract::v0_1::PluginPre::new(instance_pre).map_err(mismatch)?)
        } else {
            Pre::Current(PluginPre::new(instance_pre).map_err(mismatch)?)
        };
        let mut plugin = Plugin {
            pre,
            engine: self.engine.clone(),
            ident: PluginIdent {
                name: label.to_string(),
                version: "(unknown)".into(),
            },
            description: Description {
                name: label.to_string(),
                version: String::new(),
                summary: String::new(),
                artifacts: vec![],
                settings_schema: String::new(),
                capabilities: crate::contract::Capabilities {
                    endpoints: vec![],
                    extra_hosts: vec![],
                    credentials: vec![],
                    ssh: false,
                },
            },
            wit_version,
            digest,
            cache,
            limits: self.limits.clone(),
            caps: self.caps.clone(),
        };
        let session = Arc::new(Session::offline(label)?);
        let description = plugin.describe(session).await.map_err(|e| match e {
            CallError::Trapped { reason, .. } if reason.starts_with(DESCRIBE_LATE) => {
                anyhow::anyhow!("plugin '{label}' {reason}")
            }
            e => e.into(),
        })?;
        validate_description(label, &description)?;
        plugin.ident = PluginIdent {
            name: description.name.clone(),
            version: description.version.clone(),
        };
        plugin.description = description;
        Ok(plugin)
    }
}

/// How a `describe` past its deadline is reported.
const DESCRIBE_LATE: &str = "did not describe itself within";

/// Cheap check of the binary header: version 1 is a core module, a
/// component has its own layer byte.
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[4..8] == [1, 0, 0, 0]
}

fn validate_description(label: &str, d: &Description) -> anyhow::Result<()> {
    if !crate::catalog::valid_name(&d.name) {
        anyhow::bail!(
            "plugin '{label}' describes itself with an invalid name {:?}: use 1-63 lowercase letters, digits and inner hyphens",
            d.name
        );
    }
    if d.version.is_empty() {
        anyhow::bail!("plugin '{}' describes no version", d.name);
    }
    for e in &d.capabilities.endpoints {
        match url::Url::parse(&e.default_url) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            _ => anyhow::bail!(
                "plugin '{}' declares endpoint '{}' as {:?}: declared endpoints must be https URLs",
                d.name,
                e.name,
                e.default_url
            ),
        }
    }
    for c in &d.capabilities.credentials {
        for ep in &c.endpoints {
            if !d.capabilities.endpoints.iter().any(|e| &e.name == ep) {
                anyhow::bail!(
                    "plugin '{}' binds credential '{}' to undeclared endpoint '{ep}'",
                    d.name,
                    c.name
                );
            }
        }
    }
    Ok(())
}

/// Run one export call in a fresh store and explain any failure.
macro_rules! invoke {
    ($self:ident, $pre:expr, $session:expr, $call:literal, |$inst:ident, $store:ident| $body:expr) => {{
        let deadline = $self.deadline_of($call);
        let mut $store = $self.new_store($session, deadline);
        // The store's own check ends a guest that computes; this ends one
        // waiting in a host call, shortly after the deadline.
        let limit = deadline + (deadline / 10).min(Duration::from_secs(5));
        let result = tokio::time::timeout(limit, async {
            let $inst = $pre.instantiate_async(&mut $store).await?;
            $body.await
        })
        .await;
        let result = match result {
            Ok(r) => r,
            Err(_) => {
                $store.data_mut().stopped = Some(late($call, deadline));
                Err(wasmtime::Error::msg(format!(
                    "did not finish within {} ms",
                    limit.as_millis()
                )))
            }
        };
        $self.finish(&mut $store, $call, result)
    }};
}

impl Plugin {
    /// What the plugin said about itself at load.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The `soar:plugin` version it implements.
    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }

    /// sha256 of the component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether loading hit the compile cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The counts, bytes and deadlines every call runs under.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Wall-clock deadline of one call: `describe` must answer at once.
    fn deadline_of(&self, call: &str) -> Duration {
        if call == "describe" {
            self.caps
                .describe_timeout
                .min(self.limits.invocation_timeout)
        } else {
            self.limits.invocation_timeout
        }
    }

    fn new_store(&self, session: Arc<Session>, deadline: Duration) -> Store<HostState> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(
                self.ident.clone(),
                session,
                self.limits.clone(),
                self.caps.clone(),
                deadline,
            ),
        );
        store.limiter(|s| &mut s.memory);
        // Guest compute is summed between host calls: the clock stops while
        // the host runs (imports, WASI, libcalls) and goes on when the guest
        // does, so returning to the host never resets it.
        store.call_hook(|mut ctx, hook| {
            let compute = &mut ctx.data_mut().compute;
            match hook {
                CallHook::CallingWasm | CallHook::ReturningFromHost => compute.guest_runs(),
                CallHook::CallingHost | CallHook::ReturningFromWasm => compute.host_runs(),
            }
            Ok(())
        });
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.started_at.elapsed() > state.deadline {
                let reason = late_reason(state.deadline, state.limits.invocation_timeout);
                state.stopped = Some(reason.clone());
                return Err(wasmtime::Error::msg(reason));
            }
            let spent = state.compute.spent();
            if spent > state.limits.compute_budget {
                let budget = state.limits.compute_budget.as_millis();
                let reason = if state.host_calls == 0 {
                    format!(
                        "computed for more than {budget} ms without returning to the host (an endless loop?); the call was stopped"
                    )
                } else {
                    format!(
                        "computed for more than {budget} ms in this call (its compute budget; time in its {} host calls is not counted, and they do not reset it); the call was stopped",
                        state.host_calls
                    )
                };
                state.stopped = Some(reason.clone());
                return Err(wasmtime::Error::msg(reason));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Record the call's stdout/stderr and turn a failure into a message
    /// that says what the plugin did.
    fn finish<R>(
        &self,
        store: &mut Store<HostState>,
        call: &'static str,
        result: wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let state = store.data();
        let secrets = state.session.http.known_secrets();
        let stderr = crate::credentials::scrub_str(&state.stderr.contents(), &secrets);
        // Whole lines went to the log as they were written.
        state.stdout.finish_lines();
        state.stderr.finish_lines();
        if state.log_dropped > 0 {
            let message = if state.log_records >= state.limits.log_records {
                format!(
                    "{} log records dropped: a call keeps at most {}",
                    state.log_dropped, state.limits.log_records
                )
            } else {
                format!(
                    "{} log records dropped: a call keeps at most {} records and {} bytes of them",
                    state.log_dropped, state.limits.log_records, state.caps.log_bytes
                )
            };
            state.session.journal.record(Event::Log {
                plugin: self.ident.name.clone(),
                level: "warn".into(),
                message,
                fields: vec![],
            });
        }
        if state.log_clipped > 0 {
            state.session.journal.record(Event::Log {
                plugin: self.ident.name.clone(),
                level: "warn".into(),
                message: format!(
                    "{} log messages or fields clipped: a record keeps {} bytes of message and {} bytes of at most {} fields",
                    state.log_clipped,
                    state.caps.log_message_bytes,
                    state.caps.log_field_bytes,
                    state.caps.log_fields
                ),
                fields: vec![],
            });
        }
        if state.progress_dropped > 0 {
            state.session.journal.record(Event::Log {
                plugin: self.ident.name.clone(),
                level: "warn".into(),
                message: format!(
                    "{} progress reports dropped: a call reports at most {} tasks",
                    state.progress_dropped, state.caps.progress_tasks
                ),
                fields: vec![],
            });
        }
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let mut reason = if let Some(stopped) = &state.stopped {
            stopped.clone()
        } else if state.memory.hit {
            format!(
                "exceeded its memory cap of {} MiB (all its linear memories and tables together)",
                state.limits.memory_bytes >> 20
            )
        } else if let Some(what) = count_limit(&format!("{err:#}")) {
            let caps = &state.caps;
            format!(
                "creates more {what} than a call may: at most {} linear memories, {} tables and {} core instances",
                caps.memories, caps.tables, caps.instances
            )
        } else if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            // `std::process::exit` in a guest ends only its sandbox; say so
            // instead of showing wasmtime's backtrace of the exit call.
            format!(
                "called exit (status {}) instead of returning a result",
                exit.0
            )
        } else {
            match err.downcast_ref::<Trap>() {
                Some(Trap::StackOverflow) => {
                    "exhausted its call stack (runaway recursion)".to_string()
                }
                Some(Trap::UnreachableCodeReached) => {
                    "panicked (wasm `unreachable` executed)".to_string()
                }
                Some(t) => format!("trapped: {t}"),
                None => crate::credentials::scrub_str(&format!("{err:#}"), &secrets),
            }
        };
        let tail: String = stderr
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !tail.trim().is_empty() {
            reason.push_str(&format!("; its stderr: {}", tail.trim()));
        }
        Err(CallError::Trapped {
            plugin: self.ident.clone(),
            call,
            reason,
        })
    }

    fn plugin_error<R>(&self, r: Result<R, PluginError>) -> Result<R, CallError> {
        r.map_err(|error| CallError::Plugin {
            plugin: self.ident.clone(),
            error: Box::new(error),
        })
    }

    /// `describe`, run offline.
    pub async fn describe(&self, session: Arc<Session>) -> Result<Description, CallError> {
        match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "describe", |inst, store| inst
                .soar_plugin_provider()
                .call_describe(&mut store)),
            Pre::V0_1(pre) => invoke!(self, pre, session, "describe", |inst, store| inst
                .soar_plugin_provider()
                .call_describe(&mut store))
            .map(convert::description),
        }
    }

    /// `validate`.
    pub async fn validate(
        &self,
        session: Arc<Session>,
        ctx: &Context,
    ) -> Result<Vec<Diagnostic>, CallError> {
        match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "validate", |inst, store| inst
                .soar_plugin_provider()
                .call_validate(&mut store, ctx)),
            Pre::V0_1(pre) => {
                let ctx = convert::context(ctx);
                invoke!(self, pre, session, "validate", |inst, store| inst
                    .soar_plugin_provider()
                    .call_validate(&mut store, &ctx))
                .map(convert::diagnostics)
            }
        }
    }

    /// `plan`.
    pub async fn plan(
        &self,
        session: Arc<Session>,
        ctx: &Context,
    ) -> Result<ChangePlan, CallError> {
        let r = match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "plan", |inst, store| inst
                .soar_plugin_provider()
                .call_plan(&mut store, ctx))?,
            Pre::V0_1(pre) => {
                let ctx = convert::context(ctx);
                invoke!(self, pre, session, "plan", |inst, store| inst
                    .soar_plugin_provider()
                    .call_plan(&mut store, &ctx))?
                .map(convert::change_plan)
                .map_err(convert::plugin_error)
            }
        };
        self.plugin_error(r)
    }

    /// `apply` one change.
    pub async fn apply(
        &self,
        session: Arc<Session>,
        ctx: &Context,
        change: &Change,
    ) -> Result<Applied, CallError> {
        let r = match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "apply", |inst, store| inst
                .soar_plugin_provider()
                .call_apply(&mut store, ctx, change))?,
            Pre::V0_1(pre) => {
                let (ctx, change) = (convert::context(ctx), convert::change(change));
                invoke!(self, pre, session, "apply", |inst, store| inst
                    .soar_plugin_provider()
                    .call_apply(&mut store, &ctx, &change))?
                .map(convert::applied)
                .map_err(convert::plugin_error)
            }
        };
        self.plugin_error(r)
    }

    /// `plan-destroy`.
    pub async fn plan_destroy(
        &self,
        session: Arc<Session>,
        ctx: &Context,
    ) -> Result<ChangePlan, CallError> {
        let r = match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "plan-destroy", |inst, store| inst
                .soar_plugin_provider()
                .call_plan_destroy(&mut store, ctx))?,
            Pre::V0_1(pre) => {
                let ctx = convert::context(ctx);
                invoke!(self, pre, session, "plan-destroy", |inst, store| inst
                    .soar_plugin_provider()
                    .call_plan_destroy(&mut store, &ctx))?
                .map(convert::change_plan)
                .map_err(convert::plugin_error)
            }
        };
        self.plugin_error(r)
    }

    /// `status`.
    pub async fn status(
        &self,
        session: Arc<Session>,
        ctx: &Context,
    ) -> Result<Vec<ResourceStatus>, CallError> {
        let r = match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "status", |inst, store| inst
                .soar_plugin_provider()
                .call_status(&mut store, ctx))?,
            Pre::V0_1(pre) => {
                let ctx = convert::context(ctx);
                invoke!(self, pre, session, "status", |inst, store| inst
                    .soar_plugin_provider()
                    .call_status(&mut store, &ctx))?
                .map(convert::resource_statuses)
                .map_err(convert::plugin_error)
            }
        };
        self.plugin_error(r)
    }

    /// `logs` of one resource.
    pub async fn logs(
        &self,
        session: Arc<Session>,
        ctx: &Context,
        resource: &str,
        lines: u32,
    ) -> Result<Vec<String>, CallError> {
        let r = match &self.pre {
            Pre::Current(pre) => invoke!(self, pre, session, "logs", |inst, store| inst
                .soar_plugin_provider()
                .call_logs(&mut store, ctx, resource, lines))?,
            Pre::V0_1(pre) => {
                let ctx = convert::context(ctx);
                invoke!(self, pre, session, "logs", |inst, store| inst
                    .soar_plugin_provider()
                    .call_logs(&mut store, &ctx, resource, lines))?
                .map_err(convert::plugin_error)
            }
        };
        self.plugin_error(r)
    }
}
