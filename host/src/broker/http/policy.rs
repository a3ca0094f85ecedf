//! Where a plugin's HTTP may go: the hosts it declared, intersected with what
//! the user granted. Deny by default; every denial says what to add.

use std::collections::BTreeMap;

use url::Url;

use super::error::{self, Error};
use crate::contract::Capabilities;
use crate::credentials::Origin;

/// What the user's configuration grants a plugin in one environment.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Base-URL overrides by endpoint name (tests point plugins at fakes this
    /// way). The credential bound to an endpoint follows its override. A key
    /// may also be one of the plugin's declared host patterns: the base URL
    /// then stands in for the hosts of that pattern that the provider names at
    /// run time.
    pub endpoints: BTreeMap<String, String>,
    /// Host names (or patterns) the plugin may reach beyond its endpoints;
    /// each must also be covered by a pattern the plugin declared.
    pub hosts: Vec<String>,
    /// Where these grants live, for messages: `[env.staging.grants] in soar.toml`.
    pub section: String,
}

/// A host name pattern: `*` stands for exactly one DNS label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parse a pattern, lowercased.
    pub fn new(pattern: &str) -> Self {
        Self(pattern.trim().trim_end_matches('.').to_ascii_lowercase())
    }

    /// Whether `host` (lowercase) matches.
    pub fn matches(&self, host: &str) -> bool {
        let pat: Vec<&str> = self.0.split('.').collect();
        let got: Vec<&str> = host.trim_end_matches('.').split('.').collect();
        pat.len() == got.len()
            && pat
                .iter()
                .zip(&got)
                .all(|(p, g)| (*p == "*" && !g.is_empty()) || p.eq_ignore_ascii_case(g))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One way a destination can be allowed.
#[derive(Debug, Clone)]
enum Rule {
    /// A declared endpoint at its default or overridden origin.
    Endpoint { origin: Origin, overridden: bool },
    /// A granted host within a declared pattern (https only).
    Host(HostPattern),
}

/// Why a destination was allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The user named this exact origin in their config, so it may be plain
    /// http and may resolve to a private or loopback address.
    pub user_named: bool,
}

/// The compiled allow-list of one plugin in one environment.
#[derive(Debug, Clone)]
pub struct Policy {
    plugin: String,
    rules: Vec<Rule>,
    declared: Vec<HostPattern>,
    section: String,
    endpoints: Vec<(String, String)>,
    credentials: BTreeMap<String, Vec<Origin>>,
}

impl Policy {
    /// Intersect what `plugin` declares with what `grants` allow. Fails on
    /// grants that cannot be honoured (an override of an undeclared endpoint,
    /// a granted host outside every declared pattern), naming the fix.
    pub fn new(plugin: &str, declared: &Capabilities, grants: &Grants) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut endpoints = Vec::new();
        let mut origins: BTreeMap<&str, Origin> = BTreeMap::new();
        for (name, raw) in &grants.endpoints {
            if declared.endpoints.iter().any(|e| &e.name == name) {
                continue;
            }
            // A declared host pattern may be overridden too: its hosts are
            // named by the provider's answers at run time (a Functions
            // namespace's `api_host`), so the user names the base URL that
            // stands in for them (a fake, a private deployment).
            if declared
                .extra_hosts
                .iter()
                .any(|h| HostPattern::new(h) == HostPattern::new(name))
            {
                let origin = Url::parse(raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "https" | "http"))
                    .and_then(|u| Origin::of(&u))
                    .ok_or_else(|| {
                        format!(
                            "{}: '{name}' = '{raw}' must be an http(s) base URL",
                            grants.section
                        )
                    })?;
                rules.push(Rule::Endpoint {
                    origin,
                    overridden: true,
                });
                continue;
            }
            let mut known: Vec<&str> = declared.endpoints.iter().map(|e| e.name.as_str()).collect();
            known.extend(declared.extra_hosts.iter().map(String::as_str));
            return Err(format!(
                "{}: overrides endpoint '{name}', which plugin '{plugin}' does not declare (it declares: {})",
                grants.section,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        for decl in &declared.endpoints {
            let (raw, overridden) = match grants.endpoints.get(&decl.name) {
                Some(u) => (u.as_str(), true),
                None => (decl.default_url.as_str(), false),
            };
            let url = Url::parse(raw).map_err(|e| {
                format!(
                    "endpoint '{}' URL '{raw}' is not a valid URL: {e}",
                    decl.name
                )
            })?;
            if !overridden && url.scheme() != "https" {
                return Err(format!(
                    "plugin '{plugin}' declares endpoint '{}' as {raw}: declared endpoints must be https",
                    decl.name
                ));
            }
            if !matches!(url.scheme(), "https" | "http") {
                return Err(format!(
                    "{}: endpoint '{}' must be an http(s) URL, not {raw}",
                    grants.section, decl.name
                ));
            }
            let origin = Origin::of(&url)
                .ok_or_else(|| format!("endpoint '{}' URL '{raw}' has no host", decl.name))?;
            rules.push(Rule::Endpoint {
                origin: origin.clone(),
                overridden,
            });
            endpoints.push((decl.name.clone(), raw.trim_end_matches('/').to_string()));
            origins.insert(decl.name.as_str(), origin);
        }
        let declared_patterns: Vec<HostPattern> = declared
            .extra_hosts
            .iter()
            .map(|h| HostPattern::new(h))
            .collect();
        for host in &grants.hosts {
            let granted = HostPattern::new(host);
            let covered = declared_patterns
                .iter()
                .any(|p| p.matches(granted.as_str()) || p == &granted);
            if !covered {
                return Err(format!(
                    "{}: grants host '{host}', but plugin '{plugin}' does not declare it (declared patterns: {}); a grant cannot widen what a plugin declared",
                    grants.section,
                    if declared_patterns.is_empty() {
                        "none".to_string()
                    } else {
                        declared_patterns
                            .iter()
                            .map(HostPattern::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
            }
            rules.push(Rule::Host(granted));
        }
        let mut credentials = BTreeMap::new();
        for cred in &declared.credentials {
            let bound: Vec<Origin> = cred
                .endpoints
                .iter()
                .filter_map(|e| origins.get(e.as_str()).cloned())
                .collect();
            credentials.insert(cred.name.clone(), bound);
        }
        Ok(Self {
            plugin: plugin.to_string(),
            rules,
            declared: declared_patterns,
            section: grants.section.clone(),
            endpoints,
            credentials,
        })
    }

    /// Effective base URL of every declared endpoint.
    pub fn endpoints(&self) -> &[(String, String)] {
        &self.endpoints
    }

    /// Origins a declared credential may be sent to.
    pub fn credential_origins(&self, name: &str) -> Option<&[Origin]> {
        self.credentials.get(name).map(Vec::as_slice)
    }

    /// Every origin some declared credential is bound to.
    pub fn bound_origins(&self) -> impl Iterator<Item = &Origin> {
        self.credentials.values().flatten()
    }

    /// Hosts the user named explicitly (overrides): they alone may resolve to
    /// private or loopback addresses.
    pub fn user_named_hosts(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|r| match r {
                Rule::Endpoint {
                    origin,
                    overridden: true,
                } => Some(origin.host.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether the plugin may send a request to `url`, and on what terms.
    /// A URL with a user name or password is refused: credentials are the
    /// host's to inject, and `http://user:pass@api` would put a plugin's own
    /// `Authorization: Basic` next to them.
    pub fn check(&self, url: &Url) -> Result<Allowed, Error> {
        let plugin = &self.plugin;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(error::denied(format!(
                "plugin '{plugin}' put a user name or password in a URL; credentials are the host's to inject (name one in `credential`)"
            )));
        }
        let Some(origin) = Origin::of(url) else {
            return Err(error::invalid(format!(
                "plugin '{plugin}' asked for '{url}', which has no host"
            )));
        };
        if !matches!(origin.scheme.as_str(), "https" | "http") {
            return Err(error::denied(format!(
                "plugin '{plugin}' asked for a {} URL; only https is brokered",
                origin.scheme
            )));
        }
        for rule in &self.rules {
            match rule {
                Rule::Endpoint {
                    origin: o,
                    overridden,
                } if *o == origin => {
                    return Ok(Allowed {
                        user_named: *overridden,
                    });
                }
                Rule::Host(p)
                    if origin.scheme == "https"
                        && origin.port == 443
                        && p.matches(&origin.host) =>
                {
                    return Ok(Allowed { user_named: false });
                }
                _ => {}
            }
        }
        if origin.host.parse::<std::net::IpAddr>().is_ok() {
            return Err(error::denied(format!(
                "plugin '{plugin}' may not reach {origin}: IP address literals are refused unless {} sets that exact base URL as an endpoint override",
                self.section
            )));
        }
        if self.declared.iter().any(|p| p.matches(&origin.host)) {
            if origin.scheme != "https" || origin.port != 443 {
                return Err(error::denied(format!(
                    "plugin '{plugin}' may not reach {origin}: granted hosts are reached over https on port 443 only"
                )));
            }
            return Err(error::not_granted(format!(
                "plugin '{plugin}' may not reach {}: it declares the host but you have not granted it. To allow it, add this line under {}:\n    hosts = [\"{}\"]",
                origin.host, self.section, origin.host
            )));
        }
        if self
            .rules
            .iter()
            .any(|r| matches!(r, Rule::Endpoint { origin: o, .. } if o.host == origin.host))
        {
            return Err(error::denied(format!(
                "plugin '{plugin}' may not reach {origin}: only the declared endpoint's scheme and port are allowed"
            )));
        }
        Err(error::undeclared(format!(
            "plugin '{plugin}' may not reach {}: the plugin did not declare this host (see `soar plugin inspect {plugin}`), so no grant can allow it",
            origin.host
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Credential, CredentialScheme, EndpointDecl};

    fn caps() -> Capabilities {
        Capabilities {
            endpoints: vec![EndpointDecl {
                name: "api".into(),
                default_url: "https://api.example.com".into(),
            }],
            extra_hosts: vec!["*.fn.example.com".into()],
            credentials: vec![Credential {
                name: "tok".into(),
                scheme: CredentialScheme::Bearer,
                env: vec!["TOK".into()],
                endpoints: vec!["api".into()],
            }],
            ssh: false,
        }
    }

    fn grants() -> Grants {
        Grants {
            section: "[env.staging.grants] in soar.toml".into(),
            ..Default::default()
        }
    }

    #[test]
    fn declared_endpoint_is_allowed_and_others_are_not() {
        let p = Policy::new("x", &caps(), &grants()).unwrap();
        assert!(
            p.check(&Url::parse("https://api.example.com/v2/x").unwrap())
                .is_ok()
        );
        let e = p
            .check(&Url::parse("https://evil.example.org/").unwrap())
            .unwrap_err();
        assert!(e.message.contains("did not declare"), "{e}");
        let e = p
            .check(&Url::parse("http://api.example.com/").unwrap())
            .unwrap_err();
        assert!(e.message.contains("scheme and port"), "{e}");
    }

    #[test]
    fn a_declared_pattern_may_stand_for_a_user_named_base_url() {
        let mut g = grants();
        g.endpoints
            .insert("*.fn.example.com".into(), "http://127.0.0.1:9000".into());
        let p = Policy::new("x", &caps(), &g).unwrap();
        assert!(
            p.check(&Url::parse("http://127.0.0.1:9000/api/v1/x").unwrap())
                .is_ok()
        );
        assert!(p.user_named_hosts().contains(&"127.0.0.1".to_string()));
        // Not a declared endpoint, so not in the plugin's endpoint list.
        assert_eq!(p.endpoints().len(), 1);
        // Another port of the same address stays denied.
        assert!(
            p.check(&Url::parse("http://127.0.0.1:9001/").unwrap())
                .is_err()
        );
        // A pattern the plugin did not declare cannot be overridden.
        let mut g = grants();
        g.endpoints
            .insert("*.other.example.com".into(), "http://127.0.0.1:9000".into());
        let e = Policy::new("x", &caps(), &g).err().unwrap();
        assert!(e.contains("does not declare"), "{e}");
    }

    #[test]
    fn declared_pattern_needs_a_grant_and_the_denial_names_the_line() {
        let p = Policy::new("x", &caps(), &grants()).unwrap();
        let e = p
            .check(&Url::parse("https://a1.fn.example.com/").unwrap())
            .unwrap_err();
        assert!(
            e.message.contains("hosts = [\"a1.fn.example.com\"]")
                && e.message.contains("[env.staging.grants]"),
            "{e}"
        );
        let g = Grants {
            hosts: vec!["a1.fn.example.com".into()],
            ..grants()
        };
        let p = Policy::new("x", &caps(), &g).unwrap();
        assert!(
            p.check(&Url::parse("https://a1.fn.example.com/").unwrap())
                .is_ok()
        );
        assert!(
            p.check(&Url::parse("https://a2.fn.example.com/").unwrap())
                .is_err()
        );
    }

    #[test]
    fn a_grant_cannot_widen_the_declaration() {
        let g = Grants {
            hosts: vec!["evil.org".into()],
            ..grants()
        };
        assert!(
            Policy::new("x", &caps(), &g)
                .unwrap_err()
                .contains("does not declare")
        );
    }

    #[test]
    fn override_moves_endpoint_and_credential() {
        let mut g = grants();
        g.endpoints
            .insert("api".into(), "http://127.0.0.1:9000".into());
        let p = Policy::new("x", &caps(), &g).unwrap();
        assert_eq!(
            p.check(&Url::parse("http://127.0.0.1:9000/v2").unwrap()),
            Ok(Allowed { user_named: true })
        );
        assert!(
            p.check(&Url::parse("https://api.example.com/").unwrap())
                .is_err()
        );
        assert_eq!(
            p.credential_origins("tok").unwrap()[0].to_string(),
            "http://127.0.0.1:9000"
        );
        assert!(
            p.check(&Url::parse("http://127.0.0.1:9001/").unwrap())
                .unwrap_err()
                .message
                .contains("IP address literals")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn policy_with_override(port: u16) -> Policy {
            let mut g = grants();
            g.endpoints
                .insert("api".into(), format!("http://localhost:{port}"));
            Policy::new("x", &caps(), &g).unwrap()
        }

        proptest! {
            /// A user name or password in a URL is refused, whatever the
            /// destination, even the allowed endpoint itself.
            #[test]
            fn userinfo_is_always_refused(
                user in "[a-zA-Z0-9]{1,8}",
                pass in proptest::option::of("[a-zA-Z0-9]{0,8}"),
                path in "(/[a-z0-9]{0,6}){0,3}",
            ) {
                let p = Policy::new("x", &caps(), &grants()).unwrap();
                let auth = match &pass {
                    Some(pw) => format!("{user}:{pw}@"),
                    None => format!("{user}@"),
                };
                let url = Url::parse(&format!("https://{auth}api.example.com{path}")).unwrap();
                let e = p.check(&url).unwrap_err();
                prop_assert!(e.message.contains("user name or password"), "{}", e);
            }

            /// A named base URL authorises exactly its origin: the same
            /// host on any other port or scheme is refused, and only the
            /// named origin is marked user-named (may reach loopback).
            #[test]
            fn a_named_base_url_authorises_one_origin(
                named in 1024u16..65535,
                other in 1u16..65535,
                https in any::<bool>(),
            ) {
                let p = policy_with_override(named);
                let scheme = if https { "https" } else { "http" };
                let url = Url::parse(&format!("{scheme}://localhost:{other}/x")).unwrap();
                let r = p.check(&url);
                if other == named && !https {
                    prop_assert_eq!(r, Ok(Allowed { user_named: true }));
                } else if https && other == 443 {
                    // Not the named origin: never user-named.
                    prop_assert!(r.map(|a| !a.user_named).unwrap_or(true));
                } else {
                    prop_assert!(r.is_err(), "{url} allowed");
                }
            }

            /// Hosts the plugin never declared are refused, whatever the
            /// grants say about other hosts.
            #[test]
            fn undeclared_hosts_are_refused(
                host in "[a-z]{1,10}\\.(org|net|io|example)",
                port in proptest::option::of(1u16..65535),
            ) {
                let p = Policy::new("x", &caps(), &grants()).unwrap();
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let url = Url::parse(&format!("https://{host}{port}/")).unwrap();
                prop_assert!(p.check(&url).is_err());
            }

            /// IP literals are reachable only as a named base URL.
            #[test]
            fn ip_literals_need_an_override(a in any::<u8>(), b in any::<u8>(), port in 1u16..65535) {
                let p = Policy::new("x", &caps(), &grants()).unwrap();
                let url = Url::parse(&format!("https://10.{a}.{b}.1:{port}/")).unwrap();
                prop_assert!(p.check(&url).is_err());
            }
        }
    }
}
