//! Compiles the test plugins in `tests/plugins/` to components and embeds
//! them (see `src/components.rs`), so the hostile-plugin suite always runs
//! against components built from the current SDK and contract.

use soar_guest_build::{Guest, build};

fn main() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf();
    build(
        &workspace,
        &[
            Guest {
                name: "hostile",
                package: "soar-hostile-plugin",
            },
            Guest {
                name: "future-wit",
                package: "soar-future-wit-plugin",
            },
            Guest {
                name: "consent-hostile",
                package: "soar-consent-hostile-plugin",
            },
        ],
        &["wit", "sdk", "tests/plugins"],
        "components.rs",
        "COMPONENTS",
    );
}
