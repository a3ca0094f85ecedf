//! Soar: deploy services through sandboxed WebAssembly provider plugins.
//!
//! The crate is the `soar` binary's library: the [`runtime`] that runs
//! plugins, the [`broker`]s through which they reach the world, the
//! [`credentials`] only the host holds, and the [`cli`] on top.

pub mod artifact;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod credentials;
pub mod engine;
pub mod install;
pub mod journal;
pub mod mcp;
pub mod monitor;
pub mod remote;
pub mod report;
pub mod rollout;
pub mod runtime;
pub mod serve;
pub mod session;
pub mod shell;
pub mod state;
pub mod supervise;
pub mod terminal;
pub mod tls;

/// The `soar:plugin` contract's generated types: the layering's leaf
/// (see host/ARCHITECTURE.md).
pub use soar_contract as contract;

#[cfg(test)]
mod layering;
