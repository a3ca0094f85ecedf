//! SigV4 signing checked by an independent verifier: moto with signature
//! verification on. The bundled aws-spot plugin makes a signed EC2 call
//! through the broker; the host signs it with keys the plugin never sees.

use std::collections::BTreeMap;
use std::sync::Arc;

use soar::broker::http::HttpLimits;
use soar::broker::http::policy::Grants;
use soar::catalog::Catalog;
use soar::credentials::{AwsKeys, Secret, SecretSource, sign_sigv4};
use soar::journal::{Event, Journal};
use soar::runtime::bindings::Context;
use soar::runtime::{Runtime, RuntimeConfig};
use soar::session::{Session, SessionConfig};
use soar_tests::moto::Moto;

/// AWS keys handed to the host (never to the plugin).
struct Keys(BTreeMap<&'static str, String>);

impl SecretSource for Keys {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// A signed IAM call made by the test itself while moto's auth is still off.
async fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let keys = AwsKeys {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("setup-only"),
        session_token: None,
    };
    let url = format!("{}/", moto.url);
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), host),
    ];
    let signed = sign_sigv4(
        &keys,
        "iam",
        "us-east-1",
        "POST",
        &url,
        &headers,
        body.as_bytes(),
    )
    .unwrap();
    let mut rb = reqwest::Client::new().post(&url).body(body);
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| k != "host")
        .chain(signed.iter())
    {
        rb = rb.header(k, v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        status.is_success(),
        "IAM {params:?} failed: {status} {text}"
    );
    text
}

fn tag(xml: &str, name: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .unwrap()
        .to_string()
}

async fn validate_with(
    moto: &Moto,
    key_id: &str,
    secret: &str,
    journal: Arc<Journal>,
) -> Vec<String> {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let catalog = Catalog::discover(None).unwrap();
    let plugin = runtime
        .load("aws-spot", &catalog.get("aws-spot").unwrap().bytes)
        .await
        .unwrap();
    let mut grants = Grants {
        section: "[env.test.grants] in soar.toml".into(),
        ..Default::default()
    };
    grants.endpoints.insert("ec2".into(), moto.url.clone());
    let keys = Keys(BTreeMap::from([
        ("AWS_ACCESS_KEY_ID", key_id.to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
    ]));
    let session = Arc::new(
        Session::new(
            plugin.description(),
            SessionConfig {
                grants,
                credential_env: BTreeMap::new(),
                secrets: Box::new(keys),
                artifact: None,
                journal,
                http_limits: HttpLimits {
                    max_attempts: 1,
                    ..Default::default()
                },
            },
        )
        .unwrap(),
    );
    let ctx = Context {
        app: "sigv4".into(),
        environment: "test".into(),
        settings: r#"{"regions":["eu-west-1"]}"#.into(),
        endpoints: session.http.endpoints().to_vec(),
        artifact: None,
    };
    plugin
        .validate(session, &ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_verifies_the_hosts_sigv4_signature() {
    soar::tls::install_crypto_provider();
    let moto = Moto::start().unwrap();
    iam(&moto, &[("Action", "CreateUser"), ("UserName", "soar")]).await;
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "soar"),
            ("PolicyName", "all"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    let created = iam(
        &moto,
        &[("Action", "CreateAccessKey"), ("UserName", "soar")],
    )
    .await;
    let (key_id, secret) = (
        tag(&created, "AccessKeyId"),
        tag(&created, "SecretAccessKey"),
    );

    // From here on moto checks every signature.
    let resp = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.url))
        .header("content-type", "text/plain")
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let journal = Arc::new(Journal::default());
    let problems = validate_with(&moto, &key_id, &secret, journal.clone()).await;
    assert!(
        problems.is_empty(),
        "a correctly signed call must pass: {problems:?}"
    );
    let statuses: Vec<Option<u16>> = journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Http { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, vec![Some(200)]);

    let wrong = "0000000000000000000000000000000000000000";
    let journal = Arc::new(Journal::default());
    let problems = validate_with(&moto, &key_id, wrong, journal.clone()).await;
    let text = problems.join("\n");
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("AuthFailure"),
        "{text}"
    );
    assert!(
        text.contains("aws-spot provider: cannot use the EC2 API in eu-west-1"),
        "{text}"
    );
    let everything = format!(
        "{text}{}",
        serde_json::to_string(&journal.events()).unwrap()
    );
    assert!(!everything.contains(wrong) && !everything.contains(&secret));
}
