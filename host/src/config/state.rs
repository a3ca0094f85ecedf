//! `[state]`: where the project's state lives when a team shares it.
//!
//! ```toml
//! [state]
//! url = "postgres://deploy@db.internal:5432/soar?sslmode=verify-full&sslrootcert=ca.pem"
//! project = "shop"        # default: the app's name
//! ```
//!
//! Without `[state] url` the state stays in `.soar/` (SQLite). The URL must
//! not carry a password: like every secret, it never goes in soar.toml
//! (`PGPASSWORD` or `~/.pgpass` hold it). `SOAR_STATE_URL` and `--state`
//! override the URL (see `state::StateLocation`).

use url::Url;

use super::diagnostics::Report;
use super::fields::Section;
use super::identity::check_name;

const KEYS: &[&str] = &["url", "project"];
const EXAMPLE: &str = "url = \"postgres://deploy@db.internal:5432/soar\"";

/// `[state]`, with the project defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    /// A `postgres://` URL without a password, or `None` for `.soar/`.
    pub url: Option<String>,
    /// The name the project's rows are keyed by in a shared database:
    /// checkouts of one project meet on it, other projects stay apart.
    pub project: String,
}

/// Read `[state]`; `app` is the default project name.
pub(crate) fn read(top: &Section<'_>, app: &str, r: &mut Report<'_>) -> StateSettings {
    let mut settings = StateSettings {
        url: None,
        project: app.to_string(),
    };
    let Some(s) = top.section("state", &format!("[state] with {EXAMPLE}"), r) else {
        return settings;
    };
    s.check_keys(KEYS, r);
    if let Some(project) = s.string("project", "project = \"shop\"", r) {
        match check_name(project.get_ref()) {
            Ok(()) => settings.project = project.into_inner(),
            Err(why) => r.error(
                project.span().start,
                format!("`state.project` {why}"),
                Some("for example: project = \"shop\"".to_string()),
            ),
        }
    }
    let Some(url) = s.string("url", EXAMPLE, r) else {
        return settings;
    };
    match Url::parse(url.get_ref().trim()) {
        Ok(parsed) if parsed.password().is_some() => r.secret(
            url.span().start,
            "`state.url` contains a password; secrets never go in soar.toml",
            Some(
                "remove the :password part; soar reads it from PGPASSWORD or ~/.pgpass".to_string(),
            ),
        ),
        Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => {
            settings.url = Some(url.into_inner());
        }
        _ => r.error(
            url.span().start,
            "`state.url` is not a postgres:// URL",
            Some(format!("for example: {EXAMPLE}")),
        ),
    }
    settings
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{init_template, parse};

    fn with_state(table: &str) -> String {
        format!("{}\n[state]\n{table}\n", init_template("shop"))
    }

    #[test]
    fn defaults_to_local_state_keyed_by_the_app() {
        let project = parse(&init_template("shop"), Path::new("soar.toml"), &["local"]).unwrap();
        assert_eq!(project.state.url, None);
        assert_eq!(project.state.project, "shop");
    }

    #[test]
    fn reads_a_url_and_a_project() {
        let text = with_state("url = \"postgres://deploy@db:5432/soar\"\nproject = \"team-shop\"");
        let project = parse(&text, Path::new("soar.toml"), &["local"]).unwrap();
        assert_eq!(
            project.state.url.as_deref(),
            Some("postgres://deploy@db:5432/soar")
        );
        assert_eq!(project.state.project, "team-shop");
    }

    #[test]
    fn a_password_in_the_url_is_a_secret_in_the_file() {
        let text = with_state("url = \"postgres://deploy:hunter2@db:5432/soar\"");
        let err = parse(&text, Path::new("soar.toml"), &["local"]).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("`state.url` contains a password"), "{shown}");
        assert!(shown.contains("PGPASSWORD"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn other_urls_and_bad_projects_are_refused() {
        let err = parse(
            &with_state("url = \"mysql://db/soar\"\nproject = \"Shop\""),
            Path::new("soar.toml"),
            &["local"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`state.url` is not a postgres:// URL"),
            "{err}"
        );
        assert!(err.contains("`state.project`"), "{err}");
    }
}
