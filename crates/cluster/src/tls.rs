//! TLS between nodes: a node's own certificate (self-signed, made once: `App::cluster_identity`) on its cluster
//! listener, and a client that trusts exactly the certificate it pinned when it joined.

use rustls::{
    ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tidings_app::cluster::Identity;
use tidings_core::Invalid;

/// The server side of this node's cluster listener.
pub fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, Invalid> {
    let chain = vec![
        CertificateDer::from_pem_slice(identity.certificate_pem.as_bytes())
            .map_err(|e| Invalid::new(format!("the cluster certificate: {e}")))?,
    ];
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.expose().as_bytes())
        .map_err(|e| Invalid::new(format!("the cluster certificate's key: {e}")))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Invalid::new(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Invalid::new(format!("the cluster certificate and its key: {e}")))?;
    Ok(Arc::new(config))
}

/// A client that accepts the one certificate whose SHA-256 is `fingerprint` (hex), whatever its names.
pub fn pinned_client(fingerprint: &str) -> Result<ClientConfig, Invalid> {
    let pin =
        decode_hex(fingerprint).ok_or_else(|| Invalid::new(format!("{fingerprint:?} is not a SHA-256 fingerprint")))?;
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Invalid::new(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
        .with_no_client_auth();
    Ok(config)
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let text: String = text.chars().filter(|c| *c != ':').collect();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the node presented another certificate than the one pinned when joining".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
