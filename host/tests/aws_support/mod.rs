//! moto with SigV4 verification on, shared by the AWS tests: an IAM user is
//! created while moto's auth is still off (signed with throwaway keys), then
//! `reset-auth` makes moto check every signature from there on, so a passing
//! call proves the host's signing against an independent verifier.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use soar::credentials::{AwsKeys, Secret, sign_sigv4};
use soar_tests::moto::Moto;

/// A policy that allows everything.
pub const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A running moto whose IAM user `soar` holds these keys.
pub struct SignedMoto {
    pub moto: Moto,
    pub key_id: String,
    pub secret: String,
}

impl SignedMoto {
    /// Start moto with the user allowed everything.
    pub async fn start() -> Self {
        Self::start_with_policy(ALLOW_ALL).await
    }

    /// Start moto, create the user with `policy` (an IAM policy document)
    /// and its keys, then switch auth on: from there moto checks every
    /// signature and every action against the policy.
    pub async fn start_with_policy(policy: &str) -> Self {
        soar::tls::install_crypto_provider();
        let moto = Moto::start().unwrap();
        let setup = AwsKeys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("setup-only"),
            session_token: None,
        };
        let iam = async |params: &[(&str, &str)]| {
            let mut form = vec![("Version", "2010-05-08")];
            form.extend_from_slice(params);
            let (status, text) = signed(&moto.url, &setup, "iam", "us-east-1", &form).await;
            assert!(status < 300, "IAM {params:?} failed: {status} {text}");
            text
        };
        iam(&[("Action", "CreateUser"), ("UserName", "soar")]).await;
        iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "soar"),
            ("PolicyName", "soar"),
            ("PolicyDocument", policy),
        ])
        .await;
        let created = iam(&[("Action", "CreateAccessKey"), ("UserName", "soar")]).await;
        let resp = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", moto.url))
            .header("content-type", "text/plain")
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "moto reset-auth");
        Self {
            key_id: xml_text(&created, "AccessKeyId"),
            secret: xml_text(&created, "SecretAccessKey"),
            moto,
        }
    }

    /// The user's keys, for calls the test makes itself.
    pub fn keys(&self) -> AwsKeys {
        AwsKeys {
            access_key_id: self.key_id.clone(),
            secret_access_key: Secret::new(&self.secret),
            session_token: None,
        }
    }
}

/// A SigV4-signed form POST straight to `url` (not through the broker):
/// status and body.
pub async fn signed(
    url: &str,
    keys: &AwsKeys,
    service: &str,
    region: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let url = format!("{url}/");
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
        keys,
        service,
        region,
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
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The text of the first `<name>` element of an AWS XML answer ("" if none).
pub fn xml_text(xml: &str, name: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}
