//! SigV4 signing checked by an independent verifier: moto with signature
//! verification on. The bundled aws-spot plugin makes a signed EC2 call
//! through the broker; the host signs it with keys the plugin never sees.

mod aws_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_support::SignedMoto;
use soar::broker::http::HttpLimits;
use soar::broker::http::policy::Grants;
use soar::catalog::Catalog;
use soar::credentials::SecretSource;
use soar::journal::{Event, Journal};
use soar::contract::Context;
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
    let aws = SignedMoto::start().await;
    let (moto, key_id, secret) = (&aws.moto, aws.key_id.clone(), aws.secret.clone());

    let journal = Arc::new(Journal::default());
    let problems = validate_with(moto, &key_id, &secret, journal.clone()).await;
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
    let problems = validate_with(moto, &key_id, wrong, journal.clone()).await;
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
