//! The TLS client configuration, from the configuration's TLS options: the system's trust store plus an
//! optional CA bundle, the allowed versions, certificates the administrator chose to trust as they are (given in
//! `tls.ca_file` or pinned by fingerprint), the Common Name when asked, and (only when an administrator turned it
//! off) no verification. [`explain`] says in words why a handshake failed.

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, ring},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};
use tidings_core::Invalid;
use tidings_core::config::{TlsOptions, TlsVersion, format_fingerprint, parse_fingerprint};

/// Builds the client configuration; errors name the field at fault.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Invalid> {
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
        let (roots, leaves) = roots(options.ca_file.as_deref())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("tls.ca_file: {e}"))?;
        let verifier = RelayVerifier {
            webpki,
            leaves,
            pins: options.pinned_certificate.iter().filter_map(|p| parse_fingerprint(p)).collect(),
            match_common_name: options.match_common_name,
        };
        builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// A configuration that accepts any certificate, for looking at what a relay presents
/// ([`super::Connection::fetch_certificates`]); never used to send.
pub fn accept_any() -> Arc<ClientConfig> {
    static ACCEPT_ANY: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
        let provider = Arc::new(ring::default_provider());
        let config =
            ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map(|b| {
                b.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
            });
        Arc::new(config.unwrap_or_else(|_| unreachable!("the default protocol versions are supported")))
    });
    ACCEPT_ANY.clone()
}

/// The system's trust anchors (Mozilla's when the system has none), plus the configured bundle; and the
/// bundle's certificates themselves, which a relay may present as its own (a self-signed certificate).
fn roots(ca_file: Option<&str>) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), Invalid> {
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
            return Err(format!("tls.ca_file: {path} holds no certificate").into());
        }
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| format!("tls.ca_file: a certificate in {path} is unusable: {e}"))?;
        }
        return Ok((store, certs));
    }
    Ok((store, Vec::new()))
}

/// The relay's certificate is checked as the web checks a server's (chain to a trusted anchor, validity, name),
/// and besides that accepted when the administrator chose to trust it: pinned by its SHA-256 fingerprint, or
/// given itself in `tls.ca_file` (then still checked for validity and name), or naming the relay only in its
/// Common Name when `tls.match_common_name` is on.
#[derive(Debug)]
struct RelayVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of `tls.ca_file`.
    leaves: Vec<CertificateDer<'static>>,
    pins: Vec<[u8; 32]>,
    match_common_name: bool,
}

impl ServerCertVerifier for RelayVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.contains(&fingerprint) {
            return Ok(ServerCertVerified::assertion());
        }
        let refused = match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let given = self.leaves.iter().any(|leaf| leaf.as_ref() == end_entity.as_ref());
        let name_only_in_cn = self.match_common_name && is_name_error(&refused);
        if !given && !name_only_in_cn {
            return Err(refused);
        }
        let cert = Certificate::parse(end_entity).ok_or(refused.clone())?;
        if given {
            cert.check_validity(now)?;
        }
        let names_host = rustls::client::verify_server_name(&parsed(end_entity)?, server_name).is_ok()
            || (self.match_common_name && cert.common_name_is(server_name));
        if names_host { Ok(ServerCertVerified::assertion()) } else { Err(refused) }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn parsed<'a>(cert: &'a CertificateDer<'a>) -> Result<rustls::server::ParsedCertificate<'a>, rustls::Error> {
    rustls::server::ParsedCertificate::try_from(cert)
}

fn is_name_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// What an administrator needs to know of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub not_before: chrono::DateTime<chrono::Utc>,
    pub not_after: chrono::DateTime<chrono::Utc>,
    /// `AB:CD:…`, as `openssl x509 -noout -fingerprint -sha256` prints it.
    pub fingerprint: String,
    pub self_signed: bool,
    /// DNS names and addresses of the subjectAltName.
    pub names: Vec<String>,
    common_name: Option<String>,
}

impl Certificate {
    /// Reads a DER certificate; `None` when it is not one.
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let time = |t: x509_parser::time::ASN1Time| chrono::DateTime::from_timestamp(t.timestamp(), 0);
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                            4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                            16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
            fingerprint: format_fingerprint(&Sha256::digest(der)),
            self_signed: cert.subject() == cert.issuer(),
            common_name: cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned),
            names,
        })
    }

    fn check_validity(&self, now: UnixTime) -> Result<(), rustls::Error> {
        let now = now.as_secs() as i64;
        if now < self.not_before.timestamp() {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet))
        } else if now > self.not_after.timestamp() {
            Err(rustls::Error::InvalidCertificate(CertificateError::Expired))
        } else {
            Ok(())
        }
    }

    /// Whether the Common Name is the host, for a certificate without a subjectAltName.
    fn common_name_is(&self, server_name: &ServerName<'_>) -> bool {
        let host = match server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => return false,
        };
        self.names.is_empty() && self.common_name.as_deref().is_some_and(|cn| cn.eq_ignore_ascii_case(&host))
    }
}

/// Why a handshake with the relay failed, in words an administrator understands, naming what to change; `None`
/// when the error says nothing more than itself.
pub fn explain(error: &rustls::Error, relay: &str) -> Option<String> {
    use CertificateError as C;
    let pin = "to trust this very certificate, check it with `tidings config fetch-certificate` and pin it \
               (`--pin`, or set tls.pinned_certificate)";
    Some(match error {
        rustls::Error::InvalidCertificate(e) => match e {
            C::Expired | C::ExpiredContext { .. } => format!(
                "The relay's certificate has expired. Ask the administrator of {relay} to renew it; until then \
                 nothing is sent (Tidings never sends to a relay it cannot verify)."
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => format!(
                "The relay's certificate is not valid yet: check this machine's clock, or ask the administrator of \
                 {relay} about the certificate's start date."
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "The relay's certificate does not carry the name Tidings connects to ({relay}). Set smtp.host to a \
                 name the certificate carries; if an older internal CA put the name only in the Common Name, set \
                 tls.match_common_name=true (see its risk in docs/configuration.md)."
            ),
            C::UnknownIssuer => format!(
                "The relay's certificate was issued by a certification authority this machine does not trust. If \
                 {relay} uses a private CA, set tls.ca_file to that CA's certificate; {pin}."
            ),
            C::BadSignature | C::BadEncoding => {
                "The relay's certificate is damaged or badly signed. Ask the relay's administrator to check it.".into()
            }
            C::Revoked => {
                "The relay's certificate has been revoked. Ask the relay's administrator for a new one.".into()
            }
            C::Other(other)
                if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) =>
            {
                format!(
                    "The relay presents a self-signed certificate (a CA certificate used as its own). To trust it, give \
                 that certificate in tls.ca_file, or {pin}."
                )
            }
            _ => return None,
        },
        rustls::Error::PeerIncompatible(_)
        | rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion | rustls::AlertDescription::HandshakeFailure,
        ) => format!(
            "The relay and Tidings have no TLS version or cipher in common. Check tls.min_version and \
             tls.max_version (Tidings speaks TLS 1.2 and 1.3); a relay that offers only TLS 1.0 or 1.1 must be \
             upgraded ({relay})."
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => format!(
            "The relay did not answer with TLS. If {relay} expects STARTTLS (usually port 587), set \
             smtp.encryption=starttls; implicit TLS is usually port 465."
        ),
        _ => return None,
    })
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
