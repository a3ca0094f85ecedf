//! A tiny static file server on 127.0.0.1 for `soar plugin install` tests:
//! serves byte blobs by path, answers redirects, and can hang up mid-body.
//! Plain std sockets, one thread per connection, `Connection: close`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Route {
    /// `200` with these bytes.
    File(Vec<u8>),
    /// `302` to this `Location`.
    Redirect(String),
    /// `200` announcing `declared` bytes in `Content-Length`, then only
    /// `bytes` are written before the connection is closed.
    Truncated {
        /// The body actually sent, shorter than `declared`.
        bytes: Vec<u8>,
        /// The length claimed in `Content-Length`.
        declared: u64,
    },
}

#[derive(Default)]
struct Shared {
    routes: Mutex<BTreeMap<String, Route>>,
    hits: Mutex<Vec<String>>,
}

/// The server; stops when dropped.
pub struct StaticServer {
    url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StaticServer {
    /// Start on `127.0.0.1:0` with no routes (everything is 404).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("soar-test-static".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name("soar-test-static-conn".into())
                        .spawn(move || serve(conn, &sh));
                }
            })
            .expect("spawning the static server");
        Self {
            url,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serve `route` at `path` (starting with `/`); returns its full URL.
    pub fn add(&self, path: &str, route: Route) -> String {
        lock(&self.shared.routes).insert(path.to_string(), route);
        format!("{}{path}", self.url)
    }

    /// Paths requested so far, in order.
    pub fn hits(&self) -> Vec<String> {
        lock(&self.shared.hits).clone()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Skip the headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    lock(&shared.hits).push(path.clone());
    let route = lock(&shared.routes).get(&path).cloned();
    let mut conn = conn;
    let _ = match route {
        Some(Route::File(bytes)) => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )
        .and_then(|_| conn.write_all(&bytes)),
        Some(Route::Redirect(to)) => write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Some(Route::Truncated { bytes, declared }) => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
        )
        .and_then(|_| conn.write_all(&bytes)),
        None => write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
        ),
    };
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
