//! SSH rollout benchmarks against real OpenSSH `sshd` hosts on loopback.
//!
//! - P5: upload of a 256 MiB file through the host's SSH broker
//!   (`SshTransport::put_file`: streamed, sha256-verified on the host)
//!   against OpenSSH `scp` of the same file to the same sshd, in the same
//!   run (goal: ≥ 0.8× scp's MB/s); and an unchanged re-deploy
//!   (`rollout::deploy` of the same release) sends 0 bytes in < 1 s.
//! - P7: a full rollout (transfer, systemd start, health) to 20 hosts at
//!   once against 1 host (goal: ≤ 1.5×), with the transfer phase alone, and
//!   the CPU time a host's rollout costs (soar, the host's sshd tree and its
//!   service): all "hosts" share this machine's cores, so 20 hosts cannot
//!   finish sooner than 20 × that / cores.
//!
//! The remote service manager is `systemctl3.py --root=<prefix>`
//! (docker-systemctl-replacement), as in `tests/all/ssh_rollout.rs`: every
//! `systemctl` call is a Python interpreter start on the host.
//!
//! The sshd hosts run every command through the login user's shell, and on
//! a developer box or CI image that is often `bash` sourcing a `~/.bashrc`
//! that is expensive (here: `eval "$(pyenv init -)"`, ~200 ms of CPU per
//! command), which would turn both goals into a measurement of that file.
//! A deploy user on a real host has no such rc, so the bench gives its
//! sshds `SetEnv SHLVL=1`: bash then runs each command as a nested shell
//! and skips `~/.bashrc` (dash ignores it). `SOAR_BENCH_SSH_LOGIN_RC=1`
//! keeps the rc, to measure what it costs.
//!
//! `cargo bench -p soar --bench ssh`
//! (needs `/usr/sbin/sshd`, `scp`, and `target/test-peers/venv/bin/systemctl3.py`
//! or `SOAR_SYSTEMCTL_PY`; `SOAR_BENCH_SSH_HOSTS` changes the fan-out size,
//! `SOAR_BENCH_SSH_MIB` the upload size, `SOAR_BENCH_SSH_ROUNDS` how many
//! times each P5 upload runs (best taken; default 3), `SOAR_BENCH_SSH_ONLY=p5`
//! or `=p7` runs one part).

use soar_tests::sshd::{free_port, python, systemctl_py};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use soar::artifact::ArtifactSource;
use soar::broker::ssh::{AuthConfig, HostSpec, KnownHosts, SshBroker, SshSettings};
use soar::contract::ArtifactKind;
use soar::journal::Journal;
use soar::rollout::service::{ServiceManager as _, ServiceSpec};
use soar::rollout::ssh::SshTransport;
use soar::rollout::systemd::Systemd;
use soar::rollout::transport::Transport as _;
use soar::rollout::{self, Health, Release};
use soar_tests::sshd::{ClientKey, SshHost, signal};

fn whoami() -> String {
    String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const APP: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A file of `mib` MiB of incompressible bytes (xorshift).
fn write_big(path: &Path, mib: usize) {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

/// Restart `h`'s sshd with `SetEnv SHLVL=1` (see the header): sshd re-reads
/// its config on SIGHUP, removing its pid file and writing it again once it
/// listens.
fn skip_login_rc(h: &SshHost) {
    let config = h.dir().join("sshd_config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    if text.contains("SetEnv SHLVL=") {
        return;
    }
    text.push_str("SetEnv SHLVL=1\n");
    std::fs::write(&config, text).unwrap();
    let pid_file = h.dir().join("sshd.pid");
    let _ = std::fs::remove_file(&pid_file);
    assert!(signal(h.pid().unwrap(), "HUP"), "SIGHUP to sshd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        assert!(
            Instant::now() < deadline,
            "sshd did not come back after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    while std::net::TcpStream::connect((h.addr.as_str(), h.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Bench {
    broker: Arc<SshBroker>,
    user: String,
}

impl Bench {
    fn host(&self, h: &SshHost) -> HostSpec {
        HostSpec {
            address: h.addr.clone(),
            port: h.port,
            user: self.user.clone(),
            accept_new: false,
            sudo: false,
            public_only: false,
            reach: Default::default(),
        }
    }

    fn transport(&self, h: &SshHost) -> SshTransport {
        SshTransport::new(self.broker.clone(), self.host(h))
    }

    /// systemd (the Python stand-in) with its prefix = the host's own root.
    fn target(&self, h: &SshHost, name: &str, port: u16) -> (SshTransport, Systemd, ServiceSpec) {
        let t = self.transport(h);
        let prefix = h.root.display().to_string();
        let systemd = Systemd {
            transport: t.clone(),
            systemctl: format!(
                "{} {} --root={prefix}",
                python().display(),
                systemctl_py().display()
            ),
            prefix: prefix.clone(),
            user: None,
        };
        let spec = ServiceSpec {
            name: name.into(),
            root: format!("{prefix}/opt/{name}"),
            command: "python3 app.py".into(),
            port,
        };
        (t, systemd, spec)
    }
}

fn release<'a>(id: &str, artifact: &'a ArtifactSource, port: u16) -> Release<'a> {
    Release {
        id: id.into(),
        artifact,
        kind: ArtifactKind::Script.into(),
        env: vec![("PORT".into(), port.to_string())],
        health: Health {
            path: "/health".into(),
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(100),
            retries: 600,
        },
        keep: 3,
        setup: None,
        switch: soar::config::Switch::Restart,
    }
}

/// lock + deploy + unlock, as the engine's `roll_one`.
async fn roll(
    t: &SshTransport,
    s: &Systemd,
    spec: &ServiceSpec,
    r: &Release<'_>,
) -> (rollout::Report, Duration) {
    let started = Instant::now();
    rollout::lock(t, &spec.root, "bench", false)
        .await
        .expect("lock");
    let report = match rollout::deploy(t, s, spec, r).await {
        Ok(r) => r,
        Err(f) => panic!("rollout to {} failed: {}", t.describe(), f.message),
    };
    rollout::unlock(t, &spec.root).await.expect("unlock");
    (report, started.elapsed())
}

fn phase(r: &rollout::Report, name: &str) -> Duration {
    r.phases
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or_default()
}

/// (busy, total) CPU jiffies of the whole machine, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time the whole machine spent busy since `from` (USER_HZ = 100).
fn busy_cpu_since(from: (u64, u64)) -> Duration {
    Duration::from_millis((cpu_jiffies().0 - from.0) * 10)
}

/// Share of the machine's CPU (all cores) busy since `from`.
fn busy_since(from: (u64, u64)) -> String {
    let (b, t) = cpu_jiffies();
    let (db, dt) = (b - from.0, t - from.1);
    if dt == 0 {
        return "n/a".into();
    }
    format!("{:.0}%", db as f64 * 100.0 / dt as f64)
}

/// (own, reaped children's) CPU time (user + system) of `pid`, from
/// `/proc/<pid>/stat` (clock ticks of 10 ms).
fn proc_cpu(pid: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let tick = |i: usize| Duration::from_millis(f.get(i).copied().unwrap_or(0) * 10);
    (tick(11) + tick(12), tick(13) + tick(14))
}

/// CPU used so far by everything `h`'s sshd runs: the listener, the
/// per-connection processes and the commands (live ones by their own time,
/// finished ones through their parents' reaped-children time), plus the
/// services running in the host's prefix (`systemctl3.py` detaches them, so
/// they leave the sshd tree; found by their working directory).
fn host_cpu(h: &SshHost) -> Duration {
    let Some(root) = h.pid() else {
        return Duration::ZERO;
    };
    let mut pids: std::collections::BTreeSet<u32> = std::iter::once(root)
        .chain(soar_tests::sshd::descendants(root).iter().map(|p| p.pid))
        .collect();
    for p in soar_tests::sshd::processes() {
        if std::fs::read_link(format!("/proc/{}/cwd", p.pid))
            .is_ok_and(|cwd| cwd.starts_with(&h.root))
        {
            pids.insert(p.pid);
        }
    }
    pids.iter()
        .map(|pid| {
            let (own, children) = proc_cpu(&pid.to_string());
            own + children
        })
        .sum()
}

/// CPU of this process (all threads) and of its waited-for children.
fn own_cpu() -> (Duration, Duration) {
    proc_cpu("self")
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Stop every service the bench installed on `hosts` (those with a unit file
/// under the host's prefix).
fn stop_services(hosts: &[SshHost]) {
    for h in hosts {
        let units = h.root.join("etc/systemd/system");
        for e in std::fs::read_dir(units).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".service") {
                let _ = Command::new(python())
                    .arg(systemctl_py())
                    .arg(format!("--root={}", h.root.display()))
                    .args(["stop", n])
                    .output();
            }
        }
    }
}

struct Cleanup<'a>(&'a [SshHost]);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        stop_services(self.0);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !soar_tests::sshd::available() || !systemctl_py().exists() {
        eprintln!(
            "skipping the SSH benchmarks: they need /usr/sbin/sshd and {}",
            systemctl_py().display()
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

#[expect(
    clippy::too_many_lines,
    reason = "one benchmark script (setup, command round trip, P5, P7) whose phases share the started sshd hosts, the client key and the SSH broker; it reads top to bottom like the report it prints, and splitting it would mean threading that state through helpers for no reuse"
)]
async fn run() {
    let n_hosts = env_usize("SOAR_BENCH_SSH_HOSTS", 20).max(1);
    let mib = env_usize("SOAR_BENCH_SSH_MIB", 256).max(1);
    let rounds = env_usize("SOAR_BENCH_SSH_ROUNDS", 3).max(1);
    let key = ClientKey::generate().unwrap();
    let started = Instant::now();
    // Host 0 serves P5 and the single-host P7 run; hosts 1..=n the fan-out.
    let hosts: Vec<SshHost> = (0..=n_hosts)
        .map(|_| SshHost::start(&key).unwrap())
        .collect();
    let _cleanup = Cleanup(&hosts);
    let login_rc = std::env::var_os("SOAR_BENCH_SSH_LOGIN_RC").is_some_and(|v| v == "1");
    if !login_rc {
        for h in &hosts {
            skip_login_rc(h);
        }
    }
    let only = std::env::var("SOAR_BENCH_SSH_ONLY").unwrap_or_default();
    eprintln!(
        "started {} sshd hosts in {}",
        hosts.len(),
        ms(started.elapsed())
    );
    let work = tempfile::tempdir().unwrap();
    let known = work.path().join("known_hosts");
    std::fs::write(
        &known,
        hosts
            .iter()
            .map(|h| h.known_hosts_line())
            .collect::<String>(),
    )
    .unwrap();
    let journal = Arc::new(Journal::default());
    let broker = Arc::new(SshBroker::new(
        SshSettings {
            known_hosts: KnownHosts {
                user_files: vec![],
                own_file: known.clone(),
            },
            auth: AuthConfig {
                identity_file: Some(key.path.clone()),
                use_agent: false,
            },
            connect_timeout: Duration::from_secs(20),
            command_timeout: Duration::from_secs(300),
            ..SshSettings::default()
        },
        journal.clone(),
    ));
    let b = Bench {
        broker,
        user: whoami(),
    };

    // ------------------------------------------------- command round trip
    // Every rollout step is one command (a channel on the pooled connection).
    let h0 = &hosts[0];
    let t0 = b.transport(h0);
    let login = t0
        .exec(
            "echo \"$0, SHLVL=${SHLVL:-unset}, PATH=$PATH\"",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    println!(
        "\nremote login shell: {} ({})",
        login.stdout.trim(),
        if login_rc {
            "SOAR_BENCH_SSH_LOGIN_RC=1: the login user's ~/.bashrc runs for every command"
        } else {
            "SetEnv SHLVL=1: bash skips ~/.bashrc"
        }
    );
    let n_rt = 100;
    let cpu0 = cpu_jiffies();
    let (own0, host0) = (own_cpu().0, host_cpu(h0));
    let s0 = Instant::now();
    for _ in 0..n_rt {
        t0.exec("true", Duration::from_secs(30)).await.unwrap();
    }
    let broker_rt = s0.elapsed() / n_rt;
    let rt_cpu = busy_since(cpu0);
    let (rt_own, rt_host) = ((own_cpu().0 - own0) / n_rt, (host_cpu(h0) - host0) / n_rt);
    // OpenSSH baseline: a channel on an already open (ControlMaster) connection.
    let ctl = work.path().join("ctl");
    let ssh = |extra: &[&str]| {
        let mut c = Command::new("ssh");
        c.args([
            "-q",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(&key.path)
        .args(["-p", &h0.port.to_string()])
        .arg("-o")
        .arg(format!("ControlPath={}", ctl.display()))
        .args(extra)
        .arg(format!("{}@{}", b.user, h0.addr))
        .env_remove("SSH_AUTH_SOCK");
        c
    };
    let master = ssh(&[
        "-o",
        "ControlMaster=yes",
        "-o",
        "ControlPersist=60",
        "-N",
        "-f",
    ])
    .status()
    .unwrap();
    let ssh_rt = if master.success() {
        let s0 = Instant::now();
        for _ in 0..n_rt {
            assert!(
                ssh(&["-o", "ControlMaster=no"])
                    .arg("true")
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let d = s0.elapsed() / n_rt;
        let _ = ssh(&["-O", "exit"]).output();
        Some(d)
    } else {
        None
    };
    println!("\n== one command (`true`) on an open connection, mean of {n_rt} ==");
    println!(
        "{:<44} {:>10}   (machine CPU busy meanwhile: {rt_cpu}; CPU per command: soar {:.2} ms, host {:.2} ms)",
        "soar broker exec",
        ms(broker_rt),
        rt_own.as_secs_f64() * 1000.0,
        rt_host.as_secs_f64() * 1000.0,
    );
    if let Some(d) = ssh_rt {
        println!(
            "{:<44} {:>10}",
            "OpenSSH ssh over a ControlMaster connection",
            ms(d)
        );
    }

    if only != "p7" {
        // ---------------------------------------------------------------- P5
        println!("\n== P5: upload of {mib} MiB to a loopback sshd ==");
        let big = work.path().join("big.bin");
        write_big(&big, mib);
        let size = std::fs::metadata(&big).unwrap().len();
        let dest = h0.root.join("p5");
        std::fs::create_dir_all(&dest).unwrap();
        let local_hash = Instant::now();
        soar::broker::ssh::sha256_file(&big).await.unwrap();
        let local_hash = local_hash.elapsed();

        let mut broker_runs = Vec::new();
        let mut scp_runs = Vec::new();
        // (client, host) CPU of each upload.
        let mut broker_cpu = Vec::new();
        let mut scp_cpu = Vec::new();
        // Broker and scp alternate, so a busy spell on the machine hits both.
        for round in 0..rounds {
            let remote = dest.join(format!("broker-{round}.bin"));
            let (c0, hc0) = (own_cpu().0, host_cpu(h0));
            let s = Instant::now();
            let sent = t0
                .put_file(&big, &remote.display().to_string(), 0o644)
                .await
                .expect("broker upload");
            let d = s.elapsed();
            broker_cpu.push((own_cpu().0 - c0, host_cpu(h0) - hc0));
            assert_eq!(sent, size);
            assert_eq!(std::fs::metadata(&remote).unwrap().len(), size);
            std::fs::remove_file(&remote).unwrap();
            broker_runs.push(d);

            let remote = dest.join(format!("scp-{round}.bin"));
            let (c0, hc0) = (own_cpu().1, host_cpu(h0));
            let s = Instant::now();
            let out = Command::new("scp")
                .args(["-q", "-B", "-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known.display()))
                .args(["-o", "IdentitiesOnly=yes", "-i"])
                .arg(&key.path)
                .args(["-P", &h0.port.to_string()])
                .arg(&big)
                .arg(format!("{}@{}:{}", b.user, h0.addr, remote.display()))
                .env_remove("SSH_AUTH_SOCK")
                .output()
                .expect("running scp");
            let d = s.elapsed();
            scp_cpu.push((own_cpu().1 - c0, host_cpu(h0) - hc0));
            assert!(
                out.status.success(),
                "scp failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::metadata(&remote).unwrap().len(), size);
            if round + 1 < rounds {
                std::fs::remove_file(&remote).unwrap();
            }
            scp_runs.push(d);
        }
        // What hashing the file costs on the host, by tool (the broker uses
        // `openssl` for large files when the host has it).
        let scp_copy = dest.join(format!("scp-{}.bin", rounds - 1));
        let mut host_hash = Vec::new();
        for tool in ["sha256sum", "openssl dgst -sha256 -r"] {
            let s = Instant::now();
            let out = t0
                .exec(
                    &format!("{tool} < {}", scp_copy.display()),
                    Duration::from_secs(120),
                )
                .await
                .unwrap();
            if out.status == 0 {
                host_hash.push((tool, s.elapsed()));
            }
        }
        std::fs::remove_file(&scp_copy).unwrap();

        let best = |v: &[Duration]| v.iter().min().copied().unwrap();
        let mean_cpu = |v: &[(Duration, Duration)]| {
            let n = v.len().max(1) as u32;
            (
                v.iter().map(|c| c.0).sum::<Duration>() / n,
                v.iter().map(|c| c.1).sum::<Duration>() / n,
            )
        };
        let (bd, sd) = (best(&broker_runs), best(&scp_runs));
        let (bc, sc) = (mean_cpu(&broker_cpu), mean_cpu(&scp_cpu));
        println!(
            "{:<44} {:>10} {:>10} {:>12} {:>10}",
            "",
            format!("best of {rounds}"),
            "MB/s (MiB)",
            "client CPU",
            "host CPU"
        );
        println!(
            "{:<44} {:>10} {:>10.1} {:>12} {:>10}",
            "soar broker put_file (hash, stream, verify)",
            ms(bd),
            mbps(size, bd),
            ms(bc.0),
            ms(bc.1)
        );
        println!(
            "{:<44} {:>10} {:>10.1} {:>12} {:>10}",
            "OpenSSH scp (same sshd, same file)",
            ms(sd),
            mbps(size, sd),
            ms(sc.0),
            ms(sc.1)
        );
        println!(
            "  (CPU: means over the runs; client = this process / the scp+ssh processes, \
             host = the sshd and everything it runs)"
        );
        println!(
            "{:<44} {:>10}",
            "  soar: local sha256 of the file",
            ms(local_hash)
        );
        for (tool, d) in &host_hash {
            println!(
                "{:<44} {:>10}",
                format!("  host: `{tool}` of the file"),
                ms(*d)
            );
        }
        println!(
            "P5 ratio soar/scp throughput: {:.2}x (goal >= 0.80x)   all runs: soar {:?}, scp {:?}",
            mbps(size, bd) / mbps(size, sd),
            broker_runs.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            scp_runs.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        );

        // Unchanged re-deploy: a release holding the big file plus the app.
        let art_dir = work.path().join("art-big");
        std::fs::create_dir_all(&art_dir).unwrap();
        std::fs::write(art_dir.join("app.py"), APP).unwrap();
        std::fs::rename(&big, art_dir.join("big.bin")).unwrap();
        let art = ArtifactSource::scan(ArtifactKind::Script, &art_dir).unwrap();
        let port = free_port().unwrap();
        let (t, s, spec) = b.target(h0, "big", port);
        let r = release("20260101T000000Z-big", &art, port);
        let (first, first_wall) = roll(&t, &s, &spec, &r).await;
        let (second, second_wall) = roll(&t, &s, &spec, &r).await;
        println!(
            "\n{:<36} {:>12} {:>12} {:>10} {:>10} {:>12}",
            "rollout::deploy of a release", "bytes_sent", "wall", "transfer", "start", "health"
        );
        for (label, rep, wall) in [
            ("first deploy (new)", &first, first_wall),
            ("re-deploy, unchanged", &second, second_wall),
        ] {
            println!(
                "{:<36} {:>12} {:>12} {:>10} {:>10} {:>12}",
                label,
                rep.bytes_sent,
                ms(wall),
                ms(phase(rep, "transfer")),
                ms(phase(rep, "start")),
                ms(phase(rep, "verify-health"))
            );
        }
        println!(
            "P5 unchanged re-deploy: {} bytes sent, transfer phase {}, whole rollout {} (goal: 0 bytes, < 1 s)",
            second.bytes_sent,
            ms(phase(&second, "transfer")),
            ms(second_wall)
        );
        assert_eq!(second.bytes_sent, 0);
        // An unchanged file upload is skipped by digest too (local + remote sha256).
        let remote_big = format!("{}/releases/{}/big.bin", spec.root, first.release);
        let s0 = Instant::now();
        let again = t
            .put_file(&art_dir.join("big.bin"), &remote_big, 0o644)
            .await
            .unwrap();
        println!(
            "put_file of the same {mib} MiB file again: {again} bytes sent in {} (both sides hash it)",
            ms(s0.elapsed())
        );
        s.stop(&spec).await.ok();
        drop(art);
        let _ = std::fs::remove_dir_all(h0.root.join("opt/big"));

        // The same through the CLI: `soar deploy` twice, the second "No changes".
        let proj = work.path().join("cli");
        std::fs::create_dir_all(&proj).unwrap();
        let cli_port = free_port().unwrap();
        std::fs::write(
            proj.join("soar.toml"),
            format!(
                r#"[app]
name = "clibig"

[artifact]
kind = "script"
path = "{art}"
command = "python3 app.py"

[deploy]
port = {cli_port}
health = {{ path = "/health", timeout = "60s", interval = "100ms", retries = 600 }}

[env.bench]
provider = "local"

[env.bench.ssh]
hosts = ["{endpoint}"]
user = "{user}"
identity_file = "{key}"
known_hosts = "{known}"
remote_prefix = "{prefix}"
systemctl = "{py} {sysctl} --root={{prefix}}"
service_user = ""
"#,
                art = art_dir.display(),
                endpoint = h0.endpoint(),
                user = b.user,
                key = key.path.display(),
                known = known.display(),
                prefix = h0.root.display(),
                py = python().display(),
                sysctl = systemctl_py().display(),
            ),
        )
        .unwrap();
        let soar_deploy = || {
            let s0 = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_soar"))
                .arg("-c")
                .arg(proj.join("soar.toml"))
                .args(["deploy", "--yes"])
                .env_remove("SSH_AUTH_SOCK")
                .output()
                .unwrap();
            let d = s0.elapsed();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "soar deploy failed:\n{all}");
            (d, all)
        };
        let (d1, o1) = soar_deploy();
        let (d2, o2) = soar_deploy();
        let sent = |o: &str| {
            o.lines()
                .find_map(|l| {
                    l.split("; ")
                        .nth(1)
                        .and_then(|r| r.strip_suffix(" bytes sent)"))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "0 (no rollout)".into())
        };
        println!(
            "soar CLI deploy (provider local + [ssh] hosts, {mib} MiB release): first {} ({} bytes sent), \
         second {} ({} bytes sent; {})",
            ms(d1),
            sent(&o1),
            ms(d2),
            sent(&o2),
            if o2.contains("No changes") {
                "\"No changes\""
            } else {
                "changes?"
            }
        );
        let _ = Command::new(python())
            .arg(systemctl_py())
            .arg(format!("--root={}", h0.root.display()))
            .args(["stop", "clibig"])
            .output();
        std::fs::remove_dir_all(&art_dir).ok();
    }

    if only != "p5" {
        // ---------------------------------------------------------------- P7
        println!(
            "\n== P7: full rollout (transfer, systemd start, health) to {n_hosts} hosts vs 1 host =="
        );
        let app_dir = work.path().join("art-app");
        std::fs::create_dir_all(&app_dir).unwrap();
        std::fs::write(app_dir.join("app.py"), APP).unwrap();
        let app = ArtifactSource::scan(ArtifactKind::Script, &app_dir).unwrap();

        // The Python interpreter start-up behind every `systemctl` call.
        let s0 = Instant::now();
        let n_py = 5;
        for _ in 0..n_py {
            Command::new(python())
                .arg(systemctl_py())
                .arg(format!("--root={}", h0.root.display()))
                .arg("--version")
                .output()
                .unwrap();
        }
        let py_start = s0.elapsed() / n_py;

        // One host (its connection already open, like the fan-out's below).
        let port = free_port().unwrap();
        let (t, s, spec) = b.target(h0, "one", port);
        let r = release("20260101T000001Z-one", &app, port);
        let (cpu0, own0, host0) = (cpu_jiffies(), own_cpu().0, host_cpu(h0));
        let seen = journal.events().len();
        let (one, one_wall) = roll(&t, &s, &spec, &r).await;
        let steps: Vec<(String, u64)> = journal.events()[seen..]
            .iter()
            .filter_map(|e| match e {
                soar::journal::Event::Ssh {
                    command, millis, ..
                } => Some((command.clone(), *millis)),
                _ => None,
            })
            .collect();
        let one_cpu = (
            busy_cpu_since(cpu0),
            own_cpu().0 - own0 + host_cpu(h0) - host0,
        );

        // n hosts at once, through the one broker (one connection per host).
        let fan: Vec<(SshTransport, Systemd, ServiceSpec, u16)> = hosts[1..]
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let p = free_port().unwrap();
                // One unit name per host: the stand-in `systemctl3.py` takes
                // a per-unit lock in this machine's /run/systemd (not under
                // --root), which real hosts never share; with one name the
                // 20 hosts' restarts would queue on it (1 s retry sleeps).
                let (t, s, spec) = b.target(h, &format!("fan{:02}", i + 1), p);
                (t, s, spec, p)
            })
            .collect();
        // Connections first, measured apart (the handshake of 20 hosts at once).
        let s0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (t, ..) in &fan {
            let t = t.clone();
            set.spawn(async move { t.exec("true", Duration::from_secs(30)).await.map(|_| ()) });
        }
        while let Some(j) = set.join_next().await {
            j.unwrap().unwrap();
        }
        let connect_all = s0.elapsed();

        let app = Arc::new(app);
        let fan_hosts = &hosts[1..];
        let hosts_cpu = || fan_hosts.iter().map(host_cpu).sum::<Duration>();
        let (cpu0, own0, host0) = (cpu_jiffies(), own_cpu().0, hosts_cpu());
        let s0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (t, s, spec, p) in fan.iter().cloned() {
            let app = app.clone();
            set.spawn(async move {
                let r = release("20260101T000002Z-fan", &app, p);
                roll(&t, &s, &spec, &r).await
            });
        }
        let mut reports = Vec::new();
        while let Some(j) = set.join_next().await {
            reports.push(j.unwrap());
        }
        let fan_wall = s0.elapsed();
        let fan_cpu = busy_since(cpu0);
        let fan_cpu_time = (
            busy_cpu_since(cpu0),
            own_cpu().0 - own0 + hosts_cpu() - host0,
        );
        let max_of = |name: &str| {
            reports
                .iter()
                .map(|(r, _)| phase(r, name))
                .max()
                .unwrap_or_default()
        };
        let (ft, fs, fh) = (max_of("transfer"), max_of("start"), max_of("verify-health"));
        println!(
            "{:<28} {:>10} {:>12} {:>12} {:>12}",
            "", "wall", "transfer", "start", "health"
        );
        println!(
            "{:<28} {:>10} {:>12} {:>12} {:>12}",
            "1 host",
            ms(one_wall),
            ms(phase(&one, "transfer")),
            ms(phase(&one, "start")),
            ms(phase(&one, "verify-health"))
        );
        println!(
            "{:<28} {:>10} {:>12} {:>12} {:>12}",
            format!("{n_hosts} hosts at once (max)"),
            ms(fan_wall),
            ms(ft),
            ms(fs),
            ms(fh)
        );
        println!(
            "P7 ratio {n_hosts} hosts / 1 host: {:.2}x wall (goal <= 1.5x); transfer phase {:.2}x",
            fan_wall.as_secs_f64() / one_wall.as_secs_f64(),
            ft.as_secs_f64() / phase(&one, "transfer").as_secs_f64().max(1e-6)
        );
        println!(
            "  machine CPU busy during the {n_hosts}-host rollout: {fan_cpu} of {} cores \
         (sshd, the remote shells and `systemctl3.py` of all hosts share this machine)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "  the 1-host rollout made {} SSH round trips (a command or an upload each), {} ms in them{}",
            steps.len(),
            steps.iter().map(|s| s.1).sum::<u64>(),
            if std::env::var_os("SOAR_BENCH_SSH_TRACE").is_some() {
                steps
                    .iter()
                    .map(|(c, m)| {
                        format!(
                            "\n    {m:>5} ms  {}",
                            c.chars().take(150).collect::<String>()
                        )
                    })
                    .collect::<String>()
            } else {
                " (SOAR_BENCH_SSH_TRACE=1 lists them)".into()
            }
        );
        println!(
            "  CPU time, machine-wide (busy jiffies; includes anything else running) / soar + the hosts' sshd trees + services: \
             1 host {} / {}, {n_hosts} hosts {} / {} ({} / {} per host)",
            ms(one_cpu.0),
            ms(one_cpu.1),
            ms(fan_cpu_time.0),
            ms(fan_cpu_time.1),
            ms(fan_cpu_time.0 / n_hosts as u32),
            ms(fan_cpu_time.1 / n_hosts as u32),
        );
        let bound = one_cpu.1 * n_hosts as u32 / cores as u32;
        println!(
            "  {n_hosts} hosts x the 1-host rollout's CPU (soar + sshd tree + service) / {cores} cores = {} \
             = {:.2}x the 1-host wall: the fan-out cannot beat that on this machine",
            ms(bound),
            bound.as_secs_f64() / one_wall.as_secs_f64()
        );
        println!(
            "  connecting to {n_hosts} hosts at once (before the rollout): {}; one `systemctl3.py` interpreter start: {} \
         (a rollout runs 4 systemctl calls per host: daemon-reload, enable, restart, plus is-active on a failed probe)",
            ms(connect_all),
            ms(py_start)
        );

        // Transfer only: put_file of the app to every host at once vs one.
        let payload = app_dir.join("app.py");
        let s0 = Instant::now();
        t.put_file(&payload, &format!("{}/xfer-app.py", spec.root), 0o644)
            .await
            .unwrap();
        let one_x = s0.elapsed();
        let cpu0 = cpu_jiffies();
        let s0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (t, _, spec, _) in fan.iter().cloned() {
            let payload = payload.clone();
            set.spawn(async move {
                t.put_file(&payload, &format!("{}/xfer-app.py", spec.root), 0o644)
                    .await
            });
        }
        while let Some(j) = set.join_next().await {
            j.unwrap().unwrap();
        }
        let fan_x = s0.elapsed();
        let fan_x_cpu = busy_since(cpu0);
        println!(
            "transfer only (put_file of app.py, new content): 1 host {}, {n_hosts} hosts at once {} ({:.2}x)",
            ms(one_x),
            ms(fan_x),
            fan_x.as_secs_f64() / one_x.as_secs_f64()
        );
        println!("  machine CPU busy during that transfer: {fan_x_cpu}");

        // Commands alone: one `true` on every fan-out host, one after another
        // and then all at once (is anything in the broker serializing them?).
        let s0 = Instant::now();
        for (t, ..) in &fan {
            t.exec("true", Duration::from_secs(30)).await.unwrap();
        }
        let seq = s0.elapsed();
        let cpu0 = cpu_jiffies();
        let s0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (t, ..) in &fan {
            let t = t.clone();
            set.spawn(async move { t.exec("true", Duration::from_secs(30)).await.map(|_| ()) });
        }
        while let Some(j) = set.join_next().await {
            j.unwrap().unwrap();
        }
        let par = s0.elapsed();
        let par_cpu = busy_since(cpu0);
        // The same with OpenSSH, one new `ssh` process per host, all at once.
        let s0 = Instant::now();
        let children: Vec<_> = hosts[1..]
            .iter()
            .map(|h| {
                Command::new("ssh")
                    .args([
                        "-q",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "StrictHostKeyChecking=yes",
                    ])
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", known.display()))
                    .args(["-o", "IdentitiesOnly=yes", "-i"])
                    .arg(&key.path)
                    .args(["-p", &h.port.to_string()])
                    .arg(format!("{}@{}", b.user, h.addr))
                    .arg("true")
                    .env_remove("SSH_AUTH_SOCK")
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let ssh_par = s0.elapsed();
        println!(
            "`true` on {n_hosts} hosts: one after another {}, all at once {} (CPU busy {par_cpu}); \
         OpenSSH, {n_hosts} new `ssh` processes at once: {}",
            ms(seq),
            ms(par),
            ms(ssh_par)
        );

        for (_, s, spec, _) in &fan {
            s.stop(spec).await.ok();
        }
        s.stop(&spec).await.ok();
    }
    b.broker.close().await;
}
