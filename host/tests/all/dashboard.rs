//! The dashboard of `soar serve`, through the built binary on 127.0.0.1:
//! over plain HTTP (the login cookie's attributes, the CSRF proof, untrusted
//! text shown as text, scopes, logout and revocation), and in a real
//! headless Chromium driven over WebDriver (log in, see the environment,
//! re-deploy and watch the job's steps reach `succeeded` without a reload,
//! roll back, and without the cookie see nothing but the login). The
//! browser test saves a screenshot of each page under
//! `target/dashboard-screenshots/` for review.
//!
//! The service here prints a `<script>` line when it starts, so its logs
//! (shown on the environment page) carry markup that must stay text; it
//! also prints `said <words>` for a request to `/say/<words>`, so the
//! browser test can make it write a line (markup too) after the page
//! opened, and watch the logs panel follow it live.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::support::browser::{Driver, require_chromium, screenshot};
use crate::support::e2e::{ENV, Project, http_get, soar_toml, version_at, wait_until};
use crate::support::{Listening, listening, soar};

/// What the service prints when it starts: markup from "the service".
const MARKUP: &str = "<script>window.pwned=1</script><b>bold</b>";
/// A deploy waits in its pre_deploy hook until `hook-release` exists, so
/// the test sees its job running before it lets it go.
const GATE: &str = "touch hook-started; while [ ! -f hook-release ]; do sleep 0.05; done";

/// The test service: answers `/` with its version and `/health` with 200,
/// and prints [`MARKUP`] when it starts.
fn app(version: &str) -> String {
    format!(
        r#"import http.server, os, urllib.parse

print({MARKUP:?}, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/say/"):
            print("said " + urllib.parse.unquote(self.path[5:]), flush=True)
        body = (b"ok\n" if self.path == "/health" else b"{version}\n")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#
    )
}

/// A gated project deployed once (`v1`), watched by the server's health
/// monitor every second, and a server config naming it `web`.
fn deployed() -> (Project, PathBuf) {
    let toml = soar_toml(
        "20s",
        &format!("[hooks]\npre_deploy = \"{GATE}\"\ntimeout = \"300s\"\n"),
    )
    .replace("retries = 100 }", "retries = 100, monitor = \"1s\" }");
    assert!(toml.contains("monitor"), "{toml}");
    let p = Project::new(&toml, "v1");
    p.write("app.py", &app("v1"));
    p.write("hook-release", "");
    p.soar(&["deploy", "--yes"]).ok();
    let dir = p.tmp().join("server");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("soar-server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[projects.web]\npath = {:?}\n",
            p.root.display().to_string()
        ),
    )
    .unwrap();
    (p, config)
}

/// A running `soar serve`; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(home: &Path, config: &Path) -> Self {
        let log = config.with_file_name("serve.log");
        let mut serve = soar(home, config.parent().unwrap());
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--server-config"])
            .arg(config);
        let Listening { child, addr, .. } = listening(serve, &log);
        Self { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One HTTP/1.0 request: status, head, body.
    fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        if method == "POST" {
            head += &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        head += "\r\n";
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        Response {
            status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// A job of the API, with a bearer token.
    fn job(&self, token: &str, id: &str) -> Value {
        let auth = format!("Bearer {token}");
        let r = self.http(
            "GET",
            &format!("/v1/deploys/{id}"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// The API's job list.
    fn jobs(&self, token: &str) -> Vec<Value> {
        let auth = format!("Bearer {token}");
        let r = self.http("GET", "/v1/deploys", &[("Authorization", &auth)], "");
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["jobs"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    /// The `Set-Cookie` header setting `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.trim().to_string())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value of header `name`.
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    }

    /// The value of the hidden input `name` in the page.
    fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let len = self.body[start..].find('"')?;
        Some(self.body[start..start + len].to_string())
    }
}

/// `soar serve token create ...`: the token (the last stdout line).
fn create_token(home: &Path, config: &Path, args: &[&str]) -> String {
    let out = soar(home, config.parent().unwrap())
        .args(["serve", "token", "create"])
        .args(args)
        .arg("--server-config")
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// Log in over plain HTTP; the session cookie (`soar_session=...`).
#[track_caller]
fn log_in(server: &Server, token: &str) -> String {
    let page = server.http("GET", "/", &[], "");
    let challenge = page.field("login").expect("the login form's challenge");
    let login_cookie = page.set_cookie("soar_login").expect("the pre-login cookie");
    let login_cookie = login_cookie.split(';').next().unwrap();
    let r = server.http(
        "POST",
        "/ui/login",
        &[("Cookie", login_cookie)],
        &format!("login={challenge}&token={token}"),
    );
    assert_eq!(r.status, 303, "{}\n{}", r.head, r.body);
    let cookie = r.set_cookie("soar_session").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn cookies_csrf_and_untrusted_text_over_http() {
    let (p, config) = deployed();
    let home = p.tmp();
    let deployer = create_token(home, &config, &["--scope", "deploy", "--name", "ops"]);
    let reader = create_token(home, &config, &["--scope", "read", "--name", "viewer"]);
    let server = Server::start(home, &config);

    // Without a cookie: the login form and nothing else.
    let page = server.http("GET", "/", &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"login\""), "{}", page.body);
    assert!(!page.body.contains("web / dev"), "{}", page.body);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let pre = page.set_cookie("soar_login").expect("the pre-login cookie");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    // Other pages send a visitor without a session to the login.
    let r = server.http("GET", &format!("/ui/env/web/{ENV}"), &[], "");
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/"))
    );

    // A login form that did not come from the server is refused; so is a
    // wrong token.
    let challenge = page.field("login").unwrap();
    let r = server.http(
        "POST",
        "/ui/login",
        &[],
        &format!("login={challenge}&token={deployer}"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.set_cookie("soar_session").is_none(), "{}", r.head);
    let r = server.http(
        "POST",
        "/ui/login",
        &[("Cookie", pre.split(';').next().unwrap())],
        &format!("login={challenge}&token=soar_nope_nope"),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("not valid"), "{}", r.body);

    // The session cookie: HttpOnly, SameSite=Strict, whole server, not
    // Secure over plain HTTP; its value is not the token.
    let r = server.http(
        "POST",
        "/ui/login",
        &[("Cookie", pre.split(';').next().unwrap())],
        &format!("login={challenge}&token={deployer}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.set_cookie("soar_session").unwrap();
    eprintln!("Set-Cookie: {set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(&deployer), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    // The overview shows the environment, healthy by the server's own
    // monitor (once it has looked), and never the token.
    let mut page = server.http("GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-env=\"web/dev\""), "{}", page.body);
    let watched = wait_until(Duration::from_secs(60), || {
        page = server.http("GET", "/", &[("Cookie", &cookie)], "");
        page.body.contains("class=\"watched\"")
    });
    assert!(
        watched,
        "the monitor's finding never showed:\n{}\n{}",
        page.body,
        server.log()
    );
    assert!(page.body.contains("badge ok\">healthy"), "{}", page.body);
    assert!(!page.body.contains(&deployer), "the token was rendered");

    // The environment page shows the service's log line as text.
    let env_page = server.http(
        "GET",
        &format!("/ui/env/web/{ENV}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(env_page.status, 200, "{}\n{}", env_page.body, server.log());
    assert!(
        env_page
            .body
            .contains("&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"),
        "the log line is not shown escaped:\n{}",
        env_page.body
    );
    assert!(
        !env_page.body.contains(MARKUP),
        "markup reached the page raw"
    );
    assert!(
        !env_page.body.contains("<script>window"),
        "{}",
        env_page.body
    );
    assert!(!env_page.body.contains(&deployer), "the token was rendered");
    assert!(
        env_page.body.contains("id=\"redeploy\""),
        "{}",
        env_page.body
    );
    let csrf = env_page.field("csrf").expect("the page's CSRF value");

    // A button's POST without the CSRF proof, or with another one, is
    // refused and queues nothing.
    let deploy = format!("/ui/env/web/{ENV}/deploy");
    for body in [String::new(), format!("csrf={}", "0".repeat(csrf.len()))] {
        let r = server.http("POST", &deploy, &[("Cookie", &cookie)], &body);
        assert_eq!(r.status, 403, "{body:?}: {}", r.body);
    }
    let r = server.http("POST", &deploy, &[], &format!("csrf={csrf}"));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        server.jobs(&deployer).is_empty(),
        "a refused POST queued a job"
    );
    // With it, the deploy is queued and the browser sent to its job.
    let r = server.http(
        "POST",
        &deploy,
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").unwrap();
    let id = location
        .strip_prefix("/ui/jobs/")
        .expect("a job page")
        .to_string();
    let job_page = server.http("GET", &location, &[("Cookie", &cookie)], "");
    assert_eq!(job_page.status, 200, "{}", job_page.body);
    assert!(
        job_page.body.contains("id=\"job-status\""),
        "{}",
        job_page.body
    );
    let mut job = Value::Null;
    assert!(
        wait_until(Duration::from_secs(120), || {
            job = server.job(&deployer, &id);
            job["status"] == "succeeded"
        }),
        "{job}\n{}",
        server.log()
    );
    assert_eq!(job["actor"], "ops", "{job}");

    // A read token sees the pages but no buttons, and its POSTs are refused.
    let viewer = log_in(&server, &reader);
    let env_page = server.http(
        "GET",
        &format!("/ui/env/web/{ENV}"),
        &[("Cookie", &viewer)],
        "",
    );
    assert_eq!(env_page.status, 200, "{}", env_page.body);
    assert!(
        !env_page.body.contains("id=\"redeploy\""),
        "{}",
        env_page.body
    );
    let their_csrf = env_page.field("csrf").unwrap();
    assert_ne!(their_csrf, csrf, "sessions share a CSRF value");
    let r = server.http(
        "POST",
        &deploy,
        &[("Cookie", &viewer)],
        &format!("csrf={their_csrf}"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("scope"), "{}", r.body);

    // Revoking the token ends its session at the next request.
    let list = soar(home, config.parent().unwrap())
        .args(["serve", "token", "list", "--json", "--server-config"])
        .arg(&config)
        .output()
        .unwrap();
    let viewer_id = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = soar(home, config.parent().unwrap())
        .args(["serve", "token", "revoke", &viewer_id, "--server-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{revoked:?}");
    let page = server.http("GET", "/", &[("Cookie", &viewer)], "");
    assert!(page.body.contains("id=\"login\""), "{}", page.body);

    // Logging out needs the proof too, then ends the session.
    let r = server.http("POST", "/ui/logout", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = server.http(
        "POST",
        "/ui/logout",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.set_cookie("soar_session").unwrap().contains("Max-Age=0"));
    let page = server.http("GET", "/", &[("Cookie", &cookie)], "");
    assert!(page.body.contains("id=\"login\""), "{}", page.body);
    assert!(!page.body.contains("data-env="), "{}", page.body);
}

/// Poll (up to 120 s) until `check` holds in the browser.
async fn until(client: &Client, what: &str, mut check: impl AsyncFnMut(&Client) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check(client).await {
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}:\n{}",
            client.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the element `css`, or empty when there is none.
async fn text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Click the element `css` (panics when there is none).
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
        .click()
        .await
        .unwrap();
}

/// Press a button that asks for confirmation, and confirm.
async fn press_confirmed(client: &Client, css: &str) {
    click(client, css).await;
    client
        .accept_alert()
        .await
        .expect("the confirmation dialog");
}

/// On a job page: the job's status becomes `want` without the page being
/// reloaded (a marker set on the page's `window` survives), and every step
/// is ticked. Returns how long it took from `started`.
async fn watch_job(client: &Client, want: &str) -> Duration {
    let started = Instant::now();
    client
        .execute("window.soarTestMarker = 42;", vec![])
        .await
        .unwrap();
    until(client, &format!("the job {want}"), async |c| {
        text(c, "#job-status").await == want
    })
    .await;
    let marker = client
        .execute("return window.soarTestMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, 42, "the page was reloaded");
    let steps = client.find_all(Locator::Css("ol.steps li")).await.unwrap();
    for step in steps {
        let name = step.attr("data-step").await.unwrap().unwrap_or_default();
        let class = step.attr("class").await.unwrap().unwrap_or_default();
        assert!(class.contains("done"), "step {name} not done after {want}");
    }
    started.elapsed()
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, told step by step")]
fn in_a_real_browser() {
    let Some(chromium) = require_chromium() else {
        return;
    };
    let (p, config) = deployed();
    let home = p.tmp();
    let token = create_token(home, &config, &["--scope", "deploy", "--name", "browser"]);
    let server = Server::start(home, &config);
    let driver = Driver::start(&chromium);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let client = driver.session(1280, 900).await;
        eprintln!("figure: browser session in {:?}", started.elapsed());

        // The login page, and nothing else.
        client.goto(&server.url("/")).await.unwrap();
        client
            .wait()
            .for_element(Locator::Id("login"))
            .await
            .unwrap();
        assert!(
            client
                .find_all(Locator::Css("[data-env]"))
                .await
                .unwrap()
                .is_empty()
        );
        screenshot(&client, "01-login").await;

        // Log in: the overview shows the environment, healthy, with its release.
        let t = Instant::now();
        client
            .find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys(&token)
            .await
            .unwrap();
        click(&client, "#login button").await;
        let card = client
            .wait()
            .for_element(Locator::Css("[data-env=\"web/dev\"]"))
            .await
            .unwrap();
        eprintln!("figure: login -> overview in {:?}", t.elapsed());
        let card_text = card.text().await.unwrap();
        assert!(card_text.contains("healthy"), "{card_text}");
        assert!(card_text.contains("Release"), "{card_text}");
        assert!(
            !client.source().await.unwrap().contains(&token),
            "the token was rendered"
        );
        screenshot(&client, "02-overview").await;
        client.set_window_size(390, 844).await.unwrap();
        screenshot(&client, "02-overview-phone").await;
        client.set_window_size(1280, 900).await.unwrap();

        // The environment page: its log line shows as text, not as markup.
        let t = Instant::now();
        card.find(Locator::Css("h3 a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .wait()
            .for_element(Locator::Id("redeploy"))
            .await
            .unwrap();
        eprintln!("figure: environment page in {:?}", t.elapsed());
        let logs = text(&client, "pre.logs").await;
        assert!(logs.contains(MARKUP), "{logs}");
        let pwned = client
            .execute("return window.pwned === 1;", vec![])
            .await
            .unwrap();
        assert_eq!(pwned, false, "the service's log line ran as a script");
        screenshot(&client, "03-environment").await;
        follow_logs_live(&client, &p).await;

        // Re-deploy v2: the job page follows it live. The deploy waits in
        // its hook until the test has seen the job running on the page.
        p.write("app.py", &app("v2"));
        std::fs::remove_file(p.root.join("hook-release")).unwrap();
        std::fs::remove_file(p.root.join("hook-started")).ok();
        press_confirmed(&client, "#redeploy").await;
        client.wait().for_element(Locator::Id("job")).await.unwrap();
        let status = text(&client, "#job-status").await;
        assert!(status == "queued" || status == "running", "{status}");
        let marker_set = watch_job_gated(&client, &p).await;
        eprintln!("figure: re-deploy: gate released -> succeeded on the page in {marker_set:?}");
        let url = p.url();
        assert_eq!(version_at(&url), "v2");
        let events = client.find_all(Locator::Css("#events li")).await.unwrap();
        assert!(events.len() >= 3, "{} events", events.len());
        // Once it ended, the page also shows its audit record's phases.
        until(&client, "the job's phases", async |c| {
            text(c, "#phases").await.contains("verify-health")
        })
        .await;
        screenshot(&client, "04-job-redeploy").await;

        // Roll back to v1 from the environment page.
        client
            .goto(&server.url(&format!("/ui/env/web/{ENV}")))
            .await
            .unwrap();
        client
            .wait()
            .for_element(Locator::Id("rollback"))
            .await
            .unwrap();
        press_confirmed(&client, "#rollback").await;
        client.wait().for_element(Locator::Id("job")).await.unwrap();
        let took = watch_job(&client, "succeeded").await;
        eprintln!("figure: rollback -> succeeded on the page in {took:?}");
        assert_eq!(version_at(&url), "v1");
        screenshot(&client, "05-job-rollback").await;

        // Without the cookie: nothing but the login, on every page.
        client.delete_all_cookies().await.unwrap();
        for path in ["/".to_string(), format!("/ui/env/web/{ENV}")] {
            client.goto(&server.url(&path)).await.unwrap();
            client
                .wait()
                .for_element(Locator::Id("login"))
                .await
                .unwrap();
            let source = client.source().await.unwrap();
            assert!(!source.contains("data-env"), "{path}: {source}");
            assert!(!source.contains("Recent jobs"), "{path}: {source}");
        }
        screenshot(&client, "06-logged-out").await;
        client.close().await.unwrap();
    });
    drop(server);
}

/// The logs panel of the environment page open in `client`: it follows
/// the service live (a line the service writes after the page opened, and
/// after the stream's backlog arrived, shows without a reload, as text
/// even when it is markup); closing the panel stops the server's
/// `soar logs -f`.
async fn follow_logs_live(client: &Client, p: &Project) {
    let received = async |c: &Client| {
        c.execute(
            "return Number(document.getElementById('logs-panel').dataset.received || 0);",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(0)
    };
    let t = Instant::now();
    until(client, "the logs' backlog from the stream", async |c| {
        received(c).await >= 1
    })
    .await;
    eprintln!(
        "figure: page opened -> log stream's backlog in {:?}",
        t.elapsed()
    );
    assert_eq!(text(client, "#logs-state").await, "live");
    let followers = logs_followers(p);
    assert_eq!(
        followers.len(),
        1,
        "one `soar logs -f` for the page: {followers:#?}"
    );
    client
        .execute("window.soarTestMarker = 7;", vec![])
        .await
        .unwrap();

    // A line written now, with markup in it.
    let said = format!("<img src=x onerror=window.pwned=2>-{}", std::process::id());
    let path: String = url_path(&said);
    let t = Instant::now();
    assert_eq!(http_get(&p.url(), &format!("/say/{path}")).unwrap().0, 200);
    let want = format!("said {said}");
    until(
        client,
        "the line written after the page opened",
        async |c| text(c, "pre.logs").await.contains(&want),
    )
    .await;
    eprintln!(
        "figure: line written -> shown on the page in {:?}",
        t.elapsed()
    );
    let marker = client
        .execute("return window.soarTestMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, 7, "the page was reloaded");
    let pwned = client
        .execute("return window.pwned === 2;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, false, "a live log line ran as markup");
    assert!(
        client
            .find_all(Locator::Css("pre.logs img"))
            .await
            .unwrap()
            .is_empty(),
        "a live log line became an element"
    );
    client
        .execute("document.getElementById('logs').scrollIntoView();", vec![])
        .await
        .unwrap();
    screenshot(client, "03-environment-live-logs").await;

    // Closing the panel stops following, here and on the server.
    click(client, "#logs-panel > summary").await;
    until(client, "the logs paused", async |c| {
        text(c, "#logs-state").await == "paused"
    })
    .await;
    let gone = wait_until(Duration::from_secs(30), || logs_followers(p).is_empty());
    assert!(
        gone,
        "the server still follows the logs after the panel closed: {:#?}",
        logs_followers(p)
    );
    // Opening it again follows again.
    click(client, "#logs-panel > summary").await;
    until(client, "the logs live again", async |c| {
        text(c, "#logs-state").await == "live"
    })
    .await;
}

/// `soar logs -f` processes following project `p`.
fn logs_followers(p: &Project) -> Vec<String> {
    let config = p.root.join("soar.toml").display().to_string();
    soar_tests::sshd::processes()
        .into_iter()
        .filter(|q| q.cmdline.contains(&config) && q.cmdline.contains(" logs -f"))
        .map(|q| format!("{} {}", q.pid, q.cmdline))
        .collect()
}

/// `s` as one percent-encoded URL path segment.
fn url_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// [`watch_job`] for a deploy held by the hook gate: once the page shows
/// the job waiting, mark the page, release the gate, and watch it end.
async fn watch_job_gated(client: &Client, p: &Project) -> Duration {
    let started = wait_until(Duration::from_secs(60), || {
        p.root.join("hook-started").exists()
    });
    assert!(started, "the deploy never reached its hook");
    client
        .execute("window.soarTestMarker = 42;", vec![])
        .await
        .unwrap();
    let status = text(client, "#job-status").await;
    assert_ne!(status, "succeeded", "the job ended before the gate opened");
    p.write("hook-release", "");
    watch_job(client, "succeeded").await
}

/// `GET /v1/services/web/logs?follow=1` (the API route the dashboard's
/// panel shares its stream with): Server-Sent Events, `start` then the
/// backlog then a line written after the stream started, each `line`
/// event's data `{host, line}`; a client that goes away stops the
/// server's `soar logs -f`.
#[test]
fn the_api_follows_logs_over_sse() {
    let (p, config) = deployed();
    let home = p.tmp();
    let reader = create_token(home, &config, &["--scope", "read"]);
    let server = Server::start(home, &config);
    let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /v1/services/web/logs?follow=1&lines=5 HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {reader}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut lines = BufReader::new(s.try_clone().unwrap()).lines();
    let mut next = |what: &str| {
        lines
            .next()
            .unwrap_or_else(|| panic!("the stream ended before {what}:\n{}", server.log()))
            .unwrap_or_else(|e| panic!("no {what} within 30 s: {e}\n{}", server.log()))
    };
    let status = next("the status line");
    assert!(status.contains(" 200 "), "{status}");
    let mut head = Vec::new();
    loop {
        let l = next("the head");
        if l.is_empty() {
            break;
        }
        head.push(l.to_ascii_lowercase());
    }
    assert!(
        head.iter()
            .any(|h| h.starts_with("content-type: text/event-stream")),
        "{head:?}"
    );
    // `start`, then the backlog: the start line with its markup, as data.
    let mut data_of = |event: &str, wanted: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut current = String::new();
        loop {
            assert!(Instant::now() < deadline, "no {event} event");
            let l = match lines.next() {
                Some(Ok(l)) => l,
                Some(Err(e)) => panic!("reading the stream: {e}"),
                None => panic!("the stream ended before a {event} event"),
            };
            if let Some(e) = l.strip_prefix("event: ") {
                current = e.to_string();
            } else if let Some(d) = l.strip_prefix("data: ")
                && current == event
            {
                let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
                if wanted(&v) {
                    return v;
                }
            }
        }
    };
    data_of("start", &|_| true);
    let first = data_of("line", &|_| true);
    assert_eq!(first["host"], "local", "{first}");
    assert!(first["line"].is_string(), "{first}");
    data_of("line", &|v| v["line"] == MARKUP);
    let said = format!("over-the-api-{}", std::process::id());
    assert_eq!(http_get(&p.url(), &format!("/say/{said}")).unwrap().0, 200);
    let got = data_of("line", &|v| v["line"] == format!("said {said}").as_str());
    assert_eq!(got["host"], "local", "{got}");
    assert_eq!(logs_followers(&p).len(), 1, "{:#?}", logs_followers(&p));

    // The client goes away: the server stops following.
    s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(s);
    let gone = wait_until(Duration::from_secs(30), || logs_followers(&p).is_empty());
    assert!(gone, "still following: {:#?}", logs_followers(&p));
}

/// serve.rs's test certificate and key for 127.0.0.1 (self-signed, valid
/// until 2126). Test-only.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBrjCCAVSgAwIBAgIUXiIIxh2rZy6qq8T3+tG4tSI2bgkwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPc29hci1zZXJ2ZS10ZXN0MCAXDTI2MTIwNzAwMzY0OFoYDzIx\nMjYxMTEzMDAzNjQ4WjAaMRgwFgYDVQQDDA9zb2FyLXNlcnZlLXRlc3QwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9fhIE+Q06\n0d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEro3YwdDAdBgNVHQ4E\nFgQU/a+3JWqM/Lo9ND1locXnEPJHE6YwHwYDVR0jBBgwFoAU/a+3JWqM/Lo9ND1l\nocXnEPJHE6YwDwYDVR0RBAgwBocEfwAAATAMBgNVHRMBAf8EAjAAMBMGA1UdJQQM\nMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gAMEUCIQDrOReIx0VaaBeSnxaB1sYI\nIlm7vM771w752llLPhKDcAIgBNRvHNrlPA20cnZiGaZRypRSHApdUSJb0o+Ch0pS\nV5U=\n-----END CERTIFICATE-----\n";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxHaj2L3Cy1j/rU7D\nZIhZmabaq0dW0R7JTdT1yogvMCuhRANCAASrPf2wzzM7OMGOhDIPQMUTfQu81mR9\nfhIE+Q060d0a97S2yHPNPpNH9qm2M7UvUPg5d/wzv04L7yVRSc8M1pEr\n-----END PRIVATE KEY-----\n";

#[test]
fn over_tls_the_cookies_are_secure() {
    let (p, config) = deployed();
    let home = p.tmp();
    let dir = config.parent().unwrap();
    std::fs::write(dir.join("server.crt"), TEST_CERT).unwrap();
    std::fs::write(dir.join("server.key"), TEST_KEY).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n";
    std::fs::write(&config, text).unwrap();
    let token = create_token(home, &config, &["--scope", "read"]);
    let server = Server::start(home, &config);
    let base = format!("https://{}", server.addr);
    soar::tls::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(TEST_CERT.as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookie_of = |r: &reqwest::Response, name: &str| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with(&format!("{name}=")))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no {name} cookie: {:?}", r.headers()))
        };
        let login = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(login.status(), 200);
        let pre = cookie_of(&login, "soar_login");
        assert!(pre.ends_with("; Secure"), "{pre}");
        let page = login.text().await.unwrap();
        let marker = "name=\"login\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        let challenge = &page[start..start + page[start..].find('"').unwrap()];
        let r = client
            .post(format!("{base}/ui/login"))
            .header("Cookie", pre.split(';').next().unwrap())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("login={challenge}&token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let session = cookie_of(&r, "soar_session");
        eprintln!("Set-Cookie over TLS: {session}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(
                session.contains(attribute),
                "{attribute} missing: {session}"
            );
        }
    });
}
