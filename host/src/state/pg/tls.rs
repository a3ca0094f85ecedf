//! rustls for the state database's `sslmode`s (ring, like the rest of soar).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sslmode=prefer` / `require`: encrypted, server not authenticated, as
/// libpq does it. The handshake's signatures are still checked, so the
/// session is bound to whoever answered; who that is, only `verify-full`
/// says.
pub(crate) fn unverified() -> MakeRustlsConnect {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// `sslmode=verify-full`: the server's certificate must chain to a CA in
/// `root_cert` (PEM) and name the host of the URL.
pub(crate) fn verified(root_cert: &Path) -> anyhow::Result<MakeRustlsConnect> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(root_cert)
        .with_context(|| format!("reading sslrootcert {}", root_cert.display()))?;
    for cert in certs {
        let cert =
            cert.with_context(|| format!("sslrootcert {} is not PEM", root_cert.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate in sslrootcert {}", root_cert.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("sslrootcert {} holds no certificate", root_cert.display());
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts any server certificate (libpq's `require`), checking only the
/// handshake signatures made with it.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
