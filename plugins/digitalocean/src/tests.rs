//! The provider's logic against canned DigitalOcean answers, natively, with
//! the SDK's host stand-in (`soar_sdk::testing`). The built component is
//! tested through the real host against the DigitalOcean fake in
//! `host/tests/all/digitalocean.rs`; these tests pin the plugin's own
//! decisions and run in a fraction of a second.

use soar_sdk::prelude::*;
use soar_sdk::testing::{HttpError, SentRequest, StandIn, WireResponse, json_response};

use crate::DigitalOcean;

const API: &str = "https://api.test";

/// A small account: one SSH key, one size in one region, and `droplets`.
fn account(droplets: Value) -> impl FnMut(&SentRequest) -> Result<WireResponse, HttpError> {
    move |req| {
        let path = req.url.strip_prefix(API).expect("only the API endpoint");
        let body = match path.split('?').next().unwrap_or_default() {
            "/v2/account/keys" => {
                json!({"ssh_keys": [{"id": 7, "name": "deploy"}], "meta": {"total": 1}})
            }
            "/v2/sizes" => json!({"sizes": [{"slug": "s-1vcpu-1gb", "price_monthly": 6.0,
                "regions": ["nyc1"], "available": true}], "meta": {"total": 1}}),
            "/v2/regions" => json!({"regions": [{"slug": "nyc1", "available": true,
                "sizes": ["s-1vcpu-1gb"]}], "meta": {"total": 1}}),
            "/v2/droplets" => json!({"droplets": droplets.clone(),
                "meta": {"total": droplets.as_array().map_or(0, Vec::len)}}),
            other => {
                return Ok(json_response(
                    404,
                    &json!({"id": "not_found", "message": other}),
                ));
            }
        };
        Ok(json_response(200, &body))
    }
}

fn ctx(settings: Value) -> Context {
    Context {
        app: "hello".into(),
        environment: "staging".into(),
        settings: settings.to_string(),
        endpoints: vec![("api".into(), API.into())],
        artifact: None,
    }
}

fn settings(key: &str) -> Value {
    json!({"ssh_key_name": key, "default_region": "nyc1", "default_size": "s-1vcpu-1gb",
        "hosts": {"app-1": {"role": "app"}}})
}

#[test]
fn an_empty_account_plans_one_droplet_with_reads_only() {
    let host = StandIn::install();
    host.on_http(account(json!([])));
    let plan = DigitalOcean::plan(&ctx(settings("deploy"))).expect("a plan");
    let creates: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(creates.len(), 1, "{:?}", plan.changes);
    let methods: Vec<_> = host.requests().iter().map(|r| r.method).collect();
    assert!(
        methods.iter().all(|m| *m == soar_sdk::http::Method::Get),
        "plan only reads: {methods:?}"
    );
    assert!(
        host.requests()
            .iter()
            .all(|r| r.credential.as_deref() == Some("digitalocean")),
        "every request names the credential the host injects"
    );
}

#[test]
fn a_missing_ssh_key_names_the_keys_the_account_has() {
    let host = StandIn::install();
    host.on_http(account(json!([])));
    let err = DigitalOcean::plan(&ctx(settings("laptop"))).expect_err("no such key");
    let text = format!("{err:?}");
    assert!(text.contains("laptop") && text.contains("deploy"), "{text}");
}
