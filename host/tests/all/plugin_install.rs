//! `soar plugin install / update / remove` and `soar.lock`, through the built
//! binary: installs from a path and from loopback HTTP servers, every refusal
//! (checksum, 404, downgrade redirect, corrupt bytes, core module, another
//! contract, interrupted download) leaving nothing behind, the lock blocking a
//! deploy, and a third-party provider written in Python
//! (`examples/python-provider`) going through the same lifecycle as a
//! first-party plugin against the VM API fake.
//!
//! Every `soar` runs with its own `HOME` and `SOAR_DATA_DIR` and stdin closed
//! (non-interactive); the compile cache is shared by every test (`support::compile_cache`).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};
use soar_tests::components;
use soar_tests::fakes::vmapi::VmApi;
use soar_tests::static_server::{Route, StaticServer};

use crate::support::Home;

const TOKEN: &str = "vmapi-test-token-5d2c";

/// A throwaway HOME whose commands get the VM API fake's token.
fn home() -> Home {
    Home::new().with_var("VMAPI_TOKEN", TOKEN)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Home {
    /// Everything in the plugins directory: empty after a refused install
    /// (no plugin, no staging leftovers, nothing in the store).
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [self.plugins(), self.plugins().join(".store")] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.filter_map(Result::ok) {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n != ".store" {
                        found.push(n);
                    }
                }
            }
        }
        found
    }
}

#[test]
fn install_from_path_list_inspect_and_remove() {
    let home = home();
    let wasm = home.write("hostile.wasm", components::hostile());
    let run = home
        .soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"])
        .ok();
    assert!(run.stdout.contains("It will be able to reach:"), "{run:#?}");
    assert!(run.stdout.contains("trust on first use"), "{run:#?}");
    let list = home.soar(&["plugin", "list"]).ok();
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("hostile"))
        .unwrap_or_else(|| panic!("hostile not listed:\n{list:#?}"));
    assert!(line.contains("installed"), "{line}");
    home.soar(&["plugin", "inspect", "hostile"]).ok();
    let rm = home.soar(&["plugin", "remove", "hostile"]).ok();
    assert!(rm.stdout.contains("Removed plugin 'hostile'"), "{rm:#?}");
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());
    let list = home.soar(&["plugin", "list"]).ok();
    assert!(!list.stdout.contains("hostile"), "{list:#?}");
    home.soar(&["plugin", "remove", "hostile"])
        .fails_with("no installed plugin named 'hostile'");
    home.soar(&["plugin", "remove", "local"])
        .fails_with("bundled into soar and cannot be removed");
}

#[test]
fn install_from_http_with_pinned_digest_and_loopback_redirect() {
    let home = home();
    let server = StaticServer::start();
    let bytes = components::hostile();
    let url = server.add("/dl/hostile.wasm", Route::File(bytes.to_vec()));
    let via = server.add("/latest", Route::Redirect(url.clone()));
    let digest = sha256(bytes);
    let run = home
        .soar(&[
            "plugin",
            "install",
            &via,
            "--sha256",
            &format!("sha256:{digest}"),
            "--yes",
        ])
        .ok();
    assert!(run.stdout.contains("(verified)"), "{run:#?}");
    assert_eq!(server.hits(), vec!["/latest", "/dl/hostile.wasm"]);
    let record = std::fs::read_to_string(home.plugins().join("hostile/install.json")).unwrap();
    assert!(
        record.contains(&digest) && record.contains(&via),
        "{record}"
    );
}

#[test]
fn unpinned_install_needs_yes_when_not_interactive() {
    let home = home();
    let wasm = home.write("hostile.wasm", components::hostile());
    let run = home
        .soar(&["plugin", "install", wasm.to_str().unwrap()])
        .fails_with("unpinned without confirmation");
    assert!(
        run.stderr.contains(&sha256(components::hostile())),
        "{run:#?}"
    );
    assert!(home.leftovers().is_empty());
    // Pinned, the digest is fine, but what it may reach still needs a yes.
    let digest = sha256(components::hostile());
    home.soar(&[
        "plugin",
        "install",
        wasm.to_str().unwrap(),
        "--sha256",
        &digest,
    ])
    .fails_with("pass --yes");
    assert!(home.leftovers().is_empty());
}

#[test]
fn checksum_mismatch_is_refused_and_nothing_installed() {
    let home = home();
    let server = StaticServer::start();
    let url = server.add("/hostile.wasm", Route::File(components::hostile().to_vec()));
    let wrong = "0".repeat(64);
    let run = home
        .soar(&["plugin", "install", &url, "--sha256", &wrong, "--yes"])
        .fails_with("checksum mismatch");
    assert!(run.stderr.contains("nothing was installed"), "{run:#?}");
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());
}

#[test]
fn not_found_is_reported_as_not_found() {
    let home = home();
    let server = StaticServer::start();
    let url = format!("{}/nope.wasm", server.url());
    let run = home
        .soar(&[
            "plugin",
            "install",
            &url,
            "--sha256",
            &"0".repeat(64),
            "--yes",
        ])
        .fails_with("not found");
    assert!(!run.stderr.contains("checksum"), "{run:#?}");
    assert!(run.stderr.contains("404"), "{run:#?}");
    home.soar(&["plugin", "install", "/definitely/not/here.wasm", "--yes"])
        .fails_with("not found");
    assert!(home.leftovers().is_empty());
}

#[test]
fn plain_http_and_redirects_to_http_are_refused_before_connecting() {
    let home = home();
    let server = StaticServer::start();
    // 203.0.113.0/24 is TEST-NET-3: never contacted, the refusal comes first.
    let outside = "http://203.0.113.7/hostile.wasm";
    let via = server.add("/r", Route::Redirect(outside.into()));
    let run = home
        .soar(&["plugin", "install", &via, "--yes"])
        .fails_with("refused the redirect");
    assert!(run.stderr.contains("203.0.113.7"), "{run:#?}");
    assert_eq!(server.hits(), vec!["/r"]);
    home.soar(&["plugin", "install", outside, "--yes"])
        .fails_with("over plain http");
    assert!(home.leftovers().is_empty());
}

#[test]
fn corrupt_core_module_and_other_contract_are_refused_clearly() {
    let home = home();
    let corrupt = home.write(
        "corrupt.wasm",
        b"\0asm\x0d\x00\x01\x00this is not a component at all",
    );
    home.soar(&["plugin", "install", corrupt.to_str().unwrap(), "--yes"])
        .fails_with("is not a valid component");
    // The smallest valid core module: header only.
    let core = home.write("core.wasm", b"\0asm\x01\x00\x00\x00");
    home.soar(&["plugin", "install", core.to_str().unwrap(), "--yes"])
        .fails_with("core WebAssembly module, not a component");
    let future = home.write("future.wasm", components::future_wit());
    let run = home
        .soar(&["plugin", "install", future.to_str().unwrap(), "--yes"])
        .fails_with("soar:plugin@9.0.0");
    assert!(run.stderr.contains("soar:plugin@0.1.x"), "{run:#?}");
    let text = home.write("notes.txt", b"hello = [");
    home.soar(&["plugin", "install", text.to_str().unwrap(), "--yes"])
        .fails_with("nor a valid TOML plugin manifest");
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());
}

#[test]
fn manifest_for_another_contract_is_refused_before_download() {
    let home = home();
    let server = StaticServer::start();
    server.add(
        "/future.wasm",
        Route::File(components::future_wit().to_vec()),
    );
    let manifest = serde_json::json!({
        "name": "future", "version": "9.0.0", "url": "future.wasm",
        "sha256": sha256(components::future_wit()), "wit": "^9.0",
    });
    let url = server.add(
        "/future.json",
        Route::File(manifest.to_string().into_bytes()),
    );
    home.soar(&["plugin", "install", &url, "--yes"])
        .fails_with("this soar supports soar:plugin@0.2.x, soar:plugin@0.1.x");
    assert_eq!(server.hits(), vec!["/future.json"]);
    assert!(home.leftovers().is_empty());
}

#[test]
fn interrupted_download_leaves_nothing_behind() {
    let home = home();
    let server = StaticServer::start();
    let bytes = components::hostile();
    let url = server.add(
        "/cut.wasm",
        Route::Truncated {
            bytes: bytes[..bytes.len() / 2].to_vec(),
            declared: bytes.len() as u64,
        },
    );
    home.soar(&["plugin", "install", &url, "--yes"])
        .fails_with("interrupted");
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());

    // Over an installed version, a failed update keeps the old one.
    let wasm = home.write("hostile.wasm", bytes);
    home.soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"])
        .ok();
    home.soar(&["plugin", "install", &url, "--yes"])
        .fails_with("interrupted");
    let list = home.soar(&["plugin", "list"]).ok();
    assert!(list.stdout.contains("hostile"), "{list:#?}");
    assert_eq!(
        std::fs::read(home.plugins().join("hostile/plugin.wasm")).unwrap(),
        bytes
    );
}

fn hostile_project(home: &Home) -> PathBuf {
    let dir = home.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), "print('hi')\n").unwrap();
    std::fs::write(
        dir.join("soar.toml"),
        r#"[app]
name = "locked"

[artifact]
kind = "script"
path = "app.py"
command = "python3 app.py"

[deploy]
service = "web"

[env.dev]
provider = "hostile"
mode = "ok"
"#,
    )
    .unwrap();
    dir
}

#[test]
fn lock_file_pins_plugins_and_a_mismatch_blocks_deploy() {
    let home = home();
    let project = hostile_project(&home);
    let wasm = home.write("hostile.wasm", components::hostile());
    let digest = sha256(components::hostile());
    let run = home
        .soar_in(
            &project,
            &["plugin", "install", wasm.to_str().unwrap(), "--yes"],
        )
        .ok();
    assert!(run.stdout.contains("Pinned hostile"), "{run:#?}");
    let lock = std::fs::read_to_string(project.join("soar.lock")).unwrap();
    assert!(
        lock.contains("name = \"hostile\"") && lock.contains(&digest),
        "{lock}"
    );

    // Someone else's soar.lock pins another build.
    let other = "1".repeat(64);
    std::fs::write(project.join("soar.lock"), lock.replace(&digest, &other)).unwrap();
    for cmd in [&["deploy", "--yes"][..], &["plan"][..]] {
        let run = home
            .soar_in(&project, cmd)
            .fails_with("soar plugin update hostile");
        assert!(
            run.stderr.contains(&other) && run.stderr.contains(&digest),
            "{run:#?}"
        );
    }
    // `update --sha256` checks the new bytes first: a wrong digest changes
    // nothing.
    let wrong = "2".repeat(64);
    home.soar_in(
        &project,
        &["plugin", "update", "hostile", "--sha256", &wrong, "--yes"],
    )
    .fails_with("checksum mismatch");
    // `update` re-fetches the recorded source and re-pins.
    let run = home
        .soar_in(
            &project,
            &["plugin", "update", "hostile", "--sha256", &digest, "--yes"],
        )
        .ok();
    assert!(run.stdout.contains("Pinned hostile"), "{run:#?}");
    let lock = std::fs::read_to_string(project.join("soar.lock")).unwrap();
    assert!(lock.contains(&digest), "{lock}");

    // `remove` in the project drops its pin too.
    let run = home
        .soar_in(&project, &["plugin", "remove", "hostile"])
        .ok();
    assert!(run.stdout.contains("Unpinned hostile"), "{run:#?}");
    let lock = std::fs::read_to_string(project.join("soar.lock")).unwrap();
    assert!(!lock.contains("name = \"hostile\""), "{lock}");
}

#[test]
fn new_scaffolds_rust_and_python_projects() {
    let home = home();
    for lang in ["rust", "python"] {
        let name = format!("demo-{lang}");
        let run = home.soar(&["plugin", "new", &name, "--lang", lang]).ok();
        assert!(run.stdout.contains("test.sh"), "{run:#?}");
        let dir = home.path().join(&name);
        for f in [
            "wit/provider.wit",
            "wit/package.wit",
            "build.sh",
            "test.sh",
            "README.md",
        ] {
            assert!(dir.join(f).is_file(), "{lang}: missing {f}");
        }
    }
    assert!(home.path().join("demo-rust/src/lib.rs").is_file());
    assert!(home.path().join("demo-python/app.py").is_file());
    home.soar(&["plugin", "new", "../escape", "--lang", "rust"])
        .fails_with("not a valid plugin name");
}

#[test]
fn python_provider_full_lifecycle() {
    let home = home();
    let wasm = crate::support::examples::python(&home.path().join("build/vmapi.wasm"));
    vmapi_provider_lifecycle(&home, &wasm, "vmapi", "0.1.0", "^0.1");
}

/// The JavaScript example (contract 0.2.0) goes through the same lifecycle.
#[test]
fn javascript_provider_full_lifecycle() {
    let home = home();
    let Some(wasm) = crate::support::examples::javascript(&home.path().join("build/vmapi-js.wasm"))
    else {
        return;
    };
    vmapi_provider_lifecycle(&home, &wasm, "vmapi-js", "0.2.0", "^0.2");
}

/// A VM API provider named `name` published by URL with a manifest
/// (`version`, `wit`), installed, then plan, deploy, a no-op plan, an
/// update, destroy and remove, leaving nothing behind.
fn vmapi_provider_lifecycle(home: &Home, wasm: &[u8], name: &str, version: &str, wit: &str) {
    let api = VmApi::start(TOKEN);

    // Published as a manifest next to the component, on a loopback server.
    let server = StaticServer::start();
    let file = format!("{name}-{version}.wasm");
    server.add(&format!("/{name}/{file}"), Route::File(wasm.to_vec()));
    let manifest = format!(
        "name = \"{name}\"\nversion = \"{version}\"\ndescription = \"VMs on the VM API\"\nurl = \"{file}\"\nsha256 = \"{}\"\nwit = \"{wit}\"\n",
        sha256(wasm)
    );
    let manifest_url = server.add(
        &format!("/{name}/{name}.toml"),
        Route::File(manifest.into_bytes()),
    );

    let project = home.path().join("pyproj");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("app.py"), "print('served by a VM')\n").unwrap();
    std::fs::write(
        project.join("soar.toml"),
        format!(
            r#"[app]
name = "pyapp"

[artifact]
kind = "script"
path = "app.py"
command = "python3 app.py"

[deploy]
service = "web"

[env.dev]
provider = "{name}"
size = "small"

[env.dev.grants]
endpoints = {{ api = "{}" }}
"#,
            api.url()
        ),
    )
    .unwrap();

    let started = std::time::Instant::now();
    let run = home
        .soar_in(&project, &["plugin", "install", &manifest_url, "--yes"])
        .ok();
    let install_time = started.elapsed();
    assert!(
        run.stdout.contains("credential 'vmapi' (bearer)"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("SSH: no"), "{run:#?}");
    assert!(
        std::fs::read_to_string(project.join("soar.lock"))
            .unwrap()
            .contains(&sha256(wasm))
    );

    // The first plan after the install loads the compiled form.
    let started = std::time::Instant::now();
    let plan = home.soar_in(&project, &["plan"]).ok();
    let first_plan = started.elapsed();
    assert!(plan.stdout.contains("pyapp-dev"), "{plan:#?}");
    eprintln!(
        "{name} provider: install {} ms, first plan {} ms",
        install_time.as_millis(),
        first_plan.as_millis()
    );

    let deploy = home.soar_in(&project, &["deploy", "--yes"]).ok();
    let vms = api.vms();
    assert_eq!(vms.len(), 1, "{deploy:#?}");
    let vm = &vms[0];
    assert_eq!(vm.name, "pyapp-dev");
    assert_eq!(vm.status, "running");
    assert_eq!(
        vm.files.get("app.py").map(Vec::as_slice),
        Some(&b"print('served by a VM')\n"[..])
    );
    let url = format!("{}/vm/{}/", api.url(), vm.id);
    assert!(
        deploy.stdout.contains(&url) || deploy.stderr.contains(&url),
        "the deploy prints the VM's url:\n{deploy:#?}"
    );
    let served = fetch(&format!("{url}app.py"));
    assert_eq!(served, "print('served by a VM')\n");

    // Nothing to do the second time.
    let plan = home.soar_in(&project, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(0), "{plan:#?}");

    // A new artifact is an update of the same VM.
    std::fs::write(project.join("app.py"), "print('v2')\n").unwrap();
    home.soar_in(&project, &["deploy", "--yes"]).ok();
    let vms = api.vms();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0].id, vm.id);
    assert_eq!(fetch(&format!("{url}app.py")), "print('v2')\n");

    home.soar_in(&project, &["destroy", "--yes"]).ok();
    assert!(api.vms().is_empty(), "destroy deleted the VM");

    home.soar_in(&project, &["plugin", "remove", name]).ok();
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());
}

/// GET over a raw socket (the VM API fake is plain HTTP on loopback).
fn fetch(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// A component that imports `wasi:http` (what jco builds without
/// `--disable http`) is refused by name before it is compiled, with the
/// flags that fix it, and leaves nothing behind. The time is printed, not
/// asserted: the point is that no compile happened.
#[test]
fn an_unlinkable_import_is_refused_before_compiling() {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut c = Component::new();
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    c.section(&types);
    let mut imports = ComponentImportSection::new();
    for name in [
        "wasi:io/streams@0.2.3",
        "wasi:http/outgoing-handler@0.2.3",
        "soar:plugin/http@0.1.0",
    ] {
        imports.import(name, ComponentTypeRef::Instance(0));
    }
    c.section(&imports);
    let home = home();
    let wasm = home.write("js-provider.wasm", &c.finish());
    let started = std::time::Instant::now();
    let run = home
        .soar(&["plugin", "install", wasm.to_str().unwrap(), "--yes"])
        .fails_with("imports `wasi:http/outgoing-handler@0.2.3`, which this host does not provide");
    eprintln!(
        "refused in {} ms (the whole `soar plugin install` run)",
        started.elapsed().as_millis()
    );
    assert!(run.stderr.contains("refused before compiling"), "{run:#?}");
    assert!(
        run.stderr.contains("--disable http --disable fetch-event"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("nothing was installed"), "{run:#?}");
    assert!(home.leftovers().is_empty(), "{:?}", home.leftovers());
}

/// The Rust scaffold builds and passes its own `test.sh` as generated: its
/// `rust-toolchain.toml` brings the wasm target, and `test.sh` finds the
/// soar that made it although no `soar` is on `PATH`.
#[test]
fn the_rust_scaffold_builds_and_passes_its_test_script() {
    let home = home();
    home.soar(&["plugin", "new", "demo-rs", "--lang", "rust"])
        .ok();
    let dir = home.path().join("demo-rs");
    let toolchain = std::fs::read_to_string(dir.join("rust-toolchain.toml")).unwrap();
    assert!(
        toolchain.contains("targets = [\"wasm32-wasip2\"]"),
        "{toolchain}"
    );
    // One target dir shared by every run of this test.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold-test");
    let out = run_test_script(&dir, &[], &[("CARGO_TARGET_DIR", target.as_os_str())]);
    assert!(
        out.contains("ok: demo-rs builds, installs and describes itself"),
        "{out}"
    );
}

/// Run a scaffold's `test.sh` as its author would: in the caller's
/// environment (rustup, cargo, npm's registry, proxy and CA settings), with
/// `front` put first on PATH and no `soar` anywhere on it, and no soar
/// variables (test.sh sets its own data and cache dirs). Fails the test
/// unless the script succeeds; returns what it printed.
fn run_test_script(dir: &Path, front: &[PathBuf], vars: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut path = front.to_vec();
    path.extend(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|d| !d.join("soar").exists()),
    );
    let run = Command::new("bash")
        .arg(dir.join("test.sh"))
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("SOAR")
        .env_remove("SOAR_DATA_DIR")
        .env_remove("SOAR_CACHE_DIR")
        .envs(vars.iter().copied())
        .output()
        .expect("running test.sh");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "test.sh failed:\n{out}");
    out
}

/// The JavaScript scaffold builds with the pinned jco and componentize-js
/// (from npm) and passes its own `test.sh`: the component installs, compiles
/// and describes itself in soar. Node comes from `target/test-peers/npm`
/// (installed by `tests/run`); without it the test is skipped loudly, or
/// fails under `CI=true`.
#[test]
fn the_js_scaffold_builds_and_passes_its_test_script() {
    let node_bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-peers/npm/node_modules/node/bin");
    if !node_bin.join("node").exists() || Command::new("npm").arg("--version").output().is_err() {
        let why = format!("no Node in {} or no npm on PATH", node_bin.display());
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "the JS scaffold test needs Node and npm (CI=true, so this is not skipped): {why}"
        );
        eprintln!("\n!!! SKIPPED (JS scaffold): {why}; ./tests/run installs Node\n");
        return;
    }
    let home = home();
    home.soar(&["plugin", "new", "demo-js", "--lang", "js"])
        .ok();
    let dir = home.path().join("demo-js");
    let package = std::fs::read_to_string(dir.join("package.json")).unwrap();
    assert!(
        package.contains("\"@bytecodealliance/jco\": \"1.16.1\""),
        "{package}"
    );
    let started = std::time::Instant::now();
    let out = run_test_script(&dir, &[node_bin], &[]);
    eprintln!(
        "JS scaffold: npm install, componentize, soar install in {} s",
        started.elapsed().as_secs()
    );
    assert!(
        out.contains("ok: demo-js builds, installs and describes itself"),
        "{out}"
    );
    assert!(
        dir.join("types/plugin.d.ts").is_file(),
        "TypeScript declarations:\n{out}"
    );
}
