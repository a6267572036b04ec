//! The TLS client configuration, from the configuration's TLS options: the system's trust store plus an
//! optional CA bundle, the allowed versions, and (only when an administrator turned it off) no verification.

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use std::sync::Arc;
use tidings_core::config::{TlsOptions, TlsVersion};

/// Builds the client configuration; errors name the field at fault.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::V1_2, &rustls::version::TLS12), (TlsVersion::V1_3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| {
                options.min_version.is_none_or(|min| *v >= min) && options.max_version.is_none_or(|max| *v <= max)
            })
            .map(|(_, p)| p)
            .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls.min_version / tls.max_version: {e}"))?;
    let config = if options.verify_certificates {
        builder.with_root_certificates(roots(options.ca_file.as_deref())?).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The system's trust anchors (Mozilla's when the system has none), plus the configured bundle.
fn roots(ca_file: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let pem = tidings_app::files::read_regular(std::path::Path::new(path), tidings_app::files::PEM_LIMIT)
            .map_err(|why| format!("tls.ca_file: {why}"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.ca_file: {path} is not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!("tls.ca_file: {path} holds no certificate"));
        }
        for cert in certs {
            store.add(cert).map_err(|e| format!("tls.ca_file: a certificate in {path} is unusable: {e}"))?;
        }
    }
    Ok(store)
}

/// Accepts any certificate: used only when `tls.verify_certificates` is false, and every attempt says so.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
