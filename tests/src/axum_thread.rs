//! An axum app served on loopback from a thread of its own, for the real HTTP
//! servers and fakes of this crate ([`crate::servers::Server`] and the
//! [`crate::fakes`]).
//!
//! The thread runs its own Tokio runtime, so a server works the same from a
//! sync test and from any flavour of `#[tokio::test]` (a current-thread test
//! runtime blocked in a sync call cannot starve it), and it stops when its
//! [`ServerThread`] is dropped: dropping that runtime also ends every open
//! connection, so no client is left waiting on a dead server.
//!
//! Binding and serving are two steps ([`Bound::loopback`], then
//! [`Bound::serve`]) because some fakes put their own URL in the state their
//! router is built from (an `api_host`, a VM's `url`).

use std::net::TcpListener;
use std::thread::JoinHandle;

use axum::Router;
use tokio::sync::oneshot;

/// A listener on `127.0.0.1:<free port>`, bound now and served later, so its
/// URL is known before the app that will answer on it is built.
pub struct Bound {
    listener: TcpListener,
    url: String,
}

impl Bound {
    /// Bind `127.0.0.1:0`: loopback only, on a port the OS picks, so tests
    /// can run side by side.
    pub fn loopback() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        // Tokio's `TcpListener::from_std` needs a nonblocking socket.
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        Self { listener, url }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serve `app` from a thread named `name`, on a current-thread runtime:
    /// enough for handlers that only await.
    pub fn serve(self, name: &str, app: Router) -> ServerThread {
        self.serve_on(name, tokio::runtime::Builder::new_current_thread(), app)
    }

    /// Serve `app` from a thread named `name`, on a multi-thread runtime with
    /// `workers` workers, for a server whose requests should be handled in
    /// parallel rather than interleaved on one thread (the Cloudflare fake,
    /// which takes concurrent asset uploads).
    pub fn serve_multi_thread(self, name: &str, workers: usize, app: Router) -> ServerThread {
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.worker_threads(workers);
        self.serve_on(name, runtime, app)
    }

    fn serve_on(
        self,
        name: &str,
        mut runtime: tokio::runtime::Builder,
        app: Router,
    ) -> ServerThread {
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = self.listener;
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = runtime
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("{label}: runtime: {e}"));
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .unwrap_or_else(|e| panic!("{label}: tokio listener from std: {e}"));
                    tokio::select! {
                        r = axum::serve(listener, app) => {
                            r.unwrap_or_else(|e| panic!("{label} failed: {e}"));
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime ends every open connection.
            })
            .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
        ServerThread {
            url: self.url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// An axum app served from a thread of its own (see [`Bound::serve`]); stops
/// it and waits for the thread when dropped, so a test's server is gone, its
/// connections closed, before the next test starts.
pub struct ServerThread {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only if the server already ended (and panicked): nothing to stop.
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            // A panic in the server thread was already reported there; do not
            // panic again in a drop.
            let _ = t.join();
        }
    }
}
