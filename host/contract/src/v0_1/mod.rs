//! `soar:plugin@0.1.0`, frozen: the bindings of `wit/since_v0.1.0/` and the
//! conversions between its types and the current contract's.
//!
//! The host speaks one contract inside (the current one, in the crate root).
//! A 0.1.0 component still loads: the runtime instantiates it with these
//! bindings and goes through [`convert`] at the boundary, in both
//! directions — export arguments and results, and the host imports it
//! calls. Zed's extension host keeps old extension APIs alive the same way.
//! Nothing else in the host names a 0.1.0 type.

pub mod convert;

/// The generated code of the frozen contract.
#[allow(
    missing_docs,
    reason = "generated from wit/since_v0.1.0 by wasmtime's bindgen"
)]
mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/since_v0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use self::generated::*;

/// The contract version of this module.
pub const VERSION: &str = "0.1.0";
