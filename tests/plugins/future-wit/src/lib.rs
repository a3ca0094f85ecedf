//! A provider built for `soar:plugin@9.0.0`, a contract version from the
//! future. The host must refuse it at load with a message naming the
//! version, instead of failing later with a link error.

#![allow(
    missing_docs,
    reason = "a test fixture: the generated bindings of a contract version from the future"
)]

wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
});

use exports::soar::plugin::provider::{Capabilities, Description, Guest};

struct Future;

impl Guest for Future {
    fn describe() -> Description {
        Description {
            name: "future".into(),
            version: "9.0.0".into(),
            summary: "Built for a contract this host does not speak".into(),
            artifacts: vec![],
            settings_schema: "{}".into(),
            capabilities: Capabilities {
                endpoints: vec![],
                extra_hosts: vec![],
                credentials: vec![],
                ssh: false,
            },
        }
    }
}

export!(Future);
