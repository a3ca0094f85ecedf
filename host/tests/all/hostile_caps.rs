//! Issue 12, findings 11, 13 and 14: the sandbox's caps hold against a
//! plugin that looks for the gaps between them.
//!
//! - One memory budget covers every linear memory and table of a call, and
//!   the number of memories, tables and core instances is capped. Rust source
//!   cannot declare extra memories or tables, so these cases are components
//!   built here, from a core module written with `wasm-encoder` and wrapped by
//!   `wit-component` for the real `soar:plugin` world: the host loads them like
//!   any plugin, and their `plan` grows memories and tables as told.
//! - Log records, denied URLs and SSH commands are bounded in bytes (per
//!   record, per call, and in the command's journal).
//! - Guest compute is budgeted per call, summed over host calls: calling the
//!   host now and then does not reset it.
//! - `describe` answers under a short deadline, so a slow one cannot stall
//!   `plugin install` (checked through the real binary too).
//!
//! The peak RSS of the host is measured for the memory, table, log and URL
//! cases in child processes (this test binary re-run on one case, its peak
//! read from its own `VmHWM`, see `support::rss`): it must stay below a
//! bound. With
//! `SOAR_CAPS_MEASURE_BEFORE=1` each case also runs with the caps lifted to
//! what they were before (per-memory cap, tables free, counts not bytes) and
//! both figures are printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soar::broker::http::HttpLimits;
use soar::contract::{ChangePlan, Context};
use soar::journal::{Event, Journal, JournalBounds};
use soar::runtime::{CallError, Caps, Limits, Plugin, Runtime};
use soar::session::{Session, SessionConfig};
use soar_tests::components;

use crate::support::{self, Home, Vars};

/// Tight limits, so the runaway cases end quickly.
fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        compute_budget: Duration::from_millis(1500),
        invocation_timeout: Duration::from_secs(60),
        log_records: 2_000,
        stdio_bytes: 4096,
    }
}

/// What the host allowed before issue 12: a cap per memory, tables and
/// counts free, log records bounded in count only, journal strings whole.
fn before() -> (Limits, Caps, JournalBounds) {
    (
        Limits {
            memory_bytes: 64 << 30,
            log_records: 2_000,
            ..Limits::default()
        },
        Caps {
            memories: 10_000,
            tables: 10_000,
            instances: 10_000,
            log_message_bytes: usize::MAX,
            log_field_bytes: usize::MAX,
            log_bytes: usize::MAX,
            ..Caps::default()
        },
        JournalBounds {
            bytes: usize::MAX,
            log_bytes: usize::MAX,
            text_bytes: usize::MAX,
            message_bytes: usize::MAX,
            ..JournalBounds::default()
        },
    )
}

/// A log record: its message and fields.
type Record = (String, Vec<(String, String)>);

struct Harness {
    runtime: Runtime,
    journal: Arc<Journal>,
}

impl Harness {
    fn new() -> Self {
        Self::with(limits(), Caps::default(), JournalBounds::default())
    }

    fn with(limits: Limits, caps: Caps, bounds: JournalBounds) -> Self {
        let runtime = support::runtime(limits).with_caps(caps);
        Self {
            runtime,
            journal: Arc::new(Journal::with_bounds(bounds)),
        }
    }

    async fn load(&self, label: &str, bytes: &[u8]) -> Plugin {
        self.runtime
            .load(label, bytes)
            .await
            .unwrap_or_else(|e| panic!("{label} loads: {e:#}"))
    }

    async fn hostile(&self) -> Plugin {
        self.load("hostile", components::hostile()).await
    }

    async fn plan(&self, plugin: &Plugin, settings: Value) -> Result<ChangePlan, CallError> {
        let session = Arc::new(
            Session::new(
                plugin.description(),
                SessionConfig {
                    grants: support::grants(&[]),
                    credential_env: BTreeMap::new(),
                    secrets: Box::new(Vars::none()),
                    artifact: None,
                    journal: self.journal.clone(),
                    http_limits: HttpLimits::default(),
                },
            )
            .expect("session"),
        );
        let ctx = Context {
            app: "app".into(),
            environment: "test".into(),
            settings: settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: None,
        };
        plugin.plan(session, &ctx).await
    }

    /// Log events of plugin `name`: (message, fields) and their bytes.
    fn logs(&self, name: &str) -> (Vec<Record>, usize) {
        let logs: Vec<_> = self
            .journal
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Log {
                    plugin,
                    message,
                    fields,
                    ..
                } if plugin == name => Some((message, fields)),
                _ => None,
            })
            .collect();
        let bytes = logs
            .iter()
            .map(|(m, f)| m.len() + f.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
            .sum();
        (logs, bytes)
    }
}

fn failure(r: Result<ChangePlan, CallError>) -> String {
    match r {
        Ok(plan) => panic!("the hostile call succeeded: {plan:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "expected {n:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// Components Rust cannot express: extra memories, tables, a slow describe.
// ---------------------------------------------------------------------------

/// What a built component's `describe` does.
#[derive(Debug, Clone, Copy)]
enum Describe {
    /// Answers at once.
    Ok,
    /// Sleeps on the host forever (`clock.sleep`): not guest compute.
    Sleep,
    /// Spins forever.
    Spin,
}

/// What a built component's `plan` does: grow each extra memory by
/// `memory_pages` and fill it, and each table by `table_elements`; a refused
/// growth traps. Then it answers an empty plan.
#[derive(Debug, Clone, Copy, Default)]
struct Bomb {
    memories: u32,
    memory_pages: u32,
    tables: u32,
    table_elements: u32,
}

/// Offsets in memory 0 of what `describe` and `plan` return.
const DESCRIPTION_AT: u32 = 1024;
const PLAN_AT: u32 = 1200;
const STRINGS_AT: u32 = 2048;
const HEAP_AT: i32 = 64 << 10;

/// A `soar:plugin@0.1.0` component named `name`.
#[allow(
    clippy::too_many_lines,
    reason = "one component, section by section, in the order the binary format wants"
)]
fn component(name: &str, describe: Describe, bomb: Bomb) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function,
        FunctionSection, GlobalSection, GlobalType, HeapType, ImportSection, Instruction as I,
        MemorySection, MemoryType, Module, RefType, TableSection, TableType, TypeSection, ValType,
    };
    use wit_parser::abi::{AbiVariant, WasmType};
    use wit_parser::{Resolve, WorldItem};

    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(&wit).expect("wit/ parses");
    let world = resolve
        .select_world(&[pkg], Some("plugin"))
        .expect("the plugin world");
    let provider = resolve.worlds[world]
        .exports
        .values()
        .find_map(|item| match item {
            WorldItem::Interface { id, .. } => Some(*id),
            _ => None,
        })
        .expect("the world exports provider");
    let provider_name = resolve.id_of(provider).expect("a named interface");
    let val = |t: &WasmType| match t {
        WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
        WasmType::F32 => ValType::F32,
        WasmType::F64 => ValType::F64,
        _ => ValType::I32,
    };

    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    let mut next_type = 0u32;
    let mut next_func = 0u32;

    // clock.sleep, for the sleeping describe.
    types.ty().function([ValType::I64], []);
    let sleep_type = next_type;
    next_type += 1;
    if matches!(describe, Describe::Sleep) {
        let clock = resolve
            .interfaces
            .iter()
            .find(|(_, i)| i.name.as_deref() == Some("clock"))
            .map(|(id, _)| resolve.id_of(id).expect("named"))
            .expect("a clock interface");
        imports.import(&clock, "sleep", EntityType::Function(sleep_type));
        next_func += 1;
    }
    let sleep_func = 0;

    let iface = &resolve.interfaces[provider];
    for (fname, func) in &iface.functions {
        let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
        types.ty().function(
            sig.params.iter().map(val).collect::<Vec<_>>(),
            sig.results.iter().map(val).collect::<Vec<_>>(),
        );
        functions.function(next_type);
        exports.export(
            &format!("{provider_name}#{fname}"),
            ExportKind::Func,
            next_func,
        );
        let mut f = Function::new([]);
        match fname.as_str() {
            "describe" => {
                match describe {
                    Describe::Ok => {}
                    Describe::Sleep => {
                        f.instruction(&I::Loop(wasm_encoder::BlockType::Empty));
                        f.instruction(&I::I64Const(3_600_000));
                        f.instruction(&I::Call(sleep_func));
                        f.instruction(&I::Br(0));
                        f.instruction(&I::End);
                        f.instruction(&I::Unreachable);
                    }
                    Describe::Spin => {
                        f.instruction(&I::Loop(wasm_encoder::BlockType::Empty));
                        f.instruction(&I::Br(0));
                        f.instruction(&I::End);
                        f.instruction(&I::Unreachable);
                    }
                }
                f.instruction(&I::I32Const(DESCRIPTION_AT as i32));
            }
            "plan" => {
                for m in 1..=bomb.memories {
                    f.instruction(&I::I32Const(bomb.memory_pages as i32));
                    f.instruction(&I::MemoryGrow(m));
                    f.instruction(&I::I32Const(-1));
                    f.instruction(&I::I32Eq);
                    f.instruction(&I::If(wasm_encoder::BlockType::Empty));
                    f.instruction(&I::Unreachable);
                    f.instruction(&I::End);
                    // Touch every page, so the memory is really used.
                    f.instruction(&I::I32Const(0));
                    f.instruction(&I::I32Const(0x5a));
                    f.instruction(&I::I32Const((bomb.memory_pages << 16) as i32));
                    f.instruction(&I::MemoryFill(m));
                }
                for t in 0..bomb.tables {
                    f.instruction(&I::RefNull(HeapType::FUNC));
                    f.instruction(&I::I32Const(bomb.table_elements as i32));
                    f.instruction(&I::TableGrow(t));
                    f.instruction(&I::I32Const(-1));
                    f.instruction(&I::I32Eq);
                    f.instruction(&I::If(wasm_encoder::BlockType::Empty));
                    f.instruction(&I::Unreachable);
                    f.instruction(&I::End);
                }
                f.instruction(&I::I32Const(PLAN_AT as i32));
            }
            _ => {
                f.instruction(&I::Unreachable);
            }
        }
        f.instruction(&I::End);
        code.function(&f);
        next_type += 1;
        next_func += 1;
    }

    // cabi_realloc: a bump allocator over memory 0.
    types.ty().function([ValType::I32; 4], [ValType::I32]);
    functions.function(next_type);
    exports.export("cabi_realloc", ExportKind::Func, next_func);
    {
        let (align, new_size, ptr) = (2, 3, 4);
        let mut f = Function::new([(1, ValType::I32)]);
        // ptr = (heap + align - 1) & -align
        f.instruction(&I::GlobalGet(0));
        f.instruction(&I::LocalGet(align));
        f.instruction(&I::I32Add);
        f.instruction(&I::I32Const(1));
        f.instruction(&I::I32Sub);
        f.instruction(&I::I32Const(0));
        f.instruction(&I::LocalGet(align));
        f.instruction(&I::I32Sub);
        f.instruction(&I::I32And);
        f.instruction(&I::LocalSet(ptr));
        f.instruction(&I::LocalGet(ptr));
        f.instruction(&I::LocalGet(new_size));
        f.instruction(&I::I32Add);
        f.instruction(&I::GlobalSet(0));
        // Grow memory 0 until the heap fits.
        f.instruction(&I::Block(wasm_encoder::BlockType::Empty));
        f.instruction(&I::Loop(wasm_encoder::BlockType::Empty));
        f.instruction(&I::GlobalGet(0));
        f.instruction(&I::MemorySize(0));
        f.instruction(&I::I32Const(16));
        f.instruction(&I::I32Shl);
        f.instruction(&I::I32LeU);
        f.instruction(&I::BrIf(1));
        f.instruction(&I::I32Const(1));
        f.instruction(&I::MemoryGrow(0));
        f.instruction(&I::I32Const(-1));
        f.instruction(&I::I32Eq);
        f.instruction(&I::If(wasm_encoder::BlockType::Empty));
        f.instruction(&I::Unreachable);
        f.instruction(&I::End);
        f.instruction(&I::Br(0));
        f.instruction(&I::End);
        f.instruction(&I::End);
        f.instruction(&I::LocalGet(ptr));
        f.instruction(&I::End);
        code.function(&f);
    }

    let mut tables = TableSection::new();
    for _ in 0..bomb.tables {
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: 0,
            maximum: None,
            shared: false,
        });
    }
    let mut memories = MemorySection::new();
    for m in 0..=bomb.memories {
        memories.memory(MemoryType {
            minimum: if m == 0 { 2 } else { 0 },
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    exports.export("memory", ExportKind::Memory, 0);
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(HEAP_AT),
    );

    // The description: strings, then the record that points at them.
    let mut data = DataSection::new();
    let mut strings = Vec::new();
    let mut string = |s: &[u8]| -> (u32, u32) {
        let at = STRINGS_AT + strings.len() as u32;
        strings.extend_from_slice(s);
        (at, s.len() as u32)
    };
    let fields = [
        string(name.as_bytes()),
        string(b"0.1.0"),
        string(b"built by hostile_caps"),
        string(&[0]), // artifacts: [binary]
        string(br#"{"type":"object"}"#),
    ];
    let mut record = Vec::new();
    for (ptr, len) in fields {
        record.extend_from_slice(&ptr.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
    }
    // endpoints, extra-hosts, credentials: empty lists; ssh: false.
    record.extend_from_slice(&[0; 3 * 8 + 4]);
    data.active(0, &ConstExpr::i32_const(STRINGS_AT as i32), strings);
    data.active(0, &ConstExpr::i32_const(DESCRIPTION_AT as i32), record);
    // plan's answer: ok (0), then three empty lists.
    data.active(
        0,
        &ConstExpr::i32_const(PLAN_AT as i32),
        vec![0u8; 4 + 3 * 8],
    );

    let mut module = Module::new();
    module.section(&types);
    if matches!(describe, Describe::Sleep) {
        module.section(&imports);
    }
    module.section(&functions);
    if bomb.tables > 0 {
        module.section(&tables);
    }
    module.section(&memories);
    module.section(&globals);
    module.section(&exports);
    module.section(&code);
    module.section(&data);
    let mut bytes = module.finish();
    wit_component::embed_component_metadata(
        &mut bytes,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed the world");
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .expect("a module wit-component understands")
        .validate(true)
        .encode()
        .expect("a valid component")
}

// ---------------------------------------------------------------------------
// Finding 11: one memory budget over memories and tables; counts capped.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_component_loads_and_plans() {
    // The generator itself works: without a bomb, the component answers.
    let h = Harness::new();
    let plugin = h
        .load("built", &component("built", Describe::Ok, Bomb::default()))
        .await;
    assert_eq!(plugin.description().name, "built");
    let plan = h.plan(&plugin, json!({})).await.expect("an empty plan");
    assert!(plan.changes.is_empty() && plan.notes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_memories_share_one_budget() {
    let h = Harness::new();
    // Five extra memories of 8 MiB (40 MiB, plus memory 0) fit in 64 MiB...
    let bomb = Bomb {
        memories: 5,
        memory_pages: 8 << 4,
        ..Bomb::default()
    };
    let plugin = h
        .load("memories", &component("memories", Describe::Ok, bomb))
        .await;
    h.plan(&plugin, json!({})).await.expect("40 MiB fits in 64");
    // ...seven of 10 MiB do not, though each alone would.
    let bomb = Bomb {
        memories: 7,
        memory_pages: 10 << 4,
        ..Bomb::default()
    };
    let plugin = h
        .load("memories", &component("memories", Describe::Ok, bomb))
        .await;
    let err = failure(h.plan(&plugin, json!({})).await);
    assert_contains(
        &err,
        &[
            "failed in plan",
            "exceeded its memory cap of 64 MiB (all its linear memories and tables together)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_tables_are_charged_to_the_memory_budget() {
    // 1 M entries cost 8 MiB each: 12 of them exceed 64 MiB.
    let h = Harness::new();
    let bomb = Bomb {
        tables: 12,
        table_elements: 1_000_000,
        ..Bomb::default()
    };
    let plugin = h
        .load("tables", &component("tables", Describe::Ok, bomb))
        .await;
    let err = failure(h.plan(&plugin, json!({})).await);
    assert_contains(
        &err,
        &["failed in plan", "exceeded its memory cap of 64 MiB"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_memories_or_tables_are_refused_at_load() {
    let h = Harness::new();
    let caps = Caps::default();
    for (what, bomb) in [
        (
            "linear memories",
            Bomb {
                memories: caps.memories as u32 + 4,
                ..Bomb::default()
            },
        ),
        (
            "tables",
            Bomb {
                tables: 99,
                ..Bomb::default()
            },
        ),
    ] {
        let err = h
            .runtime
            .load("many", &component("many", Describe::Ok, bomb))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        assert_contains(
            &format!("{err:#}"),
            &[
                "failed in describe",
                &format!("creates more {what} than a call may"),
                &format!(
                    "at most {} linear memories, {} tables",
                    caps.memories, caps.tables
                ),
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_plugins_fit_in_the_counts() {
    // The default counts leave real plugins room: every bundled provider and
    // the hostile one load under them. What each needs is printed (the
    // smallest counts it loads under), to keep the defaults honest.
    let defaults = Caps::default();
    let bundled = soar::catalog::Catalog::discover(None).expect("the bundled plugins");
    assert!(bundled.entries().len() >= 4);
    let mut plugins: Vec<(String, Vec<u8>)> = bundled
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.bytes.to_vec()))
        .collect();
    plugins.push(("hostile".into(), components::hostile().to_vec()));
    // Any other component to size up (e.g. the Python provider built by
    // examples/python-provider/build.sh).
    if let Some(path) = std::env::var_os("SOAR_CAPS_MEASURE_COMPONENT") {
        plugins.push((
            "measured".into(),
            std::fs::read(path).expect("the component"),
        ));
    }
    for (name, bytes) in &plugins {
        Harness::new().load(name, bytes).await;
        let mut needs = Vec::new();
        for what in ["memories", "tables", "instances"] {
            let mut n = 0;
            loop {
                let mut caps = Caps::default();
                match what {
                    "memories" => caps.memories = n,
                    "tables" => caps.tables = n,
                    _ => caps.instances = n,
                }
                let h = Harness::with(limits(), caps, JournalBounds::default());
                if h.runtime.load(name, bytes).await.is_ok() {
                    break;
                }
                n += 1;
                assert!(n <= 10_000, "{name} never loads");
            }
            needs.push(format!("{n} {what}"));
        }
        eprintln!(
            "{name} needs {} (caps: {} memories, {} tables, {} instances)",
            needs.join(", "),
            defaults.memories,
            defaults.tables,
            defaults.instances
        );
    }
}

// ---------------------------------------------------------------------------
// Finding 13: records bounded in bytes, per record, call and command.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_big_log_records_is_bounded_in_bytes() {
    let h = Harness::new();
    let plugin = h.hostile().await;
    let plan = h
        .plan(
            &plugin,
            json!({"mode": "caps-log-flood", "count": 2000, "bytes": 4096, "fields": 32}),
        )
        .await
        .expect("logging is not an error, only bounded");
    assert_eq!(plan.notes, ["logged 2000"]);
    let caps = Caps::default();
    let (logs, bytes) = h.logs("hostile");
    assert!(
        bytes <= caps.log_bytes + 4096,
        "{bytes} bytes of log records kept for one call"
    );
    let big: Vec<_> = logs.iter().filter(|(m, _)| m.starts_with("big ")).collect();
    assert!(!big.is_empty());
    for (message, fields) in &big {
        assert!(
            message.len() <= caps.log_message_bytes + 64,
            "{}",
            message.len()
        );
        let field_bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(field_bytes <= caps.log_field_bytes + 256, "{field_bytes}");
    }
    let notes: Vec<&String> = logs
        .iter()
        .map(|(m, _)| m)
        .filter(|m| m.contains("dropped") || m.contains("clipped"))
        .collect();
    assert!(
        notes.iter().any(|m| m.contains(&format!(
            "log records dropped: a call keeps at most 2000 records and {} bytes",
            caps.log_bytes
        ))),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|m| m.contains("log messages or fields clipped")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_denied_urls_are_not_kept_whole() {
    let h = Harness::with(
        Limits {
            memory_bytes: 256 << 20,
            ..limits()
        },
        Caps::default(),
        JournalBounds::default(),
    );
    let plugin = h.hostile().await;
    let plan = h
        .plan(
            &plugin,
            json!({"mode": "caps-long-urls", "count": 8, "bytes": 32 << 20,
                   "url": "https://evil.example"}),
        )
        .await
        .expect("denied requests are the plugin's errors, not the call's");
    assert_eq!(plan.notes, ["denied 8"]);
    let urls: Vec<String> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Http { url, .. } => Some(url),
            _ => None,
        })
        .collect();
    assert!(!urls.is_empty());
    for url in &urls {
        assert!(
            url.len() <= (8 << 10) + 64,
            "a URL of {} bytes kept",
            url.len()
        );
    }
    assert!(h.journal.bytes() < 1 << 20, "{}", h.journal.bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_denied_ssh_commands_are_not_kept_whole() {
    let h = Harness::with(
        Limits {
            memory_bytes: 256 << 20,
            ..limits()
        },
        Caps::default(),
        JournalBounds::default(),
    );
    let plugin = h.hostile().await;
    let plan = h
        .plan(
            &plugin,
            json!({"mode": "caps-long-ssh", "count": 8, "bytes": 32 << 20,
                   "addr": "203.0.113.7:22"}),
        )
        .await
        .expect("denied commands are the plugin's errors");
    assert_eq!(plan.notes, ["denied 8"]);
    let commands: Vec<String> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Ssh { command, .. } => Some(command),
            _ => None,
        })
        .collect();
    assert_eq!(commands.len(), 8);
    for c in &commands {
        assert!(c.len() < 2048 + 256, "a command of {} bytes kept", c.len());
        assert_contains(c, &["echo ccc", "more bytes clipped"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_is_bounded_per_call_and_per_command() {
    // Each call keeps `Limits.stdio_bytes` of each stream; the command's
    // journal keeps its log share (here 32 KiB) over all calls, and says
    // what it dropped.
    let h = Harness::with(
        limits(),
        Caps::default(),
        JournalBounds {
            log_bytes: 32 << 10,
            ..JournalBounds::default()
        },
    );
    let plugin = h.hostile().await;
    for _ in 0..10 {
        h.plan(
            &plugin,
            json!({"mode": "caps-print", "count": 64, "bytes": 16 << 10}),
        )
        .await
        .expect("printing is not an error");
    }
    let (logs, bytes) = h.logs("hostile");
    assert!(bytes <= 32 << 10, "{bytes} bytes of stdout/stderr kept");
    for (m, _) in &logs {
        assert!(m.len() < 4096 + 200, "a record of {} bytes", m.len());
    }
    assert!(logs.len() < 20, "{} records kept", logs.len());
    let summary = h.journal.summary().expect("the journal says it dropped");
    assert_contains(&summary, &["events (", "dropped"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_tasks_are_bounded() {
    let h = Harness::new();
    let plugin = h.hostile().await;
    h.plan(
        &plugin,
        json!({"mode": "caps-progress", "count": 1000, "bytes": 100_000}),
    )
    .await
    .expect("progress is not an error");
    let (logs, _) = h.logs("hostile");
    assert!(
        logs.iter().any(|(m, _)| m
            == &format!(
                "984 progress reports dropped: a call reports at most {} tasks",
                Caps::default().progress_tasks
            )),
        "{logs:?}"
    );
}

// ---------------------------------------------------------------------------
// Finding 14: compute is budgeted per call; describe has a short deadline.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_calls_do_not_reset_the_compute_budget() {
    let h = Harness::new();
    let plugin = h.hostile().await;
    let started = Instant::now();
    let err = failure(
        h.plan(
            &plugin,
            json!({"mode": "caps-busy-logging", "every_ms": 500}),
        )
        .await,
    );
    let took = started.elapsed();
    assert_contains(
        &err,
        &[
            "failed in plan",
            "computed for more than 1500 ms in this call (its compute budget",
            "host calls is not counted, and they do not reset it",
        ],
    );
    assert!(!err.contains("deadline"), "{err}");
    // Stopped by the budget, long before the 60 s deadline (compute is CPU
    // time, so a busy machine stretches it; 20 s is far from both).
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let (logs, _) = h.logs("hostile");
    assert!(
        logs.iter().any(|(m, _)| m.starts_with("still busy")),
        "it did call the host: {logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_host_calls_is_not_compute() {
    // 800 ms of compute in 100 ms slices, 300 ms asleep on the host after
    // each: over 3 s of wall time, within the 1500 ms budget.
    let h = Harness::new();
    let plugin = h.hostile().await;
    let started = Instant::now();
    let plan = h
        .plan(
            &plugin,
            json!({"mode": "caps-busy-for", "count": 800, "every_ms": 100, "sleep_ms": 300}),
        )
        .await
        .expect("within its compute budget");
    assert!(plan.notes[0].starts_with("computed "), "{plan:?}");
    assert!(started.elapsed() > Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_describe_fails_the_load_at_its_short_deadline() {
    let h = Harness::with(
        limits(),
        Caps {
            describe_timeout: Duration::from_secs(1),
            ..Caps::default()
        },
        JournalBounds::default(),
    );
    for describe in [Describe::Sleep, Describe::Spin] {
        let started = Instant::now();
        let err = h
            .runtime
            .load("slow", &component("slow", describe, Bomb::default()))
            .await
            .err()
            .unwrap_or_else(|| panic!("{describe:?}: loaded"));
        let took = started.elapsed();
        assert_contains(
            &format!("{err:#}"),
            &[
                "plugin 'slow' did not describe itself within 1000 ms",
                "`describe` must answer at once and offline",
            ],
        );
        assert!(took < Duration::from_secs(5), "{describe:?} took {took:?}");
    }
    // A prompt one still loads.
    h.load(
        "prompt",
        &component("prompt", Describe::Ok, Bomb::default()),
    )
    .await;
}

#[test]
fn plugin_install_and_list_are_not_stalled_by_a_slow_describe() {
    let home = Home::new();
    let wasm = home.write(
        "slow.wasm",
        &component("slow", Describe::Sleep, Bomb::default()),
    );
    let started = Instant::now();
    let out = home
        .command(home.path())
        .args(["plugin", "install", wasm.to_str().unwrap(), "--yes"])
        .output()
        .expect("running soar");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let deadline = Caps::default().describe_timeout;
    assert_contains(
        &stderr,
        &[
            &format!("did not describe itself within {} ms", deadline.as_millis()),
            "nothing was installed",
        ],
    );
    assert!(
        took < deadline + Duration::from_secs(10),
        "install took {took:?}"
    );
    let plugins = home.plugins();
    let left: Vec<_> = std::fs::read_dir(&plugins)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n != ".store")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // Nor is `plugin list` by one already on disk (a plain plugin directory,
    // as an install made before this deadline existed would leave): it is
    // listed with its error, promptly.
    let dir = plugins.join("slow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plugin.wasm"),
        component("slow", Describe::Sleep, Bomb::default()),
    )
    .unwrap();
    let started = Instant::now();
    let list = home
        .command(home.path())
        .args(["plugin", "list"])
        .output()
        .expect("running soar");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&list.stdout);
    // (It exits 1, since one plugin is broken.)
    assert!(list.status.code().is_some(), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("slow"))
        .unwrap_or_else(|| panic!("slow not listed:\n{stdout}"));
    assert_contains(row, &["error:", "did not describe itself within"]);
    assert!(
        stdout.lines().any(|l| l.starts_with("local")),
        "the others are listed too:\n{stdout}"
    );
    assert!(
        took < deadline + Duration::from_secs(10),
        "list took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// Peak RSS of the host, per case, in child processes.
// ---------------------------------------------------------------------------

/// The cases measured: name and what the child does.
const RSS_CASES: &[&str] = &[
    "memories",
    "memories-7",
    "tables",
    "tables-20",
    "logs",
    "urls",
];

/// Run one case as the child (`SOAR_CAPS_RSS_CASE`), with the caps of
/// today, or lifted (`SOAR_CAPS_RSS_BEFORE=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by peak_rss_of_the_host_stays_bounded in a child process"]
async fn rss_child() {
    let Ok(case) = std::env::var("SOAR_CAPS_RSS_CASE") else {
        return;
    };
    let lifted = std::env::var_os("SOAR_CAPS_RSS_BEFORE").is_some();
    let (limits, caps, bounds) = if lifted {
        before()
    } else {
        (
            Limits {
                log_records: 2_000,
                ..Limits::default()
            },
            Caps::default(),
            JournalBounds::default(),
        )
    };
    let h = Harness::with(limits, caps, bounds);
    // The findings' numbers.
    let r = match case.as_str() {
        "memories" | "memories-7" | "tables" | "tables-20" => {
            let bomb = match case.as_str() {
                // 12 (or 7, under the count cap) memories of 250 MiB.
                "memories" | "memories-7" => Bomb {
                    memories: if case == "memories" { 12 } else { 7 },
                    memory_pages: 250 << 4,
                    ..Bomb::default()
                },
                // 99 tables of a million entries, or 20 (under the count
                // cap) of two million.
                "tables" => Bomb {
                    tables: 99,
                    table_elements: 1_000_000,
                    ..Bomb::default()
                },
                _ => Bomb {
                    tables: 20,
                    table_elements: 2_000_000,
                    ..Bomb::default()
                },
            };
            match h
                .runtime
                .load("bomb", &component("bomb", Describe::Ok, bomb))
                .await
            {
                Ok(p) => h.plan(&p, json!({})).await.map(|_| ()),
                Err(e) => {
                    eprintln!("case {case}: refused at load: {e:#}");
                    Ok(())
                }
            }
        }
        "logs" => {
            let p = h.hostile().await;
            h.plan(
                &p,
                json!({"mode": "caps-log-flood", "count": 2000, "bytes": 4096, "fields": 32}),
            )
            .await
            .map(|_| ())
        }
        "urls" => {
            let p = h.hostile().await;
            h.plan(
                &p,
                json!({"mode": "caps-long-urls", "count": 40, "bytes": 32 << 20,
                       "url": "https://evil.example"}),
            )
            .await
            .map(|_| ())
        }
        other => panic!("no case {other}"),
    };
    // The journal is what a command keeps: hold it until the end.
    eprintln!(
        "case {case}: {:?}; journal {} bytes, {} events",
        r.as_ref().err().map(|e| e.to_string()),
        h.journal.bytes(),
        h.journal.events().len()
    );
}

/// Peak RSS in KiB of this test binary run on one case.
fn peak_rss_kib(case: &str, lifted: bool) -> i64 {
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.arg(crate::support::this_test(module_path!(), "rss_child"))
        .args(["--exact", "--ignored", "--nocapture"])
        .env("SOAR_CAPS_RSS_CASE", case)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if lifted {
        cmd.env("SOAR_CAPS_RSS_BEFORE", "1");
    } else {
        cmd.env_remove("SOAR_CAPS_RSS_BEFORE");
    }
    let mut child = cmd.spawn().expect("spawn the child");
    let peak = crate::support::rss::watch(child.id());
    let status = child.wait().expect("waiting for the child");
    assert!(status.success(), "the {case} child failed ({status})");
    peak.finish() as i64
}

#[test]
fn peak_rss_of_the_host_stays_bounded() {
    let measure_before = std::env::var_os("SOAR_CAPS_MEASURE_BEFORE").is_some();
    // A baseline: the same child doing nothing but load the hostile plugin.
    let mut report = Vec::new();
    for case in RSS_CASES {
        let after = peak_rss_kib(case, false);
        let before = measure_before.then(|| peak_rss_kib(case, true));
        report.push((case, before, after));
    }
    for (case, before, after) in &report {
        eprintln!(
            "peak RSS {case:>8}: caps lifted {}, caps {} MiB",
            before.map_or("(not measured)".to_string(), |b| format!("{} MiB", b >> 10)),
            after >> 10
        );
    }
    // Default caps: a 256 MiB memory budget, 1 MiB of log records a call,
    // a journal of at most 32 MiB. The host itself (wasmtime, compiled
    // components, tokio) takes about 100-200 MiB.
    for (case, _, after) in &report {
        assert!(
            *after < 640 << 10,
            "{case}: peak RSS {} MiB is past the bound",
            after >> 10
        );
    }
}
