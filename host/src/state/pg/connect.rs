//! Connecting to the state database: the URL, the password, TLS, and one
//! clear line when it fails.
//!
//! The URL is libpq's (`postgres://user@host:5432/db?sslmode=require`). The
//! password never comes from soar.toml (its check refuses one there): it is
//! taken from the URL only when the URL came from `SOAR_STATE_URL` or
//! `--state`, else from `PGPASSWORD`, else from the password file
//! (`PGPASSFILE`, default `~/.pgpass`), as `psql` does.
//!
//! `sslmode`: `disable` (plain TCP), `prefer` (the default: TLS when the
//! server offers it) and `require` encrypt without checking who answers,
//! as libpq's do; `verify-full` checks the server's certificate against the
//! CA file `sslrootcert` names, and its host name. `verify-ca` is refused:
//! rustls always checks the name, and a silently stricter mode would be a
//! surprise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use postgres::config::{Host, SslMode};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::session::off_runtime;
use super::tls;

/// How long a connection attempt may take before it is reported.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a state URL asks for, parsed.
pub(crate) struct Target {
    /// The client's configuration, password included once found.
    config: Config,
    /// The URL without any password, for messages.
    shown: String,
    /// `sslmode`, as written (or `prefer`).
    ssl: Ssl,
}

/// The supported `sslmode` values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ssl {
    Disable,
    Prefer,
    Require,
    VerifyFull { root_cert: PathBuf },
}

/// The URL with any password removed, for messages and `soar lock status`:
/// the one in its user part and a `password=` query parameter (libpq and
/// tokio-postgres read both).
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            if has_query_password(&u) {
                let kept: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| k != "password")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    u.set_query(None);
                } else {
                    u.query_pairs_mut().clear().extend_pairs(kept);
                }
            }
            u.to_string()
        }
        Err(_) => "the state URL".to_string(),
    }
}

fn has_query_password(u: &url::Url) -> bool {
    u.query_pairs().any(|(k, _)| k == "password")
}

impl Target {
    /// Parse `url`; `password_allowed` is false for a URL from soar.toml.
    pub(crate) fn parse(url: &str, password_allowed: bool) -> anyhow::Result<Target> {
        let shown = redact(url);
        let mut parsed = url::Url::parse(url)
            .with_context(|| format!("the state URL `{shown}` is not a URL"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            bail!(
                "the state URL `{shown}` is not a postgres:// URL (write postgres://user@host:5432/database)"
            );
        }
        if (parsed.password().is_some() || has_query_password(&parsed)) && !password_allowed {
            bail!(
                "the state URL `{shown}` carries a password; secrets never go in soar.toml: use PGPASSWORD or ~/.pgpass"
            );
        }
        let mut mode = "prefer".to_string();
        let mut root_cert = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "sslmode" => {
                    mode = v.into_owned();
                    None
                }
                "sslrootcert" => {
                    root_cert = Some(PathBuf::from(v.as_ref()));
                    None
                }
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let ssl = match (mode.as_str(), root_cert) {
            ("disable", _) => Ssl::Disable,
            ("prefer", _) => Ssl::Prefer,
            ("require", _) => Ssl::Require,
            ("verify-full", Some(root_cert)) => Ssl::VerifyFull { root_cert },
            ("verify-full", None) => bail!(
                "the state URL `{shown}` asks for sslmode=verify-full without sslrootcert=PATH (the CA certificate file that signed the server's certificate)"
            ),
            ("verify-ca", _) => bail!(
                "the state URL `{shown}`: sslmode=verify-ca is not supported; use verify-full (which also checks the host name)"
            ),
            (other, _) => bail!(
                "the state URL `{shown}` has sslmode={other}; soar knows disable, prefer, require and verify-full"
            ),
        };
        let mut config: Config = parsed
            .as_str()
            .parse()
            .map_err(|e| anyhow::anyhow!("the state URL `{shown}` is not usable: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("soar");
        }
        config.ssl_mode(match ssl {
            Ssl::Disable => SslMode::Disable,
            Ssl::Prefer => SslMode::Prefer,
            Ssl::Require | Ssl::VerifyFull { .. } => SslMode::Require,
        });
        if config.get_password().is_none()
            && let Some(password) = password_for(&config)
        {
            config.password(password);
        }
        Ok(Target { config, shown, ssl })
    }

    /// Open a connection; failures are one line naming the server and
    /// what to do.
    pub(crate) fn connect(&self) -> anyhow::Result<Client> {
        let result = match &self.ssl {
            Ssl::Disable => off_runtime(|| self.config.connect(NoTls)),
            Ssl::Prefer | Ssl::Require => {
                let tls = tls::unverified();
                off_runtime(|| self.config.connect(tls))
            }
            Ssl::VerifyFull { root_cert } => {
                let tls = tls::verified(root_cert)
                    .map_err(|e| anyhow::anyhow!("the state database {}: {e:#}", self.shown))?;
                off_runtime(|| self.config.connect(tls))
            }
        };
        result.map_err(|e| anyhow::anyhow!(self.explain(&e)))
    }

    /// The URL without a password.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// One line for a failed connection. Text the server sent (its error
    /// message, the names in its certificate) is escaped as one line: the
    /// server may be an impostor, and its words must not forge output.
    fn explain(&self, e: &postgres::Error) -> String {
        let at = &self.shown;
        let user = self.config.get_user().unwrap_or("(none)");
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            let message = crate::terminal::line(db.message());
            return if *code == SqlState::INVALID_PASSWORD {
                format!(
                    "the state database {at} refused the password of user `{user}`: set PGPASSWORD or a ~/.pgpass line for it"
                )
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && self.ssl == Ssl::Disable
                && db.message().starts_with("no pg_hba.conf entry")
                && db.message().ends_with("no encryption")
            {
                format!(
                    "the state database {at} accepts user `{user}` only over TLS (pg_hba.conf has no entry for an unencrypted connection from here): use sslmode=verify-full&sslrootcert=CA-FILE (or sslmode=require)"
                )
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                format!(
                    "the state database {at} refused user `{user}`: {message} (check pg_hba.conf, the user name, or sslmode)"
                )
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                format!(
                    "the state database {at} does not exist: {message} (create it with createdb, or fix the URL)"
                )
            } else {
                format!("cannot connect to the state database {at}: {message}")
            };
        }
        if let Some(tls) = rustls_error(e) {
            return self.explain_tls(tls);
        }
        let text = e.to_string();
        let io = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        // tokio-postgres says what failed; its source says why.
        let detail = std::error::Error::source(e)
            .map(|s| format!("{text}: {s}"))
            .unwrap_or_else(|| text.clone());
        let detail = crate::terminal::line(&detail);
        let mode = match self.ssl {
            Ssl::Disable => "disable",
            Ssl::Prefer => "prefer",
            Ssl::Require => "require",
            Ssl::VerifyFull { .. } => "verify-full",
        };
        if io == Some(std::io::ErrorKind::ConnectionRefused) {
            format!(
                "cannot reach the state database {at}: connection refused (is PostgreSQL running and listening there?)"
            )
        } else if text.contains("password missing") {
            format!(
                "the state database {at} wants a password for user `{user}`: set PGPASSWORD or add a ~/.pgpass line"
            )
        } else if detail.contains("server does not support TLS") {
            format!(
                "the state database {at} does not offer TLS, and sslmode={mode} requires it: turn ssl on in the server (ssl = on, with a certificate), or use sslmode=disable on a network you trust"
            )
        } else if text.contains("TLS") {
            format!(
                "cannot connect to the state database {at}: {detail} (check sslmode and the server's TLS setup)"
            )
        } else {
            format!("cannot connect to the state database {at}: {detail}")
        }
    }

    /// One line for a TLS handshake rustls refused: what is wrong with the
    /// server's certificate, and what to do about it.
    fn explain_tls(&self, error: &rustls::Error) -> String {
        use rustls::CertificateError as Cert;
        let at = &self.shown;
        let root = match &self.ssl {
            Ssl::VerifyFull { root_cert } => root_cert.display().to_string(),
            _ => "(none)".to_string(),
        };
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "(no host)".to_string(),
        };
        let rustls::Error::InvalidCertificate(cert) = error else {
            return format!(
                "cannot connect to the state database {at}: the TLS handshake failed: {} (check sslmode and the server's TLS setup)",
                crate::terminal::line(&error.to_string())
            );
        };
        match cert {
            Cert::UnknownIssuer | Cert::BadSignature => format!(
                "the state database {at} presented a certificate not signed by the CA in sslrootcert {root}: point sslrootcert at the CA certificate that issued the server's (ask whoever runs it); if it already does, this server is not the one you meant"
            ),
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                let names = match cert {
                    Cert::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                        format!(" (it names {})", certificate_names(presented))
                    }
                    _ => String::new(),
                };
                format!(
                    "the state database {at} presented a certificate that is not valid for the host `{host}`{names}: connect with a host name the certificate lists, or have the certificate reissued for `{host}`"
                )
            }
            Cert::Expired | Cert::ExpiredContext { .. } => format!(
                "the state database {at} presented an expired certificate: have it renewed (or check this machine's clock)"
            ),
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => format!(
                "the state database {at} presented a certificate that is not valid yet: check this machine's clock (or the certificate's start date)"
            ),
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => format!(
                "the state database {at} presented a certificate that is not for TLS servers (its extendedKeyUsage lacks serverAuth): have it reissued"
            ),
            other => format!(
                "the state database {at} presented a certificate rustls refused: {} (check the server's certificate and sslrootcert {root})",
                crate::terminal::line(&other.to_string())
            ),
        }
    }
}

/// The rustls error behind a failed handshake, if that is what failed:
/// tokio-postgres wraps tokio-rustls's `io::Error`, which wraps it (and
/// `io::Error::source` skips the wrapped error, so it is asked directly).
fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut next = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// The names a certificate carries, as webpki lists them
/// (`DnsName("db.example.com")`, `IpAddress(10.0.0.5)`), shown plainly:
/// at most four, each escaped and cut short (they come from the server).
fn certificate_names(presented: &[String]) -> String {
    let mut shown: Vec<String> = presented
        .iter()
        .take(4)
        .map(|name| {
            let plain = name
                .strip_prefix("DnsName(\"")
                .and_then(|n| n.strip_suffix("\")"))
                .or_else(|| {
                    name.strip_prefix("IpAddress(")
                        .and_then(|n| n.strip_suffix(')'))
                })
                .unwrap_or(name);
            crate::terminal::clip(plain, 80)
        })
        .collect();
    if presented.len() > 4 {
        shown.push(format!("{} more", presented.len() - 4));
    }
    shown.join(", ")
}

/// `PGPASSWORD`, else the first matching line of the password file.
fn password_for(config: &Config) -> Option<String> {
    if let Ok(password) = std::env::var("PGPASSWORD")
        && !password.is_empty()
    {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or_default();
    let user = config.get_user().unwrap_or_default();
    pgpass_lookup(&text, [&host, &port, db, user])
}

/// The password of the first `host:port:database:user:password` line of
/// a `.pgpass` file whose fields match (`*` matches anything; `\:` and `\\`
/// escape), as libpq reads it.
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(want)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// Split one `.pgpass` line on unescaped colons, unescaping.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_field_by_field_with_wildcards_and_escapes() {
        let file = "# comment\n\
                    db.example.com:5432:other:alice:nope\n\
                    *:5432:state:alice:pa\\:ss\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(file, ["127.0.0.1", "5432", "state", "alice"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(file, ["127.0.0.1", "6543", "state", "bob"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("", ["h", "1", "d", "u"]), None);
    }

    /// The names of a certificate come from the server, which may be an
    /// impostor: shown plainly, escaped, cut short, and at most four.
    #[test]
    fn certificate_names_are_plain_escaped_and_few() {
        let names =
            |v: &[&str]| certificate_names(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            names(&["IpAddress(127.0.0.1)", "DnsName(\"db.internal\")"]),
            "127.0.0.1, db.internal"
        );
        let hostile = names(&["DnsName(\"evil\u{1b}[2J\nsecond line\")"]);
        assert!(
            !hostile.contains('\u{1b}') && !hostile.contains('\n'),
            "{hostile}"
        );
        let long = "x".repeat(500);
        assert!(names(&[&long]).chars().count() <= 80);
        assert_eq!(names(&["a", "b", "c", "d", "e", "f"]), "a, b, c, d, 2 more");
    }

    #[test]
    fn urls_are_parsed_and_shown_without_passwords() {
        let t = Target::parse(
            "postgres://alice:s3cret@db.example.com:5433/state?sslmode=require",
            true,
        )
        .unwrap();
        assert_eq!(
            t.shown(),
            "postgres://alice@db.example.com:5433/state?sslmode=require"
        );
        assert_eq!(t.ssl, Ssl::Require);
        let err = Target::parse("postgres://alice:s3cret@db/state", false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("carries a password"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        // The same password as a query parameter: refused, and never shown.
        let err = Target::parse(
            "postgres://alice@db/state?password=s3cret&sslmode=disable",
            false,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("carries a password"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(
            redact("postgres://alice@db/state?password=s3cret"),
            "postgres://alice@db/state"
        );
        let err = Target::parse("postgres://db/state?sslmode=verify-full", true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = Target::parse("mysql://db/state", true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a postgres:// URL"), "{err}");
    }
}
