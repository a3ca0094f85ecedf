//! Compile guest crates of this workspace into WebAssembly components from a
//! build script, the way wasmtime's `test-programs` crate does: a nested
//! `cargo build --target wasm32-wasip2` with its own target directory, so the
//! outer build's lock and flags do not interfere.
//!
//! Used by `host/build.rs` (bundled plugins) and `tests/build.rs` (hostile
//! plugins). Kept free of dependencies so it adds nothing to build time and
//! its first step, the wasm32-wasip2 check ([`toolchain`]), runs as early as
//! cargo allows: right after this crate compiles, while the host's
//! dependencies are still compiling.

pub mod sha256;
pub mod toolchain;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use toolchain::{Ensured, TARGET};

/// A guest crate to build: the package name and where its manifest lives.
pub struct Guest<'a> {
    /// Name used in the generated table (`digitalocean`).
    pub name: &'a str,
    /// Cargo package name (`soar-plugin-digitalocean`).
    pub package: &'a str,
}

/// Build `guests` in the workspace at `workspace` and write `$OUT_DIR/<file>`,
/// a Rust source defining `pub static <table>: &[(&str, &[u8])]` with each
/// component's bytes embedded, and `pub static <table>_SHA256: &[(&str,
/// &str)]` with each one's sha256 in lowercase hex, in the same order.
/// Watches the inputs so edits rebuild.
///
/// First makes sure the toolchain has the wasm32-wasip2 standard library
/// (installing it with rustup if need be); when it cannot, the build fails
/// at once with a `cargo::error` naming the command to run.
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
    match toolchain::ensure_target(&target_dir) {
        Ok(Ensured::Present) => {}
        Ok(Ensured::Installed { toolchain }) => println!(
            "cargo:warning=the {TARGET} standard library was missing from toolchain {toolchain}; installed it with `rustup target add {TARGET} --toolchain {toolchain}`"
        ),
        Err(message) => {
            // Cargo fails the build on this directive; nothing is compiled
            // for the guests, and cargo starts no further jobs.
            println!("cargo::error={message}");
            return;
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "--target",
            TARGET,
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
        panic!("building guest components failed ({status}); cargo's errors are above");
    }

    let mut bytes_table = format!(
        "/// Components built from this workspace.\npub static {table}: &[(&str, &[u8])] = &[\n"
    );
    let mut digest_table = format!(
        "/// sha256 of each component of [`{table}`] (lowercase hex), computed at build time.\n\
         pub static {table}_SHA256: &[(&str, &str)] = &[\n"
    );
    for guest in guests {
        let artifact = target_dir
            .join(TARGET)
            .join("plugin")
            .join(format!("{}.wasm", guest.package.replace('-', "_")));
        // Hash the very bytes `include_bytes!` embeds: read once, here.
        let bytes = std::fs::read(&artifact).unwrap_or_else(|e| {
            panic!(
                "expected component at {} (built by cargo above): {e}",
                artifact.display()
            )
        });
        writeln!(
            bytes_table,
            "    ({:?}, include_bytes!({:?})),",
            guest.name,
            artifact.display().to_string()
        )
        .unwrap();
        writeln!(
            digest_table,
            "    ({:?}, {:?}),",
            guest.name,
            sha256::hex_digest(&bytes)
        )
        .unwrap();
    }
    bytes_table.push_str("];\n");
    digest_table.push_str("];\n");
    std::fs::write(out_dir.join(file), bytes_table + &digest_table)
        .expect("writing the component table");
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
