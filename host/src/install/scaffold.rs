//! `soar plugin new NAME --lang rust|python|js`: a provider project with the
//! contract's WIT, a build script, a provider skeleton and a test that
//! builds the component and installs it into a throwaway soar data dir.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The WIT this soar speaks, copied into new projects.
const WIT: &[(&str, &str)] = &[
    ("package.wit", include_str!("../../../wit/package.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("provider.wit", include_str!("../../../wit/provider.wit")),
    ("README.md", include_str!("../../../wit/README.md")),
];

/// Languages a new provider can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A cargo project built for `wasm32-wasip2`.
    Rust,
    /// A componentize-py project, built in its own `.venv`.
    Python,
    /// A JavaScript project componentized by jco (componentize-js), with
    /// TypeScript declarations of the contract.
    #[value(alias = "javascript")]
    Js,
}

/// Write a new provider project `name` into `dir` (default `./<name>`).
/// Returns the directory and the files written.
pub fn scaffold(
    name: &str,
    lang: Lang,
    dir: Option<&Path>,
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    if !crate::catalog::valid_name(name) {
        anyhow::bail!(
            "{name:?} is not a valid plugin name: use 1-63 lowercase letters, digits and inner hyphens"
        );
    }
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not empty; choose another directory with --dir",
            dir.display()
        );
    }
    let mut files: Vec<(String, String, bool)> = WIT
        .iter()
        .map(|(f, text)| (format!("wit/{f}"), text.to_string(), false))
        .collect();
    let snake = name.replace('-', "_");
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml".into(), rust_cargo(name), false));
            files.push(("src/lib.rs".into(), rust_lib(name), false));
            files.push(("build.sh".into(), rust_build(&snake), true));
            files.push(("rust-toolchain.toml".into(), rust_toolchain(), false));
        }
        Lang::Python => {
            files.push(("app.py".into(), python_app(name), false));
            files.push(("build.sh".into(), PYTHON_BUILD.to_string(), true));
        }
        Lang::Js => {
            files.push(("package.json".into(), js_package(name), false));
            files.push(("provider.js".into(), js_provider(name), false));
            files.push(("build.sh".into(), JS_BUILD.to_string(), true));
        }
    }
    let this_soar = std::env::current_exe()
        .ok()
        .and_then(|p| crate::shell::quote(&p.to_string_lossy()).ok());
    files.push(("test.sh".into(), test_sh(name, this_soar.as_deref()), true));
    files.push(("README.md".into(), readme(name, lang), false));
    files.push((
        ".gitignore".into(),
        "target/\nplugin.wasm\n__pycache__/\n.venv/\nnode_modules/\ntypes/\n".into(),
        false,
    ));
    let mut written = Vec::new();
    for (rel, text, exec) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        #[cfg(not(unix))]
        let _ = exec;
        written.push(rel);
    }
    Ok((dir, written))
}

fn rust_cargo(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "0.63", default-features = false, features = ["macros", "realloc"] }}
# The settings are read into a struct, and their JSON Schema (which
# `soar validate` checks offline) is derived from the same struct.
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
schemars = {{ version = "1", default-features = false, features = ["derive"] }}

# Small components load fast: ~100 KB instead of 2.5 MB.
[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"
codegen-units = 1

# Not part of any enclosing workspace.
[workspace]
"#
    )
}

fn rust_lib(name: &str) -> String {
    format!(
        r##"//! The `{name}` Soar provider.
//!
//! Everything the plugin reaches goes through the host: `soar::plugin::http::send`
//! (checked against what `describe` declares; credentials are injected by the
//! host, the plugin only names them), `log`, `clock`. The host calls each
//! function in a fresh sandbox: keep no state between calls; what `apply`
//! needs travels in each change's `payload`.

wit_bindgen::generate!({{
    world: "plugin",
    path: "wit",
}});

use exports::soar::plugin::provider::{{Capabilities, Description, EndpointDecl, Guest}};
use soar::plugin::types::{{
    Applied, ArtifactKind, Change, ChangePlan, Context, Diagnostic, PluginError, ResourceStatus,
    Severity,
}};

/// The settings of a `{name}` environment (the keys of its `[env.<name>]`
/// besides Soar's own).
// This struct reads the settings, and the JSON Schema `describe` declares
// (which `soar validate` checks soar.toml against, offline) is derived
// from it: add settings here and nowhere else. Doc comments become the
// schema's descriptions, so write them for the people who fill them in.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Settings {{
    /// TODO: an example setting: the region to deploy to.
    #[allow(dead_code, reason = "TODO: read it in plan")]
    region: Option<String>,
}}

/// The JSON Schema of [`Settings`] (draft 2020-12, what `soar validate`
/// reads), with every subschema inlined and no `title`.
fn settings_schema() -> String {{
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<Settings>();
    schema.remove("title");
    schema.as_value().to_string()
}}

/// The settings of `ctx`, or why they are not valid.
fn settings(ctx: &Context) -> Result<Settings, PluginError> {{
    serde_json::from_str(&ctx.settings).map_err(|e| {{
        PluginError::InvalidConfig(vec![Diagnostic {{
            severity: Severity::Error,
            message: format!("{name} provider: invalid settings: {{e}}"),
            field: None,
            hint: None,
        }}])
    }})
}}

struct Provider;

impl Guest for Provider {{
    fn describe() -> Description {{
        Description {{
            name: "{name}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "TODO: what this provider deploys to".into(),
            artifacts: vec![ArtifactKind::Binary],
            settings_schema: settings_schema(),
            capabilities: Capabilities {{
                endpoints: vec![EndpointDecl {{
                    name: "api".into(),
                    default_url: "https://api.example.com".into(),
                }}],
                extra_hosts: vec![],
                credentials: vec![],
                ssh: false,
            }},
        }}
    }}

    fn validate(ctx: Context) -> Vec<Diagnostic> {{
        match settings(&ctx) {{
            Ok(_) => vec![],
            Err(PluginError::InvalidConfig(d)) => d,
            Err(_) => vec![],
        }}
    }}

    fn plan(ctx: Context) -> Result<ChangePlan, PluginError> {{
        let _settings = settings(&ctx)?;
        Ok(ChangePlan {{
            changes: vec![],
            diagnostics: vec![],
            notes: vec!["TODO: compare the desired state with the API".into()],
        }})
    }}

    fn apply(_ctx: Context, change: Change) -> Result<Applied, PluginError> {{
        Err(PluginError::Other(format!("TODO: apply {{}} {{}}", change.kind, change.name)))
    }}

    fn plan_destroy(_ctx: Context) -> Result<ChangePlan, PluginError> {{
        Ok(ChangePlan {{
            changes: vec![],
            diagnostics: vec![],
            notes: vec![],
        }})
    }}

    fn status(_ctx: Context) -> Result<Vec<ResourceStatus>, PluginError> {{
        Ok(vec![])
    }}

    fn logs(_ctx: Context, _resource: String, _lines: u32) -> Result<Vec<String>, PluginError> {{
        Ok(vec![])
    }}
}}

export!(Provider);
"##
    )
}

/// The toolchain this soar itself is built and tested with, and the wasm
/// target: rustup installs both on the first `cargo build`, so a new
/// project builds with a toolchain known to work.
fn rust_toolchain() -> String {
    let pinned = include_str!("../../../rust-toolchain.toml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "stable".into());
    format!(
        "# The toolchain the soar that made this project is built with; rustup\n\
         # installs it and the wasm32-wasip2 target on the first build.\n\
         [toolchain]\nchannel = \"{pinned}\"\ntargets = [\"wasm32-wasip2\"]\nprofile = \"minimal\"\n"
    )
}

fn rust_build(snake: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Builds plugin.wasm (rust-toolchain.toml brings the wasm32-wasip2 target).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{snake}.wasm" plugin.wasm
echo "built $PWD/plugin.wasm"
"#
    )
}

fn python_app(name: &str) -> String {
    format!(
        r#""""The `{name}` Soar provider, in Python (componentize-py).

Everything the plugin reaches goes through the host: `http.send` (checked
against what `describe` declares; credentials are injected by the host, the
plugin only names them), `log`. The host calls each method in a fresh
sandbox: keep no state between calls; what `apply` needs travels in each
change's `payload`. Errors: `raise Err(types.PluginError_Other("..."))`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import provider as p
from wit_world.imports import types


class Provider(exports.Provider):
    def describe(self) -> p.Description:
        return p.Description(
            name="{name}",
            version="0.1.0",
            summary="TODO: what this provider deploys to",
            artifacts=[types.ArtifactKind.BINARY],
            settings_schema=json.dumps({{"type": "object", "properties": {{}}}}),
            capabilities=p.Capabilities(
                endpoints=[p.EndpointDecl("api", "https://api.example.com")],
                extra_hosts=[],
                credentials=[],
                ssh=False,
            ),
        )

    def validate(self, ctx: types.Context):
        return []

    def plan(self, ctx: types.Context) -> types.ChangePlan:
        return types.ChangePlan([], [], ["TODO: compare the desired state with the API"])

    def apply(self, ctx: types.Context, change: types.Change) -> types.Applied:
        raise Err(types.PluginError_Other(f"TODO: apply {{change.kind}} {{change.name}}"))

    def plan_destroy(self, ctx: types.Context) -> types.ChangePlan:
        return types.ChangePlan([], [], [])

    def status(self, ctx: types.Context):
        return []

    def logs(self, ctx: types.Context, resource: str, lines: int):
        return []
"#
    )
}

const PYTHON_BUILD: &str = r#"#!/usr/bin/env bash
# Builds plugin.wasm with componentize-py 0.25.1 (installed into .venv on
# first use). `--stub-wasi` makes a component that imports only the Soar world.
set -euo pipefail
cd "$(dirname "$0")"
cpy="${COMPONENTIZE_PY:-.venv/bin/componentize-py}"
if [ ! -x "$cpy" ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
fi
# componentize-py refuses to run where a generated wit_world/ exists: build
# from a scratch copy.
here="$PWD"
case "$cpy" in /*) ;; *) cpy="$here/$cpy" ;; esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp app.py "$work/"
(cd "$work" && "$cpy" -d "$here/wit" -w plugin componentize --stub-wasi app -o "$here/plugin.wasm")
echo "built $here/plugin.wasm"
"#;

/// `test.sh`: runs the soar that made the project (already quoted for
/// `sh`), unless `$SOAR` names another, and only then one on `PATH`; so it
/// works straight after `soar plugin new`, with no PATH set-up.
fn test_sh(name: &str, this_soar: Option<&str>) -> String {
    let default = this_soar.unwrap_or("''");
    format!(
        r#"#!/usr/bin/env bash
# Builds the component, installs it into a throwaway soar data dir (which
# validates it: a component, a supported contract, `describe` answers) and
# shows what it may reach.
set -euo pipefail
cd "$(dirname "$0")"
# The soar that made this project, unless $SOAR names another; else PATH.
SOAR="${{SOAR:-{default}}}"
if [ -z "$SOAR" ] || [ ! -x "$SOAR" ]; then
    SOAR="$(command -v soar || true)"
fi
if [ -z "$SOAR" ]; then
    echo "test.sh: no soar found: set SOAR=/path/to/soar, or install it with" >&2
    echo "  cargo install --locked --path <the soar checkout>/host" >&2
    exit 127
fi
./build.sh
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
export SOAR_DATA_DIR="$data" SOAR_CACHE_DIR="$data/cache"
"$SOAR" plugin install ./plugin.wasm --yes
"$SOAR" plugin inspect {name}
echo "ok: {name} builds, installs and describes itself"
"#
    )
}

fn readme(name: &str, lang: Lang) -> String {
    let (lang_name, build) = match lang {
        Lang::Rust => ("Rust", "`./build.sh` (cargo, target wasm32-wasip2)"),
        Lang::Python => ("Python", "`./build.sh` (componentize-py 0.25.1 in `.venv`)"),
        Lang::Js => (
            "JavaScript",
            "`./build.sh` (jco 1.16.1 and componentize-js 0.19.3 from npm; Node >= 18)",
        ),
    };
    let notes = if lang == Lang::Js { JS_NOTES } else { "" };
    let settings = match lang {
        Lang::Rust => {
            "- Settings: the `Settings` struct in `src/lib.rs` reads `[env.<name>]`, and the JSON\n  \
             Schema `describe` declares is derived from it (`schemars`), doc comments included;\n  \
             `soar validate` checks soar.toml against that schema offline. Add a field, and the\n  \
             schema follows."
        }
        Lang::Python => {
            "- Settings: `describe` declares their JSON Schema, written by hand in `app.py` (there is\n  \
             no derive as in Rust); `soar validate` checks `[env.<name>]` against it offline, so\n  \
             keep it in step with what the code reads."
        }
        Lang::Js => {
            "- Settings: `describe` declares their JSON Schema, written by hand in `provider.js`\n  \
             (there is no derive as in Rust); `soar validate` checks `[env.<name>]` against it\n  \
             offline, so keep it in step with what the code reads."
        }
    };
    format!(
        r#"# {name}: a Soar provider in {lang_name}

- `wit/`: the contract (`soar:plugin`), as the soar that made this project speaks it.
  Read `wit/README.md` first.
- Build: {build} → `plugin.wasm`.
- Test: `./test.sh` builds it, installs it into a throwaway data dir and prints
  what it may reach.
{settings}
- Use it: `soar plugin install ./plugin.wasm`, then `provider = "{name}"` in an
  environment of `soar.toml`. Publish it with a manifest:

```toml
name = "{name}"
version = "0.1.0"
description = "..."
url = "https://example.com/{name}-0.1.0.wasm"
sha256 = "<sha256sum plugin.wasm>"
wit = "^0.2"
```
{notes}"#
    )
}

/// The versions this soar was verified with: `jco componentize` of a
/// provider against `wit/`, installed and described by soar. Newer jco
/// releases (1.35 at the time) fail on this contract out of the box.
const JCO: &str = "1.16.1";
const COMPONENTIZE_JS: &str = "0.19.3";

fn js_package(name: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "./build.sh"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}",
    "@bytecodealliance/jco": "{JCO}"
  }}
}}
"#
    )
}

fn js_provider(name: &str) -> String {
    format!(
        r#"// The `{name}` Soar provider, in JavaScript (componentized by jco).
//
// How the contract looks from here (types/ has the TypeScript declarations
// that ./build.sh generates from wit/):
// - an error is thrown as a `{{ tag, val }}` payload, e.g.
//   `throw {{ tag: "other", val: "what went wrong" }}`; a plain
//   `throw new Error()` shows up as "wasm `unreachable` executed";
// - u64 values (sizes, times) are BigInt: `JSON.stringify(ctx)` throws, use
//   a replacer such as `(k, v) => typeof v === "bigint" ? v.toString() : v`;
// - enums are strings ("binary"), options are `undefined` when absent,
//   variants are `{{ tag, val }}`;
// - the network is reached only through the host: import `send` from
//   "soar:plugin/http@0.2.0" (jco's `fetch` is disabled by ./build.sh).

export const provider = {{
  describe() {{
    return {{
      name: "{name}",
      version: "0.1.0",
      summary: "TODO: what this provider deploys to",
      artifacts: ["script"],
      settingsSchema: JSON.stringify({{ type: "object", properties: {{}} }}),
      capabilities: {{
        endpoints: [{{ name: "api", defaultUrl: "https://api.example.com" }}],
        extraHosts: [],
        credentials: [],
        ssh: false,
      }},
    }};
  }},
  validate(ctx) {{
    return [];
  }},
  plan(ctx) {{
    return {{ changes: [], diagnostics: [], notes: ["TODO: compare the desired state with the API"] }};
  }},
  apply(ctx, change) {{
    throw {{ tag: "other", val: `TODO: apply ${{change.kind}} ${{change.name}}` }};
  }},
  planDestroy(ctx) {{
    return {{ changes: [], diagnostics: [], notes: [] }};
  }},
  status(ctx) {{
    return [];
  }},
  logs(ctx, resource, lines) {{
    return [];
  }},
}};
"#
    )
}

const JS_BUILD: &str = r#"#!/usr/bin/env bash
# Builds plugin.wasm with jco (componentize-js), installed from npm into
# node_modules on first use, and regenerates the contract's TypeScript
# declarations into types/. `--disable http --disable fetch-event` keeps the
# component from importing wasi:http, which soar does not link (the network
# is reached through soar:plugin/http).
set -euo pipefail
cd "$(dirname "$0")"
[ -x node_modules/.bin/jco ] || npm install --no-audit --no-fund
node_modules/.bin/jco types wit --world-name plugin -o types >/dev/null
node_modules/.bin/jco componentize provider.js --wit wit --world-name plugin \
    --disable http --disable fetch-event -o plugin.wasm
echo "built $PWD/plugin.wasm"
"#;

/// What a JavaScript author needs to know that the WIT does not say.
const JS_NOTES: &str = r#"
## JavaScript and the contract

- Errors: `throw { tag: "invalid-config", val: [diagnostics] }`, `{ tag: "api", val: {...} }`,
  `{ tag: "transport", val: e }` (pass on what `send` threw: `{ reason, message, sizeCap }`,
  with `reason` a string such as `"not-granted"` or `"timeout"`) or
  `{ tag: "other", val: "..." }`. Anything else (`throw new Error()`) traps, and soar
  reports "wasm `unreachable` executed".
- `send` throws its transport error as the value itself (not `{ tag, val }`):
  branch on `e.reason`, never on the words of `e.message`.
- `u64` values are `BigInt`: convert before `JSON.stringify`.
- Enums are strings, `option<T>` is `T | undefined`, variants are `{ tag, val }`,
  records are objects with camelCase fields (`settingsSchema`, `defaultUrl`).
- `console.log` goes to the plugin's captured stdout, recorded line by line as
  it is written (shown with `soar -v`); use the `log` import for levelled records.
- The first install compiles the component (a JavaScript engine is inside it):
  expect tens of seconds once; later runs use the compiled form.
"#;
