//! The third-party provider examples, each built by its own script:
//! `examples/python-provider` (componentize-py, against the frozen
//! `soar:plugin@0.1.0` in `wit/since_v0.1.0/`) and `examples/js-provider`
//! (jco, against the current `wit/`). Both implement the VM API provider.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Build the Python example into `out` and return its bytes; fails, saying
/// what to do, when componentize-py is not installed (`./tests/run`
/// installs it).
pub fn python(out: &Path) -> Vec<u8> {
    build("python-provider", out, &[("SOAR_NO_PEER_INSTALL", "1")])
}

/// Build the JavaScript example into `out` and return its bytes (its script
/// installs the pinned jco from npm on first use), or `None`, said loudly,
/// when there is no Node to build with outside CI (`./tests/run` installs
/// Node 22 under target/test-peers/npm; under `CI=true` its absence fails).
pub fn javascript(out: &Path) -> Option<Vec<u8>> {
    let node = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-peers/npm/node_modules/node/bin/node");
    let npm = Command::new("npm").arg("--version").output();
    if !node.exists() || npm.is_err() {
        let why = format!("no Node at {} or no npm on PATH", node.display());
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "the JavaScript example needs Node and npm (CI=true, so this is not skipped): {why}"
        );
        eprintln!("\n!!! SKIPPED (JavaScript example): {why}; ./tests/run installs Node\n");
        return None;
    }
    Some(build("js-provider", out, &[]))
}

fn build(example: &str, out: &Path, env: &[(&str, &str)]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example)
        .join("build.sh");
    let started = Instant::now();
    let run = Command::new("bash")
        .arg(&script)
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        run.status.success(),
        "building examples/{example} failed (./tests/run installs the test peers it needs):\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "built examples/{example} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::read(out).expect("the built component")
}
