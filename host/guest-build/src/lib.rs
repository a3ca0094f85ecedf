//! Compile guest crates of this workspace into WebAssembly components from a
//! build script, the way wasmtime's `test-programs` crate does: a nested
//! `cargo build --target wasm32-wasip2` with its own target directory, so the
//! outer build's lock and flags do not interfere.
//!
//! Used by `host/build.rs` (bundled plugins) and `tests/build.rs` (hostile
//! plugins). Kept free of dependencies so it adds nothing to build time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A guest crate to build: the package name and where its manifest lives.
pub struct Guest<'a> {
    /// Name used in the generated table (`digitalocean`).
    pub name: &'a str,
    /// Cargo package name (`soar-plugin-digitalocean`).
    pub package: &'a str,
}

/// Build `guests` in the workspace at `workspace` and write `$OUT_DIR/<file>`,
/// a Rust source defining `pub static <table>: &[(&str, &[u8])]` with each
/// component's bytes embedded. Watches the inputs so edits rebuild.
pub fn build(workspace: &Path, guests: &[Guest<'_>], watch: &[&str], file: &str, table: &str) {
    for dir in watch {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let target_dir = guest_target_dir(&out_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        cmd.args(["-p", guest.package]);
    }
    // The outer build's flags and wrappers (coverage, clippy-driver) are for
    // the host, not for guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for wasm guests");
    if !status.success() {
        panic!(
            "building guest components failed ({status}); is the wasm32-wasip2 target installed? \
             (rust-toolchain.toml lists it, so `rustup show` installs it)"
        );
    }

    let mut src = format!(
        "/// Components built from this workspace.\npub static {table}: &[(&str, &[u8])] = &[\n"
    );
    for guest in guests {
        let artifact = target_dir
            .join("wasm32-wasip2")
            .join("plugin")
            .join(format!("{}.wasm", guest.package.replace('-', "_")));
        assert!(
            artifact.exists(),
            "expected component at {}",
            artifact.display()
        );
        writeln!(
            src,
            "    ({:?}, include_bytes!({:?})),",
            guest.name,
            artifact.display().to_string()
        )
        .unwrap();
    }
    src.push_str("];\n");
    std::fs::write(out_dir.join(file), src).expect("writing the component table");
}

/// `<target>/soar-guests`, shared by every build of the workspace so guests
/// compile once, not once per profile or tool.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out (or with a triple).
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|target| target.join("soar-guests"))
        .unwrap_or_else(|| out_dir.join("soar-guests"))
}
