//! Third-party plugin benchmarks: the Python provider
//! (`examples/python-provider`, componentize-py, ~18 MB) next to a Rust
//! component (the hostile test plugin, ~100 KB), through the built `soar`:
//!
//! - install time (`soar plugin install PATH --yes`: digest, validate, cold
//!   compile into the cache, stage, switch);
//! - first run after the install (`soar plugin inspect NAME`: loads the
//!   compiled form from the cache and calls `describe`) and later runs;
//! - in-process: `Runtime::load` with a warm cache (deserialize + describe).
//!
//! Run: `cargo bench -p soar --bench plugins` (builds the Python provider
//! with `examples/python-provider/build.sh`, which needs componentize-py
//! from ./tests/run; or set SOAR_BENCH_PYTHON_WASM to a built component).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SOAR: &str = env!("CARGO_BIN_EXE_soar");

fn soar(home: &Path, cache: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new(SOAR)
        .args(args)
        .env("HOME", home)
        .env("SOAR_DATA_DIR", home.join("data"))
        .env("SOAR_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .output()
        .expect("running soar");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "soar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn python_component(scratch: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("SOAR_BENCH_PYTHON_WASM") {
        return PathBuf::from(p);
    }
    let out = scratch.join("vmapi.wasm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-provider/build.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .env("SOAR_NO_PEER_INSTALL", "1")
        .status()
        .expect("running build.sh");
    assert!(
        status.success(),
        "building the Python provider failed (run ./tests/run first)"
    );
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::var("SOAR_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let scratch = tempfile::tempdir().expect("tempdir");
    let rust = scratch.path().join("hostile.wasm");
    std::fs::write(&rust, soar_tests::components::hostile()).unwrap();
    let python = python_component(scratch.path());

    println!("plugin benchmarks ({n} iterations for repeated runs)");
    println!(
        "{:<8} {:>10} {:>14} {:>16} {:>16} {:>16}",
        "plugin", "size", "install", "first inspect", "later inspect", "load (warm)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, name, path) in [("rust", "hostile", &rust), ("python", "vmapi", &python)] {
        let home = scratch.path().join(format!("home-{label}"));
        let cache = scratch.path().join(format!("cache-{label}"));
        std::fs::create_dir_all(&home).unwrap();
        let size = std::fs::metadata(path).unwrap().len();
        let install = soar(
            &home,
            &cache,
            &["plugin", "install", path.to_str().unwrap(), "--yes"],
        );
        let first = soar(&home, &cache, &["plugin", "inspect", name]);
        let later = median(
            (0..n)
                .map(|_| soar(&home, &cache, &["plugin", "inspect", name]))
                .collect(),
        );
        let bytes = std::fs::read(path).unwrap();
        let load = rt.block_on(async {
            let runtime = soar::runtime::Runtime::new(soar::runtime::RuntimeConfig {
                cache_dir: Some(cache.clone()),
                ..Default::default()
            })
            .unwrap();
            let mut samples = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                runtime.load(name, &bytes).await.unwrap();
                samples.push(t.elapsed());
            }
            median(samples)
        });
        println!(
            "{label:<8} {:>10} {:>14} {:>16} {:>16} {:>16}",
            format!("{} KB", size / 1024),
            ms(install),
            ms(first),
            ms(later),
            ms(load)
        );
    }
}
