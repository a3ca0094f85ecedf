//! Addresses the provider's own API named during this command.
//!
//! A plugin reports the hosts a release goes to (`status` endpoints), and it
//! may ask for SSH to them. What it says is not evidence: a hostile plugin
//! could name any machine. The evidence is an answer of the provider's API,
//! reached with the credential the user gave (a droplet's `ip_address`): the
//! HTTP broker records every address-shaped token in those answers here, and
//! the SSH broker connects to a provider-reported address only when it is
//! recorded (or the user's config names it).
//!
//! [`is_public`] is the one test of "public address" both brokers apply:
//! the HTTP resolver for hosts the user did not name, the SSH broker for
//! hosts only a provider named.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

/// Most addresses kept per command (a plan over thousands of droplets names
/// a few thousand; more is noise or an attack on memory).
const MAX_ADDRESSES: usize = 100_000;

/// The set of addresses seen in answers of credential-bound origins.
#[derive(Debug, Default)]
pub struct SeenAddresses {
    set: Mutex<HashSet<String>>,
}

impl SeenAddresses {
    /// Record the address-shaped tokens (IP literals, dotted host names,
    /// `host:port`) of an answer.
    pub fn record(&self, body: &[u8]) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for token in body.split(|b| !is_token_byte(*b)) {
            if set.len() >= MAX_ADDRESSES {
                return;
            }
            let Ok(token) = std::str::from_utf8(token) else {
                continue;
            };
            if let Some(address) = normalize(token) {
                set.insert(address);
            } else if let Some((host, port)) = token.rsplit_once(':')
                && port.parse::<u16>().is_ok()
                && let Some(address) = normalize(host)
            {
                set.insert(address);
            }
        }
    }

    /// Whether an answer named `address`.
    pub fn contains(&self, address: &str) -> bool {
        normalize(address).is_some_and(|a| {
            self.set
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&a)
        })
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'[' | b']' | b'%')
}

/// An IP literal in canonical form, or a lowercase dotted host name.
fn normalize(token: &str) -> Option<String> {
    let bare = token.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let is_name = bare.len() <= 253
        && bare.contains('.')
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && bare.bytes().any(|b| b.is_ascii_alphabetic());
    is_name.then(|| bare.to_ascii_lowercase())
}

/// Whether an address is on the public internet. Loopback, private,
/// link-local, shared (CGNAT), unique-local, multicast and unspecified
/// addresses are not: a plugin's default endpoints must never reach them.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn addresses_in_json_and_xml_answers_are_recorded() {
        let seen = SeenAddresses::default();
        seen.record(br#"{"networks":{"v4":[{"ip_address":"203.0.113.7"}],"v6":[{"ip_address":"2001:DB8::1"}]},"host":"Node-1.Example.com:2222"}"#);
        seen.record(b"<ipAddress>198.51.100.4</ipAddress>");
        for a in [
            "203.0.113.7",
            "2001:db8::1",
            "[2001:db8::1]",
            "node-1.example.com",
            "198.51.100.4",
        ] {
            assert!(seen.contains(a), "{a}");
        }
        for a in ["127.0.0.1", "203.0.113.8", "example", "ip_address"] {
            assert!(!seen.contains(a), "{a}");
        }
    }
}
