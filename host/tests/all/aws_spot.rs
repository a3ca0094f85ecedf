//! The aws-spot provider against moto with SigV4 verification on: convention
//! and manifest projects, cloud-init user data, idempotent creates, capacity
//! failover (errors injected by a proxy in front of moto), destroy by tags,
//! and secrets that never show.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use soar::contract::{Change, ChangeAction, ChangePlan, PluginError};
use soar::journal::Journal;
use soar::runtime::CallError;
use soar_tests::ec2_proxy::{Ec2Proxy, Fault};

use crate::support;
use crate::support::aws::{SignedMoto, SpotConfig, SpotSession, signed, xml_text};

const SECRET_VALUE: &str = "hunter2-do-not-print-me";
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl+DEqTADDZx8f6/+iPLCbFokBgQocPCtIkAbGPD89U test@soar";

/// moto with an IAM user whose keys the host signs with; auth switched on.
struct Aws(SignedMoto);

impl std::ops::Deref for Aws {
    type Target = SignedMoto;
    fn deref(&self) -> &SignedMoto {
        &self.0
    }
}

impl Aws {
    async fn start() -> Self {
        Self(SignedMoto::start().await)
    }

    /// A signed EC2 call made by the test itself (straight to moto).
    async fn ec2(&self, region: &str, form: &[(&str, &str)]) -> String {
        let mut all = vec![("Version", "2016-11-15")];
        all.extend_from_slice(form);
        let (status, text) = signed(&self.moto.url, &self.keys(), "ec2", region, &all).await;
        assert!(status < 300, "EC2 {form:?}: {status} {text}");
        text
    }

    /// Instances in `region` (all states) as (id, state, tags, lifecycle, type).
    async fn instances(&self, region: &str) -> Vec<Inst> {
        let xml = self.ec2(region, &[("Action", "DescribeInstances")]).await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("instancesSet"))
            .flat_map(|s| s.children().filter(|c| c.has_tag_name("item")))
            .map(|i| {
                let text = |name: &str| {
                    i.children()
                        .find(|c| c.has_tag_name(name))
                        .and_then(|c| c.text())
                        .unwrap_or_default()
                        .to_string()
                };
                let state = i
                    .children()
                    .find(|c| c.has_tag_name("instanceState"))
                    .and_then(|s| s.children().find(|c| c.has_tag_name("name")))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_string();
                let tags = i
                    .children()
                    .find(|c| c.has_tag_name("tagSet"))
                    .map(|t| {
                        t.children()
                            .filter(|c| c.has_tag_name("item"))
                            .map(|item| {
                                let f = |n: &str| {
                                    item.children()
                                        .find(|c| c.has_tag_name(n))
                                        .and_then(|c| c.text())
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                (f("key"), f("value"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Inst {
                    id: text("instanceId"),
                    state,
                    tags,
                    lifecycle: text("instanceLifecycle"),
                    instance_type: text("instanceType"),
                    key_name: text("keyName"),
                }
            })
            .collect()
    }

    async fn user_data(&self, region: &str, id: &str) -> String {
        let xml = self
            .ec2(
                region,
                &[
                    ("Action", "DescribeInstanceAttribute"),
                    ("InstanceId", id),
                    ("Attribute", "userData"),
                ],
            )
            .await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let b64 = doc
            .descendants()
            .find(|n| n.has_tag_name("userData"))
            .and_then(|n| n.children().find(|c| c.has_tag_name("value")))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .unwrap(),
        )
        .unwrap()
    }
}

#[derive(Debug, Clone)]
struct Inst {
    id: String,
    state: String,
    tags: BTreeMap<String, String>,
    lifecycle: String,
    instance_type: String,
    key_name: String,
}

impl Inst {
    fn tag(&self, k: &str) -> &str {
        self.tags.get(k).map(String::as_str).unwrap_or_default()
    }
}

/// The bundled plugin with a session toward `endpoint`.
/// An aws-spot session against `endpoint` with the IAM user's key id and
/// `secret` (the right one, or not), recording into a journal of its own.
async fn harness(
    aws: &Aws,
    endpoint: &str,
    secret: &str,
    project: Option<&Path>,
    app: &str,
    settings: serde_json::Value,
) -> SpotSession {
    SpotSession::open(SpotConfig {
        ec2: endpoint,
        key_id: &aws.key_id,
        secret,
        project,
        app,
        settings,
        journal: Arc::new(Journal::default()),
    })
    .await
}

fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        support::write(dir.path(), path, content);
    }
    dir
}

const FAST: &str = "poll_interval_ms: 50\nwait_timeout: 20\n";

fn creates(plan: &ChangePlan) -> Vec<&Change> {
    plan.changes
        .iter()
        .filter(|c| c.action == ChangeAction::Create)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn convention_project_plans_deploys_and_keeps_secrets_hidden() {
    let aws = Aws::start().await;
    let config = format!(
        "regions: [us-east-1, eu-west-1]\ninstance_types: [t3.micro]\ncount: 3\nservice_port: 8080\npublic_key: \"{PUBLIC_KEY}\"\n{FAST}"
    );
    let secret_file = format!("API_TOKEN={SECRET_VALUE}\n");
    let dir = project(&[
        (".spot/config.yaml", config.as_bytes()),
        ("deployment/setup.sh", b"#!/bin/bash\necho setting up\n"),
        ("deployment/configs/app.conf", b"listen 8080\n"),
        (
            "deployment/services/app.service",
            b"[Service]\nExecStart=/opt/deployment/run.sh\n",
        ),
        ("deployment/secrets/api.env", secret_file.as_bytes()),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "conv",
        serde_json::json!({}),
    )
    .await;

    assert_eq!(h.validate().await, Vec::<String>::new());
    let plan = h.plan().await.unwrap();
    let rendered = format!("{plan:?}");
    assert_eq!(creates(&plan).len(), 3, "{rendered}");
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("spot price in us-east-1") && n.contains("t3.micro")),
        "{:?}",
        plan.notes
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("eu-west-1 1, us-east-1 2")),
        "{:?}",
        plan.notes
    );
    assert!(
        rendered.contains("/opt/deployment/secrets/api.env"),
        "the plan shows where secrets go"
    );
    assert!(
        !rendered.contains(SECRET_VALUE),
        "a secret leaked into the plan: {rendered}"
    );

    for c in creates(&plan) {
        let applied = h.apply(c).await.unwrap();
        let ep = &applied.endpoints[0];
        assert_eq!(
            (ep.kind.as_str(), ep.user.as_deref(), ep.port),
            ("ssh", Some("ubuntu"), Some(22))
        );
    }

    let east = aws.instances("us-east-1").await;
    let west = aws.instances("eu-west-1").await;
    assert_eq!((east.len(), west.len()), (2, 1), "{east:?} {west:?}");
    for i in east.iter().chain(&west) {
        assert_eq!(i.state, "running");
        assert_eq!(i.tag("managed-by"), "soar");
        assert_eq!(i.tag("soar-deployment"), "conv");
        assert_eq!(i.tag("soar-env"), "test");
        assert_eq!(
            i.lifecycle, "spot",
            "RunInstances asked for the spot market"
        );
        assert_eq!(i.instance_type, "t3.micro");
        assert_eq!(i.key_name, "soar-conv-test", "the public key was imported");
    }
    let ud = aws.user_data("eu-west-1", &west[0].id).await;
    assert!(ud.starts_with("#cloud-config"), "{ud}");
    for needle in [
        "/opt/deployment/setup.sh",
        "bash ./setup.sh",
        "/opt/deployment/configs/app.conf",
        "/etc/systemd/system/app.service",
        "systemctl enable --now app.service",
        "/opt/deployment/secrets/api.env",
    ] {
        assert!(ud.contains(needle), "user data lacks {needle}:\n{ud}");
    }
    let secret_entry = ud
        .split("- path: /opt/deployment/secrets/api.env")
        .nth(1)
        .unwrap();
    assert!(
        secret_entry.lines().take(4).any(|l| l.contains("'0600'")),
        "{ud}"
    );

    // Applied: the same plan again changes nothing.
    let again = h.plan().await.unwrap();
    assert!(
        again.changes.iter().all(|c| c.action == ChangeAction::NoOp),
        "{:?}",
        again.changes
    );
    let status = h.plugin.status(h.session.clone(), &h.ctx).await.unwrap();
    assert_eq!(status.len(), 3);
    assert!(
        status
            .iter()
            .all(|s| s.state == soar::contract::ResourceState::Running && s.endpoints.len() == 1)
    );

    let journal = h.journal_text();
    assert!(
        !journal.contains(SECRET_VALUE),
        "a secret leaked into the journal"
    );
    assert!(!journal.contains(&aws.secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_overrides_conventions() {
    let aws = Aws::start().await;
    let config = format!("regions: [us-east-1]\n{FAST}");
    let manifest = r#"
version: 1
deployment:
  packages: [nginx]
  files:
    - source: deployment/configs/nginx.conf
      dest: /etc/nginx/nginx.conf
      mode: "0640"
  scripts:
    - command: echo manifest-script
      working_dir: /srv
  services: [nginx]
"#;
    let dir = project(&[
        (".spot/config.yaml", config.as_bytes()),
        (".spot/deployment.yaml", manifest.as_bytes()),
        ("deployment/setup.sh", b"echo convention-script\n"),
        ("deployment/configs/nginx.conf", b"events {}\n"),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "man",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(h.validate().await, Vec::<String>::new());
    let plan = h.plan().await.unwrap();
    let c = creates(&plan)[0];
    h.apply(c).await.unwrap();
    let east = aws.instances("us-east-1").await;
    assert_eq!(east.len(), 1);
    let ud = aws.user_data("us-east-1", &east[0].id).await;
    for needle in [
        "- nginx",
        "/etc/nginx/nginx.conf",
        "'0640'",
        "echo manifest-script",
        "/srv",
        "systemctl enable --now nginx.service",
    ] {
        assert!(ud.contains(needle), "user data lacks {needle}:\n{ud}");
    }
    assert!(
        !ud.contains("convention-script") && !ud.contains("setup.sh"),
        "conventions leaked in:\n{ud}"
    );
    assert!(
        plan.notes.iter().any(|n| n.contains("manifest")),
        "{:?}",
        plan.notes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tarball_with_a_wrong_checksum_is_refused() {
    let aws = Aws::start().await;
    let wrong = "0".repeat(64);
    let manifest = format!(
        "version: 1\ntarball:\n  path: dist/app.tar.gz\n  checksum: \"sha256:{wrong}\"\n  extract_to: /opt/app\nscripts: [/opt/app/install.sh]\n"
    );
    let dir = project(&[
        (".spot/config.yaml", b"regions: [us-east-1]\n"),
        (".spot/deployment.yaml", manifest.as_bytes()),
        (
            "dist/app.tar.gz",
            b"not really a tarball, but bytes with a digest",
        ),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "tar",
        serde_json::json!({}),
    )
    .await;
    let problems = h.validate().await.join("\n");
    assert!(
        problems.contains("dist/app.tar.gz has sha256"),
        "{problems}"
    );
    assert!(problems.contains("refusing"), "{problems}");
    let err = h.plan().await.unwrap_err();
    assert!(err.contains("does not match"), "{err}");

    // A URL tarball needs a well-formed checksum; the instance verifies it.
    let manifest = "version: 1\ntarball:\n  url: https://releases.example.com/app.tar.gz\n  checksum: md5:abc\n";
    let dir = project(&[
        (".spot/config.yaml", b"regions: [us-east-1]\n"),
        (".spot/deployment.yaml", manifest.as_bytes()),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "tar",
        serde_json::json!({}),
    )
    .await;
    let problems = h.validate().await.join("\n");
    assert!(
        problems.contains("is not `sha256:` followed by 64 hex"),
        "{problems}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_data_over_16_kb_is_refused_with_the_fix() {
    let aws = Aws::start().await;
    let big: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let dir = project(&[
        (".spot/config.yaml", b"regions: [us-east-1]\n"),
        ("deployment/setup.sh", b"echo hi\n"),
        ("deployment/configs/big.txt", &big),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "big",
        serde_json::json!({}),
    )
    .await;
    let err = h.plan().await.unwrap_err();
    assert!(err.contains("16 KB"), "{err}");
    assert!(err.contains("deployment/configs/big.txt"), "{err}");
    assert!(err.contains("tarball"), "{err}");
    assert!(aws.instances("us-east-1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_is_idempotent_across_a_retried_request() {
    let aws = Aws::start().await;
    let config = format!("regions: [us-east-1]\n{FAST}");
    let dir = project(&[
        (".spot/config.yaml", config.as_bytes()),
        ("deployment/setup.sh", b"echo hi\n"),
    ]);
    let proxy = Ec2Proxy::start(&aws.moto.url).await.unwrap();
    let h = harness(
        &aws,
        &proxy.url,
        &aws.secret,
        Some(dir.path()),
        "idem",
        serde_json::json!({}),
    )
    .await;
    let plan = h.plan().await.unwrap();
    let c = creates(&plan)[0].clone();
    let first = h.apply(&c).await.unwrap();
    let second = h.apply(&c).await.unwrap();
    assert_eq!(
        first.resource.as_ref().unwrap().id,
        second.resource.as_ref().unwrap().id,
        "a retried create adopts the instance it launched"
    );
    assert!(
        second
            .messages
            .iter()
            .any(|m| m.contains("already launched")),
        "{:?}",
        second.messages
    );
    let live: Vec<Inst> = aws.instances("us-east-1").await;
    assert_eq!(live.len(), 1, "{live:?}");
    let runs: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.action == "RunInstances")
        .collect();
    assert_eq!(runs.len(), 1);
    let token = runs[0]
        .params
        .iter()
        .find(|(k, _)| k == "ClientToken")
        .unwrap()
        .1
        .clone();
    assert_eq!(token.len(), 32);
    assert_eq!(
        live[0].tag("soar-token"),
        token,
        "the ClientToken is kept as a tag"
    );
    let spot = |k: &str| {
        runs[0]
            .params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        spot("InstanceMarketOptions.MarketType").as_deref(),
        Some("spot")
    );
    assert_eq!(
        spot("InstanceMarketOptions.SpotOptions.SpotInstanceType").as_deref(),
        Some("one-time")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_error_fails_over_to_the_next_type_and_region() {
    let aws = Aws::start().await;
    let config = format!(
        "regions: [us-east-1, eu-west-1]\ninstance_types: [t3.micro, t3.small]\ncount: 1\n{FAST}"
    );
    let dir = project(&[
        (".spot/config.yaml", config.as_bytes()),
        ("deployment/setup.sh", b"echo hi\n"),
    ]);
    let proxy = Ec2Proxy::start(&aws.moto.url).await.unwrap();
    proxy.inject(Fault::new(
        "RunInstances",
        Some("us-east-1"),
        Some("t3.micro"),
        500,
        "InsufficientInstanceCapacity",
    ));
    proxy.inject(Fault::new(
        "RunInstances",
        Some("us-east-1"),
        Some("t3.small"),
        400,
        "SpotMaxPriceTooLow",
    ));
    let mut throttle = Fault::new(
        "RunInstances",
        Some("eu-west-1"),
        None,
        503,
        "RequestLimitExceeded",
    );
    throttle.times = Some(1);
    proxy.inject(throttle);
    let h = harness(
        &aws,
        &proxy.url,
        &aws.secret,
        Some(dir.path()),
        "cap",
        serde_json::json!({}),
    )
    .await;
    let plan = h.plan().await.unwrap();
    let c = creates(&plan)[0];
    assert!(c.after.as_deref().unwrap().contains("us-east-1"));
    let applied = h.apply(c).await.unwrap();
    let text = applied.messages.join("\n");
    assert!(
        text.contains("t3.micro in us-east-1: InsufficientInstanceCapacity"),
        "{text}"
    );
    assert!(
        text.contains("t3.small in us-east-1: SpotMaxPriceTooLow"),
        "{text}"
    );
    assert!(aws.instances("us-east-1").await.is_empty());
    let west = aws.instances("eu-west-1").await;
    assert_eq!(west.len(), 1);
    assert_eq!(west[0].instance_type, "t3.micro");
    let runs: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.action == "RunInstances")
        .collect();
    assert_eq!(
        runs.iter()
            .map(|s| s.injected.clone().unwrap_or_else(|| "ok".into()))
            .collect::<Vec<_>>(),
        [
            "InsufficientInstanceCapacity",
            "SpotMaxPriceTooLow",
            "RequestLimitExceeded",
            "ok"
        ],
        "throttling is retried, capacity fails over"
    );
    // Every request was verified by moto through the proxy.
    assert!(h.journal_text().contains("RequestLimitExceeded"));

    // Nowhere left: the error lists every attempt with its code.
    proxy.inject(Fault::new(
        "RunInstances",
        None,
        None,
        500,
        "InsufficientInstanceCapacity",
    ));
    let h2 = harness(
        &aws,
        &proxy.url,
        &aws.secret,
        Some(dir.path()),
        "cap2",
        serde_json::json!({}),
    )
    .await;
    let plan = h2.plan().await.unwrap();
    let err = h2.apply(creates(&plan)[0]).await.unwrap_err();
    assert!(
        err.contains("no spot capacity")
            && err.contains("t3.small in eu-west-1: InsufficientInstanceCapacity"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_terminates_exactly_the_deployments_instances() {
    let aws = Aws::start().await;
    // Unrelated instances: another tool's, and the same app's other environment.
    let run = |tags: Vec<(&'static str, &'static str)>| {
        let aws = &aws;
        async move {
            let mut form = vec![
                ("Action", "RunInstances"),
                ("ImageId", "ami-1e749f67"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
                ("TagSpecification.1.ResourceType", "instance"),
            ];
            let keys = [
                "TagSpecification.1.Tag.1.Key",
                "TagSpecification.1.Tag.2.Key",
                "TagSpecification.1.Tag.3.Key",
            ];
            let values = [
                "TagSpecification.1.Tag.1.Value",
                "TagSpecification.1.Tag.2.Value",
                "TagSpecification.1.Tag.3.Value",
            ];
            for (i, (k, v)) in tags.iter().enumerate() {
                form.push((keys[i], k));
                form.push((values[i], v));
            }
            let xml = aws.ec2("us-east-1", &form).await;
            xml_text(&xml, "instanceId")
        }
    };
    let other = run(vec![("Name", "someone-else")]).await;
    let prod = run(vec![
        ("managed-by", "soar"),
        ("soar-deployment", "gone"),
        ("soar-env", "prod"),
    ])
    .await;

    let config = format!("regions: [us-east-1, eu-west-1]\ncount: 2\n{FAST}");
    let dir = project(&[
        (".spot/config.yaml", config.as_bytes()),
        ("deployment/setup.sh", b"echo hi\n"),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "gone",
        serde_json::json!({}),
    )
    .await;
    let plan = h.plan().await.unwrap();
    for c in creates(&plan) {
        h.apply(c).await.unwrap();
    }

    // Destroy runs without the artifact (as `soar destroy` does): the regions
    // come from soar.toml here; without them every region is searched.
    let d = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        None,
        "gone",
        serde_json::json!({"regions": ["us-east-1", "eu-west-1"], "poll_interval_ms": 50}),
    )
    .await;
    let destroy = d
        .plugin
        .plan_destroy(d.session.clone(), &d.ctx)
        .await
        .unwrap();
    let kinds: Vec<(&str, ChangeAction)> = destroy
        .changes
        .iter()
        .map(|c| (c.kind.as_str(), c.action))
        .collect();
    assert_eq!(
        kinds.iter().filter(|(k, _)| *k == "spot-instance").count(),
        2,
        "{:?}",
        destroy.changes
    );
    assert!(kinds.iter().all(|(_, a)| *a == ChangeAction::Delete));
    assert!(kinds.iter().any(|(k, _)| *k == "security-group"));
    // (The engine runs deletes concurrently; the security group's delete
    // waits until the region has no instance of the deployment left.)
    for c in &destroy.changes {
        d.apply(c).await.unwrap();
    }
    let east = aws.instances("us-east-1").await;
    let west = aws.instances("eu-west-1").await;
    for i in east.iter().chain(&west) {
        let ours = i.tag("soar-deployment") == "gone" && i.tag("soar-env") == "test";
        if ours {
            assert_eq!(i.state, "terminated", "{i:?}");
        } else {
            assert_eq!(
                i.state, "running",
                "destroy touched an unrelated instance: {i:?}"
            );
        }
    }
    assert!(east.iter().any(|i| i.id == other && i.state == "running"));
    assert!(east.iter().any(|i| i.id == prod && i.state == "running"));
    let again = d
        .plugin
        .plan_destroy(d.session.clone(), &d.ctx)
        .await
        .unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_secret_key_is_a_clear_auth_failure() {
    let aws = Aws::start().await;
    let dir = project(&[
        (".spot/config.yaml", b"regions: [eu-west-1]\n"),
        ("deployment/setup.sh", b"echo hi\n"),
    ]);
    let wrong = "0000000000000000000000000000000000000000";
    let h = harness(
        &aws,
        &aws.moto.url,
        wrong,
        Some(dir.path()),
        "auth",
        serde_json::json!({}),
    )
    .await;
    let problems = h.validate().await.join("\n");
    assert!(
        problems.contains("SignatureDoesNotMatch") || problems.contains("AuthFailure"),
        "{problems}"
    );
    assert!(
        problems.contains("cannot use the EC2 API in eu-west-1"),
        "{problems}"
    );
    assert!(
        problems.contains("AWS_SECRET_ACCESS_KEY"),
        "the hint names the variable: {problems}"
    );
    let err = h.plugin.plan(h.session.clone(), &h.ctx).await.unwrap_err();
    let CallError::Plugin { error, .. } = &err else {
        panic!("{err}")
    };
    let PluginError::Api(api) = error.as_ref() else {
        panic!("{err}")
    };
    assert!(
        ["SignatureDoesNotMatch", "AuthFailure"].contains(&api.code.as_str()),
        "{api:?}"
    );
    assert!(!h.journal_text().contains(wrong));
}

#[tokio::test(flavor = "multi_thread")]
async fn structure_problems_are_explained_by_validate() {
    let aws = Aws::start().await;
    let dir = project(&[
        (".spot/config.yaml", b"regoins: [us-east-1]\n"),
        ("README.md", b"no deployment here\n"),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "bad",
        serde_json::json!({}),
    )
    .await;
    let problems = h.validate().await.join("\n");
    assert!(
        problems.contains("unknown aws-spot setting `regoins`")
            && problems.contains("did you mean `regions`?"),
        "{problems}"
    );
    assert!(problems.contains("no regions configured"), "{problems}");

    let dir = project(&[
        (".spot/config.yaml", b"regions: [us-east-1]\n"),
        ("README.md", b"no deployment here\n"),
    ]);
    let h = harness(
        &aws,
        &aws.moto.url,
        &aws.secret,
        Some(dir.path()),
        "bad",
        serde_json::json!({}),
    )
    .await;
    let problems = h.validate().await.join("\n");
    assert!(
        problems.contains("nothing to deploy") && problems.contains("deployment/setup.sh"),
        "{problems}"
    );
}
