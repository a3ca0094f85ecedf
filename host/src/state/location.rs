//! Where a project's state lives: `.soar/` on this machine (the default),
//! or a PostgreSQL database a team shares.
//!
//! Chosen, first match wins, by: the `--state URL` flag, the
//! `SOAR_STATE_URL` variable (what CI sets), `[state] url` in soar.toml.
//! Flag over variable over file, as for every other setting: the narrowest
//! scope wins. A URL from soar.toml may not carry a password (the config
//! check refuses one, and so does the connection); one from the flag or the
//! variable may, though `PGPASSWORD` or `~/.pgpass` are better homes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable naming the state database, which CI sets.
pub const STATE_URL_VAR: &str = "SOAR_STATE_URL";

/// The `--state URL` flag of this process, set once by the command line.
static FLAG: OnceLock<String> = OnceLock::new();

/// Where a project's state and its lock live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// `<project>/.soar`: `state.db` (SQLite) and the `lock` file.
    Local {
        /// The `.soar` directory.
        dir: PathBuf,
    },
    /// A PostgreSQL database; rows and lock keyed by `project`.
    Postgres {
        /// `postgres://user@host:5432/db?sslmode=...`.
        url: String,
        /// `[state] project`, by default the app's name: checkouts of one
        /// project meet on it, other projects stay apart.
        project: String,
        /// The URL came from soar.toml, so it must not carry a password.
        from_config: bool,
    },
}

impl StateLocation {
    /// Record the `--state` flag (the command line calls this once, before
    /// any command runs); later calls are ignored.
    pub fn set_flag(url: String) {
        let _ = FLAG.set(url);
    }

    /// Where the state of the project whose `.soar` directory is `dir`
    /// lives, given its `[state] url` and `[state] project`.
    pub fn choose(dir: &Path, configured_url: Option<&str>, project: &str) -> StateLocation {
        let overridden = FLAG.get().cloned().or_else(|| {
            std::env::var(STATE_URL_VAR)
                .ok()
                .filter(|u| !u.trim().is_empty())
        });
        let (url, from_config) = match (overridden, configured_url) {
            (Some(url), _) => (url, false),
            (None, Some(url)) => (url.to_string(), true),
            (None, None) => {
                return StateLocation::Local {
                    dir: dir.to_path_buf(),
                };
            }
        };
        StateLocation::Postgres {
            url,
            project: project.to_string(),
            from_config,
        }
    }

    /// For people: the `.soar` directory, or the URL (without a password)
    /// and the project.
    pub fn describe(&self) -> String {
        match self {
            StateLocation::Local { dir } => dir.display().to_string(),
            StateLocation::Postgres { url, project, .. } => {
                format!("{} (project `{project}`)", super::pg::redact(url))
            }
        }
    }
}
