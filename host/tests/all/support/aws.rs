//! The AWS suites' fixtures: moto with SigV4 verification on ([`SignedMoto`]:
//! an IAM user is created while moto's auth is still off, signed with
//! throwaway keys, then `reset-auth` makes moto check every signature from
//! there on, so a passing call proves the host's signing against an
//! independent verifier), the bundled aws-spot plugin in a session the way a
//! command opens one ([`SpotSession`]), and `soar` for a zero-config
//! aws-spot project ([`spot_command`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use soar::artifact::ArtifactSource;
use soar::broker::http::HttpLimits;
use soar::contract::{Applied, ArtifactKind, Change, ChangePlan, Context, Severity};
use soar::credentials::{AwsKeys, Secret, sign_sigv4};
use soar::journal::Journal;
use soar::runtime::Plugin;
use soar::session::{Session, SessionConfig};
use soar_tests::moto::Moto;

use super::Vars;

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
/// status and body. Installs rustls' provider itself: in one test binary,
/// relying on another test having installed it would pass or fail by test
/// order.
pub async fn signed(
    url: &str,
    keys: &AwsKeys,
    service: &str,
    region: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    soar::tls::install_crypto_provider();
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

/// `soar` for an aws-spot project in `cwd`, in the sandbox `sandbox` (see
/// [`super::soar`]), with none of the `AWS_*` credentials or
/// `SOAR_ENDPOINT_*` overrides of the shell running the tests; when `ec2` is
/// given (moto, or a proxy in front of it), the EC2 endpoint points there.
pub fn spot_command(sandbox: &Path, cwd: &Path, ec2: Option<&str>) -> Command {
    let mut cmd = super::soar(sandbox, cwd);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AWS_") || k.starts_with("SOAR_ENDPOINT_") {
            cmd.env_remove(&*k);
        }
    }
    if let Some(url) = ec2 {
        assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
        cmd.env("SOAR_ENDPOINT_AWS_SPOT_EC2", url);
    }
    cmd
}

/// The bundled aws-spot plugin and one session of it, as a command opens
/// one: the `ec2` endpoint granted at moto (or a proxy in front of it), the
/// keys held by the host, one HTTP attempt per request (so an injected fault
/// is seen, not retried away), and optionally a project directory as a
/// script artifact.
pub struct SpotSession {
    pub plugin: Plugin,
    pub session: Arc<Session>,
    pub ctx: Context,
    pub journal: Arc<Journal>,
}

/// What [`SpotSession::open`] opens a session with.
pub struct SpotConfig<'a> {
    /// The base URL granted as the plugin's `ec2` endpoint.
    pub ec2: &'a str,
    pub key_id: &'a str,
    pub secret: &'a str,
    /// The project directory, deployed as a script artifact.
    pub project: Option<&'a Path>,
    pub app: &'a str,
    /// The environment's provider settings.
    pub settings: serde_json::Value,
    /// Where the session records; several sessions may share one.
    pub journal: Arc<Journal>,
}

impl SpotSession {
    pub async fn open(config: SpotConfig<'_>) -> Self {
        let runtime = super::runtime(Default::default());
        let plugin = super::bundled(&runtime, "aws-spot").await;
        let artifact = config.project.map(|p| {
            Arc::new(
                ArtifactSource::scan(ArtifactKind::Script, p)
                    .unwrap_or_else(|e| panic!("scanning the project {}: {e:#}", p.display())),
            )
        });
        let session = Arc::new(
            Session::new(
                plugin.description(),
                SessionConfig {
                    grants: super::grants(&[("ec2", config.ec2)]),
                    credential_env: BTreeMap::new(),
                    secrets: Box::new(Vars::new([
                        ("AWS_ACCESS_KEY_ID", config.key_id),
                        ("AWS_SECRET_ACCESS_KEY", config.secret),
                    ])),
                    artifact: artifact.clone(),
                    journal: config.journal.clone(),
                    http_limits: HttpLimits {
                        max_attempts: 1,
                        ..Default::default()
                    },
                },
            )
            .expect("an aws-spot session"),
        );
        let ctx = Context {
            app: config.app.into(),
            environment: "test".into(),
            settings: config.settings.to_string(),
            endpoints: session.http.endpoints().to_vec(),
            artifact: artifact.map(|a| a.describe()),
        };
        Self {
            plugin,
            session,
            ctx,
            journal: config.journal,
        }
    }

    pub async fn plan(&self) -> Result<ChangePlan, String> {
        self.plugin
            .plan(self.session.clone(), &self.ctx)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn apply(&self, c: &Change) -> Result<Applied, String> {
        self.plugin
            .apply(self.session.clone(), &self.ctx, c)
            .await
            .map_err(|e| e.to_string())
    }

    /// Every diagnostic of `validate`, as its message.
    pub async fn diagnostics(&self) -> Vec<String> {
        self.plugin
            .validate(self.session.clone(), &self.ctx)
            .await
            .expect("validate answers")
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    /// The errors of `validate`, as `message (hint)`.
    pub async fn validate(&self) -> Vec<String> {
        self.plugin
            .validate(self.session.clone(), &self.ctx)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{} ({})", d.message, d.hint.unwrap_or_default()))
            .collect()
    }

    /// Every event the session recorded, as JSON.
    pub fn journal_text(&self) -> String {
        serde_json::to_string(&self.journal.events()).unwrap()
    }
}
