//! The announcement lease on PostgreSQL: a session-level advisory lock, of
//! its own class, on the project's lock key, held on a connection of its
//! own for as long as the monitor runs.
//!
//! Only tried, never waited for: a monitor that does not get it goes on
//! checking and tries again at its next transition. The server frees it
//! when the holder's session ends (exit, SIGKILL, a cut network), so a
//! standby monitor takes over at its next transition.

use super::schema;
use super::{Session, Target};

/// Advisory lock class of announcement leases, next to the project lock's
/// and the queue's claim locks'.
const ANNOUNCE_CLASS: i32 = schema::LOCK_CLASS + 2;

/// A held lease: dropping it closes its session, which frees it.
pub(crate) struct Held {
    session: Session,
}

impl Held {
    /// Whether the session holding the lease still answers. A session the
    /// network cut off may already have lost the lock on the server, so a
    /// lease that cannot say so is given up, not trusted.
    pub(crate) fn alive(&self) -> bool {
        self.session
            .run(|c| {
                c.simple_query("SELECT 1")?;
                Ok(())
            })
            .is_ok()
    }
}

/// Take `project`'s announcement lease in the database at `url` if nobody
/// holds it; `None` when another session does.
pub(crate) fn try_take(
    url: &str,
    password_allowed: bool,
    project: &str,
) -> anyhow::Result<Option<Held>> {
    let target = Target::parse(url, password_allowed)?;
    let session = Session::new(target.connect()?);
    let shown = target.shown().to_string();
    let taken = session.run(|c| {
        schema::migrate(c, &shown)?;
        let key = super::lock::lock_key(c, project)?;
        Ok(c.query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&ANNOUNCE_CLASS, &key],
        )?
        .get::<_, bool>(0))
    })?;
    Ok(taken.then_some(Held { session }))
}
