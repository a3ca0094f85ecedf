//! Components built from `tests/plugins/` by `tests/build.rs`.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

fn component(name: &str) -> &'static [u8] {
    COMPONENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("tests/build.rs built no component named {name:?}"))
}

/// The hostile provider (`tests/plugins/hostile`): one component that
/// misbehaves in the way its `mode` setting names.
pub fn hostile() -> &'static [u8] {
    component("hostile")
}

/// A provider built for `soar:plugin@9.0.0` (`tests/plugins/future-wit`),
/// which this host must refuse by version.
pub fn future_wit() -> &'static [u8] {
    component("future-wit")
}

/// A provider whose `describe` attacks the install consent screen
/// (`tests/plugins/consent-hostile`): escape sequences in its version and
/// summary, other services' secrets as credentials bound to its own
/// endpoint. Its name, `consent-evil`, has the length of `digitalocean`.
pub fn consent_hostile() -> &'static [u8] {
    component("consent-hostile")
}
