//! Origins: `scheme://host:port`, the unit a credential is bound to.
//!
//! Here rather than in the broker's policy because a credential's binding is
//! the credential store's business; the broker's allow-list uses the same
//! type when it decides where a request may go.

use url::Url;

/// `scheme://host:port`, the unit credentials are bound to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The URL's scheme, lowercase (`https`, or `http` where allowed).
    pub scheme: String,
    /// The host name or IP literal, lowercase (IPv6 without brackets).
    pub host: String,
    /// The port, the scheme's default filled in when the URL named none.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute URL.
    pub fn of(url: &Url) -> Option<Self> {
        Some(Self {
            scheme: url.scheme().to_string(),
            host: url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}
