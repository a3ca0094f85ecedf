//! `[env.<name>.ssh]`: how the host reaches the environment's machines.
//!
//! ```toml
//! [env.prod.ssh]
//! hosts = ["203.0.113.10", "203.0.113.11:2222"]  # machines not created by the provider
//! user = "deploy"                # default: the provider's, else root
//! port = 22
//! identity_file = "~/.ssh/id_ed25519"   # default: ssh-agent, then ~/.ssh/id_*
//! known_hosts = ".soar/known_hosts"     # Soar's own file (plus ~/.ssh/known_hosts)
//! remote_prefix = ""             # prefix of every remote path; {host} and {port} expand
//! systemctl = "systemctl"        # {prefix} expands
//! use_sudo = false
//! service_user = "hello"         # User= of the unit; "" for none; default: the service name
//! connect_timeout = "15s"
//! address_map = { "203.0.113.10" = "127.0.0.1:2201" }  # connect elsewhere (tests, bastions)
//! config = "~/.ssh/config"       # OpenSSH client config for Host aliases; "none" reads none
//! bastion = "deploy@bastion.example.com"  # every host through it (ProxyJump syntax)
//! ```
//!
//! Values set here win over the SSH client config's (see
//! `crate::broker::ssh::route` for the order).

use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::SshConfig;
use super::diagnostics::Report;
use super::fields::{Section, wrong_type};

const KEYS: &[&str] = &[
    "hosts",
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "remote_prefix",
    "systemctl",
    "use_sudo",
    "service_user",
    "connect_timeout",
    "address_map",
    "config",
    "bastion",
];

/// Which SSH client config (`~/.ssh/config` syntax) hosts are resolved
/// against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientConfigChoice {
    /// `~/.ssh/config`, when it exists.
    #[default]
    UserDefault,
    /// The file `config` names (it must exist).
    File(PathBuf),
    /// `config = "none"`: no client config at all.
    Off,
}

/// `host` or `host:port` (IPv6 in brackets).
pub(crate) fn parse_host(text: &str) -> Option<(String, Option<u16>)> {
    let t = text.trim();
    if t.is_empty() || t.contains(['/', '@', ' ']) {
        return None;
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((h.to_string(), Some(p.parse().ok().filter(|p| *p > 0)?))),
            None if after.is_empty() => Some((h.to_string(), None)),
            None => None,
        };
    }
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            Some((h.to_string(), Some(p.parse().ok().filter(|p| *p > 0)?)))
        }
        Some(_) => Some((t.to_string(), None)),
        None => Some((t.to_string(), None)),
    }
}

fn expand_path(text: &str, root: &Path) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    root.join(text)
}

pub(crate) fn read(s: &Section<'_>, root: &Path, r: &mut Report<'_>) -> SshConfig {
    s.check_keys(KEYS, r);
    let mut c = SshConfig::default();
    let host_example = "hosts = [\"203.0.113.10\", \"203.0.113.11:2222\"]";
    if let Some((_, v)) = s.get("hosts") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(h) => match parse_host(h) {
                            Some(hp) => c.hosts.push(hp),
                            None => r.error(
                                item.span().start,
                                format!(
                                    "'{h}' in `{}` is not a host: write an address or address:port",
                                    s.key_path("hosts")
                                ),
                                Some(host_example.to_string()),
                            ),
                        },
                        _ => wrong_type(r, item, &s.key_path("hosts"), "a string", host_example),
                    }
                }
            }
            _ => wrong_type(
                r,
                v,
                &s.key_path("hosts"),
                "an array of strings",
                host_example,
            ),
        }
    }
    c.user = s
        .string("user", "user = \"deploy\"", r)
        .map(|v| v.into_inner());
    c.port = s.port("port", r);
    c.identity_file = s
        .string("identity_file", "identity_file = \"~/.ssh/id_ed25519\"", r)
        .map(|v| expand_path(v.get_ref(), root));
    c.known_hosts = s
        .string("known_hosts", "known_hosts = \".soar/known_hosts\"", r)
        .map(|v| expand_path(v.get_ref(), root));
    if let Some(p) = s.string("remote_prefix", "remote_prefix = \"/srv/test\"", r) {
        let p = p.get_ref().trim_end_matches('/').to_string();
        if !p.is_empty() && !p.starts_with('/') {
            r.error(
                0,
                format!("`{}` must be an absolute path", s.key_path("remote_prefix")),
                None,
            );
        }
        c.remote_prefix = p;
    }
    c.systemctl = s
        .string("systemctl", "systemctl = \"systemctl\"", r)
        .map(|v| v.into_inner());
    // "" is meaningful here (no `User=`), so read it raw.
    if let Some((_, v)) = s.get("service_user") {
        match v.get_ref() {
            DeValue::String(u) => c.service_user = Some(u.to_string()),
            _ => wrong_type(
                r,
                v,
                &s.key_path("service_user"),
                "a string",
                "service_user = \"hello\"",
            ),
        }
    }
    if let Some((_, v)) = s.get("use_sudo") {
        match v.get_ref() {
            DeValue::Boolean(b) => c.use_sudo = *b,
            _ => wrong_type(
                r,
                v,
                &s.key_path("use_sudo"),
                "a boolean",
                "use_sudo = true",
            ),
        }
    }
    c.connect_timeout = s.duration("connect_timeout", r);
    if let Some(v) = s.string("config", "config = \"~/.ssh/config\"", r) {
        c.client_config = if v.get_ref() == "none" {
            ClientConfigChoice::Off
        } else {
            ClientConfigChoice::File(expand_path(v.get_ref(), root))
        };
    }
    if let Some(v) = s.string("bastion", "bastion = \"deploy@bastion.example.com\"", r) {
        match crate::broker::ssh::client_config::parse_jumps(v.get_ref()) {
            Ok(hops) if !hops.is_empty() => c.bastion = Some(v.get_ref().trim().to_string()),
            Ok(_) => {}
            Err(e) => r.error(
                v.span().start,
                format!("`{}`: {e}", s.key_path("bastion")),
                Some("bastion = \"deploy@bastion.example.com:22\"".to_string()),
            ),
        }
    }
    let map_example = "address_map = { \"203.0.113.10\" = \"127.0.0.1:2201\" }";
    for e in s.string_map("address_map", map_example, r) {
        match parse_host(&e.value) {
            Some((h, p)) => {
                c.address_map.insert(e.key, (h, p));
            }
            None => r.error(
                e.value_at,
                format!(
                    "'{}' in `{}` is not an address or address:port",
                    e.value,
                    s.key_path("address_map")
                ),
                Some(map_example.to_string()),
            ),
        }
    }
    c
}

/// Defaults and lookups the engine uses.
impl SshConfig {
    /// Where to connect for `address:port` (after `address_map`, which may
    /// name `address` or `address:port`).
    pub fn map(&self, address: &str, port: u16) -> (String, u16) {
        let by_port = format!("{address}:{port}");
        match self
            .address_map
            .get(&by_port)
            .or_else(|| self.address_map.get(address))
        {
            Some((h, p)) => (h.clone(), p.unwrap_or(port)),
            None => (address.to_string(), port),
        }
    }

    /// `address_map`'s target for `address:port` (or `address`), with the
    /// port it names, if any.
    pub fn mapped(&self, address: &str, port: u16) -> Option<(String, Option<u16>)> {
        self.address_map
            .get(&format!("{address}:{port}"))
            .or_else(|| self.address_map.get(address))
            .cloned()
    }

    /// `remote_prefix` for one host.
    pub fn prefix_for(&self, address: &str, port: u16) -> String {
        self.remote_prefix
            .replace("{host}", address)
            .replace("{port}", &port.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(parse_host("1.2.3.4"), Some(("1.2.3.4".into(), None)));
        assert_eq!(parse_host("h:2201"), Some(("h".into(), Some(2201))));
        assert_eq!(parse_host("[::1]:22"), Some(("::1".into(), Some(22))));
        assert_eq!(parse_host("h:0"), None);
        assert_eq!(parse_host("a b"), None);
    }

    #[test]
    fn section() {
        let text = r#"
[app]
name = "hello"
[artifact]
kind = "script"
path = "."
command = "python3 app.py"
[env.prod]
provider = "local"
[env.prod.ssh]
hosts = ["203.0.113.10", "127.0.0.1:2202"]
user = "deploy"
remote_prefix = "/tmp/x/{port}"
use_sudo = true
service_user = ""
address_map = { "203.0.113.10" = "127.0.0.1:2201" }
"#;
        let dir = tempfile::tempdir().unwrap();
        let p = super::super::parse(text, &dir.path().join("soar.toml"), &["local"]).unwrap();
        let ssh = &p.environments["prod"].ssh;
        assert_eq!(ssh.hosts.len(), 2);
        assert_eq!(ssh.user.as_deref(), Some("deploy"));
        assert!(ssh.use_sudo);
        assert_eq!(ssh.service_user.as_deref(), Some(""));
        assert_eq!(ssh.map("203.0.113.10", 22), ("127.0.0.1".into(), 2201));
        assert_eq!(ssh.prefix_for("127.0.0.1", 2201), "/tmp/x/2201");
        assert!(p.environments["prod"].settings.get("ssh").is_none());

        let bad = text.replace("use_sudo = true", "use_sudo = 1\nusr = 2");
        let err = super::super::parse(&bad, &dir.path().join("soar.toml"), &["local"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("use_sudo"), "{err}");
        assert!(err.contains("did you mean `user`"), "{err}");
    }
}
