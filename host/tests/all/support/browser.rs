//! A real browser for tests: headless Chromium driven over WebDriver by
//! `chromedriver` (Debian's `chromium` and `chromium-driver`), through the
//! `fantoccini` client.
//!
//! [`require_chromium`] finds both programs; without them a test is skipped
//! with a loud message, except under `CI=true`, where it fails (`.ci/run`
//! installs them). [`Driver`] runs `chromedriver` on a free loopback port
//! and stops it on drop; [`Driver::session`] opens a headless browser with
//! its own throwaway profile.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// The Debian packages that provide the two programs.
const PACKAGES: &str = "chromium chromium-driver";

/// The browser and its WebDriver server.
pub struct Chromium {
    /// The browser binary.
    pub browser: PathBuf,
    /// `chromedriver`.
    pub driver: PathBuf,
}

/// The first of `names` found on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (after saying so loudly) when they
/// are missing and `CI` is not `true`; under `CI=true` a missing one fails
/// the test.
pub fn require_chromium() -> Option<Chromium> {
    let browser = which(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = which(&["chromedriver"]);
    match (browser, driver) {
        (Some(browser), Some(driver)) => Some(Chromium { browser, driver }),
        (browser, _) => {
            let missing = if browser.is_none() {
                "chromium"
            } else {
                "chromedriver"
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "browser tests need {missing} on PATH (CI=true, so this is not skipped): apt-get install -y {PACKAGES}"
                );
            }
            // Straight to stderr: the harness captures `eprintln!` of
            // passing tests, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!\n!!! SKIPPED (no {missing} on PATH): apt-get install -y {PACKAGES}; with CI=true this fails instead\n!!!!!!!!"
            );
            None
        }
    }
}

/// A running `chromedriver`; killed on drop.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    browser: PathBuf,
    log: PathBuf,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Start `chromedriver` on a free loopback port, logging to a file in
    /// a temporary directory; returns once it accepts connections.
    pub fn start(chromium: &Chromium) -> Self {
        let profiles = tempfile::Builder::new()
            .prefix("soar-browser-")
            .tempdir()
            .expect("a temporary directory for the browser");
        let port = soar_tests::sshd::free_port().expect("a free port");
        let log = profiles.path().join("chromedriver.log");
        let child = Command::new(&chromium.driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.driver.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut driver = Self {
            child,
            addr,
            browser: chromium.browser.clone(),
            log,
            profiles,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", driver.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {addr} within 30 s:\n{}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// What chromedriver logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new headless browser session with a `width`×`height` window and
    /// a profile of its own (no cookies from any other session).
    pub async fn session(&self, width: u32, height: u32) -> Client {
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let profile = self.profiles.path().join(format!(
            "profile-{}",
            SESSIONS.fetch_add(1, Ordering::SeqCst)
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": self.browser,
                "args": [
                    "--headless=new",
                    // Root in a container: Chromium's sandbox needs user namespaces.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{}", self.addr))
            .await
            .unwrap_or_else(|e| panic!("a browser session: {e}\n{}", self.log()))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go for people to review: `target/dashboard-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
    dir
}

/// Save the browser's current page as `<screenshot_dir>/<name>.png`.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("writing the screenshot");
    eprintln!("screenshot: {}", path.display());
    path
}
