//! The host's imports, as every other module of the SDK calls them.
//!
//! Inside a component (`target_family = "wasm"`) these are the
//! `soar:plugin` imports the host links. On any other target, which is where
//! a plugin's own unit tests run (`cargo test` on the author's machine and in
//! CI), they are the [`testing`](crate::testing) stand-in: the same
//! functions with the same signatures, answered by what the test set up.
//! Nothing else in the SDK names the bindings' imports, so a plugin built
//! with the SDK behaves the same against both.

#[cfg(target_family = "wasm")]
pub(crate) use crate::bindings::soar::plugin::{artifacts, clock, http, log, progress};

#[cfg(not(target_family = "wasm"))]
pub(crate) use crate::testing::stand_in::{artifacts, clock, http, log, progress};
