//! `switch` and `proxy` of a deploy table: how a new release takes over
//! from the running one on a host.
//!
//! ```toml
//! [deploy]
//! switch = "proxy"                                   # default "restart"
//! proxy = { ports = [8001, 8002], drain = "30s" }    # both optional
//! ```
//!
//! Read here, merged key by key like the rest of `[deploy]` by
//! [`super::deploy::merge`], and carried to the rollout as [`Switch`].

use std::time::Duration;

use toml::de::DeValue;

use super::diagnostics::Report;
use super::fields::{Section, integer, wrong_type};
use super::spelling::closest;

/// How a new release takes over from the running one on each host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Switch {
    /// Restart the one service process on the new release (the default):
    /// nothing more to run on a host, but requests during the restart fail.
    #[default]
    Restart,
    /// Blue/green behind a reverse proxy (nginx) on each host: the new
    /// release starts beside the old one, and traffic moves only once it is
    /// healthy, so no request is dropped.
    Proxy(ProxySwitch),
}

/// `proxy = { ports, drain }` of a deploy table, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySwitch {
    /// The blue and the green release's ports (`ports`); `None` = the
    /// service port + 1 and + 2, which the proxy itself listens on.
    pub ports: Option<[u16; 2]>,
    /// How long the old release may finish its requests once traffic has
    /// moved (`drain`, default 30s); it stops sooner when they are done.
    pub drain: Duration,
}

/// Keys of `proxy = { ... }`.
const PROXY_KEYS: &[&str] = &["ports", "drain"];
/// The values `switch` takes.
const MODES: &[&str] = &["restart", "proxy"];
/// How long the old release may finish its requests by default (the
/// figure Kamal's proxy uses too).
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// One deploy table's `switch` and `proxy` values, before defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct SwitchLayer {
    /// `switch = "proxy"` (true) or `"restart"` (false).
    proxy: Option<bool>,
    /// `proxy.ports` and the offset of its value.
    ports: Option<([u16; 2], usize)>,
    /// `proxy.drain`.
    drain: Option<Duration>,
    /// Offset of the `proxy` key, for "proxy settings without the proxy".
    proxy_at: Option<usize>,
}

/// Read `switch` and `proxy` of one deploy table.
pub(crate) fn read(s: &Section<'_>, r: &mut Report<'_>) -> SwitchLayer {
    let mut layer = SwitchLayer::default();
    if let Some(mode) = s.string("switch", "switch = \"proxy\"", r) {
        match mode.get_ref().as_str() {
            "restart" => layer.proxy = Some(false),
            "proxy" => layer.proxy = Some(true),
            other => r.error(
                mode.span().start,
                format!(
                    "`{}` = \"{other}\" is not a switch: use \"restart\" (restart the service on the new release) \
                     or \"proxy\" (blue/green behind nginx, no dropped requests)",
                    s.key_path("switch")
                ),
                Some(match closest(other, MODES) {
                    Some(c) => format!("did you mean \"{c}\"?"),
                    None => "for example: switch = \"proxy\"".to_string(),
                }),
            ),
        }
    }
    let example = "proxy = { ports = [8001, 8002], drain = \"30s\" }";
    if let Some(p) = s.section("proxy", example, r) {
        layer.proxy_at = s.get("proxy").map(|(k, _)| k.span().start);
        p.check_keys(PROXY_KEYS, r);
        layer.ports = ports(&p, r);
        layer.drain = p.duration("drain", r);
    }
    layer
}

/// `ports = [blue, green]`: two different ports.
fn ports(p: &Section<'_>, r: &mut Report<'_>) -> Option<([u16; 2], usize)> {
    let (_, v) = p.get("ports")?;
    let path = p.key_path("ports");
    let example = "ports = [8001, 8002]";
    let DeValue::Array(items) = v.get_ref() else {
        wrong_type(r, v, &path, "an array of two ports", example);
        return None;
    };
    let parsed: Vec<Option<u16>> = items
        .iter()
        .map(|i| {
            integer(i.get_ref())
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
        })
        .collect();
    match parsed.as_slice() {
        [Some(a), Some(b)] if a != b => Some(([*a, *b], v.span().start)),
        [Some(_), Some(_)] => {
            r.error(
                v.span().start,
                format!("`{path}` names the same port twice: the blue and green releases run side by side"),
                Some(format!("for example: {example}")),
            );
            None
        }
        _ => {
            r.error(
                v.span().start,
                format!(
                    "`{path}` must be two ports from 1 to 65535 (the blue and the green release's), unquoted"
                ),
                Some(format!("for example: {example}")),
            );
            None
        }
    }
}

/// An environment's layer over `[deploy]`'s, with defaults; reports
/// `proxy` settings that would be ignored and ports that clash with the
/// service's own.
pub(crate) fn merge(
    base: &SwitchLayer,
    over: &SwitchLayer,
    port: Option<u16>,
    r: &mut Report<'_>,
) -> Switch {
    let proxy = over.proxy.or(base.proxy).unwrap_or(false);
    if !proxy {
        if let Some(at) = over.proxy_at.or(base.proxy_at) {
            r.error(
                at,
                "`proxy` settings apply only with switch = \"proxy\"".to_string(),
                Some("add: switch = \"proxy\", or remove the `proxy` table".to_string()),
            );
        }
        return Switch::Restart;
    }
    let ports = over.ports.or(base.ports);
    if let (Some((p, at)), Some(port)) = (ports, port)
        && p.contains(&port)
    {
        r.error(
            at,
            format!(
                "`proxy.ports` includes the service port {port}, which the proxy itself listens on"
            ),
            Some(format!(
                "pick two other ports, for example: ports = [{}, {}]",
                port.saturating_add(1),
                port.saturating_add(2)
            )),
        );
    }
    Switch::Proxy(ProxySwitch {
        ports: ports.map(|(p, _)| p),
        drain: over.drain.or(base.drain).unwrap_or(DEFAULT_DRAIN),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use toml::de::DeTable;

    use super::*;
    use crate::config::deploy;

    /// `[deploy]` and `[over]` of `text` merged: the switch and the
    /// rendered diagnostics.
    fn merged(text: &str) -> (Switch, Vec<String>) {
        let (doc, errs) = DeTable::parse_recoverable(text);
        assert!(errs.is_empty());
        let mut r = Report::new(text, Path::new("soar.toml"));
        let top = Section::root(doc.get_ref());
        let [base, over] = ["deploy", "over"].map(|name| {
            top.section(name, "", &mut r)
                .map(|s| deploy::read(&s, &mut r))
                .unwrap_or_default()
        });
        let out = deploy::merge(&base, &over, "hello", &mut r).switch;
        (out, r.finish().iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn restart_by_default_and_proxy_with_defaults() {
        assert_eq!(merged("").0, Switch::Restart);
        let (s, msgs) = merged("[deploy]\nswitch = \"proxy\"\n");
        assert!(msgs.is_empty(), "{msgs:?}");
        assert_eq!(
            s,
            Switch::Proxy(ProxySwitch {
                ports: None,
                drain: DEFAULT_DRAIN
            })
        );
    }

    #[test]
    fn an_environment_overrides_key_by_key() {
        let (s, msgs) = merged(
            "[deploy]\nswitch = \"proxy\"\nproxy = { ports = [9001, 9002] }\n\n[over]\nproxy = { drain = \"2s\" }\n",
        );
        assert!(msgs.is_empty(), "{msgs:?}");
        assert_eq!(
            s,
            Switch::Proxy(ProxySwitch {
                ports: Some([9001, 9002]),
                drain: Duration::from_secs(2)
            })
        );
        let (s, _) = merged("[deploy]\nswitch = \"proxy\"\n\n[over]\nswitch = \"restart\"\n");
        assert_eq!(s, Switch::Restart);
    }

    #[test]
    fn problems_point_at_the_value() {
        for (text, want) in [
            (
                "[deploy]\nswitch = \"proxi\"\n",
                "2:10: `deploy.switch` = \"proxi\" is not a switch",
            ),
            (
                "[deploy]\nswitch = \"proxy\"\nproxy = { ports = [9001, 9001] }\n",
                "3:19: `deploy.proxy.ports` names the same port twice",
            ),
            (
                "[deploy]\nswitch = \"proxy\"\nproxy = { ports = [9001] }\n",
                "3:19: `deploy.proxy.ports` must be two ports",
            ),
            (
                "[deploy]\nport = 9001\nswitch = \"proxy\"\nproxy = { ports = [9001, 9002] }\n",
                "4:19: `proxy.ports` includes the service port 9001",
            ),
            (
                "[deploy]\nproxy = { drain = \"5s\" }\n",
                "2:1: `proxy` settings apply only with switch = \"proxy\"",
            ),
            (
                "[deploy]\nswitch = \"proxy\"\nproxy = { drian = \"5s\" }\n",
                "unknown key `drian` in [deploy.proxy]",
            ),
        ] {
            let (_, msgs) = merged(text);
            assert_eq!(msgs.len(), 1, "{text}: {msgs:#?}");
            assert!(
                msgs[0].contains(want),
                "{}\n  does not contain {want}",
                msgs[0]
            );
        }
    }
}
