//! aws-spot under a least-privilege IAM user, through the real `soar`
//! binary: moto checks every signature and every action against the policy
//! README documents ("aws-spot IAM policy", read from README.md itself, so
//! the document and the test cannot drift apart). plan, deploy, status,
//! plan again and destroy all pass under exactly that policy; a policy
//! without one of its actions fails, which shows moto really enforces it.

use std::path::PathBuf;
use std::process::Output;

use crate::support::aws::{SignedMoto, spot_command};
use crate::support::transcript;

/// The JSON block under README's "### aws-spot IAM policy" heading.
fn readme_policy() -> String {
    let policy = crate::support::readme_block("aws-spot IAM policy", "json");
    serde_json::from_str::<serde_json::Value>(&policy).expect("the README policy is JSON");
    policy
}

/// The policy's actions.
fn actions(policy: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(policy).unwrap();
    v["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A zero-config project (`soar init --provider aws-spot`) that imports a
/// public key, so the key-pair actions run too.
struct Project {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Project {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let p = Self { tmp, dir };
        let out = p.run(None, None, &["init", "--provider", "aws-spot"]);
        assert!(out.status.success(), "{}", transcript(&out));
        let config = p.dir.join(".spot/config.yaml");
        let mut yaml = std::fs::read_to_string(&config).unwrap();
        yaml.push_str(
            "public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl soar-test\npoll_interval_ms: 50\nwait_timeout: 20\n",
        );
        std::fs::write(config, yaml).unwrap();
        p
    }

    /// `soar args...` with `keys` and the EC2 endpoint pointed at moto.
    fn run(&self, moto: Option<&str>, keys: Option<(&str, &str)>, args: &[&str]) -> Output {
        let mut cmd = spot_command(self.tmp.path(), &self.dir, moto);
        cmd.args(args);
        if let Some((id, secret)) = keys {
            cmd.env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        cmd.output().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_cycle_runs_under_exactly_the_readme_policy() {
    let policy = readme_policy();
    let listed = actions(&policy);
    assert!(
        !listed.iter().any(|a| a == "ec2:DescribeRegions"),
        "the minimal policy must not need DescribeRegions: {listed:?}"
    );
    assert!(listed.iter().any(|a| a == "ec2:CreateTags"));
    let aws = SignedMoto::start_with_policy(&policy).await;
    let keys = Some((aws.key_id.as_str(), aws.secret.as_str()));
    let url = Some(aws.moto.url.as_str());
    let p = Project::new();

    let out = p.run(url, keys, &["plan"]);
    assert!(out.status.success(), "plan: {}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ spot-instance spot-0"));
    // Calls that only degrade when refused (the spot price notes) were
    // allowed too.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("spot price in us-east-1: ")
            && !transcript(&out).contains("AccessDenied"),
        "{}",
        transcript(&out)
    );

    let out = p.run(url, keys, &["deploy", "-y"]);
    assert!(out.status.success(), "deploy: {}", transcript(&out));

    // Status asks EC2 too (under the same policy): in step with the state.
    let out = p.run(url, keys, &["status", "--json"]);
    assert!(out.status.success(), "status: {}", transcript(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["checked"], "provider", "{status}");
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    let instance = status["provider_resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "spot-0")
        .unwrap_or_else(|| panic!("spot-0 reported: {status}"))["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Terminated behind Soar's back (say, reclaimed): status shows drift,
    // and the next deploy brings the slot back.
    let (code, body) = crate::support::aws::signed(
        &aws.moto.url,
        &aws.keys(),
        "ec2",
        "us-east-1",
        &[
            ("Action", "TerminateInstances"),
            ("Version", "2016-11-15"),
            ("InstanceId.1", &instance),
        ],
    )
    .await;
    assert!(code < 300, "terminate: {code} {body}");
    let out = p.run(url, keys, &["status"]);
    assert!(out.status.success(), "status: {}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("drift:    spot-instance spot-0 missing"),
        "{}",
        transcript(&out)
    );
    let out = p.run(url, keys, &["deploy", "-y"]);
    assert!(out.status.success(), "redeploy: {}", transcript(&out));
    let out = p.run(url, keys, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");

    let out = p.run(url, keys, &["plan"]);
    assert!(out.status.success(), "second plan: {}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        transcript(&out)
    );

    let out = p.run(url, keys, &["destroy", "--yes"]);
    assert!(out.status.success(), "destroy: {}", transcript(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("✓ destroy spot-instance spot-0"),
        "{}",
        transcript(&out)
    );
    assert!(
        err.contains("✓ destroy security-group"),
        "{}",
        transcript(&out)
    );
}

/// The control: without ec2:RunInstances the deploy is refused by moto's
/// IAM check, and the message names the action.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_missing_an_action_is_refused_with_the_action_named() {
    let policy = readme_policy().replace("\"ec2:RunInstances\",", "");
    assert!(!actions(&policy).iter().any(|a| a == "ec2:RunInstances"));
    let aws = SignedMoto::start_with_policy(&policy).await;
    let keys = Some((aws.key_id.as_str(), aws.secret.as_str()));
    let url = Some(aws.moto.url.as_str());
    let p = Project::new();

    let out = p.run(url, keys, &["plan"]);
    assert!(
        out.status.success(),
        "plan reads only: {}",
        transcript(&out)
    );
    let out = p.run(url, keys, &["deploy", "-y"]);
    assert!(!out.status.success(), "{}", transcript(&out));
    let all = transcript(&out);
    assert!(
        all.contains("AccessDenied") && all.contains("ec2:RunInstances"),
        "{all}"
    );
}

/// Minimal: without any one of the policy's actions (but ec2:CreateTags,
/// which AWS checks on tag-on-create and moto does not), some step of
/// plan, deploy, destroy is refused, naming that action.
#[tokio::test(flavor = "multi_thread")]
async fn every_action_of_the_policy_is_needed() {
    let policy = readme_policy();
    for action in actions(&policy) {
        if action == "ec2:CreateTags" {
            continue;
        }
        let without = policy
            .replace(&format!("\"{action}\","), "")
            .replace(&format!(",\n        \"{action}\""), "");
        assert!(
            !actions(&without).contains(&action),
            "{action} still in {without}"
        );
        let aws = SignedMoto::start_with_policy(&without).await;
        let keys = Some((aws.key_id.as_str(), aws.secret.as_str()));
        let url = Some(aws.moto.url.as_str());
        let p = Project::new();
        let mut seen = String::new();
        for args in [&["plan"][..], &["deploy", "-y"], &["destroy", "--yes"]] {
            let out = p.run(url, keys, args);
            seen.push_str(&transcript(&out));
        }
        assert!(
            seen.contains("AccessDenied") && seen.contains(&action),
            "without {action} nothing was refused:\n{seen}"
        );
    }
}
