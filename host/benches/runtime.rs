//! Runtime benchmarks, printed side by side with a baseline in the same run:
//!
//! - P1: whole-process time of `soar plugin inspect` with the compile and
//!   describe caches warm, with only the compile cache warm (the plugin is
//!   loaded and described), and cold, next to
//!   `soar --version` (process start, no plugin): the offline commands
//!   `plugin inspect digitalocean` and `plugin inspect local --json` run in
//!   turn with `--version`, so each sample pair sees the same machine.
//! - P2: brokered HTTP round trips per second from a plugin to a loopback
//!   server, next to the same loop with native reqwest.
//! - P8: peak RSS of `soar plugin list` (descriptions cached; and with all
//!   bundled plugins loaded), next to `soar --version`.
//!
//! Run: `cargo bench -p soar --bench runtime` (release build).
//!
//! Environment:
//! - `SOAR_BENCH_ONLY=p2` (or `p1,p8`...): run only those benchmarks;
//! - `SOAR_BENCH_ITERATIONS` (default 20): P1 samples;
//! - `SOAR_BENCH_REQUESTS` (default 5,000) and `SOAR_BENCH_ROUNDS` (default
//!   15): P2 requests per round and alternating rounds. Fewer are not worth
//!   reading: 1,000 requests a round swung the ratio between 0.55x and 1.10x
//!   from run to run on a 2-core machine, 5,000 x 15 kept it within
//!   0.96-0.98x;
//! - `SOAR_BENCH_BREAKDOWN=1`: P2 also times the broker called directly (no
//!   plugin, no wasm) in each round, to tell the broker's cost from the
//!   plugin boundary's, and prints the median of the per-round ratios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SOAR: &str = env!("CARGO_BIN_EXE_soar");

fn main() {
    let iterations = env_usize("SOAR_BENCH_ITERATIONS", 20);
    let scratch = tempfile::tempdir().expect("tempdir");
    println!(
        "soar runtime benchmarks ({iterations} iterations each, {})",
        SOAR
    );
    println!();
    let only = std::env::var("SOAR_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| {
        only.trim().is_empty() || only.split(',').any(|w| w.trim().eq_ignore_ascii_case(name))
    };
    if wanted("p1") {
        p1(scratch.path(), iterations);
    }
    if wanted("p8") {
        p8(scratch.path());
    }
    if !wanted("p2") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p2(
        env_usize("SOAR_BENCH_REQUESTS", 5_000),
        env_usize("SOAR_BENCH_ROUNDS", 15),
    ));
}

/// A positive count from the environment variable `name`, else `default`.
fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name}={v:?}: expected a positive whole number")),
        Err(_) => default,
    }
}

/// Wall time of one run of soar with `args` (output discarded).
fn run_once(args: &[&str], env: &[(&str, &Path)]) -> Duration {
    let started = Instant::now();
    let status = Command::new(SOAR)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running soar");
    let elapsed = started.elapsed();
    assert!(status.success(), "soar {args:?} failed");
    elapsed
}

/// Median and minimum of `samples`.
fn median_min(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[0])
}

/// `n` rounds of running every command of `commands` once, in turn, so a
/// busy moment of the machine lands on all of them alike: median and
/// minimum per command.
fn time_paired<const N: usize>(
    n: usize,
    commands: [&[&str]; N],
    env: &[(&str, &Path)],
) -> [(Duration, Duration); N] {
    let mut samples: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(n));
    for _ in 0..n {
        for (args, out) in commands.iter().zip(&mut samples) {
            out.push(run_once(args, env));
        }
    }
    samples.map(median_min)
}

fn p1(scratch: &Path, n: usize) {
    let cache = scratch.join("cache");
    let data = scratch.join("data");
    let env = [
        ("SOAR_CACHE_DIR", cache.as_path()),
        ("SOAR_DATA_DIR", data.as_path()),
    ];
    let version: &[&str] = &["--version"];
    let inspect_do: &[&str] = &["plugin", "inspect", "digitalocean"];
    let inspect_local: &[&str] = &["plugin", "inspect", "local", "--json"];

    let cold = (0..n)
        .map(|_| {
            let _ = std::fs::remove_dir_all(&cache);
            run_once(inspect_local, &env)
        })
        .collect();
    // One run of each fills the cache; then every run is warm.
    run_once(inspect_do, &env);
    run_once(inspect_local, &env);
    let [base, warm_do, warm_local] = time_paired(n, [version, inspect_do, inspect_local], &env);
    // The same command with the compiled component cached but not its
    // description: what every inspect cost before the describe cache.
    let loaded = (0..n)
        .map(|_| {
            forget_descriptions(&cache);
            run_once(inspect_do, &env)
        })
        .collect();
    let row = |label: &str, (median, min): (Duration, Duration), goal: &str| {
        println!(
            "    {label:<40} {:>8.2} ms / {:>8.2} ms   {goal}",
            ms(median),
            ms(min)
        );
    };
    println!("P1  plugin call through the soar process (median / min of {n} runs)");
    row("baseline `soar --version`", base, "");
    row(
        "warm cache: plugin inspect digitalocean",
        warm_do,
        "goal <= 10 ms",
    );
    row(
        "  same, description not cached (load)",
        median_min(loaded),
        "",
    );
    row(
        "warm cache: inspect local (describe)",
        warm_local,
        "goal <= 15 ms",
    );
    row(
        "cold cache: inspect local (compile)",
        median_min(cold),
        "goal <= 1500 ms",
    );
    println!("    (the warm runs and the baseline take turns)");
    println!();
}

/// Remove the describe cache's entries, keeping the compiled components.
fn forget_descriptions(cache: &Path) {
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak RSS (KiB) of one run of soar with `args`.
fn peak_rss(args: &[&str], env: &[(&str, &Path)]) -> u64 {
    let mut child = Command::new(SOAR)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running soar");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let _ = child.try_wait();
    usage.ru_maxrss as u64
}

fn p8(scratch: &Path) {
    let cache = scratch.join("cache-p8");
    let data = scratch.join("data");
    let env = [
        ("SOAR_CACHE_DIR", cache.as_path()),
        ("SOAR_DATA_DIR", data.as_path()),
    ];
    let base = peak_rss(&["--version"], &env);
    peak_rss(&["plugin", "list"], &env);
    let warm = peak_rss(&["plugin", "list"], &env);
    forget_descriptions(&cache);
    let loaded = peak_rss(&["plugin", "list"], &env);
    let _ = std::fs::remove_dir_all(&cache);
    let cold = peak_rss(&["plugin", "list"], &env);
    println!("P8  peak RSS of `soar plugin list`");
    println!(
        "    baseline `soar --version`            {:>8.1} MiB",
        base as f64 / 1024.0
    );
    println!(
        "    plugin list, warm cache (described)   {:>8.1} MiB",
        warm as f64 / 1024.0
    );
    println!(
        "    plugin list, compiled, all 4 loaded   {:>8.1} MiB   goal <= 60 MiB",
        loaded as f64 / 1024.0
    );
    println!(
        "    plugin list, cold cache (compiling)   {:>8.1} MiB",
        cold as f64 / 1024.0
    );
    println!();
}

async fn p2(requests: usize, rounds: usize) {
    use soar::broker::http::HttpLimits;
    use soar::broker::http::policy::Grants;
    use soar::contract::Context;
    use soar::journal::Journal;
    use soar::runtime::{Runtime, RuntimeConfig};
    use soar::session::{Session, SessionConfig};

    let server = soar_tests::servers::Server::start();
    let url = server.url().to_string();

    soar::tls::install_crypto_provider();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    // The test plugin of tests/plugins/hostile, in its benign `http-loop` mode.
    let plugin = runtime
        .load("hostile", soar_tests::components::hostile())
        .await
        .unwrap();
    let mut grants = Grants {
        section: "[env.bench.grants] in soar.toml".into(),
        ..Default::default()
    };
    grants.endpoints.insert("api".into(), url.clone());
    let session = Arc::new(
        Session::new(
            plugin.description(),
            SessionConfig {
                grants,
                credential_env: Default::default(),
                secrets: Box::new(soar::credentials::ProcessEnv),
                artifact: None,
                journal: Arc::new(Journal::with_capacity(10 * requests + 10)),
                http_limits: HttpLimits::default(),
            },
        )
        .unwrap(),
    );
    let ctx = Context {
        app: "bench".into(),
        environment: "bench".into(),
        settings: serde_json::json!({ "mode": "http-loop", "count": requests, "url": format!("{url}/bench") }).to_string(),
        endpoints: session.http.endpoints().to_vec(),
        artifact: None,
    };
    // Alternate the two loops over several rounds and keep each one's best,
    // so a busy machine penalizes neither side more than the other.
    let client = reqwest::Client::new();
    let breakdown = std::env::var_os("SOAR_BENCH_BREAKDOWN").is_some();
    let (mut native, mut brokered, mut direct) = (Duration::MAX, Duration::MAX, Duration::MAX);
    // Per round: brokered / native and direct / native throughput.
    let mut ratios: Vec<(f64, f64)> = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..requests {
            let r = client.get(format!("{url}/bench")).send().await.unwrap();
            r.bytes().await.unwrap();
        }
        let native_round = started.elapsed();
        native = native.min(native_round);
        let started = Instant::now();
        plugin
            .plan(session.clone(), &ctx)
            .await
            .expect("probe loop");
        let brokered_round = started.elapsed();
        brokered = brokered.min(brokered_round);
        if breakdown {
            use soar::contract::soar::plugin::http::{Body, Method, Request};
            let started = Instant::now();
            for _ in 0..requests {
                let req = Request {
                    method: Method::Get,
                    url: format!("{url}/bench"),
                    headers: vec![],
                    body: Body::Empty,
                    credential: None,
                    capture: None,
                    issued: vec![],
                    timeout_ms: None,
                    region: None,
                };
                session.http.send(req).await.expect("direct broker request");
            }
            let direct_round = started.elapsed();
            direct = direct.min(direct_round);
            ratios.push((
                native_round.as_secs_f64() / brokered_round.as_secs_f64(),
                native_round.as_secs_f64() / direct_round.as_secs_f64(),
            ));
        }
    }
    let rps = |d: Duration| requests as f64 / d.as_secs_f64();
    println!(
        "P2  HTTP round trips to a loopback server ({requests} sequential GETs, best of {rounds} alternating rounds)"
    );
    println!(
        "    native reqwest                        {:>8.0} req/s",
        rps(native)
    );
    println!(
        "    brokered from a plugin                {:>8.0} req/s   = {:.2}x native, goal >= 0.9x",
        rps(brokered),
        rps(brokered) / rps(native)
    );
    if breakdown {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "    broker called directly (no wasm)      {:>8.0} req/s   = {:.2}x native",
            rps(direct),
            rps(direct) / rps(native)
        );
        println!(
            "    median of per-round ratios: brokered {:.2}x, direct {:.2}x native",
            median(ratios.iter().map(|r| r.0).collect()),
            median(ratios.iter().map(|r| r.1).collect())
        );
    }
}
