//! The user's OpenSSH client configuration (`~/.ssh/config`, or the file
//! `[env.<name>.ssh] config` names): `Host` aliases with `HostName`, `User`,
//! `Port`, `IdentityFile` and `ProxyJump`, resolved the way `ssh -G` does.
//!
//! Parser: [`ssh2_config`] (veeso/ssh2-config, maintained, used by termscp).
//! It reads `Host` patterns with `*`, `?` and `!`, follows `Include`, and
//! merges blocks with OpenSSH's rule that the first value obtained wins
//! (`IdentityFile` accumulates). The alternatives were `russh-config` (no
//! `Include`, no negated patterns) and `ssh_config` (string maps, no merge
//! rules). Two things it gets wrong are corrected here, before it parses:
//! - a directive repeated inside one block: OpenSSH keeps the first, the
//!   crate the last, so later repeats of the single-valued directives Soar
//!   reads are dropped from the text it is handed;
//! - `Match` blocks: the crate does not know them and would file their
//!   directives under the block above, so a `Match` line (in the file or an
//!   included one) is refused with its line rather than silently misread.
//!
//! `HostName` may use `%h` (the alias, lower-cased as ssh does) and `%%`;
//! `IdentityFile` may use `%d %u %h %r %p %n %%` and `~`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

/// The directives Soar reads that take one value: the first one in a block
/// wins, as in OpenSSH.
const SINGLE_VALUED: &[&str] = &["hostname", "user", "port", "proxyjump"];

/// A parsed OpenSSH client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    path: PathBuf,
    parsed: SshConfig,
}

/// What the configuration says about one host alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Where to connect: `HostName` (tokens expanded), else the alias.
    pub hostname: String,
    /// `User`, when the configuration sets one.
    pub user: Option<String>,
    /// `Port`, when the configuration sets one.
    pub port: Option<u16>,
    /// Every `IdentityFile`, in order, `~` expanded, tokens not yet (they
    /// depend on the user finally chosen: see [`HostEntry::identity_paths`]).
    pub identity_files: Vec<String>,
    /// `ProxyJump` as written (`none` is `None`).
    pub proxy_jump: Option<String>,
}

/// One hop of a `ProxyJump` list: `[user@]host[:port]` or
/// `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jump {
    /// The user the hop names, if any.
    pub user: Option<String>,
    /// The host (an alias the configuration may resolve further).
    pub host: String,
    /// The port the hop names, if any.
    pub port: Option<u16>,
}

impl ClientConfig {
    /// `~/.ssh/config`, or `None` when there is none (a missing file is not
    /// an error: most machines have no client configuration).
    pub fn user_default() -> Result<Option<Self>, String> {
        let Some(home) = std::env::var_os("HOME") else {
            return Ok(None);
        };
        let path = PathBuf::from(home).join(".ssh").join("config");
        if !path.exists() {
            return Ok(None);
        }
        Self::load(&path).map(Some)
    }

    /// Read and parse `path`; the error names the file, the line when there
    /// is one, and what to change.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the SSH client config {}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parse `text`, read from `path` (for messages and relative `Include`s).
    pub fn parse(text: &str, path: &Path) -> Result<Self, String> {
        let prepared = first_wins_within_blocks(text, path)?;
        let mut config = SshConfig::default();
        if let Some(home) = std::env::var_os("HOME") {
            config = config.home_dir(PathBuf::from(home));
        }
        let parsed = config
            .parse(
                &mut std::io::Cursor::new(prepared),
                // Options this parser does not know (newer OpenSSH ones) are
                // kept aside, not fatal: they do not change the five Soar
                // reads. `Match` is caught below.
                ParseRule::ALLOW_UNKNOWN_FIELDS,
            )
            .map_err(|e| {
                format!(
                    "the SSH client config {} could not be read: {e}",
                    path.display()
                )
            })?;
        if parsed.get_hosts().iter().any(|h| {
            h.params
                .ignored_fields
                .keys()
                .any(|k| k.eq_ignore_ascii_case("match"))
        }) {
            return Err(match_unsupported(path, None));
        }
        Ok(Self {
            path: path.to_path_buf(),
            parsed,
        })
    }

    /// The file this configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the configuration says about `alias`, as `ssh -G alias` would
    /// print it (without ssh's defaults: an unset user or port is `None`).
    pub fn resolve(&self, alias: &str) -> HostEntry {
        let p = self.parsed.query(alias);
        let lower = alias.to_ascii_lowercase();
        let hostname = match p.host_name {
            Some(h) => expand(&h, &[('h', &lower)]),
            None => lower,
        };
        HostEntry {
            hostname,
            user: p.user,
            port: p.port,
            identity_files: p
                .identity_file
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.to_string_lossy().into_owned())
                .collect(),
            proxy_jump: p
                .proxy_jump
                .map(|hops| hops.join(","))
                .filter(|j| !j.eq_ignore_ascii_case("none")),
        }
    }
}

impl HostEntry {
    /// The identity files with their `%` tokens expanded for a login as
    /// `user` to `port`, for alias `alias`.
    pub fn identity_paths(&self, alias: &str, user: &str, port: u16) -> Vec<PathBuf> {
        let home = std::env::var("HOME").unwrap_or_default();
        let local = local_user();
        let port = port.to_string();
        self.identity_files
            .iter()
            .map(|f| {
                let f = match f.strip_prefix("~/") {
                    Some(rest) => format!("{home}/{rest}"),
                    None => f.clone(),
                };
                PathBuf::from(expand(
                    &f,
                    &[
                        ('d', &home),
                        ('u', &local),
                        ('h', &self.hostname),
                        ('r', user),
                        ('p', &port),
                        ('n', alias),
                    ],
                ))
            })
            .collect()
    }
}

/// Parse a `ProxyJump` value (`none` is no hop).
pub fn parse_jumps(text: &str) -> Result<Vec<Jump>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|hop| parse_jump(hop.trim()).ok_or_else(|| bad_jump(hop.trim(), text)))
        .collect()
}

fn parse_jump(hop: &str) -> Option<Jump> {
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    if hop.is_empty() || hop.contains(char::is_whitespace) || hop.contains('/') {
        return None;
    }
    let (user, rest) = match hop.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        Some(_) => return None,
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) if !p.contains(':') => {
                (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?))
            }
            Some(_) => (rest, None), // a bare IPv6 address
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Jump {
        user,
        host: host.to_string(),
        port,
    })
}

fn bad_jump(hop: &str, all: &str) -> String {
    format!(
        "'{hop}' in ProxyJump '{all}' is not a hop: write [user@]host[:port] (several separated by commas)"
    )
}

/// `text` with the repeats of [`SINGLE_VALUED`] directives inside one
/// `Host` block commented out (OpenSSH keeps the first), and a `Match` line
/// refused.
fn first_wins_within_blocks(text: &str, path: &Path) -> Result<String, String> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.lines().enumerate() {
        let keyword = keyword(line);
        match keyword.as_str() {
            "host" => seen.clear(),
            "match" => return Err(match_unsupported(path, Some(n + 1))),
            k if SINGLE_VALUED.contains(&k) && !seen.insert(k.to_string()) => {
                out.push('#');
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A line's directive, lower-cased (`Port=22` and `Port 22` alike).
fn keyword(line: &str) -> String {
    let t = line.trim_start();
    if t.starts_with('#') {
        return String::new();
    }
    t.split(|c: char| c.is_whitespace() || c == '=')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn match_unsupported(path: &Path, line: Option<usize>) -> String {
    let at = match line {
        Some(n) => format!("{}:{n}", path.display()),
        None => format!("{} (in a file it includes)", path.display()),
    };
    format!(
        "{at}: `Match` blocks are not supported by Soar's SSH client, and reading past one would apply its settings to the wrong hosts. \
         Rewrite it as `Host` patterns, or point `[env.<name>.ssh] config` at a file without `Match`"
    )
}

/// Replace `%c` for each `(c, value)` and `%%` with `%`; an unknown token
/// is left as written.
fn expand(text: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push('%');
                    out.push(t);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

/// The local user's name (`%u`), as ssh takes it from the password
/// database: `$USER`, else `$LOGNAME`.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ClientConfig {
        ClientConfig::parse(text, Path::new("/x/config")).unwrap()
    }

    #[test]
    fn first_value_wins_across_and_within_blocks() {
        let c = config(
            "Host web*\n  User alice\n  Port 2201\n  Port=2299\n\
             Host web1 !web2\n  HostName %h.internal\n  User bob\n  IdentityFile /k/%r@%h\n\
             Host Db?\n  HostName 10.0.0.%h\n  ProxyJump bastion,jump2:2022\n\
             Host *\n  User zed\n  ProxyJump none\n",
        );
        let web1 = c.resolve("web1");
        assert_eq!(web1.hostname, "web1.internal");
        assert_eq!(web1.user.as_deref(), Some("alice"));
        assert_eq!(web1.port, Some(2201));
        assert_eq!(web1.proxy_jump, None);
        assert_eq!(
            web1.identity_paths("web1", "alice", 2201),
            [PathBuf::from("/k/alice@web1.internal")]
        );
        let web2 = c.resolve("web2");
        assert_eq!((web2.hostname.as_str(), web2.port), ("web2", Some(2201)));
        let db = c.resolve("Db1");
        assert_eq!(db.hostname, "10.0.0.db1");
        assert_eq!(db.user.as_deref(), Some("zed"));
        assert_eq!(db.proxy_jump.as_deref(), Some("bastion,jump2:2022"));
        // Patterns are case-sensitive, as in ssh.
        assert_eq!(c.resolve("db1").proxy_jump, None);
    }

    #[test]
    fn match_is_refused_with_its_line() {
        let e = ClientConfig::parse("Host a\n User x\nMatch host b\n User y\n", Path::new("/c"))
            .unwrap_err();
        assert!(e.starts_with("/c:3: `Match`"), "{e}");
    }

    #[test]
    fn jumps() {
        assert_eq!(parse_jumps("none").unwrap(), []);
        assert_eq!(
            parse_jumps("ssh://bob@b1:2200, [::1]:23,jump,a@b@c").unwrap(),
            [
                Jump {
                    user: Some("bob".into()),
                    host: "b1".into(),
                    port: Some(2200)
                },
                Jump {
                    user: None,
                    host: "::1".into(),
                    port: Some(23)
                },
                Jump {
                    user: None,
                    host: "jump".into(),
                    port: None
                },
                Jump {
                    user: Some("a@b".into()),
                    host: "c".into(),
                    port: None
                },
            ]
        );
        for bad in ["a,,b", "h:0", "h:x", "@h", "a b"] {
            assert!(parse_jumps(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(expand("a%%b%hc%z", &[('h', "H")]), "a%bHc%z");
    }
}
