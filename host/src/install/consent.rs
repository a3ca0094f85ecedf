//! What the install consent screen (and `soar plugin inspect`) says about a
//! plugin's reach, and the warnings it must not miss.
//!
//! The capability lines are the user's defence against a plugin that
//! declares someone else's secret as its credential (`AWS_SECRET_ACCESS_KEY`
//! bound to its own endpoint): the host would faithfully inject it there.
//! So the screen names, for every credential, the *hosts* it is sent to (not
//! only the endpoint names the plugin chose), and warns loudly when a
//! credential reads an environment variable that another provider uses or
//! that is a well-known secret of some other service. Every string the plugin
//! supplied is escaped ([`crate::terminal`]) and clipped, so none of it can
//! erase or push away the lines around it.

use crate::contract::{CredentialScheme, Description};
use crate::terminal::{clip, line};

/// Longest version shown on the consent screen.
pub const VERSION_MAX: usize = 40;
/// Longest summary shown on the consent screen.
pub const SUMMARY_MAX: usize = 160;
/// Longest single declared item (name, host pattern, variable) shown.
const ITEM_MAX: usize = 120;

/// Variables that hold other services' secrets, whatever provider is
/// installed: a plugin reading one of them is sending that secret to its
/// own endpoints. Prefixes end in `_`.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("AWS_", "Amazon Web Services"),
    ("AZURE_", "Microsoft Azure"),
    ("ARM_", "Microsoft Azure"),
    ("GOOGLE_", "Google Cloud"),
    ("GCP_", "Google Cloud"),
    ("CLOUDSDK_", "Google Cloud"),
    ("DIGITALOCEAN_", "DigitalOcean"),
    ("CLOUDFLARE_", "Cloudflare"),
    ("CF_API_", "Cloudflare"),
    ("GITHUB_TOKEN", "GitHub"),
    ("GH_TOKEN", "GitHub"),
    ("GITLAB_TOKEN", "GitLab"),
    ("NPM_TOKEN", "npm"),
    ("DOCKER_PASSWORD", "Docker"),
    ("HEROKU_API_KEY", "Heroku"),
    ("HCLOUD_TOKEN", "Hetzner Cloud"),
    ("LINODE_TOKEN", "Linode"),
    ("VULTR_API_KEY", "Vultr"),
    ("VAULT_TOKEN", "HashiCorp Vault"),
    ("OPENAI_API_KEY", "OpenAI"),
    ("ANTHROPIC_API_KEY", "Anthropic"),
    ("STRIPE_SECRET_KEY", "Stripe"),
    ("SLACK_TOKEN", "Slack"),
    ("SSH_AUTH_SOCK", "your SSH agent"),
];

/// The service a well-known secret variable belongs to.
pub fn well_known(var: &str) -> Option<&'static str> {
    WELL_KNOWN.iter().find_map(|(pat, service)| {
        let hit = if pat.ends_with('_') {
            var.starts_with(pat)
        } else {
            var == *pat
        };
        hit.then_some(*service)
    })
}

/// The credential variables another provider declares, and where it sends
/// them.
#[derive(Debug, Clone)]
pub struct OtherProvider {
    /// The provider's declared name.
    pub name: String,
    /// Whether it ships inside soar (rather than being installed), which
    /// changes how a clash with it is worded.
    pub bundled: bool,
    /// `(variable, hosts the credential reading it is sent to)`.
    pub vars: Vec<(String, Vec<String>)>,
}

impl OtherProvider {
    /// What `d` declares.
    pub fn of(d: &Description, bundled: bool) -> Self {
        let mut vars = Vec::new();
        for c in &d.capabilities.credentials {
            let hosts = credential_hosts(d, &c.endpoints);
            for v in &c.env {
                vars.push((v.clone(), hosts.clone()));
            }
        }
        Self {
            name: d.name.clone(),
            bundled,
            vars,
        }
    }
}

/// The hosts of the endpoints named `endpoints` (their default URLs).
pub fn credential_hosts(d: &Description, endpoints: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = endpoints
        .iter()
        .filter_map(|name| {
            d.capabilities
                .endpoints
                .iter()
                .find(|e| &e.name == name)
                .and_then(|e| url::Url::parse(&e.default_url).ok())
                .and_then(|u| u.host_str().map(str::to_string))
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The last two labels of a host name (`ec2.us-east-1.amazonaws.com` →
/// `amazonaws.com`): good enough to tell one company's API from another's.
fn site(host: &str) -> String {
    let labels: Vec<&str> = host.trim_end_matches('.').rsplit('.').take(2).collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

fn scheme(s: &CredentialScheme) -> String {
    match s {
        CredentialScheme::Bearer => "bearer".into(),
        CredentialScheme::AwsSigv4(service) => format!("aws-sigv4 for {}", line(service)),
    }
}

fn list(items: &[String], sep: &str) -> String {
    items
        .iter()
        .map(|i| clip(i, ITEM_MAX))
        .collect::<Vec<_>>()
        .join(sep)
}

/// One line per thing a plugin may reach, escaped, for install prompts and
/// diffs. A credential names the hosts it is sent to.
pub fn reach_lines(d: &Description) -> Vec<String> {
    let caps = &d.capabilities;
    let mut lines = Vec::new();
    if caps.endpoints.is_empty() && caps.extra_hosts.is_empty() {
        lines.push("HTTP: nothing".to_string());
    }
    for e in &caps.endpoints {
        lines.push(format!(
            "HTTP endpoint '{}': {} (soar.toml may point it elsewhere)",
            clip(&e.name, ITEM_MAX),
            clip(&e.default_url, ITEM_MAX)
        ));
    }
    for h in &caps.extra_hosts {
        lines.push(format!(
            "HTTP host {} (only if soar.toml grants it)",
            clip(h, ITEM_MAX)
        ));
    }
    for c in &caps.credentials {
        let hosts = credential_hosts(d, &c.endpoints);
        lines.push(format!(
            "credential '{}' ({}) read from ${}, sent only to {} ({}); the plugin never sees its value",
            clip(&c.name, ITEM_MAX),
            scheme(&c.scheme),
            list(&c.env, " or $"),
            list(&c.endpoints, ", "),
            if hosts.is_empty() {
                "no host".to_string()
            } else {
                list(&hosts, ", ")
            }
        ));
    }
    lines.push(if caps.ssh {
        "SSH: runs commands and uploads files on hosts it creates or soar.toml lists".to_string()
    } else {
        "SSH: no".to_string()
    });
    lines
}

/// The loud warnings about `d`'s credentials: a variable another provider
/// uses (`others`: the bundled providers, the same name included, and the
/// other installed ones), or a well-known secret of another service; each
/// says which hosts the plugin would send it to, and whether those are not
/// the hosts the other provider sends it to. A credential bound to hosts of
/// more than one site (its API and somewhere else) is flagged too.
pub fn warnings(d: &Description, others: &[OtherProvider]) -> Vec<String> {
    let mut out = Vec::new();
    for c in &d.capabilities.credentials {
        let hosts = credential_hosts(d, &c.endpoints);
        let shown_hosts = if hosts.is_empty() {
            "no host".to_string()
        } else {
            list(&hosts, ", ")
        };
        let mut sites: Vec<String> = hosts.iter().map(|h| site(h)).collect();
        sites.sort();
        sites.dedup();
        if sites.len() > 1 {
            out.push(format!(
                "WARNING: credential '{}' (${}) is sent to hosts of {} different sites: {shown_hosts}; \
                 a credential normally goes to one API only",
                clip(&c.name, ITEM_MAX),
                list(&c.env, " or $"),
                sites.len(),
            ));
        }
        for var in &c.env {
            let users: Vec<&OtherProvider> = others
                .iter()
                .filter(|o| o.vars.iter().any(|(v, _)| v == var))
                .collect();
            if !users.is_empty() {
                for o in users {
                    let theirs: Vec<String> = o
                        .vars
                        .iter()
                        .filter(|(v, _)| v == var)
                        .flat_map(|(_, h)| h.clone())
                        .collect();
                    let elsewhere = hosts
                        .iter()
                        .any(|h| !theirs.iter().any(|t| site(t) == site(h)));
                    out.push(format!(
                        "WARNING: credential '{}' reads ${}, which the {} provider '{}' uses (it sends it to {}); \
                         this plugin would send that secret to {}{}",
                        clip(&c.name, ITEM_MAX),
                        clip(var, ITEM_MAX),
                        if o.bundled { "bundled" } else { "installed" },
                        o.name,
                        if theirs.is_empty() {
                            "no host".to_string()
                        } else {
                            theirs.join(", ")
                        },
                        shown_hosts,
                        if elsewhere {
                            ", a host other than that provider's API"
                        } else {
                            ""
                        }
                    ));
                }
            } else if let Some(service) = well_known(var) {
                out.push(format!(
                    "WARNING: credential '{}' reads ${}, a well-known secret of {service}; \
                     this plugin would send it to {shown_hosts}",
                    clip(&c.name, ITEM_MAX),
                    clip(var, ITEM_MAX),
                ));
            }
        }
    }
    out
}

/// The other providers of `catalog` for [`warnings`] about the plugin whose
/// component has the sha256 `digest`: every bundled one (a plugin called
/// `digitalocean` reading `DIGITALOCEAN_TOKEN` is exactly the case to flag)
/// and every installed one, except that very component. Plugins that fail
/// to load are left out.
pub async fn other_providers(
    runtime: &crate::runtime::Runtime,
    catalog: &crate::catalog::Catalog,
    digest: &str,
) -> Vec<OtherProvider> {
    let mut out = Vec::new();
    for entry in catalog.everything() {
        if entry.digest == digest {
            continue;
        }
        let bundled = entry.source == crate::catalog::Source::Bundled;
        if let Ok(p) = runtime
            .describe(&entry.name, &entry.bytes, &entry.digest)
            .await
        {
            out.push(OtherProvider::of(&p.description, bundled));
        }
    }
    out
}

/// [`warnings`] for a catalog entry: none for a bundled plugin (it comes
/// with soar, like the host that enforces everything else; its own
/// variables are the reference the others are compared with).
pub async fn entry_warnings(
    runtime: &crate::runtime::Runtime,
    catalog: &crate::catalog::Catalog,
    entry: &crate::catalog::Entry,
    d: &Description,
) -> Vec<String> {
    if entry.source == crate::catalog::Source::Bundled {
        return Vec::new();
    }
    warnings(d, &other_providers(runtime, catalog, &entry.digest).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Capabilities, Credential, EndpointDecl};

    fn desc(name: &str, env: &[&str], url: &str) -> Description {
        Description {
            name: name.into(),
            version: "1.0.0\x1b[2A\x1b[J".into(),
            summary: String::new(),
            artifacts: vec![],
            settings_schema: String::new(),
            capabilities: Capabilities {
                endpoints: vec![EndpointDecl {
                    name: "api".into(),
                    default_url: url.into(),
                }],
                extra_hosts: vec!["\x1b[1A".into()],
                credentials: vec![Credential {
                    name: "key".into(),
                    scheme: CredentialScheme::Bearer,
                    env: env.iter().map(|s| s.to_string()).collect(),
                    endpoints: vec!["api".into()],
                }],
                ssh: false,
            },
        }
    }

    #[test]
    fn flags_other_providers_variables_and_well_known_secrets() {
        let aws = desc(
            "aws-spot",
            &["AWS_SECRET_ACCESS_KEY"],
            "https://ec2.us-east-1.amazonaws.com",
        );
        let others = [OtherProvider::of(&aws, true)];
        let evil = desc(
            "evil",
            &["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "EVIL_TOKEN"],
            "https://collect.evil.example",
        );
        let w = warnings(&evil, &others);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w[0].contains("bundled provider 'aws-spot'"), "{}", w[0]);
        assert!(w[0].contains("collect.evil.example"), "{}", w[0]);
        assert!(w[0].contains("a host other than"), "{}", w[0]);
        assert!(w[1].contains("well-known secret of GitHub"), "{}", w[1]);
        // The same variable toward the same company's API: still a warning,
        // without the "other host" clause.
        let fine = desc(
            "s3",
            &["AWS_SECRET_ACCESS_KEY"],
            "https://s3.eu-west-1.amazonaws.com",
        );
        let w = warnings(&fine, &others);
        assert_eq!(w.len(), 1);
        assert!(!w[0].contains("a host other than"), "{}", w[0]);
    }

    #[test]
    fn flags_a_credential_sent_to_two_sites() {
        let mut d = desc("two", &["TWO_TOKEN"], "https://api.two.example");
        d.capabilities.endpoints.push(EndpointDecl {
            name: "telemetry".into(),
            default_url: "https://collect.evil.example".into(),
        });
        d.capabilities.credentials[0]
            .endpoints
            .push("telemetry".into());
        let w = warnings(&d, &[]);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].contains("2 different sites: api.two.example, collect.evil.example"),
            "{}",
            w[0]
        );
        // Two hosts of one company's API are fine.
        d.capabilities.endpoints[1].default_url = "https://uploads.two.example".into();
        assert!(warnings(&d, &[]).is_empty());
    }

    #[test]
    fn reach_lines_name_hosts_and_escape() {
        let d = desc("x", &["X_TOKEN"], "https://api.x.example");
        let lines = reach_lines(&d);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("sent only to api (api.x.example)")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| !l.chars().any(crate::terminal::is_unsafe))
        );
    }
}
