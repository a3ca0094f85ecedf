//! Compiles every first-party plugin in `plugins/` to a component and embeds
//! it, so `cargo build` alone yields a `soar` that has them, with each one's
//! sha256 computed here rather than on every start (see `src/catalog.rs`).
//! Installs the wasm32-wasip2 standard library first if the toolchain lacks
//! it (see `soar_guest_build::toolchain`).

use soar_guest_build::{Guest, build};

fn main() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    build(
        &workspace,
        &[
            Guest {
                name: "local",
                package: "soar-plugin-local",
            },
            Guest {
                name: "digitalocean",
                package: "soar-plugin-digitalocean",
            },
            Guest {
                name: "cloudflare",
                package: "soar-plugin-cloudflare",
            },
            Guest {
                name: "aws-spot",
                package: "soar-plugin-aws-spot",
            },
        ],
        &["wit", "sdk", "plugins"],
        "bundled.rs",
        "BUNDLED",
    );
}
