//! A full `soar deploy` (the built binary) with `provider = "digitalocean"`:
//! the bundled plugin creates two droplets in the stateful fake of the v2 API
//! (`soar_tests::fakes::digitalocean`), and the host rolls the README's
//! example binary (`examples/hello`) out to them over SSH. The droplets' public addresses
//! (203.0.113.0/24, never contacted) are mapped with `[env.<name>.ssh]
//! address_map` to real OpenSSH `sshd` hosts on loopback; every other
//! address of that range is mapped to a closed loopback port, so a wrong
//! guess can never reach the network. systemd is `systemctl3.py
//! --root=<prefix>`, as in `ssh_rollout.rs`.
//!
//! Needs `/usr/sbin/sshd` (Debian `openssh-server`) and
//! `target/test-peers/venv/bin/systemctl3.py` (or `SOAR_SYSTEMCTL_PY`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use soar_tests::fakes::digitalocean::DigitalOceanFake;
use soar_tests::sshd::{ClientKey, SshHost, free_port, python, require_peers, systemctl_py, user};

use crate::support::{soar_guarded, text};

const TOKEN: &str = "dop_v1_fake_token_for_do_sshd_0123456789";
const TOKEN_VAR: &str = "SOAR_DO_SSHD_TEST_TOKEN";
const ENV: &str = "staging";
const SERVICE: &str = "hello";

/// The README's example service, built into its own target directory (so
/// this build never waits on the test's own cargo lock).
fn hello_build() -> (String, std::path::PathBuf) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let target = example.join("target");
    (
        format!(
            "cargo build --quiet --manifest-path {} --target-dir {}",
            example.join("Cargo.toml").display(),
            target.display()
        ),
        target.join("debug/hello"),
    )
}

struct Project {
    dir: tempfile::TempDir,
    port: u16,
}

impl Project {
    /// `ips[i]` (a droplet's future public address) is served by `hosts[i]`.
    fn new(fake: &DigitalOceanFake, hosts: &[&SshHost], ips: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let (build, binary) = hello_build();
        // Every host gets its own prefix, `<project>/prefixes/<sshd port>`,
        // a link to its sshd's root.
        let prefixes = dir.path().join("prefixes");
        std::fs::create_dir_all(&prefixes).unwrap();
        for h in hosts {
            std::os::unix::fs::symlink(&h.root, prefixes.join(h.port.to_string())).unwrap();
        }
        // All of 203.0.113.0/24: the expected droplets to the sshd hosts,
        // anything else to a closed loopback port.
        let closed = free_port().unwrap();
        let map: Vec<String> = (1..=254)
            .map(|n| {
                let ip = format!("203.0.113.{n}");
                let to = match ips.iter().position(|i| *i == ip) {
                    Some(k) => hosts[k].endpoint(),
                    None => format!("127.0.0.1:{closed}"),
                };
                format!("\"{ip}\" = \"{to}\"")
            })
            .collect();
        std::fs::write(
            dir.path().join("soar.toml"),
            format!(
                r#"[app]
name = "{SERVICE}"

[artifact]
kind = "binary"
build = "{build}"
path = "{binary}"

[deploy]
port = {port}
# Both hosts are this machine: their services share the port.
env = {{ REUSE_PORT = "1" }}
health = {{ path = "/health", timeout = "20s", interval = "200ms", retries = 100 }}

[env.{ENV}]
provider = "digitalocean"
ssh_key_name = "deploy-key"
default_region = "nyc3"
default_size = "s-1vcpu-1gb"
wait_interval = "20ms"
wait_timeout = "20s"
hosts = {{ app-1 = {{ role = "web" }}, app-2 = {{ role = "web" }} }}

[env.{ENV}.grants]
endpoints = {{ api = "{api}" }}

[env.{ENV}.credentials]
digitalocean = "{TOKEN_VAR}"

[env.{ENV}.ssh]
user = "{user}"
identity_file = "{key}"
known_hosts = "known_hosts"
remote_prefix = "{prefixes}/{{port}}"
systemctl = "{py} {sysctl} --root={{prefix}}"
service_user = ""
connect_timeout = "5s"
address_map = {{ {map} }}
"#,
                api = fake.url(),
                binary = binary.display(),
                user = user(),
                key = hosts[0].key_path.display(),
                prefixes = prefixes.display(),
                py = python().display(),
                sysctl = systemctl_py().display(),
                map = map.join(", "),
            ),
        )
        .unwrap();
        Self { dir, port }
    }

    fn soar(&self, args: &[&str]) -> Output {
        soar_guarded(
            &self.dir.path().join("soar.toml"),
            args,
            &[(TOKEN_VAR, TOKEN)],
            &["DIGITALOCEAN_TOKEN", "SSH_AUTH_SOCK"],
            &[TOKEN],
        )
    }

    /// Directories that answered `GET /` on the shared port (hello's
    /// `x-served-from`), over `tries` fresh connections (the kernel spreads
    /// them over both listeners).
    fn answers(&self, tries: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for _ in 0..tries {
            let Ok(out) = Command::new("curl")
                .args(["-sS", "-m", "3", "-D", "-", "-o", "/dev/null"])
                .arg(format!("http://127.0.0.1:{}/", self.port))
                .output()
            else {
                continue;
            };
            if out.status.success()
                && let Some(dir) = text(&out.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("X-Served-From: "))
            {
                seen.insert(dir.trim().to_string());
            }
        }
        seen
    }
}

fn is_active(h: &SshHost) -> bool {
    Command::new(python())
        .arg(systemctl_py())
        .arg(format!("--root={}", h.root.display()))
        .args(["is-active", SERVICE])
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Cleanup<'a>(Vec<&'a SshHost>);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for h in &self.0 {
            let _ = Command::new(python())
                .arg(systemctl_py())
                .arg(format!("--root={}", h.root.display()))
                .args(["stop", SERVICE])
                .output();
        }
    }
}

#[test]
fn deploy_status_redeploy_and_destroy_on_fake_droplets() {
    require_peers();
    let fake = DigitalOceanFake::start(TOKEN);
    fake.add_ssh_key("deploy-key");
    let key = ClientKey::generate().unwrap();
    let a = SshHost::start(&key).unwrap();
    let b = SshHost::start(&key).unwrap();
    let _cleanup = Cleanup(vec![&a, &b]);
    // Which droplet gets which address depends on the order the plugin's
    // creates reach the fake (they run in parallel): map both addresses,
    // and require a service on each host, whichever droplet it is.
    let ips = fake.next_public_ipv4s(2);
    let p = Project::new(&fake, &[&a, &b], &ips);

    // First deploy: two droplets created, the release on both hosts.
    let out = p.soar(&["deploy", "--yes"]);
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "first deploy failed:\n{o}\n{e}");
    let droplets = fake.droplets();
    let mut names: Vec<&str> = droplets.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [format!("{ENV}-app-1"), format!("{ENV}-app-2")]);
    let mut got: Vec<String> = droplets
        .iter()
        .map(|d| soar_tests::fakes::digitalocean::public_ipv4(d.id))
        .collect();
    got.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(got, want, "the droplets got other addresses than mapped");
    for d in &droplets {
        assert!(
            d.tags.contains(&format!("soar-env:{ENV}")),
            "droplet {} is not tagged for the environment: {:?}",
            d.name,
            d.tags
        );
    }
    let all = format!("{o}\n{e}");
    let user = user();
    for h in [&a, &b] {
        assert!(
            all.contains(&format!("✓ {user}@127.0.0.1:{} healthy", h.port)),
            "no healthy rollout reported for {}:\n{all}",
            h.port
        );
        assert!(
            h.root.join(format!("opt/{SERVICE}/current/hello")).exists(),
            "the release is not on {}",
            h.port
        );
        assert!(is_active(h), "the service is not active on {}", h.port);
    }
    // The new host keys were accepted (the droplets are new in this deploy)
    // and recorded in Soar's own file, under the addresses connected to.
    let known = std::fs::read_to_string(p.dir.path().join("known_hosts")).unwrap();
    for h in [&a, &b] {
        assert!(
            known.contains(&format!("[127.0.0.1]:{} {}", h.port, h.host_key)),
            "{}'s host key was not recorded:\n{known}",
            h.port
        );
    }
    // Both services answer on the shared port.
    let answers = p.answers(60);
    for h in [&a, &b] {
        let root = h.root.canonicalize().unwrap();
        assert!(
            answers.iter().any(|d| Path::new(d).starts_with(&root)),
            "{} never answered: {answers:?}",
            h.port
        );
    }

    // Status lists the release and both droplets.
    let out = p.soar(&["status", "-e", ENV]);
    assert!(out.status.success(), "status failed");
    let status = text(&out.stdout);
    assert!(status.contains("release:  20"), "{status}");
    for name in ["app-1", "app-2"] {
        assert!(status.contains(name), "{name} missing in status:\n{status}");
    }

    // A second deploy changes nothing.
    let out = p.soar(&["deploy", "--yes"]);
    assert!(out.status.success(), "second deploy failed");
    let o = text(&out.stdout);
    assert!(o.contains("No changes"), "{o}");
    assert_eq!(fake.droplets().len(), 2);
    assert_eq!(
        fake.calls_to("POST /v2/droplets"),
        2,
        "droplets were created again: {:?}",
        fake.calls()
    );

    // Destroy: services stopped and removed from both hosts, droplets deleted.
    let out = p.soar(&["destroy", "--yes", "-e", ENV]);
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "destroy failed:\n{o}\n{e}");
    assert!(
        fake.droplets().is_empty(),
        "droplets left: {:?}",
        fake.droplets()
            .iter()
            .map(|d| d.name.clone())
            .collect::<Vec<_>>()
    );
    for h in [&a, &b] {
        assert!(
            !h.root.join(format!("opt/{SERVICE}")).exists(),
            "the service root is still on {}",
            h.port
        );
        assert!(
            !h.root
                .join(format!("etc/systemd/system/{SERVICE}.service"))
                .exists(),
            "the unit is still on {}",
            h.port
        );
        assert!(!is_active(h), "the service still runs on {}", h.port);
    }
    assert!(p.answers(5).is_empty(), "a service still answers");
}
