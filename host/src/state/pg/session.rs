//! One PostgreSQL connection used from sync code that may be running on a
//! tokio runtime.
//!
//! The store is synchronous (rusqlite's shape), and the `postgres` crate is
//! a synchronous client over `tokio-postgres`: each call drives the
//! connection with its own small runtime's `block_on`, which panics when the
//! calling thread is already inside a runtime, as every `soar` command is
//! (`soar deploy` runs the store from async code). So a call made inside a
//! runtime runs on a scoped helper thread instead ([`off_runtime`]); a call
//! from plain sync code (tests, `spawn_blocking`) runs where it is. The hop
//! costs a thread start (tens of microseconds), small beside one round trip.
//!
//! Closing the connection also goes through `block_on`, so the client is
//! dropped the same way.

use std::sync::{Mutex, PoisonError};

use postgres::Client;

/// A connected client, usable from any thread, async or not.
pub(crate) struct Session {
    client: Mutex<Option<Client>>,
}

impl Session {
    /// Wrap a connected client.
    pub(crate) fn new(client: Client) -> Session {
        Session {
            client: Mutex::new(Some(client)),
        }
    }

    /// Run `f` with the client, off any async runtime.
    pub(crate) fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(client) = guard.as_mut() else {
            anyhow::bail!("the connection to the state database was closed");
        };
        off_runtime(|| f(client))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(client) = client {
            off_runtime(move || drop(client));
        }
    }
}

/// Run `f` here, or on a scoped thread when this thread is inside a tokio
/// runtime (where the `postgres` crate's `block_on` would panic).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
