//! TLS set-up shared by every client the host makes.

/// Install rustls' `ring` provider as the process default (once). `ring`
/// builds in seconds where aws-lc takes minutes, which matters on small CI
/// machines; it is equally maintained and audited.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
