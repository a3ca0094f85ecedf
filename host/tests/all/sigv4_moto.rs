//! SigV4 signing checked by an independent verifier: moto with signature
//! verification on. The bundled aws-spot plugin makes a signed EC2 call
//! through the broker; the host signs it with keys the plugin never sees.

use std::sync::Arc;

use soar::journal::{Event, Journal};
use soar_tests::moto::Moto;

use crate::support::aws::{SignedMoto, SpotConfig, SpotSession};

async fn validate_with(
    moto: &Moto,
    key_id: &str,
    secret: &str,
    journal: Arc<Journal>,
) -> Vec<String> {
    SpotSession::open(SpotConfig {
        ec2: &moto.url,
        key_id,
        secret,
        project: None,
        app: "sigv4",
        settings: serde_json::json!({"regions": ["eu-west-1"]}),
        journal,
    })
    .await
    .diagnostics()
    .await
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
