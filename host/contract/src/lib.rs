//! The host side of the `soar:plugin` contract: the Rust types and traits
//! `wasmtime::component::bindgen!` generates from `wit/`, and nothing else.
//!
//! This crate is the leaf of the host's layering (see host/ARCHITECTURE.md):
//! the broker, credentials, artifact and configuration code use these types
//! without depending on the runtime that instantiates plugins, and the
//! generated code (the slowest part of the host to expand) is compiled once
//! instead of on every change to the host.
//!
//! Every import is `async` (brokered I/O and sleep must not block the
//! executor) and `trappable` (the host can end a misbehaving plugin from
//! inside a host call, e.g. when its log flood passes the bound).

pub mod v0_1;
pub mod version;
mod words;

/// The generated code. Its documentation is the WIT's own comments; what
/// the WIT leaves undocumented is generated plumbing.
#[allow(missing_docs, reason = "generated from wit/ by wasmtime's bindgen")]
mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        // The describe cache (host/src/runtime/described.rs) stores a
        // plugin's `description` as JSON; no WIT type is a resource.
        // `PartialEq` lets the host compare states and kinds.
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub use self::generated::*;

pub use self::generated::exports::soar::plugin::provider::{
    Capabilities, Credential, CredentialScheme, Description, EndpointDecl,
};
pub use self::generated::soar::plugin::types::{
    ApiError, Applied, Artifact, ArtifactFile, ArtifactKind, Change, ChangeAction, ChangePlan,
    Context, Diagnostic, Endpoint, EndpointKind, ManagedResource, PluginError, ResourceState,
    ResourceStatus, Severity, TransportError, TransportReason,
};
