//! `~/.ssh/config` and bastions against real OpenSSH.
//!
//! - Aliases: for a table of client configs, what Soar resolves for an
//!   alias (host name, user, port, identity files, ProxyJump) is what the
//!   real client prints with `ssh -G -F FILE alias`.
//! - A bastion: the target's sshd runs in a network namespace of its own
//!   (`unshare -n`), so nothing outside it can connect to it; the bastion
//!   is an sshd in that same namespace, started per connection (`sshd -i`
//!   under `nsenter`) by a bridge this test runs on 127.0.0.1. Soar, told
//!   only `ProxyJump bastion` by the client config, deploys to the target
//!   through a `direct-tcpip` channel, and `soar exec` runs there, also
//!   with `[env.<name>.ssh] bastion` instead (which wins over ProxyJump);
//!   with the bastion's host key changed in known_hosts, it is refused.
//!   A namespace was picked over `AllowUsers user@ADDR`: on loopback every
//!   connection, forwarded or not, comes from 127.0.0.1, so an address rule
//!   cannot tell the bastion's connection from a direct one.
//!
//! Needs OpenSSH (client and server), `unshare`/`nsenter` (util-linux) and
//! the systemctl replacement of the SSH rollout tests.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use soar::broker::ssh::client_config::{ClientConfig, parse_jumps};
use soar_tests::sshd::{ClientKey, free_port, python, require_peers, systemctl_py, user};

use crate::support::text;

/// What `ssh -G` prints for the five options Soar reads.
#[derive(Debug, PartialEq, Eq)]
struct Resolved {
    hostname: String,
    user: String,
    port: u16,
    identity_files: Vec<String>,
    proxy_jump: Option<String>,
}

/// `ssh -G -F config alias`, reduced to [`Resolved`]; `~` expanded as Soar
/// expands it, and ssh's default identity files (printed when the config
/// names none) left out.
fn ssh_g(config: &Path, alias: &str) -> Resolved {
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(alias)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh -G (Debian's openssh-client)");
    assert!(out.status.success(), "ssh -G: {}", text(&out.stderr));
    let home = std::env::var("HOME").unwrap_or_default();
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            fields.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    let one = |k: &str| fields.get(k).and_then(|v| v.first().cloned());
    let mut ids: Vec<String> = fields
        .get("identityfile")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|f| match f.strip_prefix("~/") {
            Some(rest) => format!("{home}/{rest}"),
            None => f,
        })
        .collect();
    let defaults: Vec<String> = [
        "id_rsa",
        "id_ecdsa",
        "id_ecdsa_sk",
        "id_ed25519",
        "id_ed25519_sk",
        "id_xmss",
        "id_dsa",
    ]
    .iter()
    .map(|n| format!("{home}/.ssh/{n}"))
    .collect();
    if ids == defaults {
        ids.clear();
    }
    Resolved {
        hostname: one("hostname").unwrap(),
        user: one("user").unwrap(),
        port: one("port").unwrap().parse().unwrap(),
        identity_files: ids,
        proxy_jump: one("proxyjump"),
    }
}

/// What Soar's client config resolves, with ssh's defaults for what the
/// file leaves unset (the local user, port 22).
fn soar_resolves(config: &Path, alias: &str) -> Resolved {
    let c = ClientConfig::load(config).unwrap();
    let e = c.resolve(alias);
    Resolved {
        hostname: e.hostname,
        user: e.user.unwrap_or_else(user),
        port: e.port.unwrap_or(22),
        identity_files: e.identity_files,
        proxy_jump: e.proxy_jump,
    }
}

#[test]
fn aliases_resolve_as_ssh_g_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let included = dir.path().join("included");
    std::fs::write(
        &included,
        "Host inc*\n  HostName included.example\n  Port 2022\nHost *\n  IdentityFile /keys/late\n",
    )
    .unwrap();
    // (config, aliases to ask about)
    let table: Vec<(String, Vec<&str>)> = vec![
        (
            "Host web1\n  HostName 10.0.0.11\n  User deploy\n  Port 2201\n  IdentityFile ~/.ssh/web\n".into(),
            vec!["web1", "web2"],
        ),
        // First obtained value wins, across blocks and inside one.
        (
            "Host web*\n  User alice\n  Port 2201\n  Port=2299\nHost web1\n  User bob\n  HostName first\n  HostName second\nHost *\n  User zed\n".into(),
            vec!["web1", "web9", "db"],
        ),
        // Negation, `?`, `%h`, case-sensitive patterns.
        (
            "Host app? !app3\n  HostName %h.internal\n  ProxyJump bastion\nHost Db?\n  HostName 10.1.0.%h\n  ProxyJump ssh://ops@jump:2200,[::1]:23\nHost *\n  ProxyJump none\n".into(),
            vec!["app1", "app3", "app12", "Db1", "db1"],
        ),
        // IdentityFile accumulates; tokens stay for later expansion.
        (
            "Host k\n  IdentityFile /keys/%r@%h\n  IdentityFile /keys/two\nHost *\n  IdentityFile /keys/all\n".into(),
            vec!["k", "other"],
        ),
        // Include, inside and outside a Host block.
        (
            format!("Host inc1 other\n  User incuser\nInclude {}\nHost *\n  Port 2300\n", included.display()),
            vec!["inc1", "other", "none"],
        ),
        // ProxyJump chains and `=` syntax.
        (
            "Host=deep\n  ProxyJump=a,b@c:2,ssh://d\n  HostName=deep.example\nHost num\n  ProxyJump ops@10.0.0.1:2222\n".into(),
            vec!["deep", "num"],
        ),
    ];
    let mut compared = 0;
    for (i, (config, aliases)) in table.iter().enumerate() {
        let file = dir.path().join(format!("config{i}"));
        std::fs::write(&file, config).unwrap();
        for alias in aliases {
            let want = ssh_g(&file, alias);
            let got = soar_resolves(&file, alias);
            // ssh -G prints the last hop in its canonical form (`ssh://d`
            // as `d`, a numeric host in brackets): compare the hops.
            let hops = |r: &Resolved| r.proxy_jump.as_deref().map(|j| parse_jumps(j).unwrap());
            assert_eq!(
                hops(&got),
                hops(&want),
                "config {i}, alias {alias}:\n{config}"
            );
            let plain = |r: Resolved| Resolved {
                proxy_jump: None,
                ..r
            };
            assert_eq!(
                plain(got),
                plain(want),
                "config {i}, alias {alias}:\n{config}"
            );
            compared += 1;
        }
    }
    eprintln!("{compared} aliases resolved as `ssh -G` prints them");
}

#[test]
fn match_blocks_are_reported_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, "Host a\n  User x\n\nMatch host b\n  User y\n").unwrap();
    let e = ClientConfig::load(&file).unwrap_err();
    assert!(e.contains(&format!("{}:4", file.display())), "{e}");
    assert!(e.contains("`Match` blocks are not supported"), "{e}");
    // In an included file too.
    let top = dir.path().join("top");
    std::fs::write(
        &top,
        format!("Include {}\nHost c\n  User z\n", file.display()),
    )
    .unwrap();
    let e = ClientConfig::load(&top).unwrap_err();
    assert!(e.contains("Match"), "{e}");
}

/// An sshd host key and the known_hosts form of it.
struct HostKey {
    path: PathBuf,
    public: String,
}

fn host_key(dir: &Path, name: &str) -> HostKey {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    HostKey { path, public }
}

fn sshd_config(dir: &Path, name: &str, key: &HostKey, extra: &str) -> PathBuf {
    let file = dir.join(format!("{name}_config"));
    std::fs::write(
        &file,
        format!(
            "HostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {dir}/{name}.pid\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nLogLevel ERROR\nSetEnv SHLVL=1\n{extra}",
            hk = key.path.display(),
            ak = dir.join("authorized_keys").display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    file
}

/// The target's sshd in a network namespace of its own, and a bastion on
/// 127.0.0.1 that starts an `sshd -i` inside that namespace per
/// connection.
struct PrivateNet {
    target: Child,
    target_port: u16,
    bastion_port: u16,
    stop: Arc<AtomicBool>,
}

impl PrivateNet {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all("/run/sshd").ok();
        let target_key = host_key(dir, "target_key");
        let bastion_key = host_key(dir, "bastion_key");
        // A port nothing listens on out here (checked below, after start).
        let target_port = free_port().unwrap();
        let target_cfg = sshd_config(
            dir,
            "target",
            &target_key,
            &format!("Port {target_port}\nListenAddress 127.0.0.1\nMaxSessions 50\n"),
        );
        let bastion_cfg = sshd_config(
            dir,
            "bastion",
            &bastion_key,
            &format!("AllowTcpForwarding yes\nPermitOpen 127.0.0.1:{target_port}\n"),
        );
        let target = Command::new("unshare")
            .arg("-n")
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "ip link set lo up && exec /usr/sbin/sshd -D -e -f {}",
                target_cfg.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare -n (util-linux)");
        let netns = format!("/proc/{}/ns/net", target.id());
        // Up inside the namespace?
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = Command::new("nsenter")
                .arg(format!("--net={netns}"))
                .args(["bash", "-c"])
                .arg(format!("echo > /dev/tcp/127.0.0.1/{target_port}"))
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if probe.success() {
                break;
            }
            assert!(Instant::now() < deadline, "the target sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let bastion_port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let mut children: Vec<Child> = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let fd: OwnedFd = stream.into();
                        let out = fd.try_clone().unwrap();
                        let child = Command::new("nsenter")
                            .arg(format!("--net={netns}"))
                            .args(["/usr/sbin/sshd", "-i", "-f"])
                            .arg(&bastion_cfg)
                            .stdin(Stdio::from(fd))
                            .stdout(Stdio::from(out))
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap();
                        children.push(child);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
                children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            }
            for mut c in children {
                let _ = c.kill();
                let _ = c.wait();
            }
        });
        std::fs::write(
            dir.join("bastion_known_line"),
            format!("[127.0.0.1]:{bastion_port} {}\n", bastion_key.public),
        )
        .unwrap();
        std::fs::write(
            dir.join("target_known_line"),
            format!("[127.0.0.1]:{target_port} {}\n", target_key.public),
        )
        .unwrap();
        Self {
            target,
            target_port,
            bastion_port,
            stop,
        }
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.target.kill();
        let _ = self.target.wait();
    }
}

const APP: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"behind the bastion"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn soar(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_soar"))
        .arg("-c")
        .arg(dir.join("soar.toml"))
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    eprintln!(
        "$ soar {} -> {}\n{}{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn deploys_through_a_proxyjump_bastion_and_refuses_a_changed_bastion_key() {
    require_peers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let client = ClientKey::generate().unwrap();
    std::fs::write(d.join("authorized_keys"), &client.public).unwrap();
    let net = PrivateNet::start(d);
    assert!(
        TcpStream::connect(("127.0.0.1", net.target_port)).is_err(),
        "the target must not be reachable except through the bastion"
    );

    // The user's client config: an alias for the target behind an alias
    // for the bastion, each with its own key file; soar.toml names the
    // alias only.
    std::fs::write(
        d.join("ssh_config"),
        format!(
            "Host app-private\n  HostName 127.0.0.1\n  Port {tp}\n  User {u}\n  IdentityFile {key}\n  ProxyJump jump\n\
             Host jump\n  HostName 127.0.0.1\n  Port {bp}\n  User {u}\n  IdentityFile {key}\n",
            tp = net.target_port,
            bp = net.bastion_port,
            u = user(),
            key = client.path.display(),
        ),
    )
    .unwrap();
    let known = |bastion_line: &str| {
        let target_line = std::fs::read_to_string(d.join("target_known_line")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("{bastion_line}{target_line}"),
        )
        .unwrap();
    };
    known(&std::fs::read_to_string(d.join("bastion_known_line")).unwrap());
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(d.join("app/app.py"), APP).unwrap();
    let root = d.join("remote");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port().unwrap();
    std::fs::write(
        d.join("soar.toml"),
        format!(
            r#"[app]
name = "private"

[artifact]
kind = "script"
path = "app"
command = "python3 app.py"

[deploy]
port = {port}
health = {{ path = "/", timeout = "20s", interval = "200ms", retries = 80 }}

[env.prod]
provider = "local"

[env.prod.ssh]
hosts = ["app-private"]
config = "ssh_config"
known_hosts = "known_hosts"
remote_prefix = "{root}"
systemctl = "{py} {sysctl} --root={{prefix}}"
service_user = ""
connect_timeout = "10s"
"#,
            root = root.display(),
            py = python().display(),
            sysctl = systemctl_py().display(),
        ),
    )
    .unwrap();

    let started = Instant::now();
    let out = soar(d, &["deploy", "--yes"]);
    assert!(out.status.success(), "deploy through the bastion failed");
    eprintln!("deploy through the bastion: {:?}", started.elapsed());
    assert!(root.join("opt/private/current").exists());

    // `soar exec` goes the same way, and sees the service answer on the
    // target (inside its namespace).
    let out = soar(
        d,
        &[
            "exec",
            "--",
            "curl -s 127.0.0.1:$PORT/ || python3 -c 'import os,urllib.request as u; print(u.urlopen(\"http://127.0.0.1:\"+os.environ[\"PORT\"]).read().decode())'",
        ],
    );
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("app-private | behind the bastion"),
        "{}",
        text(&out.stdout)
    );

    // `[env.prod.ssh] bastion` wins over the client config's ProxyJump
    // (pointed here at a bastion that does not exist).
    let config = std::fs::read_to_string(d.join("ssh_config")).unwrap();
    std::fs::write(
        d.join("ssh_config"),
        config.replace("ProxyJump jump", "ProxyJump nowhere.invalid"),
    )
    .unwrap();
    let toml = std::fs::read_to_string(d.join("soar.toml")).unwrap();
    std::fs::write(
        d.join("soar.toml"),
        format!(
            "{toml}bastion = \"{}@127.0.0.1:{}\"\nidentity_file = \"{}\"\n",
            user(),
            net.bastion_port,
            client.path.display()
        ),
    )
    .unwrap();
    let out = soar(d, &["exec", "--", "echo via the configured bastion"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("app-private | via the configured bastion"));

    // The bastion's host key changed: refused, with both fingerprints,
    // before the target is contacted.
    let other = host_key(d, "impostor_key");
    known(&format!(
        "[127.0.0.1]:{} {}\n",
        net.bastion_port, other.public
    ));
    let out = soar(d, &["exec", "--", "true"]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("bastion"), "{all}");
    assert!(all.contains("HOST KEY MISMATCH"), "{all}");

    let _ = Command::new(python())
        .arg(systemctl_py())
        .arg(format!("--root={}", root.display()))
        .args(["stop", "private"])
        .output();
}
