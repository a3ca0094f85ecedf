//! Host-side bindings generated from `wit/`.
//!
//! Every import is `async` (brokered I/O and sleep must not block the
//! executor) and `trappable` (the host can end a misbehaving plugin from
//! inside a host call, e.g. when its log flood passes the bound).

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::soar::plugin::provider::{
    Capabilities, Credential, CredentialScheme, Description, EndpointDecl,
};
pub use self::soar::plugin::types::{
    ApiError, Applied, Artifact, ArtifactFile, ArtifactKind, Change, ChangeAction, ChangePlan,
    Context, Diagnostic, Endpoint, ManagedResource, PluginError, ResourceStatus, Severity,
};
