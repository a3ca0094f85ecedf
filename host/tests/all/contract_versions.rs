//! Contract versions side by side: a `soar:plugin@0.1.0` component (the
//! Python example, built by componentize-py against `wit/since_v0.1.0/`)
//! and a 0.2.0 one (the bundled DigitalOcean plugin) loaded into one
//! runtime and driven through the same brokers, at the same time.
//!
//! The 0.1.0 plugin's strings arrive typed (its `"url"` endpoint kind, its
//! `"running"` state), the host's typed refusals reach it in its own shapes
//! (a missing credential is 0.1.0's `denied`), and neither plugin sees a
//! token.

use std::sync::Arc;

use serde_json::{Value, json};
use soar::artifact::ArtifactSource;
use soar::broker::http::HttpLimits;
use soar::contract::{ArtifactKind, ChangeAction, Context, EndpointKind, ResourceState};
use soar::journal::Journal;
use soar::runtime::Plugin;
use soar::session::{Session, SessionConfig};
use soar_tests::fakes::digitalocean::DigitalOceanFake;
use soar_tests::fakes::vmapi::VmApi;

use crate::support::{self, Vars};

const VM_TOKEN: &str = "vmapi_side_by_side_token_0123456789";
const DO_TOKEN: &str = "dop_v1_side_by_side_token_0123456789abcdef";

fn session(
    plugin: &Plugin,
    api: &str,
    vars: &[(&str, &str)],
    artifact: Option<Arc<ArtifactSource>>,
) -> Arc<Session> {
    Arc::new(
        Session::new(
            plugin.description(),
            SessionConfig {
                grants: support::grants(&[("api", api)]),
                credential_env: Default::default(),
                secrets: Box::new(Vars::new(vars.iter().copied())),
                artifact,
                journal: Arc::new(Journal::default()),
                http_limits: HttpLimits::default(),
            },
        )
        .expect("a session"),
    )
}

fn context(session: &Session, settings: Value) -> Context {
    Context {
        app: "shop".into(),
        environment: "test".into(),
        settings: settings.to_string(),
        endpoints: session.http.endpoints().to_vec(),
        artifact: session.artifact.as_ref().map(|a| a.describe()),
    }
}

fn droplet_settings() -> Value {
    json!({
        "ssh_key_name": "deploy-key",
        "default_region": "nyc3",
        "default_size": "s-1vcpu-1gb",
        "wait_interval": "20ms",
        "wait_timeout": "20s",
        "hosts": {"web-1": {"role": "app"}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_plugin_and_a_0_2_plugin_run_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = support::examples::python(&dir.path().join("vmapi.wasm"));
    let runtime = support::runtime(Default::default());
    let old = runtime
        .load("vmapi", &wasm)
        .await
        .expect("the 0.1.0 plugin loads");
    let new = support::bundled(&runtime, "digitalocean").await;
    assert_eq!(old.wit_version(), "0.1.0");
    assert_eq!(new.wit_version(), "0.2.0");
    assert_eq!(old.description().name, "vmapi");

    let vmapi = VmApi::start(VM_TOKEN);
    let digitalocean = DigitalOceanFake::start(DO_TOKEN);
    digitalocean.add_ssh_key("deploy-key");
    let site = dir.path().join("site");
    support::write(&site, "index.html", "<h1>side by side</h1>");
    let artifact = Arc::new(ArtifactSource::scan(ArtifactKind::Static, &site).unwrap());
    let old_session = session(
        &old,
        vmapi.url(),
        &[("VMAPI_TOKEN", VM_TOKEN)],
        Some(artifact),
    );
    let new_session = session(
        &new,
        digitalocean.url(),
        &[("DIGITALOCEAN_TOKEN", DO_TOKEN)],
        None,
    );
    let old_ctx = context(&old_session, json!({"size": "small"}));
    let new_ctx = context(&new_session, droplet_settings());

    // Both plan at once, in one runtime.
    let (old_plan, new_plan) = tokio::join!(
        old.plan(old_session.clone(), &old_ctx),
        new.plan(new_session.clone(), &new_ctx)
    );
    let (old_plan, new_plan) = (old_plan.expect("0.1.0 plan"), new_plan.expect("0.2.0 plan"));
    assert_eq!(old_plan.changes.len(), 1, "{old_plan:?}");
    assert_eq!(old_plan.changes[0].action, ChangeAction::Create);
    assert!(!old_plan.changes[0].deploys_artifact);
    assert!(
        new_plan
            .changes
            .iter()
            .any(|c| c.action == ChangeAction::Create && c.kind == "droplet"),
        "{new_plan:?}"
    );

    // The 0.1.0 plugin applies through the adapter: its "url" endpoint is
    // typed, and its status reads back as the `running` state.
    let applied = old
        .apply(old_session.clone(), &old_ctx, &old_plan.changes[0])
        .await
        .expect("0.1.0 apply");
    assert_eq!(vmapi.vms().len(), 1, "{applied:?}");
    let status = old
        .status(old_session.clone(), &old_ctx)
        .await
        .expect("0.1.0 status");
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0].state, ResourceState::Running, "{status:?}");
    assert!(
        applied
            .endpoints
            .iter()
            .chain(&status[0].endpoints)
            .all(|e| e.kind == EndpointKind::Url),
        "{applied:?} {status:?}"
    );

    // A refusal typed by the host (the credential is not configured)
    // reaches the 0.1.0 plugin as its `denied`, which it passes on in
    // words; the 0.2.0 plugin gets it typed.
    let bare_old = session(&old, vmapi.url(), &[], None);
    let bare_new = session(&new, digitalocean.url(), &[], None);
    let (bare_old_ctx, bare_new_ctx) = (
        context(&bare_old, json!({"size": "small"})),
        context(&bare_new, droplet_settings()),
    );
    let (old_err, new_err) = tokio::join!(
        old.plan(bare_old.clone(), &bare_old_ctx),
        new.plan(bare_new.clone(), &bare_new_ctx)
    );
    let old_err = old_err.expect_err("no VMAPI_TOKEN").to_string();
    let new_err = new_err.expect_err("no DIGITALOCEAN_TOKEN").to_string();
    assert!(old_err.contains("VMAPI_TOKEN"), "{old_err}");
    assert!(new_err.contains("DIGITALOCEAN_TOKEN"), "{new_err}");
    assert!(!new_err.contains("denied by the host"), "{new_err}");
    for text in [
        &old_err,
        &new_err,
        &format!("{applied:?} {status:?} {old_plan:?} {new_plan:?}"),
    ] {
        assert!(
            !text.contains(VM_TOKEN) && !text.contains(DO_TOKEN),
            "{text}"
        );
    }
}
