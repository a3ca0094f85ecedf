//! Compiles every first-party plugin in `plugins/` to a component and embeds
//! it, so `cargo build` alone yields a `soar` that has them.

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
