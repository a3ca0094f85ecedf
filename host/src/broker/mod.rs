//! Brokers: the host's side of every transport a plugin imports. Each broker
//! is the single enforcement point for its capability.

pub mod addresses;
pub mod http;
pub mod ssh;
