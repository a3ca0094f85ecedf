//! Plan ids: a plan the `plan` tool made, kept where a later `deploy` finds
//! it by id — in this process or in another `soar mcp` of the same project
//! (agents restart their servers between turns).
//!
//! A plan is the file `soar plan -o FILE` writes, kept as
//! `<project>/.soar/mcp-plans/<id>.plan` and applied by `soar deploy FILE`'s
//! own code, so "deploy exactly the plan" means what it means on the command
//! line: refused when the environment's state moved on since (stale), or
//! when the build now produces another artifact.
//!
//! The rules, chosen so that an id is a one-time, short-lived approval:
//!
//! - **Unguessable**: 128 random bits in hex. An id is checked to be exactly
//!   that before it names a file, so no id is ever a path.
//! - **Single-use**: the first `deploy` naming an id takes its file (an
//!   atomic rename, so two deploys racing for one id cannot both get it) and
//!   removes it when done, whatever the outcome. A deploy that failed needs
//!   a new plan: what was planned may no longer be what is there.
//! - **Expiring**: an id is good for [`TTL`] after its plan was made; older
//!   plans are refused and swept away.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

/// The directory under the project's `.soar/` that holds the plans.
pub const DIR: &str = "mcp-plans";

/// How long a plan id stays good.
pub const TTL: Duration = Duration::from_secs(60 * 60);

/// Random bytes in an id (printed as twice as many hex digits).
const ID_BYTES: usize = 16;

/// The plans of one project.
#[derive(Debug, Clone)]
pub struct Plans {
    dir: PathBuf,
}

/// A plan taken for one deploy: its file is removed when this is dropped.
#[derive(Debug)]
pub struct Claimed {
    /// The saved plan, for `soar deploy FILE`'s code.
    pub path: PathBuf,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Plans {
    /// The plans kept in `state_dir` (the project's `.soar`).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(DIR),
        }
    }

    /// A new id, and the file its plan is to be saved to. Expired plans are
    /// swept away first.
    pub fn reserve(&self) -> anyhow::Result<(String, PathBuf)> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        self.sweep();
        let id = new_id();
        let path = self.file(&id);
        Ok((id, path))
    }

    /// Take plan `id` for one deploy (see the module documentation).
    pub fn claim(&self, id: &str) -> anyhow::Result<Claimed> {
        check_id(id)?;
        let path = self.file(id);
        let taken = self
            .dir
            .join(format!("{id}.claimed-{}", std::process::id()));
        if let Err(e) = std::fs::rename(&path, &taken) {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::bail!(
                    "no plan {id}: plan ids are single-use and expire after {} minutes, and this one was never made by `plan` in this project, was already deployed, or expired. Call `plan` and deploy the id it returns",
                    TTL.as_secs() / 60
                );
            }
            return Err(anyhow::Error::new(e).context(format!("taking plan {id}")));
        }
        let claimed = Claimed { path: taken };
        let age = age(&claimed.path).unwrap_or_default();
        if age > TTL {
            anyhow::bail!(
                "plan {id} expired: it was made {} minutes ago and plan ids are good for {}. Call `plan` again and deploy the new id",
                age.as_secs() / 60,
                TTL.as_secs() / 60
            );
        }
        Ok(claimed)
    }

    /// `<dir>/<id>.plan`.
    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.plan"))
    }

    /// Remove plans (and claims a crashed deploy left) older than [`TTL`].
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if age(&path).is_some_and(|a| a > TTL) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// How long ago `path` was written.
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}

/// A fresh random id.
fn new_id() -> String {
    use rand::Rng as _;
    let mut bytes = [0u8; ID_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// That `id` has the shape of an id (and so is no path).
fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = id.len() == ID_BYTES * 2
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    anyhow::ensure!(
        ok,
        "{id:?} is not a plan id: plan ids are the {} lowercase hex digits `plan` returned. Call `plan` and deploy the id it returns",
        ID_BYTES * 2
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let plans = Plans::new(dir.path());
        let (id, path) = plans.reserve().unwrap();
        assert_eq!(id.len(), 32);
        std::fs::write(&path, "{}").unwrap();
        let claimed = plans.claim(&id).unwrap();
        assert!(claimed.path.exists() && !path.exists());
        let again = plans.claim(&id).unwrap_err().to_string();
        assert!(again.contains("single-use"), "{again}");
        let taken = claimed.path.clone();
        drop(claimed);
        assert!(!taken.exists(), "the claimed plan is removed when done");
    }

    #[test]
    fn ids_are_random_and_never_paths() {
        let dir = tempfile::tempdir().unwrap();
        let plans = Plans::new(dir.path());
        let (a, _) = plans.reserve().unwrap();
        let (b, _) = plans.reserve().unwrap();
        assert_ne!(a, b);
        for bad in [
            "../../etc/passwd",
            "",
            "ABCDEF0123456789ABCDEF0123456789",
            "0123",
            "0123456789abcdef0123456789abcdeg",
        ] {
            let e = plans.claim(bad).unwrap_err().to_string();
            assert!(e.contains("is not a plan id"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_old_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plans = Plans::new(dir.path());
        let (id, path) = plans.reserve().unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let old = SystemTime::now() - TTL - Duration::from_secs(60);
        file.set_modified(old).unwrap();
        let e = plans.claim(&id).unwrap_err().to_string();
        assert!(e.contains("expired"), "{e}");
        // The sweep of the next reservation removes what is left.
        let (_, fresh) = plans.reserve().unwrap();
        assert_eq!(
            std::fs::read_dir(fresh.parent().unwrap()).unwrap().count(),
            0
        );
    }
}
