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
///
/// Errors name the file and what to put there, and never quote it: a
/// mistaken `sslrootcert` may point at a private key.
pub(crate) fn verified(root_cert: &Path) -> anyhow::Result<MakeRustlsConnect> {
    let shown = root_cert.display();
    let pem = std::fs::read(root_cert).map_err(|e| {
        anyhow::anyhow!(
            "cannot read sslrootcert {shown}: {e}; point sslrootcert at the CA certificate (PEM) that signed the server's certificate"
        )
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|_| {
            anyhow::anyhow!(
                "sslrootcert {shown} is not a PEM file of certificates (-----BEGIN CERTIFICATE----- blocks)"
            )
        })?;
        roots.add(cert).map_err(|e| {
            anyhow::anyhow!("sslrootcert {shown} holds a certificate rustls cannot use: {e}")
        })?;
    }
    if roots.is_empty() {
        anyhow::bail!(
            "sslrootcert {shown} holds no certificate: it should hold the CA certificate (PEM, -----BEGIN CERTIFICATE-----) that signed the server's"
        );
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
