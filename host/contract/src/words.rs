//! The words of the contract's enums: how `soar status`, JSON output and
//! error messages spell them, and how 0.1.0's strings read back.

use crate::{EndpointKind, ResourceState, TransportReason};

impl EndpointKind {
    /// `ssh`, `local` or `url`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Local => "local",
            Self::Url => "url",
        }
    }
}

impl ResourceState {
    /// `running`, `pending`, `stopped`, `missing`, `failed`, or the
    /// provider's own word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Running => "running",
            Self::Pending => "pending",
            Self::Stopped => "stopped",
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::Other(word) => word,
        }
    }

    /// The state a word names; any word the others do not cover is
    /// `other(word)`.
    pub fn from_word(word: &str) -> Self {
        match word {
            "running" => Self::Running,
            "pending" => Self::Pending,
            "stopped" => Self::Stopped,
            "missing" => Self::Missing,
            "failed" => Self::Failed,
            other => Self::Other(other.to_string()),
        }
    }
}

impl TransportReason {
    /// The reason as the WIT spells it (`not-granted`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Undeclared => "undeclared",
            Self::NotGranted => "not-granted",
            Self::CredentialMissing => "credential-missing",
            Self::Denied => "denied",
            Self::Timeout => "timeout",
            Self::TooLarge => "too-large",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Connection => "connection",
            Self::HostKey => "host-key",
            Self::Invalid => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_from_their_words() {
        for s in [
            ResourceState::Running,
            ResourceState::Pending,
            ResourceState::Stopped,
            ResourceState::Missing,
            ResourceState::Failed,
            ResourceState::Other("rebooting".into()),
        ] {
            assert_eq!(ResourceState::from_word(s.as_str()), s);
        }
    }
}
