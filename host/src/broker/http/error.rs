//! The transport errors the HTTP broker answers a plugin with: one
//! constructor per reason, so every refusal and failure carries a typed
//! reason (`soar:plugin/types.transport-reason`) a plugin can branch on,
//! and a message the user can act on.

pub use crate::contract::TransportError as Error;
use crate::contract::TransportReason;

fn with(reason: TransportReason, message: String) -> Error {
    Error {
        reason,
        message,
        size_cap: None,
    }
}

/// Refused by one of the host's rules (private address, IP literal,
/// plugin-set authorization, a credential toward an unbound host...).
pub fn denied(message: String) -> Error {
    with(TransportReason::Denied, message)
}

/// The plugin did not declare the host.
pub fn undeclared(message: String) -> Error {
    with(TransportReason::Undeclared, message)
}

/// Declared, but the user has not granted the host.
pub fn not_granted(message: String) -> Error {
    with(TransportReason::NotGranted, message)
}

/// The named credential is not configured on this machine.
pub fn credential_missing(message: String) -> Error {
    with(TransportReason::CredentialMissing, message)
}

/// No answer within the deadline.
pub fn timeout(message: String) -> Error {
    with(TransportReason::Timeout, message)
}

/// The answer passed the response cap of `cap` bytes.
pub fn too_large(cap: u64) -> Error {
    Error {
        reason: TransportReason::TooLarge,
        message: format!("response larger than the host's cap of {cap} bytes"),
        size_cap: Some(cap),
    }
}

/// The connection failed, or the server broke the protocol.
pub fn failed(message: String) -> Error {
    with(TransportReason::Connection, message)
}

/// The request itself was malformed.
pub fn invalid(message: String) -> Error {
    with(TransportReason::Invalid, message)
}

/// A failure classified by the caller (DNS, TLS...).
pub fn of(reason: TransportReason, message: String) -> Error {
    with(reason, message)
}

/// Whether the host refused (as opposed to the network failing).
pub fn is_refusal(e: &Error) -> bool {
    matches!(
        e.reason,
        TransportReason::Undeclared
            | TransportReason::NotGranted
            | TransportReason::CredentialMissing
            | TransportReason::Denied
    )
}
