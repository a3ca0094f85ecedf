//! What a component imports, read before anything is compiled.
//!
//! Compiling a component takes from a fraction of a second (a Rust plugin)
//! to half a minute (a JavaScript one, which embeds an engine). A component
//! that imports something this host does not link (typically `wasi:http`,
//! which `jco` pulls in unless told not to) would fail only after that
//! compile, with a linker error that names no fix. Reading its top-level
//! import names takes milliseconds, so the refusal comes first and says
//! what to change.

use wasmparser::{Parser, Payload};

/// WASI 0.2 interfaces the host links (`wasmtime_wasi::p2`), as
/// `package/interface`, and what a plugin actually gets from each: the
/// sandbox gives a plugin no files, no environment, no sockets and no
/// stdin, so several are present only so that language runtimes which
/// import them unconditionally can load.
pub const WASI_PROVIDED: &[(&str, &str)] = &[
    ("wasi:cli/environment", "empty: no variables, no arguments"),
    ("wasi:cli/exit", "ends the call with an error"),
    ("wasi:cli/stdin", "empty"),
    ("wasi:cli/stdout", "captured, capped, shown at -v"),
    ("wasi:cli/stderr", "captured, capped, shown at -v"),
    ("wasi:cli/terminal-input", "no terminal"),
    ("wasi:cli/terminal-output", "no terminal"),
    ("wasi:cli/terminal-stdin", "no terminal"),
    ("wasi:cli/terminal-stdout", "no terminal"),
    ("wasi:cli/terminal-stderr", "no terminal"),
    ("wasi:clocks/monotonic-clock", "real"),
    ("wasi:clocks/wall-clock", "real"),
    ("wasi:filesystem/types", "no directory is preopened"),
    ("wasi:filesystem/preopens", "an empty list"),
    ("wasi:io/error", "real"),
    ("wasi:io/poll", "real"),
    ("wasi:io/streams", "real"),
    ("wasi:random/random", "real"),
    ("wasi:random/insecure", "real"),
    ("wasi:random/insecure-seed", "real"),
    ("wasi:sockets/network", "every address is refused"),
    ("wasi:sockets/instance-network", "every address is refused"),
    ("wasi:sockets/tcp", "every address is refused"),
    ("wasi:sockets/tcp-create-socket", "every address is refused"),
    ("wasi:sockets/udp", "every address is refused"),
    ("wasi:sockets/udp-create-socket", "every address is refused"),
    ("wasi:sockets/ip-name-lookup", "every lookup is refused"),
];

/// The contract's own package: any version passes here; whether this host
/// speaks that version is decided (with its own message) after loading.
const CONTRACT_PREFIX: &str = "soar:plugin/";

/// Why a component cannot be linked, found without compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Top-level import names the host does not provide, as written in
    /// the component (`wasi:http/outgoing-handler@0.2.3`).
    pub imports: Vec<String>,
}

impl Unsupported {
    /// The message for a user: which imports, why, and how to rebuild.
    pub fn explain(&self, label: &str) -> String {
        let names = self
            .imports
            .iter()
            .map(|i| format!("`{}`", crate::terminal::clip(i, 120)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut fix = String::new();
        if self.imports.iter().any(|i| i.starts_with("wasi:http/")) {
            fix.push_str(
                " A plugin reaches the network only through `soar:plugin/http`, which the host \
                 brokers; `wasi:http` is not linked. Built with jco? Componentize with \
                 `--disable http --disable fetch-event` (the `fetch` global is what imports \
                 wasi:http) and call the contract's `http.send` instead. Built with Rust? Drop \
                 the crate that uses wasi:http (e.g. a wasi HTTP client) and use soar-sdk's \
                 `http` module.",
            );
        }
        fix.push_str(
            " Build against the `plugin` world of wit/ (soar:plugin) and nothing else; the WASI \
             interfaces this host links are listed in wit/README.md (\"What a plugin can import\").",
        );
        format!(
            "plugin '{label}' imports {names}, which this host does not provide; it was refused \
             before compiling.{fix}"
        )
    }
}

/// Check a component's top-level imports against what the host links.
/// `Ok(())` does not mean it will link (types may still differ); it means
/// no import is one the host is known not to provide. Bytes that do not
/// parse are left to the compiler, whose error is more precise.
pub fn check(bytes: &[u8]) -> Result<(), Unsupported> {
    let mut depth = 0usize;
    let mut bad = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let Ok(import) = import else {
                        return Ok(());
                    };
                    let name = import.name.name;
                    if !provided(name) {
                        bad.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Unsupported { imports: bad })
    }
}

/// Whether the host links the interface `name` (`pkg:name/iface@version`).
fn provided(name: &str) -> bool {
    if name.starts_with(CONTRACT_PREFIX) {
        return true;
    }
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    // wasmtime links any 0.2.x import to its 0.2 implementation.
    let compatible = version == "0.2" || version.starts_with("0.2.");
    compatible && WASI_PROVIDED.iter().any(|(i, _)| *i == interface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };

    /// A component importing `names`, each as an empty instance.
    fn importing(names: &[&str]) -> Vec<u8> {
        let mut c = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        c.section(&types);
        let mut imports = ComponentImportSection::new();
        for n in names {
            imports.import(*n, ComponentTypeRef::Instance(0));
        }
        c.section(&imports);
        c.finish()
    }

    #[test]
    fn wasi_http_is_refused_with_the_jco_flags() {
        let bytes = importing(&[
            "wasi:io/streams@0.2.3",
            "wasi:http/outgoing-handler@0.2.3",
            "soar:plugin/http@0.1.0",
        ]);
        let err = check(&bytes).unwrap_err();
        assert_eq!(err.imports, vec!["wasi:http/outgoing-handler@0.2.3"]);
        let msg = err.explain("js-provider");
        assert!(msg.contains("`wasi:http/outgoing-handler@0.2.3`"), "{msg}");
        assert!(
            msg.contains("--disable http --disable fetch-event"),
            "{msg}"
        );
    }

    #[test]
    fn what_the_host_links_passes() {
        let bytes = importing(&[
            "wasi:cli/environment@0.2.0",
            "wasi:io/poll@0.2.6",
            "wasi:random/random@0.2.3",
            "soar:plugin/types@0.1.0",
            "soar:plugin/log@9.0.0",
        ]);
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn other_versions_and_unknown_names_are_refused() {
        let bytes = importing(&["wasi:io/streams@0.3.0", "my-own-thing"]);
        assert_eq!(
            check(&bytes).unwrap_err().imports,
            vec!["wasi:io/streams@0.3.0", "my-own-thing"]
        );
    }

    #[test]
    fn garbage_is_left_to_the_compiler() {
        assert_eq!(check(b"\0asm\x0d\0\x01\0garbage"), Ok(()));
    }
}
