//! Which contract version a component implements, and whether this host
//! speaks it.
//!
//! The version is read from the component's own type (the name of the
//! interface it exports), before anything is instantiated, so a plugin built
//! for another contract gets a clear message instead of a link error.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract package.
pub const PACKAGE: &str = "soar:plugin";
/// The contract version this host implements (`wit/package.wit`).
pub const CURRENT: &str = "0.2.0";
/// Versions this host can load: the current one, and 0.1.0 through the
/// adapter in [`crate::v0_1`]. For 0.x a minor bump is breaking, so a
/// version is compatible when its major and minor match one listed here.
pub const SUPPORTED: &[&str] = &[CURRENT, crate::v0_1::VERSION];

/// The `soar:plugin` version `component` implements, or why it cannot load.
pub fn version_of(engine: &Engine, component: &Component) -> Result<String, String> {
    let prefix = format!("{PACKAGE}/provider@");
    let ty = component.component_type();
    let exported: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let Some(version) = exported.iter().find_map(|n| n.strip_prefix(&prefix)) else {
        return Err(format!(
            "not a Soar provider: it exports no `{PACKAGE}/provider` interface (it exports: {})",
            if exported.is_empty() {
                "nothing".to_string()
            } else {
                exported.join(", ")
            }
        ));
    };
    if SUPPORTED.iter().any(|s| compatible(s, version)) {
        Ok(version.to_string())
    } else {
        Err(format!(
            "built for {PACKAGE}@{version}, but this soar supports {}; rebuild the plugin against a supported wit/ or upgrade soar",
            SUPPORTED
                .iter()
                .map(|v| format!("{PACKAGE}@{}", caret(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn parts(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn compatible(supported: &str, got: &str) -> bool {
    match (parts(supported), parts(got)) {
        (Some((0, a, _)), Some((0, b, _))) => a == b,
        (Some((a, _, _)), Some((b, _, _))) => a == b && a != 0,
        _ => false,
    }
}

fn caret(v: &str) -> String {
    match parts(v) {
        Some((0, minor, _)) => format!("0.{minor}.x"),
        Some((major, _, _)) => format!("{major}.x"),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_rules_for_zero_versions() {
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(compatible("0.2.0", "0.2.1"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(!compatible("0.1.0", "9.0.0"));
        assert!(compatible("1.2.0", "1.0.0"));
        assert_eq!(caret("0.1.0"), "0.1.x");
    }
}
