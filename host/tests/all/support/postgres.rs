//! A throw-away PostgreSQL cluster for tests: `initdb` + `pg_ctl`, no
//! system service.
//!
//! [`Cluster::start`] makes a fresh cluster under `target/test-pg/`, listening
//! only on 127.0.0.1 (a free port) and on a unix socket in its own directory;
//! dropping the [`Cluster`] stops it (`pg_ctl stop -m immediate`) and removes
//! its files, so nothing is left running after a test, passing or panicking.
//!
//! PostgreSQL refuses to run as root, and the tests run as root here and in
//! CI: the cluster then runs as `nobody` (through `setpriv`), which owns the
//! cluster's directory; as any other user it runs as that user.
//!
//! Every statement is logged ([`Cluster::statements`] counts them), so a
//! test can print how many round trips a command makes.
//!
//! The superuser is [`Cluster::USER`] with the password [`Cluster::PASSWORD`],
//! checked with `scram-sha-256` on every connection (local and TCP), so a
//! wrong password is really refused. Each test gets its own databases
//! ([`Cluster::create_database`]): creating one takes milliseconds, starting
//! a cluster a second or two.
//!
//! [`Cluster::start_tls`] starts one that accepts TCP connections only over
//! TLS (`hostssl` lines, no `host` line), with a server certificate for
//! `127.0.0.1` issued by a throw-away CA ([`TestCa`]). The certificates are
//! made with the `openssl` command: Debian's `postgresql` package already
//! pulls it in (through `ssl-cert`), so this costs no new crate to build on
//! every machine, and the files are what an operator would make by hand.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The Debian package that provides `initdb`, `pg_ctl` and `postgres`.
pub const PACKAGE: &str = "postgresql";

/// A running throw-away cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    /// `target/test-pg/<name>`: data, socket and log.
    root: PathBuf,
    /// The directory of `initdb`, `pg_ctl`, `createdb`.
    bin: PathBuf,
    /// The loopback TCP port it listens on.
    port: u16,
    /// `Some((uid, gid))` when it runs as another user than ours.
    run_as: Option<(u32, u32)>,
    /// The CA that signed the server's certificate, when TLS is on.
    tls: Option<TestCa>,
}

impl Cluster {
    /// The superuser's name.
    pub const USER: &'static str = "soar";
    /// The superuser's password (tests pass it as `PGPASSWORD`).
    pub const PASSWORD: &'static str = "pg-test-password";

    /// Start a fresh cluster. Panics, saying what to install, when the
    /// PostgreSQL server binaries are missing.
    pub fn start() -> Cluster {
        Cluster::start_with(false)
    }

    /// Start a fresh cluster that takes TCP connections only over TLS, with
    /// a certificate for `127.0.0.1` (only: `localhost` is a name it does
    /// not carry) signed by [`Cluster::ca`].
    pub fn start_tls() -> Cluster {
        Cluster::start_with(true)
    }

    fn start_with(tls: bool) -> Cluster {
        let bin = server_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL's server binaries (initdb, pg_ctl) are neither on PATH nor in \
                 /usr/lib/postgresql/*/bin: install the `{PACKAGE}` package (`.ci/run` does)"
            )
        });
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("test-pg")
            .join(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("socket")).expect("creating the cluster directory");
        let run_as = (effective_uid() == 0).then(nobody);
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, Cluster::PASSWORD).expect("writing the password file");
        if let Some((uid, gid)) = run_as {
            for path in [&root, &root.join("socket"), &pwfile] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
            }
            // `nobody` must be able to walk down to the cluster directory.
            open_path_to(&root);
        }
        let port = free_port();
        let tls = tls.then(|| TestCa::new(&root.join("ca"), "soar test CA"));
        let cluster = Cluster {
            root,
            bin,
            port,
            run_as,
            tls,
        };
        cluster.must(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                Cluster::USER,
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let ssl = if cluster.tls.is_some() {
            cluster.require_tls()
        } else {
            String::new()
        };
        cluster.must(
            "pg_ctl",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-l",
                &cluster.root.join("log").display().to_string(),
                "-w",
                "-t",
                "60",
                "-o",
                &format!(
                    "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=60 -c log_statement=all{ssl}",
                    cluster.root.join("socket").display()
                ),
                "start",
            ],
        );
        cluster
    }

    /// Issue the server's certificate, owned by the cluster's user with
    /// its key mode 0600 (the server refuses a key others can read), and
    /// replace initdb's pg_hba.conf with one that has no plain `host` line:
    /// TCP without TLS finds no entry. Returns the server options turning
    /// TLS on.
    fn require_tls(&self) -> String {
        let ca = self.tls.as_ref().expect("a TLS cluster");
        let dir = self.root.join("tls");
        let (cert, key) = ca.issue(&dir, "server", &["IP:127.0.0.1"]);
        if let Some((uid, gid)) = self.run_as {
            for path in [&dir, &cert, &key] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
            }
        }
        std::fs::write(
            self.data().join("pg_hba.conf"),
            "# soar's TLS test cluster: TCP only over TLS, scram passwords everywhere\n\
             local   all all              scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("writing pg_hba.conf");
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        )
    }

    /// The CA certificate (PEM) that signed a [`Cluster::start_tls`]
    /// server's certificate: the `sslrootcert` of `verify-full`.
    pub fn ca(&self) -> &Path {
        &self
            .tls
            .as_ref()
            .expect("Cluster::ca is for clusters started with start_tls")
            .cert
    }

    /// `postgres://soar@<host>:<port>/<db>?<query>`: no password in it.
    pub fn url_with(&self, host: &str, db: &str, query: &str) -> String {
        format!(
            "postgres://{}@{host}:{}/{db}?{query}",
            Cluster::USER,
            self.port
        )
    }

    /// A superuser connection over the cluster's unix socket (no TLS
    /// there), for a test to look at the server's side of things.
    pub fn admin(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.root.join("socket"))
            .port(self.port)
            .user(Cluster::USER)
            .password(Cluster::PASSWORD)
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test cluster's socket: {e}"))
    }

    /// `postgres://soar@127.0.0.1:<port>/<db>`: no password in it, as a
    /// soar.toml must have it. Plain TCP (`sslmode=disable`), or on a TLS
    /// cluster `sslmode=verify-full` with [`Cluster::ca`] as `sslrootcert`.
    pub fn url(&self, db: &str) -> String {
        let query = match &self.tls {
            None => "sslmode=disable".to_string(),
            Some(ca) => format!("sslmode=verify-full&sslrootcert={}", ca.cert.display()),
        };
        self.url_with("127.0.0.1", db, &query)
    }

    /// Create the database `name` (owned by the superuser).
    pub fn create_database(&self, name: &str) {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", Cluster::USER, name])
            .env("PGPASSWORD", Cluster::PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("running createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new database with a unique name derived from `prefix`; its URL.
    pub fn fresh_database(&self, prefix: &str) -> String {
        self.url(&self.fresh_database_name(prefix))
    }

    /// A new database with a unique name derived from `prefix`; its name.
    pub fn fresh_database_name(&self, prefix: &str) -> String {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}_{}", SEQ.fetch_add(1, Ordering::Relaxed));
        self.create_database(&name);
        name
    }

    /// How many statements the server has run so far (it logs every one):
    /// the difference across a command is its round trips to the database.
    pub fn statements(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("LOG:  statement:") || l.contains("LOG:  execute"))
            .count()
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Run one of the server binaries as the cluster's user; panics with
    /// its output when it fails.
    fn must(&self, tool: &str, args: &[&str]) -> Output {
        let out = self.server_command(tool, args).output().expect(tool);
        assert!(
            out.status.success(),
            "{tool} failed ({}):\n{}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }

    fn server_command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        // initdb and pg_ctl chdir nowhere themselves; root's cwd may be
        // unreadable to `nobody`.
        cmd.args(args)
            .current_dir(&self.root)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let stopped = self
            .server_command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("warning: could not stop the test cluster in {data}");
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, or the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian keeps them off PATH).
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        // A symlink on PATH (`/usr/local/bin/initdb`): the real directory
        // also has `createdb` and `postgres`.
        return Some(
            std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|real| real.parent().map(Path::to_path_buf))
                .unwrap_or(dir),
        );
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Our effective uid, read from `/proc` (no libc call needed).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .unwrap_or(u32::MAX)
}

/// `nobody`'s uid and gid from `/etc/passwd` (65534 on Debian).
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .unwrap_or((65534, 65534))
}

/// Let every user traverse (not list) each directory from `/` to `path`,
/// so the unprivileged server reaches its data under a root-owned tree.
fn open_path_to(path: &Path) {
    for dir in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001));
        }
    }
}

/// A loopback port nobody listens on right now, from outside the kernel's
/// ephemeral range (see [`soar_tests::sshd::free_port`]).
fn free_port() -> u16 {
    soar_tests::sshd::free_port().expect("a free loopback port")
}

/// A throw-away certificate authority made with the `openssl` command: an
/// EC P-256 key and a self-signed CA certificate, valid for two days.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (PEM), what a client trusts.
    pub cert: PathBuf,
    /// Its private key (PEM), kept next to it.
    key: PathBuf,
}

/// The extensions of what [`TestCa`] signs: a CA that may only sign
/// certificates, and a server certificate whose names are added per issue
/// (rustls checks subjectAltName, never the CN).
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = soar test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

impl TestCa {
    /// A new CA in `dir` (created), its subject `CN=<name>`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).expect("creating the CA directory");
        let config = dir.join("openssl.cnf");
        std::fs::write(&config, OPENSSL_CONFIG).expect("writing openssl.cnf");
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-config",
            &config.display().to_string(),
            "-extensions",
            "ca",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
        TestCa { cert, key }
    }

    /// A certificate for `names` (subjectAltName entries such as
    /// `IP:127.0.0.1` or `DNS:localhost`) signed by this CA, written to
    /// `dir/<stem>.crt` with its key in `dir/<stem>.key` (mode 0600).
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("creating the certificate directory");
        let config = dir.join(format!("{stem}.cnf"));
        std::fs::write(
            &config,
            format!("{OPENSSL_CONFIG}subjectAltName = {}\n", names.join(", ")),
        )
        .expect("writing the certificate's openssl.cnf");
        let (cert, key, csr) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
            dir.join(format!("{stem}.csr")),
        );
        let subject = names[0].split_once(':').map_or(names[0], |(_, n)| n);
        openssl(&[
            "req",
            "-new",
            "-config",
            &config.display().to_string(),
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
            "-subj",
            &format!("/CN={subject}"),
        ]);
        static SERIAL: AtomicU32 = AtomicU32::new(1);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &self.cert.display().to_string(),
            "-CAkey",
            &self.key.display().to_string(),
            "-set_serial",
            &format!(
                "{}{}",
                std::process::id(),
                SERIAL.fetch_add(1, Ordering::Relaxed)
            ),
            "-days",
            "2",
            "-extfile",
            &config.display().to_string(),
            "-extensions",
            "server",
            "-out",
            &cert.display().to_string(),
        ]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 0600 on the key");
        (cert, key)
    }
}

/// Run `openssl <args>`; panics with its output when it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("running openssl ({e}): install the `openssl` package (`.ci/run` does)")
        });
    assert!(
        out.status.success(),
        "openssl {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
