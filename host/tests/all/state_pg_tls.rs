//! Team state on PostgreSQL over TLS, against a real throw-away server that
//! takes TCP connections only over TLS ([`Cluster::start_tls`]): each
//! `sslmode` does what it says, every refusal is one clear line naming the
//! problem and what to do, and `soar deploy` / `soar history` run over a
//! verified connection.

use soar::state::*;

use crate::support::e2e::{Project, soar_toml};
use crate::support::postgres::{Cluster, TestCa};

/// A location for `url`; the password goes in the URL (allowed outside
/// soar.toml), since the tests share one process environment.
fn location(url: &str) -> StateLocation {
    StateLocation::Postgres {
        url: url.replacen(
            &format!("{}@", Cluster::USER),
            &format!("{}:{}@", Cluster::USER, Cluster::PASSWORD),
            1,
        ),
        project: "app".into(),
        from_config: false,
    }
}

fn open(url: &str) -> StateStore {
    StateStore::open_at(&location(url)).unwrap_or_else(|e| panic!("opening {url}: {e:#}"))
}

/// The error opening `url`, checked for what every such error must be:
/// one line, with no password and no key material in it.
#[track_caller]
fn refused(url: &str) -> String {
    let err = format!("{:#}", StateStore::open_at(&location(url)).unwrap_err());
    eprintln!("{url}\n  -> {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains(Cluster::PASSWORD), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert!(!err.contains("BEGIN CERTIFICATE-----\n"), "{err}");
    err
}

/// Whether every connection soar (application_name `soar`) has open to
/// `db` is encrypted, as the server sees it; panics when there is none.
fn soar_connections_are_tls(cluster: &Cluster, db: &str) -> bool {
    let rows = cluster
        .admin(db)
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.application_name = 'soar'",
            &[&db],
        )
        .unwrap();
    assert!(!rows.is_empty(), "soar has no connection open to {db}");
    rows.iter().all(|r| r.get::<_, bool>(0))
}

/// `require` encrypts (the server says so), `verify-full` with the CA that
/// signed the server's certificate works, and so does the default `prefer`.
#[test]
fn require_and_verify_full_connect_over_tls() {
    let cluster = Cluster::start_tls();
    let db = cluster.fresh_database_name("tls");
    let modes = [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={}", cluster.ca().display()),
        "sslmode=prefer".to_string(),
    ];
    for (n, query) in modes.iter().enumerate() {
        let store = open(&cluster.url_with("127.0.0.1", &db, query));
        let d = store.begin_deploy("prod", "deploy", "alice").unwrap();
        store.finish_deploy(d, Outcome::Ok, "done").unwrap();
        assert_eq!(store.history(None, 10).unwrap().len(), n + 1);
        assert!(
            soar_connections_are_tls(&cluster, &db),
            "{query}: the connection is not encrypted"
        );
    }
    // The project lock's own connection goes over TLS too.
    let url = cluster.url(&db);
    let held = ProjectLock::acquire_at(
        &location(&url),
        std::time::Duration::ZERO,
        &HolderInfo::current(),
    )
    .unwrap();
    assert!(soar_connections_are_tls(&cluster, &db));
    drop(held);
}

/// `verify-full` against a CA that did not sign the server's certificate:
/// refused, naming the certificate problem, the CA file and what to do.
#[test]
fn verify_full_refuses_a_certificate_from_another_ca() {
    let cluster = Cluster::start_tls();
    let db = cluster.fresh_database_name("other_ca");
    let dir = tempfile::tempdir().unwrap();
    let impostor = TestCa::new(dir.path(), "not the server's CA");
    let err = refused(&cluster.url_with(
        "127.0.0.1",
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            impostor.cert.display()
        ),
    ));
    assert!(err.contains("not signed by the CA in sslrootcert"), "{err}");
    assert!(err.contains(&impostor.cert.display().to_string()), "{err}");
    assert!(err.contains("point sslrootcert at"), "{err}");
    // `require` does not check who answers, as libpq's does not.
    drop(open(&cluster.url_with("127.0.0.1", &db, "sslmode=require")));
}

/// `verify-full` to a host name the certificate does not carry (it names
/// 127.0.0.1 only; `localhost` resolves there) is refused, naming both.
#[test]
fn verify_full_refuses_a_name_not_in_the_certificate() {
    let cluster = Cluster::start_tls();
    let db = cluster.fresh_database_name("name");
    let err = refused(&cluster.url_with(
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", cluster.ca().display()),
    ));
    assert!(
        err.contains("not valid for the host `localhost` (it names 127.0.0.1)"),
        "{err}"
    );
    assert!(
        err.contains("connect with a host name the certificate lists"),
        "{err}"
    );
}

/// Plain TCP to a server whose pg_hba.conf has only `hostssl` lines: one
/// line saying TLS is required and which sslmode to use.
#[test]
fn plain_tcp_to_a_tls_only_server_says_tls_is_required() {
    let cluster = Cluster::start_tls();
    let db = cluster.fresh_database_name("plain");
    let err = refused(&cluster.url_with("127.0.0.1", &db, "sslmode=disable"));
    assert!(err.contains("only over TLS"), "{err}");
    assert!(err.contains("use sslmode=verify-full"), "{err}");
}

/// A `sslrootcert` that is not there, or holds no certificate (a key, say):
/// the path is named, and the file's contents never are.
#[test]
fn a_missing_or_wrong_sslrootcert_names_the_path() {
    let cluster = Cluster::start_tls();
    let db = cluster.fresh_database_name("rootcert");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.crt");
    let err = refused(&cluster.url_with(
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    ));
    assert!(
        err.contains(&format!("cannot read sslrootcert {}", missing.display())),
        "{err}"
    );
    assert!(err.contains("No such file"), "{err}");

    // A private key where the CA certificate belongs.
    let ca = TestCa::new(dir.path(), "a CA");
    let (_, key) = ca.issue(dir.path(), "client", &["DNS:client"]);
    let err = refused(&cluster.url_with(
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", key.display()),
    ));
    assert!(
        err.contains(&format!(
            "sslrootcert {} holds no certificate",
            key.display()
        )),
        "{err}"
    );
}

/// `soar deploy` and `soar history` of a local project whose state is in
/// a TLS-only server, reached with `SOAR_STATE_URL=...sslmode=verify-full
/// &sslrootcert=...` and the password in `PGPASSWORD`.
#[test]
fn deploy_and_history_over_verify_full() {
    let cluster = Cluster::start_tls();
    let url = cluster.fresh_database("e2e");
    let p = Project::new(&soar_toml("10s", ""), "v1");
    let run = |args: &[&str]| {
        let mut cmd = p.command(args);
        cmd.env(STATE_URL_VAR, &url)
            .env("PGPASSWORD", Cluster::PASSWORD);
        let mut all = vec!["-c".to_string(), p.config().display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        crate::support::e2e::run_command(cmd, all)
    };
    let deploy = run(&["deploy", "--yes"]).ok();
    assert!(
        !deploy.stderr.contains(Cluster::PASSWORD),
        "{}",
        deploy.show()
    );
    let history = run(&["history", "--json"]).ok().json_lines();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["status"], "ok", "{history:?}");
    assert!(!p.root.join(".soar").join("state.db").exists());

    // The same project with the wrong CA: the deploy is refused in one
    // line before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let impostor = TestCa::new(dir.path(), "not the server's CA");
    let wrong = url.replace(
        &cluster.ca().display().to_string(),
        &impostor.cert.display().to_string(),
    );
    let mut cmd = p.command(&["deploy", "--yes"]);
    cmd.env(STATE_URL_VAR, &wrong)
        .env("PGPASSWORD", Cluster::PASSWORD);
    let refused = crate::support::e2e::run_command(cmd, vec!["deploy".into(), "--yes".into()]);
    assert_ne!(refused.code, Some(0), "{}", refused.show());
    assert!(
        refused
            .stderr
            .contains("not signed by the CA in sslrootcert"),
        "{}",
        refused.show()
    );
    assert!(
        !refused.stderr.contains(Cluster::PASSWORD),
        "{}",
        refused.show()
    );
}

/// Figures, not asserts: what opening the store (connect, authenticate,
/// check the schema) costs per `sslmode` on loopback, mean of `RUNS`.
#[test]
fn connection_cost_per_sslmode() {
    const RUNS: u32 = 10;
    let mean = |url: &str| {
        drop(open(url));
        let started = std::time::Instant::now();
        for _ in 0..RUNS {
            drop(open(url));
        }
        started.elapsed().as_secs_f64() * 1e3 / f64::from(RUNS)
    };
    let plain = Cluster::start();
    let disable = mean(&plain.fresh_database("cost"));
    drop(plain);
    let tls = Cluster::start_tls();
    let db = tls.fresh_database_name("cost");
    let require = mean(&tls.url_with("127.0.0.1", &db, "sslmode=require"));
    let verify_full = mean(&tls.url(&db));
    eprintln!(
        "opening the state store on loopback: {disable:.1} ms plain, {require:.1} ms sslmode=require, {verify_full:.1} ms sslmode=verify-full (mean of {RUNS})"
    );
}
