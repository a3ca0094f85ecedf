//! The wasm32-wasip2 standard library, checked before the first guest is
//! compiled and installed through rustup when it is missing.
//!
//! Without this check, a toolchain that exists but lacks the target (the
//! common case: Rust was installed before this project was cloned, and
//! `rust-toolchain.toml` only adds targets when rustup installs the
//! toolchain itself) fails minutes into the first build with "can't find
//! crate for `std`". Installing the target, as `wasm-pack` does, turns that
//! into a one-time download; without rustup the build stops at once with
//! the command to run.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is compiled for.
pub const TARGET: &str = "wasm32-wasip2";

/// What [`ensure_target`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The standard library was already there.
    Present,
    /// It was missing; `rustup target add` installed it.
    Installed {
        /// The rustup toolchain it was added to.
        toolchain: String,
    },
}

/// Make sure the compiler cargo builds with (`$RUSTC`) has the standard
/// library for [`TARGET`], installing it with rustup when it is missing.
/// `lock_dir` holds a lock file so concurrent build scripts of the
/// workspace install it once. The error says what is missing, where, and
/// the exact command that fixes it.
pub fn ensure_target(lock_dir: &Path) -> Result<Ensured, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = sysroot(&rustc)?;
    if has_std(&sysroot) {
        return Ok(Ensured::Present);
    }
    let toolchain = toolchain_name(&sysroot, std::env::var("RUSTUP_TOOLCHAIN").ok().as_deref());
    let version = release(&rustc);
    let Some(toolchain) = toolchain.filter(|_| rustup_available()) else {
        return Err(missing(&sysroot, &rustc, &version, None));
    };

    // host/build.rs and tests/build.rs may both get here; one installs, the
    // other waits and finds it done.
    std::fs::create_dir_all(lock_dir)
        .map_err(|e| format!("creating {}: {e}", lock_dir.display()))?;
    let lock_path = lock_dir.join("rustup-target-add.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if has_std(&sysroot) {
        return Ok(Ensured::Present);
    }

    eprintln!(
        "installing the {TARGET} standard library: {}",
        command(&toolchain)
    );
    // Cargo reads a build script's stdout for directives: rustup's output
    // goes to stderr, which cargo shows if this fails.
    let status = Command::new("rustup")
        .args(["target", "add", TARGET, "--toolchain", &toolchain])
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("running `{}`: {e}", command(&toolchain)))?;
    if !status.success() {
        return Err(format!(
            "the {TARGET} standard library is missing from toolchain {toolchain} and `{}` failed ({status}; its output is in this build script's stderr above); run it yourself, then build again",
            command(&toolchain)
        ));
    }
    if !has_std(&sysroot) {
        return Err(missing(&sysroot, &rustc, &version, Some(&toolchain)));
    }
    Ok(Ensured::Installed { toolchain })
}

/// The command that installs the target for `toolchain`.
fn command(toolchain: &str) -> String {
    format!("rustup target add {TARGET} --toolchain {toolchain}")
}

/// The error for a standard library that is missing and that this build
/// could not install (no rustup, a toolchain rustup does not manage, or an
/// install that left it missing).
fn missing(sysroot: &Path, rustc: &OsStr, version: &str, tried: Option<&str>) -> String {
    let libdir = target_libdir(sysroot);
    let rustc = rustc.to_string_lossy();
    match tried {
        Some(toolchain) => format!(
            "`{}` succeeded, but {} still has no standard library for {TARGET} (the compiler is {rustc}); check that cargo builds with rustup's toolchain {toolchain}",
            command(toolchain),
            libdir.display()
        ),
        None => format!(
            "the {TARGET} standard library is not installed for {rustc} (no libstd in {}), and the build cannot install it without rustup; run `{}` (rustup: https://rustup.rs), or add the rust-std component for {TARGET} of Rust {version} to this toolchain, then build again",
            libdir.display(),
            command(version)
        ),
    }
}

/// `<sysroot>/lib/rustlib/wasm32-wasip2/lib`, where the target's standard
/// library lives.
fn target_libdir(sysroot: &Path) -> PathBuf {
    sysroot.join("lib").join("rustlib").join(TARGET).join("lib")
}

/// Whether `sysroot` has a compiled `std` for [`TARGET`].
pub fn has_std(sysroot: &Path) -> bool {
    std::fs::read_dir(target_libdir(sysroot)).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// The rustup name of the toolchain at `sysroot`: its directory name when
/// it lives in rustup's `toolchains/`, else what the rustup proxy that
/// started cargo resolved (`rustup_toolchain`). `None` when rustup does not
/// manage it.
pub fn toolchain_name(sysroot: &Path, rustup_toolchain: Option<&str>) -> Option<String> {
    let in_rustup_home = sysroot
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "toolchains");
    if in_rustup_home {
        return sysroot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
    }
    rustup_toolchain
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn sysroot(rustc: &OsStr) -> Result<PathBuf, String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running `{} --print sysroot`: {e}", rustc.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} --print sysroot` failed ({})",
            rustc.to_string_lossy(),
            out.status
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The compiler's release (`1.95.0`), for the error message; `stable` if
/// the compiler cannot say.
fn release(rustc: &OsStr) -> String {
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "stable".into())
}

fn rustup_available() -> bool {
    Command::new("rustup")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_libstd_rlib_is_what_counts() {
        let root = std::env::temp_dir().join(format!("soar-guest-build-{}", std::process::id()));
        let lib = target_libdir(&root);
        std::fs::create_dir_all(&lib).unwrap();
        assert!(!has_std(&root), "an empty target directory has no std");
        std::fs::write(lib.join("libcore-0123.rlib"), b"").unwrap();
        assert!(!has_std(&root), "core alone is not std");
        std::fs::write(lib.join("libstd-0123.rlib"), b"").unwrap();
        assert!(has_std(&root));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(!has_std(&root), "no sysroot at all");
    }

    #[test]
    fn the_toolchain_is_named_by_its_rustup_directory_first() {
        let managed = Path::new("/home/u/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu");
        assert_eq!(
            toolchain_name(managed, Some("stable")).as_deref(),
            Some("1.95.0-x86_64-unknown-linux-gnu")
        );
        assert_eq!(
            toolchain_name(managed, None).as_deref(),
            Some("1.95.0-x86_64-unknown-linux-gnu")
        );
        let elsewhere = Path::new("/usr");
        assert_eq!(
            toolchain_name(elsewhere, Some("1.95.0")).as_deref(),
            Some("1.95.0")
        );
        assert_eq!(toolchain_name(elsewhere, None), None);
        assert_eq!(toolchain_name(elsewhere, Some("")), None);
    }

    #[test]
    fn without_rustup_the_error_has_the_exact_command() {
        let msg = missing(Path::new("/usr"), OsStr::new("rustc"), "1.95.0", None);
        assert!(
            msg.contains("`rustup target add wasm32-wasip2 --toolchain 1.95.0`"),
            "{msg}"
        );
        assert!(msg.contains("/usr/lib/rustlib/wasm32-wasip2/lib"), "{msg}");
    }
}
