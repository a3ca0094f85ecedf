//! Test support for Soar, shared by the integration tests in `host/tests/all/`
//! (which live there because Cargo hands only a package's own tests the path
//! of its binary): components built from `tests/plugins/`, real HTTP servers
//! on loopback, and launchers for real peers (moto, sshd, dockerd).

pub mod axum_thread;
pub mod components;
pub mod dockerd;
pub mod ec2_proxy;
pub mod fakes;
pub mod files;
pub mod moto;
pub mod servers;
pub mod sshd;
pub mod static_server;
