//! The Rust SDK for Soar provider plugins.
//!
//! A provider is a WebAssembly component that implements the `soar:plugin`
//! contract (see `wit/`). This crate wraps the generated bindings so a plugin
//! reads like ordinary Rust:
//!
//! ```ignore
//! use soar_sdk::prelude::*;
//!
//! struct Hello;
//! impl Provider for Hello {
//!     fn describe() -> Description { /* name, version, capabilities */ }
//!     fn plan(ctx: &Context) -> Result<ChangePlan, PluginError> {
//!         let droplets: Value = Request::get(&format!("{}/v2/droplets", ctx.endpoint("api")?))
//!             .credential("digitalocean")
//!             .send()?
//!             .json()?;
//!         /* ... */
//!     }
//!     /* ... */
//! }
//! soar_sdk::export_provider!(Hello);
//! ```
//!
//! Everything that touches the outside world goes through the host: the
//! plugin names a credential, the host injects it; the plugin references an
//! artifact file, the host streams it.
//!
//! The settings schema `describe` declares is derived from the settings
//! struct ([`settings_schema`], with `#[derive(Deserialize, JsonSchema)]`),
//! so `soar validate` checks soar.toml against what the plugin really reads.

pub mod artifact;
pub mod context;
pub mod diagnostic;
pub mod error;
mod host;
pub mod http;
pub mod log;
mod schema;
pub mod setting;
pub mod testing;
pub mod time;

/// How Soar reads what people type, shared with the host so a plugin's
/// settings accept (and refuse) exactly what soar.toml's own keys do:
/// [`parse_duration`](text::parse_duration) for `"30s"`-style durations and
/// [`closest`](text::closest) for "did you mean".
pub mod text {
    pub use soar_text::{DURATION_FORMS, closest, distance, parse_duration};
}

#[doc(hidden)]
pub mod bindings {
    //! Raw bindings generated from `wit/`. Prefer the wrappers in this crate.
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "soar_sdk::bindings",
        generate_all,
    });
}

pub use bindings::exports::soar::plugin::provider::{
    Capabilities, Credential, CredentialScheme, Description, EndpointDecl,
};
pub use bindings::soar::plugin::types::{
    ApiError, Applied, Artifact, ArtifactFile, ArtifactKind, Change, ChangeAction, ChangePlan,
    Context, Diagnostic, Endpoint, EndpointKind, ManagedResource, PluginError, ResourceState,
    ResourceStatus, Severity, TransportError, TransportReason,
};
pub use schema::settings_schema;
/// The derive behind [`settings_schema`], for `#[derive(JsonSchema)]` on a
/// settings struct (a plugin usually depends on `schemars` itself, which
/// the derive's generated code names).
pub use schemars::{self, JsonSchema};
pub use serde_json::{Value, json};

/// The contract version this SDK implements (`soar:plugin@...`).
pub const WIT_VERSION: &str = "0.2.0";

/// What a provider plugin implements. Each method is one export of the
/// `soar:plugin/provider` interface; the host calls it in a fresh sandbox, so
/// implementations keep no state between calls.
pub trait Provider {
    /// Name, version, artifact kinds, settings schema (derive it with
    /// [`settings_schema`]) and everything the plugin may reach. Called
    /// without network access.
    fn describe() -> Description;

    /// Check the environment's settings; reads against the API are allowed.
    fn validate(ctx: &Context) -> Vec<Diagnostic> {
        let _ = ctx;
        Vec::new()
    }

    /// Desired vs actual, as ordered changes. Must not change anything.
    fn plan(ctx: &Context) -> Result<ChangePlan, PluginError>;

    /// Apply one change of a plan, idempotently.
    fn apply(ctx: &Context, change: &Change) -> Result<Applied, PluginError>;

    /// ChangePlan deleting everything the environment owns.
    fn plan_destroy(ctx: &Context) -> Result<ChangePlan, PluginError>;

    /// Current state of the environment's resources.
    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        let _ = ctx;
        Ok(Vec::new())
    }

    /// Recent log lines of one resource.
    fn logs(ctx: &Context, resource: &str, lines: u32) -> Result<Vec<String>, PluginError> {
        let _ = (ctx, resource, lines);
        Err(PluginError::Other(
            "this provider does not keep logs; see the service's own logging".into(),
        ))
    }
}

/// Export a [`Provider`] implementation as the component's
/// `soar:plugin/provider` interface.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[doc(hidden)]
        struct __SoarProviderExport;

        impl $crate::bindings::exports::soar::plugin::provider::Guest for __SoarProviderExport {
            fn describe() -> $crate::Description {
                <$provider as $crate::Provider>::describe()
            }
            fn validate(ctx: $crate::Context) -> ::std::vec::Vec<$crate::Diagnostic> {
                <$provider as $crate::Provider>::validate(&ctx)
            }
            fn plan(ctx: $crate::Context) -> ::std::result::Result<$crate::ChangePlan, $crate::PluginError> {
                <$provider as $crate::Provider>::plan(&ctx)
            }
            fn apply(
                ctx: $crate::Context,
                change: $crate::Change,
            ) -> ::std::result::Result<$crate::Applied, $crate::PluginError> {
                <$provider as $crate::Provider>::apply(&ctx, &change)
            }
            fn plan_destroy(
                ctx: $crate::Context,
            ) -> ::std::result::Result<$crate::ChangePlan, $crate::PluginError> {
                <$provider as $crate::Provider>::plan_destroy(&ctx)
            }
            fn status(
                ctx: $crate::Context,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::ResourceStatus>, $crate::PluginError> {
                <$provider as $crate::Provider>::status(&ctx)
            }
            fn logs(
                ctx: $crate::Context,
                resource: ::std::string::String,
                lines: u32,
            ) -> ::std::result::Result<::std::vec::Vec<::std::string::String>, $crate::PluginError> {
                <$provider as $crate::Provider>::logs(&ctx, &resource, lines)
            }
        }

        // Only a component exports the world: a native build (the plugin's
        // unit tests, against `soar_sdk::testing`) has no host to call it,
        // and the export names (`soar:plugin/provider@...#plan`) are not
        // symbols a native linker takes.
        #[cfg(target_family = "wasm")]
        $crate::bindings::__export_plugin_world!(__SoarProviderExport with_types_in $crate::bindings);
    };
}

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::context::ContextExt;
    pub use crate::diagnostic::FieldPath;
    pub use crate::error::{PluginResult, invalid_setting};
    pub use crate::http::{Request, Response};
    pub use crate::{
        Applied, Artifact, ArtifactKind, Capabilities, Change, ChangeAction, ChangePlan, Context,
        Credential, CredentialScheme, Description, Diagnostic, Endpoint, EndpointDecl,
        EndpointKind, ManagedResource, PluginError, Provider, ResourceState, ResourceStatus,
        Severity, TransportReason, Value, json,
    };
    pub use crate::{debug, error, info, warn};
}
