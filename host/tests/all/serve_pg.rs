//! `soar serve` workers sharing one queue in a real throw-away PostgreSQL
//! server ([`Cluster`]): every job runs exactly once, the per-provider
//! limit holds across workers, and a worker SIGKILLed mid-job loses it to
//! another worker, once.
//!
//! Each worker is a `soar serve` of its own (its own soar-server.toml, data
//! directory and tokens) naming the same projects and the same `[queue]
//! url`; the jobs, their attempts and events are in the database, so any
//! worker shows any job.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::e2e::{ENV, Project, soar_toml, wait_until};
use crate::support::postgres::Cluster;
use crate::support::{Listening, listening, soar};

/// A hook that holds a deploy until the test lets it go.
const GATE: &str = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";

/// One `soar serve` worker; SIGKILLed on drop.
struct Worker {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    token: String,
}

impl Worker {
    /// Write a soar-server.toml in `dir` naming `projects` and the queue at
    /// `url`, make a token, and start the server on a free port.
    fn start(
        home: &Path,
        dir: &Path,
        url: &str,
        per_provider: usize,
        projects: &[(&str, &Project)],
    ) -> Worker {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("soar-server.toml");
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\n[queue]\nper_provider = {per_provider}\nurl = \"{url}\"\nlease = \"2s\"\n"
        );
        for (name, p) in projects {
            text += &format!(
                "[projects.{name}]\npath = {:?}\n",
                p.root.display().to_string()
            );
        }
        std::fs::write(&config, text).unwrap();
        let out = soar(home, dir)
            .args([
                "serve",
                "token",
                "create",
                "--scope",
                "admin",
                "--server-config",
            ])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        let log = dir.join("serve.log");
        let mut serve = soar(home, dir);
        serve
            .env("PGPASSWORD", Cluster::PASSWORD)
            .args(["serve", "--listen", "127.0.0.1:0", "--server-config"])
            .arg(&config);
        let Listening { child, addr, .. } = listening(serve, &log);
        Worker {
            child,
            addr,
            log,
            token,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.0 request; the status and the JSON body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Submit a deploy of `project`; its id.
    #[track_caller]
    fn submit(&self, project: &str) -> String {
        let (status, body) = self.request(
            "POST",
            "/v1/deploys",
            Some(&json!({ "project": project, "environment": ENV })),
        );
        assert_eq!(status, 202, "{body}\n{}", self.log());
        body["id"].as_str().unwrap().to_string()
    }

    fn job(&self, id: &str) -> Value {
        let (status, body) = self.request("GET", &format!("/v1/deploys/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Wait until every job of `ids` is final; them, as this worker shows them.
    #[track_caller]
    fn wait_final(&self, ids: &[String], limit: Duration) -> Vec<Value> {
        let mut jobs = Vec::new();
        let done = wait_until(limit, || {
            jobs = ids.iter().map(|id| self.job(id)).collect();
            jobs.iter()
                .all(|j| j["status"] != "queued" && j["status"] != "running")
        });
        assert!(done, "{jobs:#?}\n{}", self.log());
        jobs
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` projects with one environment each, on the `local` provider.
fn projects(n: usize, hook: &str) -> Vec<Project> {
    (0..n)
        .map(|i| Project::new(&soar_toml("20s", hook), &format!("p{i}")))
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}")).collect()
}

/// A connection to the cluster's database, to read what the workers wrote.
fn client(url: &str) -> postgres::Client {
    let url = url.replacen(
        &format!("{}@", Cluster::USER),
        &format!("{}:{}@", Cluster::USER, Cluster::PASSWORD),
        1,
    );
    postgres::Client::connect(&url, postgres::NoTls).unwrap()
}

#[test]
fn thirty_jobs_four_environments_two_workers_one_limit() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("queue");
    let ps = projects(4, "");
    let names = names(4);
    let named: Vec<(&str, &Project)> = names.iter().map(String::as_str).zip(&ps).collect();
    let home = ps[0].tmp();
    let a = Worker::start(home, &home.join("worker-a"), &url, 2, &named);
    let b = Worker::start(home, &home.join("worker-b"), &url, 2, &named);

    // Submitted to both workers in turn; each shows every job.
    let ids: Vec<String> = (0..30)
        .map(|i| [&a, &b][i % 2].submit(&names[i % 4]))
        .collect();
    let jobs = a.wait_final(&ids, Duration::from_secs(600));
    for (j, id) in jobs.iter().zip(&ids) {
        assert_eq!(j["status"], "succeeded", "{j}\n{}\n{}", a.log(), b.log());
        assert_eq!(j["attempts"].as_array().unwrap().len(), 1, "{j}");
        assert_eq!(b.job(id)["status"], "succeeded");
    }
    // Exactly once: each project's audit trail has one deploy per job.
    for (i, p) in ps.iter().enumerate() {
        let history = p.history();
        let want = (0..30).filter(|n| n % 4 == i).count();
        assert_eq!(history.len(), want, "{}: {history:?}", names[i]);
    }

    // The limit held across workers: at no job's start were more than two
    // running, nor one environment twice ([start, end) on the database's
    // clock, which orders claims and finishes across workers).
    let span = |j: &Value| {
        (
            j["started_at"].as_str().unwrap().to_string(),
            j["finished_at"].as_str().unwrap().to_string(),
        )
    };
    let mut most = 0;
    for j in &jobs {
        let (start, _) = span(j);
        let at_once: Vec<&Value> = jobs
            .iter()
            .filter(|k| {
                let (s, e) = span(k);
                s <= start && start < e
            })
            .collect();
        most = most.max(at_once.len());
        assert!(
            at_once.len() <= 2,
            "{} at {start}: {at_once:#?}",
            at_once.len()
        );
        let envs: BTreeSet<&str> = at_once
            .iter()
            .map(|k| k["project"].as_str().unwrap())
            .collect();
        assert_eq!(
            envs.len(),
            at_once.len(),
            "one environment twice: {at_once:#?}"
        );
    }
    let mut db = client(&url);
    let per_worker: Vec<(String, i64)> = db
        .query(
            "SELECT worker, count(*) FROM soar.job_attempts GROUP BY worker ORDER BY worker",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    eprintln!(
        "figure: at most {most} of 30 jobs ran at once (limit 2); jobs per worker: {per_worker:?}"
    );
}

#[test]
fn a_sigkilled_worker_loses_its_job_to_the_other_once() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("lease");
    let hold = format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n");
    let ps = projects(1, &hold);
    let named = [("p0", &ps[0])];
    let home = ps[0].tmp();
    let a = Worker::start(home, &home.join("worker-a"), &url, 2, &named);
    let b = Worker::start(home, &home.join("worker-b"), &url, 2, &named);

    let id = a.submit("p0");
    let started = ps[0].root.join("hook-started");
    assert!(
        wait_until(Duration::from_secs(60), || started.exists()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let mut db = client(&url);
    let first: String = db
        .query_one("SELECT worker FROM soar.jobs WHERE id = $1", &[&id])
        .unwrap()
        .get(0);
    // Kill whichever worker runs it; the other one must finish it.
    let mut workers = vec![a, b];
    let victim = workers
        .iter()
        .position(|w| first.contains(&format!(":{}:", w.child.id())))
        .unwrap_or_else(|| panic!("no worker named {first}"));
    let mut killed = workers.remove(victim);
    let survivor = workers.remove(0);
    let killed_at = Instant::now();
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    std::fs::remove_file(&started).unwrap();
    std::fs::write(ps[0].root.join("hook-release"), "").unwrap();
    finish(&survivor, &id, &first, &url);
    eprintln!(
        "figure: the lost job completed {:.1}s after its worker was SIGKILLed (lease 2s)",
        killed_at.elapsed().as_secs_f64()
    );
}

/// A state database at schema v1 (before the queue) gains the queue's
/// tables when a worker first connects, its state untouched.
#[test]
fn a_v1_state_database_gains_the_queue_tables() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("v1");
    let p = Project::new(&soar_toml("20s", ""), "v1");
    std::fs::write(
        p.tmp().join("home").join(".pgpass"),
        format!("127.0.0.1:*:*:{}:{}\n", Cluster::USER, Cluster::PASSWORD),
    )
    .unwrap();
    p.soar(&["--state", &url, "deploy", "--yes"]).ok();
    // Back to v1, as a soar from before the shared queue left it.
    let mut db = client(&url);
    db.batch_execute(
        "DROP TABLE soar.job_events, soar.job_attempts, soar.jobs;
         UPDATE soar.meta SET version = 1;",
    )
    .unwrap();
    let w = Worker::start(p.tmp(), &p.tmp().join("worker"), &url, 2, &[("app", &p)]);
    let version: i32 = db
        .query_one("SELECT version FROM soar.meta", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        version,
        i32::try_from(soar::state::PG_SCHEMA_VERSION).unwrap()
    );
    let id = w.submit("app");
    let job = w.wait_final(&[id], Duration::from_secs(120))[0].clone();
    assert_eq!(job["status"], "succeeded", "{job:#}\n{}", w.log());
    let history = p.soar(&["--state", &url, "history", "--json"]).ok();
    assert_eq!(history.json_lines().len(), 1, "{}", history.show());
}

/// A cancel asked of one worker stops the job another worker runs (at its
/// next lease renewal).
#[test]
fn a_cancel_reaches_the_worker_running_the_job() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database("cancel");
    let hold = format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n");
    let ps = projects(1, &hold);
    let named = [("p0", &ps[0])];
    let home = ps[0].tmp();
    let a = Worker::start(home, &home.join("worker-a"), &url, 2, &named);
    let b = Worker::start(home, &home.join("worker-b"), &url, 2, &named);
    let id = a.submit("p0");
    let started = ps[0].root.join("hook-started");
    assert!(
        wait_until(Duration::from_secs(60), || started.exists()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let runner: String = client(&url)
        .query_one("SELECT worker FROM soar.jobs WHERE id = $1", &[&id])
        .unwrap()
        .get(0);
    let other = if runner.contains(&format!(":{}:", a.child.id())) {
        &b
    } else {
        &a
    };
    let (status, body) = other.request("POST", &format!("/v1/deploys/{id}/cancel"), None);
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("cancelling")),
        "{body}"
    );
    let job = other.wait_final(&[id], Duration::from_secs(60))[0].clone();
    assert_eq!(job["status"], "cancelled", "{job:#}");
    assert_eq!(job["attempts"].as_array().unwrap().len(), 1, "{job:#}");
    // Let the hook's shell, orphaned by the cancelled deploy, end.
    std::fs::write(ps[0].root.join("hook-release"), "").unwrap();
}

/// The job `id`, lost by worker `first`, ends succeeded on `survivor`:
/// two attempts, the first interrupted, requeued exactly once.
fn finish(survivor: &Worker, id: &str, first: &str, url: &str) {
    let job = survivor.wait_final(&[id.to_string()], Duration::from_secs(120))[0].clone();
    assert_eq!(job["status"], "succeeded", "{job:#}\n{}", survivor.log());
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{job:#}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{job:#}"
    );
    let mut db = client(url);
    let row = db
        .query_one(
            "SELECT requeued, (SELECT array_agg(worker ORDER BY n) FROM soar.job_attempts WHERE job = $1)
             FROM soar.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1, "requeued once");
    let workers: Vec<String> = row.get(1);
    assert_eq!(workers[0], first);
    assert_ne!(workers[1], first, "completed on the other worker");
    let mut events = db
        .query(
            "SELECT data FROM soar.job_events WHERE job = $1 ORDER BY seq",
            &[&id],
        )
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str::<Value>(r.get(0)).unwrap())
        .filter(|e| e["type"] == "interrupted");
    let interrupted = events.next().expect("an interrupted event");
    assert_eq!(interrupted["requeued"], true, "{interrupted}");
    assert!(events.next().is_none());
}

/// Queue throughput with 1, 2 and 4 workers on 100 no-op jobs (converged
/// deploys of 4 projects already deployed), per_provider 4. Run with
/// `--ignored --nocapture`.
#[test]
#[ignore = "a benchmark: prints figures"]
fn bench_queue_throughput_by_workers() {
    let cluster = Cluster::start();
    let ps = projects(4, "");
    for p in &ps {
        p.soar(&["deploy", "--yes"]).ok();
    }
    let names = names(4);
    let named: Vec<(&str, &Project)> = names.iter().map(String::as_str).zip(&ps).collect();
    let home = ps[0].tmp();
    for n in [1usize, 2, 4] {
        let url = cluster.fresh_database("bench");
        let workers: Vec<Worker> = (0..n)
            .map(|i| Worker::start(home, &home.join(format!("bench-{n}-{i}")), &url, 4, &named))
            .collect();
        let statements = cluster.statements();
        let started = Instant::now();
        let ids: Vec<String> = (0..100)
            .map(|i| workers[i % n].submit(&names[i % 4]))
            .collect();
        let jobs = workers[0].wait_final(&ids, Duration::from_secs(900));
        let took = started.elapsed();
        assert!(jobs.iter().all(|j| j["status"] == "succeeded"));
        // Everything the database ran meanwhile: claims, renewals, events,
        // the API's reads (the wait above polls 100 jobs at a time).
        let per_job = (cluster.statements() - statements) / 100;
        eprintln!(
            "figure: {n} worker(s), 100 no-op jobs over 4 environments: {:.1}s, {:.2} jobs/s, {per_job} statements per job",
            took.as_secs_f64(),
            100.0 / took.as_secs_f64()
        );
    }
}
