//! The host's layering, checked: every top-level module of `host/src` sits
//! in one layer of [`LAYERS`], and may use only modules of lower layers.
//! A `use crate::…` that points sideways or up fails this test with the
//! file and line that introduced it, so a dependency cycle cannot creep
//! back in. host/ARCHITECTURE.md explains the layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up. A module may depend only on
/// modules in earlier rows.
const LAYERS: &[&[&str]] = &[
    // Leaves: the contract's types, and small helpers with no domain.
    &[
        "contract", "shell", "terminal", "tls", "journal", "layering",
    ],
    // What a plugin is given and what is secret.
    &["artifact", "credentials"],
    // The one enforcement point for HTTP and SSH; the one output path.
    &["broker", "report"],
    // The user's configuration, a plugin's host-side session, state on
    // disk, and the plugins the host knows of.
    &["config", "session", "state", "catalog"],
    // Running plugins, and rolling artifacts out onto hosts.
    &["runtime", "rollout"],
    // Installing plugins, supervising local services, watching deployed
    // ones.
    &["install", "supervise", "monitor"],
    // Commands: the deploy engine and the HTTP service.
    &["engine", "serve"],
    // `soar plugin test`: a provider driven as the engine drives it.
    &["conformance"],
    // The client of a server (`--server URL`): shows its events as the
    // engine would, and knows the server only by its HTTP API.
    &["remote"],
    // The deploy operations as MCP tools for agents: on the engine, or on
    // a server through its client.
    &["mcp"],
    // The command line.
    &["cli"],
];

/// A `crate::module` reference: where it is.
#[derive(Debug, Clone)]
struct Use {
    file: PathBuf,
    line: usize,
}

/// `from → to → first place it is used`, over top-level modules.
fn edges(src: &Path) -> BTreeMap<(String, String), Use> {
    let mut edges = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let from = top_module(rel);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (line, to) in crate_refs(&text) {
            if to != from {
                edges.entry((from.clone(), to)).or_insert(Use {
                    file: rel.to_path_buf(),
                    line,
                });
            }
        }
    }
    edges
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `engine/deploy.rs` → `engine`, `catalog.rs` → `catalog`.
fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` in code and doc comments (not in plain comments),
/// with its line, including
/// the names inside a `use crate::{a::x, b::{y, z}}` group.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let code = strip_comments(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    let mut offset = 0;
    while let Some(i) = rest.find("crate::") {
        let at = offset + i;
        let after = &code[at + "crate::".len()..];
        // `$crate::` in a macro is not a module reference.
        let is_macro = at > 0 && code.as_bytes()[at - 1] == b'$';
        let line = code[..at].matches('\n').count() + 1;
        if !is_macro {
            if let Some(group) = after.strip_prefix('{') {
                for name in group_heads(group) {
                    out.push((line, name));
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((line, name));
                }
            }
        }
        offset = at + "crate::".len();
        rest = &code[offset..];
    }
    out
}

/// The first path segment of each item of a `{…}` group (up to its closing
/// brace): `a::x, b::{y, z}, c` → `a`, `b`, `c`.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut word = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && (c.is_alphanumeric() || c == '_') => word.push(c),
            _ => {
                if at_item_start && !word.is_empty() {
                    heads.push(std::mem::take(&mut word));
                    at_item_start = false;
                }
            }
        }
    }
    if at_item_start && !word.is_empty() {
        heads.push(word);
    }
    heads.retain(|h| h != "self");
    heads
}

/// The text with plain `//` and `/* */` comments blanked (line breaks
/// kept, so line numbers still hold). Doc comments (`///`, `//!`) are kept:
/// an intra-doc link to `crate::<module>` is a dependency rustdoc
/// resolves, and one pointing up a layer draws the same cycle in the docs.
/// String literals are left as they are: a `crate::` inside one would be a
/// false edge, and none exists.
fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_block = 0usize;
    let mut in_line = false;
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        i += 1;
        if in_line {
            if c == '\n' {
                in_line = false;
                out.push('\n');
            }
            continue;
        }
        if in_block > 0 {
            match (c, next) {
                ('*', Some('/')) => {
                    i += 1;
                    in_block -= 1;
                }
                ('/', Some('*')) => {
                    i += 1;
                    in_block += 1;
                }
                ('\n', _) => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match (c, next) {
            // `///` and `//!`: documentation, kept.
            ('/', Some('/')) if matches!(chars.get(i + 1), Some('/' | '!')) => {
                out.push(c);
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            ('/', Some('/')) => in_line = true,
            ('/', Some('*')) => {
                i += 1;
                in_block += 1;
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn every_dependency_points_down_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    let mut modules: Vec<String> = rust_files(&src)
        .iter()
        .map(|f| top_module(f.strip_prefix(&src).unwrap_or(f)))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    modules.dedup();
    for m in &modules {
        if !layer_of.contains_key(m.as_str()) {
            problems.push(format!(
                "module `{m}` has no layer: add it to LAYERS in host/src/layering.rs \
                 (and to host/ARCHITECTURE.md)"
            ));
        }
    }
    for ((from, to), at) in edges(&src) {
        if from == "lib" || from == "main" {
            continue;
        }
        let (Some(&lf), Some(&lt)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
        else {
            continue;
        };
        if lt >= lf {
            problems.push(format!(
                "{}:{}: `{from}` (layer {lf}) uses `crate::{to}` (layer {lt}); a module may use \
                 only lower layers — move the item it needs down, or pass it in",
                at.file.display(),
                at.line
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "host/src layering:\n{}",
        problems.join("\n")
    );
}

#[test]
fn references_are_found_in_groups_and_doc_links_not_in_comments() {
    let text = "use crate::{a::x, b::{y, z},\n    c};\n// crate::d\n/* crate::e */ let f = crate::f::g();\nmacro_rules! m { () => { $crate::h } }\n/// see [`crate::i`]\n//! and [`crate::j`]";
    let names: Vec<(usize, String)> = crate_refs(text);
    let names: Vec<(usize, &str)> = names.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        vec![(1, "a"), (1, "b"), (1, "c"), (4, "f"), (6, "i"), (7, "j")]
    );
}
